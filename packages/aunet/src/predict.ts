// Inference on slices already at the model's input size. Browser-safe.

import { noGrad, runtime, scope, sigmoid, tensor } from '@aunet/tensor';
import type { AUNet, ModelConfig } from './model';

/**
 * The largest batch, at most `wanted`, whose biggest activation fits one storage-buffer binding of
 * the adapter: per level l the concatenation (2 filters[l] channels) and the up-sampled input of
 * the decoder (filters[l + 1] channels), at (S / 2^l)^2 pixels.
 */
export function batchThatFits(config: ModelConfig, wanted: number, maxBindingBytes = runtime().adapter.limits.maxStorageBufferBindingSize): number {
  const f = config.filters;
  let perSample = 0;
  for (let l = 0; l < f.length; l++) {
    const channels = Math.max(f[l], l + 1 < f.length ? Math.max(2 * f[l], f[l + 1]) : 0);
    perSample = Math.max(perSample, channels * (config.inputSize / 2 ** l) ** 2 * 4);
  }
  return Math.max(1, Math.min(wanted, Math.floor(maxBindingBytes / perSample)));
}

/**
 * Lesion probabilities for each image (each inputSize x inputSize, values 0..1), run `batch` at a
 * time without autodiff. `onBatch` reports progress (slices done).
 */
export async function predictProbabilities(model: AUNet, images: Float32Array[], batch: number, onBatch?: (done: number) => void): Promise<Float32Array[]> {
  const s = model.config.inputSize;
  const plane = s * s;
  const out: Float32Array[] = [];
  const size = batchThatFits(model.config, batch);
  for (let start = 0; start < images.length; start += size) {
    const chunk = images.slice(start, start + size);
    const x = new Float32Array(chunk.length * plane);
    chunk.forEach((im, i) => {
      if (im.length !== plane) throw new Error(`predict: image ${start + i} has ${im.length} pixels, the model takes ${s}x${s}`);
      x.set(im, i * plane);
    });
    const probs = await scope(async () => {
      const p = noGrad(() => sigmoid(model.forward(tensor(x, [chunk.length, model.config.inChannels, s, s]))));
      return (await p.data()) as Float32Array;
    });
    for (let i = 0; i < chunk.length; i++) out.push(probs.slice(i * plane, (i + 1) * plane));
    onBatch?.(start + chunk.length);
  }
  return out;
}
