// One training step's loss and gradients, over the whole batch at once or, when the batch's
// activations would not fit (lavapipe binds at most 128 MiB per storage buffer: 4 slices at
// 512x512 make a 256 MiB concatenation), in chunks of slices with exactly the same result.
// Browser-safe.

import { backward, mul, noGrad, profileSection, scope, sigmoid, sum, tensor, tverskySums, type Tensor } from '@aunet/tensor';
import { diceLoss, focalTverskyLoss } from '@aunet/nn';
import type { AUNet } from './model';

export interface LossSpec {
  loss: 'ftl' | 'dice';
  alpha: number;
  beta: number;
  gamma: number;
  /** Added to numerator and denominator (default 1, as @aunet/nn's losses). */
  smooth?: number;
}

/**
 * The loss from the batch's sums S = [TP, sum p, sum g, FP, FN] and its partials dL/dS, in
 * float64, as @aunet/nn's focal Tversky and Dice losses compute them (1 - TI clamped at 0, its
 * derivative at 1e-6, so that a perfect prediction has a finite gradient).
 */
export function lossFromSums(s: ArrayLike<number>, o: LossSpec): { value: number; partials: number[] } {
  const smooth = o.smooth ?? 1;
  const [tp, sp, sg, fp, fn] = Array.from(s);
  if (o.loss === 'dice') {
    const num = 2 * tp + smooth;
    const den = sp + sg + smooth;
    return { value: 1 - num / den, partials: [-2 / den, num / (den * den), num / (den * den), 0, 0] };
  }
  const num = tp + smooth;
  const den = tp + o.alpha * fn + o.beta * fp + smooth;
  const ti = num / den;
  const q = num / (den * den);
  const e = 1 / o.gamma;
  const u = Math.max(1 - ti, 0);
  const dLdTI = -e * Math.pow(Math.max(u, 1e-6), e - 1);
  return { value: Math.pow(u, e), partials: [dLdTI * (1 / den - q), 0, 0, dLdTI * -o.beta * q, dLdTI * -o.alpha * q] };
}

/**
 * Forward and backward for one batch: x and y are [N, 1, S, S] host arrays of images and 0/1
 * masks. Gradients are added into the parameters' `.grad`. Returns the batch loss.
 *
 * With `chunk` < N the batch runs `chunk` slices at a time in two passes: the first, without
 * autodiff, sums TP, FP, FN... over the whole batch, which gives the loss and dL/dS; the second
 * re-runs each chunk with autodiff and back-propagates dL/dS . S_chunk. Every other layer works on
 * each slice alone (instance norm, attention), so the gradients equal the whole batch's; the cost
 * is one more forward pass.
 */
export async function batchLossAndGradients(model: AUNet, x: Float32Array, y: Float32Array, n: number, spec: LossSpec, chunk = n): Promise<number> {
  const { inChannels, inputSize: s } = model.config;
  const plane = s * s;
  const part = (data: Float32Array, start: number, count: number, channels: number) =>
    tensor(data.subarray(start * channels * plane, (start + count) * channels * plane), [count, channels, s, s]);
  if (chunk >= n) {
    return scope(async () => {
      const logits = model.forward(part(x, 0, n, inChannels));
      const g = part(y, 0, n, 1);
      const l = profileSection('loss', () => {
        const p = sigmoid(logits);
        return spec.loss === 'ftl' ? focalTverskyLoss(p, g, { alpha: spec.alpha, beta: spec.beta, gamma: spec.gamma, smooth: spec.smooth }) : diceLoss(p, g, { smooth: spec.smooth });
      });
      backward(l);
      return l.item();
    });
  }
  const starts: number[] = [];
  for (let i = 0; i < n; i += chunk) starts.push(i);
  const count = (start: number) => Math.min(chunk, n - start);
  // Pass 1: the batch's sums.
  const sums = new Float64Array(5);
  for (const start of starts) {
    const chunkSums = await scope(async () => {
      const sChunk = noGrad(() => {
        const logits = model.forward(part(x, start, count(start), inChannels));
        return profileSection('loss', () => tverskySums(sigmoid(logits), part(y, start, count(start), 1)));
      });
      return sChunk.data();
    });
    chunkSums.forEach((v, k) => (sums[k] += v));
  }
  const { value, partials } = lossFromSums(sums, spec);
  // Pass 2: back-propagate dL/dS through each chunk's own sums.
  for (const start of starts) {
    await scope(async () => {
      const logits = model.forward(part(x, start, count(start), inChannels));
      const weighted: Tensor = profileSection('loss', () => sum(mul(tverskySums(sigmoid(logits), part(y, start, count(start), 1)), tensor(partials, [5]))));
      backward(weighted);
    });
  }
  return value;
}
