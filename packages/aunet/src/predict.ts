// Inference on slices already at the model's input size. Browser-safe.

import { noGrad, runtime, sigmoid, tensor } from '@aunet/tensor';
import type { AUNet, ModelConfig } from './model';

/**
 * The largest batch whose biggest tensor (the 2 * filters[0]-channel concatenation at full
 * resolution) fits one storage-buffer binding of the adapter, at most `wanted`.
 */
export function batchThatFits(config: ModelConfig, wanted: number, maxBindingBytes = runtime().adapter.limits.maxStorageBufferBindingSize): number {
  const perSample = 2 * config.filters[0] * config.inputSize * config.inputSize * 4;
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
    const p = noGrad(() => {
      const input = tensor(x, [chunk.length, model.config.inChannels, s, s]);
      const logits = model.forward(input);
      input.dispose();
      const prob = sigmoid(logits);
      logits.dispose();
      return prob;
    });
    const probs = (await p.data()) as Float32Array;
    p.dispose();
    for (let i = 0; i < chunk.length; i++) out.push(probs.slice(i * plane, (i + 1) * plane));
    onBatch?.(start + chunk.length);
  }
  return out;
}
