// The report of `evaluate` as files and text: CSV (a row per slice, per case, pooled and the
// means), JSON (everything), a Markdown summary, and the table printed on the terminal.
// Browser-safe.

import { pct, type Confusion, type OverlapScores } from './metrics';
import { LESION_CLASSES, type CaseReport, type LabelsAs, type PooledReport, type SurfaceCounts } from './mask-scores';
import type { SurfaceScores } from './surface-metrics';

/** A whole evaluation of masks against labels: what `evaluate` writes with --out. */
export interface MaskEvaluation {
  /** What was scored, in words (the prediction and label paths, or a checkpoint and its slices). */
  scope: string;
  labelsAs: LabelsAs;
  toleranceMm: number;
  /** Prediction voxels at or above this value are lesion (masks hold 0/1; probabilities are cut here). */
  threshold: number;
  pooled: PooledReport;
  cases: CaseReport[];
  /** Lines to read with the figures: warnings, files not scored. */
  notes: string[];
}

/** The definitions the report's figures follow, one line each (in the Markdown and the JSON). */
export function evaluationDefinitions(labelsAs: LabelsAs, toleranceMm: number): string[] {
  return [
    `Lesion: ${labelsAs === 'lesion' ? 'every label class (1 ground glass, 2 consolidation, 3 pleural effusion) merged' : 'ground glass (1) and consolidation (2); pleural effusion (3), outside the lung, counts as background'} (--labels-as ${labelsAs}).`,
    'Dice 2TP/(2TP+FP+FN), IoU TP/(TP+FP+FN) (both 1 when there is no lesion and none is predicted), sensitivity TP/(TP+FN) (undefined without lesion), specificity TN/(TN+FP), precision TP/(TP+FP) (undefined when nothing is predicted).',
    'Surface: the boundary voxels of a mask (those binary erosion with the 4- or 6-neighbour cross removes). Distances from each boundary voxel of one mask to the nearest of the other, both directions, in mm from the header\'s voxel size (exact Euclidean distance transform): per slice in its plane, per case in 3-D.',
    `HD95: the larger of the two directions' 95th percentiles; HD: the largest distance; ASD: the mean of both directions' distances together; NSD: the share of both boundaries within ${toleranceMm} mm of the other (MONAI's compute_hausdorff_distance, compute_average_surface_distance(symmetric=True), compute_surface_dice).`,
    'Empty masks (as MONAI): lesion in neither prediction nor labels: HD95, HD, ASD and NSD undefined; in one only: HD95, HD and ASD infinite, NSD 0. Means of HD95, HD and ASD are over the slices (cases) with lesion on both sides, of NSD over those with lesion on at least one; the counts are given.',
    'Per-class sensitivity: the share of each label class\'s voxels inside the predicted mask.',
  ];
}

/** A copy of `value` that JSON can hold: NaN (undefined) as null, an infinite distance as the string "Infinity". */
export function jsonSafe(value: unknown): unknown {
  if (typeof value === 'number') return Number.isNaN(value) ? null : Number.isFinite(value) ? value : value > 0 ? 'Infinity' : '-Infinity';
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]));
  return value;
}

/** The evaluation as the JSON file holds it: the definitions, then everything (see {@link jsonSafe}). */
export function maskEvaluationJson(e: MaskEvaluation): unknown {
  return jsonSafe({ ...e, definitions: evaluationDefinitions(e.labelsAs, e.toleranceMm) });
}

const CLASS_COLUMNS = LESION_CLASSES.map((c) => `sensitivity_${c.name.replace(/ /g, '_')}`);
const CSV_HEAD = [
  'level', 'case', 'slice', 'lesion_voxels', 'predicted_voxels', 'tp', 'fp', 'fn', 'tn',
  'dice', 'iou', 'sensitivity', 'specificity', 'precision', 'hd95_mm', 'hd_mm', 'asd_mm', 'nsd', ...CLASS_COLUMNS,
].join(',');

/** A number for the CSV: empty for NaN (undefined), `inf` for an infinite distance. */
function csvNumber(v: number): string {
  if (Number.isNaN(v)) return '';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  return Number.isInteger(v) ? String(v) : v.toPrecision(6).replace(/\.?0+$/, '').replace(/\.?0+e/, 'e');
}

/** A case name for the CSV, quoted when it holds a comma or a quote. */
const csvText = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

function csvRow(level: string, caseName: string, slice: number | '', c: Confusion | null, s: OverlapScores, surface: SurfaceScores | null, classes: number[] | null): string {
  const n = (v: number | undefined) => (v === undefined ? '' : csvNumber(v));
  return [
    level, csvText(caseName), slice,
    n(c ? c.tp + c.fn : undefined), n(c ? c.tp + c.fp : undefined), n(c?.tp), n(c?.fp), n(c?.fn), n(c?.tn),
    n(s.dice), n(s.iou), n(s.sensitivity), n(s.specificity), n(s.precision),
    n(surface?.hd95), n(surface?.hd), n(surface?.asd), n(surface?.nsd),
    ...(classes ? classes.map(n) : LESION_CLASSES.map(() => '')),
  ].join(',');
}

/**
 * The evaluation as CSV: a row per slice of each case (`slice`), per case (`case`: every voxel,
 * 3-D surface scores), `pooled` (every voxel of every case; no surface scores), and the means
 * (`slice-mean`, `case-mean`). Empty cells: undefined or not measured; `inf`: infinite distance.
 */
export function maskEvaluationCsv(e: MaskEvaluation): string {
  const rows = [CSV_HEAD];
  for (const c of e.cases) {
    for (const s of c.slices) rows.push(csvRow('slice', c.name, s.slice, s, s, s, null));
    rows.push(csvRow('case', c.name, '', c.confusion, c.overlap, c.surface, c.classes.length ? c.classes.map((k) => k.sensitivity) : null));
    rows.push(csvRow('slice-mean', c.name, '', null, c.perSliceMean, c.perSliceMean, null));
  }
  const p = e.pooled;
  rows.push(csvRow('pooled', '', '', p.confusion, p.overlap, null, p.classes.length ? p.classes.map((k) => k.sensitivity) : null));
  rows.push(csvRow('slice-mean', '', '', null, p.perSliceMean, p.perSliceMean, null));
  if (p.perCaseMean) rows.push(csvRow('case-mean', '', '', null, p.perCaseMean, p.perCaseMean, null));
  return rows.join('\n') + '\n';
}

/** A distance for tables: mm with 2 decimals, `inf`, or `-` when undefined. */
const mm = (v: number) => (Number.isNaN(v) ? '-' : Number.isFinite(v) ? v.toFixed(2) : 'inf');

/** "1 slice" / "2 slices". */
const plural = (n: number, what: 'slice' | 'case') => `${n} ${what}${n === 1 ? '' : 's'}`;

const counts = (c: SurfaceCounts, what: 'slice' | 'case') => `${plural(c.both, what)} with lesion on both sides, ${c.oneSide} on one side only, ${c.neither} on neither`;

type Row = { name: string; overlap: OverlapScores; surface: SurfaceScores | null };

function rowsOf(e: MaskEvaluation): Row[] {
  const p = e.pooled;
  const slices: Row = { name: `mean of ${plural(p.slices, 'slice')}`, overlap: p.perSliceMean, surface: p.perSliceMean };
  if (e.cases.length === 1) {
    const c = e.cases[0];
    return [{ name: `every voxel${c.surface && c.slices.length > 1 ? ', surfaces in 3-D' : ''}`, overlap: c.overlap, surface: c.surface }, slices];
  }
  const rows: Row[] = [{ name: `pooled: every voxel of ${p.cases} cases`, overlap: p.overlap, surface: null }, slices];
  if (p.perCaseMean) rows.push({ name: `mean of ${p.cases} cases (3-D)`, overlap: p.perCaseMean, surface: p.perCaseMean });
  for (const c of e.cases) rows.push({ name: c.surface ? `${c.name} (3-D)` : c.name, overlap: c.overlap, surface: c.surface });
  return rows;
}

const HEAD = ['', 'Dice', 'IoU', 'Sens', 'Spec', 'Prec', 'HD95 mm', 'HD mm', 'ASD mm', 'NSD'];
const cells = (r: Row) => [
  r.name, pct(r.overlap.dice), pct(r.overlap.iou), pct(r.overlap.sensitivity), pct(r.overlap.specificity), pct(r.overlap.precision),
  r.surface ? mm(r.surface.hd95) : '', r.surface ? mm(r.surface.hd) : '', r.surface ? mm(r.surface.asd) : '', r.surface ? pct(r.surface.nsd) : '',
];

/** Said where the label classes could not be read (see CaseSlices.classesKnown). */
const CLASSES_UNKNOWN = 'not known: the labels could not be matched class by class to the slices scored';

const classCells = (p: { classes: PooledReport['classes'] }) =>
  p.classes.length ? p.classes.map((k) => `${k.name} ${pct(k.sensitivity)} (${k.found} of ${k.voxels} voxels)`).join(', ') : CLASSES_UNKNOWN;

/** The summary printed on the terminal: overlap in %, distances in mm, NSD in %, per-class sensitivity. */
export function maskEvaluationText(e: MaskEvaluation): string {
  const table = [HEAD, ...rowsOf(e).map(cells)];
  const widths = HEAD.map((_, i) => Math.max(...table.map((r) => r[i].length)));
  const lines = table.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
  const p = e.pooled;
  lines.push(`lesion: --labels-as ${e.labelsAs}; NSD at ${e.toleranceMm} mm; slices: ${counts(p.sliceSurface, 'slice')}`);
  if (p.caseSurface) lines.push(`cases: ${counts(p.caseSurface, 'case')}`);
  lines.push(`found per class (sensitivity): ${classCells(p)}`);
  return lines.join('\n');
}

/** The Markdown summary: what was scored, the definitions, the table, the classes, the notes. */
export function maskEvaluationMarkdown(e: MaskEvaluation): string {
  const p = e.pooled;
  const md = (r: string[]) => `| ${r.join(' | ')} |`;
  const out = [
    '# Evaluation',
    '',
    e.scope,
    '',
    `Overlap in %, distances in mm, NSD in % at ${e.toleranceMm} mm; prediction voxels at or above ${e.threshold} are lesion.`,
    '',
    md(HEAD),
    md(HEAD.map((_, i) => (i === 0 ? '---' : '---:'))),
    ...rowsOf(e).map((r) => md(cells(r))),
    '',
    `Slices: ${counts(p.sliceSurface, 'slice')}.${p.caseSurface ? ` Cases: ${counts(p.caseSurface, 'case')}.` : ''}`,
    '',
    '## Lesion classes found',
    '',
    ...(p.classes.length
      ? [
          md(['class', 'label', 'voxels', 'in the predicted mask', 'sensitivity %']),
          md(['---', '---:', '---:', '---:', '---:']),
          ...p.classes.map((k) => md([k.name, String(k.label), String(k.voxels), String(k.found), pct(k.sensitivity)])),
        ]
      : [`Per class: ${CLASSES_UNKNOWN}.`]),
    '',
    '## Definitions',
    '',
    ...evaluationDefinitions(e.labelsAs, e.toleranceMm).map((d) => `- ${d}`),
  ];
  if (e.notes.length) out.push('', '## Notes', '', ...e.notes.map((n) => `- ${n}`));
  return out.join('\n') + '\n';
}

