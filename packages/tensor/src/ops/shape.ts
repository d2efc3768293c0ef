// Shape ops: reshape (a view, no copy), concat and slice along an axis (one strided copy kernel).

import { record } from '../autograd';
import { empty, normAxis } from '../kernel';
import { Tensor, shapeSize, type Shape } from '../tensor';
import { copyBlock, fill_ } from './primitives';

/** Same values, new shape (one dimension may be -1). Shares the buffer. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const s = [...shape];
  const free = s.indexOf(-1);
  if (free >= 0) {
    const known = s.reduce((a, d, i) => (i === free ? a : a * d), 1);
    if (known === 0 || x.size % known !== 0) throw new Error(`reshape: cannot reshape [${x.shape}] to [${shape}]`);
    s[free] = x.size / known;
  }
  if (shapeSize(s) !== x.size) throw new Error(`reshape: [${x.shape}] (${x.size} elements) cannot become [${shape}]`);
  const y = x.view(s);
  return record(y, 'reshape', [x], (g) => [g.view(x.shape)]);
}

function outerInner(shape: Shape, axis: number): [number, number] {
  return [shapeSize(shape.slice(0, axis)), shapeSize(shape.slice(axis + 1))];
}

/** The elements [start, start + length) of `axis`. */
export function slice(x: Tensor, axis: number, start: number, length: number): Tensor {
  const a = normAxis(axis, x.rank, 'slice');
  const d = x.shape[a];
  if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > d) {
    throw new Error(`slice: [${start}, ${start + length}) is outside axis ${a} of size ${d} in [${x.shape}]`);
  }
  const shape = x.shape.map((v, i) => (i === a ? length : v));
  const [outer, inner] = outerInner(x.shape, a);
  const y = empty(shape, 'float32', 'slice');
  copyBlock(x, y, outer, length * inner, d * inner, start * inner, length * inner, 0);
  return record(y, 'slice', [x], (g) => {
    const gx = fill_(empty(x.shape, 'float32', 'slice backward'), 0);
    copyBlock(g, gx, outer, length * inner, length * inner, 0, d * inner, start * inner);
    return [gx];
  });
}

/** Join tensors along `axis`; the other dimensions must agree. */
export function concat(xs: Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new Error('concat: no tensors given');
  const a = normAxis(axis, xs[0].rank, 'concat');
  for (const t of xs) {
    if (t.rank !== xs[0].rank || t.shape.some((d, i) => i !== a && d !== xs[0].shape[i])) {
      throw new Error(`concat: shapes [${xs.map((t) => `[${t.shape}]`).join(', ')}] differ outside axis ${a}`);
    }
  }
  const total = xs.reduce((s, t) => s + t.shape[a], 0);
  const shape = xs[0].shape.map((v, i) => (i === a ? total : v));
  const [outer, inner] = outerInner(shape, a);
  const y = empty(shape, 'float32', 'concat');
  let off = 0;
  const offsets = xs.map((t) => {
    const o = off;
    copyBlock(t, y, outer, t.shape[a] * inner, t.shape[a] * inner, 0, total * inner, o * inner);
    off += t.shape[a];
    return o;
  });
  return record(y, 'concat', xs, (g) =>
    xs.map((t, k) => {
      if (!t.requiresGrad) return null;
      const gt = empty(t.shape, 'float32', 'concat backward');
      copyBlock(g, gt, outer, t.shape[a] * inner, total * inner, offsets[k] * inner, t.shape[a] * inner, 0);
      return gt;
    }),
  );
}
