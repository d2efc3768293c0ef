// Element-wise ops. Each unary op is one table row: its forward WGSL expression in `x` (vec4)
// and its backward expression in `g` (incoming gradient), `x` (input) and `y` (output); `p.a`
// and `p.b` are the op's scalar constants. Binary ops broadcast and reduce their gradients back.

import { record } from '../autograd';
import { ENTRY_1D, assertFloat, empty, grid1d, launch, linearIndex, sameShape, uniformStruct } from '../kernel';
import { Tensor } from '../tensor';
import { binaryRaw, sumToRaw } from './primitives';

interface UnarySpec {
  forward: string;
  backward: string;
}

const HELPERS = `
// A var, not a constant: constant evaluation rejects NaN.
fn nan4() -> vec4<f32> { var bits = 0x7fc00000u; return vec4<f32>(bitcast<f32>(bits)); }
// x^e for a constant e, defined for negative x when e is an integer (as Math.pow).
fn powc(x: vec4<f32>, e: f32) -> vec4<f32> {
  if (e == 0.0) { return vec4<f32>(1.0); }
  let m = exp2(e * log2(abs(x)));
  let isInt = e == round(e);
  let odd = isInt && abs(e - 2.0 * floor(e * 0.5)) == 1.0;
  let neg = x < vec4<f32>(0.0);
  let signed = select(m, -m, neg & vec4<bool>(odd));
  return select(signed, nan4(), neg & vec4<bool>(!isInt));
}`;

const UNARY = {
  neg: { forward: '-x', backward: '-g' },
  exp: { forward: 'exp(x)', backward: 'g * y' },
  log: { forward: 'log(x)', backward: 'g / x' },
  sqrt: { forward: 'sqrt(x)', backward: 'g * 0.5 / y' },
  relu: { forward: 'max(x, vec4<f32>(0.0))', backward: 'select(vec4<f32>(0.0), g, x > vec4<f32>(0.0))' },
  // 1/(1+exp(-x)) saturates to 0 or 1 without NaN at either end.
  sigmoid: { forward: '1.0 / (1.0 + exp(-x))', backward: 'g * y * (1.0 - y)' },
  // x^0 is constant: its gradient is 0 even at x = 0, where powc(x, -1) is infinite.
  pow: { forward: 'powc(x, p.a)', backward: 'select(g * p.a * powc(x, p.a - 1.0), vec4<f32>(0.0), p.a == 0.0)' },
  // The gradient passes where lo <= x <= hi, as in PyTorch.
  clamp: {
    forward: 'clamp(x, vec4<f32>(p.a), vec4<f32>(p.b))',
    backward: 'select(vec4<f32>(0.0), g, (x >= vec4<f32>(p.a)) & (x <= vec4<f32>(p.b)))',
  },
  addScalar: { forward: 'x + p.a', backward: 'g' },
  mulScalar: { forward: 'x * p.a', backward: 'g * p.a' },
} satisfies Record<string, UnarySpec>;

export type UnaryOp = keyof typeof UNARY;

const UNARY_UNIFORMS = uniformStruct('unary', { n4: 'u32', a: 'f32', b: 'f32' });
const HEADER = UNARY_UNIFORMS.wgsl;

function unaryForwardCode(op: UnaryOp): string {
  return `${HEADER}
@group(0) @binding(1) var<storage, read> xs: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> ys: array<vec4<f32>>;
${HELPERS}
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i >= p.n4) { return; }
  let x = xs[i];
  ys[i] = ${UNARY[op].forward};
}`;
}

function unaryBackwardCode(op: UnaryOp): string {
  return `${HEADER}
@group(0) @binding(1) var<storage, read> gs: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> xs: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> ys: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dxs: array<vec4<f32>>;
${HELPERS}
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i >= p.n4) { return; }
  let g = gs[i]; let x = xs[i]; let y = ys[i];
  _ = x; _ = y;
  dxs[i] = ${UNARY[op].backward};
}`;
}

/** Apply a unary op from the table, with constants a and b. */
export function unary(op: UnaryOp, x: Tensor, a = 0, b = 0): Tensor {
  assertFloat(x, op);
  const y = empty(x.shape, 'float32', op);
  const n4 = Math.ceil(x.size / 4);
  const uniforms = UNARY_UNIFORMS.pack({ n4, a, b });
  launch({ kernel: op, code: unaryForwardCode(op), grid: grid1d(n4, 256), bind: [x, y], uniforms });
  return record(y, op, [x], (g) => {
    const dx = empty(x.shape, 'float32', `${op} backward`);
    launch({ kernel: `${op}.backward`, code: unaryBackwardCode(op), grid: grid1d(n4, 256), bind: [g, x, y, dx], uniforms });
    return [dx];
  });
}

export const neg = (x: Tensor) => unary('neg', x);
export const exp = (x: Tensor) => unary('exp', x);
export const log = (x: Tensor) => unary('log', x);
export const sqrt = (x: Tensor) => unary('sqrt', x);
export const relu = (x: Tensor) => unary('relu', x);
export const sigmoid = (x: Tensor) => unary('sigmoid', x);
/** x ** exponent for a constant exponent. */
export const pow = (x: Tensor, exponent: number) => unary('pow', x, exponent);
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  if (!(lo <= hi)) throw new Error(`clamp: lower bound ${lo} is above upper bound ${hi}`);
  return unary('clamp', x, lo, hi);
}
export const addScalar = (x: Tensor, c: number) => unary('addScalar', x, c);
export const mulScalar = (x: Tensor, c: number) => unary('mulScalar', x, c);

// ---- binary ----------------------------------------------------------------------------------

/** The gradient of a broadcast operand: `g` summed back down to `like`'s shape (or `g` itself). */
function gradTo(g: Tensor, like: Tensor, op: string): Tensor {
  return sameShape(g.shape, like.shape) ? g : sumToRaw(g, like.shape, `${op} backward`);
}

/** Like gradTo, for a full-size tensor made here: frees it when it is reduced. */
function reduceOwned(t: Tensor, like: Tensor, op: string): Tensor {
  if (sameShape(t.shape, like.shape)) return t;
  const r = sumToRaw(t, like.shape, `${op} backward`);
  t.dispose();
  return r;
}

export function add(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return addScalar(a, b);
  const out = binaryRaw('add', a, b);
  return record(out, 'add', [a, b], (g) => [
    a.requiresGrad ? gradTo(g, a, 'add') : null,
    b.requiresGrad ? gradTo(g, b, 'add') : null,
  ]);
}

export function sub(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return addScalar(a, -b);
  const out = binaryRaw('sub', a, b);
  return record(out, 'sub', [a, b], (g) => [
    a.requiresGrad ? gradTo(g, a, 'sub') : null,
    b.requiresGrad ? reduceOwned(neg(g), b, 'sub') : null,
  ]);
}

export function mul(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return mulScalar(a, b);
  const out = binaryRaw('mul', a, b);
  return record(out, 'mul', [a, b], (g) => [
    a.requiresGrad ? reduceOwned(binaryRaw('mul', g, b, 'mul backward'), a, 'mul') : null,
    b.requiresGrad ? reduceOwned(binaryRaw('mul', g, a, 'mul backward'), b, 'mul') : null,
  ]);
}

export function div(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return mulScalar(a, 1 / b);
  const out = binaryRaw('div', a, b);
  return record(out, 'div', [a, b], (g) => {
    const ga = a.requiresGrad ? reduceOwned(binaryRaw('div', g, b, 'div backward'), a, 'div') : null;
    let gb: Tensor | null = null;
    if (b.requiresGrad) {
      // d(a/b)/db = -(a/b)/b = -out/b
      const t = binaryRaw('mul', g, out, 'div backward');
      const u = binaryRaw('div', t, b, 'div backward');
      t.dispose();
      gb = reduceOwned(unary('neg', u), b, 'div');
      u.dispose();
    }
    return [ga, gb];
  });
}
