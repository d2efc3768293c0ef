// Creating tensors: from host arrays, constants, seeded random values, copies.

import { ENTRY_1D, Uniforms, empty, launch1d, linearIndex } from '../kernel';
import { Rng } from '../random';
import { runtime } from '../runtime';
import { Tensor, checkShape, shapeSize, type DType, type Shape } from '../tensor';

export interface CreateOptions {
  dtype?: DType;
  requiresGrad?: boolean;
  name?: string;
}

function finish(t: Tensor, o: CreateOptions): Tensor {
  t.requiresGrad = o.requiresGrad ?? false;
  if (o.name) t.name = o.name;
  return t;
}

/** A tensor holding `values` (row-major) with the given shape. */
export function tensor(values: ArrayLike<number>, shape?: Shape, options: CreateOptions = {}): Tensor {
  const s = shape ?? [values.length];
  checkShape(s);
  const n = shapeSize(s);
  if (values.length !== n) throw new Error(`tensor(): ${values.length} values do not fill shape [${s}] (${n} elements)`);
  const dtype = options.dtype ?? 'float32';
  const t = empty(s, dtype);
  if (n > 0) {
    const host = dtype === 'float32' ? Float32Array.from(values) : dtype === 'int32' ? Int32Array.from(values) : Uint32Array.from(values);
    runtime().write(t.buffer, host);
  }
  return finish(t, options);
}

/** WGSL that writes one value (given as raw bits) into every element. */
const FILL = `
struct P { n: u32, bits: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i < p.n) { out[i] = p.bits; }
}`;

/** Fill `t` in place with `value` (interpreted in t's dtype). */
export function fill_(t: Tensor, value: number): Tensor {
  const bits = new DataView(new ArrayBuffer(4));
  if (t.dtype === 'float32') bits.setFloat32(0, value, true);
  else if (t.dtype === 'int32') bits.setInt32(0, value, true);
  else bits.setUint32(0, value, true);
  launch1d('fill', FILL, t.size, 256, [t], new Uniforms().u32(t.size, bits.getUint32(0, true)));
  return t;
}

export function full(shape: Shape, value: number, options: CreateOptions = {}): Tensor {
  return finish(fill_(empty(shape, options.dtype ?? 'float32'), value), options);
}

export function zeros(shape: Shape, options: CreateOptions = {}): Tensor {
  return full(shape, 0, options);
}

export function ones(shape: Shape, options: CreateOptions = {}): Tensor {
  return full(shape, 1, options);
}

export function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape, { dtype: t.dtype });
}

export function onesLike(t: Tensor): Tensor {
  return ones(t.shape, { dtype: t.dtype });
}

const COPY = `
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i < p.n) { dst[i] = src[i]; }
}`;

/** A new tensor with the same values (not recorded for autodiff). */
export function copy(t: Tensor): Tensor {
  const out = empty(t.shape, t.dtype);
  launch1d('copy', COPY, t.size, 256, [t, out], new Uniforms().u32(t.size));
  return out;
}

export interface RandomOptions extends CreateOptions {
  /** Seed for a fresh generator; ignored when `rng` is given. Default 0. */
  seed?: number;
  /** Generator to draw from (advances it), for reproducible sequences of tensors. */
  rng?: Rng;
}

function hostRandom(shape: Shape, o: RandomOptions, draw: (r: Rng) => number): Tensor {
  const rng = o.rng ?? new Rng(o.seed ?? 0);
  const n = shapeSize(shape);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = draw(rng);
  return tensor(v, shape, o);
}

/** Normal values with the given mean and standard deviation, from a seeded generator. */
export function randn(shape: Shape, options: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  const mean = options.mean ?? 0;
  const std = options.std ?? 1;
  return hostRandom(shape, options, (r) => mean + std * r.normal());
}

/** Uniform values in [low, high), from a seeded generator. */
export function rand(shape: Shape, options: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  const low = options.low ?? 0;
  const high = options.high ?? 1;
  return hostRandom(shape, options, (r) => r.range(low, high));
}
