// conv2d's helper kernels and layouts: zero-padded copies of planes (or reading them in place),
// the weight re-layout, the output-gradient re-layout and the sum of weight-gradient partials.

import { ENTRY_1D, empty, grid1d, launch, linearIndex, uniformStruct } from '../../kernel';
import type { Tensor } from '../../tensor';
import { COMP } from './taps';
import { WG } from './tuning';


// Copy planes [planes][h][w] into zero-filled planes [planes][hp][wp] (wp a multiple of 4) at
// offset (top, left); negative offsets crop.
const PAD_UNIFORMS = uniformStruct('conv2d.pad', { total: 'u32', wp4: 'u32', hp: 'u32', h: 'u32', w: 'u32', top: 'i32', left: 'i32' });
const PAD = `
${PAD_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
${ENTRY_1D(WG)} {
  ${linearIndex(WG, 'q')}
  if (q >= p.total) { return; }
  let xq = q % p.wp4; let r = q / p.wp4;
  let y = r % p.hp; let plane = r / p.hp;
  let iy = i32(y) - p.top;
  var v = vec4<f32>();
  if (iy >= 0 && iy < i32(p.h)) {
    let ix0 = i32(xq * 4u) - p.left;
    let row = plane * p.h * p.w + u32(iy) * p.w;
    for (var i = 0; i < 4; i++) {
      let ix = ix0 + i;
      if (ix >= 0 && ix < i32(p.w)) { v[i] = src[row + u32(ix)]; }
    }
  }
  out[q] = v;
}`;

// The same for source rows of a multiple of 4 floats: every load is an aligned vec4 (a source
// vec4 lies wholly inside or outside the row), each invocation writes PAD_RUN consecutive vec4s
// of one row, and the shift by (left mod 4) is a constant swizzle.
const PAD_RUN = 4;
const PAD4_UNIFORMS = uniformStruct('conv2d.pad4', { total: 'u32', runs: 'u32', hp: 'u32', h: 'u32', w4: 'u32', top: 'i32', left4: 'i32', wp4: 'u32' });
function padVec4Code(m: number): string {
  const L: string[] = [];
  L.push(PAD4_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;`);
  L.push(`fn ld(row: u32, i: i32) -> vec4<f32> {`);
  L.push(`  if (i < 0 || i >= i32(p.w4)) { return vec4<f32>(); }`);
  L.push(`  return src[row + u32(i)];`);
  L.push(`}`);
  L.push(`${ENTRY_1D(WG)} {`);
  L.push(`  ${linearIndex(WG, 'q')}`);
  L.push(`  if (q >= p.total) { return; }`);
  L.push(`  let run = q % p.runs; let r = q / p.runs;`);
  L.push(`  let y = r % p.hp; let plane = r / p.hp;`);
  L.push(`  let o0 = r * p.wp4 + run * ${PAD_RUN}u;`);
  L.push(`  let n = min(${PAD_RUN}u, p.wp4 - run * ${PAD_RUN}u);`);
  L.push(`  let iy = i32(y) - p.top;`);
  L.push(`  if (iy < 0 || iy >= i32(p.h)) {`);
  L.push(`    for (var k = 0u; k < n; k++) { out[o0 + k] = vec4<f32>(); }`);
  L.push(`    return;`);
  L.push(`  }`);
  L.push(`  let row = (plane * p.h + u32(iy)) * p.w4;`);
  // Output vec4 k of the run covers source columns 4*(run*RUN + k) - left + i.
  L.push(`  let a = i32(run * ${PAD_RUN}u) - p.left4${m ? ' - 1' : ''};`);
  const loads = m ? PAD_RUN + 1 : PAD_RUN;
  for (let k = 0; k < loads; k++) L.push(`  let s${k} = ld(row, a + ${k});`);
  for (let k = 0; k < PAD_RUN; k++) {
    let v: string;
    if (m === 0) v = `s${k}`;
    else {
      const comps = [0, 1, 2, 3].map((i) => (i < m ? `s${k}.${COMP[4 - m + i]}` : `s${k + 1}.${COMP[i - m]}`));
      v = `vec4<f32>(${comps.join(', ')})`;
    }
    L.push(`  if (${k}u < n) { out[o0 + ${k}u] = ${v}; }`);
  }
  L.push(`}`);
  return L.join('\n');
}

// Weights [O, C, T] (forward: O = Cout, C = Cin) or [C, O, T] (transposed: input gradient, C = Cout,
// O = Cin) into vec4s [C][T][O4] of 4 consecutive o, then O4 vec4s of bias (zero without one).
const RELAYOUT_UNIFORMS = uniformStruct('conv2d.weights', { total: 'u32', c: 'u32', o: 'u32', o4: 'u32', t: 'u32', transposed: 'u32', hasBias: 'u32' });
const RELAYOUT = `
${RELAYOUT_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
${ENTRY_1D(WG)} {
  ${linearIndex(WG, 'q')}
  if (q >= p.total) { return; }
  let o4 = q % p.o4; let r = q / p.o4;
  var v = vec4<f32>();
  if (r < p.c * p.t) {
    let tap = r % p.t; let c = r / p.t;
    for (var i = 0u; i < 4u; i++) {
      let o = o4 * 4u + i;
      if (o < p.o) {
        if (p.transposed != 0u) { v[i] = w[(c * p.o + o) * p.t + tap]; } else { v[i] = w[(o * p.c + c) * p.t + tap]; }
      }
    }
  } else if (p.hasBias != 0u) {
    for (var i = 0u; i < 4u; i++) { if (o4 * 4u + i < p.o) { v[i] = b[o4 * 4u + i]; } }
  }
  out[q] = v;
}`;

// Output gradient [N][C][H][W] into vec4s [N][C4][hg][wg] of 4 consecutive channels, zero outside.
const GRAD_RELAYOUT_UNIFORMS = uniformStruct('conv2d.gradLayout', { total: 'u32', c: 'u32', c4: 'u32', h: 'u32', w: 'u32', hg: 'u32', wg: 'u32' });
const GRAD_RELAYOUT = `
${GRAD_RELAYOUT_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
${ENTRY_1D(WG)} {
  ${linearIndex(WG, 'q')}
  if (q >= p.total) { return; }
  let xx = q % p.wg; let r1 = q / p.wg;
  let y = r1 % p.hg; let r2 = r1 / p.hg;
  let c4 = r2 % p.c4; let n = r2 / p.c4;
  var v = vec4<f32>();
  if (y < p.h && xx < p.w) {
    for (var i = 0u; i < 4u; i++) {
      let c = c4 * 4u + i;
      if (c < p.c) { v[i] = g[((n * p.c + c) * p.h + y) * p.w + xx]; }
    }
  }
  out[q] = v;
}`;

// The same for rows of a multiple of 4 pixels: 4 pixels x 4 channels per invocation, as 4 vec4
// loads and a 4x4 transpose in registers.
const GRAD_RELAYOUT4_UNIFORMS = uniformStruct('conv2d.gradLayout4', { total: 'u32', c: 'u32', c4: 'u32', h: 'u32', w4: 'u32', hg: 'u32', wg4: 'u32' });
const GRAD_RELAYOUT4 = `
${GRAD_RELAYOUT4_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
${ENTRY_1D(WG)} {
  ${linearIndex(WG, 'q')}
  if (q >= p.total) { return; }
  let xq = q % p.wg4; let r1 = q / p.wg4;
  let y = r1 % p.hg; let r2 = r1 / p.hg;
  let c4 = r2 % p.c4; let n = r2 / p.c4;
  var v0 = vec4<f32>(); var v1 = vec4<f32>(); var v2 = vec4<f32>(); var v3 = vec4<f32>();
  if (y < p.h && xq < p.w4) {
    let c = c4 * 4u;
    let plane = p.h * p.w4;
    let i0 = ((n * p.c + c) * p.h + y) * p.w4 + xq;
    v0 = g[i0];
    if (c + 1u < p.c) { v1 = g[i0 + plane]; }
    if (c + 2u < p.c) { v2 = g[i0 + 2u * plane]; }
    if (c + 3u < p.c) { v3 = g[i0 + 3u * plane]; }
  }
  let o = q * 4u;
  out[o] = vec4<f32>(v0.x, v1.x, v2.x, v3.x);
  out[o + 1u] = vec4<f32>(v0.y, v1.y, v2.y, v3.y);
  out[o + 2u] = vec4<f32>(v0.z, v1.z, v2.z, v3.z);
  out[o + 3u] = vec4<f32>(v0.w, v1.w, v2.w, v3.w);
}`;

// Sum the weight-gradient partials [parts][Cin][T][O4*4] into dw [Cout][Cin][T].
const DW_REDUCE_UNIFORMS = uniformStruct('conv2d.weightGradSum', { total: 'u32', ci: 'u32', t: 'u32', o4: 'u32', parts: 'u32' });
const DW_REDUCE = `
${DW_REDUCE_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${ENTRY_1D(WG)} {
  ${linearIndex(WG, 'q')}
  if (q >= p.total) { return; }
  let tap = q % p.t; let r = q / p.t;
  let ci = r % p.ci; let co = r / p.ci;
  let step = p.ci * p.t * p.o4 * 4u;
  var i = (ci * p.t + tap) * p.o4 * 4u + co;
  var acc = 0.0;
  for (var k = 0u; k < p.parts; k++) { acc += part[i]; i += step; }
  out[q] = acc;
}`;

/**
 * A zero-padded copy of src's planes, hp x wp each. `kernel` names the dispatch (the profile
 * files it under the pass it serves: the weight gradient's copies start with conv2d.weightGrad).
 */
export function padPlanes(src: Tensor, top: number, left: number, hp: number, wp: number, op: string, kernel = 'conv2d.pad'): Tensor {
  const [n, c, h, w] = src.shape;
  const out = empty([n * c * hp * wp], 'float32', op);
  if (w % 4 === 0) {
    const m = ((left % 4) + 4) % 4;
    const left4 = (left - m) / 4;
    const runs = Math.ceil(wp / 4 / PAD_RUN);
    const total = n * c * hp * runs;
    launch({
      kernel: `${kernel}4`, code: padVec4Code(m), grid: grid1d(total, WG), bind: [src, out],
      uniforms: PAD4_UNIFORMS.pack({ total, runs, hp, h, w4: w / 4, top, left4, wp4: wp / 4 }),
    });
    return out;
  }
  const total = (n * c * hp * wp) / 4;
  launch({ kernel, code: PAD, grid: grid1d(total, WG), bind: [src, out], uniforms: PAD_UNIFORMS.pack({ total, wp4: wp / 4, hp, h, w, top, left }) });
  return out;
}

export function relayoutWeights(w: Tensor, b: Tensor | null, transposed: boolean, op: string): Tensor {
  const [co, ci, kh, kw] = w.shape;
  const T = kh * kw;
  const [c, o] = transposed ? [co, ci] : [ci, co];
  const o4 = Math.ceil(o / 4);
  const total = (c * T + 1) * o4;
  const out = empty([total * 4], 'float32', op);
  launch({
    kernel: 'conv2d.weights', code: RELAYOUT, grid: grid1d(total, WG), bind: [w, b ?? w, out],
    uniforms: RELAYOUT_UNIFORMS.pack({ total, c, o, o4, t: T, transposed: transposed ? 1 : 0, hasBias: b ? 1 : 0 }),
  });
  return out;
}

/** Source planes as a kernel reads them. */
export interface Source {
  t: Tensor;
  /** A padded copy made here, to dispose after use. */
  owned: boolean;
  /** Rows and floats per row of a plane. */
  sh: number;
  wp: number;
  /** Where padded coordinates start: row `top`, vec4 `lq`, after shifting columns by `c0`. */
  top: number;
  lq: number;
  c0: number;
}

/**
 * The planes of `src` [N, C, h, w] seen with `top` rows and `left` columns of zeros in front:
 * read in place when the kernel's lanes share loads (whose bounds checks then give the zero
 * padding) and rows are whole vec4s; otherwise a zero-padded copy of hp x wp per plane.
 */
export function sourceOf(src: Tensor, top: number, left: number, hp: number, wp: number, direct: boolean, op: string, padKernel?: string): Source {
  if (direct && src.shape[3] % 4 === 0) {
    const m = ((left % 4) + 4) % 4;
    return { t: src, owned: false, sh: src.shape[2], wp: src.shape[3], top, lq: (left - m) / 4 + (m ? 1 : 0), c0: (4 - m) % 4 };
  }
  return { t: padPlanes(src, top, left, hp, wp, op, padKernel), owned: true, sh: hp, wp, top: 0, lq: 0, c0: 0 };
}

/** The output gradient [N, C, H, W] as vec4s of 4 channels [N][C4][hg][wg], zero outside (wg a multiple of 4). */
export function relayoutGrad(gy: Tensor, hg: number, wg: number, op: string): Tensor {
  const [n, c, h, w] = gy.shape;
  const c4 = Math.ceil(c / 4);
  const total = n * c4 * hg * wg;
  const out = empty([total * 4], 'float32', op);
  if (w % 4 === 0) {
    const n4 = total / 4;
    launch({
      kernel: 'conv2d.gradLayout4', code: GRAD_RELAYOUT4, grid: grid1d(n4, WG), bind: [gy, out],
      uniforms: GRAD_RELAYOUT4_UNIFORMS.pack({ total: n4, c, c4, h, w4: w / 4, hg, wg4: wg / 4 }),
    });
  } else {
    launch({
      kernel: 'conv2d.gradLayout', code: GRAD_RELAYOUT, grid: grid1d(total, WG), bind: [gy, out],
      uniforms: GRAD_RELAYOUT_UNIFORMS.pack({ total, c, c4, h, w, hg, wg }),
    });
  }
  return out;
}

/** dw [Cout, Cin, kh, kw] as the sum of the weight-gradient partials [parts][Cin][T][O4*4]. */
export function sumWeightGradParts(partial: Tensor, co: number, ci: number, kh: number, kw: number, parts: number, op: string): Tensor {
  const dw = empty([co, ci, kh, kw], 'float32', op);
  const t = kh * kw;
  const total = co * ci * t;
  launch({
    kernel: 'conv2d.weightGradSum', code: DW_REDUCE, grid: grid1d(total, WG), bind: [partial, dw],
    uniforms: DW_REDUCE_UNIFORMS.pack({ total, ci, t, o4: Math.ceil(co / 4), parts }),
  });
  return dw;
}
