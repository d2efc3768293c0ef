// `pnpm --filter aunet evaluate --checkpoint FILE`: the checkpoint's model on its test slices;
// `evaluate --data DIR`: the shipped model on the labelled slices of DIR.

import { mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import cliProgress from 'cli-progress';
import { init } from '@aunet/tensor';
import { evaluateCheckpoint } from '../evaluate-file';
import { paperRow } from '../metrics';
import { DEFAULT_RUNS_DIR, evaluationFileFor, writeEvaluation } from '../run-folder';
import { requireDefaultModel, SHIPPED_MODEL_FILE } from '../shipped-model';
import { fail, invocationDir, parseFlags, resultsTable, trackBar, userDataDir, userPath } from './common';

const usage = `
Evaluate a trained checkpoint on the test slices of its own split (the seed, fraction and fold
stored in the checkpoint): Dice, sensitivity and specificity, pooled over all pixels and as the
mean per slice, at the model's resolution and at the original one, beside the paper's Table 1.
A model trained with --all-slices (the shipped one) held no slices out: it is scored on every
slice of --data, with a warning when they have the shape of the slices it was trained on.

Usage: pnpm --filter aunet evaluate --checkpoint FILE [options]
       pnpm --filter aunet evaluate --data DIR [options]     (the shipped model)

  --checkpoint FILE   best.safetensors or last.safetensors of a run, or an exported one
                      (default: the shipped model, packages/aunet/models/aunet-medseg.safetensors,
                      described in packages/aunet/MODEL.md, $AUNET_MODEL names another file;
                      it then needs --data)
  --data DIR          the data folder: tr_im.nii.gz (or tr_im_lungwindow.nii.gz) and tr_mask.nii.gz
                      (default: the one the run was trained on)
  --json FILE         where to write the report (default: evaluation-<checkpoint name>[-tta][-lung].json
                      beside the checkpoint; for the shipped model in packages/aunet/runs/shipped-model)
  --tta               test-time augmentation: the mean over the 4 mirrorings (4x slower)
  --lung-mask FILE    a lung mask volume of the data's shape (the shipped data has
                      tr_lungmask.nii.gz): predictions outside the lungs count as background
  --lungs auto        without a lung mask: predictions outside the lungs found in each image
                      slice (air threshold, outside air dropped, holes filled) count as
                      background; the report goes to ...-computed-lung.json
  --verbose           also show Dawn's (the WebGPU library's) own notices on stderr
  -h, --help          this help
`;

const flags = parseFlags(usage, {
  checkpoint: { type: 'string' },
  data: { type: 'string' },
  json: { type: 'string' },
  tta: { type: 'boolean' },
  'lung-mask': { type: 'string' },
  lungs: { type: 'string' },
});

try {
  let file = flags.checkpoint ? userPath(flags.checkpoint) : undefined;
  if (!file) {
    // The shipped model was trained on every shipped slice: it is scored on data the user names.
    if (!flags.data) throw new Error('--checkpoint FILE or --data DIR is required: with --data alone the shipped model is scored on every slice of DIR (see --help)');
    const shipped = requireDefaultModel({ base: invocationDir() });
    console.log(shipped.line);
    file = shipped.model.file;
  }
  const rt = await init();
  console.log(`adapter: ${rt.describe()}`);
  const lungMask = userPath(flags['lung-mask'] || undefined);
  if (flags.lungs !== undefined && flags.lungs !== 'auto') throw new Error(`--lungs takes only "auto" (the lungs found in the image); got "${flags.lungs}"`);
  const computedLungs = flags.lungs === 'auto';
  if (computedLungs && lungMask !== undefined) throw new Error('give --lung-mask FILE or --lungs auto, not both');
  const bar = trackBar(new cliProgress.SingleBar({ format: 'evaluating [{bar}] {value}/{total} slices | {eta_formatted} left', noTTYOutput: true, notTTYSchedule: 15000 }, cliProgress.Presets.shades_classic));
  const e = await evaluateCheckpoint(file, {
    data: flags.data ? userDataDir(flags.data) : undefined,
    tta: !!flags.tta,
    lungMask,
    computedLungs,
    onStart: ({ config, epoch, data, warning, testSlices }) => {
      if (warning) console.log(warning);
      const scored = config.allSlices ? `every slice of ${data} (${testSlices}; trained on all slices of its own data, it held none out)` : `${testSlices} test slices of ${data}`;
      console.log(`${file}: ${config.model.architecture}, ${config.model.inputSize}x${config.model.inputSize}, epoch ${epoch}; ${scored}`);
      bar.start(testSlices, 0);
    },
    onProgress: (done) => bar.update(done),
  });
  bar.stop();
  // Reports go beside the checkpoint; the shipped model's folder is part of the package, so its go under runs/.
  const beside = file === SHIPPED_MODEL_FILE ? join(DEFAULT_RUNS_DIR, 'shipped-model', basename(file)) : file;
  const out =
    userPath(flags.json) ??
    (computedLungs ? evaluationFileFor(beside, { tta: !!flags.tta }).replace(/\.json$/, '-computed-lung.json') : evaluationFileFor(beside, { tta: !!flags.tta, lung: lungMask !== undefined }));
  mkdirSync(dirname(out), { recursive: true });
  await writeEvaluation(out, e);
  if (lungMask) console.log(`predictions restricted to the lungs of ${lungMask}`);
  if (computedLungs) console.log('predictions restricted to the lungs found in the images (no lung mask file)');
  console.log(resultsTable(e.report, paperRow(e.config.model.architecture, e.config.loss), e.config.allSlices ? 'slices' : 'test slices'));
  console.log(`report: ${out}`);
  process.exit(0);
} catch (e) {
  fail(e);
}
