// Numpy-style broadcasting (right-aligned, size-1 dimensions stretch), up to rank 4 in kernels:
// the shape arithmetic. The kernels that broadcast are in primitives.ts.

import { stridesOf } from '../kernel';
import type { Shape } from '../tensor';

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
