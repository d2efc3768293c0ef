// What every command shares: flag parsing with --help, the runtime, one-line failures, the
// results table.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { EvaluationReport } from '../evaluate';
import { PAPER_TABLE1, type Scores } from '../metrics';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parse `argv` against `options`; print `usage` and exit 0 on --help, or exit 2 on a bad flag. */
export function parseFlags<O extends Options>(usage: string, options: O, argv = process.argv.slice(2)) {
  try {
    const { values } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
    if ((values as Record<string, unknown>).help) {
      process.stdout.write(usage.trimEnd() + '\n');
      process.exit(0);
    }
    return values as { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string };
  } catch (e) {
    console.error(`error: ${(e as Error).message} (see --help)`);
    process.exit(2);
  }
}

/** A number flag, or a clear error. */
export function numberFlag(name: string, text: string | undefined, integer = false): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) throw new Error(`--${name} takes ${integer ? 'an integer' : 'a number'}, got "${text}"`);
  return v;
}

/** Progress bars to stop before an error is printed (so it gets a line of its own and the cursor comes back). */
const activeBars = new Set<{ stop(): void }>();

/** Register a progress bar for {@link fail} to stop. */
export function trackBar<T extends { stop(): void }>(bar: T): T {
  activeBars.add(bar);
  return bar;
}

/** Print one line saying what failed and exit 1. */
export function fail(e: unknown): never {
  for (const bar of activeBars) bar.stop();
  // Messages that explain themselves over several lines are joined: one line, as the commands promise.
  const message = (e instanceof Error ? e.message : String(e)).split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
  console.error(`error: ${message}`);
  if (process.env.AUNET_DEBUG && e instanceof Error) console.error(e.stack);
  process.exit(1);
}

const pct = (v: number) => (Number.isNaN(v) ? '   -' : (100 * v).toFixed(1).padStart(5));

/** The test scores beside the paper's Table 1 row. */
export function resultsTable(r: EvaluationReport, paperRow: string): string {
  const row = (name: string, s: Scores) => `${name.padEnd(34)} ${pct(s.dice)}  ${pct(s.sensitivity)}  ${pct(s.specificity)}`;
  const paper = PAPER_TABLE1[paperRow];
  return [
    `${''.padEnd(34)}  Dice   Sens   Spec  (%, ${r.slices.length} test slices)`,
    row(`pooled, ${r.model.resolution}`, r.model.pooled),
    row(`per-slice mean, ${r.model.resolution}`, r.model.perSliceMean),
    row(`pooled, ${r.original.resolution}`, r.original.pooled),
    row(`per-slice mean, ${r.original.resolution}`, r.original.perSliceMean),
    `${`paper, ${paperRow}`.padEnd(34)} ${paper.dice.toFixed(1).padStart(5)}  ${paper.sensitivity.toFixed(1).padStart(5)}  ${paper.specificity.toFixed(1).padStart(5)}`,
  ].join('\n');
}
