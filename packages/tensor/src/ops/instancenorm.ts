// Instance normalisation (PyTorch's InstanceNorm2d, biased variance): per sample and channel,
// y = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c] over the H*W plane.
//
// Forward: 2 passes over the activation (the minimum: the statistics must be known before any
// output is written).
//   1. `instanceNorm.stats`: workgroup (part, plane), 64 threads striding over the plane in quads
//      (vec4 loads when H*W % 4 == 0). Each thread-lane accumulates shifted sums of (x - K) and
//      (x - K)^2, K = the first value that lane sees (so there is no E[x^2] - E[x]^2 cancellation
//      unless one value lies many standard deviations from the rest), in blocked partial sums;
//      lanes, threads and parts are merged as (count, mean, M2) triples with Chan's formula.
//      Planes are split into parts when N*C < 64 so that enough workgroups run.
//   2. `instanceNorm.finalize` (one invocation per plane, tiny) merges the parts and writes
//      (mean, rstd, rstd*gamma, beta) per plane, kept for the backward.
//   3. `instanceNorm.apply`: y = (x - mean) * (rstd*gamma) + beta, one vec4 load and store per quad.
// Backward: 2 passes over the activation.
//   1. `instanceNorm.backward.reduce`: per plane, sum g and sum g*(x - mean) (one read of g and x).
//   2. `instanceNorm.backward.finalize` (one invocation per channel, tiny): dbeta[c] = sum g,
//      dgamma[c] = sum g*xhat, and per plane the coefficients of dx = a*g + b*(x - mean) + c0 with
//      a = rstd*gamma, b = -a*rstd*mean(g*xhat), c0 = -a*mean(g).
//   3. `instanceNorm.backward.apply`: dx (one read of g and x, one write).
// instanceNormRelu fuses the blocks' epilogue, relu(IN(x) + residual), into those passes: the
// apply pass adds the residual and clamps; the backward reads the output y for the ReLU's mask
// (g * (y > 0)) in both passes and writes the residual's gradient beside dx. Neither the
// normalised nor the summed tensor is written or kept for the backward: two fewer passes over the
// activation forward, one backward, and two fewer saved activations per res_dil block.

import { record } from '../autograd';
import { ENTRY_1D, empty, grid1d, launch, linearIndex, uniformStruct } from '../kernel';
import { Tensor } from '../tensor';
import { LANES, PLANE_REDUCE_FIELDS, RWG, planeBuffer, planeGeom, planeParts, planeReduceCode, type PlaneGeom } from './planes';

const REDUCE_UNIFORMS = uniformStruct('instanceNorm.reduce', PLANE_REDUCE_FIELDS);
const FINALIZE_UNIFORMS = uniformStruct('instanceNorm.finalize', { planes: 'u32', c: 'u32', parts: 'u32', flags: 'u32', eps: 'f32' });
const APPLY_UNIFORMS = uniformStruct('instanceNorm.apply', { hw: 'u32', q: 'u32' });
const BACKWARD_FINALIZE_UNIFORMS = uniformStruct('instanceNorm.backward.finalize', { n: 'u32', c: 'u32', parts: 'u32', flags: 'u32', hw: 'f32' });

const STATS = (vec: boolean) => `
${REDUCE_UNIFORMS.wgsl}
${planeBuffer('x', 1, 'read', vec)}
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
${LANES}
// Merge two (count, mean, M2) triples (Chan et al.).
fn chan(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  let n = a.x + b.x;
  if (b.x == 0.0) { return a; }
  if (a.x == 0.0) { return b; }
  let d = b.y - a.y;
  return vec3<f32>(n, a.y + d * (b.x / n), (a.z + b.z) + d * d * (a.x * b.x / n));
}
fn lane(n: f32, k: f32, s1: f32, s2: f32) -> vec3<f32> {
  if (n == 0.0) { return vec3<f32>(0.0); }
  return vec3<f32>(n, k + s1 / n, max(s2 - s1 * (s1 / n), 0.0));
}
var<workgroup> wn: array<f32, ${RWG}>;
var<workgroup> wm: array<f32, ${RWG}>;
var<workgroup> w2: array<f32, ${RWG}>;
@compute @workgroup_size(${RWG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let part = wid.x; let plane = wid.y;
  let base = plane * p.hw;
  let q0 = part * p.chunk; let q1 = min(q0 + p.chunk, p.q);
  var shift = vec4<f32>(0.0);
  if (q0 + lid.x < q1) { shift = ld_x(base, q0 + lid.x); }
  var a1 = vec4<f32>(0.0); var m1 = vec4<f32>(0.0); var s1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0); var m2 = vec4<f32>(0.0); var s2 = vec4<f32>(0.0);
  var cnt = vec4<f32>(0.0);
  var k = 0u;
  for (var q = q0 + lid.x; q < q1; q += ${RWG}u) {
    let inside = lanes(q);
    let d = select(vec4<f32>(0.0), ld_x(base, q) - shift, inside);
    s1 += d; s2 += d * d;
    cnt += select(vec4<f32>(0.0), vec4<f32>(1.0), inside);
    k++;
    if ((k & 31u) == 0u) {
      m1 += s1; s1 = vec4<f32>(0.0); m2 += s2; s2 = vec4<f32>(0.0);
      if ((k & 1023u) == 0u) { a1 += m1; m1 = vec4<f32>(0.0); a2 += m2; m2 = vec4<f32>(0.0); }
    }
  }
  let t1 = (a1 + m1) + s1; let t2 = (a2 + m2) + s2;
  var r = chan(chan(lane(cnt.x, shift.x, t1.x, t2.x), lane(cnt.y, shift.y, t1.y, t2.y)),
               chan(lane(cnt.z, shift.z, t1.z, t2.z), lane(cnt.w, shift.w, t1.w, t2.w)));
  wn[lid.x] = r.x; wm[lid.x] = r.y; w2[lid.x] = r.z;
  // A tree over the lanes as primitives.ts's workgroupTreeSum, merging triples instead of adding.
  workgroupBarrier();
  for (var s = ${RWG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      let m = chan(vec3<f32>(wn[lid.x], wm[lid.x], w2[lid.x]), vec3<f32>(wn[lid.x + s], wm[lid.x + s], w2[lid.x + s]));
      wn[lid.x] = m.x; wm[lid.x] = m.y; w2[lid.x] = m.z;
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) { out[plane * p.parts + part] = vec4<f32>(wn[0], wm[0], w2[0], 0.0); }
}`;

// stats[plane] = (mean, rstd, rstd * gamma[c], beta[c]).
const FINALIZE = `
${FINALIZE_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> partial: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<vec4<f32>>;
${ENTRY_1D(64)} {
  ${linearIndex(64, 'plane')}
  if (plane >= p.planes) { return; }
  var r = vec3<f32>(0.0);
  for (var t = 0u; t < p.parts; t++) {
    let b = partial[plane * p.parts + t].xyz;
    if (b.x > 0.0) {
      if (r.x == 0.0) { r = b; } else {
        let n = r.x + b.x; let d = b.y - r.y;
        r = vec3<f32>(n, r.y + d * (b.x / n), (r.z + b.z) + d * d * (r.x * b.x / n));
      }
    }
  }
  let c = plane % p.c;
  let rstd = 1.0 / sqrt(r.z / max(r.x, 1.0) + p.eps);
  let g = select(1.0, gamma[c], (p.flags & 1u) != 0u);
  let b = select(0.0, beta[c], (p.flags & 2u) != 0u);
  stats[plane] = vec4<f32>(r.y, rstd, rstd * g, b);
}`;

/** What follows the affine: a residual added (an extra input) and a ReLU. */
interface Epilogue {
  residual: boolean;
  relu: boolean;
}

const PLAIN: Epilogue = { residual: false, relu: false };

// Element-wise over planes: workgroup (x: 256 quads, y: plane), 4 quads per thread, strided.
const APPLY = (vec: boolean, e: Epilogue) => `
${APPLY_UNIFORMS.wgsl}
${planeBuffer('x', 1, 'read', vec)}
@group(0) @binding(2) var<storage, read> stats: array<vec4<f32>>;
${planeBuffer('y', 3, 'read_write', vec)}
${e.residual ? planeBuffer('res', 4, 'read', vec) : ''}
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let plane = wid.y; let base = plane * p.hw;
  let s = stats[plane];
  for (var k = 0u; k < 4u; k++) {
    let q = wid.x * 256u + k * 64u + lid.x;
    if (q < p.q) {
      var v = (ld_x(base, q) - s.x) * s.z + s.w;
      ${e.residual ? 'v += ld_res(base, q);' : ''}
      ${e.relu ? 'v = max(v, vec4<f32>(0.0));' : ''}
      st_y(base, q, v);
    }
  }
}`;

// The upstream gradient as the normalisation sees it: through the ReLU's mask when there is one.
const maskedGrad = (relu: boolean) => (relu ? 'select(vec4<f32>(0.0), ld_g(base, q), ld_y(base, q) > vec4<f32>(0.0))' : 'ld_g(base, q)');

const BACKWARD_REDUCE = (vec: boolean, relu: boolean) =>
  planeReduceCode(
    2,
    REDUCE_UNIFORMS,
    `${planeBuffer('g', 1, 'read', vec)}
${planeBuffer('x', 2, 'read', vec)}
@group(0) @binding(3) var<storage, read> stats: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
${relu ? planeBuffer('y', 5, 'read', vec) : ''}`,
    'let mean = stats[plane].x;',
    `let gv = ${maskedGrad(relu)}; let t0 = gv; let t1 = gv * (ld_x(base, q) - mean);`,
  );

// One invocation per channel: dgamma, dbeta, and the per-plane dx coefficients (a, b, c0, mean).
const BACKWARD_FINALIZE = `
${BACKWARD_FINALIZE_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> coef: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbeta: array<f32>;
${ENTRY_1D(64)} {
  ${linearIndex(64, 'c')}
  if (c >= p.c) { return; }
  let g = select(1.0, gamma[c], (p.flags & 1u) != 0u);
  var sg = 0.0; var sgx = 0.0;
  for (var n = 0u; n < p.n; n++) {
    let plane = n * p.c + c;
    var a = 0.0; var b = 0.0;
    for (var t = 0u; t < p.parts; t++) { a += partial[(plane * p.parts + t) * 2u]; b += partial[(plane * p.parts + t) * 2u + 1u]; }
    let s = stats[plane];
    let gx = b * s.y; // sum g * xhat
    sg += a; sgx += gx;
    let k = s.y * g;
    coef[plane] = vec4<f32>(k, -k * s.y * (gx / p.hw), -k * (a / p.hw), s.x);
  }
  dgamma[c] = sgx;
  dbeta[c] = sg;
}`;

// Bindings after dx: y (with a ReLU), then the residual's gradient dres (with a residual).
const BACKWARD_APPLY = (vec: boolean, e: Epilogue) => `
${APPLY_UNIFORMS.wgsl}
${planeBuffer('g', 1, 'read', vec)}
${planeBuffer('x', 2, 'read', vec)}
@group(0) @binding(3) var<storage, read> coef: array<vec4<f32>>;
${planeBuffer('dx', 4, 'read_write', vec)}
${e.relu ? planeBuffer('y', 5, 'read', vec) : ''}
${e.residual ? planeBuffer('dres', e.relu ? 6 : 5, 'read_write', vec) : ''}
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let plane = wid.y; let base = plane * p.hw;
  let k = coef[plane];
  for (var i = 0u; i < 4u; i++) {
    let q = wid.x * 256u + i * 64u + lid.x;
    if (q < p.q) {
      let gv = ${maskedGrad(e.relu)};
      st_dx(base, q, k.x * gv + (k.y * (ld_x(base, q) - k.w) + k.z));
      ${e.residual ? 'st_dres(base, q, gv);' : ''}
    }
  }
}`;

function checkParam(t: Tensor | null, c: number, what: string, op: string): void {
  if (!t) return;
  if (t.dtype !== 'float32') throw new Error(`${op}: ${what} must be float32, got ${t.dtype}`);
  if (t.size !== c) throw new Error(`${op}: ${what} has shape [${t.shape}] (${t.size} values), expected ${c} (one per channel)`);
}

/** Per (sample, channel) statistics as vec4 (mean, rstd, rstd*gamma, beta), [planes*4]. */
function statistics(x: Tensor, g: PlaneGeom, gamma: Tensor | null, beta: Tensor | null, eps: number): Tensor {
  const { parts, chunk } = planeParts(g);
  const partial = empty([g.planes * parts * 4], 'float32', 'instanceNorm');
  launch({ kernel: 'instanceNorm.stats', code: STATS(g.vec), grid: [parts, g.planes], bind: [x, partial], uniforms: REDUCE_UNIFORMS.pack({ hw: g.hw, q: g.q, parts, chunk }) });
  const stats = empty([g.planes * 4], 'float32', 'instanceNorm');
  stats.name = 'instanceNorm.stats';
  const flags = (gamma ? 1 : 0) | (beta ? 2 : 0);
  launch({
    kernel: 'instanceNorm.finalize', code: FINALIZE, grid: grid1d(g.planes, 64),
    bind: [partial, gamma ?? partial, beta ?? partial, stats],
    uniforms: FINALIZE_UNIFORMS.pack({ planes: g.planes, c: g.c, parts, flags, eps }),
  });
  partial.dispose();
  return stats;
}

/**
 * Instance normalisation of an NCHW tensor: per sample and channel, normalise over H*W with the
 * biased variance (as PyTorch's InstanceNorm2d), then scale by gamma[C] and shift by beta[C]
 * when given (any shape holding C values).
 */
export function instanceNorm(x: Tensor, gamma: Tensor | null, beta: Tensor | null, eps = 1e-5): Tensor {
  return normalise('instanceNorm', x, gamma, beta, null, PLAIN, eps);
}

/**
 * relu(instanceNorm(x, gamma, beta) + residual) (residual optional, of x's shape) in the passes
 * of instanceNorm alone: the conv block's and the res_dil block's epilogue. Differentiable in x,
 * gamma, beta and the residual; the ReLU's gradient at 0 is 0, as relu's.
 */
export function instanceNormRelu(x: Tensor, gamma: Tensor | null, beta: Tensor | null, residual: Tensor | null = null, eps = 1e-5): Tensor {
  return normalise('instanceNormRelu', x, gamma, beta, residual, { residual: residual !== null, relu: true }, eps);
}

function normalise(op: string, x: Tensor, gamma: Tensor | null, beta: Tensor | null, residual: Tensor | null, e: Epilogue, eps: number): Tensor {
  const g = planeGeom(x, op);
  checkParam(gamma, g.c, 'gamma', op);
  checkParam(beta, g.c, 'beta', op);
  if (residual) {
    if (residual.dtype !== 'float32') throw new Error(`${op}: the residual must be float32, got ${residual.dtype}`);
    if (residual.shape.join() !== x.shape.join()) throw new Error(`${op}: the residual has shape [${residual.shape}], the input [${x.shape}]; they must match`);
  }
  const y = empty(x.shape, 'float32', op);
  if (x.size === 0) return y;
  const stats = statistics(x, g, gamma, beta, eps);
  const tiles = Math.ceil(g.q / 256);
  const apply = APPLY_UNIFORMS.pack({ hw: g.hw, q: g.q });
  launch({ kernel: `${op}.apply`, code: APPLY(g.vec, e), grid: [tiles, g.planes], bind: [x, stats, y, ...(residual ? [residual] : [])], uniforms: apply });
  const inputs = [x, ...(gamma ? [gamma] : []), ...(beta ? [beta] : []), ...(residual ? [residual] : [])];
  const out = record(y, op, inputs, (gy) => {
    const { parts, chunk } = planeParts(g);
    const partial = empty([g.planes * parts * 2], 'float32', `${op} backward`);
    launch({
      kernel: `${op}.backward.reduce`, code: BACKWARD_REDUCE(g.vec, e.relu), grid: [parts, g.planes],
      bind: [gy, x, stats, partial, ...(e.relu ? [y] : [])], uniforms: REDUCE_UNIFORMS.pack({ hw: g.hw, q: g.q, parts, chunk }),
    });
    const coef = empty([g.planes * 4], 'float32', `${op} backward`);
    // Always written (tiny); freed below when not wanted.
    let dgamma: Tensor | null = empty(gamma?.shape ?? [g.c], 'float32', `${op} backward`);
    let dbeta: Tensor | null = empty(beta?.shape ?? [g.c], 'float32', `${op} backward`);
    launch({
      kernel: `${op}.backward.finalize`, code: BACKWARD_FINALIZE, grid: grid1d(g.c, 64),
      bind: [partial, stats, gamma ?? stats, coef, dgamma, dbeta],
      uniforms: BACKWARD_FINALIZE_UNIFORMS.pack({ n: g.n, c: g.c, parts, flags: gamma ? 1 : 0, hw: g.hw }),
    });
    partial.dispose();
    if (!gamma?.requiresGrad) {
      dgamma.dispose();
      dgamma = null;
    }
    if (!beta?.requiresGrad) {
      dbeta.dispose();
      dbeta = null;
    }
    let dx: Tensor | null = null;
    let dr: Tensor | null = null;
    const wantResidual = residual?.requiresGrad ?? false;
    if (x.requiresGrad || wantResidual) {
      // One pass writes both; dx is made (and dropped) also when only the residual wants a gradient.
      dx = empty(x.shape, 'float32', `${op} backward`);
      dr = wantResidual ? empty(x.shape, 'float32', `${op} backward`) : null;
      launch({
        kernel: `${op}.backward.apply`, code: BACKWARD_APPLY(g.vec, { relu: e.relu, residual: dr !== null }), grid: [tiles, g.planes],
        bind: [gy, x, coef, dx, ...(e.relu ? [y] : []), ...(dr ? [dr] : [])], uniforms: apply,
      });
      if (!x.requiresGrad) {
        dx.dispose();
        dx = null;
      }
    }
    coef.dispose();
    return [dx, ...(gamma ? [dgamma] : []), ...(beta ? [dbeta] : []), ...(residual ? [dr] : [])];
  });
  // Nothing will run the backward: the statistics are not needed.
  if (!out.gradFn) stats.dispose();
  return out;
}
