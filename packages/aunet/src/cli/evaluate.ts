// `pnpm --filter aunet evaluate --checkpoint FILE`: the checkpoint's model on its test slices;
// `evaluate --data DIR`: the shipped model on the labelled slices of DIR;
// `evaluate --pred PATH --labels PATH`: saved predictions from any source against their labels.

import { mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import cliProgress from 'cli-progress';
import { init } from '@aunet/tensor';
import type { EvaluationReport } from '../evaluate';
import { evaluateCheckpoint, evaluatePredictions, writeMaskEvaluation, type ScoringOptions } from '../evaluate-file';
import { maskEvaluationJson, maskEvaluationText, type MaskEvaluation } from '../mask-report';
import { DEFAULT_TOLERANCE_MM, LABELS_AS, type LabelsAs } from '../mask-scores';
import { paperRow } from '../metrics';
import { DEFAULT_RUNS_DIR, evaluationFileFor, writeEvaluation } from '../run-folder';
import { requireDefaultModel, SHIPPED_MODEL_FILE } from '../shipped-model';
import { fail, invocationDir, numberFlag, parseFlags, resultsTable, trackBar, userDataDir, userPath } from './common';

const usage = `
Score segmentations against their labels, one of two ways:

- a trained checkpoint on the test slices of its own split (the seed, fraction and fold stored
  in the checkpoint), at the model's resolution and at the original one, beside the paper's
  Table 1 (a model trained with --all-slices, as the shipped one, held no slices out: it is
  scored on every slice of --data, with a warning when they have the shape of the slices it
  was trained on);
- predictions from any source (--pred: masks or probability maps, NIfTI) against label volumes
  (--labels), with no checkpoint and no network.

Both report Dice, IoU, sensitivity, specificity and precision; the 95th percentile Hausdorff
distance (HD95), the Hausdorff distance (HD) and the average surface distance (ASD) in mm from
the label header's voxel size, and the normalised surface Dice (NSD) at --tolerance, as MONAI
defines them; and for each lesion class (1 ground glass, 2 consolidation, 3 pleural effusion)
the share of its voxels inside the predicted mask. Per slice (surfaces in the slice's plane) and
over the slices; --pred also per case in 3-D (slice spacing from the header) and pooled over
cases. With no lesion in prediction or labels the surface scores are undefined (-); with
lesion on one side only HD95, HD and ASD are infinite (inf) and NSD 0.

Usage: pnpm --filter aunet evaluate --checkpoint FILE [options]
       pnpm --filter aunet evaluate --data DIR [options]     (the shipped model)
       pnpm --filter aunet evaluate --pred PATH --labels PATH [--out DIR] [--labels-as KIND] [--tolerance MM]

  --checkpoint FILE   best.safetensors or last.safetensors of a run, or an exported one
                      (default: the shipped model, packages/aunet/models/aunet-medseg.safetensors,
                      described in packages/aunet/MODEL.md, $AUNET_MODEL names another file;
                      it then needs --data)
  --data DIR          the data folder: tr_im.nii.gz (or tr_im_lungwindow.nii.gz) and tr_mask.nii.gz,
                      a DICOM series with tr_mask.nii.gz, or several cases (imagesTr/ and labelsTr/,
                      as train --help says; scored per case) (default: the one the run was trained on)
  --json FILE         where to write the checkpoint's report (default: evaluation-<checkpoint
                      name>[-tta][-lung][-lung-lesion-labels].json beside the checkpoint; for the
                      shipped model in packages/aunet/runs/shipped-model)
  --tta               test-time augmentation: the mean over the 4 mirrorings (4x slower)
  --lung-mask FILE    a lung mask volume of the data's shape (the shipped data has
                      tr_lungmask.nii.gz): predictions outside the lungs count as background
  --lungs auto        without a lung mask: predictions outside the lungs found in each image
                      slice (air threshold, outside air dropped, holes filled) count as
                      background; the report goes to ...-computed-lung.json
  --min-lesion N      remove predicted lesions (8-connected) of fewer than N pixels at the data's
                      resolution before scoring (at the model's, the same area); the report's
                      name gets -min<N>
  --part test|val     score the split's test slices (default) or its validation slices, on which
                      to choose --min-lesion and the like without looking at the test slices;
                      the report's name gets -val
  --pred PATH         a prediction (.nii or .nii.gz; voxels of 0.5 and above are lesion: a 0/1
                      mask, a label map or a probability map) or a folder of them
  --labels PATH       its label volume (0 background, 1-3 lesion classes), on the prediction's
                      voxel grid, or a folder of them: NAME.nii.gz is scored against the
                      prediction NAME.nii.gz or NAME_lesions.nii.gz (what predict writes)
  --labels-as KIND    lesion (default): every class merged, as the paper; lung-lesion: ground
                      glass and consolidation only, pleural effusion (outside the lung) counts
                      as background
  --tolerance MM      the NSD's tolerance in mm (default ${DEFAULT_TOLERANCE_MM} mm)
  --out DIR           also write the report as evaluation.csv, evaluation.json and evaluation.md
                      into DIR (with --pred, without --out, only the summary is printed)
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
  'min-lesion': { type: 'string' },
  part: { type: 'string' },
  pred: { type: 'string' },
  labels: { type: 'string' },
  'labels-as': { type: 'string' },
  tolerance: { type: 'string' },
  out: { type: 'string' },
});

/** --labels-as and --tolerance, checked. */
function scoringOptions(): Required<ScoringOptions> {
  const labelsAs = (flags['labels-as'] ?? 'lesion') as LabelsAs;
  if (!LABELS_AS.includes(labelsAs)) throw new Error(`--labels-as takes ${LABELS_AS.join(' or ')}; got "${flags['labels-as']}"`);
  const toleranceMm = numberFlag('tolerance', flags.tolerance) ?? DEFAULT_TOLERANCE_MM;
  if (toleranceMm < 0) throw new Error(`--tolerance takes a distance in mm, 0 or more; got ${flags.tolerance}`);
  return { labelsAs, toleranceMm };
}

async function writeReportFiles(e: MaskEvaluation): Promise<void> {
  const out = userPath(flags.out);
  if (out === undefined) return;
  const files = await writeMaskEvaluation(out, e);
  console.log(`report: ${files.join(', ')}`);
}

/** `--pred PATH --labels PATH`: no checkpoint, no network, no WebGPU. */
async function evaluateSaved(): Promise<void> {
  if (flags.pred === undefined || flags.labels === undefined) {
    throw new Error(`--pred PATH and --labels PATH go together (predictions and the labels they are scored against); ${flags.pred === undefined ? '--pred' : '--labels'} is missing`);
  }
  const checkpointOnly = (['checkpoint', 'data', 'json', 'tta', 'lung-mask', 'lungs', 'min-lesion', 'part'] as const).filter((f) => flags[f] !== undefined);
  if (checkpointOnly.length) throw new Error(`${checkpointOnly.map((f) => `--${f}`).join(', ')} belong${checkpointOnly.length === 1 ? 's' : ''} to a checkpoint's evaluation, not to --pred (which scores saved predictions)`);
  const options = scoringOptions();
  const e = evaluatePredictions(userPath(flags.pred), userPath(flags.labels), {
    ...options,
    onCase: (pair, done, total) => {
      if (total > 1) console.log(`[${done}/${total}] ${pair.name}`);
    },
  });
  for (const note of e.notes) console.log(`note: ${note}`);
  console.log(e.scope);
  console.log(maskEvaluationText(e));
  await writeReportFiles(e);
}

/** `--checkpoint FILE` or `--data DIR`: a model on slices, through WebGPU. */
async function evaluateModel(): Promise<void> {
  const options = scoringOptions();
  let file = flags.checkpoint ? userPath(flags.checkpoint) : undefined;
  if (!file) {
    // The shipped model was trained on every shipped slice: it is scored on data the user names.
    if (!flags.data) throw new Error('--checkpoint FILE or --data DIR is required: with --data alone the shipped model is scored on every slice of DIR; --pred PATH --labels PATH scores saved predictions (see --help)');
    const shipped = requireDefaultModel({ base: invocationDir() });
    console.log(shipped.line);
    file = shipped.model.file;
  }
  const lungMask = userPath(flags['lung-mask'] || undefined);
  if (flags.lungs !== undefined && flags.lungs !== 'auto') throw new Error(`--lungs takes only "auto" (the lungs found in the image); got "${flags.lungs}"`);
  const computedLungs = flags.lungs === 'auto';
  if (computedLungs && lungMask !== undefined) throw new Error('give --lung-mask FILE or --lungs auto, not both');
  const minLesionPixels = numberFlag('min-lesion', flags['min-lesion'], true) ?? 0;
  if (minLesionPixels < 0) throw new Error(`--min-lesion takes a number of pixels, 0 or more; got ${minLesionPixels}`);
  const part = flags.part ?? 'test';
  if (part !== 'test' && part !== 'val') throw new Error(`--part takes test or val; got "${flags.part}"`);
  const rt = await init();
  console.log(`adapter: ${rt.describe()}`);
  const bar = trackBar(new cliProgress.SingleBar({ format: 'evaluating [{bar}] {value}/{total} slices | {eta_formatted} left', noTTYOutput: true, notTTYSchedule: 15000 }, cliProgress.Presets.shades_classic));
  const e = await evaluateCheckpoint(file, {
    ...options,
    data: flags.data ? userDataDir(flags.data) : undefined,
    tta: !!flags.tta,
    lungMask,
    computedLungs,
    minLesionPixels,
    part,
    onStart: ({ config, epoch, data, warning, testSlices }) => {
      if (warning) console.log(warning);
      const scored = config.allSlices
        ? `every slice of ${data} (${testSlices}; trained on all slices of its own data, it held none out)`
        : `${testSlices} ${part === 'val' ? 'validation' : 'test'} slices of ${data}`;
      console.log(`${file}: ${config.model.architecture}, ${config.model.inputSize}x${config.model.inputSize}, epoch ${epoch}; ${scored}`);
      bar.start(testSlices, 0);
    },
    onProgress: (done) => bar.update(done),
  });
  bar.stop();
  // Reports go beside the checkpoint; the shipped model's folder is part of the package, so its go under runs/.
  const beside = file === SHIPPED_MODEL_FILE ? join(DEFAULT_RUNS_DIR, 'shipped-model', basename(file)) : file;
  const labelsSuffix = options.labelsAs === 'lesion' ? '' : `-${options.labelsAs}-labels`;
  const defaultName = computedLungs ? evaluationFileFor(beside, { tta: !!flags.tta }).replace(/\.json$/, '-computed-lung.json') : evaluationFileFor(beside, { tta: !!flags.tta, lung: lungMask !== undefined });
  const postSuffix = `${minLesionPixels > 1 ? `-min${minLesionPixels}` : ''}${part === 'val' ? '-val' : ''}`;
  const out = userPath(flags.json) ?? defaultName.replace(/\.json$/, `${labelsSuffix}${postSuffix}.json`);
  mkdirSync(dirname(out), { recursive: true });
  // The paper's figures as before, then every score (the --pred report) under `scores`.
  const report: EvaluationReport & { labelsAs: LabelsAs; scores: unknown } = { ...e.report, labelsAs: options.labelsAs, scores: maskEvaluationJson(e.scores) };
  await writeEvaluation(out, { ...e, report });
  if (lungMask) console.log(`predictions restricted to the lungs of ${lungMask}`);
  if (computedLungs) console.log('predictions restricted to the lungs found in the images (no lung mask file)');
  if (minLesionPixels > 1) console.log(`predicted lesions under ${minLesionPixels} pixels removed`);
  if (options.labelsAs !== 'lesion') console.log(`lesion: --labels-as ${options.labelsAs} (pleural effusion counts as background)`);
  console.log(resultsTable(e.report, paperRow(e.config.model.architecture, e.config.loss), e.config.allSlices ? 'slices' : `${part === 'val' ? 'validation' : 'test'} slices`));
  console.log(`\nevery score at ${e.report.original.resolution}:`);
  console.log(maskEvaluationText(e.scores));
  for (const note of e.scores.notes) if (note !== e.warning) console.log(`note: ${note}`);
  console.log(`report: ${out}`);
  await writeReportFiles(e.scores);
}

try {
  if (flags.pred !== undefined || flags.labels !== undefined) await evaluateSaved();
  else await evaluateModel();
  process.exit(0);
} catch (e) {
  fail(e);
}
