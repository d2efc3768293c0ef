// Evaluation of a model on a set of slices: Dice, sensitivity and specificity pooled over every
// pixel and as the mean per slice, at the model's resolution and at the slices' original one.
// Browser-safe.

import type { SliceDataset } from './data/dataset';
import { resizeBilinear } from './data/transforms';
import { SegmentationMetrics, scores, type Scores } from './metrics';
import type { AUNet } from './model';
import { predictProbabilities } from './predict';

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
 * compared with the original masks.
 */
export async function evaluateSlices(
  model: AUNet,
  ds: SliceDataset,
  resized: { images: Float32Array[]; masks: Uint8Array[] },
  indices: number[],
  o: { batch?: number; threshold?: number; onProgress?: (done: number) => void } = {},
): Promise<EvaluationReport> {
  const probs = await predictProbabilities(
    model,
    indices.map((i) => resized.images[i]),
    o.batch ?? 4,
    o.onProgress,
  );
  return scoreSlices(probs, ds, resized.masks, indices, o.threshold ?? 0.5);
}

/** Scores of the probabilities `probs` (at the model's size) of the slices `indices`. */
export function scoreSlices(probs: Float32Array[], ds: SliceDataset, resizedMasks: Uint8Array[], indices: number[], threshold = 0.5): EvaluationReport {
  const s = Math.round(Math.sqrt(probs[0]?.length ?? 0));
  const atModel = new SegmentationMetrics();
  const atOriginal = new SegmentationMetrics();
  indices.forEach((slice, j) => {
    atModel.add(probs[j], resizedMasks[slice], threshold);
    const full = s === ds.height && s === ds.width ? probs[j] : resizeBilinear(probs[j], s, s, ds.height, ds.width);
    atOriginal.add(full, ds.masks[slice], threshold);
  });
  const report = (m: SegmentationMetrics, resolution: string): ResolutionReport => ({
    resolution,
    pooled: m.pooled(),
    perSliceMean: m.perSliceMean(),
    perSlice: m.slices.map((c, j) => ({ slice: indices[j], ...scores(c), lesionPixels: c.tp + c.fn, predictedPixels: c.tp + c.fp })),
  });
  return { slices: [...indices], threshold, model: report(atModel, `${s}x${s}`), original: report(atOriginal, `${ds.height}x${ds.width}`) };
}

/** Soft focal Tversky (or Dice) loss of probabilities against masks, pooled over all slices, in float64. */
export function pooledLoss(probs: Float32Array[], masks: Uint8Array[], loss: 'ftl' | 'dice', alpha: number, beta: number, gamma: number, smooth = 1): number {
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
  if (loss === 'dice') return 1 - (2 * tp + smooth) / (sp + sg + smooth);
  const fn = sg - tp;
  const fp = sp - tp;
  const ti = (tp + smooth) / (tp + alpha * fn + beta * fp + smooth);
  return Math.pow(Math.max(0, 1 - ti), 1 / gamma);
}
