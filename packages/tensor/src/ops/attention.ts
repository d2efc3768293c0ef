// The AU-Net's attention (Zhou, Canu and Ruan 2020), as one recorded op per block:
//   channel attention  out = x * a[n,c],  a = sigmoid(W2 relu(W1 s + b1) + b2),  s = mean_hw(x)
//   spatial attention  out = x * m[n,p],  m = sigmoid(sum_c w[c] x[n,c,p] + b)
//   dual attention     out = x * (a[n,c] + m[n,p])  (= channel + spatial, fused)
// W1 is [C/r, C], W2 [C, C/r] (r = 2 in the paper, any hidden size works); w holds C values (a
// conv1x1 weight [1,C,1,1] or [C]) and b one.
//
// Passes over the activation (A = a tensor the size of x; per-pixel [N,H*W] and per-plane [N,C]
// tensors are 1/C and 1/(H*W) of that and not counted):
//   forward   1 read of x for the plane means (channel part), then one per-pixel kernel that
//             computes m (one read of x, spatial part) and out = x * (a + m) (one read, one write).
//   backward  dz = (sum_c g*x) * m*(1-m) per pixel (reads g and x; spatial part); one plane
//             reduction giving sum_p g*x (channel part) and sum_p dz*x (for dw) together (reads g
//             and x); then dx = g*(a + m) + ds[n,c]/HW + dz[n,p]*w[c] in one pass (reads g, writes
//             dx), where ds is the gradient of the plane means through the small FC layers.
// The FC layers on [N, C] run in three tiny kernels (forward, input gradient, weight gradient),
// inside the same op, so that the gradient of the plane means joins dx in that single final pass
// instead of an extra add over the activation.

import { record } from '../autograd';
import { ENTRY_1D, empty, grid1d, launch, linearIndex, uniformStruct } from '../kernel';
import { Tensor } from '../tensor';
import { PLANE_REDUCE_FIELDS, SUM_PARTS, SUM_PARTS_UNIFORMS, planeBuffer, planeGeom, planeParts, planeReduceCode, type PlaneGeom } from './planes';
import { sumRaw } from './primitives';

export interface ChannelAttentionParams {
  /** [C/r, C] */
  w1: Tensor;
  /** [C/r] */
  b1: Tensor;
  /** [C, C/r] */
  w2: Tensor;
  /** [C] */
  b2: Tensor;
}

export interface SpatialAttentionParams {
  /** C values: the 1x1 conv weight ([1,C,1,1] or [C]). */
  w: Tensor;
  /** One value. */
  b: Tensor;
}

// ---- small fully connected layers on [N, I] ---------------------------------------------------

const FC_UNIFORMS = uniformStruct('attention.fc', { n: 'u32', i: 'u32', o: 'u32', act: 'u32' });

// y[n,o] = act(sum_i x[n,i] W[o,i] + b[o]); act 0 none, 1 relu, 2 sigmoid.
const FC_FORWARD = `
${FC_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
${ENTRY_1D(64)} {
  ${linearIndex(64, 'k')}
  if (k >= p.n * p.o) { return; }
  let n = k / p.o; let o = k % p.o;
  var acc = b[o];
  for (var i = 0u; i < p.i; i++) { acc += x[n * p.i + i] * w[o * p.i + i]; }
  if (p.act == 1u) { acc = max(acc, 0.0); }
  if (p.act == 2u) { acc = 1.0 / (1.0 + exp(-acc)); }
  y[k] = acc;
}`;

// dIn[n,i] = (sum_o dpre[n,o] W[o,i]) * (relu ? in[n,i] > 0 : 1): the input gradient, times the
// derivative of the relu that made the input when act == 1 (giving the pre-activation gradient).
const FC_BACKWARD_INPUT = `
${FC_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> dpre: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> inp: array<f32>;
@group(0) @binding(4) var<storage, read_write> din: array<f32>;
${ENTRY_1D(64)} {
  ${linearIndex(64, 'k')}
  if (k >= p.n * p.i) { return; }
  let n = k / p.i; let i = k % p.i;
  var acc = 0.0;
  for (var o = 0u; o < p.o; o++) { acc += dpre[n * p.o + o] * w[o * p.i + i]; }
  if (p.act == 1u && !(inp[k] > 0.0)) { acc = 0.0; }
  din[k] = acc;
}`;

// dW[o,i] = sum_n dpre[n,o] in[n,i]; db[o] = sum_n dpre[n,o] (invocations with i == I).
const FC_BACKWARD_WEIGHTS = `
${FC_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> dpre: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;
@group(0) @binding(4) var<storage, read_write> db: array<f32>;
${ENTRY_1D(64)} {
  ${linearIndex(64, 'k')}
  let cols = p.i + 1u;
  if (k >= p.o * cols) { return; }
  let o = k / cols; let i = k % cols;
  var acc = 0.0;
  if (i == p.i) {
    for (var n = 0u; n < p.n; n++) { acc += dpre[n * p.o + o]; }
    db[o] = acc;
  } else {
    for (var n = 0u; n < p.n; n++) { acc += dpre[n * p.o + o] * inp[n * p.i + i]; }
    dw[o * p.i + i] = acc;
  }
}`;

function fcLaunch(kernel: string, code: string, threads: number, bind: Tensor[], n: number, i: number, o: number, act: number): void {
  launch({ kernel, code, grid: grid1d(threads, 64), bind, uniforms: FC_UNIFORMS.pack({ n, i, o, act }) });
}

// ---- activation kernels -----------------------------------------------------------------------

const GAP_UNIFORMS = uniformStruct('attention.mean', PLANE_REDUCE_FIELDS);
const GAP = (vec: boolean) =>
  planeReduceCode(1, GAP_UNIFORMS,
    `${planeBuffer('x', 1, 'read', vec)}
@group(0) @binding(2) var<storage, read_write> out: array<f32>;`, '', 'let t0 = ld_x(base, q);');

// One invocation per (sample, quad of pixels), looping over channels. flags: 1 channel, 2 spatial.
const PIXEL_UNIFORMS = uniformStruct('attention.pixels', { hw: 'u32', q: 'u32', n: 'u32', c: 'u32', flags: 'u32' });
const FORWARD = (vec: boolean) => `
${PIXEL_UNIFORMS.wgsl}
${planeBuffer('x', 1, 'read', vec)}
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> b: array<f32>;
${planeBuffer('m', 5, 'read_write', vec)}
${planeBuffer('y', 6, 'read_write', vec)}
${ENTRY_1D(64)} {
  ${linearIndex(64)}
  if (i >= p.n * p.q) { return; }
  let n = i / p.q; let q = i % p.q;
  let first = n * p.c;
  var mv = vec4<f32>(0.0);
  if ((p.flags & 2u) != 0u) {
    var z = vec4<f32>(b[0]);
    for (var c = 0u; c < p.c; c++) { z += w[c] * ld_x((first + c) * p.hw, q); }
    mv = 1.0 / (1.0 + exp(-z));
    st_m(n * p.hw, q, mv);
  }
  let useA = (p.flags & 1u) != 0u;
  for (var c = 0u; c < p.c; c++) {
    let base = (first + c) * p.hw;
    let av = select(0.0, a[first + c], useA);
    st_y(base, q, ld_x(base, q) * (av + mv));
  }
}`;

// dz[n,p] = (sum_c g*x) * m * (1 - m).
const BACKWARD_DZ = (vec: boolean) => `
${PIXEL_UNIFORMS.wgsl}
${planeBuffer('g', 1, 'read', vec)}
${planeBuffer('x', 2, 'read', vec)}
${planeBuffer('m', 3, 'read', vec)}
${planeBuffer('dz', 4, 'read_write', vec)}
${ENTRY_1D(64)} {
  ${linearIndex(64)}
  if (i >= p.n * p.q) { return; }
  let n = i / p.q; let q = i % p.q;
  var dm = vec4<f32>(0.0);
  for (var c = 0u; c < p.c; c++) {
    let base = (n * p.c + c) * p.hw;
    dm += ld_g(base, q) * ld_x(base, q);
  }
  let mv = ld_m(n * p.hw, q);
  st_dz(n * p.hw, q, dm * mv * (1.0 - mv));
}`;

// Per (plane, part): t0 = sum g*x (channel part), t1 = sum dz*x (spatial part).
const BACKWARD_REDUCE_UNIFORMS = uniformStruct('attention.backward.reduce', { ...PLANE_REDUCE_FIELDS, c: 'u32', flags: 'u32' });
const BACKWARD_REDUCE = (vec: boolean) =>
  planeReduceCode(2, BACKWARD_REDUCE_UNIFORMS,
    `${planeBuffer('g', 1, 'read', vec)}
${planeBuffer('x', 2, 'read', vec)}
${planeBuffer('dz', 3, 'read', vec)}
@group(0) @binding(4) var<storage, read_write> out: array<f32>;`,
    'let pix = (plane / p.c) * p.hw; let useA = (p.flags & 1u) != 0u; let useM = (p.flags & 2u) != 0u;',
    `let xv = ld_x(base, q); var t0 = vec4<f32>(0.0); var t1 = vec4<f32>(0.0);
    if (useA) { t0 = ld_g(base, q) * xv; }
    if (useM) { t1 = ld_dz(pix, q) * xv; }`);

// One invocation per channel: dpre2[n,c] = (sum_p g*x) * a * (1 - a); dw[c] = sum_n sum_p dz*x.
const BACKWARD_FINALIZE_UNIFORMS = uniformStruct('attention.backward.finalize', { n: 'u32', c: 'u32', parts: 'u32', flags: 'u32' });
const BACKWARD_FINALIZE = `
${BACKWARD_FINALIZE_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> dpre: array<f32>;
@group(0) @binding(4) var<storage, read_write> dw: array<f32>;
${ENTRY_1D(64)} {
  ${linearIndex(64, 'c')}
  if (c >= p.c) { return; }
  var w = 0.0;
  for (var n = 0u; n < p.n; n++) {
    let plane = n * p.c + c;
    var da = 0.0;
    for (var t = 0u; t < p.parts; t++) { da += partial[(plane * p.parts + t) * 2u]; w += partial[(plane * p.parts + t) * 2u + 1u]; }
    if ((p.flags & 1u) != 0u) { let av = a[plane]; dpre[plane] = da * av * (1.0 - av); }
  }
  if ((p.flags & 2u) != 0u) { dw[c] = w; }
}`;

// coef[plane] = (a, ds / HW, w[c], 0), zero for the absent part.
const COEF_UNIFORMS = uniformStruct('attention.backward.coef', { planes: 'u32', c: 'u32', flags: 'u32', invHw: 'f32' });
const COEF = `
${COEF_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> ds: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> coef: array<vec4<f32>>;
${ENTRY_1D(64)} {
  ${linearIndex(64, 'pl')}
  if (pl >= p.planes) { return; }
  var k = vec4<f32>(0.0);
  if ((p.flags & 1u) != 0u) { k.x = a[pl]; k.y = ds[pl] * p.invHw; }
  if ((p.flags & 2u) != 0u) { k.z = w[pl % p.c]; }
  coef[pl] = k;
}`;

// dx = g * (a + m) + ds/HW + dz * w[c], per (sample, quad), looping over channels.
const BACKWARD_DX = (vec: boolean) => `
${PIXEL_UNIFORMS.wgsl}
${planeBuffer('g', 1, 'read', vec)}
${planeBuffer('m', 2, 'read', vec)}
${planeBuffer('dz', 3, 'read', vec)}
@group(0) @binding(4) var<storage, read> coef: array<vec4<f32>>;
${planeBuffer('dx', 5, 'read_write', vec)}
${ENTRY_1D(64)} {
  ${linearIndex(64)}
  if (i >= p.n * p.q) { return; }
  let n = i / p.q; let q = i % p.q;
  var mv = vec4<f32>(0.0); var dzv = vec4<f32>(0.0);
  if ((p.flags & 2u) != 0u) { mv = ld_m(n * p.hw, q); dzv = ld_dz(n * p.hw, q); }
  for (var c = 0u; c < p.c; c++) {
    let plane = n * p.c + c; let base = plane * p.hw;
    let k = coef[plane];
    st_dx(base, q, ld_g(base, q) * (k.x + mv) + (k.y + dzv * k.z));
  }
}`;

// ---- the op -----------------------------------------------------------------------------------

function expectShape(t: Tensor, shape: number[], what: string, op: string): void {
  if (t.dtype !== 'float32') throw new Error(`${op}: ${what} must be float32, got ${t.dtype}`);
  if (t.rank !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${op}: ${what} has shape [${t.shape}], expected [${shape}]`);
  }
}

function expectSize(t: Tensor, size: number, what: string, op: string): void {
  if (t.dtype !== 'float32') throw new Error(`${op}: ${what} must be float32, got ${t.dtype}`);
  if (t.size !== size) throw new Error(`${op}: ${what} has shape [${t.shape}] (${t.size} values), expected ${size}`);
}

function attention(op: string, x: Tensor, ca: ChannelAttentionParams | null, sa: SpatialAttentionParams | null): Tensor {
  const g = planeGeom(x, op);
  const hd = ca ? ca.w1.shape[0] : 0;
  if (ca) {
    if (ca.w1.rank !== 2) throw new Error(`${op}: w1 must be [hidden, C], got [${ca.w1.shape}]`);
    expectShape(ca.w1, [hd, g.c], 'w1', op);
    expectSize(ca.b1, hd, 'b1', op);
    expectShape(ca.w2, [g.c, hd], 'w2', op);
    expectSize(ca.b2, g.c, 'b2', op);
  }
  if (sa) {
    expectSize(sa.w, g.c, 'w', op);
    expectSize(sa.b, 1, 'b', op);
  }
  const flags = (ca ? 1 : 0) | (sa ? 2 : 0);
  const saved: Tensor[] = [];
  // Channel part: plane means s, hidden h, weights a (all [N, *], tiny).
  let s: Tensor | null = null;
  let h: Tensor | null = null;
  let a: Tensor | null = null;
  if (ca) {
    s = planeSums(x, g, 1 / g.hw, op);
    h = empty([g.n * hd], 'float32', op);
    fcLaunch('attention.fc', FC_FORWARD, g.n * hd, [s, ca.w1, ca.b1, h], g.n, g.c, hd, 1);
    a = empty([g.n * g.c], 'float32', op);
    fcLaunch('attention.fc', FC_FORWARD, g.n * g.c, [h, ca.w2, ca.b2, a], g.n, hd, g.c, 2);
    saved.push(s, h, a);
  }
  const m = sa ? empty([g.n, 1, ...x.shape.slice(2)], 'float32', op) : null;
  if (m) saved.push(m);
  const y = empty(x.shape, 'float32', op);
  // Without the spatial part the kernel never touches `m`, but WebGPU forbids binding one buffer
  // twice as writable, so it gets a small dummy rather than y.
  const mb = m ?? empty([4], 'float32', op);
  launch({
    kernel: op, code: FORWARD(g.vec), grid: grid1d(g.n * g.q, 64),
    bind: [x, a ?? x, sa?.w ?? x, sa?.b ?? x, mb, y], uniforms: PIXEL_UNIFORMS.pack({ hw: g.hw, q: g.q, n: g.n, c: g.c, flags }),
  });
  if (!m) mb.dispose();
  const inputs = [x, ...(ca ? [ca.w1, ca.b1, ca.w2, ca.b2] : []), ...(sa ? [sa.w, sa.b] : [])];
  const out = record(y, op, inputs, (gy) => backwardAttention(op, g, x, gy, ca, sa, s, h, a, m));
  if (!out.gradFn) for (const t of saved) t.dispose();
  return out;
}

/** Per-plane sums of x times `scale`, [N*C]. */
function planeSums(x: Tensor, g: PlaneGeom, scale: number, op: string): Tensor {
  const { parts, chunk } = planeParts(g);
  const partial = empty([g.planes * parts], 'float32', op);
  launch({ kernel: 'attention.mean', code: GAP(g.vec), grid: [parts, g.planes], bind: [x, partial], uniforms: GAP_UNIFORMS.pack({ hw: g.hw, q: g.q, parts, chunk }) });
  const out = empty([g.planes], 'float32', op);
  launch({
    kernel: 'attention.mean.parts', code: SUM_PARTS, grid: grid1d(g.planes, 64), bind: [partial, out],
    uniforms: SUM_PARTS_UNIFORMS.pack({ n: g.planes, k: 1, parts, scale }),
  });
  partial.dispose();
  return out;
}

function backwardAttention(
  op: string, g: PlaneGeom, x: Tensor, gy: Tensor, ca: ChannelAttentionParams | null, sa: SpatialAttentionParams | null,
  s: Tensor | null, h: Tensor | null, a: Tensor | null, m: Tensor | null,
): (Tensor | null)[] {
  const flags = (ca ? 1 : 0) | (sa ? 2 : 0);
  const hd = ca ? ca.w1.shape[0] : 0;
  const temps: Tensor[] = [];
  const where = `${op} backward`;
  const tmp = (shape: number[]) => {
    const t = empty(shape, 'float32', where);
    temps.push(t);
    return t;
  };
  // Spatial part: dz per pixel.
  let dz: Tensor | null = null;
  if (sa) {
    dz = tmp([g.n * g.hw]);
    launch({
      kernel: `${op}.backward.dz`, code: BACKWARD_DZ(g.vec), grid: grid1d(g.n * g.q, 64),
      bind: [gy, x, m!, dz], uniforms: PIXEL_UNIFORMS.pack({ hw: g.hw, q: g.q, n: g.n, c: g.c, flags }),
    });
  }
  // One plane reduction for both parts.
  const { parts, chunk } = planeParts(g);
  const partial = tmp([g.planes * parts * 2]);
  launch({
    kernel: `${op}.backward.reduce`, code: BACKWARD_REDUCE(g.vec), grid: [parts, g.planes],
    bind: [gy, x, dz ?? x, partial], uniforms: BACKWARD_REDUCE_UNIFORMS.pack({ hw: g.hw, q: g.q, parts, chunk, c: g.c, flags }),
  });
  const dpre2 = tmp([g.planes]);
  const dw = sa ? empty(sa.w.shape, 'float32', where) : tmp([1]);
  launch({
    kernel: `${op}.backward.finalize`, code: BACKWARD_FINALIZE, grid: grid1d(g.c, 64),
    bind: [partial, a ?? partial, dpre2, dw], uniforms: BACKWARD_FINALIZE_UNIFORMS.pack({ n: g.n, c: g.c, parts, flags }),
  });
  // Channel part: back through the two FC layers to the plane means.
  let grads: (Tensor | null)[] = [];
  let ds: Tensor | null = null;
  if (ca) {
    const dw2 = empty(ca.w2.shape, 'float32', where);
    const db2 = empty(ca.b2.shape, 'float32', where);
    fcLaunch('attention.fc.backward.weights', FC_BACKWARD_WEIGHTS, g.c * (hd + 1), [dpre2, h!, dw2, db2], g.n, hd, g.c, 0);
    const dpre1 = tmp([g.n * hd]);
    fcLaunch('attention.fc.backward.input', FC_BACKWARD_INPUT, g.n * hd, [dpre2, ca.w2, h!, dpre1], g.n, hd, g.c, 1);
    const dw1 = empty(ca.w1.shape, 'float32', where);
    const db1 = empty(ca.b1.shape, 'float32', where);
    fcLaunch('attention.fc.backward.weights', FC_BACKWARD_WEIGHTS, hd * (g.c + 1), [dpre1, s!, dw1, db1], g.n, g.c, hd, 0);
    ds = tmp([g.planes]);
    fcLaunch('attention.fc.backward.input', FC_BACKWARD_INPUT, g.n * g.c, [dpre1, ca.w1, s!, ds], g.n, g.c, hd, 0);
    grads = [dw1, db1, dw2, db2];
  }
  let dx: Tensor | null = null;
  if (x.requiresGrad) {
    const coef = tmp([g.planes * 4]);
    launch({
      kernel: `${op}.backward.coef`, code: COEF, grid: grid1d(g.planes, 64),
      bind: [a ?? partial, ds ?? partial, sa?.w ?? partial, coef], uniforms: COEF_UNIFORMS.pack({ planes: g.planes, c: g.c, flags, invHw: 1 / g.hw }),
    });
    dx = empty(x.shape, 'float32', where);
    launch({
      kernel: `${op}.backward.dx`, code: BACKWARD_DX(g.vec), grid: grid1d(g.n * g.q, 64),
      bind: [gy, m ?? gy, dz ?? gy, coef, dx], uniforms: PIXEL_UNIFORMS.pack({ hw: g.hw, q: g.q, n: g.n, c: g.c, flags }),
    });
  }
  if (sa) {
    const total = sumRaw(dz!, [0], 1, where);
    const db = total.view(sa.b.shape);
    total.dispose();
    grads.push(dw, db);
  }
  for (const t of temps) t.dispose();
  return [dx, ...grads];
}

/** Channel attention (squeeze and excitation): x * sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2)[n,c]. */
export function channelAttention(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor): Tensor {
  return attention('channelAttention', x, { w1, b1, w2, b2 }, null);
}

/** Spatial attention: x * sigmoid(sum_c w[c] x[n,c,h,w] + b) (a 1x1 conv to one channel). */
export function spatialAttention(x: Tensor, w: Tensor, b: Tensor): Tensor {
  return attention('spatialAttention', x, null, { w, b });
}

/** The paper's attention block: channelAttention(x) + spatialAttention(x), fused into one op. */
export function dualAttention(x: Tensor, ca: ChannelAttentionParams, sa: SpatialAttentionParams): Tensor {
  return attention('dualAttention', x, ca, sa);
}
