// One training step's loss and gradients, over the whole batch at once or, when the batch's
// activations would not fit (lavapipe binds at most 128 MiB per storage buffer: 4 slices at
// 512x512 make a 256 MiB concatenation), in chunks of slices with exactly the same result.
// Browser-safe.

import { add, backward, mul, noGrad, profileSection, scope, sigmoid, sum, tensor, tverskySums, type Tensor } from '@aunet/tensor';
import { diceLoss, focalTverskyLoss } from '@aunet/nn';
import { lossFromSums, type LossSpec } from './loss';
import type { AUNet } from './model';
import type { DeepSupervisionLoss } from './config';

/**
 * The weights of the losses on [output, side 0 (finest), side 1, ...] with `sides` supervised
 * levels: the output 1, side i 2^-(i+1) (halving per level, as nnU-Net weighs its levels),
 * scaled to sum to 1 so that the loss, and so the step size, stays on the summed loss's scale.
 */
export function sideLossWeights(sides: number): number[] {
  const raw = [1, ...Array.from({ length: sides }, (_, i) => 2 ** -(i + 1))];
  const total = raw.reduce((a, b) => a + b, 0);
  return raw.map((w) => w / total);
}

/** What one step's loss is made of: the loss and, optionally, where it reads the network (default 'summed'). */
export type StepLossSpec = LossSpec & { deepSupervisionLoss?: DeepSupervisionLoss };

/** The weight of each map the loss reads: [1] for the output alone, else {@link sideLossWeights}. */
function lossWeights(model: AUNet, spec: StepLossSpec): number[] {
  // One supervised level is a plain head: its one side is the output itself.
  const levels = (spec.deepSupervisionLoss ?? 'summed') === 'levels' && model.config.deepSupervision > 1;
  return levels ? sideLossWeights(model.config.deepSupervision) : [1];
}

/** The maps the loss reads, logits at the input's size, in the order of {@link lossWeights}. */
function lossOutputs(model: AUNet, x: Tensor, spec: StepLossSpec): Tensor[] {
  if (lossWeights(model, spec).length === 1) return [model.forward(x)];
  const { output, sides } = model.forwardWithSides(x);
  return [output, ...sides];
}

/**
 * Forward and backward for one batch: x and y are [N, 1, S, S] host arrays of images and 0/1
 * masks. Gradients are added into the parameters' `.grad`. Returns the batch loss: with
 * `deepSupervisionLoss: 'levels'`, the weighted sum of the output's loss and each side output's
 * ({@link sideLossWeights}); else the output's alone.
 *
 * With `chunk` < N the batch runs `chunk` slices at a time in two passes: the first, without
 * autodiff, sums TP, FP, FN... over the whole batch, which gives the loss and dL/dS; the second
 * re-runs each chunk with autodiff and back-propagates dL/dS . S_chunk. Every other layer works on
 * each slice alone (instance norm, attention), so the gradients equal the whole batch's; the cost
 * is one more forward pass.
 */
export async function batchLossAndGradients(model: AUNet, x: Float32Array, y: Float32Array, n: number, spec: StepLossSpec, chunk = n): Promise<number> {
  const { inChannels, inputSize: s } = model.config;
  const plane = s * s;
  const part = (data: Float32Array, start: number, count: number, channels: number) =>
    tensor(data.subarray(start * channels * plane, (start + count) * channels * plane), [count, channels, s, s]);
  if (chunk >= n) {
    return scope(async () => {
      const logits = lossOutputs(model, part(x, 0, n, inChannels), spec);
      const weights = lossWeights(model, spec);
      const g = part(y, 0, n, 1);
      const l = profileSection('loss', () => {
        const lossOf = (z: Tensor) => {
          const p = sigmoid(z);
          return spec.loss === 'ftl' ? focalTverskyLoss(p, g, { alpha: spec.alpha, beta: spec.beta, gamma: spec.gamma, smooth: spec.smooth }) : diceLoss(p, g, { smooth: spec.smooth });
        };
        return logits.length === 1 ? lossOf(logits[0]) : logits.map((z, k) => mul(lossOf(z), weights[k])).reduce((a, b) => add(a, b));
      });
      backward(l);
      return l.item();
    });
  }
  const starts: number[] = [];
  for (let i = 0; i < n; i += chunk) starts.push(i);
  const count = (start: number) => Math.min(chunk, n - start);
  // Pass 1: the batch's sums, per map the loss reads.
  let sums: Float64Array[] = [];
  for (const start of starts) {
    const chunkSums = await scope(async () => {
      const perMap = noGrad(() => {
        const logits = lossOutputs(model, part(x, start, count(start), inChannels), spec);
        const g = part(y, start, count(start), 1);
        return profileSection('loss', () => logits.map((z) => tverskySums(sigmoid(z), g)));
      });
      return Promise.all(perMap.map((t) => t.data()));
    });
    if (!sums.length) sums = chunkSums.map(() => new Float64Array(5));
    chunkSums.forEach((c, m) => c.forEach((v, k) => (sums[m][k] += v)));
  }
  const weights = lossWeights(model, spec);
  const perMap = sums.map((s5) => lossFromSums(s5, spec));
  const value = perMap.reduce((a, r, m) => a + weights[m] * r.value, 0);
  // Pass 2: back-propagate each map's weighted dL/dS through its own sums of the chunk.
  for (const start of starts) {
    await scope(async () => {
      const logits = lossOutputs(model, part(x, start, count(start), inChannels), spec);
      const g = part(y, start, count(start), 1);
      const weighted: Tensor = profileSection('loss', () =>
        logits
          .map((z, m) => sum(mul(tverskySums(sigmoid(z), g), tensor(perMap[m].partials.map((d) => d * weights[m]), [5]))))
          .reduce((a, b) => add(a, b)),
      );
      backward(weighted);
    });
  }
  return value;
}
