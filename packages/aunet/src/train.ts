// The trainer: the paper's recipe (Adam, focal Tversky or soft Dice, lr halved on plateau, early
// stopping) on a seeded split of the slices, or on every slice for the model to ship
// (`allSlices`), in a run folder that survives kills (run-folder.ts).
// A run is a short loop over named phases: open (or resume) the run, train an epoch, score it,
// save it; and at the end evaluate the best checkpoint. Node-only.

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Adam, EarlyStopping, loadCheckpoint, manualSeed, ReduceLROnPlateau } from '@aunet/nn';
import { Rng } from '@aunet/tensor';
import { CheckpointError, checkSameData, DATA_KEY, dataInfo, EPOCH_KEY, STATE_KEY, type CheckpointRecord } from './checkpoint';
import { splitFor, validateTrainConfig, type TrainConfig } from './config';
import { resizeDataset, type SliceDataset } from './data/dataset';
import { loadDataset } from './data/files';
import { splitRecord, type Split } from './data/split';
import { augmentPair, BASIC_AUGMENT, FULL_AUGMENT } from './data/transforms';
import { evaluateSlices, resolutionReport, type EvaluationReport } from './evaluate';
import { pooledLoss } from './loss';
import { pct, type Scores } from './metrics';
import { AUNet } from './model';
import { batchThatFits, predictProbabilities } from './predict';
import {
  appendEpochRecord, BEST, EVALUATION_FILE, keepRunSplit, LAST, loadRunCheckpoint, lockRun, saveRunCheckpoint, startRunFolder, truncateLog, writeEvaluation, type EpochRecord,
} from './run-folder';
import { batchLossAndGradients } from './step';

export type { EpochRecord } from './run-folder';

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
  /** The epoch of best.safetensors; null in a run on all slices (nothing to choose by). */
  bestEpoch: number | null;
  stoppedEarly: boolean;
  /** Test scores of the best checkpoint at the model's and the original resolution (null on all slices: no test slices). */
  evaluation: EvaluationReport | null;
}

/** The loss became NaN or infinite: the run stops, its last checkpoint is the last good state. */
export class DivergedError extends Error {
  override name = 'DivergedError';
}

/**
 * Train `config` into the run folder `o.out` (see run-folder.ts for its files): a checkpoint and a
 * log line every epoch, and at the end evaluation.json (the best checkpoint on the test slices).
 * Validation Dice (pooled, threshold 0.5) drives the learning-rate schedule, early stopping and
 * the best checkpoint; the test slices are scored every epoch for the log but steer nothing.
 * With `config.allSlices` every slice trains: no scores, schedule, early stopping, best
 * checkpoint or evaluation; exactly `config.epochs` epochs at `config.lr`, the model in last.safetensors.
 */
export async function train(config: TrainConfig, o: TrainOptions): Promise<TrainResult> {
  validateTrainConfig(config);
  // One run per folder: a second run pointed at it refuses instead of interleaving checkpoints.
  const unlock = lockRun(resolve(o.out));
  try {
    const run = await openRun(config, o);
    try {
      describeRun(run);
      while (run.epoch < config.epochs && !run.early.stopped) {
        const epoch = run.epoch + 1;
        const started = performance.now();
        const trained = await trainEpoch(run, epoch, o);
        const scores = config.allSlices ? null : await scoreEpoch(run, epoch);
        const { record, stop } = await endEpoch(run, epoch, trained, scores, (performance.now() - started) / 1000);
        await saveEpoch(run, record);
        run.epoch = epoch;
        o.onEpoch?.(record);
        if (stop) {
          run.stoppedEarly = true;
          run.log(`early stopping: no validation improvement for ${config.earlyStopping} epochs`);
        }
      }
    } finally {
      run.model.dispose();
      run.opt.dispose();
    }
    const evaluation = await evaluateBest(run);
    return { out: run.out, epochs: run.epoch, bestEpoch: config.allSlices ? null : run.early.bestEpoch + 1, stoppedEarly: run.stoppedEarly, evaluation };
  } finally {
    unlock();
  }
}

/** Everything a run holds while it trains. */
interface Run {
  config: TrainConfig;
  /** The run folder, resolved. */
  out: string;
  log: (message: string) => void;
  /** The slices at their own resolution, and resized to the model's input size. */
  ds: SliceDataset;
  resized: { images: Float32Array[]; masks: Uint8Array[] };
  split: Split;
  /** Slices per forward pass (see batchLossAndGradients). */
  chunk: number;
  model: AUNet;
  opt: Adam;
  plateau: ReduceLROnPlateau;
  early: EarlyStopping;
  /** The last epoch done (0 before the first). */
  epoch: number;
  stoppedEarly: boolean;
}

/**
 * Phase 1: read the data, build the model, optimiser and schedulers, and either start the run
 * folder or restore the state of its last checkpoint.
 */
async function openRun(config: TrainConfig, o: TrainOptions): Promise<Run> {
  const out = resolve(o.out);
  const log = o.log ?? console.log;
  const ds = await loadDataset(config.data);
  const split = splitFor(config, ds.count, ds.cases);
  if (!config.allSlices && (split.train.length === 0 || split.val.length === 0 || split.test.length === 0)) {
    const cases = ds.cases && splitRecord(split, ds.cases);
    throw new Error(
      cases
        ? `${ds.cases!.length} cases leave ${cases.train.length} for training, ${cases.val.length} for validation and ${cases.test.length} for testing: each needs at least one; use more cases`
        : `${ds.count} slices leave ${split.train.length} for training, ${split.val.length} for validation and ${split.test.length} for testing: ` +
          'each needs at least one; use more data',
    );
  }
  const resized = resizeDataset(ds, config.model.inputSize);
  // The whole batch where its activations fit one storage binding, else exact chunks.
  const chunk = batchThatFits(config.model, config.batch);
  manualSeed(config.seed);
  const model = new AUNet(config.model);
  const opt = new Adam(model, { lr: config.lr });
  const run: Run = {
    config,
    out,
    log,
    ds,
    resized,
    split,
    chunk,
    model,
    opt,
    plateau: new ReduceLROnPlateau(opt, { mode: 'max', factor: config.lrFactor, patience: config.lrPatience }),
    early: new EarlyStopping({ mode: 'max', patience: config.earlyStopping }),
    epoch: 0,
    stoppedEarly: false,
  };
  try {
    if (o.resume) await resumeRun(run);
    else await startRunFolder(out, config, split, o.out, ds.cases);
  } catch (e) {
    model.dispose();
    opt.dispose();
    throw e;
  }
  return run;
}

/** The trainer's state in last.safetensors: the LR scheduler's and early stopping's counters. */
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

/** Load last.safetensors into the run (weights, optimiser, schedulers) and drop log lines past it. */
async function resumeRun(run: Run): Promise<void> {
  const file = join(run.out, LAST);
  const metadata = await loadCheckpoint(file, run.model, { optimizer: run.opt }).catch((e: Error) => {
    throw new CheckpointError(`${e.message}\n(${file} cannot be resumed: start a new run with another --out)`);
  });
  const epoch = Number(metadata[EPOCH_KEY]);
  if (!metadata[STATE_KEY] || !Number.isInteger(epoch)) throw new CheckpointError(`${file} lacks the trainer's state ("${STATE_KEY}", "${EPOCH_KEY}"): it cannot be resumed`);
  const warning = checkSameData(metadata[DATA_KEY], run.ds, file);
  if (warning) run.log(warning);
  // The split stays the one the run started with: split.json is checked against it (or written, for an older run).
  await keepRunSplit(run.out, run.split, run.ds.cases);
  restoreSchedulers(JSON.parse(metadata[STATE_KEY]) as SchedulerState, run.plateau, run.early);
  run.epoch = epoch;
  await truncateLog(run.out, epoch);
  run.log(
    `resuming ${run.out} after epoch ${epoch} ` +
      (run.config.allSlices ? '(on all slices: no validation)' : `(best validation Dice ${pct(run.early.best)} at epoch ${run.early.bestEpoch + 1})`),
  );
}

/** The data and model lines the user sees before the first epoch. */
function describeRun(run: Run): void {
  const { config, ds, split, chunk } = run;
  const size = config.model.inputSize;
  const cases = ds.cases && splitRecord(split, ds.cases);
  const inCases = (part: 'train' | 'val' | 'test') => (cases ? ` (${cases[part].length} case${cases[part].length === 1 ? '' : 's'})` : '');
  run.log(
    `data: ${ds.count} slices ${ds.height}x${ds.width} (${ds.intensity})${ds.cases ? ` of ${ds.cases.length} cases` : ''} from ${config.data}; ` +
      (config.allSlices
        ? `all ${split.train.length} train (--all-slices: no validation or test slices; ${config.epochs} epochs at lr ${config.lr}, no plateau schedule, early stopping or best checkpoint)`
        : `${split.train.length} train${inCases('train')} / ${split.val.length} validation${inCases('val')} / ${split.test.length} test${inCases('test')}` +
          `${config.fold ? ` (fold ${config.fold.k}/${config.fold.K})` : ''}${config.splitFile ? `, split from ${config.splitFile.file}` : ds.cases ? ', split by case' : ''}`),
  );
  const unused = ds.count - split.train.length - split.val.length - split.test.length;
  if (unused > 0) run.log(`note: ${unused} slices${cases ? ` (${ds.cases!.length - cases.train.length - cases.val.length - cases.test.length} cases)` : ''} are in no list of ${config.splitFile?.file}: left out`);
  run.log(
    `model: ${config.model.architecture} ${config.model.filters.join('-')}, ${(run.model.numParameters() / 1e6).toFixed(2)} M parameters, ${size}x${size}, ` +
      `batch ${config.batch}${chunk < config.batch ? ` (in chunks of ${chunk}: the whole batch exceeds this adapter's storage binding limit)` : ''}, loss ${config.loss}, lr ${run.opt.lr}`,
  );
}

/** The random generator of an epoch: a function of the seed and the epoch alone, so a resumed run draws what the uninterrupted one would. */
function epochRng(seed: number, epoch: number): Rng {
  return new Rng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(epoch, 0x85ebca6b)) >>> 0);
}

function divergedMessage(what: string, epoch: number, out: string): string {
  return (
    `${what}: training stopped. ${epoch > 1 ? `${join(out, LAST)} still holds epoch ${epoch - 1}` : 'no checkpoint was written'}; ` +
    'start a new run (another --out) with a lower --lr'
  );
}

/** Phase 2: one pass over the training slices in a shuffled order, augmented; the mean loss. */
async function trainEpoch(run: Run, epoch: number, o: TrainOptions): Promise<{ loss: number; seconds: number; slices: number }> {
  const { config, resized, model, opt } = run;
  const t0 = performance.now();
  const size = config.model.inputSize;
  const plane = size * size;
  const augmentation = config.augment === 'full' ? FULL_AUGMENT : BASIC_AUGMENT;
  const rng = epochRng(config.seed, epoch);
  const order = rng.shuffle([...run.split.train]);
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
    const loss = await batchLossAndGradients(model, xs, ys, idx.length, config, run.chunk);
    opt.step();
    opt.zeroGrad();
    if (!Number.isFinite(loss)) {
      throw new DivergedError(divergedMessage(`the loss became ${loss} at epoch ${epoch}, batch ${b / config.batch + 1}`, epoch, run.out));
    }
    lossSum += loss * idx.length;
    const done = b + idx.length;
    o.onStep?.({ epoch, epochs: config.epochs, slicesDone: done, slicesTotal: order.length, loss: lossSum / done, slicesPerSecond: done / ((performance.now() - t0) / 1000) });
  }
  return { loss: lossSum / order.length, seconds: (performance.now() - t0) / 1000, slices: order.length };
}

/** Phase 3: the validation loss and scores, and the test scores for the log, at the model's size. */
async function scoreEpoch(run: Run, epoch: number): Promise<{ valLoss: number; val: Scores; test: Scores }> {
  const { config, resized, split, model } = run;
  const size = config.model.inputSize;
  model.eval();
  const valProbs = await predictProbabilities(model, split.val.map((i) => resized.images[i]), config.batch);
  const testProbs = await predictProbabilities(model, split.test.map((i) => resized.images[i]), config.batch);
  const valLoss = pooledLoss(valProbs, split.val.map((i) => resized.masks[i]), config);
  if (!Number.isFinite(valLoss)) throw new DivergedError(divergedMessage(`the validation predictions are not finite after epoch ${epoch}`, epoch, run.out));
  const scoreAtModel = (probs: Float32Array[], indices: number[]) => resolutionReport(probs, indices.map((i) => resized.masks[i]), indices, `${size}x${size}`).pooled;
  return { valLoss, val: scoreAtModel(valProbs, split.val), test: scoreAtModel(testProbs, split.test) };
}

/**
 * Phase 4: step the LR schedule and early stopping on the validation Dice; the epoch's log line.
 * Without scores (a run on all slices) neither steps, and no epoch is the best.
 */
async function endEpoch(
  run: Run,
  epoch: number,
  trained: { loss: number; seconds: number; slices: number },
  scores: { valLoss: number; val: Scores; test: Scores } | null,
  seconds: number,
): Promise<{ record: EpochRecord; stop: boolean }> {
  const lr = run.opt.lr;
  let stop = false;
  if (scores) {
    run.plateau.step(scores.val.dice);
    stop = await run.early.step(scores.val.dice);
  }
  const record: EpochRecord = {
    epoch,
    trainLoss: trained.loss,
    valLoss: scores?.valLoss ?? null,
    val: scores?.val ?? null,
    test: scores?.test ?? null,
    lr,
    seconds,
    slicesPerSecond: trained.slices / trained.seconds,
    best: scores !== null && run.early.bestEpoch === run.early.epoch,
  };
  return { record, stop };
}

/**
 * Phase 5: the log line first, then the checkpoints (best.safetensors when the epoch is the best,
 * last.safetensors with the optimiser and schedulers always): a kill in between leaves a line
 * that the resumed run drops (truncateLog) and writes again.
 */
async function saveEpoch(run: Run, record: EpochRecord): Promise<void> {
  await appendEpochRecord(run.out, record);
  const saved: CheckpointRecord = { config: run.config, epoch: record.epoch, state: schedulerState(run.plateau, run.early), data: dataInfo(run.ds) };
  if (record.best) await saveRunCheckpoint(join(run.out, BEST), run.model, { ...saved, val: record.val! });
  await saveRunCheckpoint(join(run.out, LAST), run.model, saved, run.opt);
}

/** Phase 6: the best checkpoint on the test slices, at both resolutions, into evaluation.json. */
async function evaluateBest(run: Run): Promise<EvaluationReport | null> {
  const file = join(run.out, BEST);
  // No epoch finished, or a run on all slices (no best checkpoint, no test slices).
  if (!existsSync(file) || run.config.allSlices) return null;
  const { config } = run;
  const best = await loadRunCheckpoint(file);
  try {
    const evaluation = await evaluateSlices(best.model, run.ds, run.resized, run.split.test, { batch: config.batch });
    await writeEvaluation(join(run.out, EVALUATION_FILE), { checkpoint: file, epoch: best.epoch, data: config.data, config, report: evaluation });
    return evaluation;
  } finally {
    best.model.dispose();
  }
}
