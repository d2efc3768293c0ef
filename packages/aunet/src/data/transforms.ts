// Resizing and augmentation of single slices (row-major, row y column x at x + width * y).
// Every function returns new arrays and leaves its inputs alone.
import type { Rng } from '@aunet/tensor';

function checkSize(name: string, length: number, h: number, w: number): void {
  if (length !== h * w) throw new RangeError(`${name}: array of ${length} values is not ${h} x ${w}`);
}

function checkShape(name: string, ...sides: number[]): void {
  if (sides.some((s) => !Number.isInteger(s) || s < 1)) {
    throw new RangeError(`${name}: sizes must be positive integers, got ${sides.join(', ')}`);
  }
}

/**
 * Bilinear resize with half-pixel centres, as PyTorch's
 * `F.interpolate(mode='bilinear', align_corners=False, antialias=False)`: output pixel i
 * samples the input at (i + 0.5) * h / H - 0.5, clamped to the edge pixels. Shrinking by more
 * than 2 reads only the 2 x 2 pixels around each sample (shrinking 512 to 128 reads the middle
 * 4 of every 16), so for integer shrink factors use {@link resizeArea}; {@link resizeImage}
 * picks.
 */
export function resizeBilinear(src: Float32Array, h: number, w: number, H: number, W: number): Float32Array {
  checkShape('resizeBilinear', h, w, H, W);
  checkSize('resizeBilinear', src.length, h, w);
  const rows = bilinearTaps(h, H);
  const cols = bilinearTaps(w, W);
  const out = new Float32Array(H * W);
  for (let oy = 0; oy < H; oy++) {
    const r0 = rows.lo[oy] * w;
    const r1 = rows.hi[oy] * w;
    const fy = rows.frac[oy];
    for (let ox = 0; ox < W; ox++) {
      const c0 = cols.lo[ox];
      const c1 = cols.hi[ox];
      const fx = cols.frac[ox];
      const top = src[r0 + c0] * (1 - fx) + src[r0 + c1] * fx;
      const bottom = src[r1 + c0] * (1 - fx) + src[r1 + c1] * fx;
      out[oy * W + ox] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/** For each output index along one axis: the two input indices and the weight of the second. */
function bilinearTaps(n: number, N: number): { lo: Int32Array; hi: Int32Array; frac: Float64Array } {
  const lo = new Int32Array(N);
  const hi = new Int32Array(N);
  const frac = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const s = Math.max(0, ((i + 0.5) * n) / N - 0.5);
    const i0 = Math.min(Math.floor(s), n - 1);
    lo[i] = i0;
    hi[i] = Math.min(i0 + 1, n - 1);
    frac[i] = s - i0;
  }
  return { lo, hi, frac };
}

/**
 * Shrink by integer factors h / H and w / W, each output pixel the mean of its block of input
 * pixels (a box filter, PyTorch's `mode='area'`): every input pixel counts once, so shrinking
 * does not alias.
 */
export function resizeArea(src: Float32Array, h: number, w: number, H: number, W: number): Float32Array {
  checkShape('resizeArea', h, w, H, W);
  checkSize('resizeArea', src.length, h, w);
  if (h % H !== 0 || w % W !== 0) {
    throw new RangeError(`resizeArea: ${h} x ${w} to ${H} x ${W} is not a shrink by integer factors`);
  }
  const fy = h / H;
  const fx = w / W;
  const out = new Float32Array(H * W);
  const inv = 1 / (fy * fx);
  for (let oy = 0; oy < H; oy++) {
    for (let ox = 0; ox < W; ox++) {
      let sum = 0;
      for (let y = oy * fy; y < (oy + 1) * fy; y++) {
        const row = y * w;
        for (let x = ox * fx; x < (ox + 1) * fx; x++) sum += src[row + x];
      }
      out[oy * W + ox] = sum * inv;
    }
  }
  return out;
}

/** The resize for images: a copy at the same size, the box filter ({@link resizeArea}) when
 *  both sides shrink by integer factors (512 to 256 or 128), bilinear otherwise. */
export function resizeImage(src: Float32Array, h: number, w: number, H: number, W: number): Float32Array {
  if (h === H && w === W) {
    checkSize('resizeImage', src.length, h, w);
    return src.slice();
  }
  if (H <= h && W <= w && h % H === 0 && w % W === 0) return resizeArea(src, h, w, H, W);
  return resizeBilinear(src, h, w, H, W);
}

/**
 * Nearest-neighbour resize for masks: output pixel i takes the input pixel whose area holds
 * the output pixel's centre, floor((i + 0.5) * h / H) (PyTorch's `mode='nearest-exact'`; its
 * plain `'nearest'`, floor(i * h / H), takes the top-left pixel of each block and so shifts the
 * mask by half a block). Shrinking by 4 takes pixel 2 of each 4. Values are copied, never
 * mixed, so a 0/1 mask stays 0/1.
 */
export function resizeNearest(src: Uint8Array, h: number, w: number, H: number, W: number): Uint8Array {
  checkShape('resizeNearest', h, w, H, W);
  checkSize('resizeNearest', src.length, h, w);
  const rowOf = (i: number) => Math.min(h - 1, Math.floor(((i + 0.5) * h) / H));
  const colOf = (i: number) => Math.min(w - 1, Math.floor(((i + 0.5) * w) / W));
  const cols = Int32Array.from({ length: W }, (_, i) => colOf(i));
  const out = new Uint8Array(H * W);
  for (let oy = 0; oy < H; oy++) {
    const row = rowOf(oy) * w;
    for (let ox = 0; ox < W; ox++) out[oy * W + ox] = src[row + cols[ox]];
  }
  return out;
}

/** Probabilities and ranges of the random changes made by {@link augmentPair}. */
export interface AugmentOptions {
  /** Probability of a left-right mirror. */
  flipXProbability: number;
  /** Probability of a top-bottom mirror. */
  flipYProbability: number;
  /** Probability of turning by 1, 2 or 3 quarter turns (equally likely). 0.75 makes the four
   *  orientations equally likely; with the flips, all 8 symmetries of the square are. */
  rot90Probability: number;
  /** Probability of a small rotation, uniform in +-maxRotationDegrees. */
  rotateProbability: number;
  maxRotationDegrees: number;
  /** Probability of zooming by a factor uniform in [minScale, maxScale] (above 1 enlarges). */
  scaleProbability: number;
  minScale: number;
  maxScale: number;
  /** Probability of intensity jitter: v * (1 + U(-contrastJitter, contrastJitter)) +
   *  U(-brightnessJitter, brightnessJitter), clipped to 0..1. */
  jitterProbability: number;
  contrastJitter: number;
  brightnessJitter: number;
}

/**
 * The full set: mirrors and quarter turns (lesions have no preferred side or orientation within
 * a slice, and 100 slices need every variant), small rotations (+-10 degrees) and zooms
 * (0.9-1.1) for the spread of patient position and size, and +-5% contrast and brightness for
 * the spread of scanners and windows. Each of the last three on half the samples, so that
 * unchanged slices are still seen. {@link augmentPair} uses it where options are not given.
 */
export const FULL_AUGMENT: Readonly<AugmentOptions> = Object.freeze({
  flipXProbability: 0.5,
  flipYProbability: 0.5,
  rot90Probability: 0.75,
  rotateProbability: 0.5,
  maxRotationDegrees: 10,
  scaleProbability: 0.5,
  minScale: 0.9,
  maxScale: 1.1,
  jitterProbability: 0.5,
  contrastJitter: 0.05,
  brightnessJitter: 0.05,
});

/**
 * Mirrors, quarter turns and intensity jitter only: whole-pixel moves, so no resampling blurs
 * the image or shifts the mask. The recipe with which a PyTorch copy of AU-Net reached ~73 test
 * Dice at 128x128 on the shipped data; the trainer's default.
 */
export const BASIC_AUGMENT: Readonly<AugmentOptions> = Object.freeze({ ...FULL_AUGMENT, rotateProbability: 0, scaleProbability: 0 });

/**
 * A randomly changed copy of a square image (0..1) and its mask, still aligned: the mirrors,
 * quarter turns, rotation and zoom are composed into one affine map about the slice centre and
 * both arrays are sampled through it, the image bilinearly, the mask at the nearest pixel.
 * Points that come from outside the slice are 0 in both: background, and air (0 in any lung
 * window), which is what surrounds the patient. Mirrors and quarter turns alone move whole
 * pixels, so then the image is moved exactly. Intensity jitter comes last, on the image only.
 */
export function augmentPair(
  image: Float32Array,
  mask: Uint8Array,
  size: number,
  rng: Rng,
  opts: Partial<AugmentOptions> = {},
): { image: Float32Array; mask: Uint8Array } {
  checkShape('augmentPair', size);
  checkSize('augmentPair image', image.length, size, size);
  checkSize('augmentPair mask', mask.length, size, size);
  const o = { ...FULL_AUGMENT, ...opts };

  // Forward map (centred input coordinates to centred output coordinates) as a 2 x 2 matrix
  // [a b; c d], built up by left-multiplying each step. Mirrors and quarter turns use exact
  // 0/1 entries so that they stay whole-pixel moves.
  let a = 1, b = 0, c = 0, d = 1;
  const apply = (m00: number, m01: number, m10: number, m11: number) => {
    [a, b, c, d] = [m00 * a + m01 * c, m00 * b + m01 * d, m10 * a + m11 * c, m10 * b + m11 * d];
  };
  if (rng.uniform() < o.flipXProbability) apply(-1, 0, 0, 1);
  if (rng.uniform() < o.flipYProbability) apply(1, 0, 0, -1);
  if (rng.uniform() < o.rot90Probability) {
    const turns = 1 + rng.int(3);
    for (let t = 0; t < turns; t++) apply(0, -1, 1, 0);
  }
  if (rng.uniform() < o.rotateProbability) {
    const angle = (rng.range(-o.maxRotationDegrees, o.maxRotationDegrees) * Math.PI) / 180;
    apply(Math.cos(angle), -Math.sin(angle), Math.sin(angle), Math.cos(angle));
  }
  if (rng.uniform() < o.scaleProbability) {
    const s = rng.range(o.minScale, o.maxScale);
    apply(s, 0, 0, s);
  }
  const jitter = rng.uniform() < o.jitterProbability;
  const gain = jitter ? 1 + rng.range(-o.contrastJitter, o.contrastJitter) : 1;
  const offset = jitter ? rng.range(-o.brightnessJitter, o.brightnessJitter) : 0;

  // Inverse map: for each output pixel, where to read in the input.
  const det = a * d - b * c;
  const ia = d / det, ib = -b / det, ic = -c / det, id = a / det;
  const centre = (size - 1) / 2;
  const outImage = new Float32Array(size * size);
  const outMask = new Uint8Array(size * size);
  const pixel = (x: number, y: number) => (x >= 0 && x < size && y >= 0 && y < size ? image[y * size + x] : 0);
  for (let y = 0; y < size; y++) {
    const v = y - centre;
    for (let x = 0; x < size; x++) {
      const u = x - centre;
      const sx = centre + ia * u + ib * v;
      const sy = centre + ic * u + id * v;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      const top = pixel(x0, y0) * (1 - fx) + pixel(x0 + 1, y0) * fx;
      const bottom = pixel(x0, y0 + 1) * (1 - fx) + pixel(x0 + 1, y0 + 1) * fx;
      let value = top * (1 - fy) + bottom * fy;
      if (jitter) value = Math.min(1, Math.max(0, value * gain + offset));
      outImage[y * size + x] = value;
      const mx = Math.round(sx);
      const my = Math.round(sy);
      outMask[y * size + x] = mx >= 0 && mx < size && my >= 0 && my < size ? mask[my * size + mx] : 0;
    }
  }
  return { image: outImage, mask: outMask };
}
