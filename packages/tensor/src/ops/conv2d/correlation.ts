// The correlation kernel (forward and input gradient) and the drivers that plan and run it.

import { empty, grid1d, launch, uniformStruct } from '../../kernel';
import type { Tensor } from '../../tensor';
import { convFlops, type Geometry } from './geometry';
import { relayoutWeights, sourceOf, type Source } from './helpers';
import { COMP, forwardTiling, inputGradAxis, plan, rowSpacing, shiftCols, tapCode, tiledKernelFrame, type AxisPlan } from './taps';
import { WG, inputGradTile, shareFor, tuning, type Tile } from './tuning';

// o4: groups of 4 output channels; og: lanes per tile (o4 / cg); ogp: og rounded up to the
// subgroup size when lanes share loads. sh, wp4: rows and vec4s per row of a source plane; top, lq:
// where the tiles' padded coordinates start in it (0 when the source is a padded copy).
const CORR_UNIFORMS = uniformStruct('conv2d.corr', {
  c: 'u32', o4: 'u32', oc: 'u32', tilesX: 'u32', tilesY: 'u32', total: 'u32', wp4: 'u32', plane4: 'u32',
  ho: 'u32', wo: 'u32', ogp: 'u32', sh: 'u32', top: 'i32', lq: 'i32', og: 'u32',
});

export interface CorrSpec {
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
  const frame = tiledKernelFrame(c.share, WG);
  L.push(...frame.enable);
  L.push(`// conv2d correlation: tile ${pw}x${pr} spacing ${c.sigma}, k ${c.kh}x${c.kw}, rows *${c.rowNum}/${c.rowDen}, colStep ${c.colStep}, share ${c.share}${G > 1 ? `, ${G} channel groups` : ''}`);
  L.push(CORR_UNIFORMS.wgsl);
  L.push(`@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;`);
  L.push(`@group(0) @binding(3) var<storage, read_write> out: array<${c.vec4Out ? 'vec4<f32>' : 'f32'}>;`);
  L.push(...tc.consts);
  L.push(...frame.entry);
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

function runCorr(spec: CorrSpec, src: Source, wt: Tensor, out: Tensor, u: { n: number; c: number; o: number; tilesX: number; tilesY: number; ho: number; wo: number }, flops: number): void {
  const o4 = Math.ceil(u.o / 4);
  const og = Math.ceil(o4 / spec.cg);
  const ogp = spec.share ? Math.ceil(og / spec.share) * spec.share : og;
  const total = ogp * u.tilesX * u.tilesY * u.n;
  launch({
    kernel: 'conv2d.corr',
    code: corrCode({ ...spec, cols: shiftCols(spec.cols, src.c0) }),
    grid: grid1d(total, WG),
    bind: [src.t, wt, out],
    flops,
    uniforms: CORR_UNIFORMS.pack({
      c: u.c, o4, oc: u.o, tilesX: u.tilesX, tilesY: u.tilesY, total, wp4: src.wp / 4, plane4: (src.sh * src.wp) / 4,
      ho: u.ho, wo: u.wo, ogp, sh: src.sh, top: src.top, lq: src.lq, og,
    }),
  });
  if (src.owned) src.t.dispose();
}

export function forwardRaw(x: Tensor, w: Tensor, b: Tensor | null, g: Geometry): Tensor {
  const tile = tuning().fwd;
  // Stride 2 with shared loads: two groups of 4 output channels per lane (see CorrSpec.cg).
  const cg = g.s === 2 && shareFor(g.co, 2) ? 2 : 1;
  const { sigma, rows, cols, tilesX, tilesY, colStep, wp, hp } = forwardTiling(tile, g);
  const share = shareFor(g.co, cg);
  // The output first: one too large for the adapter fails before any temporary is made.
  const out = empty([g.n, g.co, g.ho, g.wo], 'float32', 'conv2d');
  const src = sourceOf(x, g.p, g.p, hp, wp, share > 0, 'conv2d');
  const wt = relayoutWeights(w, b, false, 'conv2d');
  const spec: CorrSpec = { kh: g.kh, kw: g.kw, tile, sigma, rows, cols, rowNum: g.s, rowDen: 1, colStep, vec4Out: g.wo % 4 === 0, share, cg };
  runCorr(spec, src, wt, out, { n: g.n, c: g.ci, o: g.co, tilesX, tilesY, ho: g.ho, wo: g.wo }, convFlops(g));
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
  const dx = empty([g.n, g.ci, g.h, g.w], 'float32', 'conv2d backward (input)');
  const wt = relayoutWeights(w, null, true, 'conv2d backward (input)');
  const src = sourceOf(gy, by - pq, bx - pq, hp, wp, share > 0, 'conv2d backward (input)');
  // The gradient's flops (convFlops) shared between the phases by their pixels times their taps.
  const work = plans.map((p) => Math.ceil((g.h - p.py) / s) * Math.ceil((g.w - p.px) / s) * p.rows.axis.taps[0].length * p.cols.axis.taps[0].length);
  const allWork = work.reduce((a, b) => a + b, 0);
  for (const [k, ph] of plans.entries()) {
    const tile: Tile = { pw: ph.pw, pr: ph.pr, spaced: false };
    const spec: CorrSpec = { kh: g.kh, kw: g.kw, tile, sigma: s, rows: ph.r, cols: ph.c, rowNum: 1, rowDen: s, colStep: ph.pw, vec4Out: false, share, cg: 1, phase: { s, py: ph.py, px: ph.px } };
    runCorr(spec, { ...src, owned: false }, wt, dx, { n: g.n, c: g.co, o: g.ci, tilesX: ph.tilesX, tilesY: ph.tilesY, ho: g.h, wo: g.w }, (convFlops(g) * work[k]) / allWork);
  }
  if (src.owned) src.t.dispose();
  wt.dispose();
  return dx;
}

export function inputGradRaw(gy: Tensor, w: Tensor, g: Geometry): Tensor {
  // Phases only for stride 2 (the U-Net's down-sampling): stride s needs up to s*s large kernels,
  // each seconds to compile on lavapipe; other strides keep the all-phases kernel.
  if (g.s === 2 && tuning().name === 'fallback') {
    const dx = inputGradPhased(gy, w, g);
    if (dx) return dx;
  }
  const t = inputGradTile(g);
  const s = g.s;
  const pw = Math.ceil(t.pw / (4 * s)) * 4 * s;
  const pr = Math.ceil(t.pr / s) * s;
  const tile: Tile = { pw, pr, spaced: t.spaced };
  const sigma = rowSpacing(tile, g.h, s, g.d);
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
  const dx = empty([g.n, g.ci, g.h, g.w], 'float32', 'conv2d backward (input)');
  const src = sourceOf(gy, rowPlan.base - pq, colPlan.base - pq, hp, wp, share > 0, 'conv2d backward (input)');
  const wt = relayoutWeights(w, null, true, 'conv2d backward (input)');
  const spec: CorrSpec = { kh: g.kh, kw: g.kw, tile, sigma, rows: rowPlan.axis, cols: colPlan.axis, rowNum: 1, rowDen: s, colStep, vec4Out: g.w % 4 === 0, share, cg: 1 };
  runCorr(spec, src, wt, dx, { n: g.n, c: g.co, o: g.ci, tilesX, tilesY, ho: g.h, wo: g.w }, convFlops(g));
  wt.dispose();
  return dx;
}

