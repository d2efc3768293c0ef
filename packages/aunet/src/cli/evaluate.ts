// `pnpm --filter aunet evaluate --checkpoint FILE`: the checkpoint's model on its test slices.

import { dirname, join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { loadRunCheckpoint } from '../checkpoint-file';
import { resizeDataset, slicesOf } from '../data/dataset';
import { loadDataset, readLungMask, resolveDataDir } from '../data/files';
import { splitFor } from '../config';
import { evaluateSlices } from '../evaluate';
import { checkSameData, DATA_KEY, writeEvaluation } from '../train';
import { paperRow } from '../metrics';
import { fail, parseFlags, resultsTable, trackBar } from './common';
import { init } from '@aunet/tensor';

const usage = `
Evaluate a trained checkpoint on the test slices of its own split (the seed, fraction and fold
stored in the checkpoint): Dice, sensitivity and specificity, pooled over all pixels and as the
mean per slice, at the model's resolution and at the original one, beside the paper's Table 1.

Usage: pnpm --filter aunet evaluate --checkpoint FILE [options]

  --checkpoint FILE   best.safetensors or last.safetensors of a run (required)
  --data DIR          the data folder (default: the one the run was trained on)
  --json FILE         where to write the report (default: evaluation-<checkpoint name>[-tta].json beside it)
  --tta               test-time augmentation: the mean over the 4 mirrorings (4x slower)
  --lung-mask FILE    a lung mask volume of the data's shape (the shipped data has
                      tr_lungmask.nii.gz): predictions outside the lungs count as background
  -h, --help          this help
`;

const flags = parseFlags(usage, { checkpoint: { type: 'string' }, data: { type: 'string' }, json: { type: 'string' }, tta: { type: 'boolean' }, 'lung-mask': { type: 'string' } });

try {
  if (!flags.checkpoint) throw new Error('--checkpoint FILE is required (see --help)');
  const rt = await init();
  console.log(`adapter: ${rt.describe()}`);
  const file = resolve(flags.checkpoint);
  const { config, model, epoch, metadata } = await loadRunCheckpoint(file);
  const data = flags.data ? resolveDataDir(flags.data) : config.data;
  const ds = await loadDataset(data);
  const warning = checkSameData(metadata[DATA_KEY], ds, file);
  if (warning) console.log(warning);
  const lungFile = flags['lung-mask'] !== undefined ? resolve(flags['lung-mask']) : undefined;
  const region = lungFile ? { source: lungFile, masks: slicesOf(readLungMask(lungFile, [ds.width, ds.height, ds.count], ds.imageSource), ds.height * ds.width) } : undefined;
  const split = splitFor(config, ds.count);
  console.log(`${file}: ${config.model.model}, ${config.model.inputSize}x${config.model.inputSize}, epoch ${epoch}; ${split.test.length} test slices of ${data}`);
  const bar = trackBar(new cliProgress.SingleBar({ format: 'evaluating [{bar}] {value}/{total} slices | {eta_formatted} left', noTTYOutput: true, notTTYSchedule: 15000 }, cliProgress.Presets.shades_classic));
  bar.start(split.test.length, 0);
  const report = await evaluateSlices(model, ds, resizeDataset(ds, config.model.inputSize), split.test, { batch: config.batch, tta: !!flags.tta, region, onProgress: (n) => bar.update(n) });
  bar.stop();
  model.dispose();
  const out = resolve(flags.json ?? join(dirname(file), `evaluation-${file.split('/').pop()!.replace(/\.safetensors$/, '')}${flags.tta ? '-tta' : ''}${region ? '-lung' : ''}.json`));
  await writeEvaluation(out, { checkpoint: file, epoch, data, config, report });
  if (region) console.log(`predictions restricted to the lungs of ${region.source}`);
  console.log(resultsTable(report, paperRow(config.model.model, config.loss)));
  console.log(`report: ${out}`);
  process.exit(0);
} catch (e) {
  fail(e);
}
