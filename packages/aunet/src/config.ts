// One typed training configuration with the paper's defaults, the presets, and their checks.
// Browser-safe. The whole config is stored in every checkpoint, so a checkpoint alone rebuilds
// its model and its data split.

import { splitCases, splitFromFile, splitSlices, type CaseRange, type GivenSplit, type Split } from './data/split';
import { defaultModelConfig, validateModelConfig, type ModelConfig } from './model';

export type LossName = 'ftl' | 'dice';
/** `basic`: mirrors, quarter turns, intensity jitter. `full`: also small rotations and zooms. */
export type AugmentName = 'none' | 'basic' | 'full';
export const AUGMENT_NAMES: readonly AugmentName[] = ['none', 'basic', 'full'];
export type PresetName = 'cpu' | 'paper';
/** Where the loss reads the network: its summed output alone, or also each deep-supervision level's own map (step.ts). */
export type DeepSupervisionLoss = 'summed' | 'levels';
export const DEEP_SUPERVISION_LOSSES: readonly DeepSupervisionLoss[] = ['summed', 'levels'];

export interface TrainConfig {
  preset: PresetName;
  model: ModelConfig;
  loss: LossName;
  /** Focal Tversky: alpha weighs false negatives, beta false positives, gamma the focus. */
  alpha: number;
  beta: number;
  gamma: number;
  batch: number;
  /** Most epochs to run (early stopping may end sooner). */
  epochs: number;
  /** Adam's learning rate. */
  lr: number;
  /** Halve the rate after this many epochs without validation improvement. */
  lrPatience: number;
  lrFactor: number;
  /** Stop after this many epochs without validation improvement. */
  earlyStopping: number;
  seed: number;
  /** Fraction of the slices held out for testing (ignored with a fold). */
  testFraction: number;
  /** Fraction of the remaining slices used for validation. */
  valFraction: number;
  /** k-fold cross-validation: fold k (1-based) of K is the test part. */
  fold: { k: number; K: number } | null;
  /**
   * Train on every slice (the model to ship): no validation or test split, so no plateau
   * schedule (the lr stays `lr`), no early stopping and no best checkpoint; the run trains
   * exactly `epochs` epochs and its model is last.safetensors. Excludes `fold`.
   */
  allSlices: boolean;
  /** Random changes to the training slices: {@link AugmentName}; the options are `BASIC_AUGMENT` and `FULL_AUGMENT` in data/transforms.ts. */
  augment: AugmentName;
  /**
   * 'summed': one loss on the summed deep-supervision output (the paper's figure). 'levels': also
   * a loss on each supervised level's own map, weights halving per level (sideLossWeights in step.ts).
   */
  deepSupervisionLoss: DeepSupervisionLoss;
  /**
   * The split file the run was given (`--split`), its lists stored whole: the split is then the
   * file's (see splitFromFile), not the seeded shuffle. null: the seeded shuffle.
   */
  splitFile: GivenSplit | null;
  /** Folder of the NIfTI files (absolute). */
  data: string;
}

/**
 * `paper`: the paper's setting, 512x512 slices. `cpu`: 128x128 at the full width, which a
 * 2-core machine without a GPU trains in about an hour: 42-58 s an epoch of 72 slices with its
 * scoring on a 2-core AMD EPYC with lavapipe (Winograd in all three conv passes, 2026-12-07; 75-107
 * s on the direct kernels, the 5-fold cross-validation in the README).
 */
export const PRESETS: Record<PresetName, { size: number; epochs: number; lr: number; why: string }> = {
  paper: { size: 512, epochs: 300, lr: 5e-5, why: "the paper's 512x512 slices" },
  // 80 epochs of 18 steps are too few for the paper's 5e-5: measured on the shipped data, 2e-4
  // (with the basic augmentation) reached in 30 epochs what 5e-5 (full augmentation) had after 80.
  cpu: { size: 128, epochs: 80, lr: 2e-4, why: '128x128 slices at full width, 42-58 s an epoch, about an hour in all, on a 2-core CPU' },
};

/** The paper's training defaults for a preset; `overrides` replace fields (model fields inside `model`). */
export function defaultTrainConfig(preset: PresetName, data: string, overrides: Partial<Omit<TrainConfig, 'model'>> & { model?: Partial<ModelConfig> } = {}): TrainConfig {
  const p = PRESETS[preset];
  const { model, ...rest } = overrides;
  return {
    preset,
    loss: 'ftl',
    alpha: 0.7,
    beta: 0.3,
    gamma: 4 / 3,
    batch: 4,
    epochs: p.epochs,
    lr: p.lr,
    lrPatience: 10,
    lrFactor: 0.5,
    earlyStopping: 50,
    seed: 1,
    testFraction: 0.2,
    valFraction: 0.1,
    fold: null,
    allSlices: false,
    splitFile: null,
    augment: 'basic',
    deepSupervisionLoss: 'summed',
    data,
    ...rest,
    model: defaultModelConfig({ inputSize: p.size, ...model }),
  };
}

/** Throws one Error naming every field that cannot be used. */
export function validateTrainConfig(c: TrainConfig): void {
  const bad: string[] = [];
  const positiveInt = (k: keyof TrainConfig) => {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < 1) bad.push(`${k} must be a positive integer, got ${v}`);
  };
  positiveInt('batch');
  positiveInt('epochs');
  positiveInt('lrPatience');
  positiveInt('earlyStopping');
  if (!(c.lr > 0 && Number.isFinite(c.lr))) bad.push(`lr must be a positive number, got ${c.lr}`);
  if (!(c.lrFactor > 0 && c.lrFactor < 1)) bad.push(`lrFactor must be in (0, 1), got ${c.lrFactor}`);
  if (c.loss !== 'ftl' && c.loss !== 'dice') bad.push(`loss must be "ftl" or "dice", got ${JSON.stringify(c.loss)}`);
  if (!(c.alpha >= 0 && c.beta >= 0 && c.gamma > 0)) bad.push(`alpha and beta must be >= 0 and gamma > 0, got ${c.alpha}, ${c.beta}, ${c.gamma}`);
  if (!Number.isInteger(c.seed)) bad.push(`seed must be an integer, got ${c.seed}`);
  if (!(c.testFraction > 0 && c.testFraction < 1)) bad.push(`testFraction must be in (0, 1), got ${c.testFraction}`);
  if (!(c.valFraction >= 0 && c.valFraction < 1)) bad.push(`valFraction must be in [0, 1), got ${c.valFraction}`);
  if (c.fold !== null && !(Number.isInteger(c.fold?.k) && Number.isInteger(c.fold?.K) && c.fold.K >= 2 && c.fold.k >= 1 && c.fold.k <= c.fold.K)) {
    bad.push(`fold must be null or k/K with 1 <= k <= K and K >= 2, got ${JSON.stringify(c.fold)}`);
  }
  if (typeof c.allSlices !== 'boolean') bad.push(`allSlices must be true or false, got ${JSON.stringify(c.allSlices)}`);
  else if (c.allSlices && c.fold !== null) bad.push('allSlices trains on every slice, so it cannot hold out a fold: give one or the other');
  if (c.splitFile !== null && !(typeof c.splitFile === 'object' && Array.isArray(c.splitFile?.entries) && c.splitFile.entries.length > 0)) {
    bad.push(`splitFile must be null or a split file's lists, got ${JSON.stringify(c.splitFile)}`);
  } else if (c.splitFile !== null && c.allSlices) bad.push('allSlices trains on every slice, so it takes no split file: give one or the other');
  if (!AUGMENT_NAMES.includes(c.augment)) bad.push(`augment must be one of ${AUGMENT_NAMES.join(', ')}, got ${JSON.stringify(c.augment)}`);
  if (!DEEP_SUPERVISION_LOSSES.includes(c.deepSupervisionLoss)) bad.push(`deepSupervisionLoss must be one of ${DEEP_SUPERVISION_LOSSES.join(', ')}, got ${JSON.stringify(c.deepSupervisionLoss)}`);
  if (!(c.preset in PRESETS)) bad.push(`preset must be one of ${Object.keys(PRESETS).join(', ')}, got ${JSON.stringify(c.preset)}`);
  if (c.model?.inChannels !== 1) bad.push(`model.inChannels must be 1 (single-channel CT slices), got ${c.model?.inChannels}`);
  if (bad.length) throw new Error(`invalid training config: ${bad.join('; ')}`);
  validateModelConfig(c.model);
}

/** "8,16,32" -> [8, 16, 32], with a clear error for anything else. */
export function parseFilters(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const values = parts.map(Number);
  if (parts.length < 2 || values.some((v) => !Number.isInteger(v) || v < 2)) {
    throw new Error(`--filters takes comma-separated channel counts for at least 2 levels, e.g. 32,64,128,256,512; got "${text}"`);
  }
  return values;
}

/**
 * The train / validation / test split of `count` slices that `config` trains and is evaluated
 * on; with `allSlices`, every slice trains and none is held out. `cases` (a dataset of several
 * cases) splits by case: no case has slices in two parts. A split file (`config.splitFile`) gives
 * the split instead of the seeded shuffle (see splitFromFile).
 */
export function splitFor(config: TrainConfig, count: number, cases?: readonly CaseRange[]): Split {
  if (config.allSlices) return { train: Array.from({ length: count }, (_, i) => i), val: [], test: [] };
  if (config.splitFile) return splitFromFile(config.splitFile, config.fold, { count, cases }, { seed: config.seed, valFraction: config.valFraction });
  const opts = { seed: config.seed, testFraction: config.testFraction, valFraction: config.valFraction, fold: config.fold ?? undefined };
  return cases ? splitCases(cases, opts) : splitSlices(count, opts);
}
