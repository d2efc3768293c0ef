// Inference: on slices at the model's input size, and on whole volumes of any in-plane size with
// optional mirroring test-time augmentation. What a prediction gives the user (mask file, report,
// pictures) is built in prediction-report.ts. Browser-safe.

import { noGrad, runtime, scope, sigmoid, tensor } from '@aunet/tensor';
import { fromSliceStack, toSliceStack, type Volume } from './data/nifti';
import { normaliseImage, type IntensityKind } from './data/normalise';
import { resizeBilinear, resizeImage } from './data/transforms';
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

/** Lesion probabilities of square slices at one fixed size: the model, or anything standing in for it. */
export interface SlicePredictor {
  /** Side of the square slices it takes and returns. */
  size: number;
  predict(images: Float32Array[]): Promise<Float32Array[]>;
}

/** `model` as a {@link SlicePredictor}, `batch` slices at a time (fewer where they would not fit). */
export function modelPredictor(model: AUNet, batch = 4): SlicePredictor {
  return { size: model.config.inputSize, predict: (images) => predictProbabilities(model, images, batch) };
}

/** A copy of a size x size image mirrored left-right and/or top-bottom. */
export function mirror(image: Float32Array, size: number, flipX: boolean, flipY: boolean): Float32Array {
  const out = new Float32Array(image.length);
  for (let y = 0; y < size; y++) {
    const sy = flipY ? size - 1 - y : y;
    for (let x = 0; x < size; x++) out[x + size * y] = image[(flipX ? size - 1 - x : x) + size * sy];
  }
  return out;
}

const MIRRORS: [boolean, boolean][] = [[false, false], [true, false], [false, true], [true, true]];

/**
 * Test-time augmentation as nnU-Net does it in 2-D: the mean of the predictions on the slices as
 * they are and mirrored left-right, top-bottom and both (each prediction mirrored back first).
 * Four times the work of `predictor`.
 */
export function mirroredTTA(predictor: SlicePredictor): SlicePredictor {
  const s = predictor.size;
  return {
    size: s,
    async predict(images) {
      const sum = images.map(() => new Float32Array(s * s));
      for (const [fx, fy] of MIRRORS) {
        const probs = await predictor.predict(images.map((im) => mirror(im, s, fx, fy)));
        probs.forEach((p, i) => {
          const back = mirror(p, s, fx, fy);
          for (let j = 0; j < back.length; j++) sum[i][j] += back[j];
        });
      }
      for (const p of sum) for (let j = 0; j < p.length; j++) p[j] /= MIRRORS.length;
      return sum;
    },
  };
}

export interface VolumePrediction {
  /** [nx, ny, nz] of the input. */
  dims: [number, number, number];
  /** Lesion probability per voxel, in the input's layout (x fastest). */
  probabilities: Float32Array;
  /** 1 where the probability is at least the threshold, else 0. */
  mask: Uint8Array;
  /** The input's voxels in 0..1 (as the network saw them before resizing), for overlays. */
  image: Float32Array;
  intensity: IntensityKind;
  threshold: number;
}

/**
 * Segment every slice of `volume` along its slice axis (any in-plane size, any number of slices, HU or 8-bit):
 * slices are normalised as in training, resized to the predictor's size, predicted `batch`
 * slices at a time, and the probabilities resized back to the slice's grid (bilinear) and
 * thresholded. `onProgress` gets the number of slices done.
 */
export async function predictVolume(
  predictor: SlicePredictor,
  volume: Volume,
  o: { batch?: number; threshold?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<VolumePrediction> {
  const s = predictor.size;
  const threshold = o.threshold ?? 0.5;
  const batch = Math.max(1, o.batch ?? 8);
  const { kind, data } = normaliseImage(volume);
  // Slices along the header's slice axis; the probabilities go back to the file's layout.
  const { data: stack, dims: [width, height, count] } = toSliceStack(data, volume.dims, volume.sliceAxis);
  const plane = width * height;
  const stackProbabilities = new Float32Array(data.length);
  for (let start = 0; start < count; start += batch) {
    const ks = Array.from({ length: Math.min(batch, count - start) }, (_, i) => start + i);
    const inputs = ks.map((k) => resizeImage(stack.subarray(k * plane, (k + 1) * plane), height, width, s, s));
    const probs = await predictor.predict(inputs);
    probs.forEach((p, i) => {
      if (!p.every(Number.isFinite)) throw new Error(`${volume.source}: the network's predictions for slice ${ks[i]} are not finite (NaN): its weights diverged or are damaged`);
      stackProbabilities.set(height === s && width === s ? p : resizeBilinear(p, s, s, height, width), ks[i] * plane);
    });
    o.onProgress?.(start + ks.length, count);
  }
  const probabilities = fromSliceStack(stackProbabilities, volume.dims, volume.sliceAxis);
  return { dims: [...volume.dims] as [number, number, number], probabilities, mask: thresholdMask(probabilities, threshold), image: data, intensity: kind, threshold };
}

/** 1 where the probability is at least `threshold`, else 0. */
export function thresholdMask(probabilities: Float32Array, threshold: number): Uint8Array {
  const mask = new Uint8Array(probabilities.length);
  for (let i = 0; i < mask.length; i++) mask[i] = probabilities[i] >= threshold ? 1 : 0;
  return mask;
}
