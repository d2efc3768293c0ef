// conv2d's two variants and how the adapter picks one (see index.ts for the design).

import { runtime } from '../../runtime';

export interface Tile {
  /** Pixels per row (a multiple of 4). */
  pw: number;
  /** Rows. */
  pr: number;
  /** With stride 1 and dilation d, space a tile's rows d apart so that they share input rows. */
  spaced: boolean;
}

export interface Tuning {
  name: 'fallback' | 'gpu';
  /** Share activation loads across a subgroup (see tapCode). */
  share: boolean;
  fwd: Tile;
  dx: Tile;
  /** Input-gradient tile for kernels of at most 3x3 with stride 1 and dilation 1 or 2 (see inputGradTile). */
  dxTall?: Tile;
  dw: Tile & { cb: number; minInvocations: number };
}

const FALLBACK: Tuning = {
  name: 'fallback',
  share: true,
  fwd: { pw: 8, pr: 4, spaced: true },
  dx: { pw: 8, pr: 4, spaced: true },
  dxTall: { pw: 8, pr: 8, spaced: true },
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
export function shareFor(channels: number, cg = 1): number {
  if (!tuning().share) return 0;
  const rt = runtime();
  if (!rt.device.features.has('subgroups')) return 0;
  const info = (rt.device as unknown as { adapterInfo?: { subgroupMinSize?: number; subgroupMaxSize?: number } }).adapterInfo;
  if (info?.subgroupMinSize !== 8 || info?.subgroupMaxSize !== 8) return 0;
  const lanes = Math.ceil(Math.ceil(channels / 4) / cg);
  const padded = Math.ceil(lanes / 8) * 8;
  return lanes * 4 >= padded * 3 ? 8 : 0;
}

/**
 * The tile of the input-gradient correlation kernel. On the fallback variant 3x3 (or smaller)
 * kernels with stride 1 and dilation 1 or 2 take 8x8 tiles: 1.13-1.45x faster than 8x4 on lavapipe at every level of the U-Net
 * (`pnpm bench kernels`, 4x32x256x256 to 4x512x8x8, interleaved runs). The forward measured no
 * better with them (0.73-1.10x, within this machine's noise) and keeps 8x4, as do stride 2 (input
 * gradient 2x slower and 40 s to compile, by stride phase with doubled tiles), dilation 4 (faster
 * on large planes, slower on 16x16 and 32x32) and larger kernels (not measured).
 */
export function inputGradTile(g: { kh: number; kw: number; s: number; d: number }): Tile {
  const t = tuning();
  return t.dxTall && g.kh <= 3 && g.kw <= 3 && g.s === 1 && g.d <= 2 ? t.dxTall : t.dx;
}

export function tuning(): Tuning {
  if (variant === 'fallback') return FALLBACK;
  if (variant === 'gpu') return GPU;
  return runtime().adapter.isFallback ? FALLBACK : GPU;
}

/** Workgroup size of every conv2d kernel. */
export const WG = 64;
