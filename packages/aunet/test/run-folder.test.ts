// The run folder's functions one by one, on folders made here (the trainer's own use of them is
// in train.test.ts and chaos.test.ts): checkpoints with the trainer's record, where a run stands,
// the metrics log, evaluation files, comparing settings, the latest best checkpoint, the check of
// a finished folder.
import './conv-variant';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setupGPU } from '@aunet/tensor/testing';
import { decodeSafetensors } from '@aunet/nn';
import { CheckpointError, CONFIG_KEY, DATA_KEY, EPOCH_KEY, readCheckpointMetadata, STATE_KEY, VAL_KEY } from '../src/checkpoint';
import { defaultTrainConfig, type TrainConfig } from '../src/config';
import { DEFAULT_DATA_DIR } from '../src/data/files';
import type { EvaluationReport } from '../src/evaluate';
import { AUNet } from '../src/model';
import {
  appendEpochRecord, BEST, checkRunFolder, CONFIG_FILE, EVALUATION_FILE, evaluationFileFor, LAST, latestBestCheckpoint, LOCK_FILE, LOG, readEvaluation, runConfig,
  runDifferences, runState, saveRunCheckpoint, startRunFolder, truncateLog, writeEvaluation, type EpochRecord,
} from '../src/run-folder';

const tmp = mkdtempSync(join(tmpdir(), 'aunet-run-folder-'));
const config = (over: Partial<Omit<TrainConfig, 'model'>> = {}): TrainConfig =>
  defaultTrainConfig('cpu', DEFAULT_DATA_DIR, { epochs: 3, ...over, model: { inputSize: 32, filters: [4, 8] } });
const scores = { dice: 0.5, sensitivity: 0.6, specificity: 0.9 };
const record = (epoch: number): EpochRecord => ({ epoch, trainLoss: 1 / epoch, valLoss: 1, val: scores, test: scores, lr: 1e-3, seconds: 1, slicesPerSecond: 1, best: epoch === 1 });
const logEpochs = (dir: string) => readFileSync(join(dir, LOG), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as EpochRecord).epoch);

const t = suite('run folder');
t.before(setupGPU);

t('saveRunCheckpoint stores the trainer record under the named keys; runState and runConfig read it back', async () => {
  const dir = join(tmp, 'state');
  mkdirSync(dir);
  const c = config();
  const model = new AUNet(c.model);
  try {
    const state = { early: { stopped: true } };
    await saveRunCheckpoint(join(dir, LAST), model, { config: c, epoch: 2, state, data: { count: 100, height: 512, width: 512, intensity: '8bit', sliceAxis: 2 }, val: scores });
    const metadata = decodeSafetensors(new Uint8Array(readFileSync(join(dir, LAST)))).metadata;
    assert.equal(JSON.parse(metadata[CONFIG_KEY]), c);
    assert.is(metadata[EPOCH_KEY], '2');
    assert.equal(JSON.parse(metadata[STATE_KEY]), state);
    assert.equal(JSON.parse(metadata[DATA_KEY]).count, 100);
    assert.equal(JSON.parse(metadata[VAL_KEY]), scores);
    assert.equal(await runState(dir), { config: c, epoch: 2, stoppedEarly: true });
    assert.equal(await runConfig(dir), c);
  } finally {
    model.dispose();
  }
});

t('runState names what is wrong with a folder that holds no usable last checkpoint', async () => {
  const empty = join(tmp, 'empty');
  mkdirSync(empty);
  await runState(empty).then(() => assert.unreachable(), (e) => assert.match((e as Error).message, /holds no last\.safetensors: it is not a run folder/));
  writeFileSync(join(empty, CONFIG_FILE), '{}');
  await runState(empty).then(() => assert.unreachable(), (e) => assert.match((e as Error).message, /stopped before its first epoch ended/));
  writeFileSync(join(empty, LAST), 'not a checkpoint at all');
  await runState(empty).then(
    () => assert.unreachable(),
    (e) => {
      assert.instance(e, CheckpointError);
      assert.match((e as Error).message, /damaged or not a checkpoint: the run cannot be resumed/);
    },
  );
});

t('readCheckpointMetadata wraps a decoding error as a CheckpointError that names the file', () => {
  assert.throws(() => readCheckpointMetadata(new Uint8Array([1, 2, 3]), 'x.safetensors'), (e: Error) => e instanceof CheckpointError && /x\.safetensors/.test(e.message) && /damaged or not a checkpoint/.test(e.message));
});

t('startRunFolder writes config.json with the split and drops a log a killed first epoch left; refuses a folder with a run', async () => {
  const dir = join(tmp, 'start');
  mkdirSync(dir);
  writeFileSync(join(dir, LOG), '{"epoch":1,');
  const split = { train: [0, 1], val: [2], test: [3] };
  await startRunFolder(dir, config(), split);
  assert.equal(JSON.parse(readFileSync(join(dir, CONFIG_FILE), 'utf8')).split, split);
  assert.throws(() => readFileSync(join(dir, LOG)), /ENOENT/);
  writeFileSync(join(dir, LAST), '');
  await startRunFolder(dir, config(), split, 'runs/start').then(() => assert.unreachable(), (e) => assert.match((e as Error).message, /already holds a run .*--resume runs\/start/));
});

t('the metrics log: appended per epoch, cut back to the checkpoint\'s epoch (a half-written line dropped)', async () => {
  const dir = join(tmp, 'log');
  mkdirSync(dir);
  for (const e of [1, 2, 3]) await appendEpochRecord(dir, record(e));
  writeFileSync(join(dir, LOG), readFileSync(join(dir, LOG), 'utf8') + '{"epoch":4,"trainLo');
  await truncateLog(dir, 2);
  assert.equal(logEpochs(dir), [1, 2]);
  await truncateLog(join(tmp, 'no-such-folder'), 2); // nothing to cut
});

t('evaluation files: named after the checkpoint, written with the paper row, NaN read back', async () => {
  assert.is(evaluationFileFor('/r/best.safetensors'), '/r/evaluation-best.json');
  assert.is(evaluationFileFor('/r/last.safetensors', { tta: true, lung: true }), '/r/evaluation-last-tta-lung.json');
  const resolution = { resolution: '32x32', pooled: { ...scores, dice: NaN }, perSliceMean: scores, perSlice: [] };
  const report: EvaluationReport = { slices: [3], threshold: 0.5, model: resolution, original: { ...resolution, resolution: '512x512' } };
  const file = join(tmp, EVALUATION_FILE);
  await writeEvaluation(file, { checkpoint: 'best.safetensors', epoch: 7, data: DEFAULT_DATA_DIR, config: config({ loss: 'dice' }), report });
  const json = JSON.parse(readFileSync(file, 'utf8'));
  assert.equal(json.paper, { row: 'AU-Net + DL', dice: 68.5, sensitivity: 71.1, specificity: 98.1 });
  assert.is(json.epoch, 7);
  assert.is(json.model.pooled.dice, null);
  const back = await readEvaluation(file);
  assert.ok(Number.isNaN(back.model.pooled.dice));
  assert.equal(back.original.resolution, '512x512');
});

t('runDifferences names each setting that differs, ignoring the epoch budget', () => {
  const a = config();
  assert.equal(runDifferences(a, config({ epochs: 9 })), []);
  assert.equal(runDifferences(a, config({ seed: 2, loss: 'dice' })), ['loss: "ftl" there, "dice" asked', 'seed: 1 there, 2 asked']);
  assert.equal(runDifferences(a, { ...a, model: { ...a.model, architecture: 'unet' } }), ['model.architecture: "aunet" there, "unet" asked']);
});

t('latestBestCheckpoint: the newest best.safetensors up to three levels down, null when none', () => {
  const runs = join(tmp, 'runs');
  assert.is(latestBestCheckpoint(runs), null);
  const older = join(runs, 'a');
  const newer = join(runs, 'cv', 'fold-2');
  const tooDeep = join(runs, 'x', 'y', 'z', 'w');
  for (const d of [older, newer, tooDeep]) mkdirSync(d, { recursive: true });
  writeFileSync(join(older, BEST), '');
  writeFileSync(join(newer, BEST), '');
  writeFileSync(join(tooDeep, BEST), '');
  utimesSync(join(older, BEST), 1000, 1000);
  utimesSync(join(newer, BEST), 2000, 2000);
  utimesSync(join(tooDeep, BEST), 3000, 3000);
  assert.is(latestBestCheckpoint(runs), join(newer, BEST));
});

t('checkRunFolder lists what a finished folder lacks or has left behind', async () => {
  const dir = join(tmp, 'state'); // the first test's checkpoint: epoch 2, stopped early
  for (const e of [1, 2]) await appendEpochRecord(dir, record(e));
  assert.equal(await checkRunFolder(dir, 5), [`${EVALUATION_FILE} was not written`]);
  writeFileSync(join(dir, EVALUATION_FILE), '{}');
  writeFileSync(join(dir, LOCK_FILE), '{}');
  writeFileSync(join(dir, '.last.safetensors.123.abc.tmp'), '');
  const left = await checkRunFolder(dir, 5);
  assert.is(left.length, 1);
  assert.match(left[0], /^left behind: /);
  assert.equal(left[0].replace('left behind: ', '').split(', ').sort(), ['.last.safetensors.123.abc.tmp', LOCK_FILE]);
  await appendEpochRecord(dir, record(2));
  assert.match((await checkRunFolder(dir, 5)).join('\n'), /lists epochs \[1, 2, 2\], expected 1\.\.2 once each/);
});

t.run();
