// `pnpm --filter aunet train`: parses flags, picks a preset, calls `train`, prints the results.

import { join } from 'node:path';
import type { LossName, TrainConfig } from '../config';
import { parseFold } from '../data/split';
import { paperRow } from '../metrics';
import { ARCHITECTURES } from '../model';
import { DEFAULT_RUNS_DIR, LAST, runConfig } from '../run-folder';
import { train } from '../train';
import { adapterIsCpu, fail, numberFlag, parseFlags, resultsTable, userDataDir, userPath } from './common';
import { CONFIG_FLAGS, CONFIG_HELP, configFromFlags, oneOf, progressHooks } from './training';
import { init } from '@aunet/tensor';

const usage = `
Train AU-Net (or the plain U-Net) to segment COVID-19 lesions in CT slices.

Usage: pnpm --filter aunet train [options]

  --model aunet|unet    with or without attention (default aunet)
  --loss ftl|dice       focal Tversky (alpha 0.7, beta 0.3, gamma 4/3) or soft Dice (default ftl)
  --fold k/K            k-fold cross-validation: fold k of K is the test part (default: 80/20 split;
                        by case for a dataset of several cases)
  --all-slices          train on every slice, for the model to ship: no validation or test split,
                        so exactly --epochs epochs at the constant --lr (no plateau schedule, no
                        early stopping), no best.safetensors (there is nothing to choose it by:
                        the model is last.safetensors) and no evaluation.json; metrics.jsonl has
                        the train loss, its validation and test fields null. Not with --fold
                        or --split
${CONFIG_HELP}
  --out DIR             run folder (default packages/aunet/runs/<date>-<model>-<loss>)
  --resume DIR          continue the run in DIR from its last checkpoint (--epochs, --data allowed;
                        the split stays the run's: split.json is checked against it)
  -h, --help            this help

The run folder gets config.json, split.json (the split used, in the shape --split reads: case
names, or slice indices for a single volume), metrics.jsonl (a line per epoch), last.safetensors,
best.safetensors (best validation Dice) and evaluation.json (the best checkpoint on the test
slices); with --all-slices only the first four.
`;

const flags = parseFlags(usage, {
  ...CONFIG_FLAGS,
  model: { type: 'string' },
  loss: { type: 'string' },
  fold: { type: 'string' },
  'all-slices': { type: 'boolean' },
  out: { type: 'string' },
  resume: { type: 'string' },
});

async function runFromFlags(cpu: boolean): Promise<{ config: TrainConfig; out: string; resume: boolean }> {
  if (flags.resume) {
    const fixed = (['preset', 'model', 'loss', 'size', 'filters', 'batch', 'lr', 'seed', 'fold', 'all-slices', 'augment', 'no-augment', 'split', 'out'] as const).filter((k) => flags[k] !== undefined);
    if (fixed.length) throw new Error(`--resume continues a run with its own settings; only --epochs and --data may be given with it, not ${fixed.map((k) => `--${k}`).join(', ')}`);
    const out = userPath(flags.resume);
    const config = await runConfig(out);
    const epochs = numberFlag('epochs', flags.epochs, true);
    if (epochs !== undefined) config.epochs = epochs;
    if (flags.data) config.data = userDataDir(flags.data);
    return { config, out, resume: true };
  }
  const model = oneOf('model', flags.model, ARCHITECTURES) ?? 'aunet';
  const loss = oneOf<LossName>('loss', flags.loss, ['ftl', 'dice']) ?? 'ftl';
  if (flags['all-slices'] && flags.fold !== undefined) throw new Error('--all-slices trains on every slice, so it holds out no fold: give --fold or --all-slices, not both');
  if (flags['all-slices'] && flags.split !== undefined) throw new Error('--all-slices trains on every slice, so it takes no split: give --split or --all-slices, not both');
  const config = configFromFlags(flags, cpu, { architecture: model, loss, fold: flags.fold !== undefined ? parseFold(flags.fold) : null });
  config.allSlices = !!flags['all-slices'];
  const date = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
  return { config, out: userPath(flags.out) ?? join(DEFAULT_RUNS_DIR, `${date}-${model}-${loss}`), resume: false };
}

try {
  const rt = await init();
  console.log(`adapter: ${rt.describe()}`);
  const { config, out, resume } = await runFromFlags(adapterIsCpu(rt.adapter));
  console.log(`run folder: ${out}`);

  const progress = progressHooks();
  const result = await train(config, { ...progress, out, resume });
  progress.stop();
  console.log(
    result.bestEpoch === null
      ? `done after epoch ${result.epochs} (all slices: the model is the last epoch's); ${join(result.out, LAST)}`
      : `done after epoch ${result.epochs}${result.stoppedEarly ? ' (early stop)' : ''}; best epoch ${result.bestEpoch}; ${join(result.out, LAST)}`,
  );
  if (result.evaluation) {
    console.log(`\ntest slices, best checkpoint (epoch ${result.bestEpoch}):`);
    console.log(resultsTable(result.evaluation, paperRow(config.model.architecture, config.loss)));
  }
  process.exit(0);
} catch (e) {
  fail(e);
}
