// Evaluation of a model on a set of slices: Dice, sensitivity and specificity pooled over every
// pixel and as the mean per slice, at the model's resolution and at the slices' original one.
// Browser-safe.

import { resizeDataset, type SliceDataset } from './data/dataset';
import { resizeBilinear, resizeNearest } from './data/transforms';
import { SegmentationMetrics, scores, type Scores } from './metrics';
import type { AUNet } from './model';
import { mirroredTTA, modelPredictor, predictProbabilities, thresholdMask } from './predict';
import { removeSmallComponents } from './lesions';

export interface ResolutionReport {
  /** Side (model) or height x width (original) the scores were computed at. */
  resolution: string;
  pooled: Scores;
  perSliceMean: Scores;
  perSlice: { slice: number; dice: number; sensitivity: number; specificity: number; lesionPixels: number; predictedPixels: number }[];
}

export interface EvaluationReport {
  slices: number[];
  threshold: number;
  /** Lesions (8-connected) of fewer pixels than this at the original resolution were removed
   *  before scoring (at the model's resolution, the same area in its pixels); absent: none. */
  minLesionPixels?: number;
  /** Where predictions were kept (a lung mask's file, or the lungs found in the image), when
   *  they were restricted to a region. */
  region?: string;
  model: ResolutionReport;
  original: ResolutionReport;
}

export interface EvaluateOptions {
  batch?: number;
  threshold?: number;
  tta?: boolean;
  /** Keep predictions inside this region only (see {@link scoreSlices}). */
  region?: Region;
  /** Remove predicted lesions smaller than this, in original pixels (see {@link scoreSlices}). */
  minLesionPixels?: number;
  onProgress?: (done: number) => void;
}

/** A region of every slice of a dataset, at its original resolution (a lung mask, or the lungs
 *  found in the images), and what it is. */
export interface Region {
  masks: Uint8Array[];
  source: string;
}

/**
 * Evaluate `model` on the slices `indices` of `ds`. `resized` holds the slices at the model's
 * input size (images for the network, nearest-resized masks for the model-resolution scores).
 * For the original resolution the probabilities are resized back (bilinear), thresholded and
 * compared with the original masks. `tta`: the mean over the four mirrorings (see mirroredTTA).
 * `region`: see {@link scoreSlices}.
 */
export async function evaluateSlices(
  model: AUNet,
  ds: SliceDataset,
  resized: { images: Float32Array[]; masks: Uint8Array[] },
  indices: number[],
  o: EvaluateOptions = {},
): Promise<EvaluationReport> {
  const images = indices.map((i) => resized.images[i]);
  let probs: Float32Array[];
  if (o.tta) {
    probs = await mirroredTTA(modelPredictor(model, o.batch ?? 4)).predict(images);
    o.onProgress?.(images.length);
  } else {
    probs = await predictProbabilities(model, images, o.batch ?? 4, o.onProgress);
  }
  return scoreSlices(probs, model.config.inputSize, ds, resized.masks, indices, o.threshold ?? 0.5, o.region, o.minLesionPixels);
}

/**
 * Evaluate `model` on the slices `indices` (default: all) of a dataset at its own resolution:
 * the slices are resized to the model's input size first. See {@link evaluateSlices}.
 */
export async function evaluate(
  model: AUNet,
  ds: SliceDataset,
  indices: number[] = Array.from({ length: ds.count }, (_, i) => i),
  o: EvaluateOptions = {},
): Promise<EvaluationReport> {
  return evaluateSlices(model, ds, resizeDataset(ds, model.config.inputSize), indices, o);
}

/** Probabilities with those of the predicted lesions (at `threshold`) under `minPixels` pixels set to 0. */
export function withoutSmallLesions(p: Float32Array, width: number, height: number, threshold: number, minPixels: number): Float32Array {
  const kept = removeSmallComponents(thresholdMask(p, threshold), width, height, minPixels);
  return p.map((v, i) => (kept[i] ? v : 0));
}

/** Throws when a prediction holds NaN or infinity (a diverged or damaged network). */
export function checkFinite(probs: Float32Array[], indices: number[]): void {
  probs.forEach((p, j) => {
    if (!p.every(Number.isFinite)) throw new Error(`the network's predictions for slice ${indices[j]} are not finite (NaN): its weights diverged or are damaged`);
  });
}

/** Scores at one resolution of per-slice probabilities against masks of the same size. */
export function resolutionReport(probs: ArrayLike<number>[], masks: Uint8Array[], indices: number[], resolution: string, threshold = 0.5): ResolutionReport {
  const m = new SegmentationMetrics();
  probs.forEach((p, j) => m.add(p, masks[j], threshold));
  return {
    resolution,
    pooled: m.pooled(),
    perSliceMean: m.perSliceMean(),
    perSlice: m.slices.map((c, j) => ({ slice: indices[j], ...scores(c), lesionPixels: c.tp + c.fn, predictedPixels: c.tp + c.fp })),
  };
}

/**
 * Scores of the probabilities `probs` (at the model's size `size`) of the slices `indices`, at
 * that size against the resized masks and, resized back bilinearly, at the original size.
 * With a `region` (a lung mask: lesions lie in the lungs) predictions outside it count as
 * background, at the model's size against the region resized by nearest pixel. Then predicted
 * lesions of fewer than `minLesionPixels` original pixels go (removeSmallComponents), at the
 * model's size those under the same area in its pixels.
 */
export function scoreSlices(
  probs: Float32Array[], size: number, ds: SliceDataset, resizedMasks: Uint8Array[], indices: number[], threshold = 0.5, region?: Region, minLesionPixels = 0,
): EvaluationReport {
  checkFinite(probs, indices);
  let full = probs.map((p) => (size === ds.height && size === ds.width ? p : resizeBilinear(p, size, size, ds.height, ds.width)));
  if (region) {
    if (region.masks.length !== ds.count || region.masks.some((m) => m.length !== ds.height * ds.width)) {
      throw new Error(`the region ${region.source} must have ${ds.count} slices of ${ds.height}x${ds.width}, the data's shape`);
    }
    const inside = (p: Float32Array, m: Uint8Array) => p.map((v, i) => (m[i] ? v : 0));
    probs = probs.map((p, j) => inside(p, resizeNearest(region.masks[indices[j]], ds.height, ds.width, size, size)));
    full = full.map((p, j) => inside(p, region.masks[indices[j]]));
  }
  if (minLesionPixels > 1) {
    const atModel = Math.round((minLesionPixels * size * size) / (ds.height * ds.width));
    probs = probs.map((p) => withoutSmallLesions(p, size, size, threshold, atModel));
    full = full.map((p) => withoutSmallLesions(p, ds.width, ds.height, threshold, minLesionPixels));
  }
  return {
    slices: [...indices],
    threshold,
    ...(region ? { region: region.source } : {}),
    ...(minLesionPixels > 1 ? { minLesionPixels } : {}),
    model: resolutionReport(probs, indices.map((i) => resizedMasks[i]), indices, `${size}x${size}`, threshold),
    original: resolutionReport(full, indices.map((i) => ds.masks[i]), indices, `${ds.height}x${ds.width}`, threshold),
  };
}
