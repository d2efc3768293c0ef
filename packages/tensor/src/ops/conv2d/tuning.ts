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

let algorithm: 'auto' | 'direct' | 'winograd' = 'auto';

/**
 * Choose how 3x3 stride-1 convolutions run: 'auto' (by the table in {@link useWinograd}), or force
 * the direct kernels or Winograd F(2x2, 3x3) (tests, benchmarks; 'winograd' still leaves every
 * other shape to the direct kernels).
 */
export function setConv2dAlgorithm(a: 'auto' | 'direct' | 'winograd'): void {
  algorithm = a;
}

/**
 * Whether a 3x3 stride-1 conv's forward pass ('forward') or input gradient ('inputGrad') takes
 * Winograd F(2x2, 3x3) (winograd.ts) instead of the direct correlation kernel. The table, measured
 * on lavapipe (fallback variant, shared subgroup loads; `AUNET_CONV2D=direct|winograd pnpm bench
 * kernels --quick --only "k3 d2 s1"` and d4, batch 4, padding = dilation, Cin = Cout, images 128
 * and 256, 2026-12-07):
 *   - 128 to 512 channels (planes 64x64 to 8x8): Winograd 1.07-3.3x faster in both passes and at
 *     every dilation; the gain grows with the channels, as the transforms' share of the time
 *     (they scale with channels, the GEMM with channels squared) shrinks.
 *   - 64 channels (64x64 and 128x128 planes): the forward with dilation 1 1.4-1.8x faster
 *     (`--only "k3 d1 s1"`); its input gradient 0.9-1.2x and both passes at dilations 2 and 4
 *     0.78-1.3x, as often slower as faster: direct.
 *   - 32 channels (128x128 and 256x256): 0.65-0.95x (the transforms cost more than the GEMM): direct.
 * So: Winograd where both channel counts are at least 128 (64 for the forward with dilation 1), with
 * dilation 1, 2 or 4 and padding equal to the dilation (the measured shapes). Never on the 'gpu'
 * variant (not measured there).
 */
export function useWinograd(g: { kh: number; kw: number; s: number; d: number; p: number; ci: number; co: number }, pass: 'forward' | 'inputGrad'): boolean {
  if (g.kh !== 3 || g.kw !== 3 || g.s !== 1 || algorithm === 'direct') return false;
  if (algorithm === 'winograd') return true;
  if (tuning().name !== 'fallback' || !shareFor(pass === 'forward' ? g.co : g.ci)) return false;
  const minChannels = pass === 'forward' && g.d === 1 ? WINOGRAD_MIN_CHANNELS_FORWARD_D1 : WINOGRAD_MIN_CHANNELS;
  return (g.d === 1 || g.d === 2 || g.d === 4) && g.p === g.d && Math.min(g.ci, g.co) >= minChannels;
}

/** Channels (input and output) from which Winograd pays on the fallback variant (see useWinograd). */
export const WINOGRAD_MIN_CHANNELS = 128;
/** The same for the forward pass with dilation 1. */
export const WINOGRAD_MIN_CHANNELS_FORWARD_D1 = 64;

export function tuning(): Tuning {
  const chosen = variant !== 'auto' ? variant : variantFromEnvironment();
  if (chosen === 'fallback') return FALLBACK;
  if (chosen === 'gpu') return GPU;
  return runtime().adapter.isFallback ? FALLBACK : GPU;
}

/**
 * AUNET_CONV2D_VARIANT=fallback|gpu: the variant for a whole process and the processes it starts,
 * where setConv2dVariant cannot reach (tests of the trainer's commands on tiny networks, where
 * compiling the fallback variant's big kernels costs more than running the small ones). Read on
 * every call: cheap, and a test may set it after import.
 */
function variantFromEnvironment(): 'auto' | 'fallback' | 'gpu' {
  const v = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.AUNET_CONV2D_VARIANT;
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if (v === 'fallback' || v === 'gpu') return v;
  throw new Error(`AUNET_CONV2D_VARIANT must be fallback, gpu or auto, got "${v}"`);
}

/** Workgroup size of every conv2d kernel. */
export const WG = 64;
