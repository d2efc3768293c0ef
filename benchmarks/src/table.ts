// Plain-text tables for stdout.

import type { Table } from './common';

function cell(v: string | number | null): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'number') return fmt(v);
  return v;
}

/** A number with about three significant digits, no exponent for ordinary magnitudes. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (Number.isInteger(v) && a < 1e7) return String(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  if (a >= 0.01) return v.toFixed(3);
  return v.toExponential(1);
}

export function renderTable(t: Table): string {
  const cells = t.rows.map((r) => r.map(cell));
  const widths = t.columns.map((c, i) => Math.max(c.title.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => ((t.columns[i].align ?? 'right') === 'left' ? v.padEnd(widths[i]) : v.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  const out = [line(t.columns.map((c) => c.title)), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of cells) out.push(line(r));
  return out.join('\n');
}
