// Evaluation of a model on a set of slices: Dice, sensitivity and specificity pooled over every
// pixel and as the mean per slice, at the model's resolution and at the slices' original one.
// Browser-safe.

import { resizeDataset, type SliceDataset } from './data/dataset';
import { resizeBilinear } from './data/transforms';
import { SegmentationMetrics, scores, type Scores } from './metrics';
import type { AUNet } from './model';
import { mirroredTTA, modelPredictor, predictProbabilities } from './predict';
import { lossFromSums, type LossSpec } from './step';

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
  model: ResolutionReport;
  original: ResolutionReport;
}

/**
 * Evaluate `model` on the slices `indices` of `ds`. `resized` holds the slices at the model's
 * input size (images for the network, nearest-resized masks for the model-resolution scores).
 * For the original resolution the probabilities are resized back (bilinear), thresholded and
 * compared with the original masks. `tta`: the mean over the four mirrorings (see mirroredTTA).
 */
export async function evaluateSlices(
  model: AUNet,
  ds: SliceDataset,
  resized: { images: Float32Array[]; masks: Uint8Array[] },
  indices: number[],
  o: { batch?: number; threshold?: number; tta?: boolean; onProgress?: (done: number) => void } = {},
): Promise<EvaluationReport> {
  const images = indices.map((i) => resized.images[i]);
  let probs: Float32Array[];
  if (o.tta) {
    probs = await mirroredTTA(modelPredictor(model, o.batch ?? 4)).predict(images);
    o.onProgress?.(images.length);
  } else {
    probs = await predictProbabilities(model, images, o.batch ?? 4, o.onProgress);
  }
  return scoreSlices(probs, model.config.inputSize, ds, resized.masks, indices, o.threshold ?? 0.5);
}

/**
 * Evaluate `model` on the slices `indices` (default: all) of a dataset at its own resolution:
 * the slices are resized to the model's input size first. See {@link evaluateSlices}.
 */
export async function evaluate(
  model: AUNet,
  ds: SliceDataset,
  indices: number[] = Array.from({ length: ds.count }, (_, i) => i),
  o: { batch?: number; threshold?: number; tta?: boolean; onProgress?: (done: number) => void } = {},
): Promise<EvaluationReport> {
  return evaluateSlices(model, ds, resizeDataset(ds, model.config.inputSize), indices, o);
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
 */
export function scoreSlices(probs: Float32Array[], size: number, ds: SliceDataset, resizedMasks: Uint8Array[], indices: number[], threshold = 0.5): EvaluationReport {
  checkFinite(probs, indices);
  const full = probs.map((p) => (size === ds.height && size === ds.width ? p : resizeBilinear(p, size, size, ds.height, ds.width)));
  return {
    slices: [...indices],
    threshold,
    model: resolutionReport(probs, indices.map((i) => resizedMasks[i]), indices, `${size}x${size}`, threshold),
    original: resolutionReport(full, indices.map((i) => ds.masks[i]), indices, `${ds.height}x${ds.width}`, threshold),
  };
}

/** Soft focal Tversky (or Dice) loss of probabilities against masks, pooled over all slices, in float64. */
export function pooledLoss(probs: Float32Array[], masks: Uint8Array[], spec: LossSpec): number {
  // The five sums of tverskySums: TP, sum p, sum g, FP, FN.
  let tp = 0;
  let sp = 0;
  let sg = 0;
  probs.forEach((p, j) => {
    const g = masks[j];
    for (let i = 0; i < p.length; i++) {
      sp += p[i];
      if (g[i]) {
        tp += p[i];
        sg++;
      }
    }
  });
  return lossFromSums([tp, sp, sg, sp - tp, sg - tp], spec).value;
}
