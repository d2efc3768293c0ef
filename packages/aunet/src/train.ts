// The trainer: the paper's recipe (Adam, focal Tversky or soft Dice, lr halved on plateau, early
// stopping) on a seeded split of the slices, with a run folder that survives kills. Node-only.

import { appendFile, mkdir, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Adam, EarlyStopping, ReduceLROnPlateau, SafetensorsError, decodeSafetensors, loadCheckpoint, manualSeed, saveCheckpoint, writeFileAtomic } from '@aunet/nn';
import { Rng } from '@aunet/tensor';
import { CONFIG_KEY, EPOCH_KEY, STATE_KEY, CheckpointError, configFromMetadata } from './checkpoint';
import { loadRunCheckpoint } from './checkpoint-file';
import { splitFor, validateTrainConfig, type TrainConfig } from './config';
import { augmentPair, BASIC_AUGMENT, FULL_AUGMENT } from './data/transforms';
import { resizeDataset, type SliceDataset } from './data/dataset';
import { loadDataset } from './data/files';
import { evaluateSlices, pooledLoss, resolutionReport, type EvaluationReport } from './evaluate';
import { PAPER_TABLE1, paperRow, type Scores } from './metrics';
import { AUNet } from './model';
import { batchThatFits, predictProbabilities } from './predict';
import { batchLossAndGradients } from './step';
import { lockRun } from './lock';

export const LAST = 'last.safetensors';
export const BEST = 'best.safetensors';
export const LOG = 'metrics.jsonl';
export const CONFIG_FILE = 'config.json';
export const EVALUATION_FILE = 'evaluation.json';

/** One line of metrics.jsonl. */
export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  valLoss: number;
  val: Scores;
  test: Scores;
  lr: number;
  seconds: number;
  slicesPerSecond: number;
  best: boolean;
}

/** Progress of the epoch in progress, for a progress bar. */
export interface StepProgress {
  epoch: number;
  epochs: number;
  slicesDone: number;
  slicesTotal: number;
  loss: number;
  slicesPerSecond: number;
}

export interface TrainOptions {
  /** The run folder. With `resume`, the folder of the run to continue. */
  out: string;
  /** Continue the run in `out` from its last checkpoint. */
  resume?: boolean;
  /** Messages for the user (default: console.log). */
  log?: (message: string) => void;
  onStep?: (p: StepProgress) => void;
  onEpochStart?: (epoch: number, epochs: number, slices: number) => void;
  onEpoch?: (r: EpochRecord) => void;
}

export interface TrainResult {
  out: string;
  epochs: number;
  bestEpoch: number;
  stoppedEarly: boolean;
  /** Test scores of the best checkpoint at the model's and the original resolution. */
  evaluation: EvaluationReport | null;
}

/** The loss became NaN or infinite: the run stops, its last checkpoint is the last good state. */
export class DivergedError extends Error {
  override name = 'DivergedError';
}

/** What a run was trained on; stored in its checkpoints and checked on resume and evaluation. */
export interface DataInfo {
  count: number;
  height: number;
  width: number;
  intensity: string;
  /** The image file's slice axis (absent in checkpoints written before it was recorded: 2). */
  sliceAxis?: number;
}

export const DATA_KEY = 'aunet.data';

export function dataInfo(ds: SliceDataset): DataInfo {
  return { count: ds.count, height: ds.height, width: ds.width, intensity: ds.intensity, sliceAxis: ds.sliceAxis };
}

/**
 * Throws when `ds` has another slice count or size than the run was trained on (its split would
 * differ, so test slices could have been trained on). Returns a warning when only the intensity
 * kind differs (a model trained on the 8-bit copy sees other values on Hounsfield files).
 */
export function checkSameData(stored: string | undefined, ds: SliceDataset, file: string): string | null {
  if (!stored) return null; // written before the data was recorded
  const was = JSON.parse(stored) as DataInfo;
  if (was.count !== ds.count || was.height !== ds.height || was.width !== ds.width || (was.sliceAxis ?? 2) !== ds.sliceAxis) {
    throw new CheckpointError(
      `${file} was trained on ${was.count} slices of ${was.height}x${was.width} along ${'xyz'[was.sliceAxis ?? 2]}, ` +
        `this data has ${ds.count} of ${ds.height}x${ds.width} along ${'xyz'[ds.sliceAxis]}: ` +
        'its train/test split would not hold; use the data it was trained on (--data)',
    );
  }
  return was.intensity === ds.intensity ? null : `warning: ${file} was trained on ${was.intensity} images, this data is ${ds.intensity}: scores may suffer`;
}

/** The random generator of an epoch: a function of the seed and the epoch alone, so a resumed run draws what the uninterrupted one would. */
function epochRng(seed: number, epoch: number): Rng {
  return new Rng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(epoch, 0x85ebca6b)) >>> 0);
}

interface SchedulerState {
  plateau: { best: number | null; numBadEpochs: number; cooldownCounter: number };
  early: { best: number | null; bestEpoch: number; epoch: number; wait: number; stopped?: boolean };
}

function schedulerState(plateau: ReduceLROnPlateau, early: EarlyStopping): SchedulerState {
  const finite = (v: number) => (Number.isFinite(v) ? v : null);
  return {
    plateau: { best: finite(plateau.best), numBadEpochs: plateau.numBadEpochs, cooldownCounter: plateau.cooldownCounter },
    early: { best: finite(early.best), bestEpoch: early.bestEpoch, epoch: early.epoch, wait: early.wait, stopped: early.stopped },
  };
}

function restoreSchedulers(s: SchedulerState, plateau: ReduceLROnPlateau, early: EarlyStopping): void {
  plateau.best = s.plateau.best ?? -Infinity;
  plateau.numBadEpochs = s.plateau.numBadEpochs;
  plateau.cooldownCounter = s.plateau.cooldownCounter;
  early.best = s.early.best ?? -Infinity;
  early.bestEpoch = s.early.bestEpoch;
  early.epoch = s.early.epoch;
  early.wait = s.early.wait;
  early.stopped = s.early.stopped ?? false;
}

/** The config of the run in `dir`, from its last checkpoint. */
export async function runConfig(dir: string): Promise<TrainConfig> {
  return (await runState(dir)).config;
}

/** Where a run folder stands: its config, the last epoch its checkpoint holds, and whether early stopping ended it. */
export async function runState(dir: string): Promise<{ config: TrainConfig; epoch: number; stoppedEarly: boolean }> {
  const file = join(dir, LAST);
  if (!existsSync(file)) {
    throw new CheckpointError(
      `${dir} holds no ${LAST}: ${existsSync(join(dir, CONFIG_FILE)) ? 'the run stopped before its first epoch ended; start it again with --out' : 'it is not a run folder of this trainer'}`,
    );
  }
  let metadata: Record<string, string>;
  try {
    metadata = decodeSafetensors(new Uint8Array(await readFile(file)), file).metadata;
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CheckpointError(`${e.message} (${file} is damaged: the run cannot be resumed; start a new one with another --out)`);
    throw e;
  }
  const config = configFromMetadata(metadata, file);
  const state = metadata[STATE_KEY] ? (JSON.parse(metadata[STATE_KEY]) as SchedulerState) : null;
  return { config, epoch: Number(metadata[EPOCH_KEY] ?? 0), stoppedEarly: state?.early.stopped ?? false };
}

function divergedMessage(what: string, epoch: number, out: string): string {
  return (
    `${what}: training stopped. ${epoch > 1 ? `${join(out, LAST)} still holds epoch ${epoch - 1}` : 'no checkpoint was written'}; ` +
    'start a new run (another --out) with a lower --lr'
  );
}

/**
 * Train `config` into the run folder `o.out`: config.json, metrics.jsonl (one line per epoch),
 * last.safetensors (every epoch, with the optimiser and scheduler state), best.safetensors (best
 * validation Dice) and, at the end, evaluation.json (the best checkpoint on the test slices).
 * Validation Dice (pooled, threshold 0.5) drives the learning-rate schedule, early stopping and
 * the best checkpoint; the test slices are scored every epoch for the log but steer nothing.
 */
export async function train(config: TrainConfig, o: TrainOptions): Promise<TrainResult> {
  validateTrainConfig(config);
  // One run per folder: a second run pointed at it refuses instead of interleaving checkpoints.
  const unlock = lockRun(resolve(o.out));
  try {
    return await trainLocked(config, o);
  } finally {
    unlock();
  }
}

/** The run itself; `train` has validated the config and holds the folder's lock. */
async function trainLocked(config: TrainConfig, o: TrainOptions): Promise<TrainResult> {
  const log = o.log ?? console.log;
  const out = resolve(o.out);
  // Slices per forward pass: the whole batch where its activations fit one storage binding,
  // else exact chunks (see batchLossAndGradients).
  const chunk = batchThatFits(config.model, config.batch);
  const ds = await loadDataset(config.data);
  const size = config.model.inputSize;
  const resized = resizeDataset(ds, size);
  const split = splitFor(config, ds.count);
  if (split.train.length === 0 || split.val.length === 0 || split.test.length === 0) {
    throw new Error(
      `${ds.count} slices leave ${split.train.length} for training, ${split.val.length} for validation and ${split.test.length} for testing: ` +
        'each needs at least one; use more data',
    );
  }

  manualSeed(config.seed);
  const model = new AUNet(config.model);
  const opt = new Adam(model, { lr: config.lr });
  const plateau = new ReduceLROnPlateau(opt, { mode: 'max', factor: config.lrFactor, patience: config.lrPatience });
  const early = new EarlyStopping({ mode: 'max', patience: config.earlyStopping });
  let firstEpoch = 1;

  try {
    if (o.resume) {
      const file = join(out, LAST);
      const metadata = await loadCheckpoint(file, model, { optimizer: opt }).catch((e: Error) => {
        throw new CheckpointError(`${e.message}\n(${file} cannot be resumed: start a new run with another --out)`);
      });
      const epoch = Number(metadata[EPOCH_KEY]);
      if (!metadata[STATE_KEY] || !Number.isInteger(epoch)) throw new CheckpointError(`${file} lacks the trainer's state ("${STATE_KEY}", "${EPOCH_KEY}"): it cannot be resumed`);
      const warning = checkSameData(metadata[DATA_KEY], ds, file);
      if (warning) log(warning);
      restoreSchedulers(JSON.parse(metadata[STATE_KEY]) as SchedulerState, plateau, early);
      firstEpoch = epoch + 1;
      await truncateLog(join(out, LOG), epoch);
      log(`resuming ${out} after epoch ${epoch} (best validation Dice ${(100 * early.best).toFixed(1)} at epoch ${early.bestEpoch + 1})`);
    } else {
      if (existsSync(join(out, LAST))) {
        throw new Error(`${out} already holds a run (${LAST}): continue it with --resume ${o.out}, or choose another --out`);
      }
      await mkdir(out, { recursive: true });
      // A run killed during its first epoch may have left a log line; this run starts over.
      await rm(join(out, LOG), { force: true });
      await writeFileAtomic(join(out, CONFIG_FILE), new TextEncoder().encode(JSON.stringify({ ...config, split }, null, 2) + '\n'));
    }
  } catch (e) {
    model.dispose();
    opt.dispose();
    throw e;
  }

  log(
    `data: ${ds.count} slices ${ds.height}x${ds.width} (${ds.intensity}) from ${config.data}; ` +
      `${split.train.length} train / ${split.val.length} validation / ${split.test.length} test${config.fold ? ` (fold ${config.fold.k}/${config.fold.K})` : ''}`,
  );
  log(
    `model: ${config.model.architecture} ${config.model.filters.join('-')}, ${(model.numParameters() / 1e6).toFixed(2)} M parameters, ${size}x${size}, ` +
      `batch ${config.batch}${chunk < config.batch ? ` (in chunks of ${chunk}: the whole batch exceeds this adapter's storage binding limit)` : ''}, loss ${config.loss}, lr ${opt.lr}`,
  );

  const plane = size * size;
  const augmentation = config.augment === 'full' ? FULL_AUGMENT : BASIC_AUGMENT;
  let stoppedEarly = false;
  let lastEpoch = firstEpoch - 1;

  try {
    for (let epoch = firstEpoch; epoch <= config.epochs && !early.stopped; epoch++) {
      const t0 = performance.now();
      const rng = epochRng(config.seed, epoch);
      const order = rng.shuffle([...split.train]);
      o.onEpochStart?.(epoch, config.epochs, order.length);
      model.train();
      let lossSum = 0;
      for (let b = 0; b < order.length; b += config.batch) {
        const idx = order.slice(b, b + config.batch);
        const xs = new Float32Array(idx.length * plane);
        const ys = new Float32Array(idx.length * plane);
        idx.forEach((i, j) => {
          const pair = config.augment === 'none' ? { image: resized.images[i], mask: resized.masks[i] } : augmentPair(resized.images[i], resized.masks[i], size, rng, augmentation);
          xs.set(pair.image, j * plane);
          ys.set(pair.mask, j * plane);
        });
        const loss = await batchLossAndGradients(model, xs, ys, idx.length, config, chunk);
        opt.step();
        opt.zeroGrad();
        if (!Number.isFinite(loss)) {
          throw new DivergedError(divergedMessage(`the loss became ${loss} at epoch ${epoch}, batch ${b / config.batch + 1}`, epoch, out));
        }
        lossSum += loss * idx.length;
        const done = b + idx.length;
        o.onStep?.({ epoch, epochs: config.epochs, slicesDone: done, slicesTotal: order.length, loss: lossSum / done, slicesPerSecond: done / ((performance.now() - t0) / 1000) });
      }
      const trainSeconds = (performance.now() - t0) / 1000;

      model.eval();
      const valProbs = await predictProbabilities(model, split.val.map((i) => resized.images[i]), config.batch);
      const testProbs = await predictProbabilities(model, split.test.map((i) => resized.images[i]), config.batch);
      const valLoss = pooledLoss(valProbs, split.val.map((i) => resized.masks[i]), config);
      if (!Number.isFinite(valLoss)) throw new DivergedError(divergedMessage(`the validation predictions are not finite after epoch ${epoch}`, epoch, out));
      const scoreAtModel = (probs: Float32Array[], indices: number[]) =>
        resolutionReport(probs, indices.map((i) => resized.masks[i]), indices, `${size}x${size}`).pooled;
      const val = scoreAtModel(valProbs, split.val);
      const test = scoreAtModel(testProbs, split.test);
      const lr = opt.lr;
      plateau.step(val.dice);
      const stop = await early.step(val.dice);
      const isBest = early.bestEpoch === early.epoch;
      const record: EpochRecord = {
        epoch,
        trainLoss: lossSum / order.length,
        valLoss,
        val,
        test,
        lr,
        seconds: (performance.now() - t0) / 1000,
        slicesPerSecond: order.length / trainSeconds,
        best: isBest,
      };
      // The log line first, then the checkpoints: a kill in between leaves a line that the
      // resumed run drops (truncateLog) and writes again.
      await appendFile(join(out, LOG), JSON.stringify(record) + '\n');
      const metadata = {
        [CONFIG_KEY]: JSON.stringify(config),
        [EPOCH_KEY]: String(epoch),
        [STATE_KEY]: JSON.stringify(schedulerState(plateau, early)),
        [DATA_KEY]: JSON.stringify(dataInfo(ds)),
      };
      if (isBest) await saveCheckpoint(join(out, BEST), model, { metadata: { ...metadata, 'aunet.val': JSON.stringify(val) } });
      await saveCheckpoint(join(out, LAST), model, { optimizer: opt, metadata });
      lastEpoch = epoch;
      o.onEpoch?.(record);
      if (stop) {
        stoppedEarly = true;
        log(`early stopping: no validation improvement for ${config.earlyStopping} epochs`);
        break;
      }
    }
  } finally {
    model.dispose();
    opt.dispose();
  }

  let evaluation: EvaluationReport | null = null;
  if (existsSync(join(out, BEST))) {
    const best = await loadRunCheckpoint(join(out, BEST));
    try {
      evaluation = await evaluateSlices(best.model, ds, resized, split.test, { batch: config.batch });
      await writeEvaluation(join(out, EVALUATION_FILE), { checkpoint: join(out, BEST), epoch: best.epoch, data: config.data, config, report: evaluation });
    } finally {
      best.model.dispose();
    }
  }
  return { out, epochs: lastEpoch, bestEpoch: early.bestEpoch + 1, stoppedEarly, evaluation };
}

/** Keep only the lines of metrics.jsonl up to `epoch` (a kill can leave one more). */
async function truncateLog(file: string, epoch: number): Promise<void> {
  if (!existsSync(file)) return;
  const lines = (await readFile(file, 'utf8')).split('\n').filter((line) => {
    if (!line.trim()) return false;
    try {
      return (JSON.parse(line) as EpochRecord).epoch <= epoch;
    } catch {
      return false; // a line cut by the kill
    }
  });
  await writeFileAtomic(file, new TextEncoder().encode(lines.map((l) => l + '\n').join('')));
}

/** Write an evaluation report with the paper's Table 1 row beside it (atomically). */
export async function writeEvaluation(file: string, e: { checkpoint: string; epoch: number; data: string; config: TrainConfig; report: EvaluationReport }): Promise<void> {
  const row = paperRow(e.config.model.architecture, e.config.loss);
  const json = { checkpoint: e.checkpoint, epoch: e.epoch, data: e.data, paper: { row, ...PAPER_TABLE1[row] }, ...e.report };
  await writeFileAtomic(file, new TextEncoder().encode(JSON.stringify(json, null, 2) + '\n'));
}
