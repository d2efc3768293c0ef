// Segmentation losses: the five sums behind soft Dice and (focal) Tversky, computed in one pass
// over p and g, and BCE with logits.
//
// `tverskySums` reduces over ALL elements of the batch (shape [5], not per sample): the paper's
// losses are batch-level soft scores, and a batch-level sum is also what keeps a slice without
// lesion (sum g = 0) from giving a degenerate per-sample score. A per-sample variant would be
// `tverskySums` on each sample's slice.
//
// Passes: forward one read of p and g by many workgroups of blocked partial sums (one per 4K
// elements, up to 256 workgroups), then a 5-output second pass over the partials;
// backward one element-wise pass (dp = c0 + c1*g, and dg = c0' + c1'*p when g needs a gradient).
// The scalar losses are one tiny kernel on the five sums (and one for its gradient), so a loss is
// two recorded ops: sums, then loss-from-sums.

import { record } from '../autograd';
import { ENTRY_1D, assertFloat, empty, grid1d, launch, linearIndex, sameShape, uniformStruct } from '../kernel';
import { Tensor } from '../tensor';
import { SUM_PARTS, SUM_PARTS_UNIFORMS, blockedVec4Sums } from './planes';

const WG = 64;
const FLAT_REDUCE_UNIFORMS = uniformStruct('flatReduce', { n: 'u32', n4: 'u32', chunk: 'u32', parts: 'u32' });

/** WGSL of a flat reduction of k sums over n elements read as vec4: workgroup = part. */
function flatReduceCode(k: number, decls: string, body: string): string {
  const js = Array.from({ length: k }, (_, j) => j);
  return `
${FLAT_REDUCE_UNIFORMS.wgsl}
${decls}
var<workgroup> red: array<f32, ${WG * k}>;
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let part = wid.x;
  let q0 = part * p.chunk; let q1 = min(q0 + p.chunk, p.n4);
  ${blockedVec4Sums(js, 'q0 + lid.x', 'q1', WG, '(vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u)) < vec4<u32>(p.n)', body)}
  if (lid.x == 0u) { ${js.map((j) => `out[part * ${k}u + ${j}u] = red[${j * WG}u];`).join(' ')} }
}`;
}

/** Run a flat k-sum reduction over `n` elements of `inputs` and return the k sums times `scale`. */
function flatReduce(kernel: string, code: string, k: number, n: number, inputs: Tensor[], scale: number): Tensor {
  const n4 = Math.ceil(n / 4);
  // Many workgroups for large inputs (lavapipe runs one per CPU thread), at least 1024 quads each.
  const parts = Math.max(1, Math.min(256, Math.ceil(n4 / 1024)));
  const chunk = Math.ceil(n4 / parts);
  const partial = empty([parts * k], 'float32', kernel);
  launch({ kernel, code, grid: [parts], bind: [...inputs, partial], uniforms: FLAT_REDUCE_UNIFORMS.pack({ n, n4, chunk, parts }) });
  const out = empty([k], 'float32', kernel);
  launch({ kernel: `${kernel}.parts`, code: SUM_PARTS, grid: grid1d(k, 64), bind: [partial, out], uniforms: SUM_PARTS_UNIFORMS.pack({ n: k, k, parts, scale }) });
  partial.dispose();
  return out;
}

// ---- tverskySums ------------------------------------------------------------------------------

const SUMS = flatReduceCode(5, `
@group(0) @binding(1) var<storage, read> ps: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gs: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;`,
`let pv = select(vec4<f32>(0.0), ps[q], inside); let gv = select(vec4<f32>(0.0), gs[q], inside);
    let t0 = pv * gv; let t1 = pv; let t2 = gv; let t3 = pv * (1.0 - gv); let t4 = (1.0 - pv) * gv;`);

// d = (G[a0] + G[a1]) + (G0 - G3 - G4) * other: dp (a0 = 1, a1 = 3, other = g) or dg (a0 = 2, a1 = 4, other = p).
const SUMS_BACKWARD_UNIFORMS = uniformStruct('tverskySums.backward', { n4: 'u32', a0: 'u32', a1: 'u32' });
const SUMS_BACKWARD = `
${SUMS_BACKWARD_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> gsum: array<f32>;
@group(0) @binding(2) var<storage, read> other: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> d: array<vec4<f32>>;
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i >= p.n4) { return; }
  let c0 = gsum[p.a0] + gsum[p.a1];
  let c1 = gsum[0] - gsum[3] - gsum[4];
  d[i] = c0 + c1 * other[i];
}`;

/**
 * [sum(p*g), sum(p), sum(g), sum(p*(1-g)), sum((1-p)*g)] over all elements (the whole batch),
 * shape [5], in one pass over p and g. Differentiable in p (and in g).
 */
export function tverskySums(p: Tensor, g: Tensor): Tensor {
  assertFloat(p, 'tverskySums');
  assertFloat(g, 'tverskySums');
  if (!sameShape(p.shape, g.shape)) throw new Error(`tverskySums: predictions [${p.shape}] and targets [${g.shape}] differ in shape`);
  const out = flatReduce('tverskySums', SUMS, 5, p.size, [p, g], 1);
  return record(out, 'tverskySums', [p, g], (gs) => {
    const n4 = Math.ceil(p.size / 4);
    const grad = (other: Tensor, a0: number, a1: number) => {
      const d = empty(other.shape, 'float32', 'tverskySums backward');
      launch({ kernel: 'tverskySums.backward', code: SUMS_BACKWARD, grid: grid1d(n4, 256), bind: [gs, other, d], uniforms: SUMS_BACKWARD_UNIFORMS.pack({ n4, a0, a1 }) });
      return d;
    };
    return [p.requiresGrad ? grad(g, 1, 3) : null, g.requiresGrad ? grad(p, 2, 4) : null];
  });
}

// ---- losses from the five sums ----------------------------------------------------------------

// kind 0 Dice, 1 Tversky, 2 focal Tversky. Sums s = [TP, sum p, sum g, FP, FN].
const LOSS_UNIFORMS = uniformStruct('lossFromSums', { kind: 'u32', alpha: 'f32', beta: 'f32', gamma: 'f32', sm: 'f32' });
const LOSS_COMMON = `
${LOSS_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> s: array<f32>;
// (loss, dL/dTP, dL/dsum p, dL/dsum g, dL/dFP, dL/dFN) as value and 5 partials.
fn loss(grad: ptr<function, array<f32, 5>>) -> f32 {
  let tp = s[0]; let sp = s[1]; let sg = s[2]; let fp = s[3]; let fn_ = s[4];
  if (p.kind == 0u) {
    let num = 2.0 * tp + p.sm; let den = sp + sg + p.sm;
    (*grad)[0] = -2.0 / den; (*grad)[1] = num / (den * den); (*grad)[2] = num / (den * den); (*grad)[3] = 0.0; (*grad)[4] = 0.0;
    return 1.0 - num / den;
  }
  let num = tp + p.sm; let den = tp + p.alpha * fn_ + p.beta * fp + p.sm;
  let ti = num / den;
  let q = num / (den * den);
  // dTI/ds
  var d = array<f32, 5>(1.0 / den - q, 0.0, 0.0, -p.beta * q, -p.alpha * q);
  var scale = -1.0;
  var value = 1.0 - ti;
  if (p.kind == 2u) {
    let e = 1.0 / p.gamma;
    let u = max(1.0 - ti, 0.0);
    value = select(pow(max(u, 1e-30), e), 0.0, u <= 0.0);
    // d(u^e)/dTI = -e u^(e-1), with u clamped away from 0 where e < 1 makes it infinite.
    scale = -e * pow(max(u, 1e-6), e - 1.0);
  }
  for (var k = 0u; k < 5u; k++) { (*grad)[k] = scale * d[k]; }
  // max() and the clamps above turn a NaN index into 0 (a perfect loss): pass NaN on, so that a
  // diverged network is seen. Tested on the bits, which no fast-math assumption can fold away.
  if ((bitcast<u32>(ti) & 0x7fffffffu) > 0x7f800000u) { return ti; }
  return value;
}`;

const LOSS_FORWARD = `${LOSS_COMMON}
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn main() {
  var g: array<f32, 5>;
  out[0] = loss(&g);
}`;

const LOSS_BACKWARD = `${LOSS_COMMON}
@group(0) @binding(2) var<storage, read> gl: array<f32>;
@group(0) @binding(3) var<storage, read_write> ds: array<f32>;
@compute @workgroup_size(1) fn main() {
  var g: array<f32, 5>;
  _ = loss(&g);
  for (var k = 0u; k < 5u; k++) { ds[k] = g[k] * gl[0]; }
}`;

interface SumsLossOptions {
  kind: 0 | 1 | 2;
  alpha: number;
  beta: number;
  gamma: number;
  smooth: number;
}

/** A scalar loss (shape []) of the five sums. */
function lossFromSums(name: string, sums: Tensor, o: SumsLossOptions): Tensor {
  const uniforms = LOSS_UNIFORMS.pack({ kind: o.kind, alpha: o.alpha, beta: o.beta, gamma: o.gamma, sm: o.smooth });
  const out = empty([], 'float32', name);
  launch({ kernel: name, code: LOSS_FORWARD, grid: [1], bind: [sums, out], uniforms });
  return record(out, name, [sums], (g) => {
    const ds = empty([5], 'float32', `${name} backward`);
    launch({ kernel: `${name}.backward`, code: LOSS_BACKWARD, grid: [1], bind: [sums, g, ds], uniforms });
    return [ds];
  });
}

function sumsLoss(name: string, p: Tensor, g: Tensor, o: SumsLossOptions): Tensor {
  for (const [k, v] of Object.entries(o)) if (!Number.isFinite(v)) throw new Error(`${name}: ${k} must be a finite number, got ${v}`);
  const sums = tverskySums(p, g);
  return lossFromSums(name, sums, o);
}

export interface DiceOptions {
  /** Added to numerator and denominator (default 1). */
  smooth?: number;
}

/**
 * Soft Dice loss over the batch: 1 - (2 sum(p*g) + smooth) / (sum p + sum g + smooth). `p` are
 * probabilities (apply `sigmoid` to logits first), `g` the target of the same shape; shape [].
 */
export function diceLoss(p: Tensor, g: Tensor, o: DiceOptions = {}): Tensor {
  return sumsLoss('diceLoss', p, g, { kind: 0, alpha: 0, beta: 0, gamma: 1, smooth: o.smooth ?? 1 });
}

export interface TverskyOptions {
  /** Weight of false negatives (default 0.7, as the paper). */
  alpha?: number;
  /** Weight of false positives (default 0.3). */
  beta?: number;
  /** Added to numerator and denominator (default 1). */
  smooth?: number;
}

/**
 * Tversky loss over the batch: 1 - TI, TI = (TP + s) / (TP + alpha*FN + beta*FP + s), with
 * TP = sum(p*g), FN = sum((1-p)*g) and FP = sum(p*(1-g)) (paper: alpha 0.7, beta 0.3).
 */
export function tverskyLoss(p: Tensor, g: Tensor, o: TverskyOptions = {}): Tensor {
  return sumsLoss('tverskyLoss', p, g, { kind: 1, alpha: o.alpha ?? 0.7, beta: o.beta ?? 0.3, gamma: 1, smooth: o.smooth ?? 1 });
}

export interface FocalTverskyOptions extends TverskyOptions {
  /** Focal parameter: FTL = (1 - TI)^(1/gamma) (default 4/3, as the paper). */
  gamma?: number;
}

/**
 * Focal Tversky loss (1 - TI)^(1/gamma), TI as in {@link tverskyLoss} (paper: alpha 0.7, beta
 * 0.3, gamma 4/3). Its gradient uses max(1 - TI, 1e-6) so that a perfect prediction gives a
 * finite (large) gradient, not Inf.
 */
export function focalTverskyLoss(p: Tensor, g: Tensor, o: FocalTverskyOptions = {}): Tensor {
  const gamma = o.gamma ?? 4 / 3;
  if (!(gamma > 0)) throw new Error(`focalTverskyLoss: gamma must be positive, got ${gamma}`);
  return sumsLoss('focalTverskyLoss', p, g, { kind: 2, alpha: o.alpha ?? 0.7, beta: o.beta ?? 0.3, gamma, smooth: o.smooth ?? 1 });
}

// ---- BCE with logits --------------------------------------------------------------------------

const BCE = flatReduceCode(1, `
@group(0) @binding(1) var<storage, read> xs: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> ts: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;`,
`let x = select(vec4<f32>(0.0), xs[q], inside); let t = select(vec4<f32>(0.0), ts[q], inside);
    let t0 = max(x, vec4<f32>(0.0)) - x * t + log(1.0 + exp(-abs(x)));`);

// which 0: dlogits = G (sigmoid(x) - t) / n; which 1: dtarget = -G x / n.
const BCE_BACKWARD_UNIFORMS = uniformStruct('bceWithLogits.backward', { n4: 'u32', which: 'u32', invN: 'f32' });
const BCE_BACKWARD = `
${BCE_BACKWARD_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> gl: array<f32>;
@group(0) @binding(2) var<storage, read> xs: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> ts: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> d: array<vec4<f32>>;
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i >= p.n4) { return; }
  let k = gl[0] * p.invN;
  let x = xs[i];
  if (p.which == 0u) { d[i] = k * (1.0 / (1.0 + exp(-x)) - ts[i]); } else { d[i] = -k * x; }
}`;

/**
 * Mean binary cross-entropy of sigmoid(logits) against targets, computed stably as
 * max(x,0) - x*t + log(1 + exp(-|x|)); shape []. Gradient (sigmoid(x) - t) / n.
 */
export function bceWithLogits(logits: Tensor, target: Tensor): Tensor {
  assertFloat(logits, 'bceWithLogits');
  assertFloat(target, 'bceWithLogits');
  if (!sameShape(logits.shape, target.shape)) throw new Error(`bceWithLogits: logits [${logits.shape}] and targets [${target.shape}] differ in shape`);
  const n = logits.size;
  if (n === 0) throw new Error('bceWithLogits: empty input');
  const flat = flatReduce('bceWithLogits', BCE, 1, n, [logits, target], 1 / n);
  const out = flat.view([]);
  flat.dispose();
  return record(out, 'bceWithLogits', [logits, target], (g) => {
    const n4 = Math.ceil(n / 4);
    const grad = (which: number) => {
      const d = empty(logits.shape, 'float32', 'bceWithLogits backward');
      launch({
        kernel: 'bceWithLogits.backward', code: BCE_BACKWARD, grid: grid1d(n4, 256), bind: [g, logits, target, d],
        uniforms: BCE_BACKWARD_UNIFORMS.pack({ n4, which, invN: 1 / n }),
      });
      return d;
    };
    return [logits.requiresGrad ? grad(0) : null, target.requiresGrad ? grad(1) : null];
  });
}
