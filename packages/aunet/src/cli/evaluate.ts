// `pnpm --filter aunet evaluate --checkpoint FILE`: the checkpoint's model on its test slices.

import cliProgress from 'cli-progress';
import { init } from '@aunet/tensor';
import { evaluateCheckpoint } from '../evaluate-file';
import { paperRow } from '../metrics';
import { evaluationFileFor, writeEvaluation } from '../run-folder';
import { fail, parseFlags, resultsTable, trackBar, userDataDir, userPath } from './common';

const usage = `
Evaluate a trained checkpoint on the test slices of its own split (the seed, fraction and fold
stored in the checkpoint): Dice, sensitivity and specificity, pooled over all pixels and as the
mean per slice, at the model's resolution and at the original one, beside the paper's Table 1.

Usage: pnpm --filter aunet evaluate --checkpoint FILE [options]

  --checkpoint FILE   best.safetensors or last.safetensors of a run (required)
  --data DIR          the data folder (default: the one the run was trained on)
  --json FILE         where to write the report (default: evaluation-<checkpoint name>[-tta][-lung].json beside it)
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
  if (!flags.checkpoint) throw new Error('--checkpoint FILE is required (see --help)');
  const rt = await init();
  console.log(`adapter: ${rt.describe()}`);
  const file = userPath(flags.checkpoint);
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
      console.log(`${file}: ${config.model.architecture}, ${config.model.inputSize}x${config.model.inputSize}, epoch ${epoch}; ${testSlices} test slices of ${data}`);
      bar.start(testSlices, 0);
    },
    onProgress: (done) => bar.update(done),
  });
  bar.stop();
  const out =
    userPath(flags.json) ??
    (computedLungs ? evaluationFileFor(file, { tta: !!flags.tta }).replace(/\.json$/, '-computed-lung.json') : evaluationFileFor(file, { tta: !!flags.tta, lung: lungMask !== undefined }));
  await writeEvaluation(out, e);
  if (lungMask) console.log(`predictions restricted to the lungs of ${lungMask}`);
  if (computedLungs) console.log('predictions restricted to the lungs found in the images (no lung mask file)');
  console.log(resultsTable(e.report, paperRow(e.config.model.architecture, e.config.loss)));
  console.log(`report: ${out}`);
  process.exit(0);
} catch (e) {
  fail(e);
}
