// 2-D convolution, NCHW float32, weights [Cout, Cin, kh, kw], zero padding, stride, dilation;
// forward, input gradient and weight gradient, each with its own kernel.
//
// How the kernels are built (see DESIGN.md, "The runtime facts that shape the code"):
// - Weights are re-laid out per call (they are small) so that one vec4 load brings one tap of
//   4 output channels: lanes run over groups of 4 output channels.
// - Each invocation computes a tile of PW pixels x PR rows for its 4 channels (register
//   blocking). The tap structure (kernel size, stride, dilation) is unrolled at code-generation
//   time, so an input row is loaded once as a few aligned vec4s and every value is picked from
//   them by a constant swizzle; rows that several (output row, kernel row) pairs need are loaded
//   once. With dilation d and stride 1 a tile's rows are spaced d apart, so rows are shared for
//   every d.
// - Zero padding: either a zero-padded copy of the planes with rows of whole vec4s (no bounds
//   checks in the inner loop), or, when the lanes share loads (below) and rows are whole vec4s,
//   the planes are read in place and each lane's loads carry a bounds check computed once,
//   outside the channel loop.
// - Shared loads (lavapipe): the 8 lanes of a subgroup work on the same tile (for 8 groups of 4
//   output channels), split the tile's activation vec4 loads between them and hand the values
//   round with subgroupBroadcast. A storage load there is a per-lane loop; a broadcast is a
//   register shuffle. This divides activation loads by 8 and was worth 2x. With stride 2 the
//   forward's lanes take 8 output channels each (two vec4 accumulators per pixel), halving the
//   activation loads per multiply-add.
// - The input gradient is the same correlation kernel run on the output gradient with the
//   weights re-laid out with Cin and Cout swapped: each input pixel gathers the taps whose
//   (pixel + padding - tap * dilation) is a multiple of the stride. Tiles are aligned to the
//   stride, so which taps reach which pixel of a tile is known when the WGSL is generated (phase
//   decomposition): no multiply by an inserted zero, no atomics, no copy-transpose of the forward.
//   On the fallback variant with stride 2, tiles hold one stride phase only (pixels spaced 2
//   apart, one dispatch per phase, see inputGradPhased): every pixel of a tile then takes the same
//   taps, so each loaded weight serves the whole tile (3x3 stride 2: 2.4x fewer loads per
//   multiply-add than all phases in one tile, and 1.3-1.6x faster on lavapipe).
// - The weight gradient accumulates, per invocation, 4 output channels x CB input channels x all
//   taps in registers over a band of tile rows, reading the output gradient re-laid out with 4
//   channels per vec4 (one load per pixel) and the input as above; the bands' partial sums are
//   then added by a small second kernel (deterministic, no atomics).
// - 1x1 kernels with stride 1, no padding and at most 4 output channels have their own kernels
//   with lanes over pixels (see "1x1 kernels with few output channels" below).
// - Pipelines depend only on (kernel size, stride, dilation, padding mod 4 and mod stride, tile
//   sizes, whether rows are whole vec4s); shapes are uniforms.
//
// Variants (`setConv2dVariant`, default by `runtime().adapter.isFallback`):
// - 'fallback' (lavapipe and other CPU adapters): tiles of 8 x 4 pixels (forward, input
//   gradient), 8 x 2 pixels x 8 input channels (weight gradient), shared subgroup loads when
//   subgroups of exactly 8 lanes are available and there are at least ~24 output channels.
//   Register blocking far past the register file still pays there; measured best of the sizes
//   tried. The price: big unrolled kernels that take lavapipe seconds each to compile the
//   first time (Mesa's on-disk shader cache keeps them afterwards).
// - 'gpu': tiles of 4 x 2 pixels and one input channel per weight-gradient invocation, padded
//   copies, no subgroup tricks, so that an invocation stays within a few dozen registers and
//   occupancy is high. Not measured on a GPU here (none was available); tested on lavapipe.

import { record } from '../autograd';
import { ENTRY_1D, Uniforms, assertFloat, empty, linearIndex } from '../kernel';
import { grid1d, runtime } from '../runtime';
import { Tensor } from '../tensor';
import { sum } from './reduce';

export interface Conv2dOptions {
  /** Step between output pixels (default 1). */
  stride?: number;
  /** Zeros added on each side of both spatial axes (default 0). */
  padding?: number;
  /** Spacing between kernel taps (default 1). */
  dilation?: number;
}

interface Tile {
  /** Pixels per row (a multiple of 4). */
  pw: number;
  /** Rows. */
  pr: number;
  /** With stride 1 and dilation d, space a tile's rows d apart so that they share input rows. */
  spaced: boolean;
}

interface Tuning {
  name: 'fallback' | 'gpu';
  /** Share activation loads across a subgroup (see tapCode). */
  share: boolean;
  fwd: Tile;
  dx: Tile;
  dw: Tile & { cb: number; minInvocations: number };
}

const FALLBACK: Tuning = {
  name: 'fallback',
  share: true,
  fwd: { pw: 8, pr: 4, spaced: true },
  dx: { pw: 8, pr: 4, spaced: true },
  dw: { pw: 8, pr: 2, spaced: true, cb: 8, minInvocations: 2048 },
};

const GPU: Tuning = {
  name: 'gpu',
  share: false,
  fwd: { pw: 4, pr: 2, spaced: true },
  dx: { pw: 4, pr: 2, spaced: true },
  dw: { pw: 4, pr: 2, spaced: true, cb: 1, minInvocations: 65536 },
};

let variant: 'auto' | 'fallback' | 'gpu' = 'auto';

/** Choose the conv2d kernel variant: 'auto' (by adapter: fallback on CPU adapters, gpu otherwise) or force one (tests, benchmarks). */
export function setConv2dVariant(v: 'auto' | 'fallback' | 'gpu'): void {
  variant = v;
}

/**
 * The subgroup size to share activation loads over for `channels` output channels, `cg` groups of
 * 4 of them per lane, or 0. Only on fallback adapters (where a load is a per-lane loop; on a GPU
 * the cache does this job), only with a fixed subgroup size of 8 (lavapipe's on AVX2), and only
 * when rounding the lanes up to whole subgroups wastes at most a quarter of them.
 */
function shareFor(channels: number, cg = 1): number {
  if (!tuning().share) return 0;
  const rt = runtime();
  if (!rt.device.features.has('subgroups')) return 0;
  const info = (rt.device as unknown as { adapterInfo?: { subgroupMinSize?: number; subgroupMaxSize?: number } }).adapterInfo;
  if (info?.subgroupMinSize !== 8 || info?.subgroupMaxSize !== 8) return 0;
  const lanes = Math.ceil(Math.ceil(channels / 4) / cg);
  const padded = Math.ceil(lanes / 8) * 8;
  return lanes * 4 >= padded * 3 ? 8 : 0;
}

function tuning(): Tuning {
  if (variant === 'fallback') return FALLBACK;
  if (variant === 'gpu') return GPU;
  return runtime().adapter.isFallback ? FALLBACK : GPU;
}

const WG = 64;
const COMP = ['x', 'y', 'z', 'w'];

// ---- tap planning ------------------------------------------------------------------------------

/** For each position of a tile along one axis: the taps that reach it, as [tap, input offset]. */
interface AxisPlan {
  taps: [number, number][][];
  maxOffset: number;
}

function plan(taps: [number, number][][]): AxisPlan {
  let maxOffset = 0;
  for (const list of taps) for (const [, t] of list) maxOffset = Math.max(maxOffset, t);
  return { taps, maxOffset };
}

/** Forward / weight gradient: position i is output (origin + i*spacing), reading input (origin*s + i*spacing*s + tap*d). */
function forwardAxis(size: number, spacing: number, k: number, s: number, d: number): AxisPlan {
  return plan(Array.from({ length: size }, (_, i) => Array.from({ length: k }, (_, kk) => [kk, i * spacing * s + kk * d] as [number, number])));
}

/**
 * Input gradient: position i is input pixel (origin + i*spacing) in coordinates shifted by the
 * padding, origin a multiple of the stride s. It receives tap kk from output gradient pixel
 * (origin + i*spacing + pm - kk*d)/s + pq where p = pq*s + pm, when that division is exact. Offsets
 * are relative to origin/s in a gradient plane padded by `base - pq` in front.
 */
function inputGradAxis(size: number, spacing: number, k: number, s: number, d: number, pm: number): { axis: AxisPlan; base: number } {
  const raw: [number, number][][] = [];
  let min = 0;
  for (let i = 0; i < size; i++) {
    const list: [number, number][] = [];
    for (let kk = 0; kk < k; kk++) {
      const num = i * spacing + pm - kk * d;
      if (((num % s) + s) % s !== 0) continue;
      list.push([kk, num / s]);
      min = Math.min(min, num / s);
    }
    raw.push(list);
  }
  const base = -min;
  return { axis: plan(raw.map((list) => list.map(([kk, t]) => [kk, t + base] as [number, number]))), base };
}

// ---- the correlation kernel (forward and input gradient) ----------------------------------------

interface CorrSpec {
  kh: number;
  kw: number;
  tile: Tile;
  sigma: number;
  rows: AxisPlan;
  cols: AxisPlan;
  /** Input row origin = output row origin * num / den. */
  rowNum: number;
  rowDen: number;
  /** Input columns per tile (a multiple of 4). */
  colStep: number;
  /** Output rows are a multiple of 4 long: store vec4s. */
  vec4Out: boolean;
  /** Subgroup size when the lanes of a subgroup share activation loads, else 0. */
  share: number;
  /**
   * Groups of 4 output channels per lane (1 or 2). Two halve the activation loads and broadcasts
   * per multiply-add at the price of twice the weight loads: used for stride 2 with shared loads,
   * whose tiles need 2.5x the activation loads per output of stride 1 (3x3, 8x4 tile: 45 vs 18
   * vec4s); measured 1.2-1.5x faster there, no gain at stride 1.
   */
  cg: number;
  /**
   * Input gradient by stride phase: the tile covers the output pixels (py + s*i, px + s*j) only,
   * rows and columns spaced s apart (sigma is then s). Absent otherwise.
   */
  phase?: { s: number; py: number; px: number };
}

interface TapCode {
  /** Module-scope declarations. */
  consts: string[];
  /** Loop-invariant setup, before the channel loop. */
  pre: string[];
  /** One channel's loads and multiply-adds. */
  body: string[];
}

/**
 * Loads and multiply-adds of one input channel, shared by the correlation and weight-gradient
 * kernels. Each distinct input row that the tile needs is loaded once, as the vec4s that hold
 * the columns it needs, and every (output row, kernel row) pair that reads it takes its values
 * by constant swizzles.
 *
 * With `share` (the subgroup size, when the subgroup's lanes work on the same tile), the lanes
 * split those vec4 loads between them and pass the values on with subgroupBroadcast: on lavapipe
 * a storage load is a per-lane loop, so this divides the count of activation loads by the
 * subgroup size, while a broadcast is a register shuffle.
 */
function tapCode(
  rows: AxisPlan,
  cols: AxisPlan,
  share: number,
  channels: number,
  /** Non-shared: the vec4 index where channel b's tile starts. */
  chanBase: (b: number) => string,
  /** Shared: the vec4 offset of channel b (a WGSL u32 expression in `b`) from `base`. */
  chanOff: (b: string) => string,
  base: string,
  mac: (b: number, r: number, ky: number, j: number, kx: number, value: string) => string,
): TapCode {
  const byRow = new Map<number, [number, number][]>();
  rows.taps.forEach((list, r) => {
    for (const [ky, t] of list) {
      if (!byRow.has(t)) byRow.set(t, []);
      byRow.get(t)!.push([r, ky]);
    }
  });
  const quadSet = new Set<number>();
  for (const list of cols.taps) for (const [, t] of list) quadSet.add(t >> 2);
  const quads = [...quadSet].sort((a, b) => a - b);
  const rhos = [...byRow.keys()].sort((a, b) => a - b);
  const consts: string[] = [];
  const pre: string[] = [];
  const body: string[] = [];
  const perChan = rhos.length * quads.length;
  const L = channels * perChan;
  const rounds = Math.ceil(L / Math.max(share, 1));
  if (share) {
    const range = Array.from({ length: channels }, (_, b) => b);
    consts.push(`const OFF_C = array<u32, ${L}>(${range.flatMap((b) => rhos.flatMap(() => quads.map(() => `${b}u`))).join(', ')});`);
    consts.push(`const OFF_R = array<u32, ${L}>(${range.flatMap(() => rhos.flatMap((r) => quads.map(() => `${r}u`))).join(', ')});`);
    consts.push(`const OFF_Q = array<u32, ${L}>(${range.flatMap(() => rhos.flatMap(() => quads.map((q) => `${q}u`))).join(', ')});`);
    // Each lane's share of the loads: its row and vec4 in the source plane (rowO, quadO: the
    // tile's origin there, i32), and whether that lies inside the plane (else it reads zero
    // padding). Loop-invariant, so the bounds checks stay out of the channel loop.
    for (let k = 0; k < rounds; k++) {
      pre.push(`  let e${k} = min(${k * share}u + lane, ${L - 1}u);`);
      pre.push(`  let row${k} = rowO + i32(OFF_R[e${k}]); let quad${k} = quadO + i32(OFF_Q[e${k}]);`);
      pre.push(`  let ok${k} = row${k} >= 0 && row${k} < i32(p.sh) && quad${k} >= 0 && quad${k} < i32(p.wp4);`);
      pre.push(`  let off${k} = ${chanOff(`OFF_C[e${k}]`)} + select(0u, u32(row${k}) * p.wp4 + u32(quad${k}), ok${k});`);
    }
    for (let k = 0; k < rounds; k++) body.push(`    var s${k} = vec4<f32>(); if (ok${k}) { s${k} = x[${base} + off${k}]; }`);
  }
  for (let b = 0; b < channels; b++) {
    const prefix = channels > 1 ? `v${b}_` : 'v';
    rhos.forEach((rho, ri) => {
      const users = byRow.get(rho)!;
      body.push(`    {`);
      if (!share) body.push(`      let rb = ${chanBase(b)} + ${rho}u * p.wp4;`);
      quads.forEach((q, qi) => {
        const e = b * perChan + ri * quads.length + qi;
        if (share) body.push(`      let ${prefix}${q} = subgroupBroadcast(s${Math.floor(e / share)}, ${e % share}u);`);
        else body.push(`      let ${prefix}${q} = x[rb + ${q}u];`);
      });
      for (const [r, ky] of users) {
        cols.taps.forEach((list, j) => {
          for (const [kx, t] of list) body.push(`      ${mac(b, r, ky, j, kx, `${prefix}${t >> 2}.${COMP[t & 3]}`)}`);
        });
      }
      body.push(`    }`);
    });
  }
  return { consts, pre, body };
}

function corrCode(c: CorrSpec): string {
  const { pw, pr } = c.tile;
  const T = c.kh * c.kw;
  const used = new Set<number>();
  c.rows.taps.forEach((rl) => c.cols.taps.forEach((cl) => rl.forEach(([ky]) => cl.forEach(([kx]) => used.add(ky * c.kw + kx)))));
  const G = c.cg;
  const H = Array.from({ length: G }, (_, h) => h);
  // Accumulator and weight names: a{r}_{j}, w{t} with one group per lane; a{r}_{j}_{h}, w{t}_{h} with two.
  const sfx = (h: number) => (G > 1 ? `_${h}` : '');
  const tc = tapCode(c.rows, c.cols, c.share, 1, () => 'xb', () => '0u', 'xb', (_b, r, ky, j, kx, v) =>
    H.map((h) => `a${r}_${j}${sfx(h)} += w${ky * c.kw + kx}${sfx(h)} * ${v};`).join(' '));
  const L: string[] = [];
  if (c.share) L.push('enable subgroups;', 'diagnostic(off, subgroup_uniformity);');
  L.push(`// conv2d correlation: tile ${pw}x${pr} spacing ${c.sigma}, k ${c.kh}x${c.kw}, rows *${c.rowNum}/${c.rowDen}, colStep ${c.colStep}, share ${c.share}${G > 1 ? `, ${G} channel groups` : ''}`);
  // o4: groups of 4 output channels; og: lanes per tile (o4 / cg); ogp: og rounded up to the
  // subgroup size when lanes share loads.
  // sh, wp4: rows and vec4s per row of a source plane; top, lq: where the tiles' padded coordinates
  // start in it (0 when the source is a padded copy).
  L.push(`struct P { c: u32, o4: u32, oc: u32, tilesX: u32, tilesY: u32, total: u32, wp4: u32, plane4: u32, ho: u32, wo: u32, ogp: u32, sh: u32, top: i32, lq: i32, og: u32 }`);
  L.push(`@group(0) @binding(0) var<uniform> p: P;`);
  L.push(`@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(3) var<storage, read_write> out: array<${c.vec4Out ? 'vec4<f32>' : 'f32'}>;`);
  L.push(...tc.consts);
  L.push(`@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>${c.share ? ', @builtin(subgroup_invocation_id) lane: u32' : ''}) {`);
  L.push(`  ${linearIndex(WG, 'gi0')}`);
  // No early return: with shared loads every lane of a subgroup must take part.
  L.push(`  let valid = gi0 < p.total;`);
  L.push(`  let gi = min(gi0, p.total - 1u);`);
  L.push(`  let og = gi % p.ogp; let r1 = gi / p.ogp;`);
  L.push(`  let ogc = min(og, p.og - 1u);`);
  L.push(`  let tx = r1 % p.tilesX; let r2 = r1 / p.tilesX;`);
  L.push(`  let ty = r2 % p.tilesY; let n = r2 / p.tilesY;`);
  const ph = c.phase;
  if (ph) {
    // Tile origins are multiples of s plus the phase; the source origin is origin / s (floor).
    L.push(`  let oy0 = ty * ${pr * ph.s}u + ${ph.py}u;`);
    L.push(`  let ox0 = tx * ${pw * ph.s}u + ${ph.px}u;`);
  } else {
    L.push(`  let oy0 = (ty / ${c.sigma}u) * ${pr * c.sigma}u + ty % ${c.sigma}u;`);
    L.push(`  let ox0 = tx * ${pw}u;`);
  }
  const cs = ph ? ph.s : 1;
  if (c.share) {
    L.push(`  var xb = n * p.c * p.plane4;`);
    L.push(`  let rowO = i32(oy0 * ${c.rowNum}u / ${c.rowDen}u) - p.top;`);
    L.push(`  let quadO = i32(tx * ${c.colStep / 4}u) - p.lq;`);
  } else {
    L.push(`  var xb = n * p.c * p.plane4 + (oy0 * ${c.rowNum}u / ${c.rowDen}u) * p.wp4 + tx * ${c.colStep / 4}u;`);
  }
  L.push(`  var wb = ogc${G > 1 ? ` * ${G}u` : ''};`);
  L.push(`  let wstep = ${T}u * p.o4;`);
  L.push(...tc.pre);
  for (let r = 0; r < pr; r++) for (let j = 0; j < pw; j++) for (const h of H) L.push(`  var a${r}_${j}${sfx(h)} = vec4<f32>();`);
  L.push(`  for (var ci = 0u; ci < p.c; ci++) {`);
  // (With two groups, the last lane's second group may lie past the channels: it reads the vec4
  // after the last group's, in bounds (at most the first bias vec4), and its sums are not stored.)
  for (const t of [...used].sort((a, b) => a - b)) for (const h of H) L.push(`    let w${t}${sfx(h)} = w[wb + ${t}u * p.o4${h ? ` + ${h}u` : ''}];`);
  L.push(...tc.body);
  L.push(`    xb += p.plane4; wb += wstep;`);
  L.push(`  }`);
  L.push(`  if (!valid || og >= p.og) { return; }`);
  L.push(`  let hw = p.ho * p.wo;`);
  for (const h of H) {
    const a = (r: number, j: number) => `a${r}_${j}${sfx(h)}`;
    L.push(`  {`);
    L.push(`  let o4 = og${G > 1 ? ` * ${G}u + ${h}u` : ''};`);
    if (h > 0) L.push(`  if (o4 >= p.o4) { return; }`);
    L.push(`  let bias = w[p.c * wstep + o4];`);
    L.push(`  let co = o4 * 4u;`);
    L.push(`  let ob = (n * p.oc + co) * hw;`);
    L.push(`  let m1 = co + 1u < p.oc; let m2 = co + 2u < p.oc; let m3 = co + 3u < p.oc;`);
    for (let r = 0; r < pr; r++) {
      L.push(`  let ry${r} = oy0 + ${r * c.sigma}u;`);
      L.push(`  if (ry${r} < p.ho) {`);
      if (c.vec4Out && !ph) {
        for (let j = 0; j < pw; j += 4) {
          L.push(`    if (ox0 + ${j}u < p.wo) {`);
          L.push(`      let q = (ob + ry${r} * p.wo + ox0 + ${j}u) / 4u; let h4 = hw / 4u;`);
          const av = [0, 1, 2, 3].map((i) => a(r, j + i));
          L.push(`      out[q] = vec4<f32>(${av.map((v) => `${v}.x`).join(', ')}) + bias.x;`);
          for (let i = 1; i < 4; i++) L.push(`      if (m${i}) { out[q + ${i}u * h4] = vec4<f32>(${av.map((v) => `${v}.${COMP[i]}`).join(', ')}) + bias.${COMP[i]}; }`);
          L.push(`    }`);
        }
      } else {
        for (let j = 0; j < pw; j++) {
          L.push(`    if (ox0 + ${j * cs}u < p.wo) {`);
          L.push(`      let q = ob + ry${r} * p.wo + ox0 + ${j * cs}u; let v = ${a(r, j)} + bias;`);
          L.push(`      out[q] = v.x; if (m1) { out[q + hw] = v.y; } if (m2) { out[q + 2u * hw] = v.z; } if (m3) { out[q + 3u * hw] = v.w; }`);
          L.push(`    }`);
        }
      }
      L.push(`  }`);
    }
    L.push(`  }`);
  }
  L.push(`}`);
  return L.join('\n');
}

// ---- helper kernels -------------------------------------------------------------------------

// Copy planes [planes][h][w] into zero-filled planes [planes][hp][wp] (wp a multiple of 4) at
// offset (top, left); negative offsets crop.
const PAD = `
struct P { total: u32, wp4: u32, hp: u32, h: u32, w: u32, top: i32, left: i32 }
@group(0) @binding(0) var<uniform> p: P;
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
function padVec4Code(m: number): string {
  const L: string[] = [];
  L.push(`struct P { total: u32, runs: u32, hp: u32, h: u32, w4: u32, top: i32, left4: i32, wp4: u32 }`);
  L.push(`@group(0) @binding(0) var<uniform> p: P;`);
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
const RELAYOUT = `
struct P { total: u32, c: u32, o: u32, o4: u32, t: u32, transposed: u32, hasBias: u32 }
@group(0) @binding(0) var<uniform> p: P;
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
const GRAD_RELAYOUT = `
struct P { total: u32, c: u32, c4: u32, h: u32, w: u32, hg: u32, wg: u32 }
@group(0) @binding(0) var<uniform> p: P;
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
const GRAD_RELAYOUT4 = `
struct P { total: u32, c: u32, c4: u32, h: u32, w4: u32, hg: u32, wg4: u32 }
@group(0) @binding(0) var<uniform> p: P;
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
const DW_REDUCE = `
struct P { total: u32, ci: u32, t: u32, o4: u32, parts: u32 }
@group(0) @binding(0) var<uniform> p: P;
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

function launch(kernel: string, code: string, n: number, storage: Tensor[], u: Uniforms): void {
  if (n === 0) return;
  runtime().dispatch({ kernel, code, workgroups: grid1d(n, WG), storage: storage.map((t) => t.binding()), uniforms: u.bytes() });
}

/** Zero-padded copy of the planes of `src` [N, C, h, w] as [N*C*hp*wp] with wp a multiple of 4. */
function padPlanes(src: Tensor, top: number, left: number, hp: number, wp: number): Tensor {
  const [n, c, h, w] = src.shape;
  const out = empty([n * c * hp * wp]);
  if (w % 4 === 0) {
    const m = ((left % 4) + 4) % 4;
    const left4 = (left - m) / 4;
    const runs = Math.ceil(wp / 4 / PAD_RUN);
    const total = n * c * hp * runs;
    launch('conv2d.pad4', padVec4Code(m), total, [src, out], new Uniforms().u32(total, runs, hp, h, w / 4).i32(top, left4).u32(wp / 4));
    return out;
  }
  const total = (n * c * hp * wp) / 4;
  launch('conv2d.pad', PAD, total, [src, out], new Uniforms().u32(total, wp / 4, hp, h, w).i32(top, left));
  return out;
}

function relayoutWeights(w: Tensor, b: Tensor | null, transposed: boolean): Tensor {
  const [co, ci, kh, kw] = w.shape;
  const T = kh * kw;
  const [c, o] = transposed ? [co, ci] : [ci, co];
  const o4 = Math.ceil(o / 4);
  const total = (c * T + 1) * o4;
  const out = empty([total * 4]);
  launch('conv2d.weights', RELAYOUT, total, [w, b ?? w, out], new Uniforms().u32(total, c, o, o4, T, transposed ? 1 : 0, b ? 1 : 0));
  return out;
}

interface Geometry {
  n: number; ci: number; h: number; w: number;
  co: number; kh: number; kw: number;
  s: number; p: number; d: number;
  ho: number; wo: number;
}

function positiveInt(v: number, what: string, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new Error(`conv2d: ${what} must be an integer >= ${min}, got ${v}`);
  return v;
}

function geometry(x: Tensor, w: Tensor, b: Tensor | null, opts: Conv2dOptions): Geometry {
  assertFloat(x, 'conv2d');
  assertFloat(w, 'conv2d');
  if (x.rank !== 4) throw new Error(`conv2d: input must be 4-D [N, Cin, H, W], got shape [${x.shape}]`);
  if (w.rank !== 4) throw new Error(`conv2d: weights must be 4-D [Cout, Cin, kh, kw], got shape [${w.shape}]`);
  const [n, ci, h, wd] = x.shape;
  const [co, ci2, kh, kw] = w.shape;
  if (ci !== ci2) throw new Error(`conv2d: input has ${ci} channels but the weights [${w.shape}] expect ${ci2} (weights are [Cout, Cin, kh, kw])`);
  if (n < 1 || ci < 1 || h < 1 || wd < 1) throw new Error(`conv2d: input [${x.shape}] has an empty dimension`);
  if (co < 1 || kh < 1 || kw < 1) throw new Error(`conv2d: weights [${w.shape}] have an empty dimension`);
  if (b) {
    assertFloat(b, 'conv2d');
    if (b.rank !== 1 || b.shape[0] !== co) throw new Error(`conv2d: bias must have shape [${co}] (one per output channel), got [${b.shape}]`);
  }
  const s = positiveInt(opts.stride ?? 1, 'stride', 1);
  const p = positiveInt(opts.padding ?? 0, 'padding', 0);
  const d = positiveInt(opts.dilation ?? 1, 'dilation', 1);
  const ho = Math.floor((h + 2 * p - d * (kh - 1) - 1) / s) + 1;
  const wo = Math.floor((wd + 2 * p - d * (kw - 1) - 1) / s) + 1;
  if (ho < 1 || wo < 1) {
    throw new Error(
      `conv2d: the ${kh}x${kw} kernel with dilation ${d} spans ${d * (kh - 1) + 1}x${d * (kw - 1) + 1} pixels, more than the padded input ` +
        `${h + 2 * p}x${wd + 2 * p} (input [${x.shape}], padding ${p}); use more padding or a smaller dilation`,
    );
  }
  return { n, ci, h, w: wd, co, kh, kw, s, p, d, ho, wo };
}

/** Source planes as a kernel reads them. */
interface Source {
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
function sourceOf(src: Tensor, top: number, left: number, hp: number, wp: number, direct: boolean): Source {
  if (direct && src.shape[3] % 4 === 0) {
    const m = ((left % 4) + 4) % 4;
    return { t: src, owned: false, sh: src.shape[2], wp: src.shape[3], top, lq: (left - m) / 4 + (m ? 1 : 0), c0: (4 - m) % 4 };
  }
  return { t: padPlanes(src, top, left, hp, wp), owned: true, sh: hp, wp, top: 0, lq: 0, c0: 0 };
}

function shiftCols(a: AxisPlan, c0: number): AxisPlan {
  return c0 ? plan(a.taps.map((list) => list.map(([k, t]) => [k, t + c0] as [number, number]))) : a;
}

function runCorr(spec: CorrSpec, src: Source, wt: Tensor, out: Tensor, u: { n: number; c: number; o: number; tilesX: number; tilesY: number; ho: number; wo: number }): void {
  const o4 = Math.ceil(u.o / 4);
  const og = Math.ceil(o4 / spec.cg);
  const ogp = spec.share ? Math.ceil(og / spec.share) * spec.share : og;
  const total = ogp * u.tilesX * u.tilesY * u.n;
  const uni = new Uniforms().u32(u.c, o4, u.o, u.tilesX, u.tilesY, total, src.wp / 4, (src.sh * src.wp) / 4, u.ho, u.wo, ogp, src.sh).i32(src.top, src.lq).u32(og);
  launch(`conv2d.corr`, corrCode({ ...spec, cols: shiftCols(spec.cols, src.c0) }), total, [src.t, wt, out], uni);
  if (src.owned) src.t.dispose();
}

function forwardRaw(x: Tensor, w: Tensor, b: Tensor | null, g: Geometry): Tensor {
  const tile = tuning().fwd;
  // Stride 2 with shared loads: two groups of 4 output channels per lane (see CorrSpec.cg).
  const cg = g.s === 2 && shareFor(g.co, 2) ? 2 : 1;
  const sigma = tile.spaced && g.s === 1 ? g.d : 1;
  const rows = forwardAxis(tile.pr, sigma, g.kh, g.s, g.d);
  const cols = forwardAxis(tile.pw, 1, g.kw, g.s, g.d);
  const tilesX = Math.ceil(g.wo / tile.pw);
  const groups = Math.ceil(g.ho / (tile.pr * sigma));
  const tilesY = groups * sigma;
  const colStep = tile.pw * g.s;
  const wp = (tilesX - 1) * colStep + 4 * ((cols.maxOffset >> 2) + 1);
  const hp = ((groups - 1) * tile.pr * sigma + sigma - 1) * g.s + rows.maxOffset + 1;
  const share = shareFor(g.co, cg);
  const src = sourceOf(x, g.p, g.p, hp, wp, share > 0);
  const wt = relayoutWeights(w, b, false);
  const out = empty([g.n, g.co, g.ho, g.wo]);
  const spec: CorrSpec = { kh: g.kh, kw: g.kw, tile, sigma, rows, cols, rowNum: g.s, rowDen: 1, colStep, vec4Out: g.wo % 4 === 0, share, cg };
  runCorr(spec, src, wt, out, { n: g.n, c: g.ci, o: g.co, tilesX, tilesY, ho: g.ho, wo: g.wo });
  wt.dispose();
  return out;
}

/**
 * Input gradient with stride s > 1 on the fallback variant, one dispatch per stride phase
 * (py, px): the pixels (py + s*i, px + s*j) all receive the same taps, so a tile of PW x PR of
 * them uses every loaded weight for every pixel (with all phases in one tile, 3x3 stride 2, only
 * a quarter of the taps reach each pixel). Null when some phase receives no tap (left to the
 * general kernel).
 */
function inputGradPhased(gy: Tensor, w: Tensor, g: Geometry): Tensor | null {
  const t = tuning().dx;
  const s = g.s;
  const pm = g.p % s;
  const pq = (g.p - pm) / s;
  const phases: { py: number; px: number; pw: number; pr: number; rows: { axis: AxisPlan; base: number }; cols: { axis: AxisPlan; base: number } }[] = [];
  for (let py = 0; py < Math.min(s, g.h); py++) {
    for (let px = 0; px < Math.min(s, g.w); px++) {
      // A phase that one tap reaches along an axis gets a tile twice as long there, so that
      // each invocation still does about as many multiply-adds per loaded value.
      const one = (k: number, m: number) => inputGradAxis(1, s, k, s, g.d, m).axis.taps[0].length <= 1;
      const pr = one(g.kh, pm + py) ? 2 * t.pr : t.pr;
      const pw = one(g.kw, pm + px) ? 2 * t.pw : t.pw;
      const rows = inputGradAxis(pr, s, g.kh, s, g.d, pm + py);
      const cols = inputGradAxis(pw, s, g.kw, s, g.d, pm + px);
      if (rows.axis.taps.some((l) => l.length === 0) || cols.axis.taps.some((l) => l.length === 0)) return null;
      phases.push({ py, px, pw, pr, rows, cols });
    }
  }
  // One source layout for all phases: the largest front padding, the others' offsets shifted.
  const by = Math.max(...phases.map((p) => p.rows.base));
  const bx = Math.max(...phases.map((p) => p.cols.base));
  const shift = (a: AxisPlan, k: number) => plan(a.taps.map((l) => l.map(([kk, o]) => [kk, o + k] as [number, number])));
  const plans = phases.map((p) => {
    const tilesX = Math.ceil(Math.ceil((g.w - p.px) / s) / p.pw);
    const tilesY = Math.ceil(Math.ceil((g.h - p.py) / s) / p.pr);
    const r = shift(p.rows.axis, by - p.rows.base);
    const c = shift(p.cols.axis, bx - p.cols.base);
    // Extent of the source that this phase reads (a padded copy must cover it).
    const wp = (tilesX - 1) * p.pw + 4 * ((c.maxOffset >> 2) + 1);
    const hp = (tilesY - 1) * p.pr + r.maxOffset + 1;
    return { ...p, r, c, tilesX, tilesY, wp, hp };
  });
  const wp = Math.max(...plans.map((p) => p.wp));
  const hp = Math.max(...plans.map((p) => p.hp));
  const share = shareFor(g.ci);
  const wt = relayoutWeights(w, null, true);
  const dx = empty([g.n, g.ci, g.h, g.w]);
  const src = sourceOf(gy, by - pq, bx - pq, hp, wp, share > 0);
  for (const ph of plans) {
    const tile: Tile = { pw: ph.pw, pr: ph.pr, spaced: false };
    const spec: CorrSpec = { kh: g.kh, kw: g.kw, tile, sigma: s, rows: ph.r, cols: ph.c, rowNum: 1, rowDen: s, colStep: ph.pw, vec4Out: false, share, cg: 1, phase: { s, py: ph.py, px: ph.px } };
    runCorr(spec, { ...src, owned: false }, wt, dx, { n: g.n, c: g.co, o: g.ci, tilesX: ph.tilesX, tilesY: ph.tilesY, ho: g.h, wo: g.w });
  }
  if (src.owned) src.t.dispose();
  wt.dispose();
  return dx;
}

function inputGradRaw(gy: Tensor, w: Tensor, g: Geometry): Tensor {
  // Phases only for stride 2 (the U-Net's down-sampling): stride s needs up to s*s large kernels,
  // each seconds to compile on lavapipe; other strides keep the all-phases kernel.
  if (g.s === 2 && tuning().name === 'fallback') {
    const dx = inputGradPhased(gy, w, g);
    if (dx) return dx;
  }
  const t = tuning().dx;
  const s = g.s;
  const pw = Math.ceil(t.pw / (4 * s)) * 4 * s;
  const pr = Math.ceil(t.pr / s) * s;
  const tile: Tile = { pw, pr, spaced: t.spaced };
  const sigma = t.spaced && s === 1 ? g.d : 1;
  const pm = g.p % s;
  const pq = (g.p - pm) / s;
  const rowPlan = inputGradAxis(pr, sigma, g.kh, s, g.d, pm);
  const colPlan = inputGradAxis(pw, 1, g.kw, s, g.d, pm);
  const tilesX = Math.ceil(g.w / pw);
  const groups = Math.ceil(g.h / (pr * sigma));
  const tilesY = groups * sigma;
  const colStep = pw / s;
  const wp = (tilesX - 1) * colStep + 4 * ((colPlan.axis.maxOffset >> 2) + 1);
  // (with s > 1, sigma is 1 and the last origin is a multiple of s)
  const hp = ((groups - 1) * pr * sigma + sigma - 1) / s + rowPlan.axis.maxOffset + 1;
  const share = shareFor(g.ci);
  const src = sourceOf(gy, rowPlan.base - pq, colPlan.base - pq, hp, wp, share > 0);
  const wt = relayoutWeights(w, null, true);
  const dx = empty([g.n, g.ci, g.h, g.w]);
  const spec: CorrSpec = { kh: g.kh, kw: g.kw, tile, sigma, rows: rowPlan.axis, cols: colPlan.axis, rowNum: 1, rowDen: s, colStep, vec4Out: g.w % 4 === 0, share, cg: 1 };
  runCorr(spec, src, wt, dx, { n: g.n, c: g.co, o: g.ci, tilesX, tilesY, ho: g.h, wo: g.w });
  wt.dispose();
  return dx;
}

// ---- weight gradient ----------------------------------------------------------------------------

interface DwSpec {
  kh: number;
  kw: number;
  tile: Tile;
  cb: number;
  sigma: number;
  s: number;
  rows: AxisPlan;
  cols: AxisPlan;
  share: number;
}

function dwCode(c: DwSpec): string {
  const { pw, pr } = c.tile;
  const T = c.kh * c.kw;
  const tc = tapCode(
    c.rows, c.cols, c.share, c.cb,
    (b) => `xt + ci${b} * plane`,
    (b) => `min(cbi * ${c.cb}u + ${b}, p.ci - 1u) * plane`,
    'xt',
    (b, r, ky, j, kx, v) => `a${b}_${ky * c.kw + kx} += g${r}_${j} * ${v};`,
  );
  const L: string[] = [];
  if (c.share) L.push('enable subgroups;', 'diagnostic(off, subgroup_uniformity);');
  L.push(`// conv2d weight gradient: tile ${pw}x${pr} spacing ${c.sigma}, ${c.cb} input channels, k ${c.kh}x${c.kw}, stride ${c.s}, share ${c.share}`);
  L.push(`struct P { ci: u32, nb: u32, o4: u32, tilesX: u32, tilesY: u32, rowsTotal: u32, rpp: u32, total: u32, wp4: u32, sh: u32, hg: u32, wg: u32, o4p: u32, top: i32, lq: i32 }`);
  L.push(`@group(0) @binding(0) var<uniform> p: P;`);
  L.push(`@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(2) var<storage, read> gt: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(3) var<storage, read_write> part: array<vec4<f32>>;`);
  L.push(...tc.consts);
  L.push(`@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>${c.share ? ', @builtin(subgroup_invocation_id) lane: u32' : ''}) {`);
  L.push(`  ${linearIndex(WG, 'gi0')}`);
  L.push(`  let valid = gi0 < p.total;`);
  L.push(`  let gi = min(gi0, p.total - 1u);`);
  L.push(`  let o4 = gi % p.o4p; let r1 = gi / p.o4p;`);
  L.push(`  let o4c = min(o4, p.o4 - 1u);`);
  L.push(`  let cbi = r1 % p.nb; let prt = r1 / p.nb;`);
  L.push(`  let plane = p.sh * p.wp4;`);
  for (let b = 0; b < c.cb; b++) {
    L.push(`  let ci${b} = min(cbi * ${c.cb}u + ${b}u, p.ci - 1u);`);
    for (let t = 0; t < T; t++) L.push(`  var a${b}_${t} = vec4<f32>();`);
  }
  L.push(`  let rEnd = min((prt + 1u) * p.rpp, p.rowsTotal);`);
  L.push(`  for (var R = prt * p.rpp; R < rEnd; R++) {`);
  L.push(`    let n = R / p.tilesY; let ty = R % p.tilesY;`);
  L.push(`    let oy0 = (ty / ${c.sigma}u) * ${pr * c.sigma}u + ty % ${c.sigma}u;`);
  L.push(`    let gRow = ((n * p.o4 + o4c) * p.hg + oy0) * p.wg;`);
  L.push(`    let xRow = (n * p.ci) * plane + oy0 * ${c.s}u * p.wp4;`);
  L.push(`    for (var tx = 0u; tx < p.tilesX; tx++) {`);
  L.push(`      let gb = gRow + tx * ${pw}u;`);
  for (let r = 0; r < pr; r++) for (let j = 0; j < pw; j++) L.push(`      let g${r}_${j} = gt[gb + ${r * c.sigma}u * p.wg + ${j}u];`);
  if (c.share) {
    L.push(`      let xt = n * p.ci * plane;`);
    L.push(`      let rowO = i32(oy0 * ${c.s}u) - p.top;`);
    L.push(`      let quadO = i32(tx * ${(pw * c.s) / 4}u) - p.lq;`);
    L.push(...tc.pre.map((l) => `    ${l}`));
  } else {
    L.push(`      let xt = xRow + tx * ${(pw * c.s) / 4}u;`);
  }
  L.push(...tc.body.map((l) => `  ${l}`));
  L.push(`    }`);
  L.push(`  }`);
  L.push(`  if (!valid || o4 >= p.o4) { return; }`);
  for (let b = 0; b < c.cb; b++) {
    L.push(`  if (cbi * ${c.cb}u + ${b}u < p.ci) {`);
    L.push(`    let q = ((prt * p.ci + ci${b}) * ${T}u) * p.o4 + o4;`);
    for (let t = 0; t < T; t++) L.push(`    part[q + ${t}u * p.o4] = a${b}_${t};`);
    L.push(`  }`);
  }
  L.push(`}`);
  return L.join('\n');
}

function weightGradRaw(x: Tensor, gy: Tensor, g: Geometry): Tensor {
  const tn = tuning().dw;
  const tile: Tile = tn;
  const sigma = tn.spaced && g.s === 1 ? g.d : 1;
  const rows = forwardAxis(tile.pr, sigma, g.kh, g.s, g.d);
  const cols = forwardAxis(tile.pw, 1, g.kw, g.s, g.d);
  const tilesX = Math.ceil(g.wo / tile.pw);
  const groups = Math.ceil(g.ho / (tile.pr * sigma));
  const tilesY = groups * sigma;
  const colStep = tile.pw * g.s;
  const wp = (tilesX - 1) * colStep + 4 * ((cols.maxOffset >> 2) + 1);
  const hp = ((groups - 1) * tile.pr * sigma + sigma - 1) * g.s + rows.maxOffset + 1;
  const hg = groups * tile.pr * sigma;
  const wg = tilesX * tile.pw;
  const o4 = Math.ceil(g.co / 4);
  // Input channels per invocation: the tuning's, or the largest power of two that fits few channels
  // (a small set of sizes keeps the number of distinct pipelines small).
  let cb = tn.cb;
  while (cb > g.ci) cb >>= 1;
  const nb = Math.ceil(g.ci / cb);
  const rowsTotal = g.n * tilesY;
  const wanted = Math.min(rowsTotal, Math.max(1, Math.ceil(tn.minInvocations / (o4 * nb))));
  const rpp = Math.ceil(rowsTotal / wanted);
  const parts = Math.ceil(rowsTotal / rpp);
  const T = g.kh * g.kw;

  const share = shareFor(g.co);
  const src = sourceOf(x, g.p, g.p, hp, wp, share > 0);
  const gtTotal = g.n * o4 * hg * wg;
  const gt = empty([gtTotal * 4]);
  if (g.wo % 4 === 0) {
    const n4 = gtTotal / 4; // wg is a multiple of 4
    launch('conv2d.gradLayout4', GRAD_RELAYOUT4, n4, [gy, gt], new Uniforms().u32(n4, g.co, o4, g.ho, g.wo / 4, hg, wg / 4));
  } else {
    launch('conv2d.gradLayout', GRAD_RELAYOUT, gtTotal, [gy, gt], new Uniforms().u32(gtTotal, g.co, o4, g.ho, g.wo, hg, wg));
  }
  const partial = empty([parts * g.ci * T * o4 * 4]);
  const o4p = share ? Math.ceil(o4 / share) * share : o4;
  const total = o4p * nb * parts;
  const spec: DwSpec = { kh: g.kh, kw: g.kw, tile, cb, sigma, s: g.s, rows, cols: shiftCols(cols, src.c0), share };
  const u = new Uniforms().u32(g.ci, nb, o4, tilesX, tilesY, rowsTotal, rpp, total, src.wp / 4, src.sh, hg, wg, o4p).i32(src.top, src.lq);
  launch('conv2d.weightGrad', dwCode(spec), total, [src.t, gt, partial], u);
  const dw = empty([g.co, g.ci, g.kh, g.kw]);
  const n = g.co * g.ci * T;
  launch('conv2d.weightGradSum', DW_REDUCE, n, [partial, dw], new Uniforms().u32(n, g.ci, T, o4, parts));
  if (src.owned) src.t.dispose();
  gt.dispose();
  partial.dispose();
  return dw;
}

/**
 * 2-D convolution (cross-correlation, as in PyTorch) of x [N, Cin, H, W] with w [Cout, Cin, kh, kw]
 * plus an optional bias [Cout]: y [N, Cout, Ho, Wo] with Ho = floor((H + 2p - d(kh-1) - 1)/s) + 1
 * (likewise Wo). Zero padding p on every side, stride s, dilation d. Differentiable in x, w and b.
 */
export function conv2d(x: Tensor, w: Tensor, b: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  const g = geometry(x, w, b, opts);
  const small = isSmall1x1(g);
  const y = small ? forward1x1(x, w, b, g) : forwardRaw(x, w, b, g);
  const inputs = b ? [x, w, b] : [x, w];
  return record(y, 'conv2d', inputs, (gy) => {
    const dx = x.requiresGrad ? (small ? inputGrad1x1(gy, w, g) : inputGradRaw(gy, w, g)) : null;
    const dw = w.requiresGrad ? (small ? weightGrad1x1(x, gy, g) : weightGradRaw(x, gy, g)) : null;
    if (!b) return [dx, dw];
    return [dx, dw, b.requiresGrad ? sum(gy, [0, 2, 3]) : null];
  });
}

// ---- 1x1 kernels with few output channels -------------------------------------------------------
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

/** Output channels up to which the 1x1 kernels are used. */
const SMALL_CO = 4;
/** Units (vec4 or f32) of pixels per forward / input-gradient invocation. */
const PX = 4;
/** Input channels per weight-gradient and input-gradient invocation. */
const CB1 = 8;

function isSmall1x1(g: Geometry): boolean {
  return g.kh === 1 && g.kw === 1 && g.s === 1 && g.p === 0 && g.co <= SMALL_CO;
}

function unitOf(hw: number): { u: string; v: number } {
  return hw % 4 === 0 ? { u: 'vec4<f32>', v: 4 } : { u: 'f32', v: 1 };
}

function fwd1x1Code(co: number, u: string, contig: boolean): string {
  const L: string[] = [];
  L.push(`// conv2d 1x1 -> ${co} channels, ${PX} x ${u} per invocation, ${contig ? 'contiguous' : 'strided'}`);
  L.push(`struct P { ci: u32, hwu: u32, s: u32, total: u32, bias: u32 }`);
  L.push(`@group(0) @binding(0) var<uniform> p: P;`);
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
  L.push(`struct P { ci: u32, hwu: u32, s: u32, total: u32, nb: u32 }`);
  L.push(`@group(0) @binding(0) var<uniform> p: P;`);
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
  L.push(`struct P { ci: u32, hwu: u32, pt: u32, total: u32, n: u32 }`);
  L.push(`@group(0) @binding(0) var<uniform> p: P;`);
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
struct P { total: u32, pt: u32 }
@group(0) @binding(0) var<uniform> p: P;
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

function forward1x1(x: Tensor, w: Tensor, b: Tensor | null, g: Geometry): Tensor {
  const hw = g.h * g.w;
  const { u, v } = unitOf(hw);
  const hwu = hw / v;
  const s = Math.ceil(hwu / PX);
  const total = g.n * s;
  const out = empty([g.n, g.co, g.ho, g.wo]);
  launch(`conv2d.fwd1x1`, fwd1x1Code(g.co, u, tuning().name === 'fallback'), total, [x, w, b ?? w, out], new Uniforms().u32(g.ci, hwu, s, total, b ? 1 : 0));
  return out;
}

function inputGrad1x1(gy: Tensor, w: Tensor, g: Geometry): Tensor {
  const hw = g.h * g.w;
  const { u, v } = unitOf(hw);
  const hwu = hw / v;
  const s = Math.ceil(hwu / PX);
  const nb = Math.ceil(g.ci / CB1);
  const total = g.n * nb * s;
  const dx = empty([g.n, g.ci, g.h, g.w]);
  launch(`conv2d.dx1x1`, dx1x1Code(g.co, u), total, [gy, w, dx], new Uniforms().u32(g.ci, hwu, s, total, nb));
  return dx;
}

function weightGrad1x1(x: Tensor, gy: Tensor, g: Geometry): Tensor {
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
  const part = direct ? empty([g.co, g.ci, 1, 1]) : empty([g.co * g.ci * pt * v]);
  launch(`conv2d.dw1x1`, dw1x1Code(g.co, cb, u, direct), total, [x, gy, part], new Uniforms().u32(g.ci, hwu, pt, total, g.n));
  if (direct) return part;
  const dw = empty([g.co, g.ci, 1, 1]);
  const n = g.co * g.ci;
  launch(`conv2d.dw1x1Sum`, dw1x1SumCode(u), n, [part, dw], new Uniforms().u32(n, pt));
  part.dispose();
  return dw;
}
