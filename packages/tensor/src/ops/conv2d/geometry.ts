// conv2d's options and output geometry, with the checks of its inputs.

import { assertFloat } from '../../kernel';
import type { Tensor } from '../../tensor';

export interface Conv2dOptions {
  /** Step between output pixels (default 1). */
  stride?: number;
  /** Zeros added on each side of both spatial axes (default 0). */
  padding?: number;
  /** Spacing between kernel taps (default 1). */
  dilation?: number;
}

export interface Geometry {
  n: number; ci: number; h: number; w: number;
  co: number; kh: number; kw: number;
  s: number; p: number; d: number;
  ho: number; wo: number;
}

/**
 * Floating-point operations of the convolution (2 per multiply-add, every tap of every output
 * counted, padding included): the usual count, also used for each of its two gradients.
 */
export function convFlops(g: Geometry): number {
  return 2 * g.n * g.co * g.ho * g.wo * g.ci * g.kh * g.kw;
}

function positiveInt(v: number, what: string, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new Error(`conv2d: ${what} must be an integer >= ${min}, got ${v}`);
  return v;
}

export function geometry(x: Tensor, w: Tensor, b: Tensor | null, opts: Conv2dOptions): Geometry {
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

