// Sum and mean over chosen axes. Two kernels: one invocation per output when there are many
// outputs, and a workgroup tree reduction (optionally split into parts, then a second pass)
// when few outputs each reduce many elements, so that all cores take part. Both accumulate in
// three levels (blocks of 32 terms, blocks of 32 blocks, total): a plain float32 running sum of
// thousands of terms drifts by 1e-4 relative. (Kahan compensation would be better, but lavapipe's
// compiler reassociates it away: measured, it gives exactly the naive sum.)
const ACCUMULATE = `
  part += v; k++;
  if ((k & 31u) == 0u) { mid += part; part = 0.0; if ((k & 1023u) == 0u) { acc += mid; mid = 0.0; } }`;

import { record } from '../autograd';
import { Uniforms, assertFloat, empty, normAxis, sameShape, stridesOf } from '../kernel';
import { grid1d, runtime } from '../runtime';
import { Tensor, type Shape } from '../tensor';
import { MAX_RANK, broadcastShapes, expandRaw } from './broadcast';
import { mulScalar } from './elementwise';
import { reshape } from './shape';

const PER_OUTPUT = `
struct P { nOut: u32, k1: u32, k2: u32, k3: u32, ks0: u32, ks1: u32, ks2: u32, ks3: u32,
           r0: u32, r1: u32, r2: u32, r3: u32, rs0: u32, rs1: u32, rs2: u32, rs3: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.y * nwg.x * 64u + gid.x;
  if (o >= p.nOut) { return; }
  let c3 = o % p.k3; let t2 = o / p.k3; let c2 = t2 % p.k2; let t1 = t2 / p.k2; let c1 = t1 % p.k1; let c0 = t1 / p.k1;
  let base = c0 * p.ks0 + c1 * p.ks1 + c2 * p.ks2 + c3 * p.ks3;
  var acc = 0.0; var mid = 0.0; var part = 0.0; var k = 0u;
  for (var a = 0u; a < p.r0; a++) {
    for (var b = 0u; b < p.r1; b++) {
      for (var c = 0u; c < p.r2; c++) {
        let row = base + a * p.rs0 + b * p.rs1 + c * p.rs2;
        for (var d = 0u; d < p.r3; d++) {
          let v = x[row + d * p.rs3];${ACCUMULATE}
        }
      }
    }
  }
  out[o] = (acc + mid + part) * p.scale;
}`;

const WG = 64;
const PER_WORKGROUP = `
struct P { nOut: u32, k1: u32, k2: u32, k3: u32, ks0: u32, ks1: u32, ks2: u32, ks3: u32,
           r1: u32, r2: u32, r3: u32, nRed: u32, rs0: u32, rs1: u32, rs2: u32, rs3: u32, scale: f32, parts: u32, chunk: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
var<workgroup> partial: array<f32, ${WG}>;
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let slot = wid.y * nwg.x + wid.x;           // (output, part), part fastest
  let valid = slot < p.nOut * p.parts;
  let o = min(slot / p.parts, p.nOut - 1u);
  let partIndex = slot % p.parts;
  let c3 = o % p.k3; let t2 = o / p.k3; let c2 = t2 % p.k2; let t1 = t2 / p.k2; let c1 = t1 % p.k1; let c0 = t1 / p.k1;
  let base = c0 * p.ks0 + c1 * p.ks1 + c2 * p.ks2 + c3 * p.ks3;
  let start = partIndex * p.chunk;
  let end = min(start + p.chunk, p.nRed);
  var acc = 0.0; var mid = 0.0; var part = 0.0; var k = 0u;
  for (var r = start + lid.x; r < end; r += ${WG}u) {
    let d = r % p.r3; let u2 = r / p.r3; let c = u2 % p.r2; let u1 = u2 / p.r2; let b = u1 % p.r1; let a = u1 / p.r1;
    let v = x[base + a * p.rs0 + b * p.rs1 + c * p.rs2 + d * p.rs3];${ACCUMULATE}
  }
  partial[lid.x] = acc + mid + part;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { partial[lid.x] += partial[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u && valid) { out[slot] = partial[0] * p.scale; }
}`;

/** Pad a list of (dim, stride) pairs on the left to length 4 with (1, 0). */
function pad(dims: number[], strides: number[]): [number[], number[]] {
  if (dims.length > MAX_RANK) throw new Error(`reduce: rank above ${MAX_RANK} is not supported`);
  const k = MAX_RANK - dims.length;
  return [[...new Array<number>(k).fill(1), ...dims], [...new Array<number>(k).fill(0), ...strides]];
}

/** Sum of `x` over `axes` (kept dims in order, as a flat tensor of their sizes), times `scale`. Not recorded. */
function reduceRaw(x: Tensor, axes: number[], scale: number): Tensor {
  const st = stridesOf(x.shape);
  const keptDims: number[] = [];
  const keptStrides: number[] = [];
  const redDims: number[] = [];
  const redStrides: number[] = [];
  x.shape.forEach((d, i) => {
    if (axes.includes(i)) {
      redDims.push(d);
      redStrides.push(st[i]);
    } else {
      keptDims.push(d);
      keptStrides.push(st[i]);
    }
  });
  const [kd, ks] = pad(keptDims, keptStrides);
  const [rd, rs] = pad(redDims, redStrides);
  const nOut = kd.reduce((a, b) => a * b, 1);
  const nRed = rd.reduce((a, b) => a * b, 1);
  if (nOut === 0) return empty([0]);
  const rt = runtime();
  if (nOut >= 2048 || nRed <= 64) {
    const out = empty([nOut]);
    const u = new Uniforms().u32(nOut, kd[1], kd[2], kd[3], ...ks, ...rd, ...rs).f32(scale);
    rt.dispatch({ kernel: 'sum', code: PER_OUTPUT, workgroups: grid1d(nOut, 64), storage: [x.binding(), out.binding()], uniforms: u.bytes() });
    return out;
  }
  // Few outputs, long reductions: split each into parts so that there are enough workgroups.
  const parts = Math.max(1, Math.min(Math.ceil(nRed / 4096), Math.ceil(256 / nOut)));
  const chunk = Math.ceil(nRed / parts);
  const target = empty([nOut * parts]);
  const u = new Uniforms()
    .u32(nOut, kd[1], kd[2], kd[3], ...ks, rd[1], rd[2], rd[3], nRed, ...rs)
    .f32(parts === 1 ? scale : 1)
    .u32(parts, chunk);
  rt.dispatch({ kernel: 'sum.workgroup', code: PER_WORKGROUP, workgroups: grid1d(nOut * parts, 1), storage: [x.binding(), target.binding()], uniforms: u.bytes() });
  if (parts === 1) return target;
  const partial = target.view([nOut, parts]);
  target.dispose();
  const r = reduceRaw(partial, [1], scale);
  partial.dispose();
  return r;
}

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
  const flat = reduceRaw(x, ax, scale);
  const y = flat.view(reducedShape(x, ax, keepDims));
  flat.dispose();
  return record(y, op, [x], (g) => {
    // Broadcast g (viewed with kept dims) back over the reduced axes.
    const gk = g.view(reducedShape(x, ax, true));
    const gx = expandRaw(gk, x.shape);
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
  const b = broadcastShapes(shape, x.shape, 'sumTo');
  if (!sameShape(b, x.shape)) throw new Error(`sumTo: [${shape}] does not broadcast to [${x.shape}]`);
  const lead = x.rank - shape.length;
  const axes: number[] = [];
  x.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  if (axes.length === 0) return reshape(x, shape);
  const s = sum(x, axes, true);
  const r = reshape(s, shape);
  s.dispose();
  return r;
}

