// Sum and mean over chosen axes, recorded for autodiff; the kernels are primitives.ts's sumRaw.

import { record } from '../autograd';
import { assertFloat, normAxis } from '../kernel';
import { Tensor, type Shape } from '../tensor';
import { mulScalar } from './elementwise';
import { expandRaw, sumRaw, sumToRaw } from './primitives';
import { reshape } from './shape';

function normAxes(x: Tensor, axes: number | number[] | undefined, op: string): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = (Array.isArray(axes) ? axes : [axes]).map((a) => normAxis(a, x.rank, op));
  if (new Set(list).size !== list.length) throw new Error(`${op}: repeated axis in [${axes}]`);
  return list.sort((a, b) => a - b);
}

function reducedShape(x: Tensor, axes: number[], keepDims: boolean): number[] {
  return keepDims ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
}

function reduceOp(op: string, x: Tensor, axes: number | number[] | undefined, keepDims: boolean, mean: boolean): Tensor {
  assertFloat(x, op);
  const ax = normAxes(x, axes, op);
  const count = ax.reduce((a, i) => a * x.shape[i], 1);
  const scale = mean ? 1 / Math.max(count, 1) : 1;
  const flat = sumRaw(x, ax, scale, op);
  const y = flat.view(reducedShape(x, ax, keepDims));
  flat.dispose();
  return record(y, op, [x], (g) => {
    // Broadcast g (viewed with kept dims) back over the reduced axes.
    const gk = g.view(reducedShape(x, ax, true));
    const gx = expandRaw(gk, x.shape, `${op} backward`);
    gk.dispose();
    if (!mean) return [gx];
    const scaled = mulScalar(gx, scale);
    gx.dispose();
    return [scaled];
  });
}

/** Sum over `axes` (all when omitted). */
export function sum(x: Tensor, axes?: number | number[], keepDims = false): Tensor {
  return reduceOp('sum', x, axes, keepDims, false);
}

/** Mean over `axes` (all when omitted). */
export function mean(x: Tensor, axes?: number | number[], keepDims = false): Tensor {
  return reduceOp('mean', x, axes, keepDims, true);
}

/** Sum a broadcast result back down to `shape` (the inverse of broadcasting). */
export function sumTo(x: Tensor, shape: Shape): Tensor {
  const flat = sumToRaw(x, shape, 'sumTo');
  // Recorded as a reshape of x's sum: its gradient broadcasts back.
  return record(flat, 'sumTo', [x], (g) => [expandRaw(g, x.shape, 'sumTo backward')]);
}
