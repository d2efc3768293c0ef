// Creating tensors: from host arrays, constants, seeded random values, copies.

import { empty } from '../kernel';
import { Rng } from '../random';
import { runtime } from '../runtime';
import { Tensor, checkShape, shapeSize, type DType, type Shape } from '../tensor';
import { fill_ } from './primitives';

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
  const t = empty(s, dtype, 'tensor');
  if (n > 0) {
    const host = dtype === 'float32' ? Float32Array.from(values) : dtype === 'int32' ? Int32Array.from(values) : Uint32Array.from(values);
    runtime().write(t.buffer, host);
  }
  return finish(t, options);
}

export { fill_, copy } from './primitives';

/** `full`, naming the operation `op` in errors. */
function filled(op: string, shape: Shape, value: number, options: CreateOptions): Tensor {
  return finish(fill_(empty(shape, options.dtype ?? 'float32', op), value), options);
}

export function full(shape: Shape, value: number, options: CreateOptions = {}): Tensor {
  return filled('full', shape, value, options);
}

export function zeros(shape: Shape, options: CreateOptions = {}): Tensor {
  return filled('zeros', shape, 0, options);
}

export function ones(shape: Shape, options: CreateOptions = {}): Tensor {
  return filled('ones', shape, 1, options);
}

export function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape, { dtype: t.dtype });
}

export function onesLike(t: Tensor): Tensor {
  return ones(t.shape, { dtype: t.dtype });
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
