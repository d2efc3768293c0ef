// Segmentation losses: thin wrappers over the fused loss kernels of @aunet/tensor, with the
// paper's defaults. `p` are probabilities (apply `sigmoid` to a network's logits first), `g` the
// binary (or soft) target of the same shape; the result is a scalar tensor.

import type { Tensor } from '@aunet/tensor';
import { bceWithLogitsOp, diceLossOp, focalTverskyLossOp, tverskyLossOp } from './kernels';

function checkPair(p: Tensor, g: Tensor, what: string): void {
  if (p.shape.join() !== g.shape.join()) throw new Error(`${what}: prediction ${p} and target ${g} differ in shape`);
}

export interface DiceOptions {
  /** Added to numerator and denominator (default 1). */
  smooth?: number;
}

/** Soft Dice loss, 1 - (2 sum(p g) + smooth) / (sum(p) + sum(g) + smooth), the sums running over the whole batch. */
export function diceLoss(p: Tensor, g: Tensor, o: DiceOptions = {}): Tensor {
  checkPair(p, g, 'diceLoss');
  return diceLossOp(p, g, o.smooth ?? 1);
}

export interface TverskyOptions {
  /** Weight of false negatives (default 0.7, as the paper). */
  alpha?: number;
  /** Weight of false positives (default 0.3). */
  beta?: number;
  /** Added to numerator and denominator (default 1). */
  smooth?: number;
}

/** Tversky loss, 1 - TI with TI = (TP + smooth) / (TP + alpha FN + beta FP + smooth), TP = sum(p g),
 *  FN = sum((1 - p) g), FP = sum(p (1 - g)) over the whole batch. */
export function tverskyLoss(p: Tensor, g: Tensor, o: TverskyOptions = {}): Tensor {
  checkPair(p, g, 'tverskyLoss');
  return tverskyLossOp(p, g, o.alpha ?? 0.7, o.beta ?? 0.3, o.smooth ?? 1);
}

export interface FocalTverskyOptions extends TverskyOptions {
  /** Focal parameter: FTL = (1 - TI)^(1/gamma) (default 4/3, as the paper). */
  gamma?: number;
}

/** Focal Tversky loss, (1 - TI)^(1/gamma), TI as in `tverskyLoss`. */
export function focalTverskyLoss(p: Tensor, g: Tensor, o: FocalTverskyOptions = {}): Tensor {
  checkPair(p, g, 'focalTverskyLoss');
  return focalTverskyLossOp(p, g, o.alpha ?? 0.7, o.beta ?? 0.3, o.gamma ?? 4 / 3, o.smooth ?? 1);
}

/** Binary cross-entropy on logits, mean over every element: mean(max(x, 0) - x t + log(1 + exp(-|x|))). */
export function bceWithLogits(logits: Tensor, target: Tensor): Tensor {
  checkPair(logits, target, 'bceWithLogits');
  return bceWithLogitsOp(logits, target);
}
