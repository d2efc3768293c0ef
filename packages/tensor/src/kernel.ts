// Small helpers shared by the op files: uniform packing, launching, shape utilities.

import { grid1d, runtime } from './runtime';
import { Tensor, type DType, type Shape } from './tensor';

/** Packs uniform fields in declaration order; every field is a 4-byte u32, i32 or f32. */
export class Uniforms {
  private readonly view: DataView;
  private offset = 0;
  constructor(fields = 32) {
    this.view = new DataView(new ArrayBuffer(fields * 4));
  }
  u32(...vs: number[]): this {
    for (const v of vs) {
      this.view.setUint32(this.offset, v >>> 0, true);
      this.offset += 4;
    }
    return this;
  }
  i32(...vs: number[]): this {
    for (const v of vs) {
      this.view.setInt32(this.offset, v, true);
      this.offset += 4;
    }
    return this;
  }
  f32(...vs: number[]): this {
    for (const v of vs) {
      this.view.setFloat32(this.offset, v, true);
      this.offset += 4;
    }
    return this;
  }
  bytes(): Uint8Array {
    // Uniform bindings are sized in multiples of 16 bytes.
    return new Uint8Array(this.view.buffer, 0, Math.max(16, Math.ceil(this.offset / 16) * 16));
  }
}

/** WGSL line recovering the linear invocation index, as `name`, from a `grid1d` dispatch of workgroup size `wg`. */
export function linearIndex(wg: number, name = 'i'): string {
  return `let ${name} = (wid.y * nwg.x + wid.x) * ${wg}u + lid.x;`;
}

export const ENTRY_1D = (wg: number) =>
  `@compute @workgroup_size(${wg}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>)`;

/** Launch a 1-D kernel over `n` invocations. */
export function launch1d(kernel: string, code: string, n: number, wg: number, tensors: Tensor[], uniforms?: Uniforms): void {
  if (n === 0) return;
  runtime().dispatch({
    kernel,
    code,
    workgroups: grid1d(n, wg),
    storage: tensors.map((t) => t.binding()),
    uniforms: uniforms?.bytes(),
  });
}

/** A new uninitialised tensor (its buffer may hold old values). */
export function empty(shape: Shape, dtype: DType = 'float32'): Tensor {
  return new Tensor([...shape], dtype);
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Row-major strides. */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export function assertFloat(t: Tensor, op: string): void {
  if (t.dtype !== 'float32') throw new Error(`${op}: expected a float32 tensor, got ${t.dtype} ${t}`);
}

/** Normalise an axis (negative counts from the end) and check it. */
export function normAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new Error(`${op}: axis ${axis} is out of range for rank ${rank}`);
  return a;
}
