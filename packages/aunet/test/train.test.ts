// The trainer and the commands, on the shipped data at a tiny size (32x32, filters 4-8-16):
// real training lowers the loss, a run killed with SIGKILL mid-epoch resumes and ends as the
// uninterrupted run does, divergence stops cleanly, and bad inputs give one clear message; a run
// on all slices (the model to ship) trains its epochs without scores, resumes, exports to F16,
// and `evaluate --data` scores it as the default model.
import './conv-variant';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setupGPU } from '@aunet/tensor/testing';
import { Conv2d, decodeSafetensors, encodeSafetensors, f16BitsToFloat32, float32ToF16Bits, manualSeed, saveCheckpoint } from '@aunet/nn';
import { defaultTrainConfig, splitFor, validateTrainConfig, type TrainConfig } from '../src/config';
import { CheckpointError, checkSameData, CONFIG_KEY, configFromMetadata, dataInfo, STATE_KEY } from '../src/checkpoint';
import { DEFAULT_DATA_DIR } from '../src/data/files';
import { writeNifti } from './nifti-fixture';
import { AUNet } from '../src/model';
import { resizeImage, resizeNearest } from '../src/data/transforms';
import { loadDataset } from '../src/data/files';
import { ALL_SLICES_SCOPE, BEST, checkRunFolder, CONFIG_FILE, EVALUATION_FILE, LAST, loadRunCheckpoint, LOCK_FILE, LOG, RunLockedError, type EpochRecord } from '../src/run-folder';
import { MODEL_ENV } from '../src/shipped-model';
import { DivergedError, train } from '../src/train';
import { runOnce } from '../src/experiments';
import type { SliceDataset } from '../src/data/dataset';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'aunet-train-'));
const quiet = () => {};
const tiny = (over: Partial<Omit<TrainConfig, 'model'>> = {}): TrainConfig =>
  defaultTrainConfig('cpu', DEFAULT_DATA_DIR, { epochs: 3, lr: 1e-3, seed: 5, ...over, model: { inputSize: 32, filters: [4, 8, 16] } });
const records = (dir: string): EpochRecord[] =>
  readFileSync(join(dir, LOG), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as EpochRecord);

/** Run a command of this package in a child process (`env`: added to this process's). */
function cli(command: 'train' | 'evaluate' | 'export', args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'src', 'cli', `${command}.ts`), ...args], { cwd: pkg, encoding: 'utf8', timeout: 600_000, env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr.split('\n').filter((l) => l.trim() && !/artificially reduced/.test(l)) };
}

const t = suite('train');
t.before(setupGPU);

const straight = join(tmp, 'straight');

t('a short real training on the shipped data lowers the loss and writes the run folder', async () => {
  const result = await train(tiny(), { out: straight, log: quiet });
  const r = records(straight);
  console.log(`  train loss by epoch: ${r.map((e) => e.trainLoss.toFixed(4)).join(', ')}; validation Dice ${r.map((e) => (100 * e.val!.dice).toFixed(1)).join(', ')}`);
  assert.equal(r.map((e) => e.epoch), [1, 2, 3]);
  assert.ok(r[2].trainLoss < r[0].trainLoss, 'the loss fell');
  for (const f of [LAST, BEST, EVALUATION_FILE, 'config.json']) assert.ok(existsSync(join(straight, f)), f);
  assert.is(result.epochs, 3);
  const ev = result.evaluation!;
  assert.is(ev.slices.length, 20);
  assert.is(ev.model.resolution, '32x32');
  assert.is(ev.original.resolution, '512x512');
  for (const s of [ev.model.pooled, ev.original.pooled]) {
    for (const v of [s.dice, s.sensitivity, s.specificity]) assert.ok(v >= 0 && v <= 1, `scores in [0, 1]: ${JSON.stringify(s)}`);
  }
  // The checkpoint alone rebuilds the model.
  const loaded = await loadRunCheckpoint(join(straight, BEST));
  assert.equal(loaded.config.model.filters, [4, 8, 16]);
  assert.is(loaded.epoch, result.bestEpoch);
  loaded.model.dispose();
});

t('a run killed with SIGKILL mid-epoch resumes from its checkpoint and ends as the uninterrupted run', async () => {
  const dir = join(tmp, 'killed');
  const args = ['--size', '32', '--filters', '4,8,16', '--epochs', '3', '--lr', '1e-3', '--seed', '5', '--out', dir];
  const child = spawn(process.execPath, ['--import', 'tsx', join(pkg, 'src', 'cli', 'train.ts'), ...args], { cwd: pkg, stdio: 'ignore' });
  // Kill it mid-epoch: half a warm epoch after epoch 2's line (epoch 1 includes the warm-up).
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      const lines = existsSync(join(dir, LOG)) ? records(dir) : [];
      if (lines.length >= 2) {
        clearInterval(poll);
        setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, Math.max(50, 500 * lines[1].seconds));
      }
    }, 50);
    child.on('exit', (code) => {
      clearInterval(poll);
      reject(new Error(`the run ended (code ${code}) before it could be killed`));
    });
  });
  await new Promise((r) => child.once('exit', r));
  const resumed = cli('train', ['--resume', dir]);
  assert.is(resumed.code, 0, resumed.err.join('\n'));
  // Epoch 2's checkpoint is the last one written before the kill.
  assert.match(resumed.out, /resuming .* after epoch 2/);
  const a = records(straight);
  const b = records(dir);
  assert.equal(b.map((e) => e.epoch), [1, 2, 3]);
  for (let i = 0; i < 3; i++) {
    const rel = Math.abs(a[i].trainLoss - b[i].trainLoss) / a[i].trainLoss;
    assert.ok(rel < 1e-4, `epoch ${i + 1}: loss ${b[i].trainLoss} after the kill, ${a[i].trainLoss} without`);
    assert.ok(Math.abs(a[i].val!.dice - b[i].val!.dice) < 1e-3, `epoch ${i + 1}: validation Dice`);
  }
  assert.ok(existsSync(join(dir, EVALUATION_FILE)));
  // The learning-rate schedule and early stopping went on from their saved state, not afresh.
  const stateOf = async (run: string) => {
    const c = await loadRunCheckpoint(join(run, LAST));
    c.model.dispose();
    return JSON.parse(c.metadata[STATE_KEY]) as { plateau: { best: number; numBadEpochs: number }; early: { best: number; bestEpoch: number; epoch: number; wait: number } };
  };
  const [x, y] = [await stateOf(straight), await stateOf(dir)];
  assert.is(y.early.epoch, 2, 'early stopping counted the epochs before the kill (0-based: the third)');
  assert.equal([y.early.bestEpoch, y.early.wait, y.plateau.numBadEpochs], [x.early.bestEpoch, x.early.wait, x.plateau.numBadEpochs]);
  assert.ok(Math.abs(x.early.best - y.early.best) < 1e-3 && Math.abs(x.plateau.best - y.plateau.best) < 1e-3);
  assert.equal(b.map((e) => e.lr), a.map((e) => e.lr));
});

t('a diverging run stops with a message and writes no checkpoint', async () => {
  const dir = join(tmp, 'diverged');
  try {
    // Instance norms absorb any finite weight scale, so only an overflow to infinity makes NaN.
    await train(tiny({ lr: 3e38, epochs: 1 }), { out: dir, log: quiet });
    assert.unreachable('should diverge');
  } catch (e) {
    assert.instance(e, DivergedError, String(e));
    assert.match((e as Error).message, /the loss became (NaN|-?Infinity) at epoch 1, batch \d+: training stopped\. no checkpoint was written; start a new run \(another --out\) with a lower --lr/);
  }
  assert.not.ok(existsSync(join(dir, LAST)));
});

t('a run that diverges after good epochs stops with a message and keeps their checkpoints', async () => {
  // The straight run (3 epochs) resumed for a 4th with its saved learning rate made absurd: the
  // 4th epoch overflows. last.safetensors must still hold epoch 3, and best.safetensors is untouched.
  const dir = join(tmp, 'diverged-late');
  cpSync(straight, dir, { recursive: true });
  const saved = decodeSafetensors(readFileSync(join(dir, LAST)));
  writeFileSync(join(dir, LAST), encodeSafetensors(saved.tensors, { ...saved.metadata, 'optim.lr': '3e38' }));
  const [lastBefore, bestBefore] = [LAST, BEST].map((f) => readFileSync(join(dir, f)));
  try {
    await train({ ...tiny(), epochs: 4 }, { out: dir, resume: true, log: quiet });
    assert.unreachable('should diverge');
  } catch (e) {
    assert.instance(e, DivergedError, String(e));
    assert.match((e as Error).message, /the loss became (NaN|-?Infinity) at epoch 4, batch \d+: training stopped\. .*last\.safetensors still holds epoch 3/);
  }
  assert.ok(readFileSync(join(dir, LAST)).equals(lastBefore), 'last.safetensors unchanged');
  assert.ok(readFileSync(join(dir, BEST)).equals(bestBefore), 'best.safetensors unchanged');
  assert.equal(records(dir).map((r) => r.epoch), [1, 2, 3]);
  const kept = await loadRunCheckpoint(join(dir, LAST));
  assert.is(kept.epoch, 3);
  kept.model.dispose();
});

t('resume and evaluate refuse data of another slice count, size or slice axis; another intensity only warns', () => {
  const ds = (over: Partial<SliceDataset>) => ({ count: 100, height: 512, width: 512, intensity: '8bit', sliceAxis: 2, ...over }) as SliceDataset;
  const stored = JSON.stringify(dataInfo(ds({})));
  assert.is(checkSameData(stored, ds({}), 'run.safetensors'), null);
  assert.is(checkSameData(undefined, ds({ count: 3 }), 'old.safetensors'), null, 'checkpoints from before the record pass');
  for (const other of [{ count: 99 }, { width: 256 }, { sliceAxis: 0 as const }]) {
    assert.throws(() => checkSameData(stored, ds(other), 'run.safetensors'), /run\.safetensors was trained on 100 slices of 512x512 along z, .*its train\/test split would not hold/);
  }
  // A record without the axis (written before it was kept) means the third axis.
  const { sliceAxis: _, ...withoutAxis } = dataInfo(ds({}));
  assert.is(checkSameData(JSON.stringify(withoutAxis), ds({}), 'run.safetensors'), null);
  assert.throws(() => checkSameData(JSON.stringify(withoutAxis), ds({ sliceAxis: 1 }), 'run.safetensors'), /along y/);
  assert.match(checkSameData(stored, ds({ intensity: 'hu' }), 'run.safetensors') ?? '', /warning: .*trained on 8bit images, this data is hu/);
});

t('a folder that holds a run is not overwritten', async () => {
  const before = readFileSync(join(straight, LAST));
  try {
    await train(tiny(), { out: straight, log: quiet });
    assert.unreachable('should refuse');
  } catch (e) {
    assert.match((e as Error).message, /already holds a run \(last\.safetensors\): continue it with --resume/);
  }
  assert.ok(readFileSync(join(straight, LAST)).equals(before));
});

t('unusable checkpoints: missing, not an aunet checkpoint, another model, truncated', async () => {
  const expectError = async (file: string, pattern: RegExp) => {
    try {
      await loadRunCheckpoint(file);
      assert.unreachable(`${file} should be refused`);
    } catch (e) {
      assert.instance(e, CheckpointError);
      assert.match((e as Error).message, pattern);
      assert.ok((e as Error).message.includes(file), 'names the file');
    }
  };
  await expectError(join(tmp, 'nothing.safetensors'), /no such checkpoint file\. Pass best\.safetensors or last\.safetensors of a run folder/);
  const plain = join(tmp, 'plain.safetensors');
  const conv = new Conv2d(1, 2, 3);
  await saveCheckpoint(plain, conv);
  conv.dispose();
  await expectError(plain, /is not an aunet checkpoint: its metadata has no "aunet.config" .*Pass best\.safetensors or last\.safetensors/);
  // Weights of a 2-level model under the config of a 3-level one.
  manualSeed(1);
  const other = new AUNet({ ...tiny().model, filters: [4, 8], inputSize: 32, deepSupervision: 1 });
  const mismatched = join(tmp, 'other.safetensors');
  await saveCheckpoint(mismatched, other, { metadata: { [CONFIG_KEY]: JSON.stringify(tiny()) } });
  other.dispose();
  await expectError(mismatched, /does not match the module .*\n[\s\S]*missing "encoder\.2\.block\.conv\.weight"[\s\S]*another model or version\. Use a checkpoint written by this version's `train`, or train a new one/);
  const cut = join(tmp, 'cut.safetensors');
  const bytes = readFileSync(join(straight, BEST));
  writeFileSync(cut, bytes.subarray(0, bytes.length >> 1));
  await expectError(cut, /damaged or not a checkpoint/);
});

t('one run per folder: a live lock refuses a second run, a stale one (killed run) is taken over', async () => {
  const dir = join(tmp, 'locked');
  mkdirSync(dir, { recursive: true });
  // A live process "holds" the folder.
  const holder = spawn('sleep', ['30']);
  try {
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: holder.pid, host: hostname(), started: new Date().toISOString() }));
    await train(tiny({ epochs: 1 }), { out: dir, log: quiet }).then(
      () => assert.unreachable('trained despite the lock'),
      (e: Error) => {
        assert.instance(e, RunLockedError);
        assert.match(e.message, new RegExp(`in use by another training run \\(pid ${holder.pid}`));
      },
    );
    assert.not.ok(existsSync(join(dir, LAST)), 'nothing written');
    const cliRun = cli('train', ['--preset', 'cpu', '--size', '32', '--filters', '4,8', '--epochs', '1', '--out', dir]);
    assert.is(cliRun.code, 1);
    assert.is(cliRun.err.length, 1, cliRun.err.join('\n'));
    assert.match(cliRun.err[0], /in use by another training run/);
  } finally {
    holder.kill('SIGKILL');
  }
  await new Promise((r) => holder.once('exit', r));
  // The holder is gone (as after a SIGKILL): the next run takes the folder over and releases it.
  await train(tiny({ epochs: 1 }), { out: dir, log: quiet });
  assert.ok(existsSync(join(dir, LAST)));
  assert.not.ok(existsSync(join(dir, LOCK_FILE)), 'released at the end');
});

t('augmentation level: checked, and checkpoints that stored a boolean still load', () => {
  assert.throws(() => validateTrainConfig({ ...tiny(), augment: 'some' as never }), /augment must be one of none, basic, full/);
  const legacy = (augment: boolean) => ({ [CONFIG_KEY]: JSON.stringify({ ...tiny(), augment }) });
  assert.is(configFromMetadata(legacy(true), 'old.safetensors').augment, 'full');
  assert.is(configFromMetadata(legacy(false), 'old.safetensors').augment, 'none');
  assert.is(tiny().augment, 'basic', 'the default');
});

t('deep-supervision loss: checked, the summed output by default and for checkpoints written before the choice', () => {
  assert.throws(() => validateTrainConfig({ ...tiny(), deepSupervisionLoss: 'each' as never }), /deepSupervisionLoss must be one of summed, levels/);
  assert.is(tiny().deepSupervisionLoss, 'summed', 'the default');
  const { deepSupervisionLoss: _dropped, ...older } = tiny();
  assert.is(configFromMetadata({ [CONFIG_KEY]: JSON.stringify(older) }, 'old.safetensors').deepSupervisionLoss, 'summed');
  const levels = { [CONFIG_KEY]: JSON.stringify({ ...tiny(), deepSupervisionLoss: 'levels' }) };
  assert.is(configFromMetadata(levels, 'new.safetensors').deepSupervisionLoss, 'levels');
});

t('commands: --help, bad flags, a missing data folder, evaluate', () => {
  for (const command of ['train', 'evaluate'] as const) {
    const help = cli(command, ['--help']);
    assert.is(help.code, 0);
    assert.match(help.out, /Usage: pnpm --filter aunet/);
  }
  const bad = cli('train', ['--bogus']);
  assert.is(bad.code, 2);
  assert.match(bad.err.join('\n'), /^error: .*bogus/);
  const missing = cli('train', ['--data', join(tmp, 'no-such-folder'), '--out', join(tmp, 'never')]);
  assert.is(missing.code, 1);
  assert.is(missing.err.length, 1, missing.err.join('\n'));
  assert.match(missing.err[0], /no-such-folder/);
  assert.not.ok(existsSync(join(tmp, 'never', LAST)));
  const resumeChanged = cli('train', ['--resume', straight, '--lr', '1']);
  assert.is(resumeChanged.code, 1);
  assert.match(resumeChanged.err.join('\n'), /only --epochs and --data may be given with it, not --lr/);
  const json = join(tmp, 'eval.json');
  const ev = cli('evaluate', ['--checkpoint', join(straight, BEST), '--json', json]);
  assert.is(ev.code, 0, ev.err.join('\n'));
  assert.match(ev.out, /paper, AU-Net \+ FTL\s+69\.1\s+81\.1\s+97\.2/);
  const report = JSON.parse(readFileSync(json, 'utf8'));
  assert.is(report.slices.length, 20);
  assert.equal(report.paper, { row: 'AU-Net + FTL', dice: 69.1, sensitivity: 81.1, specificity: 97.2 });
  assert.equal(Object.keys(report.original.pooled).sort(), ['dice', 'sensitivity', 'specificity']);
  // The same checkpoint, the same test slices: the same figures as the trainer's own evaluation.
  const own = JSON.parse(readFileSync(join(straight, EVALUATION_FILE), 'utf8'));
  assert.equal(report.original.pooled, own.original.pooled);
  // With mirroring TTA: a report of its own, on the same slices.
  const tta = cli('evaluate', ['--checkpoint', join(straight, BEST), '--tta']);
  assert.is(tta.code, 0, tta.err.join('\n'));
  const ttaReport = JSON.parse(readFileSync(join(straight, 'evaluation-best-tta.json'), 'utf8'));
  assert.equal(ttaReport.slices, report.slices);
  for (const v of Object.values(ttaReport.model.pooled) as number[]) assert.ok(v >= 0 && v <= 1);
  // Restricted to the shipped lung mask: no more predicted pixels than without, its own report.
  const lung = cli('evaluate', ['--checkpoint', join(straight, BEST), '--lung-mask', join(DEFAULT_DATA_DIR, 'tr_lungmask.nii.gz')]);
  assert.is(lung.code, 0, lung.err.join('\n'));
  assert.match(lung.out, /predictions restricted to the lungs of .*tr_lungmask\.nii\.gz/);
  const lungReport = JSON.parse(readFileSync(join(straight, 'evaluation-best-lung.json'), 'utf8'));
  assert.match(lungReport.region, /tr_lungmask\.nii\.gz$/);
  assert.equal(lungReport.slices, report.slices);
  const predicted = (r: { original: { perSlice: { predictedPixels: number }[] } }) => r.original.perSlice.map((s) => s.predictedPixels);
  const inLung = predicted(lungReport);
  predicted(report).forEach((n, j) => assert.ok(inLung[j] <= n, `slice ${j}: ${inLung[j]} <= ${n}`));
  // A lung mask of another shape: one line naming it and the data, no report.
  const small = join(tmp, 'small-lungs.nii.gz');
  writeNifti(small, { dims: [4, 4, 2], data: new Uint8Array(32).fill(1), datatype: 'uint8' });
  const wrong = cli('evaluate', ['--checkpoint', join(straight, BEST), '--lung-mask', small, '--json', join(tmp, 'never.json')]);
  assert.is(wrong.code, 1);
  assert.is(wrong.err.length, 1, wrong.err.join('\n'));
  assert.match(wrong.err[0], /small-lungs\.nii\.gz is 4 x 4 x 2 but .* is 512 x 512 x 100: the lung mask must have the image's shape/);
  assert.not.ok(existsSync(join(tmp, 'never.json')));
});

t("paths are taken from where pnpm ran the command (INIT_CWD); stderr holds no Dawn notice unless --verbose", () => {
  // `pnpm --filter aunet evaluate ...` runs `tsx src/cli/evaluate.ts` in packages/aunet, with
  // INIT_CWD the folder the user typed it in and npm_lifecycle_script the script.
  const user = join(tmp, 'user-folder');
  mkdirSync(join(user, 'run'), { recursive: true });
  cpSync(join(straight, BEST), join(user, 'run', BEST));
  const env = (script: string, extra: Record<string, string> = {}) => {
    const e: NodeJS.ProcessEnv = { ...process.env, INIT_CWD: user, npm_lifecycle_script: script, ...extra };
    if (!extra.AUNET_VERBOSE) delete e.AUNET_VERBOSE;
    return e;
  };
  const run = (command: string, args: string[], e: NodeJS.ProcessEnv) =>
    spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'src', 'cli', `${command}.ts`), ...args], { cwd: pkg, env: e, encoding: 'utf8', timeout: 600_000 });
  const ev = run('evaluate', ['--checkpoint', join('run', BEST), '--json', 'report.json'], env('tsx src/cli/evaluate.ts'));
  assert.is(ev.status, 0, ev.stderr);
  assert.ok(existsSync(join(user, 'report.json')), 'the report where the user ran the command');
  assert.match(ev.stdout, `${join(user, 'run', BEST)}:`);
  assert.not.match(ev.stderr, /artificially reduced/, 'no Dawn notice');
  // A command spawned under another script (a test under `pnpm test`) means its own cwd.
  const missing = join('no-such-dir', 'scan.nii.gz');
  const underTest = run('predict', ['--checkpoint', BEST, '--input', missing], env('node --import tsx ../../node_modules/uvu/bin.js test'));
  assert.is(underTest.status, 1);
  assert.match(underTest.stderr, `${join(pkg, missing)} does not exist`);
  const underPnpm = run('predict', ['--checkpoint', BEST, '--input', missing], env('tsx src/cli/predict.ts'));
  assert.is(underPnpm.status, 1);
  assert.match(underPnpm.stderr, `${join(user, missing)} does not exist`);
  if (process.platform === 'linux') {
    // --verbose lets Dawn's notices through (its Vulkan backend prints them on every driver seen).
    const verbose = run('evaluate', ['--checkpoint', join('run', BEST), '--json', 'verbose.json', '--verbose'], env('tsx src/cli/evaluate.ts'));
    assert.is(verbose.status, 0, verbose.stderr);
    assert.match(verbose.stderr, /artificially reduced/);
  }
});

const allSlices = join(tmp, 'all-slices');

t('--all-slices: every slice trains, exactly --epochs epochs at the constant lr, metrics without scores, no best or evaluation; it resumes', async () => {
  const args = ['--size', '32', '--filters', '4,8', '--epochs', '2', '--lr', '1e-3', '--seed', '5', '--all-slices'];
  const first = cli('train', [...args, '--out', allSlices]);
  assert.is(first.code, 0, first.err.join('\n'));
  assert.match(first.out, /all 100 train \(--all-slices: no validation or test slices/);
  assert.match(first.out, /epoch 2: loss \d\.\d+, no validation \(all slices train\), lr 1\.00e-3/);
  assert.match(first.out, /done after epoch 2 \(all slices: the model is the last epoch's\)/);
  const config = JSON.parse(readFileSync(join(allSlices, CONFIG_FILE), 'utf8'));
  assert.is(config.allSlices, true);
  assert.equal(config.split, { train: Array.from({ length: 100 }, (_, i) => i), val: [], test: [] });
  const check = (epochs: number) => {
    const r = records(allSlices);
    assert.equal(r.map((e) => e.epoch), Array.from({ length: epochs }, (_, i) => i + 1));
    for (const e of r) {
      assert.ok(Number.isFinite(e.trainLoss) && e.trainLoss > 0, `train loss ${e.trainLoss}`);
      assert.equal([e.valLoss, e.val, e.test, e.best, e.lr], [null, null, null, false, 1e-3], `epoch ${e.epoch}`);
    }
    assert.not.ok(existsSync(join(allSlices, BEST)), 'no best checkpoint');
    assert.not.ok(existsSync(join(allSlices, EVALUATION_FILE)), 'no evaluation');
  };
  check(2);
  assert.equal(await checkRunFolder(allSlices, 2), [], 'a finished run on all slices, as chaos checks one');

  const more = cli('train', ['--resume', allSlices, '--epochs', '3']);
  assert.is(more.code, 0, more.err.join('\n'));
  assert.match(more.out, /resuming .* after epoch 2 \(on all slices: no validation\)/);
  check(3);
  const last = await loadRunCheckpoint(join(allSlices, LAST));
  assert.equal([last.epoch, last.config.allSlices], [3, true]);
  last.model.dispose();

  // The flags it excludes: one line each, nothing trained.
  for (const [extra, message] of [
    [[...args, '--fold', '1/5', '--out', join(tmp, 'never-all')], /give --fold or --all-slices, not both/],
    [['--resume', allSlices, '--all-slices'], /only --epochs and --data may be given with it, not --all-slices/],
  ] as const) {
    const bad = cli('train', [...extra]);
    assert.is(bad.code, 1);
    assert.is(bad.err.length, 1, bad.err.join('\n'));
    assert.match(bad.err[0], message);
  }
  assert.not.ok(existsSync(join(tmp, 'never-all', LAST)));
});

t('all slices in the library: the split holds every slice, and neither the lr schedule nor early stopping acts, even at patience 1', async () => {
  const config = tiny({ allSlices: true, epochs: 3, lrPatience: 1, earlyStopping: 1 });
  assert.equal(splitFor(config, 7), { train: [0, 1, 2, 3, 4, 5, 6], val: [], test: [] });
  assert.throws(() => validateTrainConfig({ ...config, fold: { k: 1, K: 5 } }), /allSlices trains on every slice, so it cannot hold out a fold/);
  assert.throws(() => validateTrainConfig({ ...config, allSlices: 'yes' as never }), /allSlices must be true or false/);
  // A checkpoint from before the field trained on a split.
  const { allSlices: _, ...old } = tiny();
  assert.is(configFromMetadata({ [CONFIG_KEY]: JSON.stringify(old) }, 'old.safetensors').allSlices, false);
  const dir = join(tmp, 'all-slices-library');
  const result = await train(config, { out: dir, log: quiet });
  assert.equal([result.epochs, result.bestEpoch, result.stoppedEarly, result.evaluation], [3, null, false, null]);
  assert.equal(records(dir).map((e) => e.lr), [1e-3, 1e-3, 1e-3]);
  // Experiments score each run on its held-out slices: one on all slices is refused before it trains.
  await runOnce(config, join(tmp, 'never-experiment')).then(
    () => assert.unreachable('an experiment ran on all slices'),
    (e: Error) => assert.match(e.message, /never-experiment: a run on all slices holds out no test slices to score; experiments need a split/),
  );
  assert.not.ok(existsSync(join(tmp, 'never-experiment', LAST)));
});

t('the shipped model\'s way: an all-slices run exported to F16 loads, and `evaluate --data` scores it on every slice without --checkpoint', async () => {
  const models = join(tmp, 'models');
  mkdirSync(models);
  const shipped = join(models, 'aunet-medseg.safetensors');
  const exported = cli('export', ['--checkpoint', join(allSlices, LAST), '--safetensors', shipped, '--dtype', 'f16']);
  assert.is(exported.code, 0, exported.err.join('\n'));
  // Read through predict's loader: the run's float32 weights rounded to F16, back in float32.
  const [f16, f32] = [await loadRunCheckpoint(shipped), await loadRunCheckpoint(join(allSlices, LAST))];
  assert.equal([f16.epoch, f16.config], [3, f32.config]);
  const f32Weights = new Map<string, Float32Array>();
  for (const [name, p] of f32.model.namedParameters()) f32Weights.set(name, (await p.value.data()) as Float32Array);
  for (const [name, p] of f16.model.namedParameters()) {
    assert.equal(Array.from((await p.value.data()) as Float32Array), Array.from(f32Weights.get(name)!, (x) => f16BitsToFloat32(float32ToF16Bits(x))), name);
  }
  f16.model.dispose();
  f32.model.dispose();

  const env = { [MODEL_ENV]: shipped };
  // On the shipped data (the very slices it was trained on): every slice scored, and a warning says so.
  const ev = cli('evaluate', ['--data', DEFAULT_DATA_DIR], env);
  assert.is(ev.code, 0, ev.err.join('\n'));
  const lines = ev.out.split('\n');
  assert.is(lines.filter((l) => l.startsWith('no --checkpoint')).length, 1, 'one line says which model');
  assert.match(ev.out, new RegExp(`no --checkpoint: using ${shipped.replace(/[.]/g, '\\.')}, which \\$AUNET_MODEL names in place of the shipped model \\(see .*MODEL\\.md\\)`));
  assert.match(ev.out, /warning: .*was trained on every slice of 100 slices of 512x512, and these data have that shape/);
  assert.match(ev.out, /epoch 3; every slice of .*medseg-covid \(100; trained on all slices/);
  assert.match(ev.out, /\(%, 100 slices\)/);
  const report = JSON.parse(readFileSync(join(models, 'evaluation-aunet-medseg.json'), 'utf8'));
  assert.is(report.scope, ALL_SLICES_SCOPE);
  assert.equal(report.slices, Array.from({ length: 100 }, (_, i) => i));
  for (const v of Object.values(report.original.pooled) as number[]) assert.ok(v >= 0 && v <= 1);

  // Other data, of any slice count: every slice, no warning.
  const ds = await loadDataset(DEFAULT_DATA_DIR);
  const other = join(tmp, 'other-data');
  const [n, side] = [4, 64];
  const image = new Uint8Array(side * side * n);
  const mask = new Uint8Array(side * side * n);
  for (let k = 0; k < n; k++) {
    image.set(resizeImage(ds.images[30 + k], ds.height, ds.width, side, side).map((v) => Math.round(255 * v)), k * side * side);
    mask.set(resizeNearest(ds.masks[30 + k], ds.height, ds.width, side, side), k * side * side);
  }
  writeNifti(join(other, 'tr_im.nii.gz'), { dims: [side, side, n], data: image, datatype: 'uint8' });
  writeNifti(join(other, 'tr_mask.nii.gz'), { dims: [side, side, n], data: mask, datatype: 'uint8' });
  const json = join(tmp, 'other-eval.json');
  const ev2 = cli('evaluate', ['--data', other, '--json', json], env);
  assert.is(ev2.code, 0, ev2.err.join('\n'));
  assert.not.match(ev2.out, /warning/);
  assert.equal(JSON.parse(readFileSync(json, 'utf8')).slices, [0, 1, 2, 3]);

  // No --checkpoint and no --data; a default model that is not there: one line, exit 1, no report.
  for (const [args, extra, message] of [
    [[], env, /^error: --checkpoint FILE or --data DIR is required: with --data alone the shipped model is scored on every slice of DIR/],
    [['--data', DEFAULT_DATA_DIR, '--json', join(tmp, 'never.json')], { [MODEL_ENV]: join(tmp, 'no-model.safetensors') }, /^error: no --checkpoint given, and \$AUNET_MODEL names .*no-model\.safetensors, which does not exist: correct or unset AUNET_MODEL, or pass --checkpoint FILE$/],
  ] as const) {
    const bad = cli('evaluate', [...args], extra);
    assert.is(bad.code, 1);
    assert.is(bad.err.length, 1, bad.err.join('\n'));
    assert.match(bad.err[0], message);
  }
  assert.not.ok(existsSync(join(tmp, 'never.json')));
});

t.run();
