// One training step's loss and gradients, over the whole batch at once or, when the batch's
// activations would not fit (lavapipe binds at most 128 MiB per storage buffer: 4 slices at
// 512x512 make a 256 MiB concatenation), in chunks of slices with exactly the same result.
// Browser-safe.

import { backward, mul, noGrad, profileSection, scope, sigmoid, sum, tensor, tverskySums, type Tensor } from '@aunet/tensor';
import { diceLoss, focalTverskyLoss } from '@aunet/nn';
import { lossFromSums, type LossSpec } from './loss';
import type { AUNet } from './model';

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
