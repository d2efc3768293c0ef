// `pnpm --filter aunet cv`: K-fold cross-validation of one configuration.

import { join } from 'node:path';
import { init } from '@aunet/tensor';
import type { LossName } from '../config';
import { crossValidate, crossValidationMarkdown } from '../experiments';
import { ARCHITECTURES } from '../model';
import { DEFAULT_RUNS_DIR } from '../run-folder';
import { adapterIsCpu, fail, numberFlag, parseFlags, userPath } from './common';
import { CONFIG_FLAGS, CONFIG_HELP, configFromFlags, oneOf, progressHooks } from './training';

const usage = `
K-fold cross-validation: the slices (or, for a dataset of several cases, the cases) are split
into K folds; each fold is held out once while a model trains on the rest (with its own
validation part), then tested on it. Prints each fold and the mean and standard deviation of
Dice, sensitivity and specificity: the figure to quote, since a single 20-slice test split moves
by several Dice points with the seed. Resumable: run it again with the same flags and finished
folds are read back, an interrupted one resumed.

Usage: pnpm --filter aunet cv [options]

  --folds K             number of folds (default 5; with --split, the split file's entries).
                        A dataset of several cases is split by case: no case in two parts
  --only-folds LIST     run only these of the K folds, e.g. 1,2,3 (a screen of recipes on fewer
                        folds): cv.md and cv.json then summarise these; a later call with more
                        folds (or without the flag) reads the finished ones back and trains the rest
  --model aunet|unet    with or without attention (default aunet)
  --loss ftl|dice       focal Tversky or soft Dice (default ftl)
${CONFIG_HELP}
  --out DIR             the experiment folder (default packages/aunet/runs/cv-<model>-<loss>-<preset>-seed<seed>);
                        folds go to DIR/fold-k (each with its split.json), the summary to
                        DIR/cv.{md,json}, every fold's split to DIR/split.json (a list of
                        {train, val, test}: --split DIR/split.json repeats the folds)
  --lung-mask FILE      also score each best checkpoint with predictions kept inside this lung
                        mask (the shipped data has tr_lungmask.nii.gz), in a second table
  -h, --help            this help
`;

const flags = parseFlags(usage, { ...CONFIG_FLAGS, folds: { type: 'string' }, 'only-folds': { type: 'string' }, model: { type: 'string' }, loss: { type: 'string' }, out: { type: 'string' }, 'lung-mask': { type: 'string' } });

try {
  const foldsFlag = numberFlag('folds', flags.folds, true);
  if (foldsFlag !== undefined && foldsFlag < 2) throw new Error(`--folds must be at least 2, got ${foldsFlag}`);
  const rt = await init();
  console.log(`adapter: ${rt.describe()}`);
  const model = oneOf('model', flags.model, ARCHITECTURES) ?? 'aunet';
  const loss = oneOf<LossName>('loss', flags.loss, ['ftl', 'dice']) ?? 'ftl';
  const base = configFromFlags(flags, adapterIsCpu(rt.adapter), { architecture: model, loss });
  // A split file of one split per fold sets the number of folds (crossValidate checks --folds against it).
  const folds = foldsFlag ?? (base.splitFile?.perFold ? base.splitFile.entries.length : 5);
  const out = userPath(flags.out) ?? join(DEFAULT_RUNS_DIR, `cv-${model}-${loss}-${base.preset}-seed${base.seed}`);
  console.log(`experiment folder: ${out}`);
  const progress = progressHooks();
  const onlyFolds = flags['only-folds']?.split(',').map((t) => {
    const k = Number(t.trim());
    if (!Number.isInteger(k)) throw new Error(`--only-folds takes comma-separated fold numbers, e.g. 1,2,3; got "${flags['only-folds']}"`);
    return k;
  });
  const cv = await crossValidate(base, folds, out, { ...progress, onlyFolds, lungMask: userPath(flags['lung-mask']), onFold: (k, K, dir) => console.log(`\n== fold ${k}/${K} (${dir})`) });
  progress.stop();
  console.log(`\n${folds}-fold cross-validation${onlyFolds ? ` (folds ${cv.folds.map((f) => f.fold).join(', ')})` : ''}, pooled test scores per fold (%):\n`);
  console.log(crossValidationMarkdown(cv, base));
  console.log(`summary: ${join(out, 'cv.md')}, ${join(out, 'cv.json')}`);
  process.exit(0);
} catch (e) {
  fail(e);
}
