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
export function shareFor(channels: number, cg = 1, possible = sharedLoadsPossible()): number {
  if (!possible) return 0;
  const lanes = Math.ceil(Math.ceil(channels / 4) / cg);
  const padded = Math.ceil(lanes / 8) * 8;
  return lanes * 4 >= padded * 3 ? 8 : 0;
}

/** Whether this variant and device can share loads over subgroups (see shareFor). */
export function sharedLoadsPossible(): boolean {
  if (!tuning().share) return false;
  const rt = runtime();
  if (!rt.device.features.has('subgroups')) return false;
  const info = (rt.device as unknown as { adapterInfo?: { subgroupMinSize?: number; subgroupMaxSize?: number } }).adapterInfo;
  return info?.subgroupMinSize === 8 && info?.subgroupMaxSize === 8;
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

/** How 3x3 stride-1 convolutions run: see setConv2dAlgorithm. */
export type Conv2dAlgorithm = 'auto' | 'direct' | 'winograd' | 'winograd4';

let algorithm: Conv2dAlgorithm = 'auto';

/**
 * Choose how 3x3 stride-1 convolutions run: 'auto' (by the table in {@link useWinograd}), or force
 * the direct kernels, Winograd F(2x2, 3x3) ('winograd') or Winograd F(4x4, 3x3) ('winograd4')
 * (tests, benchmarks; the Winograd choices still leave every other shape to the direct kernels).
 */
export function setConv2dAlgorithm(a: Conv2dAlgorithm): void {
  algorithm = a;
}

/**
 * Whether a 3x3 stride-1 conv's forward pass ('forward') or input gradient ('inputGrad') takes
 * Winograd (winograd.ts) instead of the direct correlation kernel: false for the direct kernel,
 * else the side of the output tile, 2 for F(2x2, 3x3) or 4 for F(4x4, 3x3). The table, measured
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
 * dilation 1, 2 or 4 and padding equal to the dilation (the measured shapes).
 * Without shared loads (no subgroups of 8: a compatibility-mode adapter such as Chromium's
 * lavapipe route), the direct kernels lose their 8x cut in activation loads and Winograd wins at
 * every level: forward 1.2-2.9x, input gradient 1.2-2.2x, 32 to 512 channels, dilations 1, 2 and 4
 * (`AUNET_WEBGPU_WITHOUT=subgroups AUNET_CONV2D=direct|winograd pnpm bench kernels --quick
 * --only "k3 d"`, two runs each, 2026-12-07). So there it takes every such shape.
 * F(4x4, 3x3) against F(2x2, 3x3) and the direct kernels, with shared loads (`AUNET_CONV2D=direct|
 * winograd|winograd4 pnpm bench kernels --quick --no-torch --no-tfjs --only "k3 d1 s1"`, and d2,
 * d4; run alternately, three runs each at d1, two at d2 and d4, 2026-12-07; ratios of the medians
 * over the runs, times their ranges):
 *   - 64 to 512 channels, planes 16x16 to 128x128: F(4x4) 1.1-2.0x faster than F(2x2) in both
 *     passes at every dilation (4x128x64x64 d1 forward 46-56 ms against 76-95, input gradient
 *     47-58 against 69-77; 4x256x32x32 d2 forward 34-41 against 51-66) and, at 64 channels, 1.3-2.2x
 *     faster than the direct kernels that the table took there (4x64x128x128 d1 input gradient
 *     69-79 ms against 104-115, d4 forward 63-78 against 115-119).
 *   - 8x8 planes (512 channels): F(4x4) 0.6-1.0x of F(2x2) (a 4x4 tile over 8x8 outputs leaves 4
 *     tiles an image and, at dilation 4, tiles mostly of padding): F(2x2).
 *   - 32 channels (128x128 and 256x256): F(4x4) 1.05-1.8x the speed of the direct kernels in
 *     those runs (the direct ones with outliers), but 0.9-1.3x in three more alternate runs of
 *     each (`--only "4x32x"`): no gain beyond the noise: direct.
 * So: F(4x4) where both channel counts are at least 64 and the plane at least 16x16 (dilation 1,
 * 2 or 4, padding = dilation); F(2x2) on the smaller planes as above. Its float32 error is about
 * 10x F(2x2)'s and 5x the direct kernels' (at most 1.2e-5 of the largest output on a trained
 * network's layers: winograd.test.ts).
 * The weight gradient (`AUNET_CONV2D=direct|winograd|winograd4 pnpm bench kernels --quick
 * --no-torch --no-tfjs --only "conv2d backward-weight"`, three alternate runs each, 2026-12-07,
 * ranges over the runs): F(4x4) 2-6x faster than the direct kernel on every plane from 16x16, 32
 * channels included (4x32x256x256 d1 76-125 ms against 300-318, 4x32x128x128 d1 28-64 against
 * 49-82, 4x256x32x32 d2 44-181 against 207-350); on 8x8 planes (512 channels) F(2x2) 44-81 ms,
 * F(4x4) 56-101, direct 68-231: F(2x2).
 * Without shared loads (`AUNET_WEBGPU_WITHOUT=subgroups`, same commands for `--only "k3 d1 s1"`,
 * d2 and d4, one run each, 2026-12-07) F(4x4) beat F(2x2) in all three passes at dilations 1 and
 * 2 on every plane (8x8 included: 1.1-5.4x), and at dilation 4 from 64x64 up to 0.8-3.3x (at 64x64
 * as often slower as faster) while on 32x32 and smaller it lost (0.2-0.9x): F(4x4) except at
 * dilation 4 below 64x64.
 * Never on the 'gpu' variant (not measured on a GPU).
 */
export function useWinograd(g: WinogradShape, pass: 'forward' | 'inputGrad' | 'weightGrad'): false | 2 | 4 {
  if (g.kh !== 3 || g.kw !== 3 || g.s !== 1 || algorithm === 'direct') return false;
  if (algorithm === 'winograd') return 2;
  if (algorithm === 'winograd4') return 4;
  if (tuning().name !== 'fallback') return false;
  return winogradTable(g, pass, sharedLoadsPossible());
}

/** What a 3x3 stride-1 convolution's shape says to useWinograd. */
export type WinogradShape = { kh: number; kw: number; s: number; d: number; p: number; ci: number; co: number; h: number; w: number };

/**
 * The measured table behind useWinograd on the fallback variant, with (`shared`) or without
 * subgroups of 8 for shared loads; a function of its own so that both halves are tested on any
 * adapter.
 */
export function winogradTable(g: WinogradShape, pass: 'forward' | 'inputGrad' | 'weightGrad', shared: boolean): false | 2 | 4 {
  if (g.kh !== 3 || g.kw !== 3 || g.s !== 1 || !((g.d === 1 || g.d === 2 || g.d === 4) && g.p === g.d)) return false;
  // The weight gradient was measured from 32 input channels (the network's first conv, 1 -> 32,
  // would sum mostly padding channels in its GEMM).
  if (pass === 'weightGrad' && g.ci < WINOGRAD_WEIGHT_GRAD_MIN_INPUT_CHANNELS) return false;
  // Padding = dilation: the plane is the same size in and out, for every pass.
  const plane = Math.min(g.h, g.w);
  if (!shared) return g.d === 4 && plane < 64 ? 2 : 4;
  // The GEMM's lanes run over the pass's output channels (the weight gradient's: the conv's).
  if (!shareFor(pass === 'inputGrad' ? g.ci : g.co, 1, shared)) return false;
  if (pass === 'weightGrad') return plane >= 16 ? 4 : 2;
  if (Math.min(g.ci, g.co) >= 64 && plane >= 16) return 4;
  const minChannels = pass === 'forward' && g.d === 1 ? WINOGRAD_MIN_CHANNELS_FORWARD_D1 : WINOGRAD_MIN_CHANNELS;
  return Math.min(g.ci, g.co) >= minChannels && 2;
}

/** Input channels from which the weight gradient takes Winograd (the measured range; see winogradTable). */
export const WINOGRAD_WEIGHT_GRAD_MIN_INPUT_CHANNELS = 32;
/** Channels (input and output) from which Winograd pays on the fallback variant (see useWinograd). */
export const WINOGRAD_MIN_CHANNELS = 128;
/** The same for the forward pass with dilation 1. */
export const WINOGRAD_MIN_CHANNELS_FORWARD_D1 = 64;

export function tuning(): Tuning {
  return conv2dVariantChoice().variant === 'fallback' ? FALLBACK : GPU;
}

/** How conv2d's variant was chosen, and the probe's times where it was measured (variant-probe.ts). */
export interface Conv2dVariantChoice {
  variant: 'fallback' | 'gpu';
  /** 'forced': setConv2dVariant or AUNET_CONV2D_VARIANT; 'measured': by measureConv2dVariant; 'adapter': by the adapter's CPU flag or driver. */
  how: 'forced' | 'measured' | 'adapter';
  fallbackMs?: number;
  gpuMs?: number;
}

let measured: { variant: 'fallback' | 'gpu'; fallbackMs?: number; gpuMs?: number } | null = null;

/** Record the variant measured faster on this adapter (variant-probe.ts): 'auto' takes it from then on; null forgets it. */
export function setMeasuredConv2dVariant(v: 'fallback' | 'gpu' | null, times: { fallbackMs?: number; gpuMs?: number } = {}): void {
  measured = v && { variant: v, ...times };
}

/** The variant conv2d runs now and why: forced, else measured, else by whether the adapter says it is a CPU. */
export function conv2dVariantChoice(): Conv2dVariantChoice {
  const forced = variant !== 'auto' ? variant : variantFromEnvironment();
  if (forced !== 'auto') return { variant: forced, how: 'forced' };
  if (measured) return { ...measured, how: 'measured' };
  return { variant: runtime().adapter.isFallback ? 'fallback' : 'gpu', how: 'adapter' };
}

/** One line for a user: which conv2d kernels run, and why. */
export function describeConv2dVariant(c: Conv2dVariantChoice = conv2dVariantChoice()): string {
  if (c.how === 'forced') return `conv2d: ${c.variant} kernels (forced)`;
  if (c.how === 'adapter') return `conv2d: ${c.variant} kernels (the adapter ${c.variant === 'fallback' ? 'is a CPU' : 'is not a known CPU'})`;
  return `conv2d: ${c.variant} kernels (measured: fallback ${c.fallbackMs?.toFixed(1)} ms, gpu ${c.gpuMs?.toFixed(1)} ms)`;
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
