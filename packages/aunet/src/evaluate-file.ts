// What `evaluate` runs, on files. A checkpoint file scored on the test slices of its own split
// (or, for a model trained on all slices, on every slice of the data given): what the ablation
// and cross-validation also call. And predictions from any source (NIfTI files, or folders of
// them matched by name) scored against label volumes with no checkpoint. Both give every score
// of mask-scores.ts; the report files are written here. Node-only.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '@aunet/nn';
import { allSlicesDataWarning, checkSameData, DATA_KEY } from './checkpoint';
import { splitFor, type TrainConfig } from './config';
import { resizeDataset, slicesOf, type SliceDataset } from './data/dataset';
import { DataError } from './data/errors';
import { datasetImage, loadDataset, maskOnImageGrid, readLungMask, readVolume } from './data/files';
import { voxelToWorld } from './data/space';
import { toSliceStack, type Volume } from './data/nifti';
import { resizeBilinear } from './data/transforms';
import { scoreSlices, type EvaluationReport, type Region } from './evaluate';
import { removeSmallComponents, voxelSizeMm } from './lesions';
import { COMPUTED_LUNGS_SOURCE, sliceLungMasks } from './lungs';
import { maskEvaluationCsv, maskEvaluationJson, maskEvaluationMarkdown, type MaskEvaluation } from './mask-report';
import { DEFAULT_TOLERANCE_MM, lesionOfLabels, poolCases, scoreCase, type CaseReport, type LabelsAs } from './mask-scores';
import { mirroredTTA, modelPredictor, predictProbabilities } from './predict';
import { loadRunCheckpoint } from './run-folder';

/** Prediction voxels at or above this are lesion: masks hold 0/1, probability maps are cut at one half (as `predict` cuts them). */
export const PREDICTION_THRESHOLD = 0.5;

/** What counts as lesion and the NSD tolerance, for both kinds of evaluation. */
export interface ScoringOptions {
  /** Default `lesion`: every label class merged (see LabelsAs). */
  labelsAs?: LabelsAs;
  /** NSD tolerance in mm (default {@link DEFAULT_TOLERANCE_MM}). */
  toleranceMm?: number;
}

export interface CheckpointEvaluationOptions extends ScoringOptions {
  /** The data folder (default: the one the run was trained on). */
  data?: string;
  /** The mean over the four mirrorings (see mirroredTTA). */
  tta?: boolean;
  /** A lung mask volume of the data's shape: predictions outside it count as background. */
  lungMask?: string;
  /** Without `lungMask`: predictions outside the lungs found in each image slice (lungs.ts)
   *  count as background. */
  computedLungs?: boolean;
  /** Remove predicted lesions (8-connected) of fewer pixels than this at the data's resolution. */
  minLesionPixels?: number;
  /** The slices scored: the split's test slices (default) or its validation slices, on which
   *  post-processing such as `minLesionPixels` is chosen without looking at the test slices. */
  part?: 'test' | 'val';
  /** Hears what is about to be scored, once the checkpoint and the data are read. */
  onStart?: (e: Omit<CheckpointEvaluation, 'report' | 'scores'> & { testSlices: number }) => void;
  onProgress?: (done: number, total: number) => void;
}

export interface CheckpointEvaluation {
  checkpoint: string;
  epoch: number;
  config: TrainConfig;
  data: string;
  /** Set when the data are not those the run was trained on, or (a model trained on all slices)
   *  may be the very slices it was trained on. */
  warning: string | null;
  /** Dice, sensitivity and specificity at the model's and the original resolution (the paper's figures). */
  report: EvaluationReport;
  /** Every score at the original resolution, per slice (surfaces in the slice's plane) and over
   *  the slices, with the lesion classes found: the report `evaluate --pred` gives, for one case. */
  scores: MaskEvaluation;
}

/** Whether a label file holds a voxel per voxel of an image of `dims` (same dims). */
const sameGrid = (vol: Volume, dims: readonly number[]) => vol.dims.length === dims.length && vol.dims.every((d, i) => d === dims[i]);

/** The label volume of a run of a dataset's slices: a case's, or the one volume's (all slices). */
interface LabelPart {
  name: string;
  labels: string;
  first: number;
  count: number;
  fileDims: [number, number, number];
  sliceAxis: 0 | 1 | 2;
  volume?: Volume;
  classesKnown?: boolean;
}

/** Each case of `ds` with its label file, or the one volume as one part. */
function labelParts(ds: SliceDataset): LabelPart[] {
  if (ds.cases) return ds.cases.map((c) => ({ name: c.name, labels: c.maskSource, first: c.first, count: c.count, fileDims: c.fileDims, sliceAxis: c.sliceAxis }));
  return [{ name: basename(ds.maskSource), labels: ds.maskSource, first: 0, count: ds.count, fileDims: ds.fileDims, sliceAxis: ds.sliceAxis }];
}

/** A float32 header value as the shortest decimal that reads back as it (0.8, not 0.800000011920929): what was written. */
function float32Decimal(v: number): number {
  for (let digits = 1; digits < 9; digits++) {
    const d = Number(v.toPrecision(digits));
    if (Math.fround(d) === v) return d;
  }
  return v;
}

/** The voxel size of a header in mm (see voxelSizeMm), each as written (see float32Decimal). */
function voxelMmOf(vol: Volume): [number, number, number] {
  const [x, y, z] = voxelSizeMm(vol.space).voxelMm;
  return [float32Decimal(x), float32Decimal(y), float32Decimal(z)];
}

/** The pixel size (across, down) of the slices cut along `sliceAxis` (see toSliceStack), and the spacing between them, in mm. */
function stackSpacing(voxelMm: [number, number, number], sliceAxis: 0 | 1 | 2): { pixelMm: [number, number]; sliceMm: number } {
  const [x, y, z] = voxelMm;
  if (sliceAxis === 2) return { pixelMm: [x, y], sliceMm: z };
  return sliceAxis === 0 ? { pixelMm: [y, z], sliceMm: x } : { pixelMm: [x, z], sliceMm: y };
}

const voxelText = (v: number[]) => v.map((s) => +s.toPrecision(4)).join(' x ');

/** A note when a header gives no spatial unit: its voxel size is taken as mm (MedSeg's files: 1 x 1 x 1, no unit). */
function unitNote(vol: Volume): string | null {
  return voxelSizeMm(vol.space).unitsKnown ? null : `${vol.source}: the header gives no spatial unit (or no voxel size); its voxel size ${voxelText(voxelMmOf(vol))} is taken as mm`;
}

/**
 * The model of the checkpoint `file` on the test slices of its split (the seed, fraction and
 * fold stored in it), at the model's and the original resolution. A model trained on all slices
 * (`allSlices`, as the shipped one) held none out: it is scored on every slice of the data, any
 * number of them, with a warning when they have the shape of those it was trained on. Slices are
 * the network's unit: surface scores are per slice, in its plane (no 3-D figures).
 */
export async function evaluateCheckpoint(file: string, o: CheckpointEvaluationOptions = {}): Promise<CheckpointEvaluation> {
  const labelsAs = o.labelsAs ?? 'lesion';
  const toleranceMm = o.toleranceMm ?? DEFAULT_TOLERANCE_MM;
  const { config, model, epoch, metadata } = await loadRunCheckpoint(file);
  try {
    const data = o.data ?? config.data;
    let ds = await loadDataset(data);
    const warning = config.allSlices ? allSlicesDataWarning(metadata[DATA_KEY], ds, file) : checkSameData(metadata[DATA_KEY], ds, file);
    // The dataset's masks merge the classes; the classes themselves come from the label files
    // again, one per case (a dataset of several cases) or the one volume's.
    const plane = ds.width * ds.height;
    const parts = labelParts(ds);
    const labelSlices: Float32Array[] = [];
    for (const part of parts) {
      const labelVolume = readVolume(part.labels);
      const stored = sameGrid(labelVolume, part.fileDims) ? slicesOf(toSliceStack(labelVolume.data, part.fileDims, part.sliceAxis).data, plane) : null;
      // The file's voxels in the dataset's order, or (a mask that loadDataset reordered onto a DICOM
      // series' grid) not: then only the merged lesion is known.
      part.classesKnown = stored !== null && stored.length === part.count && stored.every((l, k) => l.every((v, i) => (v > 0.5 ? 1 : 0) === ds.masks[part.first + k][i]));
      part.volume = labelVolume;
      for (let k = 0; k < part.count; k++) labelSlices.push(part.classesKnown ? stored![k] : Float32Array.from(ds.masks[part.first + k]));
    }
    const unknown = parts.find((p) => !p.classesKnown);
    if (unknown && labelsAs !== 'lesion') {
      throw new DataError(`--labels-as ${labelsAs} needs the label classes, but the voxels of ${unknown.labels} are not those of the slices scored, in order: score with --labels-as lesion`, unknown.labels);
    }
    if (labelsAs !== 'lesion') {
      const masks = labelSlices.map((l) => lesionOfLabels(l, labelsAs));
      ds = { ...ds, masks, lesionPixels: masks.map((m) => m.reduce((s, v) => s + v, 0)) };
    }
    let region: Region | undefined;
    if (o.lungMask !== undefined) region = { source: o.lungMask, masks: readLungMask(o.lungMask, datasetImage(ds)).slices };
    else if (o.computedLungs) region = { source: COMPUTED_LUNGS_SOURCE, masks: sliceLungMasks(ds.images, ds.width, ds.height) };
    const part = o.part ?? 'test';
    if (part === 'val' && config.allSlices) throw new Error(`${file} was trained on all slices: it has no validation slices to score`);
    const test = config.allSlices ? Array.from({ length: ds.count }, (_, i) => i) : splitFor(config, ds.count, ds.cases)[part];
    o.onStart?.({ checkpoint: file, epoch, config, data, warning, testSlices: test.length });
    o.onProgress?.(0, test.length);
    // evaluateSlices (evaluate.ts) in two steps, to keep the probabilities for the full scores.
    const size = config.model.inputSize;
    const resized = resizeDataset(ds, size);
    const images = test.map((i) => resized.images[i]);
    let probs: Float32Array[];
    if (o.tta) {
      probs = await mirroredTTA(modelPredictor(model, config.batch)).predict(images);
      o.onProgress?.(images.length, test.length);
    } else {
      probs = await predictProbabilities(model, images, config.batch, (n) => o.onProgress?.(n, test.length));
    }
    const minLesionPixels = o.minLesionPixels ?? 0;
    const report = scoreSlices(probs, size, ds, resized.masks, test, PREDICTION_THRESHOLD, region, minLesionPixels);
    // At the original resolution as scoreSlices scores it: resized back bilinearly, cut, inside the
    // region; scored per case (each with its own voxel size), a single volume being one case.
    const cut = new Map<number, Uint8Array>();
    test.forEach((slice, j) => {
      const full = size === ds.height && size === ds.width ? probs[j] : resizeBilinear(probs[j], size, size, ds.height, ds.width);
      const inside = region?.masks[slice];
      const mask = new Uint8Array(plane);
      for (let i = 0; i < plane; i++) mask[i] = full[i] >= PREDICTION_THRESHOLD && (!inside || inside[i]) ? 1 : 0;
      cut.set(slice, removeSmallComponents(mask, ds.width, ds.height, minLesionPixels));
    });
    const cases: CaseReport[] = [];
    const notes: string[] = [];
    for (const part of parts) {
      // The part's test slices, numbered as in the dataset (one volume) or within the case.
      const own = test.filter((slice) => slice >= part.first && slice < part.first + part.count);
      if (!own.length) continue;
      const pred = new Uint8Array(own.length * plane);
      const labelValues = new Float32Array(own.length * plane); // classes, or 0/1 when they are not known
      own.forEach((slice, j) => {
        pred.set(cut.get(slice)!, j * plane);
        labelValues.set(labelSlices[slice], j * plane);
      });
      const { pixelMm } = stackSpacing(voxelMmOf(part.volume!), part.sliceAxis);
      cases.push(scoreCase({
        name: part.name, prediction: `${file} (epoch ${epoch})`, labels: part.labels,
        pred, labelValues, width: ds.width, height: ds.height, slices: own.map((slice) => slice - part.first), pixelMm, sliceMm: null, labelsAs, toleranceMm,
        classesKnown: part.classesKnown,
      }));
      const unit = unitNote(part.volume!);
      if (unit) notes.push(unit);
      if (!part.classesKnown) notes.push(`${part.labels}: its voxels are not those of the slices scored, in order (a mask reordered onto its image's grid): the lesion classes are not reported`);
    }
    const scores: MaskEvaluation = {
      scope:
        `${file} (epoch ${epoch}) on ${config.allSlices ? 'every slice' : `the ${test.length} ${part === 'val' ? 'validation' : 'test'} slices`}${ds.cases ? ` (${cases.length} case${cases.length === 1 ? '' : 's'})` : ''} of ${data}, ` +
        `at ${ds.height}x${ds.width}${o.tta ? ', mean over 4 mirrorings' : ''}${region ? `, predictions inside ${region.source}` : ''}${minLesionPixels > 1 ? `, lesions under ${minLesionPixels} pixels removed` : ''}`,
      labelsAs, toleranceMm, threshold: PREDICTION_THRESHOLD, pooled: poolCases(cases), cases,
      notes: [warning, ...notes].filter((n): n is string => n !== null),
    };
    return { checkpoint: file, epoch, config, data, warning, report, scores };
  } finally {
    model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Predictions from any source against labels.

/** A prediction file and the label file it is scored against. */
export interface PredictionPair {
  name: string;
  prediction: string;
  labels: string;
}

const NIFTI = /\.nii(\.gz)?$/i;
const stemOf = (file: string) => basename(file).replace(NIFTI, '');
/** The suffix `predict` gives its masks (NAME_lesions.nii.gz): such a file matches the label NAME. */
const PREDICT_SUFFIX = '_lesions';

function kindOf(path: string, flag: string): 'file' | 'folder' {
  if (!existsSync(path)) throw new DataError(`${flag} ${path} does not exist. Pass a .nii or .nii.gz file, or a folder of them.`, path);
  return statSync(path).isDirectory() ? 'folder' : 'file';
}

function niftiFiles(dir: string, flag: string): string[] {
  const files = readdirSync(dir).filter((f) => NIFTI.test(f) && statSync(join(dir, f)).isFile()).sort();
  if (!files.length) throw new DataError(`${flag} ${dir} holds no .nii or .nii.gz file.`, dir);
  return files.map((f) => join(dir, f));
}

const listed = (names: string[]) => (names.length > 5 ? `${names.slice(0, 5).join(', ')} and ${names.length - 5} more` : names.join(', '));

/**
 * The prediction and label files to score: two files, or two folders whose NIfTI files are
 * matched by name (a prediction is named as its label, or NAME_lesions as `predict` names its
 * masks). Every label needs a prediction (DataError listing those without); predictions with no
 * label of their name are returned in `unmatched`, not scored.
 */
export function pairPredictions(pred: string, labels: string): { pairs: PredictionPair[]; unmatched: string[] } {
  const predKind = kindOf(pred, '--pred');
  const labelKind = kindOf(labels, '--labels');
  if (predKind !== labelKind) {
    throw new DataError(`--pred and --labels must both be files or both folders: ${pred} is a ${predKind}, ${labels} a ${labelKind}.`, pred);
  }
  if (predKind === 'file') return { pairs: [{ name: stemOf(labels), prediction: pred, labels }], unmatched: [] };
  const preds = new Map(niftiFiles(pred, '--pred').map((f) => [stemOf(f), f]));
  const pairs: PredictionPair[] = [];
  const missing: string[] = [];
  for (const label of niftiFiles(labels, '--labels')) {
    const name = stemOf(label);
    const prediction = preds.get(name) ?? preds.get(name + PREDICT_SUFFIX);
    if (prediction) pairs.push({ name, prediction, labels: label });
    else missing.push(basename(label));
  }
  if (missing.length) {
    throw new DataError(
      `${pred} has no prediction for ${missing.length} of the ${missing.length + pairs.length} labels in ${labels} (${listed(missing)}): ` +
        `a prediction must be named as its label, or NAME${PREDICT_SUFFIX}.nii.gz as predict writes it.`,
      pred,
    );
  }
  const used = new Set(pairs.map((p) => p.prediction));
  return { pairs, unmatched: [...preds.values()].filter((f) => !used.has(f)).map((f) => basename(f)) };
}

/** Refuses a volume with NaN, infinite or negative values: labels and masks hold 0 and up. */
function checkValues(vol: Volume, what: string): void {
  let min = Infinity;
  let bad = 0;
  for (let i = 0; i < vol.data.length; i++) {
    const v = vol.data[i];
    if (!Number.isFinite(v)) bad++;
    else if (v < min) min = v;
  }
  if (bad || min < 0) {
    throw new DataError(
      `${vol.source} does not look like ${what}: it holds ${bad ? `${bad} NaN or infinite values` : `negative values (down to ${min})`}. Check that it is not a CT image.`,
      vol.source,
    );
  }
}

export interface PredictionEvaluationOptions extends ScoringOptions {
  /** Hears each case before it is scored (1-based). */
  onCase?: (pair: PredictionPair, done: number, total: number) => void;
}

/** One prediction file against its label file: every score, per slice and in 3-D; notes on what differs. */
export function scorePredictionFile(pair: PredictionPair, labelsAs: LabelsAs, toleranceMm: number): { report: CaseReport; notes: string[] } {
  const labels = readVolume(pair.labels);
  const stored = readVolume(pair.prediction);
  const notes: string[] = [];
  // The label is the reference grid (its slice axis and voxel size are used): with an orientation
  // in both headers, the prediction is put on it (reordered when it holds the label's voxels in
  // another order, refused when it lies elsewhere); without, the voxels are taken as stored.
  const oriented = { labels: voxelToWorld(labels.space) !== null, pred: voxelToWorld(stored.space) !== null };
  const pred = oriented.labels && oriented.pred ? maskOnImageGrid(labels, stored, { image: 'its label', what: 'prediction' }) : stored;
  if (pred !== stored) notes.push(`${pair.prediction}: its voxels are those of ${pair.labels} in another order (as their headers place them): reordered onto the label's grid before scoring`);
  if (pred.dims.some((d, i) => d !== labels.dims[i])) {
    throw new DataError(`${pair.prediction} is ${pred.dims.join(' x ')} but ${pair.labels} is ${labels.dims.join(' x ')}: a prediction must be on its label's voxel grid.`, pair.prediction);
  }
  checkValues(labels, 'a label volume (0 background, 1-3 lesion classes)');
  checkValues(pred, 'a mask or a probability map');
  if (!oriented.labels || !oriented.pred) {
    const bare = [!oriented.pred && pair.prediction, !oriented.labels && pair.labels].filter((f): f is string => typeof f === 'string');
    notes.push(`${bare.join(' and ')} ha${bare.length > 1 ? 've' : 's'} no orientation (no sform or qform): the prediction's voxels are assumed to be in the label's voxel order, as stored`);
  }
  const voxel = voxelMmOf(labels);
  const predVoxel = voxelMmOf(pred);
  if (predVoxel.some((s, i) => Math.abs(s - voxel[i]) > 1e-3 * Math.max(s, voxel[i]))) {
    notes.push(`${pair.prediction}'s voxel size ${voxelText(predVoxel)} mm differs from ${pair.labels}'s ${voxelText(voxel)} mm: distances use the label's`);
  }
  const unit = unitNote(labels);
  if (unit) notes.push(unit);
  // Slices as the label's header cuts them (its slice axis), for the prediction too: one grid.
  const axis = labels.sliceAxis;
  const { data: labelValues, dims: [width, height, count] } = toSliceStack(labels.data, labels.dims, axis);
  const mask = new Uint8Array(pred.data.length);
  for (let i = 0; i < mask.length; i++) mask[i] = pred.data[i] >= PREDICTION_THRESHOLD ? 1 : 0;
  const { pixelMm, sliceMm } = stackSpacing(voxel, axis);
  const report = scoreCase({
    name: pair.name, prediction: pair.prediction, labels: pair.labels,
    pred: toSliceStack(mask, labels.dims, axis).data, labelValues, width, height,
    slices: Array.from({ length: count }, (_, k) => k), pixelMm, sliceMm, labelsAs, toleranceMm,
  });
  return { report, notes };
}

/** Every prediction of `pred` (a file or folder) scored against `labels` (the same kind): see {@link pairPredictions}. */
export function evaluatePredictions(pred: string, labels: string, o: PredictionEvaluationOptions = {}): MaskEvaluation {
  const labelsAs = o.labelsAs ?? 'lesion';
  const toleranceMm = o.toleranceMm ?? DEFAULT_TOLERANCE_MM;
  const { pairs, unmatched } = pairPredictions(pred, labels);
  const cases: CaseReport[] = [];
  const notes: string[] = [];
  pairs.forEach((pair, i) => {
    o.onCase?.(pair, i + 1, pairs.length);
    const r = scorePredictionFile(pair, labelsAs, toleranceMm);
    cases.push(r.report);
    notes.push(...r.notes);
  });
  if (unmatched.length) notes.push(`not scored, no label of their name in ${labels}: ${listed(unmatched)}`);
  return {
    scope: pairs.length === 1 && pairs[0].prediction === pred ? `${pred} against ${labels}` : `${pairs.length} predictions in ${pred} against their labels in ${labels}`,
    labelsAs, toleranceMm, threshold: PREDICTION_THRESHOLD, pooled: poolCases(cases), cases, notes,
  };
}

/** The names of the report files in a folder. */
export const MASK_REPORT_FILES = { csv: 'evaluation.csv', json: 'evaluation.json', markdown: 'evaluation.md' } as const;

/** Writes the report into `dir` (made if missing) as CSV, JSON and Markdown, each atomically; returns their paths. */
export async function writeMaskEvaluation(dir: string, e: MaskEvaluation): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const paths = { csv: join(dir, MASK_REPORT_FILES.csv), json: join(dir, MASK_REPORT_FILES.json), markdown: join(dir, MASK_REPORT_FILES.markdown) };
  await writeFileAtomic(paths.csv, maskEvaluationCsv(e));
  await writeJsonAtomic(paths.json, maskEvaluationJson(e));
  await writeFileAtomic(paths.markdown, maskEvaluationMarkdown(e));
  return [paths.csv, paths.json, paths.markdown];
}
