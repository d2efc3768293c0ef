// Numpy-style broadcasting (right-aligned, size-1 dimensions stretch), up to rank 4 in kernels.

import { ENTRY_1D, Uniforms, empty, launch1d, linearIndex, sameShape, stridesOf } from '../kernel';
import { Tensor, type Shape } from '../tensor';

export const MAX_RANK = 4;

export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`${op}: shapes [${a}] and [${b}] cannot be broadcast together`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides of `shape` read as if broadcast to `out` (0 along stretched dims), padded on the left to rank 4. */
export function broadcastStrides(shape: Shape, out: Shape, op: string): number[] {
  if (out.length > MAX_RANK) throw new Error(`${op}: rank ${out.length} is above the supported ${MAX_RANK}`);
  const s = stridesOf(shape);
  const res = new Array<number>(MAX_RANK).fill(0);
  for (let i = 0; i < out.length; i++) {
    const j = shape.length - out.length + i;
    if (j >= 0 && shape[j] !== 1) res[MAX_RANK - out.length + i] = s[j];
  }
  return res;
}

/** Output dims padded on the left to rank 4. */
export function pad4(shape: Shape): number[] {
  return [...new Array<number>(MAX_RANK - shape.length).fill(1), ...shape];
}

/** WGSL: the broadcast source offset `name` for output index `i`, with uniform fields d1..d3 and `prefix`0..3. */
export function wgslBroadcastOffset(name: string, prefix: string): string {
  return `let ${name} = c0 * p.${prefix}0 + c1 * p.${prefix}1 + c2 * p.${prefix}2 + c3 * p.${prefix}3;`;
}

/** WGSL: output coordinates c0..c3 of linear index `i` over dims (d0,) d1, d2, d3. */
export const WGSL_COORDS = `let c3 = i % p.d3; let t2 = i / p.d3; let c2 = t2 % p.d2; let t1 = t2 / p.d2; let c1 = t1 % p.d1; let c0 = t1 / p.d1;`;

const EXPAND = `
struct P { n: u32, d1: u32, d2: u32, d3: u32, s0: u32, s1: u32, s2: u32, s3: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i >= p.n) { return; }
  ${WGSL_COORDS}
  ${wgslBroadcastOffset('ix', 's')}
  out[i] = x[ix];
}`;

/** Broadcast `x` to `shape` (a copy; not recorded for autodiff: callers record it). */
export function expandRaw(x: Tensor, shape: Shape): Tensor {
  broadcastShapes(x.shape, shape, 'expand');
  const out = empty(shape);
  if (sameShape(x.shape, shape)) {
    launchCopy(x, out);
    return out;
  }
  const d = pad4(shape);
  const s = broadcastStrides(x.shape, shape, 'expand');
  launch1d('expand', EXPAND, out.size, 256, [x, out], new Uniforms().u32(out.size, d[1], d[2], d[3], ...s));
  return out;
}

function launchCopy(x: Tensor, out: Tensor): void {
  launch1d('expand', EXPAND, out.size, 256, [x, out], new Uniforms().u32(out.size, 1, 1, out.size, 0, 0, 0, 1));
}
