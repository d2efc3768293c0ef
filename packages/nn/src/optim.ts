// Optimisers and training-loop helpers: Adam on the fused `adamStep` kernel, ReduceLROnPlateau,
// EarlyStopping with host copies of the best weights.

import { Tensor, adamStep, keep, zeros, type Shape } from '@aunet/tensor';
import { Module, Parameter } from './module';

export interface AdamOptions {
  /** Learning rate (default 1e-3). */
  lr?: number;
  /** Decay rates of the first and second moment estimates (default [0.9, 0.999]). */
  betas?: [number, number];
  /** Added to the denominator (default 1e-8). */
  eps?: number;
  /** L2 penalty (default 0). Added to the gradient (Adam), or applied to the weights directly
   *  when `decoupled` is true (AdamW). */
  weightDecay?: number;
  /** Decoupled weight decay, as AdamW (default false). */
  decoupled?: boolean;
}

/** The moments of one parameter. */
export interface AdamParamState {
  m: Tensor;
  v: Tensor;
}

/**
 * Adam (Kingma & Ba), as PyTorch's torch.optim.Adam:
 *   t += 1; g += wd * p (unless decoupled: p -= lr * wd * p);
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * one fused in-place kernel per parameter. Parameters without a gradient are skipped (their
 * moments do not decay), as in PyTorch. The moments are allocated (zeros) when the optimiser is
 * made, so a checkpoint always has a complete state.
 */
export class Adam {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decoupled: boolean;
  /** Number of steps taken (the `t` of the bias corrections). */
  stepCount = 0;
  readonly params: Parameter[];
  private readonly moments = new Map<Parameter, AdamParamState>();

  constructor(params: Parameter[] | Module<any, any>, options: AdamOptions = {}) {
    this.params = params instanceof Module ? params.parameters() : [...new Set(params)];
    this.lr = options.lr ?? 1e-3;
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    this.decoupled = options.decoupled ?? false;
    if (!(this.lr >= 0)) throw new Error(`Adam: invalid learning rate ${this.lr}`);
    for (const b of [this.beta1, this.beta2]) if (!(b >= 0 && b < 1)) throw new Error(`Adam: betas must be in [0, 1), got [${this.beta1}, ${this.beta2}]`);
    for (const p of this.params) this.moments.set(p, { m: keep(zeros(p.shape)), v: keep(zeros(p.shape)) });
  }

  /** Update every parameter that has a gradient (encodes the kernels; does not wait). */
  step(): void {
    this.stepCount++;
    for (const p of this.params) {
      const g = p.grad;
      if (!g) continue;
      const s = this.moments.get(p)!;
      adamStep(p.value, g, s.m, s.v, {
        lr: this.lr,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        step: this.stepCount,
        weightDecay: this.weightDecay,
        decoupled: this.decoupled,
      });
    }
  }

  /** Free every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  /** The moments of `p` (throws if `p` is not one of this optimiser's parameters). */
  stateOf(p: Parameter): AdamParamState {
    const s = this.moments.get(p);
    if (!s) throw new Error(`Adam: ${p} is not one of this optimiser's parameters`);
    return s;
  }

  /** The state for checkpoints: step count, hyper-parameters and per-parameter moments. */
  get state(): { step: number; lr: number; betas: [number, number]; eps: number; weightDecay: number; decoupled: boolean; moments: Map<Parameter, AdamParamState> } {
    return { step: this.stepCount, lr: this.lr, betas: [this.beta1, this.beta2], eps: this.eps, weightDecay: this.weightDecay, decoupled: this.decoupled, moments: this.moments };
  }

  /** Free the moments. */
  dispose(): void {
    for (const s of this.moments.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.moments.clear();
  }
}

/** Anything with a settable learning rate. */
export interface HasLearningRate {
  lr: number;
}

export type Mode = 'min' | 'max';

function isBetter(mode: Mode, value: number, best: number, rel: number, abs: number): boolean {
  if (mode === 'min') return value < best * (1 - rel) - abs || (best === Infinity && value < Infinity);
  return value > best * (1 + rel) + abs || (best === -Infinity && value > -Infinity);
}

export interface ReduceLROnPlateauOptions {
  /** 'min' when lower is better (a loss), 'max' when higher is (Dice). Default 'min'. */
  mode?: Mode;
  /** Multiply the rate by this on a plateau (default 0.1). */
  factor?: number;
  /** Epochs without improvement tolerated; the rate drops on the next one (default 10). */
  patience?: number;
  /** Lower bound on the rate (default 0). */
  minLr?: number;
  /** Least improvement that counts (default 1e-4). */
  threshold?: number;
  /** 'rel': better than best * (1 -/+ threshold) (default, as PyTorch); 'abs': best -/+ threshold. */
  thresholdMode?: 'rel' | 'abs';
  /** Epochs to wait after a reduction before counting again (default 0). */
  cooldown?: number;
}

/** Multiply the learning rate by `factor` when the metric has not improved for more than
 *  `patience` epochs, as torch.optim.lr_scheduler.ReduceLROnPlateau. */
export class ReduceLROnPlateau {
  readonly mode: Mode;
  readonly factor: number;
  readonly patience: number;
  readonly minLr: number;
  readonly threshold: number;
  readonly thresholdMode: 'rel' | 'abs';
  readonly cooldown: number;
  best: number;
  numBadEpochs = 0;
  cooldownCounter = 0;

  constructor(
    readonly optimizer: HasLearningRate,
    o: ReduceLROnPlateauOptions = {},
  ) {
    this.mode = o.mode ?? 'min';
    this.factor = o.factor ?? 0.1;
    this.patience = o.patience ?? 10;
    this.minLr = o.minLr ?? 0;
    this.threshold = o.threshold ?? 1e-4;
    this.thresholdMode = o.thresholdMode ?? 'rel';
    this.cooldown = o.cooldown ?? 0;
    if (!(this.factor > 0 && this.factor < 1)) throw new Error(`ReduceLROnPlateau: factor must be in (0, 1), got ${this.factor}`);
    this.best = this.mode === 'min' ? Infinity : -Infinity;
  }

  /** Report the epoch's metric; returns true when the rate was reduced. NaN counts as no improvement. */
  step(metric: number): boolean {
    const rel = this.thresholdMode === 'rel' ? this.threshold : 0;
    const abs = this.thresholdMode === 'abs' ? this.threshold : 0;
    if (isBetter(this.mode, metric, this.best, rel, abs)) {
      this.best = metric;
      this.numBadEpochs = 0;
    } else {
      this.numBadEpochs++;
    }
    if (this.cooldownCounter > 0) {
      this.cooldownCounter--;
      this.numBadEpochs = 0;
    }
    if (this.numBadEpochs > this.patience) {
      this.numBadEpochs = 0;
      this.cooldownCounter = this.cooldown;
      const next = Math.max(this.optimizer.lr * this.factor, this.minLr);
      if (this.optimizer.lr - next > 1e-12 * this.optimizer.lr) {
        this.optimizer.lr = next;
        return true;
      }
    }
    return false;
  }

  get lr(): number {
    return this.optimizer.lr;
  }
}

export interface EarlyStoppingOptions {
  /** Epochs without improvement before stopping (default 50). */
  patience?: number;
  /** 'min' when lower is better, 'max' when higher is. Default 'min'. */
  mode?: Mode;
  /** Least change that counts as an improvement (default 0). */
  minDelta?: number;
}

/**
 * Stop when the metric has not improved by more than `minDelta` for `patience` epochs. Keeps host
 * copies of the weights of the best epoch (read back when it improves) and can write them back
 * into the module.
 */
export class EarlyStopping {
  readonly patience: number;
  readonly mode: Mode;
  readonly minDelta: number;
  best: number;
  bestEpoch = -1;
  epoch = -1;
  wait = 0;
  stopped = false;
  private bestWeights: Map<string, { shape: number[]; data: Float32Array }> | null = null;

  constructor(o: EarlyStoppingOptions = {}) {
    this.patience = o.patience ?? 50;
    this.mode = o.mode ?? 'min';
    this.minDelta = Math.abs(o.minDelta ?? 0);
    this.best = this.mode === 'min' ? Infinity : -Infinity;
  }

  /**
   * Report the epoch's metric (and the module, whose weights are copied when the metric improves).
   * Returns true when training should stop.
   */
  async step(metric: number, module?: Module<any, any>): Promise<boolean> {
    this.epoch++;
    if (isBetter(this.mode, metric, this.best, 0, this.minDelta)) {
      this.best = metric;
      this.bestEpoch = this.epoch;
      this.wait = 0;
      if (module) this.bestWeights = await module.stateDict();
    } else {
      this.wait++;
      if (this.wait >= this.patience) this.stopped = true;
    }
    return this.stopped;
  }

  /** Whether best weights have been recorded. */
  get hasBest(): boolean {
    return this.bestWeights !== null;
  }

  /** Host copies of the best weights, by parameter name. */
  get bestState(): ReadonlyMap<string, { shape: number[]; data: Float32Array }> | null {
    return this.bestWeights;
  }

  /** Write the best weights back into `module` (same names and shapes as the one recorded). */
  restore(module: Module<any, any>): void {
    if (!this.bestWeights) throw new Error('EarlyStopping.restore: no weights recorded yet (call step(metric, module) first)');
    const mismatch: string[] = [];
    const params = module.namedParameters();
    for (const [name, p] of params) {
      const w = this.bestWeights.get(name);
      if (!w) mismatch.push(`"${name}" has no recorded weights`);
      else if (!sameShape(w.shape, p.shape)) mismatch.push(`"${name}": recorded [${w.shape}], module [${p.shape}]`);
    }
    const names = new Set(params.map(([n]) => n));
    for (const n of this.bestWeights.keys()) if (!names.has(n)) mismatch.push(`"${n}" is recorded but not in the module`);
    if (mismatch.length) throw new Error(`EarlyStopping.restore: the module does not match the recorded weights:\n  ${mismatch.join('\n  ')}`);
    for (const [name, p] of params) p.assign(this.bestWeights.get(name)!.data);
  }
}

function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
