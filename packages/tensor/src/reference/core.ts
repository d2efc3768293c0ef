// The float64 reference: plain loops over Float64Array, written for clarity, not speed. The GPU
// ops are tested against it: most against the function of the same name here, the element-wise
// ones against `unaryRef(op)` and `binary(op)`, the losses against `sumsLoss`. Every `...Backward`
// here (a vector-Jacobian product) is tested against central finite differences of the forward.

export interface Ref {
  shape: number[];
  data: Float64Array;
}

export function ref(data: ArrayLike<number>, shape: number[]): Ref {
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new Error(`ref: ${data.length} values for shape [${shape}]`);
  return { shape: [...shape], data: Float64Array.from(data) };
}

export function refZeros(shape: number[]): Ref {
  return { shape: [...shape], data: new Float64Array(shape.reduce((a, b) => a * b, 1)) };
}

export function strides(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

function unravel(i: number, shape: number[]): number[] {
  const c = new Array<number>(shape.length);
  for (let k = shape.length - 1; k >= 0; k--) {
    c[k] = i % shape[k];
    i = Math.floor(i / shape[k]);
  }
  return c;
}

export function broadcastShape(a: number[], b: number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`broadcast [${a}] [${b}]`);
    out.push(Math.max(da, db));
  }
  return out;
}

/** Index into `shape` of the element that broadcasts to output coordinates `c`. */
function bIndex(c: number[], shape: number[]): number {
  const st = strides(shape);
  let idx = 0;
  for (let k = 0; k < shape.length; k++) {
    const ck = c[c.length - shape.length + k];
    idx += (shape[k] === 1 ? 0 : ck) * st[k];
  }
  return idx;
}

// ---- element-wise ------------------------------------------------------------------------------

export const unaryRef = {
  neg: { f: (x: number) => -x, df: (_x: number, _y: number) => -1 },
  exp: { f: Math.exp, df: (_x: number, y: number) => y },
  log: { f: Math.log, df: (x: number) => 1 / x },
  sqrt: { f: Math.sqrt, df: (_x: number, y: number) => 0.5 / y },
  relu: { f: (x: number) => Math.max(x, 0), df: (x: number) => (x > 0 ? 1 : 0) },
  sigmoid: { f: (x: number) => 1 / (1 + Math.exp(-x)), df: (_x: number, y: number) => y * (1 - y) },
} as const;

export function unary(op: keyof typeof unaryRef, x: Ref): Ref {
  return { shape: [...x.shape], data: x.data.map(unaryRef[op].f) };
}

export function unaryBackward(op: keyof typeof unaryRef, x: Ref, g: Ref): Ref {
  const f = unaryRef[op];
  return { shape: [...x.shape], data: x.data.map((v, i) => g.data[i] * f.df(v, f.f(v))) };
}

export function pow(x: Ref, e: number): Ref {
  return { shape: [...x.shape], data: x.data.map((v) => Math.pow(v, e)) };
}
export function powBackward(x: Ref, e: number, g: Ref): Ref {
  return { shape: [...x.shape], data: x.data.map((v, i) => g.data[i] * e * Math.pow(v, e - 1)) };
}

export function clamp(x: Ref, lo: number, hi: number): Ref {
  return { shape: [...x.shape], data: x.data.map((v) => Math.min(Math.max(v, lo), hi)) };
}
export function clampBackward(x: Ref, lo: number, hi: number, g: Ref): Ref {
  return { shape: [...x.shape], data: x.data.map((v, i) => (v >= lo && v <= hi ? g.data[i] : 0)) };
}

export function scale(x: Ref, c: number): Ref {
  return { shape: [...x.shape], data: x.data.map((v) => v * c) };
}

export function addScalar(x: Ref, c: number): Ref {
  return { shape: [...x.shape], data: x.data.map((v) => v + c) };
}

export type BinaryRefOp = 'add' | 'sub' | 'mul' | 'div';
const BIN: Record<BinaryRefOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
};

export function binary(op: BinaryRefOp, a: Ref, b: Ref): Ref {
  const shape = broadcastShape(a.shape, b.shape);
  const out = refZeros(shape);
  for (let i = 0; i < out.data.length; i++) {
    const c = unravel(i, shape);
    out.data[i] = BIN[op](a.data[bIndex(c, a.shape)], b.data[bIndex(c, b.shape)]);
  }
  return out;
}

/** Gradients of a broadcast binary op with respect to both operands. */
export function binaryBackward(op: BinaryRefOp, a: Ref, b: Ref, g: Ref): [Ref, Ref] {
  const ga = refZeros(a.shape);
  const gb = refZeros(b.shape);
  for (let i = 0; i < g.data.length; i++) {
    const c = unravel(i, g.shape);
    const ia = bIndex(c, a.shape);
    const ib = bIndex(c, b.shape);
    const x = a.data[ia];
    const y = b.data[ib];
    const gi = g.data[i];
    const [da, db] = op === 'add' ? [1, 1] : op === 'sub' ? [1, -1] : op === 'mul' ? [y, x] : [1 / y, -x / (y * y)];
    ga.data[ia] += gi * da;
    gb.data[ib] += gi * db;
  }
  return [ga, gb];
}

// ---- reductions ---------------------------------------------------------------------------------

export function sum(x: Ref, axes: number[] | undefined, keepDims = false, mean = false): Ref {
  const ax = (axes ?? x.shape.map((_, i) => i)).map((a) => (a < 0 ? a + x.shape.length : a));
  const keptShape = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const out = refZeros(keptShape);
  const count = ax.reduce((a, i) => a * x.shape[i], 1);
  for (let i = 0; i < x.data.length; i++) {
    const c = unravel(i, x.shape);
    out.data[bIndex(c, keptShape)] += x.data[i];
  }
  if (mean) for (let i = 0; i < out.data.length; i++) out.data[i] /= count;
  out.shape = keepDims ? keptShape : x.shape.filter((_, i) => !ax.includes(i));
  return out;
}

export function sumBackward(x: Ref, axes: number[] | undefined, g: Ref, mean = false): Ref {
  const ax = (axes ?? x.shape.map((_, i) => i)).map((a) => (a < 0 ? a + x.shape.length : a));
  const keptShape = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const count = ax.reduce((a, i) => a * x.shape[i], 1);
  const out = refZeros(x.shape);
  for (let i = 0; i < out.data.length; i++) {
    out.data[i] = g.data[bIndex(unravel(i, x.shape), keptShape)] / (mean ? count : 1);
  }
  return out;
}

// ---- matmul, shapes -----------------------------------------------------------------------------

export function matmul(a: Ref, b: Ref): Ref {
  const [m, k] = a.shape;
  const n = b.shape[1];
  const out = refZeros([m, n]);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a.data[i * k + t] * b.data[t * n + j];
      out.data[i * n + j] = s;
    }
  return out;
}

export function matmulBackward(a: Ref, b: Ref, g: Ref): [Ref, Ref] {
  const [m, k] = a.shape;
  const n = b.shape[1];
  const ga = refZeros([m, k]);
  const gb = refZeros([k, n]);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++)
      for (let t = 0; t < k; t++) {
        ga.data[i * k + t] += g.data[i * n + j] * b.data[t * n + j];
        gb.data[t * n + j] += a.data[i * k + t] * g.data[i * n + j];
      }
  return [ga, gb];
}

export function slice(x: Ref, axis: number, start: number, length: number): Ref {
  const shape = x.shape.map((d, i) => (i === axis ? length : d));
  const out = refZeros(shape);
  const st = strides(x.shape);
  for (let i = 0; i < out.data.length; i++) {
    const c = unravel(i, shape);
    c[axis] += start;
    out.data[i] = x.data[c.reduce((a, v, k) => a + v * st[k], 0)];
  }
  return out;
}

export function sliceBackward(x: Ref, axis: number, start: number, g: Ref): Ref {
  const out = refZeros(x.shape);
  const st = strides(x.shape);
  for (let i = 0; i < g.data.length; i++) {
    const c = unravel(i, g.shape);
    c[axis] += start;
    out.data[c.reduce((a, v, k) => a + v * st[k], 0)] = g.data[i];
  }
  return out;
}

export function concat(xs: Ref[], axis: number): Ref {
  const total = xs.reduce((s, x) => s + x.shape[axis], 0);
  const shape = xs[0].shape.map((d, i) => (i === axis ? total : d));
  const out = refZeros(shape);
  let off = 0;
  for (const x of xs) {
    const ost = strides(shape);
    for (let i = 0; i < x.data.length; i++) {
      const c = unravel(i, x.shape);
      c[axis] += off;
      out.data[c.reduce((a, v, k) => a + v * ost[k], 0)] = x.data[i];
    }
    off += x.shape[axis];
  }
  return out;
}

export function concatBackward(xs: Ref[], axis: number, g: Ref): Ref[] {
  let off = 0;
  return xs.map((x) => {
    const r = slice(g, axis, off, x.shape[axis]);
    off += x.shape[axis];
    return r;
  });
}

// ---- checking ------------------------------------------------------------------------------------

/**
 * Central finite differences of sum(f(x) * g) with respect to x, in float64, at the given
 * element indices (all when omitted: each costs two evaluations of f).
 */
export function finiteDifference(f: (x: Ref) => Ref, x: Ref, g: Ref, h = 1e-6, indices?: number[]): Float64Array {
  const at = indices ?? Array.from(x.data, (_, i) => i);
  const grad = new Float64Array(at.length);
  const probe: Ref = { shape: x.shape, data: Float64Array.from(x.data) };
  const dot = (y: Ref) => y.data.reduce((s, v, i) => s + v * g.data[i], 0);
  at.forEach((i, k) => {
    const v = x.data[i];
    probe.data[i] = v + h;
    const up = dot(f(probe));
    probe.data[i] = v - h;
    const down = dot(f(probe));
    probe.data[i] = v;
    grad[k] = (up - down) / (2 * h);
  });
  return grad;
}

/**
 * Relative error in the max norm: max_i |a_i - b_i| / max(max_i |b_i|, 1e-6). One element off by more than
 * tol times the tensor's scale fails, while float32 rounding of long sums (whose error scales
 * with the terms, not with a result that happens to be near zero) passes. NaN, an infinity that
 * differs, or a length mismatch gives Infinity. `scale`, when given, replaces max_i |b_i|: a sum
 * that cancels to near zero is measured against the sum of its terms' magnitudes, the scale of
 * its float32 rounding error.
 */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>, scale?: number): number {
  if (actual.length !== expected.length) return Infinity;
  let largest = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const b = expected[i];
    if (!Number.isFinite(a) || !Number.isFinite(b)) {
      if (a === b) continue; // equal infinities; NaN never equals anything
      return Infinity;
    }
    largest = Math.max(largest, Math.abs(b));
    worst = Math.max(worst, Math.abs(a - b));
  }
  // A floor on the scale, so that an all-zero expectation tolerates float32 rounding residue.
  return worst / Math.max(scale ?? largest, 1e-6);
}
