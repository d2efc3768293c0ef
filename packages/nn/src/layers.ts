// Layers. Each holds its parameters (seeded initialisers) and calls the fused kernels of
// @aunet/tensor; tensors are NCHW float32.

import { Rng, add, channelAttention, conv2d, dualAttention, instanceNorm, instanceNormRelu, relu, sigmoid, spatialAttention, upsample2x, type Tensor } from '@aunet/tensor';
import { getDefaultRng, glorotUniform, kaimingNormal, onesInit, zerosInit, type Initializer } from './init';
import { Module, Parameter } from './module';

function makeParam(shape: number[], init: Initializer, rng: Rng): Parameter {
  return new Parameter({ data: init(shape, rng), shape });
}

/**
 * Free the intermediate `t` now if `out` (the op that consumed it) recorded nothing for autodiff,
 * which is when no backward rule can read it (no-grad mode, or nothing requires grad). Otherwise
 * `t` stays alive for backward and is freed by the caller's scope. Returns `out`.
 */
export function release(t: Tensor, out: Tensor): Tensor {
  if (!out.requiresGrad && t !== out) t.dispose();
  return out;
}

function checkInput(x: Tensor, layer: string, channels?: number): void {
  if (x.rank !== 4) throw new Error(`${layer}: expected an NCHW input of rank 4, got ${x}`);
  if (channels !== undefined && x.shape[1] !== channels) throw new Error(`${layer}: expected ${channels} input channels, got ${x.shape[1]} in ${x}`);
}

export interface Conv2dLayerOptions {
  stride?: number;
  /** Zero padding on every side; 'same' pads dilation * (kernel - 1) / 2 (odd kernels), keeping
   *  H and W at stride 1 and giving ceil(H / stride) otherwise. Default 0, as PyTorch. */
  padding?: number | 'same';
  dilation?: number;
  /** Learnable bias (default true). */
  bias?: boolean;
  /** Generator for the initial weights (default: the package generator, see `manualSeed`). */
  rng?: Rng;
  /** Weight initialiser (default He normal, fan-in, ReLU gain). */
  weightInit?: Initializer;
  /** Bias initialiser (default zeros). */
  biasInit?: Initializer;
}

/** 2-D convolution: x [N, inC, H, W] -> [N, outC, H', W'], weight [outC, inC, k, k], bias [outC]. */
export class Conv2d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly stride: number;
  readonly padding: number;
  readonly dilation: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    o: Conv2dLayerOptions = {},
  ) {
    super();
    this.stride = o.stride ?? 1;
    this.dilation = o.dilation ?? 1;
    if (o.padding === 'same') {
      if (kernelSize % 2 === 0) throw new Error(`Conv2d: padding 'same' needs an odd kernel size, got ${kernelSize}`);
      this.padding = (this.dilation * (kernelSize - 1)) / 2;
    } else this.padding = o.padding ?? 0;
    for (const [k, v] of Object.entries({ inChannels, outChannels, kernelSize, stride: this.stride, dilation: this.dilation })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`Conv2d: ${k} must be a positive integer, got ${v}`);
    }
    if (!Number.isInteger(this.padding) || this.padding < 0) throw new Error(`Conv2d: padding must be a non-negative integer, got ${this.padding}`);
    const rng = o.rng ?? getDefaultRng();
    this.weight = makeParam([outChannels, inChannels, kernelSize, kernelSize], o.weightInit ?? kaimingNormal(), rng);
    this.bias = o.bias === false ? null : makeParam([outChannels], o.biasInit ?? zerosInit(), rng);
  }

  forward(x: Tensor): Tensor {
    checkInput(x, 'Conv2d', this.inChannels);
    return conv2d(x, this.weight.value, this.bias?.value ?? null, { stride: this.stride, padding: this.padding, dilation: this.dilation });
  }
}

export interface InstanceNormOptions {
  /** Learnable per-channel scale (init 1) and shift (init 0). Default false, as PyTorch. */
  affine?: boolean;
  /** Added to the variance (default 1e-5). */
  eps?: number;
}

/**
 * Instance normalisation: each (sample, channel) plane is normalised by its own mean and biased
 * variance, y = (x - mean) / sqrt(var + eps) (* gamma + beta when affine). The same in training
 * and evaluation (no running statistics).
 */
export class InstanceNorm2d extends Module {
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  readonly eps: number;

  constructor(
    readonly channels: number,
    o: InstanceNormOptions = {},
  ) {
    super();
    this.eps = o.eps ?? 1e-5;
    const affine = o.affine ?? false;
    this.weight = affine ? makeParam([channels], onesInit(), getDefaultRng()) : null;
    this.bias = affine ? makeParam([channels], zerosInit(), getDefaultRng()) : null;
  }

  forward(x: Tensor): Tensor {
    checkInput(x, 'InstanceNorm2d', this.channels);
    return instanceNorm(x, this.weight?.value ?? null, this.bias?.value ?? null, this.eps);
  }

  /** relu(forward(x) + residual), the residual optional, as one fused op (instanceNormRelu). */
  forwardRelu(x: Tensor, residual: Tensor | null = null): Tensor {
    checkInput(x, 'InstanceNorm2d', this.channels);
    return instanceNormRelu(x, this.weight?.value ?? null, this.bias?.value ?? null, residual, this.eps);
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return sigmoid(x);
  }
}

/** Nearest-neighbour up-sampling by 2 in H and W: [N, C, H, W] -> [N, C, 2H, 2W]. */
export class Upsample2x extends Module {
  forward(x: Tensor): Tensor {
    checkInput(x, 'Upsample2x');
    return upsample2x(x);
  }
}

export interface AttentionOptions {
  rng?: Rng;
}

/**
 * Channel attention, Zc = Z * sigmoid(W2 relu(W1 GAP(Z) + b1) + b2) per sample and channel, with
 * w1 [C/r, C], b1 [C/r], w2 [C, C/r], b2 [C]; reduction r = 2 by default. (The paper writes
 * W1 relu(W2 ...): its W2 is our w1, the squeeze.) w1 is He-initialised (ReLU follows), w2
 * Glorot (sigmoid follows), biases zero.
 */
export class ChannelAttention extends Module {
  readonly w1: Parameter;
  readonly b1: Parameter;
  readonly w2: Parameter;
  readonly b2: Parameter;
  readonly hidden: number;

  constructor(
    readonly channels: number,
    o: AttentionOptions & { reduction?: number } = {},
  ) {
    super();
    const r = o.reduction ?? 2;
    this.hidden = Math.max(1, Math.floor(channels / r));
    const rng = o.rng ?? getDefaultRng();
    this.w1 = makeParam([this.hidden, channels], kaimingNormal(), rng);
    this.b1 = makeParam([this.hidden], zerosInit(), rng);
    this.w2 = makeParam([channels, this.hidden], glorotUniform(), rng);
    this.b2 = makeParam([channels], zerosInit(), rng);
  }

  forward(x: Tensor): Tensor {
    checkInput(x, 'ChannelAttention', this.channels);
    return channelAttention(x, this.w1.value, this.b1.value, this.w2.value, this.b2.value);
  }

  /** The parameters in the form the fused kernels take. */
  kernelParams() {
    return { w1: this.w1.value, b1: this.b1.value, w2: this.w2.value, b2: this.b2.value };
  }
}

/**
 * Spatial attention, Zs = Z * sigmoid(conv1x1(Z -> 1 channel)): one weight per channel w [C] and
 * a bias b [1] (Glorot / zero initialised).
 */
export class SpatialAttention extends Module {
  readonly w: Parameter;
  readonly b: Parameter;

  constructor(
    readonly channels: number,
    o: AttentionOptions = {},
  ) {
    super();
    const rng = o.rng ?? getDefaultRng();
    this.w = makeParam([channels], glorotUniform(), rng);
    this.b = makeParam([1], zerosInit(), rng);
  }

  forward(x: Tensor): Tensor {
    checkInput(x, 'SpatialAttention', this.channels);
    return spatialAttention(x, this.w.value, this.b.value);
  }

  kernelParams() {
    return { w: this.w.value, b: this.b.value };
  }
}

/** Dual attention as in the paper: Zc + Zs (channel and spatial attention of the same input, summed), one fused kernel. */
export class DualAttention extends Module {
  readonly channel: ChannelAttention;
  readonly spatial: SpatialAttention;

  constructor(
    readonly channels: number,
    o: AttentionOptions & { reduction?: number } = {},
  ) {
    super();
    this.channel = new ChannelAttention(channels, o);
    this.spatial = new SpatialAttention(channels, o);
  }

  forward(x: Tensor): Tensor {
    checkInput(x, 'DualAttention', this.channels);
    return dualAttention(x, this.channel.kernelParams(), this.spatial.kernelParams());
  }
}

export interface ResDilBlockOptions {
  /** Dilation rates of the two 3x3 convolutions (default [2, 4], as the paper). */
  dilations?: [number, number];
  /** Affine instance norms (default true). */
  affine?: boolean;
  eps?: number;
  rng?: Rng;
}

/**
 * The paper's res_dil block, in this order (a ResNet basic block with dilated convolutions):
 *
 *   y = relu( IN2(conv2(relu(IN1(conv1(x))))) + x )
 *
 * conv1, conv2: 3x3, C -> C, dilations [2, 4] by default, padding = dilation (H and W kept), no
 * bias (the instance norm that follows removes any per-channel constant); IN1, IN2: instance
 * norms, affine by default. The identity shortcut needs no projection since channels are kept.
 */
export class ResDilBlock extends Module {
  readonly conv1: Conv2d;
  readonly norm1: InstanceNorm2d;
  readonly conv2: Conv2d;
  readonly norm2: InstanceNorm2d;

  constructor(
    readonly channels: number,
    o: ResDilBlockOptions = {},
  ) {
    super();
    const [d1, d2] = o.dilations ?? [2, 4];
    const rng = o.rng ?? getDefaultRng();
    const norm = { affine: o.affine ?? true, eps: o.eps };
    this.conv1 = new Conv2d(channels, channels, 3, { dilation: d1, padding: 'same', bias: false, rng });
    this.norm1 = new InstanceNorm2d(channels, norm);
    this.conv2 = new Conv2d(channels, channels, 3, { dilation: d2, padding: 'same', bias: false, rng });
    this.norm2 = new InstanceNorm2d(channels, norm);
  }

  forward(x: Tensor): Tensor {
    checkInput(x, 'ResDilBlock', this.channels);
    const c1 = this.conv1.forward(x);
    const r1 = release(c1, this.norm1.forwardRelu(c1));
    const c2 = release(r1, this.conv2.forward(r1));
    return release(c2, this.norm2.forwardRelu(c2, x));
  }
}

/** Modules applied in order; children are named "0", "1", ... */
export class Sequential extends Module {
  readonly layers: Module[];

  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
  }

  /** Names children "0", "1", ... rather than "layers.0". */
  protected override *entries(): Generator<[string, Parameter | Module<any, any>]> {
    for (let i = 0; i < this.layers.length; i++) yield [String(i), this.layers[i]];
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (const layer of this.layers) {
      const next = layer.forward(y);
      y = y === x ? next : release(y, next);
    }
    return y;
  }

  get length(): number {
    return this.layers.length;
  }

  at(i: number): Module {
    return this.layers[i];
  }
}

/**
 * Deep supervision: a 1x1 convolution (with bias) per decoder level maps its features to
 * `outChannels` logits; each level's map is up-sampled by nearest-neighbour x2 until it reaches
 * the finest resolution, and the maps are summed:
 *
 *   out = sum_i up^i(conv1x1_i(f_i))
 *
 * Input: the features of each level, finest first: f_0 [N, c_0, H, W], f_1 [N, c_1, H/2, W/2], ...
 * (`channelsPerLevel` lists c_i in the same order). Computed coarse to fine as
 * acc = up(acc) + conv1x1_i(f_i), which equals the sum above because up-sampling is linear,
 * with one up-sampling per level instead of i.
 */
export class DeepSupervisionHead extends Module<Tensor[], Tensor> {
  readonly convs: Conv2d[];

  constructor(
    readonly channelsPerLevel: number[],
    readonly outChannels = 1,
    o: { rng?: Rng } = {},
  ) {
    super();
    if (!channelsPerLevel.length) throw new Error('DeepSupervisionHead: needs at least one level');
    const rng = o.rng ?? getDefaultRng();
    this.convs = channelsPerLevel.map((c) => new Conv2d(c, outChannels, 1, { rng, weightInit: glorotUniform() }));
  }

  forward(levels: Tensor[]): Tensor {
    return this.run(levels, false).output;
  }

  /**
   * The summed output as `forward` gives it, and each level's own logit map up-sampled (nearest)
   * to the finest level's size, finest first: what a loss on every side output reads. The sides
   * add up to the output (nearest up-sampling is linear), up to rounding. Unlike `forward` it
   * keeps its intermediate maps: without autodiff, call it inside a `scope`, which frees them.
   */
  forwardWithSides(levels: Tensor[]): { output: Tensor; sides: Tensor[] } {
    return this.run(levels, true) as { output: Tensor; sides: Tensor[] };
  }

  private run(levels: Tensor[], withSides: boolean): { output: Tensor; sides?: Tensor[] } {
    const L = this.convs.length;
    if (levels.length !== L) throw new Error(`DeepSupervisionHead: expected ${L} levels (finest first), got ${levels.length}`);
    const [n, , h, w] = levels[0].shape;
    levels.forEach((f, i) => {
      checkInput(f, `DeepSupervisionHead level ${i}`, this.channelsPerLevel[i]);
      const hi = h / 2 ** i;
      const wi = w / 2 ** i;
      if (f.shape[0] !== n || f.shape[2] !== hi || f.shape[3] !== wi) {
        throw new Error(`DeepSupervisionHead: level ${i} is ${f}, expected [${n}, ${this.channelsPerLevel[i]}, ${hi}, ${wi}] (level 0 halved ${i} times)`);
      }
    });
    if (!withSides) {
      let acc = this.convs[L - 1].forward(levels[L - 1]);
      for (let i = L - 2; i >= 0; i--) {
        const up = release(acc, upsample2x(acc));
        const o = this.convs[i].forward(levels[i]);
        acc = release(o, release(up, add(up, o)));
      }
      return { output: acc };
    }
    // The same sum in the same order, each level's map kept and brought to full size on its own.
    const own = this.convs.map((conv, i) => conv.forward(levels[i]));
    let acc = own[L - 1];
    for (let i = L - 2; i >= 0; i--) acc = add(upsample2x(acc), own[i]);
    const sides = own.map((o, i) => {
      let s = o;
      for (let k = 0; k < i; k++) s = upsample2x(s);
      return s;
    });
    return { output: acc, sides };
  }
}
