// 2-D convolution, NCHW float32, weights [Cout, Cin, kh, kw], zero padding, stride, dilation;
// forward, input gradient and weight gradient, each with its own kernel.
//
// How the kernels are built (the measurements behind these choices are in the benchmarks' README):
// - Weights are re-laid out per call (they are small) so that one vec4 load brings one tap of
//   4 output channels: lanes run over groups of 4 output channels.
// - Each invocation computes a tile of PW pixels x PR rows for its 4 channels (register
//   blocking). The tap structure (kernel size, stride, dilation) is unrolled at code-generation
//   time, so an input row is loaded once as a few aligned vec4s and every value is picked from
//   them by a constant swizzle; rows that several (output row, kernel row) pairs need are loaded
//   once. With dilation d and stride 1 a tile's rows are spaced d apart, so rows are shared for
//   every d (unless the plane is too small for spaced tiles, see rowSpacing).
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
// - 3x3 stride-1 convs with enough channels take Winograd F(4x4, 3x3) or F(2x2, 3x3) for the
//   forward pass, the input gradient and the weight gradient instead (winograd.ts; which shapes
//   and which tile: useWinograd in tuning.ts, by measurement).
// - 1x1 kernels with stride 1, no padding and at most 4 output channels have their own kernels
//   with lanes over pixels (see "1x1 kernels with few output channels" below).
// - Pipelines depend only on (kernel size, stride, dilation, padding mod 4 and mod stride, tile
//   sizes, whether rows are whole vec4s); shapes are uniforms.
//
// Variants (`setConv2dVariant`, default by `runtime().adapter.isFallback`):
// - 'fallback' (lavapipe and other CPU adapters): tiles of 8 x 4 pixels (forward, input
//   gradient; 8 x 8 for the input gradient of 3x3 kernels with stride 1 and dilation 1 or 2, see
//   inputGradTile), 8 x 2 pixels x 8 input channels (weight gradient), shared subgroup loads when
//   subgroups of exactly 8 lanes are available and there are at least ~24 output channels.
//   Register blocking far past the register file still pays there; measured best of the sizes
//   tried. The price: big unrolled kernels that take lavapipe seconds each to compile the
//   first time (Mesa's on-disk shader cache keeps them afterwards).
// - 'gpu': tiles of 4 x 2 pixels and one input channel per weight-gradient invocation, padded
//   copies, no subgroup tricks, so that an invocation stays within a few dozen registers and
//   occupancy is high. Not measured on a GPU here (none was available); tested on lavapipe.
//
// Files: tuning.ts (variants), geometry.ts (options, output size, checks), taps.ts (tap planning
// and the load / multiply-add code built from it), correlation.ts (forward and input gradient),
// weight-grad.ts, helpers.ts (padding, re-layouts, partial sums), pointwise.ts (the 1x1 family),
// winograd.ts (Winograd F(2x2, 3x3) and F(4x4, 3x3), forward, input gradient and weight gradient).

import { record } from '../../autograd';
import { Tensor } from '../../tensor';
import { sumRaw } from '../primitives';
import { forwardRaw, inputGradRaw } from './correlation';
import { geometry, type Conv2dOptions } from './geometry';
import { forward1x1, inputGrad1x1, isSmall1x1, weightGrad1x1 } from './pointwise';
import { useWinograd } from './tuning';
import { weightGradRaw } from './weight-grad';
import { winogradForward, winogradInputGrad, winogradWeightGrad } from './winograd';

export { conv2dVariantChoice, describeConv2dVariant, setConv2dAlgorithm, setConv2dVariant, setMeasuredConv2dVariant, type Conv2dVariantChoice } from './tuning';
export type { Conv2dOptions } from './geometry';

/**
 * 2-D convolution (cross-correlation, as in PyTorch) of x [N, Cin, H, W] with w [Cout, Cin, kh, kw]
 * plus an optional bias [Cout]: y [N, Cout, Ho, Wo] with Ho = floor((H + 2p - d(kh-1) - 1)/s) + 1
 * (likewise Wo). Zero padding p on every side, stride s, dilation d. Differentiable in x, w and b.
 */
export function conv2d(x: Tensor, w: Tensor, b: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  const g = geometry(x, w, b, opts);
  const small = isSmall1x1(g);
  const tileForward = small ? false : useWinograd(g, 'forward');
  const y = small ? forward1x1(x, w, b, g) : ((tileForward && winogradForward(x, w, b, g, tileForward)) || forwardRaw(x, w, b, g));
  const inputs = b ? [x, w, b] : [x, w];
  return record(y, 'conv2d', inputs, (gy) => {
    const tileInput = small ? false : useWinograd(g, 'inputGrad');
    const dx = x.requiresGrad ? (small ? inputGrad1x1(gy, w, g) : ((tileInput && winogradInputGrad(gy, w, g, tileInput)) || inputGradRaw(gy, w, g))) : null;
    const tileWeight = small ? false : useWinograd(g, 'weightGrad');
    const dw = w.requiresGrad ? (small ? weightGrad1x1(x, gy, g) : ((tileWeight && winogradWeightGrad(x, gy, g, tileWeight)) || weightGradRaw(x, gy, g))) : null;
    if (!b) return [dx, dw];
    return [dx, dw, b.requiresGrad ? sumRaw(gy, [0, 2, 3], 1, 'conv2d backward (bias)') : null];
  });
}

