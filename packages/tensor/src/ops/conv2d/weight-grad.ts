// The weight gradient: per invocation 4 output channels x CB input channels x all taps in
// registers over a band of tile rows; the bands' partial sums are added by a second kernel.

import { empty, grid1d, launch, uniformStruct } from '../../kernel';
import type { Tensor } from '../../tensor';
import { convFlops, type Geometry } from './geometry';
import { relayoutGrad, sourceOf, sumWeightGradParts } from './helpers';
import { forwardTiling, shiftCols, tapCode, tiledKernelFrame, type AxisPlan } from './taps';
import { WG, shareFor, tuning, type Tile } from './tuning';

const DW_UNIFORMS = uniformStruct('conv2d.weightGrad', {
  ci: 'u32', nb: 'u32', o4: 'u32', tilesX: 'u32', tilesY: 'u32', rowsTotal: 'u32', rpp: 'u32', total: 'u32',
  wp4: 'u32', sh: 'u32', hg: 'u32', wg: 'u32', o4p: 'u32', top: 'i32', lq: 'i32',
});

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
  const frame = tiledKernelFrame(c.share, WG);
  L.push(...frame.enable);
  L.push(`// conv2d weight gradient: tile ${pw}x${pr} spacing ${c.sigma}, ${c.cb} input channels, k ${c.kh}x${c.kw}, stride ${c.s}, share ${c.share}`);
  L.push(DW_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(2) var<storage, read> gt: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(3) var<storage, read_write> part: array<vec4<f32>>;`);
  L.push(...tc.consts);
  L.push(...frame.entry);
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

export function weightGradRaw(x: Tensor, gy: Tensor, g: Geometry): Tensor {
  const tn = tuning().dw;
  const tile: Tile = tn;
  const { sigma, rows, cols, tilesX, groups, tilesY, wp, hp } = forwardTiling(tile, g);
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
  const src = sourceOf(x, g.p, g.p, hp, wp, share > 0, 'conv2d backward (weights)', 'conv2d.weightGradPad');
  const gt = relayoutGrad(gy, hg, wg, 'conv2d backward (weights)');
  const partial = empty([parts * g.ci * T * o4 * 4], 'float32', 'conv2d backward (weights)');
  const o4p = share ? Math.ceil(o4 / share) * share : o4;
  const total = o4p * nb * parts;
  const spec: DwSpec = { kh: g.kh, kw: g.kw, tile, cb, sigma, s: g.s, rows, cols: shiftCols(cols, src.c0), share };
  launch({
    kernel: 'conv2d.weightGrad', code: dwCode(spec), grid: grid1d(total, WG), bind: [src.t, gt, partial], flops: convFlops(g),
    uniforms: DW_UNIFORMS.pack({ ci: g.ci, nb, o4, tilesX, tilesY, rowsTotal, rpp, total, wp4: src.wp / 4, sh: src.sh, hg, wg, o4p, top: src.top, lq: src.lq }),
  });
  const dw = sumWeightGradParts(partial, g.co, g.ci, g.kh, g.kw, parts, 'conv2d backward (weights)');
  if (src.owned) src.t.dispose();
  gt.dispose();
  partial.dispose();
  return dw;
}
