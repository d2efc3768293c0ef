// Every score of a binary lesion mask against a label volume that tells the lesion classes
// apart: per slice (overlap, and surface distances in the slice's plane), per case (overlap over
// every voxel, surface distances in 3-D), pooled over cases, and for each lesion class how much
// of it the mask finds. What `evaluate --pred` and `evaluate --checkpoint` report. Browser-safe.

import { overlapScores, type Confusion, type OverlapScores } from './metrics';
import { surfaceScores, type SurfaceScores } from './surface-metrics';

/** The lesion classes of MedSeg's labels (0 is background). */
export const LESION_CLASSES = [
  { label: 1, name: 'ground glass' },
  { label: 2, name: 'consolidation' },
  { label: 3, name: 'pleural effusion' },
] as const;

/**
 * What counts as lesion in the labels: `lesion`, every class (1-3) merged, as the paper and the
 * trainer take them; `lung-lesion`, ground glass and consolidation only: pleural effusion (3),
 * which lies outside the lung, counts as background.
 */
export type LabelsAs = 'lesion' | 'lung-lesion';
export const LABELS_AS: readonly LabelsAs[] = ['lesion', 'lung-lesion'];

/** The NSD tolerance `evaluate` uses when none is given, in mm. */
export const DEFAULT_TOLERANCE_MM = 1;

/** The class of a label value: labels are whole numbers, stored values are rounded (a resampled file). */
const classOf = (v: number) => (v > 0.5 ? Math.round(v) : 0);

/** 1 where the label `labels` (class values, 0 background) is lesion under `labelsAs`, else 0. */
export function lesionOfLabels(labels: ArrayLike<number>, labelsAs: LabelsAs): Uint8Array {
  const out = new Uint8Array(labels.length);
  for (let i = 0; i < out.length; i++) {
    const c = classOf(labels[i]);
    out[i] = c > 0 && !(labelsAs === 'lung-lesion' && c === 3) ? 1 : 0;
  }
  return out;
}

/** How much of one lesion class the mask covers. */
export interface ClassFound {
  label: number;
  name: string;
  /** Voxels of this class in the labels. */
  voxels: number;
  /** Of those, voxels inside the predicted mask. */
  found: number;
  /** found / voxels: the class's sensitivity; NaN when the labels hold none of it. */
  sensitivity: number;
}

/** One slice's scores: overlap over its pixels, surface distances in its plane (mm). */
export interface SliceScores extends OverlapScores, SurfaceScores, Confusion {
  slice: number;
  lesionPixels: number;
  predictedPixels: number;
}

/** Means over slices or cases: each score over those where it is a finite number (see {@link SurfaceCounts}). */
export type MeanScores = OverlapScores & SurfaceScores;

/**
 * How many slices (or cases) had a lesion in both prediction and labels (every surface score a
 * number), in one of them only (HD95, HD and ASD infinite, NSD 0), in neither (surface scores
 * undefined). The means of HD95, HD and ASD are over the first kind; of NSD over the first two.
 */
export interface SurfaceCounts {
  both: number;
  oneSide: number;
  neither: number;
}

/** Every score of one case. */
export interface CaseReport {
  name: string;
  /** Where the prediction and the labels came from (files), for the report. */
  prediction: string;
  labels: string;
  /** Width and height of the slices as cut, and how many were scored. */
  width: number;
  height: number;
  /** Pixel size of the slices (across, down) and the slice spacing, mm. */
  pixelMm: [number, number];
  sliceMm: number | null;
  confusion: Confusion;
  /** Overlap over every voxel of the scored slices. */
  overlap: OverlapScores;
  /** Surface scores of the case as one 3-D volume (voxel spacing from the header); null when
   *  the scored slices are not a whole volume (a checkpoint's test slices). */
  surface: SurfaceScores | null;
  /** Per lesion class; empty when the label classes are not known (see CaseSlices.classesKnown). */
  classes: ClassFound[];
  slices: SliceScores[];
  /** Means over the slices (see {@link MeanScores}) and the counts behind the surface means. */
  perSliceMean: MeanScores;
  sliceSurface: SurfaceCounts;
}

/** What {@link scoreCase} scores: slices of one case as a stack (slice slowest). */
export interface CaseSlices {
  name: string;
  prediction: string;
  labels: string;
  /** 1 where lesion is predicted, 0 elsewhere, per voxel of the stack. */
  pred: Uint8Array;
  /** Label class values per voxel of the stack (0 background, 1-3 lesion classes). */
  labelValues: ArrayLike<number>;
  width: number;
  height: number;
  /** The number of each slice of the stack in its volume, for the report. */
  slices: number[];
  /** Pixel size (across, down) in mm. */
  pixelMm: [number, number];
  /** The slice spacing in mm when the stack is a whole volume (3-D surface scores are computed), else null. */
  sliceMm: number | null;
  labelsAs: LabelsAs;
  toleranceMm: number;
  /** False when `labelValues` hold only 0/1 lesion (the classes could not be read): no
   *  per-class figures, and `labelsAs` must be `lesion`. Default true. */
  classesKnown?: boolean;
}

function countConfusion(pred: Uint8Array, lesion: Uint8Array, from: number, to: number): Confusion {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = from; i < to; i++) {
    const p = pred[i] !== 0;
    if (p && lesion[i]) tp++;
    else if (p) fp++;
    else if (lesion[i]) fn++;
  }
  return { tp, fp, fn, tn: to - from - tp - fp - fn };
}

const sumConfusion = (cs: Confusion[]): Confusion =>
  cs.reduce((t, c) => ({ tp: t.tp + c.tp, fp: t.fp + c.fp, fn: t.fn + c.fn, tn: t.tn + c.tn }), { tp: 0, fp: 0, fn: 0, tn: 0 });

const SCORE_KEYS = ['dice', 'iou', 'sensitivity', 'specificity', 'precision', 'hd95', 'hd', 'asd', 'nsd'] as const;

/** The mean of each score over `rows`, each over the rows where it is finite (NaN: undefined;
 *  Infinity: a surface on one side only, counted in {@link surfaceCounts}); NaN when none is. */
export function meanScores(rows: (OverlapScores & SurfaceScores)[]): MeanScores {
  const mean = (k: (typeof SCORE_KEYS)[number]) => {
    const v = rows.map((r) => r[k]).filter(Number.isFinite);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
  };
  return Object.fromEntries(SCORE_KEYS.map((k) => [k, mean(k)])) as unknown as MeanScores;
}

/** How many of `rows` had a lesion on both sides, on one, on neither (from their HD95). */
export function surfaceCounts(rows: SurfaceScores[]): SurfaceCounts {
  const c: SurfaceCounts = { both: 0, oneSide: 0, neither: 0 };
  for (const r of rows) {
    if (Number.isNaN(r.hd95)) c.neither++;
    else if (r.hd95 === Infinity) c.oneSide++;
    else c.both++;
  }
  return c;
}

/** Per lesion class, its voxels in the labels and those of them the mask covers. */
function classCounts(pred: Uint8Array, labels: ArrayLike<number>): { voxels: number[]; found: number[] } {
  const voxels = LESION_CLASSES.map(() => 0);
  const found = LESION_CLASSES.map(() => 0);
  for (let i = 0; i < labels.length; i++) {
    const c = classOf(labels[i]);
    if (c < 1 || c > LESION_CLASSES.length) continue;
    voxels[c - 1]++;
    if (pred[i] !== 0) found[c - 1]++;
  }
  return { voxels, found };
}

const classesFound = (voxels: number[], found: number[]): ClassFound[] =>
  LESION_CLASSES.map(({ label, name }, i) => ({ label, name, voxels: voxels[i], found: found[i], sensitivity: voxels[i] ? found[i] / voxels[i] : NaN }));

/**
 * Every score of one case: per slice (overlap, and HD95 / HD / ASD / NSD in the slice's plane
 * with its pixel size), over every voxel, in 3-D when `sliceMm` is given, and per lesion class.
 */
export function scoreCase(c: CaseSlices): CaseReport {
  const plane = c.width * c.height;
  if (c.pred.length !== c.slices.length * plane || c.labelValues.length !== c.pred.length) {
    throw new Error(`scoreCase: ${c.pred.length} predicted and ${c.labelValues.length} label voxels for ${c.slices.length} slices of ${c.width}x${c.height}`);
  }
  const classesKnown = c.classesKnown ?? true;
  if (!classesKnown && c.labelsAs !== 'lesion') throw new Error(`${c.labels}: the label classes are not known, so lesion cannot be taken as ${c.labelsAs}`);
  const lesion = lesionOfLabels(c.labelValues, c.labelsAs);
  const slices: SliceScores[] = c.slices.map((slice, k) => {
    const from = k * plane;
    const confusion = countConfusion(c.pred, lesion, from, from + plane);
    const surface = surfaceScores(c.pred.subarray(from, from + plane), lesion.subarray(from, from + plane), [c.width, c.height], c.pixelMm, c.toleranceMm);
    return { slice, ...confusion, lesionPixels: confusion.tp + confusion.fn, predictedPixels: confusion.tp + confusion.fp, ...overlapScores(confusion), ...surface };
  });
  const confusion = sumConfusion(slices);
  const { voxels, found } = classesKnown ? classCounts(c.pred, c.labelValues) : { voxels: [], found: [] };
  return {
    name: c.name,
    prediction: c.prediction,
    labels: c.labels,
    width: c.width,
    height: c.height,
    pixelMm: c.pixelMm,
    sliceMm: c.sliceMm,
    confusion,
    overlap: overlapScores(confusion),
    surface: c.sliceMm === null ? null : volumeSurface(c, lesion, slices),
    classes: classesKnown ? classesFound(voxels, found) : [],
    slices,
    perSliceMean: meanScores(slices),
    sliceSurface: surfaceCounts(slices),
  };
}

/** The 3-D surface scores of a whole volume; a volume of one slice has its slice's. */
function volumeSurface(c: CaseSlices, lesion: Uint8Array, slices: SliceScores[]): SurfaceScores {
  if (slices.length === 1) return { hd95: slices[0].hd95, hd: slices[0].hd, asd: slices[0].asd, nsd: slices[0].nsd };
  return surfaceScores(c.pred, lesion, [c.width, c.height, c.slices.length], [...c.pixelMm, c.sliceMm as number], c.toleranceMm);
}

/** Scores over several cases. */
export interface PooledReport {
  cases: number;
  slices: number;
  /** Overlap of the counts summed over every voxel of every case. */
  confusion: Confusion;
  overlap: OverlapScores;
  /** Per-class counts summed over the cases whose classes are known (empty when none). */
  classes: ClassFound[];
  /** Means over every slice of every case, and over the cases (their 3-D surface scores; null
   *  when no case has them), with the counts behind the surface means. */
  perSliceMean: MeanScores;
  sliceSurface: SurfaceCounts;
  perCaseMean: MeanScores | null;
  caseSurface: SurfaceCounts | null;
}

/** The scores of `cases` pooled: counts summed, means over slices and over cases. */
export function poolCases(cases: CaseReport[]): PooledReport {
  const confusion = sumConfusion(cases.map((c) => c.confusion));
  const slices = cases.flatMap((c) => c.slices);
  const known = cases.filter((c) => c.classes.length);
  const sum = (i: number, k: 'voxels' | 'found') => known.reduce((s, c) => s + c.classes[i][k], 0);
  const withSurface = cases.filter((c) => c.surface !== null);
  const caseRows = withSurface.map((c) => ({ ...c.overlap, ...(c.surface as SurfaceScores) }));
  return {
    cases: cases.length,
    slices: slices.length,
    confusion,
    overlap: overlapScores(confusion),
    classes: known.length ? classesFound(LESION_CLASSES.map((_, i) => sum(i, 'voxels')), LESION_CLASSES.map((_, i) => sum(i, 'found'))) : [],
    perSliceMean: meanScores(slices),
    sliceSurface: surfaceCounts(slices),
    perCaseMean: caseRows.length ? meanScores(caseRows) : null,
    caseSurface: caseRows.length ? surfaceCounts(caseRows) : null,
  };
}
