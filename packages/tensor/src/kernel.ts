// What every kernel uses: its uniforms declared once (the WGSL struct and the host packing come
// from one declaration, keyed by field name), the one launch helper, the 1-D invocation index,
// and small shape utilities.

import { grid1d, runtime, type StorageBinding } from './runtime';
import { Tensor, type DType, type Shape } from './tensor';

export { UniformStruct, uniformStruct, fields4, values4, type UniformScalar } from './uniforms';

/**
 * The entry point of a 1-D kernel of workgroup size `wg`, launched over `grid1d(n, wg)`
 * workgroups (which spreads past 65535 workgroups onto y); its body starts with
 * {@link linearIndex}.
 */
export const ENTRY_1D = (wg: number) =>
  `@compute @workgroup_size(${wg}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>)`;

/** WGSL line recovering the linear invocation index, as `name`, in a kernel entered by {@link ENTRY_1D}. */
export function linearIndex(wg: number, name = 'i'): string {
  return `let ${name} = (wid.y * nwg.x + wid.x) * ${wg}u + lid.x;`;
}

export interface Launch {
  /** Kernel name, for labels and error messages. */
  kernel: string;
  /** Complete WGSL source (pipelines are cached by it). */
  code: string;
  /** Workgroup counts; for 1-D kernels `grid1d(invocations, workgroupSize)`. */
  grid: [number, number?, number?];
  /** Storage buffers in binding order (@binding(1), (2), ...). */
  bind: readonly (Tensor | StorageBinding)[];
  /** Packed uniforms (from {@link UniformStruct.pack}), bound at @binding(0). */
  uniforms?: Uint8Array;
  /** Floating-point operations of the work (2 per multiply-add), for the profile's rates. */
  flops?: number;
}

/** The one way ops launch a kernel. Nothing is launched when the grid is empty. */
export function launch(l: Launch): void {
  if (l.grid.some((g) => g === 0)) return;
  runtime().dispatch({
    kernel: l.kernel,
    code: l.code,
    workgroups: l.grid,
    storage: l.bind.map((b) => (b instanceof Tensor ? b.binding() : b)),
    uniforms: l.uniforms,
    flops: l.flops,
  });
}

export { grid1d };

/**
 * A new uninitialised tensor (its buffer may hold old values). `op` names the operation that
 * allocates it, in the errors of a tensor too large for the adapter or an allocation that ran out
 * of memory (ops pass their public name, with " backward" in gradients).
 */
export function empty(shape: Shape, dtype: DType = 'float32', op?: string): Tensor {
  return new Tensor([...shape], dtype, undefined, false, op);
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

/**
 * WGSL: decode the linear index `index` over 4-D dims (d0,) `dims`1..3 (uniform fields) into
 * coordinates `c`0..3. Used by every kernel that walks a padded 4-D shape.
 */
export function wgslCoords4(index: string, dims: string, c = 'c'): string {
  return `let ${c}3 = ${index} % p.${dims}3; let ${c}_t2 = ${index} / p.${dims}3; let ${c}2 = ${c}_t2 % p.${dims}2; let ${c}_t1 = ${c}_t2 / p.${dims}2; let ${c}1 = ${c}_t1 % p.${dims}1; let ${c}0 = ${c}_t1 / p.${dims}1;`;
}
