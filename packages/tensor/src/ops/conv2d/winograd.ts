// Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions (any padding, any dilation), forward and
// input gradient, in four kernels:
//   weights  U[c][t][o4] = G g G^T per (input channel c, 4 output channels): 16 vec4 per pair
//            (the 16 of a channel together: stores close to each other; at 512 channels 5.5 ms
//            against 9-13 ms for [t][c][o4] on lavapipe);
//   input    V[t][c][p]  = B^T d B of the 4x4 input patch of every output tile p (2x2 outputs);
//   gemm     M[t][p][o4] = sum over c of U[c][t][o4] * V[t][c][p]: 16 independent [O x C] by
//            [C x P] products, where the time goes (16 multiplies per tile and channel instead of
//            36: 2.25x fewer than the direct kernel);
//   output   y = A^T M A per tile and 4 output channels, plus the bias.
//
// Dilation d: output pixels congruent to (ry, rx) mod d read only input pixels congruent to
// (ry - p, rx - p) mod d, so a dilated conv is d x d interleaved undilated convs on sub-grids. A
// tile here is 2x2 outputs spaced d apart, (y0, y0 + d) x (x0, x0 + d), reading the 4x4 input
// pixels (y0 - p + i*d, x0 - p + j*d): the sub-grid decomposition with no copy, only indexing.
// Tiles along each axis: index t -> sub-grid r = t mod d, k = t / d, origin r + 2*d*k.
//
// Input gradient: for stride 1, dx = correlation of dy with the weights flipped in both taps and
// with Cin and Cout swapped, padding 2d - p (the same size back): the same four kernels, the
// weight kernel reading w transposed and flipped.
//
// The GEMM is built for lavapipe's cost model (see index.ts and the benchmarks' README): lanes run
// over groups of 4 output channels (one vec4 weight load per channel step), each invocation holds
// PB tiles of accumulators, and with shared loads the 8 lanes of a subgroup (same tiles, 8
// channel groups) split the PB/4 vec4 loads of V between them and pass them on by
// subgroupBroadcast. Per channel step: 1 + PB/32 loads for PB vec4 multiply-adds.
//
// V and M take 4x the input's and the output's memory (16 values per 4 pixels); batches whose V or
// M would pass the adapter's storage-binding limit run in chunks of images.

import { empty, grid1d, launch, uniformStruct } from '../../kernel';
import { runtime } from '../../runtime';
import type { Tensor } from '../../tensor';
import { convFlops, type Geometry } from './geometry';
import { tiledKernelFrame } from './taps';
import { WG, shareFor } from './tuning';

/** Tiles per GEMM invocation (shared loads: one vec4 of V per lane per 32 tiles). */
const PB_SHARED = 32;
const PB_ALONE = 16;

/** The tile layout of one Winograd pass over `n` images (a chunk of the batch). */
interface WinoPlan {
  /** Images in a chunk, and chunks. */
  nb: number;
  chunks: number;
  tilesY: number;
  tilesX: number;
  /** Tiles of a chunk, and that rounded up to the GEMM's block. */
  tiles: number;
  tilesPad: number;
  pb: number;
  share: number;
}

/** The convolution one Winograd pass computes: input planes [n, c, h, w] -> [n, o, ho, wo]. */
interface WinoConv {
  n: number; c: number; h: number; w: number;
  o: number; ho: number; wo: number;
  p: number; d: number;
}

/** Tiles along an axis of `size` outputs with dilation d: d sub-grids of ceil(ceil(size/d)/2) tiles. */
function tilesAlong(size: number, d: number): number {
  return d * Math.ceil(Math.ceil(size / d) / 2);
}

let chunkBytes: number | null = null;

/** Tests: pretend the storage-binding limit is `bytes` (null: the adapter's), to exercise the chunking over images. */
export function setWinogradChunkLimit(bytes: number | null): void {
  chunkBytes = bytes;
}

function planFor(cv: WinoConv): WinoPlan | null {
  const share = shareFor(cv.o);
  const pb = share ? PB_SHARED : PB_ALONE;
  const tilesY = tilesAlong(cv.ho, cv.d);
  const tilesX = tilesAlong(cv.wo, cv.d);
  const perImage = tilesY * tilesX;
  const limit = chunkBytes ?? runtime().adapter.limits.maxStorageBufferBindingSize ?? 128 * 2 ** 20;
  // Bytes of V and M per tile: 16 floats per channel.
  const perTile = 64 * Math.max(cv.c, Math.ceil(cv.o / 4) * 4);
  const nb = Math.min(cv.n, Math.floor(limit / (perTile * Math.ceil(perImage / pb) * pb)));
  if (nb < 1) return null;
  const tiles = nb * perImage;
  return { nb, chunks: Math.ceil(cv.n / nb), tilesY, tilesX, tiles, tilesPad: Math.ceil(tiles / pb) * pb, pb, share };
}

// ---- weights: U[c][t][o4] (vec4 over 4 output channels) = G g G^T -------------------------------

const WEIGHT_UNIFORMS = uniformStruct('conv2d.winograd.weights', { total: 'u32', c: 'u32', o: 'u32', o4: 'u32', transposed: 'u32' });

// G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]].
const WEIGHTS = `
${WEIGHT_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> u: array<vec4<f32>>;
// Tap (ky, kx) of output channel o and input channel c of the conv computed; transposed: the
// input gradient's, from w [C, O, 3, 3] flipped in both taps.
fn tap(o: u32, c: u32, ky: u32, kx: u32) -> f32 {
  if (o >= p.o) { return 0.0; }
  if (p.transposed != 0u) { return w[((c * p.o + o) * 3u + 2u - ky) * 3u + 2u - kx]; }
  return w[((o * p.c + c) * 3u + ky) * 3u + kx];
}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let q = (wid.y * nwg.x + wid.x) * ${WG}u + lid.x;
  if (q >= p.total) { return; }
  let o4 = q % p.o4; let c = q / p.o4;
  let o = o4 * 4u;
  var g: array<vec4<f32>, 9>;
  for (var k = 0u; k < 9u; k++) {
    g[k] = vec4<f32>(tap(o, c, k / 3u, k % 3u), tap(o + 1u, c, k / 3u, k % 3u), tap(o + 2u, c, k / 3u, k % 3u), tap(o + 3u, c, k / 3u, k % 3u));
  }
  // G g: 4 rows x 3 columns.
  var a: array<vec4<f32>, 12>;
  for (var j = 0u; j < 3u; j++) {
    let g0 = g[j]; let g1 = g[3u + j]; let g2 = g[6u + j];
    a[j] = g0;
    a[3u + j] = 0.5 * (g0 + g1 + g2);
    a[6u + j] = 0.5 * (g0 - g1 + g2);
    a[9u + j] = g2;
  }
  // (G g) G^T: 4 x 4, stored at tap position t = 4 i + j.
  let step = p.o4;
  let base = c * 16u * p.o4 + o4;
  for (var i = 0u; i < 4u; i++) {
    let a0 = a[3u * i]; let a1 = a[3u * i + 1u]; let a2 = a[3u * i + 2u];
    u[base + (4u * i) * step] = a0;
    u[base + (4u * i + 1u) * step] = 0.5 * (a0 + a1 + a2);
    u[base + (4u * i + 2u) * step] = 0.5 * (a0 - a1 + a2);
    u[base + (4u * i + 3u) * step] = a2;
  }
}`;

// ---- input: V[t][c][p] = B^T d B, 4 tiles per invocation (vec4 stores along p) -------------------

const TILE_UNIFORMS = uniformStruct('conv2d.winograd.tiles', {
  total: 'u32', c: 'u32', h: 'u32', w: 'u32', tilesX: 'u32', tilesY: 'u32', tiles: 'u32', p4: 'u32', n0: 'u32', pad: 'i32', d: 'u32',
});

// B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]].
const INPUT = `
${TILE_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>;
fn px(plane: u32, iy: i32, ix: i32) -> f32 {
  if (iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) { return 0.0; }
  return x[plane + u32(iy) * p.w + u32(ix)];
}
// The 16 transformed values of tile t of channel c (zero past the last tile).
fn transform(c: u32, t: u32) -> array<vec4<f32>, 4> {
  var r: array<vec4<f32>, 4>;
  if (t >= p.tiles) { return r; }
  let tx = t % p.tilesX; let t2 = t / p.tilesX;
  let ty = t2 % p.tilesY; let n = p.n0 + t2 / p.tilesY;
  let dd = i32(p.d);
  let y0 = i32(ty % p.d + 2u * p.d * (ty / p.d)) - p.pad;
  let x0 = i32(tx % p.d + 2u * p.d * (tx / p.d)) - p.pad;
  let plane = (n * p.c + c) * p.h * p.w;
  var rows: array<vec4<f32>, 4>;
  for (var i = 0; i < 4; i++) {
    let iy = y0 + i * dd;
    rows[i] = vec4<f32>(px(plane, iy, x0), px(plane, iy, x0 + dd), px(plane, iy, x0 + 2 * dd), px(plane, iy, x0 + 3 * dd));
  }
  // B^T d (rows), then each row times B (columns).
  let b0 = rows[0] - rows[2]; let b1 = rows[1] + rows[2]; let b2 = rows[2] - rows[1]; let b3 = rows[1] - rows[3];
  r[0] = vec4<f32>(b0.x - b0.z, b0.y + b0.z, b0.z - b0.y, b0.y - b0.w);
  r[1] = vec4<f32>(b1.x - b1.z, b1.y + b1.z, b1.z - b1.y, b1.y - b1.w);
  r[2] = vec4<f32>(b2.x - b2.z, b2.y + b2.z, b2.z - b2.y, b2.y - b2.w);
  r[3] = vec4<f32>(b3.x - b3.z, b3.y + b3.z, b3.z - b3.y, b3.y - b3.w);
  return r;
}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let q = (wid.y * nwg.x + wid.x) * ${WG}u + lid.x;
  if (q >= p.total) { return; }
  let t4 = q % p.p4; let c = q / p.p4;
  let r0 = transform(c, 4u * t4); let r1 = transform(c, 4u * t4 + 1u);
  let r2 = transform(c, 4u * t4 + 2u); let r3 = transform(c, 4u * t4 + 3u);
  let step = p.c * p.p4;
  let base = c * p.p4 + t4;
  for (var i = 0u; i < 4u; i++) {
    let a = r0[i]; let b = r1[i]; let e = r2[i]; let f = r3[i];
    v[base + (4u * i) * step] = vec4<f32>(a.x, b.x, e.x, f.x);
    v[base + (4u * i + 1u) * step] = vec4<f32>(a.y, b.y, e.y, f.y);
    v[base + (4u * i + 2u) * step] = vec4<f32>(a.z, b.z, e.z, f.z);
    v[base + (4u * i + 3u) * step] = vec4<f32>(a.w, b.w, e.w, f.w);
  }
}`;

// ---- GEMM: M[t][p][o4] = sum_c U[c][t][o4] * V[t][c][p] ----------------------------------------

const GEMM_UNIFORMS = uniformStruct('conv2d.winograd.gemm', { total: 'u32', c: 'u32', o4: 'u32', ogp: 'u32', blocks: 'u32', p4: 'u32' });

function gemmCode(pb: number, share: number): string {
  const q4 = pb / 4;
  const frame = tiledKernelFrame(share, WG);
  const L: string[] = [...frame.enable];
  L.push(`// conv2d Winograd GEMM: ${pb} tiles x 4 output channels per invocation, share ${share}`);
  L.push(GEMM_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> u: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(3) var<storage, read_write> m: array<vec4<f32>>;`);
  L.push(...frame.entry);
  L.push(`  let og = gi % p.ogp; let r = gi / p.ogp;`);
  L.push(`  let ogc = min(og, p.o4 - 1u);`);
  L.push(`  let blk = r % p.blocks; let t = r / p.blocks;`);
  L.push(`  var ub = t * p.o4 + ogc;`);
  L.push(`  var vb = t * p.c * p.p4 + blk * ${q4}u;`);
  for (let j = 0; j < pb; j++) L.push(`  var a${j} = vec4<f32>();`);
  L.push(`  for (var ci = 0u; ci < p.c; ci++) {`);
  L.push(`    let wt = u[ub];`);
  if (share) {
    const rounds = Math.ceil(q4 / share);
    for (let k = 0; k < rounds; k++) L.push(`    let s${k} = v[vb + min(${k * share}u + lane, ${q4 - 1}u)];`);
    for (let q = 0; q < q4; q++) L.push(`    let v${q} = subgroupBroadcast(s${Math.floor(q / share)}, ${q % share}u);`);
  } else {
    for (let q = 0; q < q4; q++) L.push(`    let v${q} = v[vb + ${q}u];`);
  }
  for (let j = 0; j < pb; j++) L.push(`    a${j} += wt * v${j >> 2}.${'xyzw'[j & 3]};`);
  L.push(`    ub += 16u * p.o4; vb += p.p4;`);
  L.push(`  }`);
  L.push(`  if (!valid || og >= p.o4) { return; }`);
  L.push(`  let mb = (t * p.p4 * 4u + blk * ${pb}u) * p.o4 + og;`);
  for (let j = 0; j < pb; j++) L.push(`  m[mb + ${j}u * p.o4] = a${j};`);
  L.push(`}`);
  return L.join('\n');
}

// ---- output: y = A^T M A + bias, 2x2 pixels x 4 output channels per invocation -------------------

const OUTPUT_UNIFORMS = uniformStruct('conv2d.winograd.output', {
  total: 'u32', o: 'u32', o4: 'u32', ho: 'u32', wo: 'u32', tilesX: 'u32', tilesY: 'u32', tp: 'u32', n0: 'u32', d: 'u32', hasBias: 'u32',
});

// A^T = [[1, 1, 1, 0], [0, 1, -1, -1]].
const OUTPUT = `
${OUTPUT_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> m: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let q = (wid.y * nwg.x + wid.x) * ${WG}u + lid.x;
  if (q >= p.total) { return; }
  let o4 = q % p.o4; let t = q / p.o4;
  let step = p.tp * p.o4;
  let base = t * p.o4 + o4;
  // Columns first: row i of M times A.
  var a: array<vec4<f32>, 8>;
  for (var i = 0u; i < 4u; i++) {
    let m0 = m[base + (4u * i) * step]; let m1 = m[base + (4u * i + 1u) * step];
    let m2 = m[base + (4u * i + 2u) * step]; let m3 = m[base + (4u * i + 3u) * step];
    a[2u * i] = m0 + m1 + m2;
    a[2u * i + 1u] = m1 - m2 - m3;
  }
  let o = o4 * 4u;
  var bias = vec4<f32>();
  if (p.hasBias != 0u) {
    for (var k = 0u; k < 4u; k++) { if (o + k < p.o) { bias[k] = b[o + k]; } }
  }
  let tx = t % p.tilesX; let t2 = t / p.tilesX;
  let ty = t2 % p.tilesY; let n = p.n0 + t2 / p.tilesY;
  let y0 = ty % p.d + 2u * p.d * (ty / p.d);
  let x0 = tx % p.d + 2u * p.d * (tx / p.d);
  let hw = p.ho * p.wo;
  let ob = (n * p.o + o) * hw;
  for (var j = 0u; j < 2u; j++) {
    // Rows: A^T times column j.
    var col: array<vec4<f32>, 2>;
    col[0] = a[j] + a[2u + j] + a[4u + j] + bias;
    col[1] = a[2u + j] - a[4u + j] - a[6u + j] + bias;
    let xx = x0 + j * p.d;
    if (xx >= p.wo) { continue; }
    for (var i = 0u; i < 2u; i++) {
      let yy = y0 + i * p.d;
      if (yy >= p.ho) { continue; }
      let at = ob + yy * p.wo + xx;
      let val = col[i];
      for (var k = 0u; k < 4u; k++) { if (o + k < p.o) { y[at + k * hw] = val[k]; } }
    }
  }
}`;

// ---- vec4 variants of the three transforms -------------------------------------------------------
//
// The kernels above load and store scalars; on lavapipe each load or store is a loop over the
// lanes, so the transforms cost as much as the GEMM on the large planes. Where rows are whole vec4s
// these do the same work with vec4 loads and stores. A group of 4 consecutive tiles of a row
// (tx = 4k..4k+3, with d in {1, 2, 4}: tx mod d = i mod d, tx div d = 4k/d + i div d) starts at
// column 8k + GROUP_OFFSET[i] and together the 4 tiles' outputs cover the 8 columns 8k..8k+7, their
// inputs the columns 8k - p + GROUP_OFFSET[i] + j*d: both known when the WGSL is generated.

function groupOffsets(d: number): number[] {
  return [0, 1, 2, 3].map((i) => (i % d) + 2 * d * Math.floor(i / d));
}

/** Whether the vec4 transforms serve dilation d on planes `w` wide in / `wo` wide out. */
function groupedInput(d: number, w: number, tilesX: number): boolean {
  return 4 % d === 0 && w % 4 === 0 && tilesX % 4 === 0;
}
function groupedOutput(d: number, wo: number, tilesX: number): boolean {
  return 4 % d === 0 && wo % 4 === 0 && tilesX % 4 === 0;
}

/** B^T d B of one tile whose 4 input rows are the WGSL vec4 expressions `rows`: 4 vec4 (row i of the result). */
function inputTransformWgsl(rows: string[], out: string): string[] {
  const [r0, r1, r2, r3] = rows;
  const L = [
    `let ${out}b0 = ${r0} - ${r2}; let ${out}b1 = ${r1} + ${r2}; let ${out}b2 = ${r2} - ${r1}; let ${out}b3 = ${r1} - ${r3};`,
  ];
  for (let i = 0; i < 4; i++) L.push(`let ${out}${i} = vec4<f32>(${out}b${i}.x - ${out}b${i}.z, ${out}b${i}.y + ${out}b${i}.z, ${out}b${i}.z - ${out}b${i}.y, ${out}b${i}.y - ${out}b${i}.w);`);
  return L;
}

function inputGroupedCode(d: number, pad: number): string {
  const offs = groupOffsets(d);
  const colOf = (i: number, j: number) => offs[i] - pad + j * d; // relative to 8k
  const cols = offs.flatMap((_, i) => [0, 1, 2, 3].map((j) => colOf(i, j)));
  const qmin = Math.floor(Math.min(...cols) / 4);
  const qmax = Math.floor(Math.max(...cols) / 4);
  const qn = (q: number) => (q < 0 ? `m${-q}` : `${q}`);
  const val = (row: number, col: number) => `r${row}_${qn(Math.floor(col / 4))}.${'xyzw'[((col % 4) + 4) % 4]}`;
  const L: string[] = [];
  L.push(`// conv2d Winograd input transform, 4 tiles a row of vec4 loads: dilation ${d}, padding ${pad}`);
  L.push(TILE_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>;`);
  L.push(`@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {`);
  L.push(`  let q = (wid.y * nwg.x + wid.x) * ${WG}u + lid.x;`);
  L.push(`  if (q >= p.total) { return; }`);
  L.push(`  let t4 = q % p.p4; let c = q / p.p4;`);
  L.push(`  let t0 = 4u * t4;`);
  L.push(`  let live = t0 < p.tiles;`);
  L.push(`  let tx = t0 % p.tilesX; let t2 = t0 / p.tilesX;`);
  L.push(`  let ty = t2 % p.tilesY; let n = p.n0 + t2 / p.tilesY;`);
  L.push(`  let y0 = i32(ty % ${d}u + ${2 * d}u * (ty / ${d}u)) - ${pad};`);
  L.push(`  let qb = i32(tx / 2u);`);
  L.push(`  let w4 = i32(p.w / 4u);`);
  L.push(`  let plane = (n * p.c + c) * p.h * p.w / 4u;`);
  for (let i = 0; i < 4; i++) {
    L.push(`  let iy${i} = y0 + ${i * d};`);
    L.push(`  let rok${i} = live && iy${i} >= 0 && iy${i} < i32(p.h);`);
    L.push(`  let rb${i} = plane + u32(max(iy${i}, 0)) * p.w / 4u;`);
    for (let qq = qmin; qq <= qmax; qq++) {
      L.push(`  var r${i}_${qn(qq)} = vec4<f32>(); if (rok${i} && qb + ${qq} >= 0 && qb + ${qq} < w4) { r${i}_${qn(qq)} = x[rb${i} + u32(qb + ${qq})]; }`);
    }
  }
  for (let t = 0; t < 4; t++) {
    const rows = [0, 1, 2, 3].map((i) => `vec4<f32>(${[0, 1, 2, 3].map((j) => val(i, colOf(t, j))).join(', ')})`);
    L.push(...inputTransformWgsl(rows, `z${t}_`).map((l) => `  ${l}`));
  }
  L.push(`  let step = p.c * p.p4;`);
  L.push(`  let base = c * p.p4 + t4;`);
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      const comp = 'xyzw'[j];
      L.push(`  v[base + ${4 * i + j}u * step] = vec4<f32>(z0_${i}.${comp}, z1_${i}.${comp}, z2_${i}.${comp}, z3_${i}.${comp});`);
    }
  }
  L.push(`}`);
  return L.join('\n');
}

function outputGroupedCode(d: number): string {
  const offs = groupOffsets(d);
  // Which (tile, column of its 2x2 output) lands on column c of the 8-column run.
  const source: [number, number][] = Array.from({ length: 8 }, () => [-1, -1]);
  offs.forEach((o, i) => [0, 1].forEach((dx) => (source[o + dx * d] = [i, dx])));
  const L: string[] = [];
  L.push(`// conv2d Winograd output transform, 4 tiles (8 columns x 2 rows) per invocation, vec4 stores: dilation ${d}`);
  L.push(OUTPUT_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> m: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(2) var<storage, read> b: array<f32>;`);
  L.push(`@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;`);
  L.push(`@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {`);
  L.push(`  let q = (wid.y * nwg.x + wid.x) * ${WG}u + lid.x;`);
  L.push(`  if (q >= p.total) { return; }`);
  L.push(`  let o4 = q % p.o4; let t0 = 4u * (q / p.o4);`);
  L.push(`  let o = o4 * 4u;`);
  L.push(`  var bias = vec4<f32>();`);
  L.push(`  if (p.hasBias != 0u) { for (var k = 0u; k < 4u; k++) { if (o + k < p.o) { bias[k] = b[o + k]; } } }`);
  L.push(`  let step = p.tp * p.o4;`);
  for (let i = 0; i < 4; i++) {
    L.push(`  {`);
    L.push(`    let base = (t0 + ${i}u) * p.o4 + o4;`);
    for (let r = 0; r < 4; r++) {
      L.push(`    let m${r}0 = m[base + ${4 * r}u * step]; let m${r}1 = m[base + ${4 * r + 1}u * step]; let m${r}2 = m[base + ${4 * r + 2}u * step]; let m${r}3 = m[base + ${4 * r + 3}u * step];`);
      L.push(`    let a${r}0 = m${r}0 + m${r}1 + m${r}2; let a${r}1 = m${r}1 - m${r}2 - m${r}3;`);
    }
    L.push(`    y${i}_00 = a00 + a10 + a20 + bias; y${i}_01 = a01 + a11 + a21 + bias;`);
    L.push(`    y${i}_10 = a10 - a20 - a30 + bias; y${i}_11 = a11 - a21 - a31 + bias;`);
    L.push(`  }`);
  }
  // (declarations must precede the blocks: move them up)
  const decls = [0, 1, 2, 3].map((i) => `  var y${i}_00: vec4<f32>; var y${i}_01: vec4<f32>; var y${i}_10: vec4<f32>; var y${i}_11: vec4<f32>;`);
  const firstBlock = L.findIndex((l) => l === '  {');
  L.splice(firstBlock, 0, ...decls);
  L.push(`  let tx = t0 % p.tilesX; let t2 = t0 / p.tilesX;`);
  L.push(`  let ty = t2 % p.tilesY; let n = p.n0 + t2 / p.tilesY;`);
  L.push(`  let y0 = ty % ${d}u + ${2 * d}u * (ty / ${d}u);`);
  L.push(`  let xq = tx / 2u;`);
  L.push(`  let hw4 = p.ho * p.wo / 4u;`);
  L.push(`  let ob = (n * p.o + o) * hw4;`);
  L.push(`  let wo4 = p.wo / 4u;`);
  L.push(`  let m1 = o + 1u < p.o; let m2 = o + 2u < p.o; let m3 = o + 3u < p.o;`);
  for (let dy = 0; dy < 2; dy++) {
    L.push(`  let yy${dy} = y0 + ${dy * d}u;`);
    L.push(`  if (yy${dy} < p.ho) {`);
    for (let h = 0; h < 2; h++) {
      L.push(`    if (xq + ${h}u < wo4) {`);
      L.push(`      let at = ob + yy${dy} * wo4 + xq + ${h}u;`);
      for (let k = 0; k < 4; k++) {
        const comps = [0, 1, 2, 3].map((cc) => {
          const [i, dx] = source[4 * h + cc];
          return `y${i}_${dy}${dx}.${'xyzw'[k]}`;
        });
        const store = `y[at${k ? ` + ${k}u * hw4` : ''}] = vec4<f32>(${comps.join(', ')});`;
        L.push(k ? `      if (m${k}) { ${store} }` : `      ${store}`);
      }
      L.push(`    }`);
    }
    L.push(`  }`);
  }
  L.push(`}`);
  return L.join('\n');
}

/**
 * G g G^T for 4 input x 4 output channels per invocation, from 36 vec4 loads (the 9 taps of 4
 * consecutive channels are 9 aligned vec4s) and 64 vec4 stores, for channel counts that are
 * multiples of 4. Forward: w [O, C, 3, 3], strip s is output channel 4*o4 + s (4 input channels
 * each); transposed: w [C, O, 3, 3] flipped, strip s is input channel 4*c4 + s (4 output channels).
 */
function weightsGroupedCode(transposed: boolean): string {
  const L: string[] = [];
  L.push(`// conv2d Winograd weight transform, 4x4 channels per invocation${transposed ? ', transposed and flipped (input gradient)' : ''}`);
  L.push(WEIGHT_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(2) var<storage, read_write> u: array<vec4<f32>>;`);
  L.push(`@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {`);
  L.push(`  let q = (wid.y * nwg.x + wid.x) * ${WG}u + lid.x;`);
  L.push(`  if (q >= p.total) { return; }`);
  L.push(`  let o4 = q % p.o4; let c4 = q / p.o4;`);
  // Strip s starts at vec4 (row * cols / 4 + col4) * 9.
  L.push(transposed ? `  let s0 = ((4u * c4) * p.o4 + o4) * 9u; let sstep = p.o4 * 9u;` : `  let s0 = ((4u * o4) * (p.c / 4u) + c4) * 9u; let sstep = (p.c / 4u) * 9u;`);
  for (let s = 0; s < 4; s++) for (let j = 0; j < 9; j++) L.push(`  let l${s}_${j} = w[s0 + ${s}u * sstep + ${j}u];`);
  // Value of tap k for the pair (output channel oi, input channel ci) of the block.
  const tapOf = (oi: number, ci: number, k: number) => {
    if (transposed) {
      const f = oi * 9 + (8 - k); // strip ci holds 4 output channels x 9 taps, taps flipped
      return `l${ci}_${f >> 2}.${'xyzw'[f & 3]}`;
    }
    const f = ci * 9 + k; // strip oi holds 4 input channels x 9 taps
    return `l${oi}_${f >> 2}.${'xyzw'[f & 3]}`;
  };
  L.push(`  let step = p.o4;`);
  for (let ci = 0; ci < 4; ci++) {
    L.push(`  {`);
    for (let k = 0; k < 9; k++) L.push(`    let g${k} = vec4<f32>(${[0, 1, 2, 3].map((oi) => tapOf(oi, ci, k)).join(', ')});`);
    for (let j = 0; j < 3; j++) {
      L.push(`    let a0${j} = g${j}; let a1${j} = 0.5 * (g${j} + g${3 + j} + g${6 + j}); let a2${j} = 0.5 * (g${j} - g${3 + j} + g${6 + j}); let a3${j} = g${6 + j};`);
    }
    L.push(`    let base = (4u * c4 + ${ci}u) * 16u * p.o4 + o4;`);
    for (let i = 0; i < 4; i++) {
      L.push(`    u[base + ${4 * i}u * step] = a${i}0;`);
      L.push(`    u[base + ${4 * i + 1}u * step] = 0.5 * (a${i}0 + a${i}1 + a${i}2);`);
      L.push(`    u[base + ${4 * i + 2}u * step] = 0.5 * (a${i}0 - a${i}1 + a${i}2);`);
      L.push(`    u[base + ${4 * i + 3}u * step] = a${i}2;`);
    }
    L.push(`  }`);
  }
  L.push(`}`);
  return L.join('\n');
}

// ---- drivers ---------------------------------------------------------------------------------------

/** Whether Winograd F(2x2, 3x3) computes this convolution's forward pass (3x3, stride 1). */
export function winogradForwardApplies(g: Geometry): boolean {
  return g.kh === 3 && g.kw === 3 && g.s === 1;
}

/** Whether it computes the input gradient: 3x3, stride 1, padding at most 2d (the gradient's padding 2d - p). */
export function winogradInputGradApplies(g: Geometry): boolean {
  return winogradForwardApplies(g) && g.p <= 2 * g.d;
}

/**
 * Winograd conv of `src` [n, c, h, w] into a new [n, o, ho, wo] tensor; `w` is read as the forward's
 * weights [o, c, 3, 3], or transposed and flipped ([c, o, 3, 3]) for the input gradient. Null when
 * even one image's V or M passes the storage-binding limit (the caller takes the direct kernel).
 */
function winogradConv(src: Tensor, w: Tensor, b: Tensor | null, cv: WinoConv, transposed: boolean, flops: number, op: string): Tensor | null {
  const plan = planFor(cv);
  if (!plan) return null;
  const o4 = Math.ceil(cv.o / 4);
  const out = empty([cv.n, cv.o, cv.ho, cv.wo], 'float32', op);
  const u = empty([16 * cv.c * o4 * 4], 'float32', op);
  const weights4 = cv.c % 4 === 0 && cv.o % 4 === 0;
  const weightTotal = weights4 ? (cv.c / 4) * o4 : cv.c * o4;
  launch({
    kernel: 'conv2d.winograd.weights', code: weights4 ? weightsGroupedCode(transposed) : WEIGHTS, grid: grid1d(weightTotal, WG), bind: [w, u],
    uniforms: WEIGHT_UNIFORMS.pack({ total: weightTotal, c: cv.c, o: cv.o, o4, transposed: transposed ? 1 : 0 }),
  });
  const v = empty([16 * cv.c * plan.tilesPad], 'float32', op);
  const m = empty([16 * plan.tilesPad * o4 * 4], 'float32', op);
  const p4 = plan.tilesPad / 4;
  const ogp = plan.share ? Math.ceil(o4 / plan.share) * plan.share : o4;
  const blocks = plan.tilesPad / plan.pb;
  const gemm = gemmCode(plan.pb, plan.share);
  const input4 = groupedInput(cv.d, cv.w, plan.tilesX);
  const output4 = groupedOutput(cv.d, cv.wo, plan.tilesX);
  for (let k = 0; k < plan.chunks; k++) {
    const n0 = k * plan.nb;
    const nb = Math.min(plan.nb, cv.n - n0);
    const tiles = nb * plan.tilesY * plan.tilesX;
    const inputTotal = cv.c * p4;
    launch({
      kernel: 'conv2d.winograd.input', code: input4 ? inputGroupedCode(cv.d, cv.p) : INPUT, grid: grid1d(inputTotal, WG), bind: [src, v],
      uniforms: TILE_UNIFORMS.pack({ total: inputTotal, c: cv.c, h: cv.h, w: cv.w, tilesX: plan.tilesX, tilesY: plan.tilesY, tiles, p4, n0, pad: cv.p, d: cv.d }),
    });
    const gemmTotal = 16 * blocks * ogp;
    launch({
      kernel: 'conv2d.winograd.gemm', code: gemm, grid: grid1d(gemmTotal, WG), bind: [u, v, m], flops: (flops * nb) / cv.n,
      uniforms: GEMM_UNIFORMS.pack({ total: gemmTotal, c: cv.c, o4, ogp, blocks, p4 }),
    });
    const outTotal = (output4 ? tiles / 4 : tiles) * o4;
    launch({
      kernel: 'conv2d.winograd.output', code: output4 ? outputGroupedCode(cv.d) : OUTPUT, grid: grid1d(outTotal, WG), bind: [m, b ?? m, out],
      uniforms: OUTPUT_UNIFORMS.pack({ total: outTotal, o: cv.o, o4, ho: cv.ho, wo: cv.wo, tilesX: plan.tilesX, tilesY: plan.tilesY, tp: plan.tilesPad, n0, d: cv.d, hasBias: b ? 1 : 0 }),
    });
  }
  u.dispose();
  v.dispose();
  m.dispose();
  return out;
}

/** The forward pass by Winograd F(2x2, 3x3), or null when it does not apply or does not fit. */
export function winogradForward(x: Tensor, w: Tensor, b: Tensor | null, g: Geometry): Tensor | null {
  if (!winogradForwardApplies(g)) return null;
  const cv: WinoConv = { n: g.n, c: g.ci, h: g.h, w: g.w, o: g.co, ho: g.ho, wo: g.wo, p: g.p, d: g.d };
  return winogradConv(x, w, b, cv, false, convFlops(g), 'conv2d');
}

/** The input gradient by Winograd F(2x2, 3x3) (a stride-1 conv of dy with flipped, transposed weights), or null. */
export function winogradInputGrad(gy: Tensor, w: Tensor, g: Geometry): Tensor | null {
  if (!winogradInputGradApplies(g)) return null;
  const cv: WinoConv = { n: g.n, c: g.co, h: g.ho, w: g.wo, o: g.ci, ho: g.h, wo: g.w, p: 2 * g.d - g.p, d: g.d };
  return winogradConv(gy, w, null, cv, true, convFlops(g), 'conv2d backward (input)');
}
