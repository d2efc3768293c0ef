// The AU-Net of Zhou, Canu and Ruan (2020) and the plain U-Net it is compared with, built from
// @aunet/nn's layers. Browser-safe: no Node imports, no WGSL.

import { Conv2d, DeepSupervisionHead, DualAttention, InstanceNorm2d, Module, ResDilBlock, release } from '@aunet/nn';
import { concat, profileSection, upsample2x, type Tensor } from '@aunet/tensor';

/** 'aunet': with dual attention; 'unet': the same network without it (Table 1's U-Net). */
export type Architecture = 'aunet' | 'unet';
export const ARCHITECTURES: readonly Architecture[] = ['aunet', 'unet'];

/** Everything needed to rebuild a model; stored in every checkpoint's metadata. */
export interface ModelConfig {
  architecture: Architecture;
  /** Input channels (1 for CT). */
  inChannels: number;
  /** Filters per level, finest first; the paper's are 32, 64, 128, 256, 512. */
  filters: number[];
  /** Dilation rates of the two convolutions of every res_dil block. */
  dilations: [number, number];
  /** Channel attention's reduction ratio. */
  reduction: number;
  /** How many decoder levels, finest first, feed the deep-supervision sum (1 = no deep supervision). */
  deepSupervision: number;
  /** Side of the square input slices (a multiple of 2^(levels - 1)). */
  inputSize: number;
}

export const PAPER_FILTERS = [32, 64, 128, 256, 512];

/** The paper's network at the given input size. */
export function defaultModelConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  const filters = overrides.filters ?? [...PAPER_FILTERS];
  // Three supervised decoder levels, or as many as fewer levels have.
  const deepSupervision = Math.max(1, Math.min(3, filters.length - 1));
  return { architecture: 'aunet', inChannels: 1, filters, dilations: [2, 4], reduction: 2, deepSupervision, inputSize: 128, ...overrides };
}

/** Throws an Error naming every field of `c` that cannot build a network. */
export function validateModelConfig(c: ModelConfig): void {
  const bad: string[] = [];
  if (!ARCHITECTURES.includes(c.architecture)) bad.push(`architecture must be "aunet" or "unet", got ${JSON.stringify(c.architecture)}`);
  if (!Number.isInteger(c.inChannels) || c.inChannels < 1) bad.push(`inChannels must be a positive integer, got ${c.inChannels}`);
  if (!Array.isArray(c.filters) || c.filters.length < 2 || !c.filters.every((f) => Number.isInteger(f) && f >= 2)) {
    bad.push(`filters must list at least 2 levels of at least 2 channels each, got ${JSON.stringify(c.filters)}`);
  }
  const levels = Array.isArray(c.filters) ? c.filters.length : 0;
  const step = 2 ** Math.max(0, levels - 1);
  if (!Number.isInteger(c.inputSize) || c.inputSize < step || c.inputSize % step !== 0) {
    bad.push(`inputSize must be a positive multiple of ${step} (${levels} levels halve it ${levels - 1} times), got ${c.inputSize}`);
  }
  if (!Number.isInteger(c.deepSupervision) || c.deepSupervision < 1 || c.deepSupervision > levels - 1) {
    bad.push(`deepSupervision must be 1..${levels - 1} decoder levels, got ${c.deepSupervision}`);
  }
  if (!Array.isArray(c.dilations) || c.dilations.length !== 2 || !c.dilations.every((d) => Number.isInteger(d) && d >= 1)) {
    bad.push(`dilations must be two positive integers, got ${JSON.stringify(c.dilations)}`);
  }
  if (!Number.isInteger(c.reduction) || c.reduction < 1) bad.push(`reduction must be a positive integer, got ${c.reduction}`);
  if (bad.length) throw new Error(`invalid model config: ${bad.join('; ')}`);
}

/** 3x3 convolution (no bias: the instance norm removes it), affine instance norm, ReLU. */
export class ConvBlock extends Module {
  readonly conv: Conv2d;
  readonly norm: InstanceNorm2d;

  constructor(inChannels: number, outChannels: number, stride = 1) {
    super();
    this.conv = new Conv2d(inChannels, outChannels, 3, { stride, padding: 1, bias: false });
    this.norm = new InstanceNorm2d(outChannels, { affine: true });
  }

  forward(x: Tensor): Tensor {
    const c = this.conv.forward(x);
    return release(c, this.norm.forwardRelu(c));
  }
}

/** One encoder level: conv block (stride 2 below the first level), res_dil block, attention. */
export class EncoderLevel extends Module {
  readonly block: ConvBlock;
  readonly resDil: ResDilBlock;
  readonly attention: DualAttention | null;

  constructor(inChannels: number, channels: number, stride: number, c: ModelConfig) {
    super();
    this.block = new ConvBlock(inChannels, channels, stride);
    this.resDil = new ResDilBlock(channels, { dilations: c.dilations });
    this.attention = c.architecture === 'aunet' ? new DualAttention(channels, { reduction: c.reduction }) : null;
  }

  forward(x: Tensor): Tensor {
    const b = this.block.forward(x);
    const r = release(b, this.resDil.forward(b));
    return this.attention ? release(r, this.attention.forward(r)) : r;
  }
}

/**
 * One decoder level: up-sample x2 (nearest), 3x3 conv block halving the channels, concatenation
 * with the encoder's skip (skip first), a 3x3 conv block fusing the 2C channels back to C,
 * res_dil block, attention.
 */
export class DecoderLevel extends Module<[Tensor, Tensor], Tensor> {
  readonly up: ConvBlock;
  readonly fuse: ConvBlock;
  readonly resDil: ResDilBlock;
  readonly attention: DualAttention | null;

  constructor(inChannels: number, channels: number, c: ModelConfig) {
    super();
    this.up = new ConvBlock(inChannels, channels);
    this.fuse = new ConvBlock(2 * channels, channels);
    this.resDil = new ResDilBlock(channels, { dilations: c.dilations });
    this.attention = c.architecture === 'aunet' ? new DualAttention(channels, { reduction: c.reduction }) : null;
  }

  forward([x, skip]: [Tensor, Tensor]): Tensor {
    const u = upsample2x(x);
    const h = release(u, this.up.forward(u));
    const cat = release(h, concat([skip, h], 1));
    const f = release(cat, this.fuse.forward(cat));
    const r = release(f, this.resDil.forward(f));
    return this.attention ? release(r, this.attention.forward(r)) : r;
  }
}

/**
 * AU-Net (and, with `architecture: 'unet'`, the same U-Net without attention). Input [N, inChannels, S, S]
 * (S = `inputSize`), output lesion logits [N, 1, S, S] (apply sigmoid for probabilities).
 *
 * The paper leaves these open; the choices made here:
 * - Encoder level 0: conv block (3x3 conv, instance norm, ReLU) from the input to filters[0];
 *   levels 1..L-1: the same block with stride 2 (the paper's down-sampling, no pooling), from
 *   filters[l-1] to filters[l]. Each level then has a res_dil block and (AU-Net) dual attention.
 *   The deepest level (filters[L-1], S / 2^(L-1)) is the bottleneck.
 * - res_dil block: y = relu(IN(conv_d2(relu(IN(conv_d1(x))))) + x), dilations 2 and 4, affine
 *   instance norms (see `ResDilBlock` in @aunet/nn).
 * - Decoder level l (deepest first): nearest up-sampling x2, conv block halving the channels
 *   (filters[l+1] -> filters[l]), concatenation [skip_l, up], conv block 2 filters[l] ->
 *   filters[l] (the fusion), res_dil block, dual attention. Attention so sits after every level
 *   of encoder and decoder, after its res_dil block.
 * - Attention: Zc + Zs, channel attention with reduction 2 and spatial attention (1x1 conv to one
 *   channel), as the paper's figure.
 * - Deep supervision: a 1x1 conv to one logit map on each of the `deepSupervision` finest decoder
 *   levels (default 3: full, 1/2 and 1/4 resolution), up-sampled (nearest) to full resolution and
 *   summed into the single output. `deepSupervision: 1` is a plain 1x1 head. The trainer's loss
 *   reads that sum (`deepSupervisionLoss: 'summed'`) or, with 'levels', also each level's own map
 *   (`forwardWithSides`; see step.ts).
 * - Convolutions followed by instance norm have no bias; instance norms are affine.
 * With the paper's filters this gives 13.0 M parameters (AU-Net) and 12.6 M (U-Net).
 */
export class AUNet extends Module {
  readonly encoder: EncoderLevel[];
  readonly decoder: DecoderLevel[];
  readonly head: DeepSupervisionHead;

  constructor(readonly config: ModelConfig) {
    super();
    validateModelConfig(config);
    const f = config.filters;
    this.encoder = f.map((c, l) => new EncoderLevel(l === 0 ? config.inChannels : f[l - 1], c, l === 0 ? 1 : 2, config));
    // decoder[l] produces level l (l = 0 finest), from level l + 1.
    this.decoder = f.slice(0, -1).map((c, l) => new DecoderLevel(f[l + 1], c, config));
    this.head = new DeepSupervisionHead(f.slice(0, config.deepSupervision), 1);
  }

  forward(x: Tensor): Tensor {
    const supervised = this.decode(x);
    const y = profileSection('head', () => this.head.forward(supervised));
    if (!y.requiresGrad) for (const t of supervised) t.dispose();
    return y;
  }

  /**
   * For a loss on every side output (`--deep-supervision levels`): the output `forward` gives and
   * each supervised decoder level's own logit map, up-sampled to the input's size, finest first.
   */
  forwardWithSides(x: Tensor): { output: Tensor; sides: Tensor[] } {
    const supervised = this.decode(x);
    const r = profileSection('head', () => this.head.forwardWithSides(supervised));
    if (!r.output.requiresGrad) for (const t of supervised) t.dispose();
    return r;
  }

  /** Encoder and decoder: the outputs of the decoder levels the head reads, finest first. */
  private decode(x: Tensor): Tensor[] {
    const { inChannels, inputSize } = this.config;
    if (x.rank !== 4 || x.shape[1] !== inChannels || x.shape[2] !== inputSize || x.shape[3] !== inputSize) {
      throw new Error(`AUNet: expected input [N, ${inChannels}, ${inputSize}, ${inputSize}], got ${x}`);
    }
    const L = this.encoder.length;
    const skips: Tensor[] = [];
    let h = x;
    // Profile sections name the levels: enc<l> and dec<l> work at 1/2^l of the input's side.
    this.encoder.forEach((level, l) => {
      h = profileSection(`enc${l}`, () => level.forward(h));
      skips.push(h);
    });
    // Decoder, deepest first; keep the outputs of the levels the head reads.
    const outputs: Tensor[] = new Array(L - 1);
    for (let l = L - 2; l >= 0; l--) {
      const below = l === L - 2 ? skips[L - 1] : outputs[l + 1];
      outputs[l] = profileSection(`dec${l}`, () => this.decoder[l].forward([below, skips[l]]));
      // Without autodiff, what this level consumed is no longer needed: its skip, and the level
      // below unless the head still reads it (the bottleneck never feeds the head).
      if (!outputs[l].requiresGrad) {
        if (l + 1 >= this.config.deepSupervision || l === L - 2) below.dispose();
        skips[l].dispose();
      }
    }
    return outputs.slice(0, this.config.deepSupervision);
  }
}
