// Tensor: a shape, a dtype and a reference-counted GPU buffer, plus the autodiff record of the
// op that made it. Memory is explicit: `dispose()`, or a `scope`/`tidy` that frees what was
// created inside it.

import { TensorSizeError } from './errors';
import { runtime, type StorageBinding } from './runtime';

export type DType = 'float32' | 'int32' | 'uint32';
export type Shape = readonly number[];
export type TypedArrayFor<D extends DType> = D extends 'float32' ? Float32Array : D extends 'int32' ? Int32Array : Uint32Array;

/** The autodiff record of an op: its inputs and the vector-Jacobian product. */
export interface GradFn {
  op: string;
  inputs: Tensor[];
  /** Given dL/d(output), return dL/d(input) per input (null where no gradient is needed). */
  backward: (grad: Tensor) => (Tensor | null)[];
  /** The profile section the op ran in (see profileSection); its backward is timed there too. */
  section?: string;
}

/** A GPU buffer shared by a tensor and its reshaped views. */
class Storage {
  refs = 1;
  constructor(
    readonly buffer: GPUBuffer,
    readonly bytes: number,
  ) {}
  release(): void {
    if (--this.refs === 0) runtime().pool.release(this.buffer);
  }
}

let nextId = 1;

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(shape: Shape, what = 'shape'): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`Invalid ${what} [${shape}]: dimensions must be non-negative integers`);
  }
}

export class Tensor {
  readonly id = nextId++;
  readonly size: number;
  requiresGrad: boolean;
  /** Accumulated gradient of a leaf tensor after `backward()`. Kept out of scopes; free it with `zeroGrad`/`dispose`. */
  grad: Tensor | null = null;
  gradFn: GradFn | null = null;
  name?: string;
  private storage: Storage | null;

  /** Internal: tensors are made by the creation functions and ops (`op` names the one allocating, for errors). */
  constructor(
    readonly shape: Shape,
    readonly dtype: DType,
    storage?: Storage,
    requiresGrad = false,
    op?: string,
  ) {
    checkShape(shape);
    this.size = shapeSize(shape);
    if (storage) {
      storage.refs++;
      this.storage = storage;
    } else {
      const bytes = Math.max(this.size * 4, 4);
      const rt = runtime();
      const limit = rt.adapter.limits.maxStorageBufferBindingSize;
      if (bytes > limit) throw new TensorSizeError([...shape], bytes, limit, op, rt.adapter.limits.maxBufferSize);
      this.storage = new Storage(rt.pool.acquire(bytes, op), bytes);
      if (rt.poisonNewBuffers) rt.fillWords(this.storage.buffer, 0x7fc00000);
    }
    this.requiresGrad = requiresGrad;
    track(this);
  }

  get rank(): number {
    return this.shape.length;
  }

  get disposed(): boolean {
    return this.storage === null;
  }

  /** The GPU buffer; throws if the tensor was disposed. */
  get buffer(): GPUBuffer {
    return this.live().buffer;
  }

  /** Storage binding covering this tensor's elements, rounded up to 16 bytes so vec4 kernels can bind it. */
  binding(): StorageBinding {
    const s = this.live();
    return { buffer: s.buffer, size: Math.min(s.buffer.size, Math.ceil(Math.max(this.size * 4, 4) / 16) * 16) };
  }

  private live(): Storage {
    if (!this.storage) throw new Error(`Tensor #${this.id}${this.name ? ` "${this.name}"` : ''} [${this.shape}] was disposed and cannot be used`);
    return this.storage;
  }

  /** A tensor with a new shape over the same buffer (no copy); used by `reshape`. */
  view(shape: Shape): Tensor {
    return new Tensor(shape, this.dtype, this.live());
  }

  /** Copy the values back to the host. Flushes pending GPU work. */
  async data(): Promise<TypedArrayFor<DType>> {
    const s = this.live();
    const bytes = await runtime().read(s.buffer, this.size * 4);
    if (this.dtype === 'float32') return new Float32Array(bytes);
    if (this.dtype === 'int32') return new Int32Array(bytes);
    return new Uint32Array(bytes);
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item() needs a tensor of one element, got shape [${this.shape}]`);
    return (await this.data())[0];
  }

  /** Values as nested-free plain array (for small tensors and tests). */
  async array(): Promise<number[]> {
    return Array.from(await this.data());
  }

  /** Free the GPU buffer (once the last view of it is disposed). Safe to call twice. */
  dispose(): void {
    if (!this.storage) return;
    this.storage.release();
    this.storage = null;
    // gradFn stays: a freed intermediate that no backward rule reads still links the graph.
    untrack(this);
  }

  toString(): string {
    return `Tensor(#${this.id}, [${this.shape}], ${this.dtype}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

// ---- scopes ----------------------------------------------------------------------------------

const scopes: Set<Tensor>[] = [];

function track(t: Tensor): void {
  if (scopes.length) scopes[scopes.length - 1].add(t);
}

function untrack(t: Tensor): void {
  for (const s of scopes) s.delete(t);
}

/** Exclude `t` from every open scope, so that it survives their end. Returns `t`. */
export function keep<T extends Tensor>(t: T): T {
  untrack(t);
  return t;
}

function collectTensors(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 4 || value === null || typeof value !== 'object') return;
  if (value instanceof Tensor) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collectTensors(v, out, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collectTensors(v, out, depth + 1);
}

function endScope(result: unknown): void {
  const mine = scopes.pop()!;
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  for (const t of mine) if (!survivors.has(t)) t.dispose();
  // Returned tensors now belong to the enclosing scope, if any.
  for (const t of survivors) if (mine.has(t)) track(t);
}

/**
 * Run `fn` and dispose every tensor created inside it, except the tensors it returns
 * (directly, or inside arrays and plain objects) and those passed to `keep()`.
 */
export function tidy<T>(fn: () => T): T {
  scopes.push(new Set());
  let result: T;
  try {
    result = fn();
  } catch (e) {
    endScope(undefined);
    throw e;
  }
  if (result instanceof Promise) {
    endScope(undefined);
    throw new Error('tidy() takes a synchronous function; use `await scope(async () => ...)`');
  }
  endScope(result);
  return result;
}

/** Like `tidy`, for async functions. Scopes nest; do not interleave two scopes concurrently. */
export async function scope<T>(fn: () => Promise<T> | T): Promise<T> {
  scopes.push(new Set());
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    endScope(undefined);
    throw e;
  }
  endScope(result);
  return result;
}

/** Dispose several tensors (null entries are skipped). */
export function dispose(...ts: (Tensor | null | undefined | (Tensor | null | undefined)[])[]): void {
  for (const t of ts.flat()) t?.dispose();
}
