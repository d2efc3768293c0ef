// Winograd F(m x m, 3 x 3) for 3x3 stride-1 convolutions (any padding, any dilation): forward,
// input gradient and weight gradient (its own section below), for m = 2 (F(2x2, 3x3): 4x4 input tiles, 16 products per tile and channel
// instead of the direct kernel's 36, 2.25x fewer) and m = 4 (F(4x4, 3x3): 6x6 input tiles, 36
// instead of 144, 4x fewer, with larger rounding error: its transforms have constants up to 8 and
// 1/24). Both are y = A^T [(G g G^T) . (B^T d B)] A per tile (Lavin and Gray, "Fast Algorithms
// for Convolutional Neural Networks", 2016); the matrices are data (WINOGRAD_F2, WINOGRAD_F4) and
// every kernel's transform code is generated from them. With a = m + 2 and a^2 tile positions t:
//   weights  U[c][t][o4] = G g G^T per (input channel c, 4 output channels): a^2 vec4 per pair
//            (those of a channel together: stores close to each other; at 512 channels 5.5 ms
//            against 9-13 ms for [t][c][o4] on lavapipe, F(2x2));
//   input    V[t][c][p]  = B^T d B of the a x a input patch of every output tile p (m x m outputs);
//   gemm     M[t][p][o4] = sum over c of U[c][t][o4] * V[t][c][p]: a^2 independent [O x C] by
//            [C x P] products, where the time goes;
//   output   y = A^T M A per tile and 4 output channels, plus the bias.
//
// Dilation d: output pixels congruent to (ry, rx) mod d read only input pixels congruent to
// (ry - p, rx - p) mod d, so a dilated conv is d x d interleaved undilated convs on sub-grids. A
// tile here is m x m outputs spaced d apart, (y0 + i*d) x (x0 + j*d) for i, j < m, reading the
// a x a input pixels (y0 - p + i*d, x0 - p + j*d): the sub-grid decomposition with no copy, only
// indexing. Tiles along each axis: index t -> sub-grid r = t mod d, k = t / d, origin r + m*d*k.
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
// The transforms work on vec4s throughout: the weights' over 4 output channels, the input's over
// the 4 tiles an invocation transforms (so that each result is one vec4 store along p), the
// output's over 4 output channels.
//
// V and M take a^2/m^2 times the input's and the output's memory (4x for F(2x2), 2.25x for
// F(4x4)); batches whose V or M would pass the adapter's storage-binding limit run in chunks of
// images.

import { empty, grid1d, launch, uniformStruct } from '../../kernel';
import { runtime } from '../../runtime';
import type { Tensor } from '../../tensor';
import { convFlops, type Geometry } from './geometry';
import { tiledKernelFrame } from './taps';
import { WG, shareFor, tuning, useWinograd } from './tuning';

/** The matrices of one Winograd algorithm F(m x m, 3 x 3): y = A^T [(G g G^T) . (B^T d B)] A. */
export interface WinogradTransforms {
  /** Output tile side m; the input tile's side is m + 2. */
  m: 2 | 4;
  /** B^T, (m + 2) x (m + 2): the input transform. */
  BT: number[][];
  /** G, (m + 2) x 3: the weight transform. */
  G: number[][];
  /** A^T, m x (m + 2): the output transform. */
  AT: number[][];
  /** Prefix of its kernels' names (the profile counts every "conv2d.winograd." kernel as Winograd). */
  kernel: string;
}

/** F(2x2, 3x3), interpolation points 0, 1, -1, infinity. */
export const WINOGRAD_F2: WinogradTransforms = {
  m: 2,
  BT: [
    [1, 0, -1, 0],
    [0, 1, 1, 0],
    [0, -1, 1, 0],
    [0, 1, 0, -1],
  ],
  G: [
    [1, 0, 0],
    [1 / 2, 1 / 2, 1 / 2],
    [1 / 2, -1 / 2, 1 / 2],
    [0, 0, 1],
  ],
  AT: [
    [1, 1, 1, 0],
    [0, 1, -1, -1],
  ],
  kernel: 'conv2d.winograd',
};

/**
 * F(4x4, 3x3), interpolation points 0, 1, -1, 2, -2, infinity (Lavin and Gray's matrices): B^T's
 * rows 1-4 are the products (x - s) over the other finite points, G's rows g(s) over the
 * corresponding normalisers (4, -6, -6, 24, 24), A^T's columns the powers s^0..s^3 (row 5: the
 * point at infinity). The test checks the 1-D F(4, 3) against direct correlation in float64.
 */
export const WINOGRAD_F4: WinogradTransforms = {
  m: 4,
  BT: [
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
  ],
  G: [
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
  ],
  AT: [
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0],
    [0, 1, -1, 8, -8, 1],
  ],
  kernel: 'conv2d.winograd.f4x4',
};

/** The transforms for output tiles of side m. */
export function winogradTransforms(m: 2 | 4): WinogradTransforms {
  return m === 4 ? WINOGRAD_F4 : WINOGRAD_F2;
}

// ---- code generation from the matrices -----------------------------------------------------------

/** A WGSL f32 literal for c. */
function lit(c: number): string {
  const s = String(Math.fround(c));
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** sum_k coeffs[k] * terms[k] as WGSL: zero coefficients left out, a magnitude common to all factored out. */
function linear(coeffs: number[], terms: string[]): string {
  const nonzero = coeffs.flatMap((c, k) => (c === 0 ? [] : [[c, terms[k]] as const]));
  if (!nonzero.length) throw new Error('winograd: a transform row of zeros');
  const mags = new Set(nonzero.map(([c]) => Math.abs(c)));
  const scale = mags.size === 1 ? Math.abs(nonzero[0][0]) : 1;
  const sum = nonzero
    .map(([c, t], i) => {
      const mag = Math.abs(c / scale);
      const term = mag === 1 ? t : `${lit(mag)} * ${t}`;
      return c < 0 ? (i ? ` - ${term}` : `-${term}`) : i ? ` + ${term}` : term;
    })
    .join('');
  return scale === 1 ? sum : `${lit(scale)} * (${sum})`;
}

/**
 * WGSL lines computing Y = L X L^T for an r x k matrix L and a k x k matrix X of WGSL expressions
 * (names: each is used r times), as `let ${out}${i}_${j}`; returns Y's names.
 */
function sandwich(L: number[][], X: string[][], out: string): { lines: string[]; y: string[][] } {
  const k = X.length;
  const lines: string[] = [];
  // L X: row i is a combination of X's rows.
  const lx = L.map((row, i) =>
    Array.from({ length: k }, (_, j) => {
      const name = `${out}h${i}_${j}`;
      lines.push(`let ${name} = ${linear(row, X.map((xr) => xr[j]))};`);
      return name;
    }),
  );
  // (L X) L^T: entry (i, j) is row i of L X combined by row j of L.
  const y = L.map((_, i) =>
    L.map((row, j) => {
      const name = `${out}${i}_${j}`;
      lines.push(`let ${name} = ${linear(row, lx[i])};`);
      return name;
    }),
  );
  return { lines, y };
}

const memo = new Map<string, string>();
/** Generated WGSL, built once per key. */
function cached(key: string, build: () => string): string {
  let code = memo.get(key);
  if (code === undefined) memo.set(key, (code = build()));
  return code;
}

const ENTRY = `@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let q = (wid.y * nwg.x + wid.x) * ${WG}u + lid.x;
  if (q >= p.total) { return; }`;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const COMP = ['x', 'y', 'z', 'w'];

// ---- plan ----------------------------------------------------------------------------------------

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

/** Tiles along an axis of `size` outputs with dilation d: d sub-grids of ceil(ceil(size/d)/m) tiles. */
function tilesAlong(size: number, d: number, m: number): number {
  return d * Math.ceil(Math.ceil(size / d) / m);
}

let chunkBytes: number | null = null;

/** Tests: pretend the storage-binding limit is `bytes` (null: the adapter's), to exercise the chunking over images. */
export function setWinogradChunkLimit(bytes: number | null): void {
  chunkBytes = bytes;
}

/** Bytes one storage binding may hold: the adapter's limit, or the tests' stand-in. */
function bindingLimit(): number {
  return chunkBytes ?? runtime().adapter.limits.maxStorageBufferBindingSize ?? 128 * 2 ** 20;
}

function planFor(cv: WinoConv, m: number): WinoPlan | null {
  const share = shareFor(cv.o);
  const pb = share ? PB_SHARED : PB_ALONE;
  const tilesY = tilesAlong(cv.ho, cv.d, m);
  const tilesX = tilesAlong(cv.wo, cv.d, m);
  const perImage = tilesY * tilesX;
  const limit = bindingLimit();
  // Bytes of V and M per tile: (m + 2)^2 floats per channel.
  const perTile = 4 * (m + 2) ** 2 * Math.max(cv.c, Math.ceil(cv.o / 4) * 4);
  const nb = Math.min(cv.n, Math.floor(limit / (perTile * Math.ceil(perImage / pb) * pb)));
  if (nb < 1) return null;
  const tiles = nb * perImage;
  return { nb, chunks: Math.ceil(cv.n / nb), tilesY, tilesX, tiles, tilesPad: Math.ceil(tiles / pb) * pb, pb, share };
}

// ---- weights: U[c][t][o4] (vec4 over 4 output channels) = G g G^T -------------------------------

const WEIGHT_UNIFORMS = uniformStruct('conv2d.winograd.weights', { total: 'u32', c: 'u32', o: 'u32', o4: 'u32', transposed: 'u32' });

/** Lines storing G g G^T of the 9 vec4 taps `g` (row-major) at u[base + t * p.o4], t = a*i + j. */
function weightTransformLines(tf: WinogradTransforms, g: string[], out: string): string[] {
  const a = tf.m + 2;
  const { lines, y } = sandwich(tf.G, [g.slice(0, 3), g.slice(3, 6), g.slice(6, 9)], out);
  for (let i = 0; i < a; i++) for (let j = 0; j < a; j++) lines.push(`u[base + ${a * i + j}u * p.o4] = ${y[i][j]};`);
  return lines;
}

/** One (input channel, 4 output channels) pair per invocation, for any channel counts. */
function weightsCode(tf: WinogradTransforms): string {
  const a2 = (tf.m + 2) ** 2;
  const L: string[] = [];
  L.push(`// conv2d Winograd F(${tf.m}x${tf.m}, 3x3) weight transform`);
  L.push(WEIGHT_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> w: array<f32>;`);
  L.push(`@group(0) @binding(2) var<storage, read_write> u: array<vec4<f32>>;`);
  L.push(`// Tap (ky, kx) of output channel o and input channel c of the conv computed; transposed: the`);
  L.push(`// input gradient's, from w [C, O, 3, 3] flipped in both taps.`);
  L.push(`fn tap(o: u32, c: u32, ky: u32, kx: u32) -> f32 {`);
  L.push(`  if (o >= p.o) { return 0.0; }`);
  L.push(`  if (p.transposed != 0u) { return w[((c * p.o + o) * 3u + 2u - ky) * 3u + 2u - kx]; }`);
  L.push(`  return w[((o * p.c + c) * 3u + ky) * 3u + kx];`);
  L.push(`}`);
  L.push(ENTRY);
  L.push(`  let o4 = q % p.o4; let c = q / p.o4;`);
  L.push(`  let o = o4 * 4u;`);
  for (let k = 0; k < 9; k++) {
    const [ky, kx] = [Math.floor(k / 3), k % 3];
    L.push(`  let g${k} = vec4<f32>(${range(4).map((s) => `tap(o + ${s}u, c, ${ky}u, ${kx}u)`).join(', ')});`);
  }
  L.push(`  let base = c * ${a2}u * p.o4 + o4;`);
  L.push(...weightTransformLines(tf, range(9).map((k) => `g${k}`), 'z').map((l) => `  ${l}`));
  L.push(`}`);
  return L.join('\n');
}

/**
 * G g G^T for 4 input x 4 output channels per invocation, from 36 vec4 loads (the 9 taps of 4
 * consecutive channels are 9 aligned vec4s), for channel counts that are multiples of 4. Forward:
 * w [O, C, 3, 3], strip s is output channel 4*o4 + s (4 input channels each); transposed: w
 * [C, O, 3, 3] flipped, strip s is input channel 4*c4 + s (4 output channels).
 */
function weightsGroupedCode(tf: WinogradTransforms, transposed: boolean): string {
  const a2 = (tf.m + 2) ** 2;
  const L: string[] = [];
  L.push(`// conv2d Winograd F(${tf.m}x${tf.m}, 3x3) weight transform, 4x4 channels per invocation${transposed ? ', transposed and flipped (input gradient)' : ''}`);
  L.push(WEIGHT_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(2) var<storage, read_write> u: array<vec4<f32>>;`);
  L.push(ENTRY);
  L.push(`  let o4 = q % p.o4; let c4 = q / p.o4;`);
  // Strip s starts at vec4 (row * cols / 4 + col4) * 9.
  L.push(transposed ? `  let s0 = ((4u * c4) * p.o4 + o4) * 9u; let sstep = p.o4 * 9u;` : `  let s0 = ((4u * o4) * (p.c / 4u) + c4) * 9u; let sstep = (p.c / 4u) * 9u;`);
  for (let s = 0; s < 4; s++) for (let j = 0; j < 9; j++) L.push(`  let l${s}_${j} = w[s0 + ${s}u * sstep + ${j}u];`);
  // Value of tap k for the pair (output channel oi, input channel ci) of the block.
  const tapOf = (oi: number, ci: number, k: number) => {
    if (transposed) {
      const f = oi * 9 + (8 - k); // strip ci holds 4 output channels x 9 taps, taps flipped
      return `l${ci}_${f >> 2}.${COMP[f & 3]}`;
    }
    const f = ci * 9 + k; // strip oi holds 4 input channels x 9 taps
    return `l${oi}_${f >> 2}.${COMP[f & 3]}`;
  };
  for (let ci = 0; ci < 4; ci++) {
    L.push(`  {`);
    for (let k = 0; k < 9; k++) L.push(`    let g${k} = vec4<f32>(${range(4).map((oi) => tapOf(oi, ci, k)).join(', ')});`);
    L.push(`    let base = (4u * c4 + ${ci}u) * ${a2}u * p.o4 + o4;`);
    L.push(...weightTransformLines(tf, range(9).map((k) => `g${k}`), 'z').map((l) => `    ${l}`));
    L.push(`  }`);
  }
  L.push(`}`);
  return L.join('\n');
}

// ---- input: V[t][c][p] = B^T d B, 4 tiles per invocation (vec4 over the tiles, stores along p) ----

const TILE_UNIFORMS = uniformStruct('conv2d.winograd.tiles', {
  total: 'u32', c: 'u32', h: 'u32', w: 'u32', tilesX: 'u32', tilesY: 'u32', tiles: 'u32', p4: 'u32', n0: 'u32', pad: 'i32', d: 'u32',
});

/**
 * Lines transforming the a x a input patch `d` (vec4 expressions, lanes over the 4 tiles of the
 * invocation) and storing B^T d B at v[base + t * step], t = a*i + j.
 */
function inputTransformLines(tf: WinogradTransforms, d: string[][]): string[] {
  const a = tf.m + 2;
  const lines = d.flatMap((row, i) => row.map((e, j) => `let d${i}_${j} = ${e};`));
  const t = sandwich(tf.BT, range(a).map((i) => range(a).map((j) => `d${i}_${j}`)), 'z');
  lines.push(...t.lines);
  for (let i = 0; i < a; i++) for (let j = 0; j < a; j++) lines.push(`v[base + ${a * i + j}u * step] = ${t.y[i][j]};`);
  return lines;
}

/** Scalar loads, for any plane. */
function inputCode(tf: WinogradTransforms): string {
  const { m } = tf;
  const a = m + 2;
  const L: string[] = [];
  L.push(`// conv2d Winograd F(${m}x${m}, 3x3) input transform, 4 tiles per invocation`);
  L.push(TILE_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> x: array<f32>;`);
  L.push(`@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>;`);
  L.push(`fn px(live: bool, plane: u32, iy: i32, ix: i32) -> f32 {`);
  L.push(`  if (!live || iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) { return 0.0; }`);
  L.push(`  return x[plane + u32(iy) * p.w + u32(ix)];`);
  L.push(`}`);
  L.push(ENTRY);
  L.push(`  let t4 = q % p.p4; let c = q / p.p4;`);
  L.push(`  let dd = i32(p.d);`);
  // Tile 4*t4 + l (zero past the last tile): its image, origin and plane.
  for (let l = 0; l < 4; l++) {
    L.push(`  let t${l} = 4u * t4 + ${l}u; let live${l} = t${l} < p.tiles;`);
    L.push(`  let tx${l} = t${l} % p.tilesX; let ty${l} = (t${l} / p.tilesX) % p.tilesY; let n${l} = p.n0 + t${l} / p.tilesX / p.tilesY;`);
    L.push(`  let y${l} = i32(ty${l} % p.d + ${m}u * p.d * (ty${l} / p.d)) - p.pad;`);
    L.push(`  let x${l} = i32(tx${l} % p.d + ${m}u * p.d * (tx${l} / p.d)) - p.pad;`);
    L.push(`  let plane${l} = (n${l} * p.c + c) * p.h * p.w;`);
  }
  L.push(`  let step = p.c * p.p4;`);
  L.push(`  let base = c * p.p4 + t4;`);
  const d = range(a).map((i) =>
    range(a).map((j) => `vec4<f32>(${range(4).map((l) => `px(live${l}, plane${l}, y${l} + ${i} * dd, x${l} + ${j} * dd)`).join(', ')})`),
  );
  L.push(...inputTransformLines(tf, d).map((l) => `  ${l}`));
  L.push(`}`);
  return L.join('\n');
}

// ---- vec4 loads and stores for the input and output transforms -----------------------------------
//
// The scalar kernels load or store scalars; on lavapipe each load or store is a loop over the
// lanes, so the transforms cost as much as the GEMM on the large planes. Where rows are whole vec4s
// these do the same work with vec4 loads and stores. A group of 4 consecutive tiles of a row
// (tx = 4k..4k+3, with d in {1, 2, 4}: tx mod d = i mod d, tx div d = 4k/d + i div d) starts at
// column 4mk + groupOffsets[i] and together the 4 tiles' outputs cover the 4m columns 4mk..4mk+4m-1,
// their inputs the columns 4mk - p + groupOffsets[i] + j*d: both known when the WGSL is generated.

function groupOffsets(d: number, m: number): number[] {
  return range(4).map((i) => (i % d) + m * d * Math.floor(i / d));
}

/** Whether the vec4 transforms serve dilation d on planes `w` wide in / `wo` wide out. */
function groupedInput(d: number, w: number, tilesX: number): boolean {
  return 4 % d === 0 && w % 4 === 0 && tilesX % 4 === 0;
}
function groupedOutput(d: number, wo: number, tilesX: number): boolean {
  return 4 % d === 0 && wo % 4 === 0 && tilesX % 4 === 0;
}

function inputGroupedCode(tf: WinogradTransforms, d: number, pad: number): string {
  const { m } = tf;
  const a = m + 2;
  const offs = groupOffsets(d, m);
  const colOf = (l: number, j: number) => offs[l] - pad + j * d; // relative to 4mk
  const cols = range(4).flatMap((l) => range(a).map((j) => colOf(l, j)));
  const qmin = Math.floor(Math.min(...cols) / 4);
  const qmax = Math.floor(Math.max(...cols) / 4);
  const qn = (q: number) => (q < 0 ? `m${-q}` : `${q}`);
  const val = (row: number, col: number) => `r${row}_${qn(Math.floor(col / 4))}.${COMP[((col % 4) + 4) % 4]}`;
  const L: string[] = [];
  L.push(`// conv2d Winograd F(${m}x${m}, 3x3) input transform, 4 tiles a row of vec4 loads: dilation ${d}, padding ${pad}`);
  L.push(TILE_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>;`);
  L.push(ENTRY);
  L.push(`  let t4 = q % p.p4; let c = q / p.p4;`);
  L.push(`  let t0 = 4u * t4;`);
  L.push(`  let live = t0 < p.tiles;`);
  L.push(`  let tx = t0 % p.tilesX; let t2 = t0 / p.tilesX;`);
  L.push(`  let ty = t2 % p.tilesY; let n = p.n0 + t2 / p.tilesY;`);
  L.push(`  let y0 = i32(ty % ${d}u + ${m * d}u * (ty / ${d}u)) - ${pad};`);
  L.push(`  let qb = i32(tx / 4u) * ${m};`);
  L.push(`  let w4 = i32(p.w / 4u);`);
  L.push(`  let plane = (n * p.c + c) * p.h * p.w / 4u;`);
  for (let i = 0; i < a; i++) {
    L.push(`  let iy${i} = y0 + ${i * d};`);
    L.push(`  let rok${i} = live && iy${i} >= 0 && iy${i} < i32(p.h);`);
    L.push(`  let rb${i} = plane + u32(max(iy${i}, 0)) * p.w / 4u;`);
    for (let qq = qmin; qq <= qmax; qq++) {
      L.push(`  var r${i}_${qn(qq)} = vec4<f32>(); if (rok${i} && qb + ${qq} >= 0 && qb + ${qq} < w4) { r${i}_${qn(qq)} = x[rb${i} + u32(qb + ${qq})]; }`);
    }
  }
  L.push(`  let step = p.c * p.p4;`);
  L.push(`  let base = c * p.p4 + t4;`);
  const patch = range(a).map((i) => range(a).map((j) => `vec4<f32>(${range(4).map((l) => val(i, colOf(l, j))).join(', ')})`));
  L.push(...inputTransformLines(tf, patch).map((l) => `  ${l}`));
  L.push(`}`);
  return L.join('\n');
}

// ---- GEMM: M[t][p][o4] = sum_c U[c][t][o4] * V[t][c][p] ----------------------------------------

const GEMM_UNIFORMS = uniformStruct('conv2d.winograd.gemm', { total: 'u32', c: 'u32', o4: 'u32', ogp: 'u32', blocks: 'u32', p4: 'u32' });

function gemmCode(tf: WinogradTransforms, pb: number, share: number): string {
  const a2 = (tf.m + 2) ** 2;
  const q4 = pb / 4;
  const frame = tiledKernelFrame(share, WG);
  const L: string[] = [...frame.enable];
  L.push(`// conv2d Winograd F(${tf.m}x${tf.m}, 3x3) GEMM: ${pb} tiles x 4 output channels per invocation, share ${share}`);
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
  for (let j = 0; j < pb; j++) L.push(`    a${j} += wt * v${j >> 2}.${COMP[j & 3]};`);
  L.push(`    ub += ${a2}u * p.o4; vb += p.p4;`);
  L.push(`  }`);
  L.push(`  if (!valid || og >= p.o4) { return; }`);
  L.push(`  let mb = (t * p.p4 * 4u + blk * ${pb}u) * p.o4 + og;`);
  for (let j = 0; j < pb; j++) L.push(`  m[mb + ${j}u * p.o4] = a${j};`);
  L.push(`}`);
  return L.join('\n');
}

// ---- output: y = A^T M A + bias, m x m pixels x 4 output channels per tile ------------------------

const OUTPUT_UNIFORMS = uniformStruct('conv2d.winograd.output', {
  total: 'u32', o: 'u32', o4: 'u32', ho: 'u32', wo: 'u32', tilesX: 'u32', tilesY: 'u32', tp: 'u32', n0: 'u32', d: 'u32', hasBias: 'u32',
});

/** Lines loading tile `tile`'s a^2 vec4s of M and computing A^T M A + bias, as `let ${out}${i}_${j}`; returns the names. */
function outputTransformLines(tf: WinogradTransforms, tile: string, out: string): { lines: string[]; y: string[][] } {
  const a = tf.m + 2;
  const lines = [`let ${out}base = (${tile}) * p.o4 + o4;`];
  const mv = range(a).map((i) =>
    range(a).map((j) => {
      lines.push(`let ${out}m${i}_${j} = m[${out}base + ${a * i + j}u * step];`);
      return `${out}m${i}_${j}`;
    }),
  );
  const t = sandwich(tf.AT, mv, `${out}s`);
  lines.push(...t.lines);
  const y = t.y.map((row, i) =>
    row.map((e, j) => {
      lines.push(`let ${out}${i}_${j} = ${e} + bias;`);
      return `${out}${i}_${j}`;
    }),
  );
  return { lines, y };
}

const OUTPUT_HEAD = `${OUTPUT_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> m: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<f32>;`;
const OUTPUT_BIAS = [
  `  let o = o4 * 4u;`,
  `  var bias = vec4<f32>();`,
  `  if (p.hasBias != 0u) { for (var k = 0u; k < 4u; k++) { if (o + k < p.o) { bias[k] = b[o + k]; } } }`,
  `  let step = p.tp * p.o4;`,
];

/** One tile per invocation, scalar stores, for any plane. */
function outputCode(tf: WinogradTransforms): string {
  const { m } = tf;
  const L: string[] = [];
  L.push(`// conv2d Winograd F(${m}x${m}, 3x3) output transform, one tile x 4 output channels per invocation`);
  L.push(OUTPUT_HEAD);
  L.push(`@group(0) @binding(3) var<storage, read_write> y: array<f32>;`);
  L.push(ENTRY);
  L.push(`  let o4 = q % p.o4; let t = q / p.o4;`);
  L.push(...OUTPUT_BIAS);
  const { lines, y } = outputTransformLines(tf, 't', 'y');
  L.push(...lines.map((l) => `  ${l}`));
  L.push(`  let tx = t % p.tilesX; let t2 = t / p.tilesX;`);
  L.push(`  let ty = t2 % p.tilesY; let n = p.n0 + t2 / p.tilesY;`);
  L.push(`  let y0 = ty % p.d + ${m}u * p.d * (ty / p.d);`);
  L.push(`  let x0 = tx % p.d + ${m}u * p.d * (tx / p.d);`);
  L.push(`  let hw = p.ho * p.wo;`);
  L.push(`  let ob = (n * p.o + o) * hw;`);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      L.push(`  if (y0 + ${i}u * p.d < p.ho && x0 + ${j}u * p.d < p.wo) {`);
      L.push(`    let at = ob + (y0 + ${i}u * p.d) * p.wo + x0 + ${j}u * p.d;`);
      L.push(`    for (var k = 0u; k < 4u; k++) { if (o + k < p.o) { y[at + k * hw] = ${y[i][j]}[k]; } }`);
      L.push(`  }`);
    }
  }
  L.push(`}`);
  return L.join('\n');
}

/** 4 tiles (4m columns x m rows) per invocation, vec4 stores along the rows. */
function outputGroupedCode(tf: WinogradTransforms, d: number): string {
  const { m } = tf;
  const offs = groupOffsets(d, m);
  // Which (tile, column of its m x m output) lands on column c of the 4m-column run.
  const source: [number, number][] = Array.from({ length: 4 * m }, () => [-1, -1]);
  offs.forEach((o, l) => range(m).forEach((dx) => (source[o + dx * d] = [l, dx])));
  const L: string[] = [];
  L.push(`// conv2d Winograd F(${m}x${m}, 3x3) output transform, 4 tiles (${4 * m} columns x ${m} rows) per invocation, vec4 stores: dilation ${d}`);
  L.push(OUTPUT_HEAD);
  L.push(`@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;`);
  L.push(ENTRY);
  L.push(`  let o4 = q % p.o4; let t0 = 4u * (q / p.o4);`);
  L.push(...OUTPUT_BIAS);
  const ys = range(4).map((l) => {
    const r = outputTransformLines(tf, `t0 + ${l}u`, `y${l}_`);
    L.push(...r.lines.map((line) => `  ${line}`));
    return r.y;
  });
  L.push(`  let tx = t0 % p.tilesX; let t2 = t0 / p.tilesX;`);
  L.push(`  let ty = t2 % p.tilesY; let n = p.n0 + t2 / p.tilesY;`);
  L.push(`  let y0 = ty % ${d}u + ${m * d}u * (ty / ${d}u);`);
  L.push(`  let xq = (tx / 4u) * ${m}u;`);
  L.push(`  let hw4 = p.ho * p.wo / 4u;`);
  L.push(`  let ob = (n * p.o + o) * hw4;`);
  L.push(`  let wo4 = p.wo / 4u;`);
  L.push(`  let m1 = o + 1u < p.o; let m2 = o + 2u < p.o; let m3 = o + 3u < p.o;`);
  for (let dy = 0; dy < m; dy++) {
    L.push(`  let yy${dy} = y0 + ${dy * d}u;`);
    L.push(`  if (yy${dy} < p.ho) {`);
    for (let h = 0; h < m; h++) {
      L.push(`    if (xq + ${h}u < wo4) {`);
      L.push(`      let at = ob + yy${dy} * wo4 + xq + ${h}u;`);
      for (let k = 0; k < 4; k++) {
        const comps = range(4).map((cc) => {
          const [l, dx] = source[4 * h + cc];
          return `${ys[l][dy][dx]}.${COMP[k]}`;
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

// ---- weight gradient -------------------------------------------------------------------------------
//
// dW[o][c] = sum over images and output pixels of dY[o] times the input shifted by the tap. Per tile
// the 1-D algorithm y = A^T [(G g) . (B^T d)] is a bilinear map, so by its dual (sum_i dy_i y_i =
// sum_j (A dy)_j (G g)_j (B^T d)_j, differentiated in g) the taps' gradient over one tile is
//   dg = G^T [(A dy) . (B^T d)]        and in 2-D   dW = G^T [sum over tiles (A dY A^T) . (B^T X B)] G,
// the same tiles and input transform as the forward pass (V), the m x m output-gradient tile
// transformed by A (a^2 values from m^2), a sum over tiles in the transformed domain (a^2 GEMMs
// [O x P] by [P x C], P the tiles), and G^T . G once per channel pair at the end: a^2 products per
// tile and channel pair instead of 9 m^2 (16 against 36 for m = 2, 36 against 144 for m = 4).
// Layouts: V[t][c][p] (the forward's, vec4 over 4 tiles), D[t][p][o4] (vec4 over 4 output
// channels), partial sums P[part][t][c][o4] over ranges of tiles (split so that small channel
// counts still give enough invocations), then the output kernel sums the parts and applies G^T . G.

const GRAD_TILE_UNIFORMS = uniformStruct('conv2d.winograd.gradTiles', {
  total: 'u32', o: 'u32', o4: 'u32', ho: 'u32', wo: 'u32', tilesX: 'u32', tilesY: 'u32', tiles: 'u32', tp: 'u32', n0: 'u32', d: 'u32',
});

const transpose = (M: number[][]) => M[0].map((_, j) => M.map((row) => row[j]));

/** D[t][p][o4] = A dY A^T of the m x m output-gradient tile p, 4 output channels per invocation (zero past the tiles). */
function gradTilesCode(tf: WinogradTransforms): string {
  const { m } = tf;
  const a = m + 2;
  const L: string[] = [];
  L.push(`// conv2d Winograd F(${m}x${m}, 3x3) weight gradient: output-gradient tile transform A dY A^T, 4 output channels per invocation`);
  L.push(GRAD_TILE_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> gy: array<f32>;`);
  L.push(`@group(0) @binding(2) var<storage, read_write> gt: array<vec4<f32>>;`);
  L.push(`fn px(live: bool, plane: u32, oy: u32, ox: u32) -> f32 {`);
  L.push(`  if (!live || oy >= p.ho || ox >= p.wo) { return 0.0; }`);
  L.push(`  return gy[plane + oy * p.wo + ox];`);
  L.push(`}`);
  L.push(ENTRY);
  L.push(`  let o4 = q % p.o4; let pt = q / p.o4;`);
  L.push(`  let o = o4 * 4u;`);
  L.push(`  let tx = pt % p.tilesX; let t2 = pt / p.tilesX;`);
  L.push(`  let ty = t2 % p.tilesY; let n = p.n0 + t2 / p.tilesY;`);
  L.push(`  let y0 = ty % p.d + ${m}u * p.d * (ty / p.d);`);
  L.push(`  let x0 = tx % p.d + ${m}u * p.d * (tx / p.d);`);
  for (let s = 0; s < 4; s++) {
    L.push(`  let live${s} = pt < p.tiles && o + ${s}u < p.o;`);
    L.push(`  let plane${s} = (n * p.o + o + ${s}u) * p.ho * p.wo;`);
  }
  const e = range(m).map((i) => range(m).map((j) => {
    L.push(`  let e${i}_${j} = vec4<f32>(${range(4).map((s) => `px(live${s}, plane${s}, y0 + ${i}u * p.d, x0 + ${j}u * p.d)`).join(', ')});`);
    return `e${i}_${j}`;
  }));
  const t = sandwich(transpose(tf.AT), e, 'z');
  L.push(...t.lines.map((l) => `  ${l}`));
  for (let i = 0; i < a; i++) for (let j = 0; j < a; j++) L.push(`  gt[(${a * i + j}u * p.tp + pt) * p.o4 + o4] = ${t.y[i][j]};`);
  L.push(`}`);
  return L.join('\n');
}

const DW_GEMM_UNIFORMS = uniformStruct('conv2d.winograd.weightGradGemm', {
  total: 'u32', c: 'u32', o4: 'u32', ogp: 'u32', cblocks: 'u32', parts: 'u32', p4: 'u32', span: 'u32', accumulate: 'u32', cp: 'u32',
});

/**
 * P[part][t][c][o4] = sum over the part's tiles p of D[t][p][o4] * V[t][c][p]: per invocation 4
 * output channels (a vec4) x cb input channels over a range of tiles, 4 tiles a step (V's vec4).
 * With shared loads the 8 lanes of a subgroup (same tiles and input channels, 8 groups of output
 * channels) each load cb/8 of the step's cb vec4s of V and pass them round by subgroupBroadcast,
 * as the forward GEMM does.
 */
function weightGradGemmCode(tf: WinogradTransforms, cb: number, share: number): string {
  const a2 = (tf.m + 2) ** 2;
  const frame = tiledKernelFrame(share, WG);
  const L: string[] = [...frame.enable];
  L.push(`// conv2d Winograd F(${tf.m}x${tf.m}, 3x3) weight gradient GEMM: 4 output x ${cb} input channels per invocation, share ${share}`);
  L.push(DW_GEMM_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> gt: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(3) var<storage, read_write> part: array<vec4<f32>>;`);
  L.push(...frame.entry);
  L.push(`  let og = gi % p.ogp; let r = gi / p.ogp;`);
  L.push(`  let ogc = min(og, p.o4 - 1u);`);
  L.push(`  let cbk = r % p.cblocks; let r2 = r / p.cblocks;`);
  L.push(`  let prt = r2 % p.parts; let t = r2 / p.parts;`);
  L.push(`  let q0 = prt * p.span; let q1 = min(q0 + p.span, p.p4);`);
  L.push(`  var gb = (t * p.p4 * 4u + q0 * 4u) * p.o4 + ogc;`);
  // Rows of V this lane loads: every one of the block's cb channels, or with shared loads its cb/8.
  const rows = share ? cb / share : cb;
  for (let k = 0; k < rows; k++) {
    const ch = share ? `cbk * ${cb}u + ${k * share}u + lane` : `cbk * ${cb}u + ${k}u`;
    L.push(`  let vr${k} = (t * p.c + min(${ch}, p.c - 1u)) * p.p4;`);
  }
  for (let b = 0; b < cb; b++) L.push(`  var a${b} = vec4<f32>();`);
  L.push(`  for (var q = q0; q < q1; q++) {`);
  for (let l = 0; l < 4; l++) L.push(`    let g${l} = gt[gb${l ? ` + ${l}u * p.o4` : ''}];`);
  for (let k = 0; k < rows; k++) L.push(`    let s${k} = v[vr${k} + q];`);
  for (let b = 0; b < cb; b++) {
    const vb = share ? `subgroupBroadcast(s${Math.floor(b / share)}, ${b % share}u)` : `s${b}`;
    L.push(`    let v${b} = ${vb};`);
    L.push(`    a${b} += g0 * v${b}.x + g1 * v${b}.y + g2 * v${b}.z + g3 * v${b}.w;`);
  }
  L.push(`    gb += 4u * p.o4;`);
  L.push(`  }`);
  L.push(`  if (!valid || og >= p.o4) { return; }`);
  L.push(`  let mb = ((prt * ${a2}u + t) * p.cp + cbk * ${cb}u) * p.o4 + og;`);
  // Chunks of images after the first add to the parts.
  L.push(`  if (p.accumulate != 0u) {`);
  for (let b = 0; b < cb; b++) L.push(`    a${b} += part[mb + ${b}u * p.o4];`);
  L.push(`  }`);
  for (let b = 0; b < cb; b++) L.push(`  part[mb + ${b}u * p.o4] = a${b};`);
  L.push(`}`);
  return L.join('\n');
}

const DW_OUTPUT_UNIFORMS = uniformStruct('conv2d.winograd.weightGradOutput', { total: 'u32', c: 'u32', o: 'u32', o4: 'u32', cp: 'u32', parts: 'u32' });

/** dW[o][c] = G^T (sum of the parts) G for one input channel x 4 output channels per invocation. */
function weightGradOutputCode(tf: WinogradTransforms): string {
  const a = tf.m + 2;
  const L: string[] = [];
  L.push(`// conv2d Winograd F(${tf.m}x${tf.m}, 3x3) weight gradient output transform: the parts summed, G^T M G`);
  L.push(DW_OUTPUT_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> part: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(2) var<storage, read_write> dw: array<f32>;`);
  L.push(ENTRY);
  L.push(`  let o4 = q % p.o4; let c = q / p.o4;`);
  L.push(`  let tstep = p.cp * p.o4;`);
  const mv = range(a).map((i) => range(a).map((j) => {
    L.push(`  var m${i}_${j} = vec4<f32>();`);
    return `m${i}_${j}`;
  }));
  L.push(`  var b = c * p.o4 + o4;`);
  L.push(`  for (var s = 0u; s < p.parts; s++) {`);
  for (let i = 0; i < a; i++) for (let j = 0; j < a; j++) L.push(`    m${i}_${j} += part[b + ${a * i + j}u * tstep];`);
  L.push(`    b += ${a * a}u * tstep;`);
  L.push(`  }`);
  const t = sandwich(transpose(tf.G), mv, 'z');
  L.push(...t.lines.map((l) => `  ${l}`));
  L.push(`  let o = o4 * 4u;`);
  L.push(`  for (var s = 0u; s < 4u; s++) {`);
  L.push(`    if (o + s >= p.o) { break; }`);
  L.push(`    let at = ((o + s) * p.c + c) * 9u;`);
  for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) L.push(`    dw[at + ${3 * ky + kx}u] = ${t.y[ky][kx]}[s];`);
  L.push(`  }`);
  L.push(`}`);
  return L.join('\n');
}

// ---- drivers ---------------------------------------------------------------------------------------

/** Whether Winograd computes this convolution's forward pass (3x3, stride 1). */
export function winogradForwardApplies(g: Geometry): boolean {
  return g.kh === 3 && g.kw === 3 && g.s === 1;
}

/** Whether it computes the input gradient: 3x3, stride 1, padding at most 2d (the gradient's padding 2d - p). */
export function winogradInputGradApplies(g: Geometry): boolean {
  return winogradForwardApplies(g) && g.p <= 2 * g.d;
}

/** V[t][c][p] = B^T d B for the tiles of images n0.. (`tiles` of them, zeros up to plan.tilesPad). */
function transformInput(tf: WinogradTransforms, src: Tensor, v: Tensor, cv: WinoConv, plan: WinoPlan, n0: number, tiles: number, kernel = `${tf.kernel}.input`): void {
  const code = groupedInput(cv.d, cv.w, plan.tilesX)
    ? cached(`input4 ${tf.m} ${cv.d} ${cv.p}`, () => inputGroupedCode(tf, cv.d, cv.p))
    : cached(`input ${tf.m}`, () => inputCode(tf));
  const p4 = plan.tilesPad / 4;
  const total = cv.c * p4;
  launch({
    kernel, code, grid: grid1d(total, WG), bind: [src, v],
    uniforms: TILE_UNIFORMS.pack({ total, c: cv.c, h: cv.h, w: cv.w, tilesX: plan.tilesX, tilesY: plan.tilesY, tiles, p4, n0, pad: cv.p, d: cv.d }),
  });
}

/**
 * Winograd conv of `src` [n, c, h, w] into a new [n, o, ho, wo] tensor; `w` is read as the forward's
 * weights [o, c, 3, 3], or transposed and flipped ([c, o, 3, 3]) for the input gradient. Null when
 * even one image's V or M passes the storage-binding limit (the caller takes the direct kernel).
 */
function winogradConv(tf: WinogradTransforms, src: Tensor, w: Tensor, b: Tensor | null, cv: WinoConv, transposed: boolean, flops: number, op: string): Tensor | null {
  const plan = planFor(cv, tf.m);
  if (!plan) return null;
  const a2 = (tf.m + 2) ** 2;
  const o4 = Math.ceil(cv.o / 4);
  const out = empty([cv.n, cv.o, cv.ho, cv.wo], 'float32', op);
  const u = empty([a2 * cv.c * o4 * 4], 'float32', op);
  const weights4 = cv.c % 4 === 0 && cv.o % 4 === 0;
  const weightTotal = weights4 ? (cv.c / 4) * o4 : cv.c * o4;
  launch({
    kernel: `${tf.kernel}.weights`,
    code: weights4 ? cached(`weights4 ${tf.m} ${transposed}`, () => weightsGroupedCode(tf, transposed)) : cached(`weights ${tf.m}`, () => weightsCode(tf)),
    grid: grid1d(weightTotal, WG), bind: [w, u],
    uniforms: WEIGHT_UNIFORMS.pack({ total: weightTotal, c: cv.c, o: cv.o, o4, transposed: transposed ? 1 : 0 }),
  });
  const v = empty([a2 * cv.c * plan.tilesPad], 'float32', op);
  const m = empty([a2 * plan.tilesPad * o4 * 4], 'float32', op);
  const p4 = plan.tilesPad / 4;
  const ogp = plan.share ? Math.ceil(o4 / plan.share) * plan.share : o4;
  const blocks = plan.tilesPad / plan.pb;
  const gemm = cached(`gemm ${tf.m} ${plan.pb} ${plan.share}`, () => gemmCode(tf, plan.pb, plan.share));
  const output4 = groupedOutput(cv.d, cv.wo, plan.tilesX);
  const output = output4 ? cached(`output4 ${tf.m} ${cv.d}`, () => outputGroupedCode(tf, cv.d)) : cached(`output ${tf.m}`, () => outputCode(tf));
  for (let k = 0; k < plan.chunks; k++) {
    const n0 = k * plan.nb;
    const nb = Math.min(plan.nb, cv.n - n0);
    const tiles = nb * plan.tilesY * plan.tilesX;
    transformInput(tf, src, v, cv, plan, n0, tiles);
    const gemmTotal = a2 * blocks * ogp;
    launch({
      kernel: `${tf.kernel}.gemm`, code: gemm, grid: grid1d(gemmTotal, WG), bind: [u, v, m], flops: (flops * nb) / cv.n,
      uniforms: GEMM_UNIFORMS.pack({ total: gemmTotal, c: cv.c, o4, ogp, blocks, p4 }),
    });
    const outTotal = (output4 ? tiles / 4 : tiles) * o4;
    launch({
      kernel: `${tf.kernel}.output`, code: output, grid: grid1d(outTotal, WG), bind: [m, b ?? m, out],
      uniforms: OUTPUT_UNIFORMS.pack({ total: outTotal, o: cv.o, o4, ho: cv.ho, wo: cv.wo, tilesX: plan.tilesX, tilesY: plan.tilesY, tp: plan.tilesPad, n0, d: cv.d, hasBias: b ? 1 : 0 }),
    });
  }
  u.dispose();
  v.dispose();
  m.dispose();
  return out;
}

/**
 * The forward pass by Winograd F(m x m, 3 x 3), or null when it does not apply or does not fit.
 * m: the output tile's side; by default the one the tuning table picks (useWinograd), 2 where it
 * picks none.
 */
export function winogradForward(x: Tensor, w: Tensor, b: Tensor | null, g: Geometry, m: 2 | 4 = useWinograd(g, 'forward') || 2): Tensor | null {
  if (!winogradForwardApplies(g)) return null;
  const cv: WinoConv = { n: g.n, c: g.ci, h: g.h, w: g.w, o: g.co, ho: g.ho, wo: g.wo, p: g.p, d: g.d };
  return winogradConv(winogradTransforms(m), x, w, b, cv, false, convFlops(g), 'conv2d');
}

/** The input gradient by Winograd F(m x m, 3 x 3) (a stride-1 conv of dy with flipped, transposed weights), or null; m as in winogradForward. */
export function winogradInputGrad(gy: Tensor, w: Tensor, g: Geometry, m: 2 | 4 = useWinograd(g, 'inputGrad') || 2): Tensor | null {
  if (!winogradInputGradApplies(g)) return null;
  const cv: WinoConv = { n: g.n, c: g.co, h: g.ho, w: g.wo, o: g.ci, ho: g.h, wo: g.w, p: 2 * g.d - g.p, d: g.d };
  return winogradConv(winogradTransforms(m), gy, w, null, cv, true, convFlops(g), 'conv2d backward (input)');
}

/** Whether Winograd computes this convolution's weight gradient (3x3, stride 1, any padding and dilation). */
export function winogradWeightGradApplies(g: Geometry): boolean {
  return winogradForwardApplies(g);
}

/**
 * The weight gradient [co, ci, 3, 3] by Winograd F(m x m, 3 x 3) (see "weight gradient" above), or
 * null when it does not apply or one image's transformed planes do not fit; m as in winogradForward.
 */
export function winogradWeightGrad(x: Tensor, gy: Tensor, g: Geometry, m: 2 | 4 = useWinograd(g, 'weightGrad') || 2): Tensor | null {
  if (!winogradWeightGradApplies(g)) return null;
  const tf = winogradTransforms(m);
  const cv: WinoConv = { n: g.n, c: g.ci, h: g.h, w: g.w, o: g.co, ho: g.ho, wo: g.wo, p: g.p, d: g.d };
  const plan = planFor(cv, tf.m);
  if (!plan) return null;
  const op = 'conv2d backward (weights)';
  const a2 = (tf.m + 2) ** 2;
  const o4 = Math.ceil(cv.o / 4);
  const p4 = plan.tilesPad / 4;
  // Input channels per invocation: 32 with shared loads (4 + 4 loads a lane per 4 tiles for 128
  // vec4 multiply-adds), 16 without; fewer for few channels (with shared loads a multiple of the
  // subgroup, whose lanes each load a row).
  const cb = Math.max(plan.share || 1, Math.min(plan.share ? 32 : 16, 2 ** Math.ceil(Math.log2(cv.c))));
  const cblocks = Math.ceil(cv.c / cb);
  const cp = cblocks * cb;
  const ogp = plan.share ? Math.ceil(o4 / plan.share) * plan.share : o4;
  // Split the tiles into parts until there are enough invocations, within the binding limit.
  const perPart = a2 * cblocks * ogp;
  const partBytes = a2 * cp * o4 * 16;
  const limit = bindingLimit();
  const wanted = Math.max(1, Math.min(p4, Math.ceil(tuning().dw.minInvocations / perPart), Math.floor(limit / partBytes)));
  const span = Math.ceil(p4 / wanted);
  const parts = Math.ceil(p4 / span);
  if (partBytes * parts > limit) return null;
  const v = empty([a2 * cv.c * plan.tilesPad], 'float32', op);
  const gt = empty([a2 * plan.tilesPad * o4 * 4], 'float32', op);
  const partial = empty([parts * a2 * cp * o4 * 4], 'float32', op);
  const tilesCode = cached(`gradTiles ${tf.m}`, () => gradTilesCode(tf));
  const gemm = cached(`weightGradGemm ${tf.m} ${cb} ${plan.share}`, () => weightGradGemmCode(tf, cb, plan.share));
  for (let k = 0; k < plan.chunks; k++) {
    const n0 = k * plan.nb;
    const nb = Math.min(plan.nb, cv.n - n0);
    const tiles = nb * plan.tilesY * plan.tilesX;
    transformInput(tf, x, v, cv, plan, n0, tiles, `${tf.kernel}.weightGrad.input`);
    const tileTotal = plan.tilesPad * o4;
    launch({
      kernel: `${tf.kernel}.weightGrad.tiles`, code: tilesCode, grid: grid1d(tileTotal, WG), bind: [gy, gt],
      uniforms: GRAD_TILE_UNIFORMS.pack({ total: tileTotal, o: cv.o, o4, ho: cv.ho, wo: cv.wo, tilesX: plan.tilesX, tilesY: plan.tilesY, tiles, tp: plan.tilesPad, n0, d: cv.d }),
    });
    const gemmTotal = perPart * parts;
    launch({
      kernel: `${tf.kernel}.weightGrad.gemm`, code: gemm, grid: grid1d(gemmTotal, WG), bind: [gt, v, partial], flops: (convFlops(g) * nb) / cv.n,
      uniforms: DW_GEMM_UNIFORMS.pack({ total: gemmTotal, c: cv.c, o4, ogp, cblocks, parts, p4, span, accumulate: k > 0 ? 1 : 0, cp }),
    });
  }
  const dw = empty([cv.o, cv.c, 3, 3], 'float32', op);
  const outTotal = cv.c * o4;
  launch({
    kernel: `${tf.kernel}.weightGrad.output`, code: cached(`weightGradOutput ${tf.m}`, () => weightGradOutputCode(tf)), grid: grid1d(outTotal, WG), bind: [partial, dw],
    uniforms: DW_OUTPUT_UNIFORMS.pack({ total: outTotal, c: cv.c, o: cv.o, o4, cp, parts }),
  });
  v.dispose();
  gt.dispose();
  partial.dispose();
  return dw;
}
