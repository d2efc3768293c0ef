// What `predict` does for each input, as library code: find the inputs (a file or a folder of
// them, or a DICOM series as a folder or a zip, each with its lung mask where given; without one
// the lungs are found in the image),
// segment one, and write its outputs atomically (the mask,
// the probabilities, the CSV and JSON report, the slice pictures), all built by
// prediction-report.ts, which the web page uses for the same mask and report. The JSON is
// written last and names the input's and the model's sha256: it marks the outputs complete, so
// that the batch service (src/service/) can tell a job already done. Node-only.

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '@aunet/nn';
import { DataError } from './data/errors';
import { dicomSeriesLine } from './data/dicom';
import { findDicomFiles, readLungMask, readScan, scanStem, writeNifti } from './data/files';
import type { OverlayStyle } from './overlay';
import { predictVolume, type SlicePredictor } from './predict';
import {
  maskImage, predictionFileNames, predictionReport, probabilitiesImage, reportCsv, reportJson, segmentedSlices, slicePictures,
  type PredictionReport, type PredictionRun,
} from './prediction-report';

const NIFTI = /\.nii(\.gz)?$/i;
/** Files `predict` writes: never taken as inputs when it reads a folder it wrote into. */
const OUTPUT = /_(lesions|probabilities)\.nii(\.gz)?$/i;

/** An input volume (a NIfTI file, or a DICOM series: its folder, zip or file) and the lung mask that goes with it. */
export interface PredictionInput {
  file: string;
  lungMask?: string;
  /** The SeriesInstanceUID to read where a DICOM folder or zip holds several series. */
  series?: string;
}

const WHAT_INPUT = 'Pass a .nii / .nii.gz file, a folder of them, or a folder (or .zip) of one DICOM CT series.';

/**
 * The volumes `predict --input PATH [--lung-mask PATH] [--series UID]` segments: the file (NIfTI,
 * a DICOM file or a .zip of a series); for a folder, every .nii / .nii.gz in it (not the outputs
 * of an earlier run there), each with the lung mask of the same name in the lung-mask folder, or,
 * where it holds none, the DICOM series found in it and its subfolders. DataError when there is
 * nothing to read, or a folder holds both NIfTI and DICOM files.
 */
export function predictionInputs(input: string, lungMask?: string, series?: string): PredictionInput[] {
  let isDir: boolean;
  try {
    isDir = statSync(input).isDirectory();
  } catch {
    throw new DataError(`${input} does not exist. ${WHAT_INPUT}`, input);
  }
  if (!isDir) return [{ file: input, lungMask, series }];
  const files = readdirSync(input).filter((n) => NIFTI.test(n) && !OUTPUT.test(n)).sort();
  if (!files.length) {
    if (!findDicomFiles(input).length) throw new DataError(`${input} holds no .nii or .nii.gz file and no DICOM file. ${WHAT_INPUT}`, input);
    return [{ file: input, lungMask, series }];
  }
  const dicom = findDicomFiles(input, 0).map((f) => basename(f));
  if (dicom.length) {
    throw new DataError(
      `${input} holds both NIfTI volumes (${files.slice(0, 2).join(', ')}${files.length > 2 ? ', ...' : ''}) and DICOM files (${dicom.slice(0, 2).join(', ')}${dicom.length > 2 ? ', ...' : ''}): pass the NIfTI files, or the DICOM series in a folder of its own.`,
      input,
    );
  }
  if (series !== undefined) throw new DataError(`${input} is a folder of NIfTI volumes: --series picks a series among the DICOM files of a folder or a zip.`, input);
  if (lungMask && !(existsSync(lungMask) && statSync(lungMask).isDirectory())) {
    throw new Error(`with a folder as --input, --lung-mask must be a folder holding a mask named like each input; ${lungMask} is not a folder`);
  }
  return files.map((n) => ({ file: join(input, n), lungMask: lungMask && join(lungMask, n) }));
}

/** The name an input's outputs start with: scan.nii.gz -> scan; a DICOM folder or zip: its name. */
export const outputStem = (file: string) => scanStem(file);

/** Which of the outputs to write besides the mask, CSV and JSON. */
export interface PredictionFileOptions {
  /** NAME_probabilities.nii.gz (float32). */
  probabilities?: boolean;
  /** NAME_png/slice_NNN.png in this style (default fill), or none. */
  pictures?: OverlayStyle | 'none';
}

/** A name for a temporary beside `path`, in writeFileAtomic's pattern (so {@link removeStaleTemporaries} finds it). */
const temporaryName = (path: string) => join(path, '..', `.${basename(path)}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`);

/**
 * Writes a report's files into `out` under `stem` (see predictionFileNames), each atomically;
 * returns their paths. The JSON of an earlier run is removed first and the new one written last,
 * so that a JSON beside the other files says they are complete and of the run it describes. The
 * mask comes first: an output that cannot be written (too large for NIfTI-1) is refused before
 * anything is. The slice pictures are written into a temporary folder swapped in whole, so that
 * NAME_png never mixes two runs' slices.
 */
export async function writePredictionFiles(out: string, stem: string, report: PredictionReport, run: PredictionRun, o: PredictionFileOptions = {}): Promise<string[]> {
  const names = predictionFileNames(join(out, stem));
  const written: string[] = [];
  await mkdir(out, { recursive: true });
  await rm(names.json, { force: true });
  await writeNifti(names.mask, maskImage(report));
  written.push(names.mask);
  if (o.probabilities) {
    await writeNifti(names.probabilities, probabilitiesImage(report));
    written.push(names.probabilities);
  }
  await writeFileAtomic(names.csv, reportCsv(report));
  written.push(names.csv, names.json);
  const style = o.pictures ?? 'fill';
  if (style !== 'none') {
    const fresh = temporaryName(names.pictures);
    await mkdir(fresh);
    for (const { name, png } of slicePictures(report, style)) await writeFileAtomic(join(fresh, name), png);
    const old = temporaryName(names.pictures);
    const hadOld = await rename(names.pictures, old).then(() => true, (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return false;
      throw e;
    });
    await rename(fresh, names.pictures);
    if (hadOld) await rm(old, { recursive: true, force: true });
    written.push(names.pictures);
  }
  await writeJsonAtomic(names.json, reportJson(report, run));
  return written;
}

/**
 * Removes the temporaries a killed writer left in `out` for the outputs of `stem`
 * (.NAME_lesions.nii.gz.PID.XXX.tmp and the like, NAME_png's temporary folders) and not
 * modified for `olderThanMs`: a writer still at work keeps touching its own (the batch worker
 * passes a quarter of its lock). Returns how many it removed.
 */
export async function removeStaleTemporaries(out: string, stem: string, olderThanMs = 0): Promise<number> {
  const escaped = stem.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^\\.${escaped}_(lesions\\.nii\\.gz|probabilities\\.nii\\.gz|lesions\\.csv|lesions\\.json|png)\\.\\d+\\.[a-z0-9]+\\.tmp$`);
  let names: string[];
  try {
    names = await readdir(out);
  } catch {
    return 0;
  }
  const now = Date.now();
  const old = async (n: string) => now - (await stat(join(out, n)).then((s) => s.mtimeMs, () => now)) >= olderThanMs;
  const stale: string[] = [];
  for (const n of names) if (pattern.test(n) && (await old(n))) stale.push(n);
  for (const n of stale) await rm(join(out, n), { recursive: true, force: true });
  return stale.length;
}

/**
 * sha256 of what a prediction reads: the input's bytes (for a DICOM folder, each DICOM file's
 * path inside it and its bytes, in path order), the lung mask's bytes and the series asked for.
 */
export function predictionInputHash(input: PredictionInput): string {
  const h = createHash('sha256');
  const field = (label: string, bytes: Uint8Array | string) => {
    h.update(`${label} ${typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength}\n`);
    h.update(bytes);
  };
  if (statSync(input.file).isDirectory()) {
    for (const f of findDicomFiles(input.file)) {
      field('path', relative(input.file, f).split('\\').join('/'));
      field('file', readFileSync(f));
    }
  } else field('file', readFileSync(input.file));
  if (input.lungMask) field('lung-mask', readFileSync(input.lungMask));
  if (input.series) field('series', input.series);
  return h.digest('hex');
}

const fileHashes = new Map<string, { size: number; mtimeMs: number; sha256: string }>();

/** sha256 of a file (a checkpoint), remembered while its size and modification time stay the same. */
export function fileSha256(file: string): string {
  const { size, mtimeMs } = statSync(file);
  const known = fileHashes.get(file);
  if (known && known.size === size && known.mtimeMs === mtimeMs) return known.sha256;
  const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex');
  fileHashes.set(file, { size, mtimeMs, sha256 });
  return sha256;
}

/** The checkpoint's sha256; none where `checkpoint` names no file (a stand-in predictor's label). */
const checkpointSha256 = (checkpoint: string) => (existsSync(checkpoint) && statSync(checkpoint).isFile() ? fileSha256(checkpoint) : undefined);

/** What must match for outputs already written to count as this prediction's. */
export interface PredictionIdentity extends PredictionFileOptions {
  inputSha256: string;
  modelSha256: string;
  threshold: number;
  tta: boolean;
}

/**
 * Whether `out` holds complete outputs of `stem` for this input, model and options: the JSON
 * (written last) names the same hashes, threshold, TTA and picture style (and a probability map
 * where one is asked for), and every other file asked for is there.
 */
export function predictionDone(out: string, stem: string, want: PredictionIdentity): boolean {
  const names = predictionFileNames(join(out, stem));
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(names.json, 'utf8'));
  } catch {
    return false;
  }
  if (json.inputSha256 !== want.inputSha256 || json.modelSha256 !== want.modelSha256 || json.threshold !== want.threshold || json.tta !== want.tta) return false;
  // The same pictures (their style), and the probability map when asked for: outputs of other options are not these.
  const outputs = json.outputs as { probabilities?: boolean; pictures?: string } | undefined;
  if (outputs?.pictures !== (want.pictures ?? 'fill') || (want.probabilities && !outputs.probabilities)) return false;
  const needed = [names.mask, names.csv, ...(want.probabilities ? [names.probabilities] : []), ...((want.pictures ?? 'fill') !== 'none' ? [names.pictures] : [])];
  return needed.every((f) => existsSync(f));
}

/** How `predict` segments each input: the predictor, and what it was made from (for the JSON). */
export interface PredictFileOptions extends PredictionFileOptions {
  /** Folder of the outputs (created). */
  out: string;
  threshold?: number;
  /** Slices per predictor call. */
  batch?: number;
  checkpoint: string;
  epoch: number;
  model: PredictionRun['model'];
  tta: boolean;
  /** The input's and the checkpoint's sha256 for the JSON, when the caller has them already
   *  (computed otherwise: see {@link predictionInputHash}, {@link fileSha256}). */
  inputSha256?: string;
  modelSha256?: string;
  /** Called once the volume is read (before the first batch) with the number of slices to segment. */
  onStart?: (slices: number) => void;
  /** Called once a DICOM series is read, with one line saying which (series, slices, voxel size). */
  onSeries?: (line: string) => void;
  onProgress?: (done: number, total: number) => void;
}

/** What {@link predictFile} did. */
export interface PredictedFile {
  /** The outputs' name stem (scan.nii.gz -> scan) and the path prefix they were written under. */
  name: string;
  stem: string;
  report: PredictionReport;
  /** Slices segmented (along the header's slice axis) and the seconds it took. */
  slices: number;
  seconds: number;
  files: string[];
}

/**
 * Segments one input with `predictor` and writes its outputs into `o.out`: what `predict` does
 * for each input. The lung mask is read (and checked against the input) before the network runs.
 */
export async function predictFile(predictor: SlicePredictor, input: PredictionInput, o: PredictFileOptions): Promise<PredictedFile> {
  const { volume, series } = readScan(input.file, { series: input.series });
  if (series) o.onSeries?.(dicomSeriesLine(series));
  const lung = input.lungMask ? readLungMask(input.lungMask, volume) : undefined;
  const name = outputStem(input.file);
  let started = false;
  const t0 = performance.now();
  const prediction = await predictVolume(predictor, volume, {
    batch: o.batch,
    threshold: o.threshold,
    onProgress: (done, total) => {
      // Started with the first batch done, so that a volume refused while normalising reports nothing.
      if (!started) o.onStart?.(total);
      started = true;
      o.onProgress?.(done, total);
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  const report = predictionReport(volume, prediction, { lung });
  const run: PredictionRun = {
    input: input.file, checkpoint: o.checkpoint, epoch: o.epoch, model: o.model, tta: o.tta, seconds,
    inputSha256: o.inputSha256 ?? predictionInputHash(input), modelSha256: o.modelSha256 ?? checkpointSha256(o.checkpoint),
    outputs: { probabilities: !!o.probabilities, pictures: o.pictures ?? 'fill' },
  };
  const files = await writePredictionFiles(o.out, name, report, run, o);
  return { name, stem: join(o.out, name), report, slices: segmentedSlices(report), seconds, files };
}
