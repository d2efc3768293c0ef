// Seeded initialisers. Each draws host values from the tensor library's `Rng`, so the same seed
// (and the same order of layer construction) gives the same network on every machine.

import { Rng, type Shape } from '@aunet/tensor';

/** Fills a host array for a parameter of `shape`, drawing from `rng`. */
export type Initializer = (shape: Shape, rng: Rng) => Float32Array;

let defaultRng = new Rng(0);

/** Reset the generator that layers draw from when they are given no `rng` (like torch.manual_seed). */
export function manualSeed(seed: number): void {
  defaultRng = new Rng(seed);
}

/** The generator layers use when given no `rng`. */
export function getDefaultRng(): Rng {
  return defaultRng;
}

const size = (shape: Shape) => shape.reduce((a, b) => a * b, 1);

/**
 * Fan-in and fan-out as PyTorch computes them: for [out, in, ...kernel] the receptive field is
 * the product of the kernel dims; fanIn = in * field, fanOut = out * field. A 1-D shape [n] has
 * fanIn = fanOut = n.
 */
export function fans(shape: Shape): { fanIn: number; fanOut: number } {
  if (shape.length === 0) return { fanIn: 1, fanOut: 1 };
  if (shape.length === 1) return { fanIn: shape[0], fanOut: shape[0] };
  const field = size(shape.slice(2));
  return { fanIn: shape[1] * field, fanOut: shape[0] * field };
}

export interface KaimingOptions {
  /** Gain; default sqrt(2), for ReLU. */
  gain?: number;
  /** Override the fan-in computed from the shape. */
  fanIn?: number;
}

/** He normal: N(0, std^2) with std = gain / sqrt(fanIn), gain sqrt(2) (ReLU). */
export function kaimingNormal(o: KaimingOptions = {}): Initializer {
  return (shape, rng) => {
    const std = (o.gain ?? Math.SQRT2) / Math.sqrt(o.fanIn ?? fans(shape).fanIn);
    const out = new Float32Array(size(shape));
    for (let i = 0; i < out.length; i++) out[i] = std * rng.normal();
    return out;
  };
}

/** He uniform: U(-b, b) with b = gain * sqrt(3 / fanIn), gain sqrt(2) (ReLU). */
export function kaimingUniform(o: KaimingOptions = {}): Initializer {
  return (shape, rng) => {
    const b = (o.gain ?? Math.SQRT2) * Math.sqrt(3 / (o.fanIn ?? fans(shape).fanIn));
    const out = new Float32Array(size(shape));
    for (let i = 0; i < out.length; i++) out[i] = rng.range(-b, b);
    return out;
  };
}

/** Glorot (Xavier) uniform: U(-b, b) with b = gain * sqrt(6 / (fanIn + fanOut)). */
export function glorotUniform(o: { gain?: number } = {}): Initializer {
  return (shape, rng) => {
    const { fanIn, fanOut } = fans(shape);
    const b = (o.gain ?? 1) * Math.sqrt(6 / (fanIn + fanOut));
    const out = new Float32Array(size(shape));
    for (let i = 0; i < out.length; i++) out[i] = rng.range(-b, b);
    return out;
  };
}

/** Alias of `glorotUniform`. */
export const xavier = glorotUniform;

/** Every element `value`. Draws nothing from the generator. */
export function constant(value: number): Initializer {
  return (shape) => new Float32Array(size(shape)).fill(value);
}

/** All zeros (named apart from @aunet/tensor's `zeros`, which makes a tensor). */
export function zerosInit(): Initializer {
  return constant(0);
}

/** All ones (named apart from @aunet/tensor's `ones`). */
export function onesInit(): Initializer {
  return constant(1);
}
