// Tap planning (pure: which kernel taps reach which tile position, and from which input offset)
// and the per-channel load and multiply-add code generated from it, shared by the correlation and
// weight-gradient kernels.

export const COMP = ['x', 'y', 'z', 'w'];

/** For each position of a tile along one axis: the taps that reach it, as [tap, input offset]. */
export interface AxisPlan {
  taps: [number, number][][];
  maxOffset: number;
}

export function plan(taps: [number, number][][]): AxisPlan {
  let maxOffset = 0;
  for (const list of taps) for (const [, t] of list) maxOffset = Math.max(maxOffset, t);
  return { taps, maxOffset };
}

/** Forward / weight gradient: position i is output (origin + i*spacing), reading input (origin*s + i*spacing*s + tap*d). */
export function forwardAxis(size: number, spacing: number, k: number, s: number, d: number): AxisPlan {
  return plan(Array.from({ length: size }, (_, i) => Array.from({ length: k }, (_, kk) => [kk, i * spacing * s + kk * d] as [number, number])));
}

/**
 * Input gradient: position i is input pixel (origin + i*spacing) in coordinates shifted by the
 * padding, origin a multiple of the stride s. It receives tap kk from output gradient pixel
 * (origin + i*spacing + pm - kk*d)/s + pq where p = pq*s + pm, when that division is exact. Offsets
 * are relative to origin/s in a gradient plane padded by `base - pq` in front.
 */
export function inputGradAxis(size: number, spacing: number, k: number, s: number, d: number, pm: number): { axis: AxisPlan; base: number } {
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


export interface TapCode {
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
export function tapCode(
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

export function shiftCols(a: AxisPlan, c0: number): AxisPlan {
  return c0 ? plan(a.taps.map((list) => list.map(([k, t]) => [k, t + c0] as [number, number]))) : a;
}

/**
 * WGSL around a tiled conv kernel (correlation or weight gradient): `enable` (before everything
 * else in the module: subgroups, when lanes share loads) and `entry` (the entry point and the
 * invocation index `gi`, clamped to the last one, with `valid`: no early return, since with
 * shared loads every lane of a subgroup must take part in the broadcasts).
 */
export function tiledKernelFrame(share: number, wg: number): { enable: string[]; entry: string[] } {
  return {
    enable: share ? ['enable subgroups;', 'diagnostic(off, subgroup_uniformity);'] : [],
    entry: [
      `@compute @workgroup_size(${wg}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>${share ? ', @builtin(subgroup_invocation_id) lane: u32' : ''}) {`,
      `  let gi0 = (wid.y * nwg.x + wid.x) * ${wg}u + lid.x;`,
      `  let valid = gi0 < p.total;`,
      `  let gi = min(gi0, p.total - 1u);`,
    ],
  };
}

/**
 * The spacing of a tile's rows over a plane of `h` rows: the dilation with spaced tiles and
 * stride 1, unless spacing makes the tiles cover over a quarter more rows than contiguous ones
 * would (a small plane: 8 rows with dilation 4 and 4-row tiles leave half of every tile's rows
 * past the plane, where contiguous tiles leave none: 4x512x8x8 forward 1.6x, input gradient
 * 1.35x faster on lavapipe).
 */
export function rowSpacing(tile: { pr: number; spaced: boolean }, h: number, s: number, d: number): number {
  if (!tile.spaced || s !== 1 || d === 1) return 1;
  const spacedRows = Math.ceil(h / (tile.pr * d)) * tile.pr * d;
  const contiguousRows = Math.ceil(h / tile.pr) * tile.pr;
  return spacedRows <= 1.25 * contiguousRows ? d : 1;
}

/**
 * The tiling of a forward-direction pass (forward, weight gradient) over the output: rows spaced
 * `sigma` apart (the dilation, with stride 1 and spaced tiles), the taps of each tile row and
 * column, the tile counts, and the extent (hp rows x wp columns) of the padded input it reads.
 */
export function forwardTiling(tile: { pw: number; pr: number; spaced: boolean }, g: { s: number; d: number; kh: number; kw: number; ho: number; wo: number }) {
  const sigma = rowSpacing(tile, g.ho, g.s, g.d);
  const rows = forwardAxis(tile.pr, sigma, g.kh, g.s, g.d);
  const cols = forwardAxis(tile.pw, 1, g.kw, g.s, g.d);
  const tilesX = Math.ceil(g.wo / tile.pw);
  const groups = Math.ceil(g.ho / (tile.pr * sigma));
  const tilesY = groups * sigma;
  const colStep = tile.pw * g.s;
  const wp = (tilesX - 1) * colStep + 4 * ((cols.maxOffset >> 2) + 1);
  const hp = ((groups - 1) * tile.pr * sigma + sigma - 1) * g.s + rows.maxOffset + 1;
  return { sigma, rows, cols, tilesX, groups, tilesY, colStep, wp, hp };
}
