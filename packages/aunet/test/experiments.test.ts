// The ablation and cross-validation commands on a tiny setting (filters 4-8, 32x32, 2 epochs, 12
// slices of the shipped data shrunk to 64x64): every row and fold trains and is scored, a killed
// ablation resumes without retraining its finished rows, and the folds partition the slices.
import './conv-variant';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setupGPU } from '@aunet/tensor/testing';
import { defaultTrainConfig, splitFor, type TrainConfig } from '../src/config';
import { resizeImage, resizeNearest } from '../src/data/transforms';
import { datasetImage, loadDataset, readLungMask, DEFAULT_DATA_DIR } from '../src/data/files';
import { writeNifti } from './nifti-fixture';
import { defaultSpace } from '../src/data/nifti';
import { checkLungMask, crossValidate, summarise, type AblationRow } from '../src/experiments';
import type { EvaluationReport } from '../src/evaluate';
import { EVALUATION_FILE, LOG, type EpochRecord } from '../src/run-folder';

const records = (dir: string): EpochRecord[] => readFileSync(join(dir, LOG), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as EpochRecord);

const pkg = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'aunet-experiments-'));
const data = join(tmp, 'data');
const lungMask = join(tmp, 'lungs.nii.gz');
const SHIPPED_LUNGS = join(DEFAULT_DATA_DIR, 'tr_lungmask.nii.gz');
const quiet = () => {};
const TINY = ['--preset', 'cpu', '--size', '32', '--filters', '4,8', '--epochs', '2', '--lr', '1e-3', '--seed', '2', '--data', data];

/** 12 slices of the shipped data at 64x64, written as an 8-bit image and a 0/1 mask. */
async function writeSmallData(): Promise<void> {
  const ds = await loadDataset(DEFAULT_DATA_DIR);
  const n = 12;
  const s = 64;
  const image = new Uint8Array(s * s * n);
  const mask = new Uint8Array(s * s * n);
  for (let k = 0; k < n; k++) {
    image.set(resizeImage(ds.images[k], ds.height, ds.width, s, s).map((v) => Math.round(255 * v)), k * s * s);
    mask.set(resizeNearest(ds.masks[k], ds.height, ds.width, s, s), k * s * s);
  }
  writeNifti(join(data, 'tr_im.nii.gz'), { dims: [s, s, n], data: image, datatype: 'uint8' });
  writeNifti(join(data, 'tr_mask.nii.gz'), { dims: [s, s, n], data: mask, datatype: 'uint8' });
  const shipped = readLungMask(SHIPPED_LUNGS, datasetImage(ds)).slices;
  const lungs = new Uint8Array(s * s * n);
  for (let k = 0; k < n; k++) lungs.set(resizeNearest(shipped[k], ds.height, ds.width, s, s), k * s * s);
  writeNifti(lungMask, { dims: [s, s, n], data: lungs, datatype: 'uint8' });
}

function ablationCli(out: string) {
  return [join(pkg, 'src/cli/ablation.ts'), ...TINY, '--out', out];
}

const t = suite('experiments');
t.before(async () => {
  await setupGPU();
  await writeSmallData();
});

t('ablation: four rows on one split; killed after the first row, the rerun reads it back and trains the rest', async () => {
  const out = join(tmp, 'ablation');
  // First sitting: killed as soon as the first row is evaluated.
  const child = spawn(process.execPath, ['--import', 'tsx', ...ablationCli(out)], { cwd: pkg, stdio: 'ignore' });
  const firstRow = join(out, 'unet-dice', EVALUATION_FILE);
  const deadline = Date.now() + 300_000;
  while (!existsSync(firstRow) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.ok(existsSync(firstRow), 'the first row finished before the kill');
  const firstLog = statSync(join(out, 'unet-dice', LOG)).mtimeMs;

  const r = spawnSync(process.execPath, ['--import', 'tsx', ...ablationCli(out)], { cwd: pkg, encoding: 'utf8', timeout: 600_000 });
  assert.is(r.status, 0, r.stderr);
  const table = JSON.parse(readFileSync(join(out, 'ablation.json'), 'utf8')) as { rows: AblationRow[]; epochs: number };
  assert.equal(table.rows.map((x) => x.row), ['U-Net + DL', 'U-Net + FTL', 'AU-Net + DL', 'AU-Net + FTL']);
  assert.is(table.rows[0].status, 'done', 'the finished row is read back');
  assert.ok(table.rows.slice(1).every((x) => x.status !== 'done'), 'the others are trained now');
  assert.is(statSync(join(out, 'unet-dice', LOG)).mtimeMs, firstLog, 'the finished row was not retrained');
  // One split for all rows: every row's evaluation holds the same test slices.
  const slices = table.rows.map((x) => JSON.parse(readFileSync(join(x.out, EVALUATION_FILE), 'utf8')).slices.join());
  assert.is(new Set(slices).size, 1);
  for (const x of table.rows) {
    for (const v of [x.model_resolution.dice, x.original_resolution.sensitivity]) assert.ok(v >= 0 && v <= 1);
  }
  const md = readFileSync(join(out, 'ablation.md'), 'utf8');
  assert.match(md, /\| AU-Net \+ FTL \| [\d.-]+ \|.*\| 69\.1 \| 81\.1 \| 97\.2 \|/);
  assert.match(r.stdout, /U-Net \+ DL/);

  // A third sitting trains nothing; with --lung-mask it scores every row within the lungs too.
  const again = spawnSync(process.execPath, ['--import', 'tsx', ...ablationCli(out), '--lung-mask', lungMask], { cwd: pkg, encoding: 'utf8', timeout: 300_000 });
  assert.is(again.status, 0, again.stderr);
  assert.not.match(again.stdout, /epoch 1:/);
  const withLungs = JSON.parse(readFileSync(join(out, 'ablation.json'), 'utf8')) as { rows: AblationRow[] };
  assert.ok(withLungs.rows.every((x) => x.lung && existsSync(join(x.out, 'evaluation-best-lung.json'))));
  assert.match(again.stdout, /Within the lungs[^]*\| AU-Net \+ FTL \|/);
  // Another configuration in the same folder is refused, not mixed in.
  const other = spawnSync(process.execPath, ['--import', 'tsx', ...ablationCli(out), '--lr', '2e-3'], { cwd: pkg, encoding: 'utf8' });
  assert.is(other.status, 1);
  assert.match(other.stderr, /holds a run of other settings \(lr: 0\.001 there, 0\.002 asked\)/);
});

t('cross-validation: each fold tests on its own slices, together all of them; mean and sd of the folds', async () => {
  const base: TrainConfig = defaultTrainConfig('cpu', data, { epochs: 2, lr: 1e-3, seed: 2, model: { inputSize: 32, filters: [4, 8] } });
  const out = join(tmp, 'cv');
  const cv = await crossValidate(base, 3, out, { log: quiet });
  assert.is(cv.folds.length, 3);
  const tested = cv.folds.flatMap((f) => JSON.parse(readFileSync(join(f.out, EVALUATION_FILE), 'utf8')).slices as number[]);
  assert.equal([...tested].sort((a, b) => a - b), Array.from({ length: 12 }, (_, i) => i), 'the folds partition the slices');
  cv.folds.forEach((f) => assert.equal(JSON.parse(readFileSync(join(f.out, EVALUATION_FILE), 'utf8')).slices, splitFor({ ...base, fold: { k: f.fold, K: 3 } }, 12).test));
  assert.equal(cv.model_resolution, summarise(cv.folds.map((f) => f.model_resolution)));
  const dice = cv.folds.map((f) => f.model_resolution.dice);
  const mean = dice.reduce((a, b) => a + b) / 3;
  assert.ok(Math.abs(cv.model_resolution.mean.dice - mean) < 1e-12);
  assert.ok(Math.abs(cv.model_resolution.sd.dice - Math.sqrt(dice.reduce((a, b) => a + (b - mean) ** 2, 0) / 2)) < 1e-12);
  assert.match(readFileSync(join(out, 'cv.md'), 'utf8'), /\| mean ± sd \|/);
  // Rerun: every fold is read back.
  const again = await crossValidate(base, 3, out, { log: quiet });
  assert.ok(again.folds.every((f) => f.status === 'done' && f.epochs === 2));
  // With a lung mask the folds are read back and scored within the lungs as well: never more
  // predicted pixels than without it, and a summary of their own.
  const lungs = await crossValidate(base, 3, out, { log: quiet, lungMask });
  assert.ok(lungs.folds.every((f) => f.status === 'done' && f.lung));
  assert.equal(lungs.lung, { model_resolution: summarise(lungs.folds.map((f) => f.lung!.model_resolution)), original_resolution: summarise(lungs.folds.map((f) => f.lung!.original_resolution)) });
  let outside = 0;
  for (const f of lungs.folds) {
    const report = (file: string) => JSON.parse(readFileSync(join(f.out, file), 'utf8')) as EvaluationReport;
    const predicted = (r: EvaluationReport) => r.original.perSlice.map((x) => x.predictedPixels);
    const [all, inLungs] = [report(EVALUATION_FILE), report('evaluation-best-lung.json')];
    assert.is(inLungs.region, lungMask);
    assert.equal(inLungs.slices, all.slices);
    predicted(inLungs).forEach((n, j) => {
      assert.ok(n <= predicted(all)[j], `fold ${f.fold}: slice ${all.slices[j]}`);
      outside += predicted(all)[j] - n;
    });
  }
  // The tiny networks over-predict: some of their lesion pixels lie outside the lungs and go.
  assert.ok(outside > 0, 'the mask removed predictions');
  assert.match(readFileSync(join(out, 'cv.md'), 'utf8'), /Within the lungs[^]*\| mean ± sd \|/);
  // A lung mask of another shape is refused before anything trains.
  const elsewhere = join(tmp, 'cv-bad-lungs');
  const refused = await crossValidate(base, 3, elsewhere, { log: quiet, lungMask: SHIPPED_LUNGS }).then(() => null, (e: Error) => e.message);
  assert.match(refused ?? 'no error', /tr_lungmask\.nii\.gz is 512 x 512 x 100 but .* is 64 x 64 x 12/);
  assert.not.ok(existsSync(elsewhere), 'nothing was trained');
  // A larger epoch budget continues the finished folds instead of reporting the shorter runs.
  const longer = await crossValidate({ ...base, epochs: 3 }, 3, out, { log: quiet });
  assert.ok(longer.folds.every((f) => f.status === 'resumed' && f.epochs === 3), JSON.stringify(longer.folds.map((f) => [f.status, f.epochs])));
  assert.equal(records(join(out, 'fold-1')).map((r) => r.epoch), [1, 2, 3]);
  // Some of the folds (a screen of recipes): fold 2 alone, read back, the summary over it.
  const some = await crossValidate({ ...base, epochs: 3 }, 3, out, { log: quiet, onlyFolds: [2] });
  assert.equal(some.folds.map((f) => [f.fold, f.status]), [[2, 'done']]);
  assert.is(some.model_resolution.mean.dice, longer.folds[1].model_resolution.dice);
  const badFolds = await crossValidate(base, 3, out, { log: quiet, onlyFolds: [2, 4] }).then(() => null, (e: Error) => e.message);
  assert.match(badFolds ?? 'no error', /distinct integers from 1 to 3, got 2,4/);
});

const lungCheck = suite('lung mask check');

lungCheck('data sliced along x: a lung mask of the image file\'s shape passes, one of the slice stack\'s is refused', async () => {
  // 6 x 5 slices, 4 of them, stored along x (slice_dim 1): the file is 4 x 6 x 5, the stack 6 x 5 x 4.
  const [w, h, n] = [6, 5, 4];
  const dir = join(tmp, 'along-x');
  const space = { ...defaultSpace(), dimInfo: 1 << 4 };
  const image = Array.from({ length: w * h * n }, (_, i) => (i * 37) % 256);
  const mask = Array.from({ length: w * h * n }, (_, i) => (i % 3 === 0 ? 1 : 0));
  writeNifti(join(dir, 'tr_im.nii.gz'), { dims: [n, w, h], data: image, datatype: 'uint8', space });
  writeNifti(join(dir, 'tr_mask.nii.gz'), { dims: [n, w, h], data: mask, datatype: 'uint8', space });
  const fileShaped = join(dir, 'lungs.nii.gz');
  const stackShaped = join(dir, 'lungs-stack.nii.gz');
  writeNifti(fileShaped, { dims: [n, w, h], data: mask, datatype: 'uint8', space });
  writeNifti(stackShaped, { dims: [w, h, n], data: mask, datatype: 'uint8' });
  const base = defaultTrainConfig('cpu', dir);
  assert.equal((await loadDataset(dir)).sliceAxis, 0);
  await checkLungMask(base, fileShaped);
  const refused = await checkLungMask(base, stackShaped).then(() => null, (e: Error) => e.message);
  assert.match(refused ?? 'no error', /lungs-stack\.nii\.gz is 6 x 5 x 4 but .*tr_im\.nii\.gz is 4 x 6 x 5/);
});

t.run();
lungCheck.run();
