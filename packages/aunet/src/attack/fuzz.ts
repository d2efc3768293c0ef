// Node-only: the runner of the seeded mutation fuzzer for the NIfTI and DICOM loading paths of
// the commands. Each case (made in fuzz-mutations.ts and fuzz-dicom.ts: a small valid volume or
// series broken at random) is loaded as train, evaluate and predict load it (volumeFromBytes =
// readVolume on bytes; for a series, its DICOM files (or zip) through volumeFromDicom, as
// readScan reads a folder; then normaliseImage / binaryMask / buildDataset and the resizing to
// the model). Outcomes:
// - ok: loaded, and every normalised value finite and in 0..1;
// - clear error: a DataError whose message names the file and is one line;
// - uncaught: anything else (another exception type, such as a RangeError from an allocation;
//   a message without the file's name or over several lines; non-finite values that got
//   through; a case that runs past the time limit or kills the process).
// Cases run in a child process, so that a hang or a crash is one uncaught case, not the end
// of the run.

import { fork } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildDataset, resizeDataset } from '../data/dataset';
import { DataError } from '../data/errors';
import { dicomFilesFromZip, isDicom, volumeFromDicom } from '../data/dicom';
import { volumeFromBytes } from '../data/files';
import { isGzip, parseNifti, toSliceStack, type Volume } from '../data/nifti';
import { binaryMask, normaliseImage } from '../data/normalise';
import { resizeImage, resizeNearest } from '../data/transforms';
import { describeCase, makeCase, type FuzzCase } from './fuzz-mutations';
import { moduleLoaderArgs } from '../package-dir';

export type OutcomeKind = 'ok' | 'clear' | 'uncaught';

export interface CaseOutcome {
  kind: OutcomeKind;
  /** The error message (clear errors), why the case is uncaught, or a summary of what loaded. */
  detail: string;
  /** The stack of an unexpected exception. */
  stack?: string;
  ms: number;
}

export interface CaseResult extends CaseOutcome {
  index: number;
  /** Role, base and mutations, for uncaught cases (to read without replaying). */
  description?: string;
}

/** The side of the volumes the fuzzer resizes to, as train and predict resize to the model's. */
const MODEL_SIZE = 16;
/** Default limit per case; a case takes about a millisecond. */
export const DEFAULT_CASE_TIMEOUT_MS = 10_000;

// --------------------------------------------------------------------------------------------
// Running a case.

/** Thrown (inside a case) for a result the loaders must never give; makes the case uncaught. */
class Escaped extends Error {}

function checkUnit(data: ArrayLike<number>, what: string): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!(v >= 0 && v <= 1)) throw new Escaped(`${what}: value ${v} at ${i} is ${Number.isFinite(v) ? 'outside 0..1' : 'not finite'} after normalising`);
  }
}

/** What the commands do with a loaded volume in this role; throws what they would throw. */
function useVolume(c: FuzzCase, vol: Volume, loadPartner: (bytes: Uint8Array, name: string) => Volume): string {
  switch (c.role) {
    case 'image': {
      // predict: normalise, then each slice along the slice axis resized to the model.
      const { data, kind } = normaliseImage(vol);
      checkUnit(data, 'image');
      const { data: stack, dims: [w, h, n] } = toSliceStack(data, vol.dims, vol.sliceAxis);
      for (let k = 0; k < n; k++) checkUnit(resizeImage(stack.subarray(k * w * h, (k + 1) * w * h), h, w, MODEL_SIZE, MODEL_SIZE), `slice ${k} resized`);
      return `${vol.dims.join('x')} ${vol.datatype} image (${kind})`;
    }
    case 'mask': {
      // predict --lung-mask: labels above 0.5, sliced as an image of the same header would be.
      const { data: stack, dims: [w, h, n] } = toSliceStack(binaryMask(vol), vol.dims, vol.sliceAxis);
      for (let k = 0; k < n; k++) resizeNearest(stack.subarray(k * w * h, (k + 1) * w * h), h, w, MODEL_SIZE, MODEL_SIZE);
      return `${vol.dims.join('x')} ${vol.datatype} mask`;
    }
    default: {
      // train / evaluate: a data folder's image and mask, resized to the model.
      const other = loadPartner(c.partner!.bytes, c.partner!.name);
      const ds = c.role === 'dataset-image' ? buildDataset(vol, other) : buildDataset(other, vol);
      const resized = resizeDataset(ds, MODEL_SIZE);
      ds.images.forEach((im, k) => checkUnit(im, `slice ${k}`));
      resized.images.forEach((im, k) => checkUnit(im, `slice ${k} resized`));
      return `dataset of ${ds.count} slices of ${ds.width}x${ds.height} (${ds.intensity})`;
    }
  }
}

function attempt(c: FuzzCase, path: string, load: () => Volume, loadPartner: (bytes: Uint8Array, name: string) => Volume): { kind: OutcomeKind; detail: string; stack?: string } {
  try {
    return { kind: 'ok', detail: useVolume(c, load(), loadPartner) };
  } catch (err) {
    if (err instanceof Escaped) return { kind: 'uncaught', detail: `${path}: ${err.message}` };
    if (!(err instanceof DataError)) {
      const e = err instanceof Error ? err : new Error(String(err));
      return { kind: 'uncaught', detail: `${path}: ${e.name} (not a DataError): ${e.message}`, stack: e.stack };
    }
    if (!err.message.includes(c.name)) return { kind: 'uncaught', detail: `${path}: the message does not name ${c.name}: ${err.message}`, stack: err.stack };
    if (/[\r\n]/.test(err.message)) return { kind: 'uncaught', detail: `${path}: a message of several lines: ${JSON.stringify(err.message)}`, stack: err.stack };
    return { kind: 'clear', detail: err.message };
  }
}

/** A DICOM case's series as readScan reads it: a zip's DICOM entries, or the folder's files that start as DICOM. */
function loadSeries(c: FuzzCase): Volume {
  const d = c.dicom!;
  const files = d.zip ? dicomFilesFromZip(d.zip, c.name) : d.files.filter((f) => isDicom(f.bytes)).map((f) => ({ name: `${c.name}/${f.name}`, bytes: f.bytes }));
  return volumeFromDicom(files, c.name).volume;
}

/**
 * Runs one case in this process: through the commands' path (node:zlib, then parseNifti; for a
 * series, volumeFromDicom) and, for gzip bytes, also through parseNifti's own gunzip (the browser
 * path), which must not fail uncaught either. The outcome is the commands' path's, or uncaught
 * where either path is.
 */
export function runCase(c: FuzzCase): CaseOutcome {
  const t0 = performance.now();
  if (c.dicom) return { ...attempt(c, 'DICOM series path', () => loadSeries(c), volumeFromBytes), ms: performance.now() - t0 };
  const commands = attempt(c, 'readVolume path', () => volumeFromBytes(c.bytes, c.name), volumeFromBytes);
  let outcome = commands;
  if (commands.kind !== 'uncaught' && isGzip(c.bytes)) {
    const browser = attempt(c, 'parseNifti (browser) path', () => parseNifti(c.bytes, c.name), (bytes, name) => parseNifti(bytes, name));
    if (browser.kind === 'uncaught') outcome = browser;
  }
  return { ...outcome, ms: performance.now() - t0 };
}

// --------------------------------------------------------------------------------------------
// Running many cases in a child process.

export interface FuzzSummary {
  cases: number;
  ok: number;
  clear: number;
  uncaught: number;
  /** Every uncaught case, with its description. */
  uncaughtCases: CaseResult[];
  /** Clear errors by what they say (see {@link errorKind}). */
  errorKinds: Record<string, number>;
  seconds: number;
  slowest: { index: number; ms: number };
}

/** A short name for what a clear error says, to count them by kind. */
export function errorKind(message: string): string {
  const kinds: [RegExp, string][] = [
    [/gzip data is corrupt/, 'corrupt gzip'],
    [/shorter than a NIfTI/, 'too short for a header'],
    [/\.hdr\/\.img pair/, '.hdr/.img header'],
    [/no NIfTI magic/, 'no NIfTI magic'],
    [/sizeof_hdr/, 'sizeof_hdr wrong'],
    [/is not a NIfTI file/, 'header unreadable'],
    [/voxel datatype/, 'unsupported datatype'],
    [/invalid dimensions/, 'invalid dims'],
    [/only 2-D images and 3-D stacks/, 'more than 3-D'],
    [/vox_offset/, 'bad vox_offset'],
    [/truncated or its header is damaged/, 'truncated / dims past the data'],
    [/NaN or infinite/, 'NaN or infinite voxels'],
    [/values range from/, 'intensity range not HU, 8-bit or 0..1'],
    [/does not look like a label mask/, 'mask: negative or NaN labels'],
    [/must have the same shape/, 'image and mask shapes differ'],
    [/has no lesion voxel/, 'mask without lesion'],
    [/holds \d+ DICOM series|holds no series/, 'DICOM: several series'],
    [/slices? (is|are) missing/, 'DICOM: missing slices'],
    [/unevenly spaced/, 'DICOM: uneven spacing'],
    [/same position/, 'DICOM: two slices at one position'],
    [/do not stack along their normal/, 'DICOM: gantry tilt'],
    [/differ in/, 'DICOM: slices differ'],
    [/is compressed with/, 'DICOM: compressed transfer syntax'],
    [/transfer syntax .* is not one this reader knows|no Transfer Syntax UID/, 'DICOM: unknown transfer syntax'],
    [/is not a DICOM file|holds no DICOM (file|image)/, 'DICOM: not DICOM / no image'],
    [/cannot be parsed as DICOM|file meta information cannot be read|file meta information is said to end|states the wrong transfer syntax|with no data set/, 'DICOM: unparsable'],
    [/is truncated|truncated or its header is damaged/, 'DICOM: truncated / rows x columns past the data'],
    [/no pixel data element/, 'DICOM: no pixel data'],
    [/multi-frame|Enhanced CT/, 'DICOM: multi-frame'],
    [/not CT/, 'DICOM: not CT'],
    [/cannot be unzipped|would unpack/, 'zip damaged'],
    [/expands past/, 'DICOM: deflate bomb'],
    [/\(0028,|\(0020,|\(7FE0,|Rows|Columns|Bits|PixelRepresentation|colour image|RescaleSlope|PixelSpacing|ImageOrientation|float pixel data/, 'DICOM: bad header element'],
  ];
  return kinds.find(([re]) => re.test(message))?.[1] ?? 'other';
}

const CHILD_FLAG = '--aunet-fuzz-child';

/**
 * Runs cases `from` to `from + count - 1` of `seed` in a child process, restarted after a case
 * that hangs past `timeoutMs` (killed) or kills it; `onResult` sees each case as it ends.
 */
export async function runFuzz(o: {
  count: number;
  seed: number;
  from?: number;
  timeoutMs?: number;
  onResult?: (r: CaseResult) => void;
}): Promise<FuzzSummary> {
  const from = o.from ?? 0;
  const end = from + o.count;
  const timeoutMs = o.timeoutMs ?? DEFAULT_CASE_TIMEOUT_MS;
  const summary: FuzzSummary = { cases: 0, ok: 0, clear: 0, uncaught: 0, uncaughtCases: [], errorKinds: {}, seconds: 0, slowest: { index: -1, ms: 0 } };
  const t0 = performance.now();
  const record = (r: CaseResult) => {
    summary.cases++;
    summary[r.kind]++;
    if (r.kind === 'uncaught') summary.uncaughtCases.push(r);
    if (r.kind === 'clear') summary.errorKinds[errorKind(r.detail)] = (summary.errorKinds[errorKind(r.detail)] ?? 0) + 1;
    if (r.ms > summary.slowest.ms) summary.slowest = { index: r.index, ms: r.ms };
    o.onResult?.(r);
  };
  let next = from;
  while (next < end) next = await runInChild(o.seed, next, end, timeoutMs, record);
  summary.seconds = (performance.now() - t0) / 1000;
  return summary;
}

/** Cases start..end-1 in one child; resolves with the index to go on from. */
function runInChild(seed: number, start: number, end: number, timeoutMs: number, record: (r: CaseResult) => void): Promise<number> {
  return new Promise((done, fail) => {
    // The child loads this file as the parent was (through tsx from source); a small heap, so
    // that a case that grows memory without end dies soon (an uncaught case) instead of swapping.
    const child = fork(fileURLToPath(import.meta.url), [CHILD_FLAG], {
      execArgv: [...moduleLoaderArgs(), '--max-old-space-size=512'],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    let expected = start;
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (nextIndex: number) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      child.removeAllListeners();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      done(nextIndex);
    };
    const lost = (why: string) => {
      if (expected >= end) return finish(end); // every case had its result: not a case's fault
      let description: string;
      try {
        description = describeCase(makeCase(seed, expected));
      } catch (err) {
        description = `the case cannot be made: ${(err as Error).message}`;
      }
      record({ index: expected, kind: 'uncaught', detail: why, ms: 0, description });
      finish(expected + 1);
    };
    let started = false;
    const hang = `hang: no result within ${timeoutMs / 1000} s (the child was killed)`;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => lost(hang), timeoutMs);
    };
    // Starting (tsx compiling the loaders) is not a case: its own, generous, limit.
    timer = setTimeout(() => {
      finished = true;
      child.kill('SIGKILL');
      fail(new Error(`the fuzz child process did not start within 120 s: ${stderr.trim() || 'no output'}`));
    }, 120_000);
    child.on('message', (m: { ready?: true; done?: true; result?: CaseResult }) => {
      if (m.ready) {
        started = true;
        child.send({ seed, from: start, to: end });
        arm();
      } else if (m.result) {
        record(m.result);
        expected = m.result.index + 1;
        arm();
      } else if (m.done) finish(end);
    });
    child.on('exit', (code, signal) => {
      if (finished) return;
      if (!started) {
        finished = true;
        clearTimeout(timer);
        fail(new Error(`the fuzz child process exited (${signal ?? code}) before starting: ${stderr.trim() || 'no output'}`));
        return;
      }
      const tail = stderr.trim().split('\n').slice(-3).join(' | ');
      lost(`crash: the process died (${signal ?? `exit code ${code}`})${tail ? `: ${tail}` : ''}`);
    });
  });
}

/** The child's side: run the cases asked for, one per turn of the event loop, so that each
 *  result goes out as soon as it is known (the parent's clock runs per case). */
function serveChild(): void {
  process.on('message', (m: { seed: number; from: number; to: number }) => {
    let i = m.from;
    const step = () => {
      if (i >= m.to) {
        process.send!({ done: true }, () => process.exit(0));
        return;
      }
      const c = makeCase(m.seed, i);
      const outcome = runCase(c);
      const result: CaseResult = { index: i, ...outcome, ...(outcome.kind === 'uncaught' && { description: describeCase(c) }) };
      process.send!({ result });
      i++;
      setImmediate(step);
    };
    step();
  });
  process.send!({ ready: true });
}

if (process.argv.includes(CHILD_FLAG) && process.send && process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) serveChild();
