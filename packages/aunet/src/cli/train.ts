// `pnpm --filter aunet train`: parses flags, picks a preset, calls `train`, prints the results.

import { join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { defaultTrainConfig, parseFilters, PRESETS, type LossName, type PresetName, type TrainConfig } from '../config';
import { resolveDataDir } from '../data/files';
import { parseFold } from '../data/split';
import { paperRow } from '../metrics';
import { runConfig, train, LAST, type StepProgress } from '../train';
import { fail, numberFlag, parseFlags, resultsTable } from './common';
import { init } from '@aunet/tensor';

const usage = `
Train AU-Net (or the plain U-Net) to segment COVID-19 lesions in CT slices.

Usage: pnpm --filter aunet train [options]

  --preset cpu|paper    cpu: 128x128, full width, ~2 h on a 2-core CPU; paper: 512x512.
                        Default: cpu on a CPU/fallback adapter (lavapipe), paper on a GPU.
  --model aunet|unet    with or without attention (default aunet)
  --loss ftl|dice       focal Tversky (alpha 0.7, beta 0.3, gamma 4/3) or soft Dice (default ftl)
  --size N              input side in pixels, a multiple of 16 (default: the preset's)
  --filters LIST        channels per level, e.g. 8,16,32,64,128 (default 32,64,128,256,512)
  --batch N             slices per step (default 4)
  --epochs N            most epochs (default: the preset's; early stopping after 50 without gain)
  --lr X                Adam's learning rate (default 5e-5; halved after 10 epochs without gain)
  --seed N              seeds the split, the weights and the augmentation (default 1)
  --fold k/K            k-fold cross-validation: fold k of K is the test part (default: 80/20 split)
  --no-augment          train on the slices as they are
  --data DIR            folder with tr_im.nii.gz (or tr_im_lungwindow.nii.gz) and tr_mask.nii.gz
                        (default: $AUNET_DATA, else the copy shipped with this package)
  --out DIR             run folder (default runs/<date>-<model>-<loss>)
  --resume DIR          continue the run in DIR from its last checkpoint (--epochs, --data allowed)
  -h, --help            this help

The run folder gets config.json, metrics.jsonl (a line per epoch), last.safetensors,
best.safetensors (best validation Dice) and evaluation.json (the best checkpoint on the test slices).
`;

const flags = parseFlags(usage, {
  preset: { type: 'string' },
  model: { type: 'string' },
  loss: { type: 'string' },
  size: { type: 'string' },
  filters: { type: 'string' },
  batch: { type: 'string' },
  epochs: { type: 'string' },
  lr: { type: 'string' },
  seed: { type: 'string' },
  fold: { type: 'string' },
  'no-augment': { type: 'boolean' },
  data: { type: 'string' },
  out: { type: 'string' },
  resume: { type: 'string' },
});

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T)) throw new Error(`--${name} must be one of ${allowed.join(', ')}; got "${value}"`);
  return value as T;
}

async function configFromFlags(adapterIsCpu: boolean): Promise<{ config: TrainConfig; out: string; resume: boolean }> {
  const epochs = numberFlag('epochs', flags.epochs, true);
  if (flags.resume) {
    const fixed = (['preset', 'model', 'loss', 'size', 'filters', 'batch', 'lr', 'seed', 'fold', 'no-augment', 'out'] as const).filter((k) => flags[k] !== undefined);
    if (fixed.length) throw new Error(`--resume continues a run with its own settings; only --epochs and --data may be given with it, not ${fixed.map((k) => `--${k}`).join(', ')}`);
    const config = await runConfig(flags.resume);
    if (epochs !== undefined) config.epochs = epochs;
    if (flags.data) config.data = resolveDataDir(flags.data);
    return { config, out: flags.resume, resume: true };
  }
  let preset = oneOf<PresetName>('preset', flags.preset, ['cpu', 'paper']);
  if (!preset) {
    preset = adapterIsCpu ? 'cpu' : 'paper';
    console.log(`preset: ${preset} (${PRESETS[preset].why}), chosen because the adapter is ${adapterIsCpu ? 'a CPU/fallback one' : 'a GPU'}; --preset overrides`);
  } else console.log(`preset: ${preset} (${PRESETS[preset].why})`);
  const model = oneOf('model', flags.model, ['aunet', 'unet'] as const) ?? 'aunet';
  const loss = oneOf<LossName>('loss', flags.loss, ['ftl', 'dice']) ?? 'ftl';
  const size = numberFlag('size', flags.size, true);
  const config = defaultTrainConfig(preset, resolveDataDir(flags.data), {
    loss,
    ...(epochs !== undefined && { epochs }),
    ...(flags.batch !== undefined && { batch: numberFlag('batch', flags.batch, true) }),
    ...(flags.lr !== undefined && { lr: numberFlag('lr', flags.lr) }),
    ...(flags.seed !== undefined && { seed: numberFlag('seed', flags.seed, true) }),
    ...(flags.fold !== undefined && { fold: parseFold(flags.fold) }),
    ...(flags['no-augment'] && { augment: false }),
    model: {
      model,
      ...(size !== undefined && { inputSize: size }),
      ...(flags.filters !== undefined && { filters: parseFilters(flags.filters) }),
    },
  });
  const date = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
  return { config, out: flags.out ?? join('runs', `${date}-${model}-${loss}`), resume: false };
}

try {
  const rt = await init();
  console.log(`adapter: ${rt.describe()}`);
  const { config, out, resume } = await configFromFlags(rt.adapter.isFallback || rt.adapter.type === 'cpu');
  console.log(`run folder: ${resolve(out)}`);

  const bar = new cliProgress.SingleBar(
    {
      format: 'epoch {epoch}/{epochs} [{bar}] {value}/{total} slices | loss {loss} | {rate} slices/s | {eta_formatted} left',
      hideCursor: true,
      noTTYOutput: true,
      notTTYSchedule: 15000,
      etaBuffer: 8,
    },
    cliProgress.Presets.shades_classic,
  );
  const fmt = (p: Partial<StepProgress>) => ({ epoch: p.epoch, epochs: p.epochs, loss: p.loss?.toFixed(4) ?? '-', rate: p.slicesPerSecond?.toFixed(2) ?? '-' });
  const result = await train(config, {
    out,
    resume,
    log: (m) => console.log(m),
    onEpochStart: (epoch, epochs, slices) => bar.start(slices, 0, fmt({ epoch, epochs })),
    onStep: (p) => bar.update(p.slicesDone, fmt(p)),
    onEpoch: (r) => {
      bar.stop();
      const pct = (v: number) => (100 * v).toFixed(1);
      console.log(
        `epoch ${r.epoch}: loss ${r.trainLoss.toFixed(4)}, val loss ${r.valLoss.toFixed(4)}, ` +
          `val Dice ${pct(r.val.dice)} sens ${pct(r.val.sensitivity)} spec ${pct(r.val.specificity)}, ` +
          `test Dice ${pct(r.test.dice)}, lr ${r.lr.toExponential(2)}, ${r.seconds.toFixed(0)} s${r.best ? ' (best)' : ''}`,
      );
    },
  });
  bar.stop();
  console.log(`done after epoch ${result.epochs}${result.stoppedEarly ? ' (early stop)' : ''}; best epoch ${result.bestEpoch}; ${join(result.out, LAST)}`);
  if (result.evaluation) {
    console.log(`\ntest slices, best checkpoint (epoch ${result.bestEpoch}):`);
    console.log(resultsTable(result.evaluation, paperRow(config.model.model, config.loss)));
  }
  process.exit(0);
} catch (e) {
  fail(e);
}
