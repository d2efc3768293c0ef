// What a segmented volume gives its user, built in one place for both `predict` (which writes it
// to files: prediction-files.ts) and the web page (which shows it and offers it for download):
// the mask and probability images with the input's geometry, the lesion report (over a lung mask,
// else the lungs found in the image, else the body), its CSV and JSON, the slice pictures, and
// the files' names.
// Browser-safe.

import { encodeNifti, type NiftiImage, type NiftiSpace, type Volume } from './data/nifti';
import { bodyMask, lesionCsv, lesionReport, type BurdenReference, type LesionReport } from './lesions';
import { volumeLungMask } from './lungs';
import type { ModelConfig } from './model';
import { displayFlips, overlayPng, type OverlayStyle } from './overlay';
import { thresholdMask, type VolumePrediction } from './predict';

/** A lung mask on the input's grid (x fastest, the file's layout), and where it came from. */
export interface LungRegion {
  source: string;
  voxels: Uint8Array;
}

/** Everything the user gets for one segmented volume; see {@link predictionReport}. */
export interface PredictionReport {
  /** The input volume. */
  volume: Volume;
  /** The network's probabilities and the mask at `prediction.threshold`, in the input's layout. */
  prediction: VolumePrediction;
  /** What the burden is measured against. */
  reference: BurdenReference;
  /** The lung mask's file, when the burden is over a lung mask. */
  lungSource?: string;
  /** The region the burden is measured against (the lung mask, the lungs or the body found in
   *  the image), kept so that a new threshold does not look for them again. */
  region: Uint8Array;
  /** Lesion area and burden per slice (planes of the file's third axis) and for the volume. */
  lesions: LesionReport;
}

/**
 * The report of a prediction on `volume`: burden over `lung` when given; else over the lungs
 * found in the image ({@link volumeLungMask}, 'computed-lung'); else, where that finds no lung in
 * any slice (not a chest CT), over the body found in the image ({@link bodyMask}).
 */
export function predictionReport(volume: Volume, prediction: VolumePrediction, o: { lung?: LungRegion } = {}): PredictionReport {
  const [nx, ny, nz] = volume.dims;
  let reference: BurdenReference = 'lung';
  let region = o.lung?.voxels;
  if (!region) {
    region = volumeLungMask(volume, {}, prediction.image);
    reference = 'computed-lung';
    if (!region.includes(1)) {
      region = bodyMask(prediction.image, nx, ny, nz);
      reference = 'body';
    }
  }
  return {
    volume,
    prediction,
    reference,
    ...(o.lung ? { lungSource: o.lung.source } : {}),
    region,
    lesions: lesionReport(prediction.mask, region, volume.dims, volume.space, reference),
  };
}

/** The same report at another threshold: the probabilities re-thresholded, no network run. */
export function withThreshold(r: PredictionReport, threshold: number): PredictionReport {
  const prediction = { ...r.prediction, threshold, mask: thresholdMask(r.prediction.probabilities, threshold) };
  return { ...r, prediction, lesions: lesionReport(prediction.mask, r.region, r.volume.dims, r.volume.space, r.reference) };
}

/**
 * The input file's own dimensions: [nx, ny] for a 2-D file (one slice, dim[0] = 2), [nx, ny, nz]
 * for a 3-D one (and for a 4-D one whose fourth dimension is 1, written back as 3-D).
 */
export function storedDims(volume: Volume): number[] {
  return volume.dims.slice(0, Math.min(3, volume.rank ?? 3));
}

/**
 * The lesion mask as `predict` writes it and the page downloads it: uint8, with the input's
 * dimensions and spatial header (`space`, e.g. the page's display space, replaces the latter).
 */
export function lesionMaskImage(volume: Volume, mask: Uint8Array, space: NiftiSpace = volume.space): NiftiImage {
  return { dims: storedDims(volume), data: mask, datatype: 'uint8', space, description: 'aunet lesion mask' };
}

/** The report's mask as a NIfTI image (see {@link lesionMaskImage}). */
export function maskImage(r: PredictionReport, space: NiftiSpace = r.volume.space): NiftiImage {
  return lesionMaskImage(r.volume, r.prediction.mask, space);
}

/** The report's mask as NIfTI-1 bytes (not gzipped): the file `predict` writes, as the page downloads it. */
export function maskNifti(r: PredictionReport, space: NiftiSpace = r.volume.space): Uint8Array {
  return encodeNifti(maskImage(r, space));
}

/** The lesion probabilities as a NIfTI image: float32, the input's dimensions and geometry. */
export function probabilitiesImage(r: PredictionReport): NiftiImage {
  return { dims: storedDims(r.volume), data: r.prediction.probabilities, datatype: 'float32', space: r.volume.space, description: 'aunet lesion probability' };
}

/** The lesion report as CSV: a row per slice, then the volume's. */
export function reportCsv(r: PredictionReport): string {
  return lesionCsv(r.lesions);
}

/** How a prediction was made, for the JSON report. */
export interface PredictionRun {
  /** The input file, as given. */
  input: string;
  checkpoint: string;
  epoch: number;
  model: ModelConfig;
  tta: boolean;
  /** Seconds the prediction took. */
  seconds: number;
  /** sha256 of the input (see predictionInputHash in prediction-files.ts) and of the checkpoint
   *  file: with them the JSON says which input and model its outputs are of, so that the batch
   *  service completes a job whose outputs exist without recomputing. Node-only callers set them. */
  inputSha256?: string;
  modelSha256?: string;
  /** The outputs written beside the mask, so that outputs of other options are not taken for these. */
  outputs?: { probabilities: boolean; pictures: string };
}

/** Slices the network segmented: along the header's slice axis. */
export const segmentedSlices = (r: PredictionReport) => r.volume.dims[r.volume.sliceAxis];

/** What the burden is over, in the JSON: the mask's file, or how the region was found. */
const BURDEN_REFERENCE_JSON: Record<BurdenReference, (r: PredictionReport) => string> = {
  lung: (r) => `lung mask ${r.lungSource}`,
  'computed-lung': () => 'lungs found in the image (air threshold, outside air dropped, large enclosed components, holes filled, closed): an approximation; the aunet README gives its agreement with the shipped lung masks',
  body: () => 'body, found in the image (pixels above air, holes filled): no lungs were found in the image',
};

/** The lesion report as `predict` writes it in NAME_lesions.json (NaN burdens as null). */
export function reportJson(r: PredictionReport, run: PredictionRun): Record<string, unknown> {
  const nullNaN = (v: number) => (Number.isNaN(v) ? null : v);
  const l = r.lesions;
  return {
    input: run.input,
    checkpoint: run.checkpoint,
    epoch: run.epoch,
    model: run.model,
    tta: run.tta,
    ...(run.inputSha256 && { inputSha256: run.inputSha256 }),
    ...(run.modelSha256 && { modelSha256: run.modelSha256 }),
    ...(run.outputs && { outputs: run.outputs }),
    threshold: r.prediction.threshold,
    intensity: r.prediction.intensity,
    burdenReference: BURDEN_REFERENCE_JSON[r.reference](r),
    seconds: run.seconds,
    secondsPerSlice: run.seconds / segmentedSlices(r),
    ...l,
    slices: l.slices.map((s) => ({ ...s, burden: nullNaN(s.burden) })),
    volume: { ...l.volume, burden: nullNaN(l.volume.burden) },
  };
}

/**
 * The slice pictures, one a plane of the file's third axis, in order: the slice in grey with the
 * lesions in red, turned into the radiological view by the header's orientation.
 */
export function* slicePictures(r: PredictionReport, style: OverlayStyle): Generator<{ name: string; png: Uint8Array }> {
  const [nx, ny, nz] = r.volume.dims;
  const { image, mask } = r.prediction;
  const flips = displayFlips(r.volume.space);
  const plane = nx * ny;
  const digits = Math.max(3, String(nz - 1).length);
  for (let k = 0; k < nz; k++) {
    const png = overlayPng(image.subarray(k * plane, (k + 1) * plane), mask.subarray(k * plane, (k + 1) * plane), nx, ny, style, flips);
    yield { name: `slice_${String(k).padStart(digits, '0')}.png`, png };
  }
}

/** The names of the outputs for an input named `stem` (a path prefix for `predict`, a name on the page). */
export function predictionFileNames(stem: string) {
  return {
    mask: `${stem}_lesions.nii.gz`,
    probabilities: `${stem}_probabilities.nii.gz`,
    csv: `${stem}_lesions.csv`,
    json: `${stem}_lesions.json`,
    /** The folder of the slice pictures. */
    pictures: `${stem}_png`,
  };
}
