// 1x1 kernels with few output channels.
//
// A 1x1 convolution with stride 1 and no padding to a few output channels (a U-Net's output and
// deep-supervision heads) is a per-pixel dot product over channels; the weight gradient is
// Cout*Cin long dot products over N*H*W. The tiled kernels above give lanes groups of 4 output
// channels and leave most lanes idle there, so these kernels put lanes over pixels instead: vec4
// units along the flattened plane when H*W is a multiple of 4 (f32 otherwise), all output
// channels per invocation. The weight gradient splits each dot product over PT invocations (each
// lane strides over the plane, so neighbouring lanes read neighbouring units) and a second kernel
// adds the PT partial sums per (o, c) in a fixed order (deterministic, no atomics).
// On lavapipe ('fallback') each lane walks a contiguous run of units (forward: PX units; weight
// gradient: long runs, few invocations), which measured 1.5-2x faster there than interleaved
// lanes; the 'gpu' variant interleaves lanes so that a warp's loads coalesce. For x
// [4,32,128,128] -> 1 channel on lavapipe (2 cores): forward 0.3-0.4 -> 0.7-1.9 GFLOP/s, weight
// gradient 0.2-0.35 -> 1.2-1.5, input gradient about 1.1 -> 1.6-2.4 (memory-bound, noisy).

import { ENTRY_1D, empty, grid1d, launch, linearIndex, uniformStruct } from '../../kernel';
import type { Tensor } from '../../tensor';
import { convFlops, type Geometry } from './geometry';
import { WG, tuning } from './tuning';

const FWD_UNIFORMS = uniformStruct('conv2d.fwd1x1', { ci: 'u32', hwu: 'u32', s: 'u32', total: 'u32', bias: 'u32' });
const DX_UNIFORMS = uniformStruct('conv2d.dx1x1', { ci: 'u32', hwu: 'u32', s: 'u32', total: 'u32', nb: 'u32' });
const DW_UNIFORMS = uniformStruct('conv2d.dw1x1', { ci: 'u32', hwu: 'u32', pt: 'u32', total: 'u32', n: 'u32' });
const DW_SUM_UNIFORMS = uniformStruct('conv2d.dw1x1Sum', { total: 'u32', pt: 'u32' });

/** Output channels up to which the 1x1 kernels are used. */
const SMALL_CO = 4;
/** Units (vec4 or f32) of pixels per forward / input-gradient invocation. */
const PX = 4;
/** Input channels per weight-gradient and input-gradient invocation. */
const CB1 = 8;

export function isSmall1x1(g: Geometry): boolean {
  return g.kh === 1 && g.kw === 1 && g.s === 1 && g.p === 0 && g.co <= SMALL_CO;
}

function unitOf(hw: number): { u: string; v: number } {
  return hw % 4 === 0 ? { u: 'vec4<f32>', v: 4 } : { u: 'f32', v: 1 };
}

function fwd1x1Code(co: number, u: string, contig: boolean): string {
  const L: string[] = [];
  L.push(`// conv2d 1x1 -> ${co} channels, ${PX} x ${u} per invocation, ${contig ? 'contiguous' : 'strided'}`);
  L.push(FWD_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> x: array<${u}>;`);
  L.push(`@group(0) @binding(2) var<storage, read> w: array<f32>;`);
  L.push(`@group(0) @binding(3) var<storage, read> b: array<f32>;`);
  L.push(`@group(0) @binding(4) var<storage, read_write> out: array<${u}>;`);
  L.push(`${ENTRY_1D(WG)} {`);
  L.push(`  ${linearIndex(WG, 'gi')}`);
  L.push(`  if (gi >= p.total) { return; }`);
  L.push(`  let t = gi % p.s; let n = gi / p.s;`);
  const qj = (j: number) => (contig ? `t * ${PX}u + ${j}u` : `t + ${j}u * p.s`);
  for (let j = 0; j < PX; j++) L.push(`  let q${j} = min(${qj(j)}, p.hwu - 1u);`);
  for (let o = 0; o < co; o++) for (let j = 0; j < PX; j++) L.push(`  var a${o}_${j} = ${u}();`);
  L.push(`  var xb = n * p.ci * p.hwu;`);
  L.push(`  for (var c = 0u; c < p.ci; c++) {`);
  for (let o = 0; o < co; o++) L.push(`    let w${o} = w[${o}u * p.ci + c];`);
  for (let j = 0; j < PX; j++) L.push(`    let x${j} = x[xb + q${j}];`);
  for (let o = 0; o < co; o++) for (let j = 0; j < PX; j++) L.push(`    a${o}_${j} += w${o} * x${j};`);
  L.push(`    xb += p.hwu;`);
  L.push(`  }`);
  for (let o = 0; o < co; o++) {
    L.push(`  let b${o} = select(0.0, b[${o}], p.bias != 0u);`);
    L.push(`  let ob${o} = (n * ${co}u + ${o}u) * p.hwu;`);
  }
  for (let j = 0; j < PX; j++) {
    L.push(`  if (${qj(j)} < p.hwu) {`);
    for (let o = 0; o < co; o++) L.push(`    out[ob${o} + q${j}] = a${o}_${j} + b${o};`);
    L.push(`  }`);
  }
  L.push(`}`);
  return L.join('\n');
}

function dx1x1Code(co: number, u: string): string {
  const L: string[] = [];
  L.push(`// conv2d 1x1 input gradient from ${co} channels, ${PX} x ${u} per invocation, ${CB1} input channels`);
  L.push(DX_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> g: array<${u}>;`);
  L.push(`@group(0) @binding(2) var<storage, read> w: array<f32>;`);
  L.push(`@group(0) @binding(3) var<storage, read_write> out: array<${u}>;`);
  L.push(`${ENTRY_1D(WG)} {`);
  L.push(`  ${linearIndex(WG, 'gi')}`);
  L.push(`  if (gi >= p.total) { return; }`);
  L.push(`  let t = gi % p.s; let r = gi / p.s; let cbi = r % p.nb; let n = r / p.nb;`);
  for (let j = 0; j < PX; j++) L.push(`  let q${j} = min(t + ${j}u * p.s, p.hwu - 1u); let m${j} = t + ${j}u * p.s < p.hwu;`);
  for (let o = 0; o < co; o++) for (let j = 0; j < PX; j++) L.push(`  let g${o}_${j} = g[(n * ${co}u + ${o}u) * p.hwu + q${j}];`);
  L.push(`  let c1 = min(cbi * ${CB1}u + ${CB1}u, p.ci);`);
  L.push(`  for (var c = cbi * ${CB1}u; c < c1; c++) {`);
  for (let o = 0; o < co; o++) L.push(`    let w${o} = w[${o}u * p.ci + c];`);
  L.push(`    let ob = (n * p.ci + c) * p.hwu;`);
  for (let j = 0; j < PX; j++) {
    const terms = Array.from({ length: co }, (_, o) => `w${o} * g${o}_${j}`).join(' + ');
    L.push(`    if (m${j}) { out[ob + q${j}] = ${terms}; }`);
  }
  L.push(`  }`);
  L.push(`}`);
  return L.join('\n');
}

function dw1x1Code(co: number, cb: number, u: string, direct: boolean): string {
  const L: string[] = [];
  L.push(`// conv2d 1x1 weight gradient to ${co} channels, ${cb} input channels per invocation, ${u}${direct ? ', direct' : ''}`);
  L.push(DW_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> x: array<${u}>;`);
  L.push(`@group(0) @binding(2) var<storage, read> g: array<${u}>;`);
  // direct (one lane per block of input channels): the lane's sums are the gradient itself.
  L.push(`@group(0) @binding(3) var<storage, read_write> part: array<${direct ? 'f32' : u}>;`);
  L.push(`${ENTRY_1D(WG)} {`);
  L.push(`  ${linearIndex(WG, 'gi')}`);
  L.push(`  if (gi >= p.total) { return; }`);
  L.push(`  let t = gi % p.pt; let cbi = gi / p.pt;`);
  for (let b = 0; b < cb; b++) L.push(`  let c${b} = min(cbi * ${cb}u + ${b}u, p.ci - 1u) * p.hwu;`);
  for (let o = 0; o < co; o++) for (let b = 0; b < cb; b++) L.push(`  var a${o}_${b} = ${u}();`);
  L.push(`  for (var n = 0u; n < p.n; n++) {`);
  L.push(`    let gb = n * ${co}u * p.hwu; let xb = n * p.ci * p.hwu;`);
  L.push(`    for (var q = t; q < p.hwu; q += p.pt) {`);
  for (let o = 0; o < co; o++) L.push(`      let g${o} = g[gb + ${o}u * p.hwu + q];`);
  for (let b = 0; b < cb; b++) L.push(`      let x${b} = x[xb + c${b} + q];`);
  for (let o = 0; o < co; o++) for (let b = 0; b < cb; b++) L.push(`      a${o}_${b} += g${o} * x${b};`);
  L.push(`    }`);
  L.push(`  }`);
  for (let b = 0; b < cb; b++) {
    L.push(`  if (cbi * ${cb}u + ${b}u < p.ci) {`);
    const total = (a: string) => (!direct || u === 'f32' ? a : `(${a}.x + ${a}.y) + (${a}.z + ${a}.w)`);
    for (let o = 0; o < co; o++) L.push(`    part[(${o}u * p.ci + cbi * ${cb}u + ${b}u) * p.pt + t] = ${total(`a${o}_${b}`)};`);
    L.push(`  }`);
  }
  L.push(`}`);
  return L.join('\n');
}

function dw1x1SumCode(u: string): string {
  return `
${DW_SUM_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> part: array<${u}>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${ENTRY_1D(WG)} {
  ${linearIndex(WG, 'gi')}
  if (gi >= p.total) { return; }
  let base = gi * p.pt;
  var a0 = ${u}(); var a1 = ${u}();
  var k = 0u;
  for (; k + 1u < p.pt; k += 2u) { a0 += part[base + k]; a1 += part[base + k + 1u]; }
  if (k < p.pt) { a0 += part[base + k]; }
  let a = a0 + a1;
  out[gi] = ${u === 'f32' ? 'a' : '(a.x + a.y) + (a.z + a.w)'};
}`;
}

export function forward1x1(x: Tensor, w: Tensor, b: Tensor | null, g: Geometry): Tensor {
  const hw = g.h * g.w;
  const { u, v } = unitOf(hw);
  const hwu = hw / v;
  const s = Math.ceil(hwu / PX);
  const total = g.n * s;
  const out = empty([g.n, g.co, g.ho, g.wo], 'float32', 'conv2d');
  launch({
    kernel: 'conv2d.fwd1x1', code: fwd1x1Code(g.co, u, tuning().name === 'fallback'), grid: grid1d(total, WG), bind: [x, w, b ?? w, out], flops: convFlops(g),
    uniforms: FWD_UNIFORMS.pack({ ci: g.ci, hwu, s, total, bias: b ? 1 : 0 }),
  });
  return out;
}

export function inputGrad1x1(gy: Tensor, w: Tensor, g: Geometry): Tensor {
  const hw = g.h * g.w;
  const { u, v } = unitOf(hw);
  const hwu = hw / v;
  const s = Math.ceil(hwu / PX);
  const nb = Math.ceil(g.ci / CB1);
  const total = g.n * nb * s;
  const dx = empty([g.n, g.ci, g.h, g.w], 'float32', 'conv2d backward (input)');
  launch({ kernel: 'conv2d.dx1x1', code: dx1x1Code(g.co, u), grid: grid1d(total, WG), bind: [gy, w, dx], flops: convFlops(g), uniforms: DX_UNIFORMS.pack({ ci: g.ci, hwu, s, total, nb }) });
  return dx;
}

export function weightGrad1x1(x: Tensor, gy: Tensor, g: Geometry): Tensor {
  const hw = g.h * g.w;
  const { u, v } = unitOf(hw);
  const hwu = hw / v;
  let cb = CB1;
  while (cb > g.ci) cb >>= 1;
  const nb = Math.ceil(g.ci / cb);
  // pt lanes share each block of input channels, lane t summing units t, t + pt, ... of every
  // sample. Fallback: few, long invocations, about 4096 / N units per lane and sample (on 2-core
  // lavapipe, 1024 vec4s per lane beat 128 by 1.5-2.5x, measured before device waits stopped
  // busy-polling). GPU: enough lanes to fill the device.
  const fallback = tuning().name === 'fallback';
  let pt = fallback ? Math.ceil(hwu / Math.max(16, Math.ceil(4096 / g.n))) : Math.max(1, Math.min(hwu, Math.ceil(32768 / nb)));
  // On the fallback, at least 2 workgroups of lanes when each lane has much to do, so that both of
  // a 2-core lavapipe's threads get one (4x64x128x128 -> 1 had 16 lanes: 7.7-10.7 ms; 128 lanes:
  // 5.1-5.6 ms). Small planes keep one lane per block: one dispatch (see below) beats more lanes.
  if (fallback && pt * nb < 2 * WG && (g.n * hwu) / pt >= 4096) pt = Math.min(hwu, Math.ceil((2 * WG) / nb));
  const total = pt * nb;
  // With one lane per block of input channels its sums are the gradient: no second pass (these are
  // the small planes, where a dispatch is a good part of the op's time).
  const direct = pt === 1;
  const part = direct ? empty([g.co, g.ci, 1, 1], 'float32', 'conv2d backward (weights)') : empty([g.co * g.ci * pt * v], 'float32', 'conv2d backward (weights)');
  launch({ kernel: 'conv2d.dw1x1', code: dw1x1Code(g.co, cb, u, direct), grid: grid1d(total, WG), bind: [x, gy, part], flops: convFlops(g), uniforms: DW_UNIFORMS.pack({ ci: g.ci, hwu, pt, total, n: g.n }) });
  if (direct) return part;
  const dw = empty([g.co, g.ci, 1, 1], 'float32', 'conv2d backward (weights)');
  const n = g.co * g.ci;
  launch({ kernel: 'conv2d.dw1x1Sum', code: dw1x1SumCode(u), grid: grid1d(n, WG), bind: [part, dw], uniforms: DW_SUM_UNIFORMS.pack({ total: n, pt }) });
  part.dispose();
  return dw;
}
