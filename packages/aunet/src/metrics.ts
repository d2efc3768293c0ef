// Segmentation metrics on the host, in float64: confusion counts accumulated over slices, then
// Dice, sensitivity and specificity (and IoU, precision) pooled over every pixel (as the paper
// reports) and as the mean over slices. Surface distances are in surface-metrics.ts. Browser-safe.

import type { Architecture } from './model';

export interface Confusion {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

export interface Scores {
  dice: number;
  sensitivity: number;
  specificity: number;
}

/** Confusion counts of `prob >= threshold` against a 0/1 mask of the same length. */
export function confusion(prob: ArrayLike<number>, mask: ArrayLike<number>, threshold = 0.5): Confusion {
  if (prob.length !== mask.length) throw new Error(`confusion: ${prob.length} predictions against ${mask.length} mask pixels`);
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < prob.length; i++) {
    const p = prob[i] >= threshold;
    const g = mask[i] > 0;
    if (p && g) tp++;
    else if (p) fp++;
    else if (g) fn++;
  }
  return { tp, fp, fn, tn: prob.length - tp - fp - fn };
}

/**
 * Dice 2TP / (2TP + FP + FN), sensitivity TP / (TP + FN), specificity TN / (TN + FP). A ratio
 * with nothing to count (no lesion and none predicted, for Dice) is 1: nothing was missed;
 * sensitivity of a slice without lesion is NaN (undefined), and means skip it.
 */
export function scores(c: Confusion): Scores {
  const diceDen = 2 * c.tp + c.fp + c.fn;
  return {
    dice: diceDen === 0 ? 1 : (2 * c.tp) / diceDen,
    sensitivity: c.tp + c.fn === 0 ? NaN : c.tp / (c.tp + c.fn),
    specificity: c.tn + c.fp === 0 ? NaN : c.tn / (c.tn + c.fp),
  };
}

/** {@link Scores} and two more ratios of the same counts. */
export interface OverlapScores extends Scores {
  /** Intersection over union (Jaccard) TP / (TP + FP + FN); 1 with nothing to count, as Dice. */
  iou: number;
  /** Precision (positive predictive value) TP / (TP + FP); NaN (undefined) with nothing predicted. */
  precision: number;
}

/** Dice, IoU, sensitivity, specificity and precision of confusion counts (see {@link scores}). */
export function overlapScores(c: Confusion): OverlapScores {
  const union = c.tp + c.fp + c.fn;
  return {
    ...scores(c),
    iou: union === 0 ? 1 : c.tp / union,
    precision: c.tp + c.fp === 0 ? NaN : c.tp / (c.tp + c.fp),
  };
}

/** Accumulates per-slice confusion counts; reports pooled and per-slice-mean scores. */
export class SegmentationMetrics {
  readonly slices: Confusion[] = [];

  /** Add one slice's prediction (probabilities) and mask. */
  add(prob: ArrayLike<number>, mask: ArrayLike<number>, threshold = 0.5): Confusion {
    const c = confusion(prob, mask, threshold);
    this.slices.push(c);
    return c;
  }

  get pooledConfusion(): Confusion {
    const t: Confusion = { tp: 0, fp: 0, fn: 0, tn: 0 };
    for (const c of this.slices) {
      t.tp += c.tp;
      t.fp += c.fp;
      t.fn += c.fn;
      t.tn += c.tn;
    }
    return t;
  }

  /** Scores of the counts summed over every slice's pixels. */
  pooled(): Scores {
    return scores(this.pooledConfusion);
  }

  /** Mean of each slice's scores, skipping the slices where a score is undefined (NaN). */
  perSliceMean(): Scores {
    const per = this.slices.map(scores);
    const mean = (k: keyof Scores) => {
      const v = per.map((s) => s[k]).filter((x) => !Number.isNaN(x));
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
    };
    return { dice: mean('dice'), sensitivity: mean('sensitivity'), specificity: mean('specificity') };
  }
}

/** A fraction as a percentage with one decimal ("69.1"); `missing` for NaN or an infinity. */
export function pct(v: number, missing = '-'): string {
  return Number.isFinite(v) ? (100 * v).toFixed(1) : missing;
}

/** The paper's Table 1 (Dice / sensitivity / specificity, %). */
export const PAPER_TABLE1: Record<string, Scores> = {
  'U-Net + DL': { dice: 61.0, sensitivity: 61.3, specificity: 98.3 },
  'U-Net + FTL': { dice: 66.7, sensitivity: 74.0, specificity: 97.3 },
  'AU-Net + DL': { dice: 68.5, sensitivity: 71.1, specificity: 98.1 },
  'AU-Net + FTL': { dice: 69.1, sensitivity: 81.1, specificity: 97.2 },
};

/** The Table 1 row of a model and loss, e.g. ('aunet', 'ftl') -> 'AU-Net + FTL'. */
export function paperRow(architecture: Architecture, loss: 'ftl' | 'dice'): string {
  return `${architecture === 'aunet' ? 'AU-Net' : 'U-Net'} + ${loss === 'ftl' ? 'FTL' : 'DL'}`;
}
