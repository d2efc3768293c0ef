// What the commands that train share (train, ablation, cv): the training flags, the config they
// make, and the progress shown while training.

import cliProgress from 'cli-progress';
import { AUGMENT_NAMES, DEEP_SUPERVISION_LOSSES, defaultTrainConfig, parseFilters, PRESETS, type AugmentName, type DeepSupervisionLoss, type LossName, type PresetName, type TrainConfig } from '../config';
import { pct } from '../metrics';
import type { Architecture } from '../model';
import type { EpochRecord } from '../run-folder';
import type { StepProgress, TrainOptions } from '../train';
import { readSplitFile } from '../data/files';
import { numberFlag, trackBar, userDataDir, userPath } from './common';

/** Help lines of the flags in {@link CONFIG_FLAGS} that every training command takes. */
export const CONFIG_HELP = `
  --preset cpu|paper    cpu: 128x128, full width, ~1 h on a 2-core CPU; paper: 512x512.
                        Default: cpu on a CPU/fallback adapter (lavapipe), paper on a GPU.
  --size N              input side in pixels, a multiple of 16 (default: the preset's)
  --filters LIST        channels per level, e.g. 8,16,32,64,128 (default 32,64,128,256,512)
  --batch N             slices per step (default 4)
  --epochs N            most epochs (default: the preset's; early stopping after 50 without gain)
  --lr X                Adam's learning rate (default: cpu 2e-4, paper 5e-5; halved after 10 epochs without gain)
  --seed N              seeds the split, the weights and the augmentation (default 1)
  --augment KIND        basic: mirrors, quarter turns, intensity jitter (default);
                        full: also rotations of up to 10 degrees and zooms of 0.9-1.1; none
  --no-augment          the same as --augment none
  --deep-supervision summed|levels   the loss on the summed output of the 3 supervised decoder
                        levels (default), or also on each level's own map, up-sampled, weighted
                        1/2, 1/4, 1/8 against the output's 1 (the epoch's train loss is then that
                        weighted sum; the validation loss stays the output's alone)
  --data DIR            folder with tr_im.nii.gz (or tr_im_lungwindow.nii.gz) and tr_mask.nii.gz,
                        or with the DICOM files of one CT series (subfolders too) and tr_mask.nii.gz
                        on the series' grid, or of several cases (Decathlon / nnU-Net layout):
                        imagesTr/NAME.nii.gz or NAME_0000.nii.gz (or a DICOM folder imagesTr/NAME/)
                        with labelsTr/NAME.nii.gz, dataset.json optional; or DICOM series in
                        sub-folders DIR/NAME/ with labelsTr/NAME.nii.gz. Cases are split whole
                        (default: $AUNET_DATA, else the copy shipped with this package)
  --split FILE          the split to use, JSON: {"train": [...], "val": [...], "test": [...]} of
                        case names (slice indices for a single volume), as split.json in a run
                        folder; or nnU-Net's splits_final.json, a list of {"train", "val"} per
                        fold: --fold k/K picks entry k (cv: one fold per entry), its val is the
                        test part and validation is drawn from its train cases by --seed
  --verbose             also show Dawn's (the WebGPU library's) own notices on stderr`.slice(1);

export const CONFIG_FLAGS = {
  preset: { type: 'string' },
  size: { type: 'string' },
  filters: { type: 'string' },
  batch: { type: 'string' },
  epochs: { type: 'string' },
  lr: { type: 'string' },
  seed: { type: 'string' },
  augment: { type: 'string' },
  'no-augment': { type: 'boolean' },
  'deep-supervision': { type: 'string' },
  data: { type: 'string' },
  split: { type: 'string' },
} as const;

type ConfigFlags = { [K in keyof typeof CONFIG_FLAGS]?: (typeof CONFIG_FLAGS)[K]['type'] extends 'boolean' ? boolean : string };

export function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T)) throw new Error(`--${name} must be one of ${allowed.join(', ')}; got "${value}"`);
  return value as T;
}

/**
 * The training config the flags ask for, on the preset they name (or the one that suits the
 * adapter, said on the console); `fixed` sets the architecture, loss and fold where the command does.
 */
export function configFromFlags(
  flags: ConfigFlags,
  adapterIsCpu: boolean,
  fixed: { architecture: Architecture; loss: LossName; fold?: { k: number; K: number } | null },
): TrainConfig {
  let preset = oneOf<PresetName>('preset', flags.preset, ['cpu', 'paper']);
  if (!preset) {
    preset = adapterIsCpu ? 'cpu' : 'paper';
    console.log(`preset: ${preset} (${PRESETS[preset].why}), chosen because the adapter is ${adapterIsCpu ? 'a CPU/fallback one' : 'a GPU'}; --preset overrides`);
  } else console.log(`preset: ${preset} (${PRESETS[preset].why})`);
  if (flags['no-augment'] && flags.augment !== undefined) throw new Error('give --augment or --no-augment, not both');
  const size = numberFlag('size', flags.size, true);
  const epochs = numberFlag('epochs', flags.epochs, true);
  return defaultTrainConfig(preset, userDataDir(flags.data), {
    loss: fixed.loss,
    ...(fixed.fold && { fold: fixed.fold }),
    ...(epochs !== undefined && { epochs }),
    ...(flags.batch !== undefined && { batch: numberFlag('batch', flags.batch, true) }),
    ...(flags.lr !== undefined && { lr: numberFlag('lr', flags.lr) }),
    ...(flags.seed !== undefined && { seed: numberFlag('seed', flags.seed, true) }),
    ...(flags['no-augment'] && { augment: 'none' as const }),
    ...(flags.augment !== undefined && { augment: oneOf<AugmentName>('augment', flags.augment, AUGMENT_NAMES) }),
    ...(flags['deep-supervision'] !== undefined && { deepSupervisionLoss: oneOf<DeepSupervisionLoss>('deep-supervision', flags['deep-supervision'], DEEP_SUPERVISION_LOSSES) }),
    ...(flags.split !== undefined && { splitFile: readSplitFile(userPath(flags.split)) }),
    model: {
      architecture: fixed.architecture,
      ...(size !== undefined && { inputSize: size }),
      ...(flags.filters !== undefined && { filters: parseFilters(flags.filters) }),
    },
  });
}

/** Train hooks that show a progress bar per epoch and print a line at the end of each. */
export function progressHooks(): Omit<TrainOptions, 'out' | 'resume'> & { stop: () => void } {
  const bar = trackBar(new cliProgress.SingleBar(
    {
      format: 'epoch {epoch}/{epochs} [{bar}] {value}/{total} slices | loss {loss} | {rate} slices/s | {eta_formatted} left',
      hideCursor: true,
      noTTYOutput: true,
      notTTYSchedule: 15000,
      etaBuffer: 8,
    },
    cliProgress.Presets.shades_classic,
  ));
  const fmt = (p: Partial<StepProgress>) => ({ epoch: p.epoch, epochs: p.epochs, loss: p.loss?.toFixed(4) ?? '-', rate: p.slicesPerSecond?.toFixed(2) ?? '-' });
  return {
    log: (m) => console.log(m),
    onEpochStart: (epoch, epochs, slices) => bar.start(slices, 0, fmt({ epoch, epochs })),
    onStep: (p) => bar.update(p.slicesDone, fmt(p)),
    onEpoch: (r: EpochRecord) => {
      bar.stop();
      // A run on all slices has no validation or test scores (null in its record).
      const scores =
        r.val && r.test && r.valLoss !== null
          ? `val loss ${r.valLoss.toFixed(4)}, val Dice ${pct(r.val.dice)} sens ${pct(r.val.sensitivity)} spec ${pct(r.val.specificity)}, test Dice ${pct(r.test.dice)}, `
          : 'no validation (all slices train), ';
      console.log(`epoch ${r.epoch}: loss ${r.trainLoss.toFixed(4)}, ${scores}lr ${r.lr.toExponential(2)}, ${r.seconds.toFixed(0)} s${r.best ? ' (best)' : ''}`);
    },
    stop: () => bar.stop(),
  };
}
