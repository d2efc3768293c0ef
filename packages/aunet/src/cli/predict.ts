// `pnpm --filter aunet predict [--checkpoint FILE] --input CT.nii.gz --out DIR`: segment new scans,
// with the shipped model unless --checkpoint names another.
// Flags only: the work (reading, segmenting, writing the outputs) is prediction-files.ts. Node-only.

import cliProgress from 'cli-progress';
import { init } from '@aunet/tensor';
import { loadRunCheckpoint } from '../run-folder';
import type { OverlayStyle } from '../overlay';
import { mirroredTTA, modelPredictor } from '../predict';
import { outputStem, predictFile, predictionInputs } from '../prediction-files';
import { pct } from '../metrics';
import { BURDEN_REFERENCE_TEXT } from '../lesions';
import { requireDefaultModel } from '../shipped-model';
import { DEFAULT_PREDICTIONS_DIR, fail, invocationDir, numberFlag, parseFlags, trackBar, userPath } from './common';

const usage = `
Segment COVID-19 lesions in CT volumes with the shipped model or a trained checkpoint. Each
slice is resized to the model's input size, segmented, and its probabilities resized back to
the slice's own grid.

Usage: pnpm --filter aunet predict --input PATH [--checkpoint FILE] [options]

  --checkpoint FILE     best.safetensors or last.safetensors of a training run, or an exported
                        one (default: the shipped model, packages/aunet/models/aunet-medseg.safetensors,
                        described in packages/aunet/MODEL.md; $AUNET_MODEL names another file)
  --input PATH          a .nii / .nii.gz volume (HU or 8-bit, any size, any number of slices),
                        or a folder of them; or a DICOM CT series: a folder holding its files
                        (subfolders searched too), a .zip of them, or one DICOM file (required)
  --series UID          with a DICOM folder or zip holding several series: the SeriesInstanceUID
                        of the one to segment (without it, the series are listed)
  --out DIR             output folder (default: packages/aunet/predictions)
  --lung-mask PATH      lung mask volume (or, with a folder input, a folder holding one of the
                        same name per input): burden = lesion area / lung area. Without it the
                        burden is over the lungs found in the image (air threshold, outside air
                        dropped, holes filled: an approximation), or over the body where no lung
                        is found; the report says which
  --probabilities       also write the probability map (float32 NIfTI)
  --tta                 test-time augmentation: the mean over the 4 mirrorings (4x slower)
  --png fill|outline|none   per-slice pictures: translucent fill with outline (default), outline only, or none
  --threshold X         probability at or above which a voxel is lesion (default 0.5)
  --batch N             slices per network call (default 4; fewer where memory needs)
  --verbose             also show Dawn's (the WebGPU library's) own notices on stderr
  -h, --help            this help

For each input NAME.nii.gz (or DICOM folder or zip NAME), DIR gets NAME_lesions.nii.gz (0/1 mask
with the input's geometry; for a DICOM series the series' own, slices ordered along the normal),
NAME_probabilities.nii.gz (with --probabilities), NAME_lesions.csv and NAME_lesions.json (lesion
pixels, mm^2 and burden per slice and for the volume) and NAME_png/slice_NNN.png.
`;

const flags = parseFlags(usage, {
  checkpoint: { type: 'string' },
  input: { type: 'string' },
  series: { type: 'string' },
  out: { type: 'string' },
  'lung-mask': { type: 'string' },
  probabilities: { type: 'boolean' },
  tta: { type: 'boolean' },
  png: { type: 'string' },
  threshold: { type: 'string' },
  batch: { type: 'string' },
});

try {
  if (!flags.input) throw new Error('--input PATH is required (see --help)');
  const style = (flags.png ?? 'fill') as OverlayStyle | 'none';
  if (!['fill', 'outline', 'none'].includes(style)) throw new Error(`--png must be fill, outline or none; got "${flags.png}"`);
  const threshold = numberFlag('threshold', flags.threshold) ?? 0.5;
  if (!(threshold > 0 && threshold < 1)) throw new Error(`--threshold must be between 0 and 1, got ${threshold}`);
  const batch = numberFlag('batch', flags.batch, true) ?? 4;
  if (batch < 1) throw new Error(`--batch must be at least 1, got ${batch}`);
  const todo = predictionInputs(userPath(flags.input), userPath(flags['lung-mask'] || undefined), flags.series || undefined);
  const out = userPath(flags.out) ?? DEFAULT_PREDICTIONS_DIR;
  // Without --checkpoint the shipped model, checked before the adapter starts.
  let checkpoint = flags.checkpoint ? userPath(flags.checkpoint) : undefined;
  if (!checkpoint) {
    const shipped = requireDefaultModel({ base: invocationDir() });
    console.log(shipped.line);
    checkpoint = shipped.model.file;
  }

  const rt = await init();
  console.log(`adapter: ${rt.describe()}`);
  const { config, model, epoch } = await loadRunCheckpoint(checkpoint);
  console.log(`${checkpoint}: ${config.model.architecture}, ${config.model.inputSize}x${config.model.inputSize}, epoch ${epoch}${flags.tta ? ', with mirroring TTA' : ''}`);
  const base = modelPredictor(model, batch);
  const predictor = flags.tta ? mirroredTTA(base) : base;
  for (const input of todo) {
    const bar = trackBar(
      new cliProgress.SingleBar(
        { format: `{name} [{bar}] {value}/{total} slices | {eta_formatted} left`, noTTYOutput: true, notTTYSchedule: 15000 },
        cliProgress.Presets.shades_classic,
      ),
    );
    const r = await predictFile(predictor, input, {
      out,
      threshold,
      batch,
      checkpoint,
      epoch,
      model: config.model,
      tta: !!flags.tta,
      probabilities: !!flags.probabilities,
      pictures: style,
      onSeries: (line) => console.log(`${outputStem(input.file)}: ${line}`),
      onStart: (slices) => bar.start(slices, 0, { name: outputStem(input.file) }),
      onProgress: (done) => bar.update(done),
    });
    bar.stop();
    const v = r.report.lesions.volume;
    const burden = Number.isFinite(v.burden) ? `${pct(v.burden)}% of the ${BURDEN_REFERENCE_TEXT[r.report.reference]}` : '-';
    console.log(
      `${r.name}: ${r.slices} slices in ${r.seconds.toFixed(1)} s (${(r.seconds / r.slices).toFixed(2)} s/slice); lesion ${v.lesionPixels} px, ` +
        `${(v.lesionMm2 / 100).toFixed(1)} cm^2${r.report.lesions.unitsKnown ? '' : ' (voxel units not in the header: mm assumed)'}, burden ${burden} -> ${r.stem}_lesions.*`,
    );
  }
  model.dispose();
  process.exit(0);
} catch (e) {
  fail(e);
}
