// A training run's folder, and the one place that knows its layout:
//
//   config.json            the run's settings and split, written when it starts
//   split.json             the split alone, {train, val, test}: case names (slice indices for a
//                          single volume), the shape `--split` reads, for repeating the run
//   metrics.jsonl          one line per finished epoch (EpochRecord)
//   last.safetensors       the last epoch's weights, optimiser and trainer state (resume from it)
//   best.safetensors       the weights of the best validation Dice so far (none in a run on all slices)
//   evaluation.json        the best checkpoint on the test slices, written when the run ends
//                          (none in a run on all slices: it has no test slices)
//   evaluation-*.json      what `evaluate` wrote for a checkpoint of the folder
//   .lock                  held by the training run that owns the folder
//
// Checkpoints, config and evaluations are written atomically (@aunet/nn's writeFileAtomic), the log
// is appended a line an epoch and cut back on resume, the lock is created exclusively: a kill at
// any moment leaves a folder that `train --resume` continues. Node-only.

import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { appendFile, mkdir, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { saveCheckpoint, writeFileAtomic, writeJsonAtomic, type Adam, type Module } from '@aunet/nn';
import { CheckpointError, checkpointMetadata, configFromMetadata, epochFromMetadata, loadModel, readCheckpointMetadata, STATE_KEY, type CheckpointRecord, type LoadedCheckpoint } from './checkpoint';
import type { TrainConfig } from './config';
import { splitRecord, type CaseRange, type Split, type SplitRecord } from './data/split';
import type { EvaluationReport } from './evaluate';
import { PAPER_TABLE1, paperRow, type Scores } from './metrics';
import { defaultOutputDir } from './package-dir';

export const LAST = 'last.safetensors';
export const BEST = 'best.safetensors';
export const LOG = 'metrics.jsonl';
export const CONFIG_FILE = 'config.json';
export const SPLIT_FILE = 'split.json';
export const EVALUATION_FILE = 'evaluation.json';
export const LOCK_FILE = '.lock';

/** Where `train` writes its run folders by default, and where `web` looks for the latest: packages/aunet/runs in the repository, ./runs when installed (see package-dir.ts). */
export const DEFAULT_RUNS_DIR = defaultOutputDir('runs');

/**
 * One line of metrics.jsonl. A run on all slices (`allSlices`) has no validation or test
 * slices: its `valLoss`, `val` and `test` are null and `best` is false.
 */
export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  valLoss: number | null;
  val: Scores | null;
  test: Scores | null;
  lr: number;
  seconds: number;
  slicesPerSecond: number;
  best: boolean;
}

// ---------------------------------------------------------------------------------------------
// The lock: a file holding the owner's pid and host, created exclusively. A run killed with
// SIGKILL leaves it behind; the next run sees that the pid is gone (same host) and takes the
// folder over, so a kill never leaves a folder stuck.

/** The run folder is in use by another live training run. */
export class RunLockedError extends Error {
  override name = 'RunLockedError';
}

interface LockInfo {
  pid: number;
  host: string;
  started: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

function readLock(file: string): LockInfo | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as LockInfo;
  } catch {
    return null; // gone, or cut short by a kill while being written
  }
}

/**
 * Take the lock of run folder `dir` (created when missing); returns the function that releases
 * it (also released when the process exits). Throws RunLockedError when a live process holds it.
 */
export function lockRun(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, LOCK_FILE);
  const mine: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(file, JSON.stringify(mine), { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
      const held = readLock(file);
      if (held && held.host !== mine.host) {
        throw new RunLockedError(`${dir} is locked by a training run on host ${held.host} (pid ${held.pid}, since ${held.started}); if that run is over, delete ${file}`);
      }
      if (held && held.pid !== process.pid && alive(held.pid)) {
        throw new RunLockedError(`${dir} is in use by another training run (pid ${held.pid}, since ${held.started}); wait for it to end, or use another --out`);
      }
      unlinkSync(file); // left by a run that was killed: take the folder over
    }
  }
  removeStaleTemporaries(dir);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    if (readLock(file)?.pid === process.pid) {
      try {
        unlinkSync(file);
      } catch {
        /* already gone */
      }
    }
  };
  process.on('exit', release);
  return release;
}

/** A temporary file of an atomic write (`.NAME.PID.RANDOM.tmp`, see @aunet/nn's writeFileAtomic). */
export const isTemporary = (name: string) => name.endsWith('.tmp');

/** Temporary files of atomic writes that a killed process left in `dir`: removed once the folder
 *  is ours, so kills do not pile them up. */
function removeStaleTemporaries(dir: string): void {
  for (const name of readdirSync(dir)) {
    const m = /^\..+\.(\d+)\.[0-9a-z]+\.tmp$/.exec(name);
    if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    try {
      unlinkSync(join(dir, name));
    } catch {
      /* already gone */
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoint files.

/** A checkpoint file's bytes; CheckpointError naming the file and what to pass when it cannot be read. */
export function readCheckpointBytes(file: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CheckpointError(
      code === 'ENOENT'
        ? `${file}: no such checkpoint file. Pass best.safetensors or last.safetensors of a run folder that \`train\` wrote`
        : `${file}: cannot read the checkpoint (${(e as Error).message})`,
    );
  }
}

/** The checkpoint file's model, config and metadata; CheckpointError naming the file on any problem. */
export async function loadRunCheckpoint(file: string): Promise<LoadedCheckpoint> {
  return loadModel(readCheckpointBytes(file), file);
}

/** Save `model` (and `optimizer`) with the trainer's record in the metadata, atomically. */
export async function saveRunCheckpoint(file: string, model: Module<any, any>, record: CheckpointRecord, optimizer?: Adam): Promise<void> {
  await saveCheckpoint(file, model, { metadata: checkpointMetadata(record), ...(optimizer && { optimizer }) });
}

/** Where a run folder stands: its config, the last epoch its checkpoint holds, and whether early stopping ended it. */
export interface RunState {
  config: TrainConfig;
  epoch: number;
  stoppedEarly: boolean;
}

/** Where the run in `dir` stands, from its last checkpoint. */
export async function runState(dir: string): Promise<RunState> {
  const file = join(dir, LAST);
  if (!existsSync(file)) {
    throw new CheckpointError(
      `${dir} holds no ${LAST}: ${existsSync(join(dir, CONFIG_FILE)) ? 'the run stopped before its first epoch ended; start it again with --out' : 'it is not a run folder of this trainer'}`,
    );
  }
  const metadata = readCheckpointMetadata(new Uint8Array(await readFile(file)), file, 'the run cannot be resumed; start a new one with another --out');
  const config = configFromMetadata(metadata, file);
  const state = metadata[STATE_KEY] ? (JSON.parse(metadata[STATE_KEY]) as { early?: { stopped?: boolean } }) : null;
  return { config, epoch: epochFromMetadata(metadata), stoppedEarly: state?.early?.stopped ?? false };
}

/** The config of the run in `dir`, from its last checkpoint. */
export async function runConfig(dir: string): Promise<TrainConfig> {
  return (await runState(dir)).config;
}

// ---------------------------------------------------------------------------------------------
// Config and metrics log.

/**
 * Prepare `dir` for a new run: refuses a folder that already holds one; writes config.json and
 * split.json (the split by case name when `cases` are given: a dataset of several cases).
 */
export async function startRunFolder(dir: string, config: TrainConfig, split: Split, shownAs = dir, cases?: readonly CaseRange[]): Promise<void> {
  if (existsSync(join(dir, LAST))) {
    throw new Error(`${dir} already holds a run (${LAST}): continue it with --resume ${shownAs}, or choose another --out`);
  }
  await mkdir(dir, { recursive: true });
  // A run killed during its first epoch may have left a log line; this run starts over.
  await rm(join(dir, LOG), { force: true });
  await writeJsonAtomic(join(dir, CONFIG_FILE), { ...config, split });
  await writeJsonAtomic(join(dir, SPLIT_FILE), splitRecord(split, cases));
}

/**
 * On resume: the run's split.json must be the split the run computes again (written when
 * missing: a run started before split.json was written). Refuses, naming the file, when it
 * differs (edited, or the data's cases changed), since the resumed run would train on another split.
 */
export async function keepRunSplit(dir: string, split: Split, cases?: readonly CaseRange[]): Promise<void> {
  const file = join(dir, SPLIT_FILE);
  const record = splitRecord(split, cases);
  if (!existsSync(file)) {
    await writeJsonAtomic(file, record);
    return;
  }
  let stored: SplitRecord | null = null;
  try {
    stored = JSON.parse(await readFile(file, 'utf8')) as SplitRecord;
  } catch {
    /* unreadable: reported below */
  }
  const same = stored !== null && (['train', 'val', 'test'] as const).every((k) => JSON.stringify(stored![k]) === JSON.stringify(record[k]));
  if (!same) {
    throw new Error(`${file} is not the split this run computes from its config and data (${record.train.length} train / ${record.val.length} val / ${record.test.length} test ${cases ? 'cases' : 'slices'}): the data or the file changed since the run started; restore them, or start a new run (another --out)`);
  }
}

/** Add an epoch's line to the run's metrics log. */
export async function appendEpochRecord(dir: string, record: EpochRecord): Promise<void> {
  await appendFile(join(dir, LOG), JSON.stringify(record) + '\n');
}

/** Keep only the lines of the run's metrics log up to `epoch` (a kill can leave one more, or half of one). */
export async function truncateLog(dir: string, epoch: number): Promise<void> {
  const file = join(dir, LOG);
  if (!existsSync(file)) return;
  const lines = (await readFile(file, 'utf8')).split('\n').filter((line) => {
    if (!line.trim()) return false;
    try {
      return (JSON.parse(line) as EpochRecord).epoch <= epoch;
    } catch {
      return false; // a line cut by the kill
    }
  });
  await writeFileAtomic(file, lines.map((l) => l + '\n').join(''));
}

// ---------------------------------------------------------------------------------------------
// Evaluation files.

export interface EvaluationRecord {
  checkpoint: string;
  epoch: number;
  data: string;
  config: TrainConfig;
  report: EvaluationReport;
}

/** What an evaluation of a model trained on all slices scores (its report's `scope`). */
export const ALL_SLICES_SCOPE = 'every slice of the data: the model was trained on all slices of its own data and held none out';

/** Write an evaluation report with the paper's Table 1 row beside it (atomically). */
export async function writeEvaluation(file: string, e: EvaluationRecord): Promise<void> {
  const row = paperRow(e.config.model.architecture, e.config.loss);
  const scope = e.config.allSlices ? { scope: ALL_SLICES_SCOPE } : {};
  await writeJsonAtomic(file, { checkpoint: e.checkpoint, epoch: e.epoch, data: e.data, ...scope, paper: { row, ...PAPER_TABLE1[row] }, ...e.report });
}

/** An evaluation file read back; NaN scores were written as null. */
export async function readEvaluation(file: string): Promise<EvaluationReport> {
  return JSON.parse(await readFile(file, 'utf8'), (_k, v) => (v === null ? NaN : v)) as EvaluationReport;
}

/** Where `evaluate` writes its report by default: evaluation-<checkpoint name>[-tta][-lung].json beside it. */
export function evaluationFileFor(checkpoint: string, o: { tta?: boolean; lung?: boolean } = {}): string {
  return join(dirname(checkpoint), `evaluation-${basename(checkpoint).replace(/\.safetensors$/, '')}${o.tta ? '-tta' : ''}${o.lung ? '-lung' : ''}.json`);
}

// ---------------------------------------------------------------------------------------------
// Folders of runs.

/**
 * The settings in which a run folder's config differs from `config`, by name; [] when it is the
 * same run. The epoch budget may differ (a run can be extended).
 */
export function runDifferences(stored: TrainConfig, config: TrainConfig): string[] {
  const flat = (c: TrainConfig): Record<string, string> => {
    const { model, epochs: _epochs, ...rest } = c;
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(rest)) out[k] = JSON.stringify(v);
    for (const [k, v] of Object.entries(model)) out[`model.${k}`] = JSON.stringify(v);
    return out;
  };
  const a = flat(stored);
  const b = flat(config);
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]).map((k) => `${k}: ${a[k] ?? '-'} there, ${b[k] ?? '-'} asked`);
}

/**
 * The best checkpoint of the latest training run: the most recently written `best.safetensors`
 * in `runsDir` or in folders below it (up to 3 levels: runs/<run>, runs/ablation-*\/<row>,
 * runs/cv-*\/fold-k), or null when there is none.
 */
export function latestBestCheckpoint(runsDir = DEFAULT_RUNS_DIR): string | null {
  let best: { file: string; mtime: number } | null = null;
  const walk = (dir: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      let st;
      try {
        st = statSync(path);
      } catch {
        continue;
      }
      if (st.isDirectory() && depth < 3) walk(path, depth + 1);
      else if (st.isFile() && name === BEST && (!best || st.mtimeMs > best.mtime)) best = { file: path, mtime: st.mtimeMs };
    }
  };
  walk(runsDir, 0);
  return (best as { file: string } | null)?.file ?? null;
}

/**
 * What is wrong with a finished run folder of `epochs` epochs (empty when nothing is): a
 * checkpoint that does not load or holds another epoch, a log without every epoch exactly once,
 * no evaluation (a run on all slices has none to write), a lock or temporary file left behind.
 * A run that early stopping ended (its checkpoint's state says so) is finished at its last epoch.
 */
export async function checkRunFolder(out: string, epochs: number): Promise<string[]> {
  const problems: string[] = [];
  let last = epochs;
  let evaluated = true;
  try {
    const run = await runState(out);
    evaluated = !run.config.allSlices;
    if (run.stoppedEarly && run.epoch <= epochs) last = run.epoch;
    if (run.epoch !== last) problems.push(`${LAST} holds epoch ${run.epoch}, expected ${epochs}`);
  } catch (e) {
    problems.push(`${LAST} does not load: ${(e as Error).message}`);
  }
  const log = existsSync(join(out, LOG)) ? readFileSync(join(out, LOG), 'utf8').trim().split('\n') : [];
  const seen = log.map((l) => {
    try {
      return (JSON.parse(l) as { epoch: number }).epoch;
    } catch {
      problems.push(`${LOG} has a line that is not JSON: ${l.slice(0, 80)}`);
      return -1;
    }
  });
  const expected = Array.from({ length: last }, (_, i) => i + 1);
  if (seen.join() !== expected.join()) problems.push(`${LOG} lists epochs [${seen.join(', ')}], expected 1..${last} once each`);
  if (evaluated && !existsSync(join(out, EVALUATION_FILE))) problems.push(`${EVALUATION_FILE} was not written`);
  const left = existsSync(out) ? readdirSync(out).filter((n) => isTemporary(n) || n === LOCK_FILE) : [];
  if (left.length) problems.push(`left behind: ${left.join(', ')}`);
  return problems;
}
