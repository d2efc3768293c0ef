// `pnpm --filter aunet predict --checkpoint FILE --input CT.nii.gz --out DIR`: segment new scans.

import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { writeFileAtomic } from '@aunet/nn';
import { init } from '@aunet/tensor';
import { loadRunCheckpoint } from '../checkpoint-file';
import { DataError } from '../data/errors';
import { readLungMask, readVolume, writeNifti } from '../data/files';
import { bodyMask, lesionCsv, lesionReport, type BurdenReference } from '../lesions';
import { displayFlips, overlayPng, type OverlayStyle } from '../overlay';
import { lesionMaskImage, mirroredTTA, modelPredictor, predictVolume } from '../predict';
import { fail, numberFlag, parseFlags, trackBar } from './common';

const usage = `
Segment COVID-19 lesions in CT volumes with a trained checkpoint. Each slice is resized to the
model's input size, segmented, and its probabilities resized back to the slice's own grid.

Usage: pnpm --filter aunet predict --checkpoint FILE --input PATH [options]

  --checkpoint FILE     best.safetensors or last.safetensors of a training run (required)
  --input PATH          a .nii / .nii.gz volume (HU or 8-bit, any size, any number of slices),
                        or a folder of them (required)
  --out DIR             output folder (default: predictions)
  --lung-mask PATH      lung mask volume (or, with a folder input, a folder holding one of the
                        same name per input): burden = lesion area / lung area. Without it the
                        burden is over the body, found in the image (air outside it excluded)
  --probabilities       also write the probability map (float32 NIfTI)
  --tta                 test-time augmentation: the mean over the 4 mirrorings (4x slower)
  --png fill|outline|none   per-slice pictures: translucent fill with outline (default), outline only, or none
  --threshold X         probability at or above which a voxel is lesion (default 0.5)
  --batch N             slices per network call (default 4; fewer where memory needs)
  -h, --help            this help

For each input NAME.nii.gz, DIR gets NAME_lesions.nii.gz (0/1 mask with the input's geometry),
NAME_probabilities.nii.gz (with --probabilities), NAME_lesions.csv and NAME_lesions.json (lesion
pixels, mm^2 and burden per slice and for the volume) and NAME_png/slice_NNN.png.
`;

const flags = parseFlags(usage, {
  checkpoint: { type: 'string' },
  input: { type: 'string' },
  out: { type: 'string' },
  'lung-mask': { type: 'string' },
  probabilities: { type: 'boolean' },
  tta: { type: 'boolean' },
  png: { type: 'string' },
  threshold: { type: 'string' },
  batch: { type: 'string' },
});

const text = (s: string) => new TextEncoder().encode(s);
const NIFTI = /\.nii(\.gz)?$/i;
const OUTPUT = /_(lesions|probabilities)\.nii(\.gz)?$/i;

/** The input volumes, each with its lung mask when one was given. */
function inputs(input: string, lungMask: string | undefined): { file: string; lung?: string }[] {
  let isDir: boolean;
  try {
    isDir = statSync(input).isDirectory();
  } catch {
    throw new DataError(`${input} does not exist. Pass a .nii / .nii.gz file or a folder of them.`, input);
  }
  if (!isDir) return [{ file: input, lung: lungMask }];
  // Outputs of an earlier run into the same folder are not inputs.
  const files = readdirSync(input).filter((n) => NIFTI.test(n) && !OUTPUT.test(n)).sort();
  if (!files.length) throw new DataError(`${input} holds no .nii or .nii.gz file.`, input);
  if (lungMask && !(existsSync(lungMask) && statSync(lungMask).isDirectory())) {
    throw new Error(`with a folder as --input, --lung-mask must be a folder holding a mask named like each input; ${lungMask} is not a folder`);
  }
  return files.map((n) => ({ file: join(input, n), lung: lungMask && join(lungMask, n) }));
}

try {
  if (!flags.checkpoint) throw new Error('--checkpoint FILE is required (see --help)');
  if (!flags.input) throw new Error('--input PATH is required (see --help)');
  const style = (flags.png ?? 'fill') as OverlayStyle | 'none';
  if (!['fill', 'outline', 'none'].includes(style)) throw new Error(`--png must be fill, outline or none; got "${flags.png}"`);
  const threshold = numberFlag('threshold', flags.threshold) ?? 0.5;
  if (!(threshold > 0 && threshold < 1)) throw new Error(`--threshold must be between 0 and 1, got ${threshold}`);
  const batch = numberFlag('batch', flags.batch, true) ?? 4;
  if (batch < 1) throw new Error(`--batch must be at least 1, got ${batch}`);
  const todo = inputs(resolve(flags.input), flags['lung-mask'] && resolve(flags['lung-mask']));
  const out = resolve(flags.out ?? 'predictions');

  const rt = await init();
  console.log(`adapter: ${rt.describe()}`);
  const checkpoint = resolve(flags.checkpoint);
  const { config, model, epoch } = await loadRunCheckpoint(checkpoint);
  console.log(`${checkpoint}: ${config.model.architecture}, ${config.model.inputSize}x${config.model.inputSize}, epoch ${epoch}${flags.tta ? ', with mirroring TTA' : ''}`);
  const base = modelPredictor(model, batch);
  const predictor = flags.tta ? mirroredTTA(base) : base;
  mkdirSync(out, { recursive: true });

  for (const { file, lung } of todo) {
    const volume = readVolume(file);
    const lungMask = lung ? readLungMask(lung, volume.dims, file) : undefined;
    const [nx, ny, nz] = volume.dims;
    // What the network segments: slices along the header's slice axis (reports and pictures below
    // are per plane of the file's third axis).
    const slices = volume.dims[volume.sliceAxis];
    const name = basename(file).replace(NIFTI, '');
    const bar = trackBar(
      new cliProgress.SingleBar(
        { format: `${name} [{bar}] {value}/{total} slices | {eta_formatted} left`, noTTYOutput: true, notTTYSchedule: 15000 },
        cliProgress.Presets.shades_classic,
      ),
    );
    // Started with the first batch done, so that a volume refused while normalising prints only its error.
    let started = false;
    const t0 = performance.now();
    const p = await predictVolume(predictor, volume, {
      batch,
      threshold,
      onProgress: (done) => {
        if (!started) bar.start(slices, 0);
        started = true;
        bar.update(done);
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    bar.stop();

    const reference: BurdenReference = lungMask ? 'lung' : 'body';
    const report = lesionReport(p.mask, lungMask ?? bodyMask(p.image, nx, ny, nz), volume.dims, volume.space, reference);
    const stem = join(out, name);
    writeNifti(`${stem}_lesions.nii.gz`, lesionMaskImage(volume, p.mask));
    if (flags.probabilities) {
      writeNifti(`${stem}_probabilities.nii.gz`, { dims: volume.dims, data: p.probabilities, datatype: 'float32', space: volume.space, description: 'aunet lesion probability' });
    }
    await writeFileAtomic(`${stem}_lesions.csv`, text(lesionCsv(report)));
    const json = {
      input: file,
      checkpoint,
      epoch,
      model: config.model,
      tta: !!flags.tta,
      threshold,
      intensity: p.intensity,
      burdenReference: lungMask ? `lung mask ${lung}` : 'body, found in the image (pixels above air, holes filled): an approximation',
      seconds,
      secondsPerSlice: seconds / slices,
      ...report,
      slices: report.slices.map((s) => ({ ...s, burden: Number.isNaN(s.burden) ? null : s.burden })),
      volume: { ...report.volume, burden: Number.isNaN(report.volume.burden) ? null : report.volume.burden },
    };
    await writeFileAtomic(`${stem}_lesions.json`, text(JSON.stringify(json, null, 2) + '\n'));
    if (style !== 'none') {
      const dir = `${stem}_png`;
      mkdirSync(dir, { recursive: true });
      const flips = displayFlips(volume.space);
      const plane = nx * ny;
      const digits = Math.max(3, String(nz - 1).length);
      for (let k = 0; k < nz; k++) {
        const png = overlayPng(p.image.subarray(k * plane, (k + 1) * plane), p.mask.subarray(k * plane, (k + 1) * plane), nx, ny, style, flips);
        await writeFileAtomic(join(dir, `slice_${String(k).padStart(digits, '0')}.png`), png);
      }
    }
    const v = report.volume;
    const burden = Number.isNaN(v.burden) ? '-' : `${(100 * v.burden).toFixed(1)}% of the ${reference}`;
    console.log(
      `${name}: ${slices} slices in ${seconds.toFixed(1)} s (${(seconds / slices).toFixed(2)} s/slice); lesion ${v.lesionPixels} px, ` +
        `${(v.lesionMm2 / 100).toFixed(1)} cm^2${report.unitsKnown ? '' : ' (voxel units not in the header: mm assumed)'}, burden ${burden} -> ${stem}_lesions.*`,
    );
  }
  model.dispose();
  process.exit(0);
} catch (e) {
  fail(e);
}
