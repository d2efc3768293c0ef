// Training and cross-validation on a data folder of several cases, at a tiny size (32x32, filters
// 4-8, 1 epoch): the split is by case, written to the run folder as split.json (case names), a
// split file repeats it whatever the seed, nnU-Net's splits_final.json picks the folds of cv,
// resume keeps the split, and evaluate scores per case. The 4 cases (5 slices each, 64x64) are
// cut from the shipped volume here.
import './conv-variant';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setupGPU } from '@aunet/tensor/testing';
import { defaultTrainConfig, type TrainConfig } from '../src/config';
import { DEFAULT_DATA_DIR, loadDataset, readSplitFile, readVolume } from '../src/data/files';
import type { Volume } from '../src/data/nifti';
import type { SplitRecord } from '../src/data/split';
import { evaluateCheckpoint } from '../src/evaluate-file';
import { crossValidate } from '../src/experiments';
import { BEST, CONFIG_FILE, EVALUATION_FILE, readEvaluation, SPLIT_FILE } from '../src/run-folder';
import { train } from '../src/train';
import { writeNifti } from './nifti-fixture';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'aunet-cases-train-'));
const data = join(tmp, 'cases');
const quiet = () => {};
const NAMES = ['p1', 'p2', 'p3', 'p4'];
const PER_CASE = 5;
const STEP = 8;

/** Slices [k0, k1) of a shipped volume, every 8th row and column. */
function cut(vol: Volume, k0: number, k1: number): { dims: [number, number, number]; data: Uint8Array } {
  const [sx, sy] = vol.dims;
  const [nx, ny] = [sx / STEP, sy / STEP];
  const out = new Uint8Array(nx * ny * (k1 - k0));
  for (let k = k0, t = 0; k < k1; k++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++, t++) out[t] = vol.data[x * STEP + sx * (y * STEP + sy * k)];
  return { dims: [nx, ny, k1 - k0], data: out };
}

function writeCases(): void {
  const image = readVolume(join(DEFAULT_DATA_DIR, 'tr_im_lungwindow.nii.gz'));
  const mask = readVolume(join(DEFAULT_DATA_DIR, 'tr_mask.nii.gz'));
  NAMES.forEach((name, c) => {
    const [k0, k1] = [c * PER_CASE, (c + 1) * PER_CASE];
    writeNifti(join(data, 'imagesTr', `${name}_0000.nii.gz`), { ...cut(image, k0, k1), datatype: 'uint8' });
    writeNifti(join(data, 'labelsTr', `${name}.nii.gz`), { ...cut(mask, k0, k1), datatype: 'uint8' });
  });
  writeFileSync(join(data, 'dataset.json'), JSON.stringify({ channel_names: { 0: 'CT' }, labels: { background: 0, lesion: 1 }, numTraining: 4, file_ending: '.nii.gz' }));
}

const tiny = (over: Partial<Omit<TrainConfig, 'model'>> = {}): TrainConfig =>
  defaultTrainConfig('cpu', data, { epochs: 1, lr: 1e-3, seed: 2, ...over, model: { inputSize: 32, filters: [4, 8] } });
const splitOf = (dir: string) => JSON.parse(readFileSync(join(dir, SPLIT_FILE), 'utf8')) as SplitRecord;
/** The dataset's slices of the named cases (5 a case, in name order). */
const slicesOf = (names: (string | number)[]) => names.flatMap((n) => Array.from({ length: PER_CASE }, (_, i) => NAMES.indexOf(n as string) * PER_CASE + i)).sort((a, b) => a - b);

function cli(command: 'train' | 'cv', args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'src', 'cli', `${command}.ts`), ...args], { cwd: pkg, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, out: r.stdout, err: r.stderr.split('\n').filter((l) => l.trim() && !/artificially reduced/.test(l)) };
}

const t = suite('training on several cases');
t.before(async () => {
  await setupGPU();
  writeCases();
});

const first = join(tmp, 'run-seed');

t('train splits by case and writes split.json of case names; evaluate scores each test case', async () => {
  const lines: string[] = [];
  const result = await train(tiny(), { out: first, log: (l) => lines.push(l) });
  assert.ok(result.evaluation, 'evaluated');
  assert.match(lines.join('\n'), /20 slices 64x64 \(8bit\) of 4 cases .*; 10 train \(2 cases\) \/ 5 validation \(1 case\) \/ 5 test \(1 case\), split by case/);
  const split = splitOf(first);
  assert.equal([...split.train, ...split.val, ...split.test].sort(), NAMES, 'every case in one list');
  const config = JSON.parse(readFileSync(join(first, CONFIG_FILE), 'utf8'));
  assert.equal(config.split, { train: slicesOf(split.train), val: slicesOf(split.val), test: slicesOf(split.test) }, 'config.json\'s slices are the cases\' slices');
  assert.equal((await readEvaluation(join(first, EVALUATION_FILE))).slices, slicesOf(split.test));
  const e = await evaluateCheckpoint(join(first, BEST));
  assert.equal(e.scores.cases.map((c) => [c.name, c.labels, c.slices.map((s) => s.slice)]), [[split.test[0], join(data, 'labelsTr', `${split.test[0]}.nii.gz`), [0, 1, 2, 3, 4]]]);
  assert.match(e.scores.scope, /on the 5 test slices \(1 case\) of /);
  assert.is(e.scores.pooled.confusion.tp + e.scores.pooled.confusion.fn, e.report.original.perSlice.reduce((s, x) => s + x.lesionPixels, 0), 'the same lesion pixels as the paper\'s figures');
});

t('a split file repeats the run\'s split whatever the seed; nnU-Net\'s entry k: its val is the test part', async () => {
  const repeat = join(tmp, 'run-file');
  await train(tiny({ seed: 9, splitFile: readSplitFile(join(first, SPLIT_FILE)) }), { out: repeat, log: quiet });
  assert.equal(splitOf(repeat), splitOf(first));

  const nnunet = join(tmp, 'splits_final.json');
  writeFileSync(nnunet, JSON.stringify([
    { train: ['p2', 'p3', 'p4'], val: ['p1'] },
    { train: ['p1', 'p3', 'p4'], val: ['p2'] },
  ]));
  const fold = join(tmp, 'run-nnunet');
  await train(tiny({ splitFile: readSplitFile(nnunet), fold: { k: 2, K: 2 } }), { out: fold, log: quiet });
  const s = splitOf(fold);
  assert.equal(s.test, ['p2']);
  assert.equal([...s.train, ...s.val].sort(), ['p1', 'p3', 'p4']);

  // Resume keeps the split: a split.json changed since the run started is refused.
  const changed = { train: s.train, val: s.test, test: s.val };
  writeFileSync(join(fold, SPLIT_FILE), JSON.stringify(changed));
  const refused = await train({ ...tiny({ splitFile: readSplitFile(nnunet), fold: { k: 2, K: 2 } }), epochs: 2 }, { out: fold, resume: true, log: quiet }).then(() => null, (e: Error) => e.message);
  assert.match(refused ?? 'no error', /split\.json is not the split this run computes from its config and data \(2 train \/ 1 val \/ 1 test cases\)/);
});

t('cv: folds by case, or the entries of splits_final.json; the folds\' splits in DIR/split.json; refusals', async () => {
  const out = join(tmp, 'cv');
  const cv = await crossValidate(tiny(), 2, out, { log: quiet });
  const folds = JSON.parse(readFileSync(join(out, SPLIT_FILE), 'utf8')) as SplitRecord[];
  assert.is(folds.length, 2);
  assert.equal(folds.flatMap((f) => f.test).sort(), NAMES, 'the test parts partition the cases');
  cv.folds.forEach((f, i) => {
    assert.equal(splitOf(f.out), folds[i], `fold ${i + 1}: its run folder's split.json`);
    assert.equal(f.testSlices, slicesOf(folds[i].test).length);
  });
  // DIR/split.json fed back repeats every fold, even under another seed.
  const again = join(tmp, 'cv-again');
  await crossValidate(tiny({ seed: 11, splitFile: readSplitFile(join(out, SPLIT_FILE)) }), 2, again, { log: quiet });
  assert.equal(JSON.parse(readFileSync(join(again, SPLIT_FILE), 'utf8')), folds);

  const nnunet = join(tmp, 'splits_final.json');
  const wrongCount = await crossValidate(tiny({ splitFile: readSplitFile(nnunet) }), 3, join(tmp, 'cv-3'), { log: quiet }).then(() => null, (e: Error) => e.message);
  assert.match(wrongCount ?? 'no error', /splits_final\.json holds 2 folds, not 3: give --folds 2 or leave --folds out/);
  const one = await crossValidate(tiny({ splitFile: readSplitFile(join(first, SPLIT_FILE)) }), 2, join(tmp, 'cv-one'), { log: quiet }).then(() => null, (e: Error) => e.message);
  assert.match(one ?? 'no error', /holds one split \(train, val, test\): cross-validation needs one per fold/);
  const lungs = await crossValidate(tiny(), 2, join(tmp, 'cv-lungs'), { log: quiet, lungMask: join(DEFAULT_DATA_DIR, 'tr_lungmask.nii.gz') }).then(() => null, (e: Error) => e.message);
  assert.match(lungs ?? 'no error', /holds 4 cases: a lung mask file covers one volume/);
});

t('the commands: --split in --help; refusals in one line', () => {
  for (const command of ['train', 'cv'] as const) {
    const help = cli(command, ['--help']);
    assert.is(help.code, 0);
    assert.match(help.out, /--split FILE/);
    assert.match(help.out, /imagesTr\/NAME\.nii\.gz or NAME_0000\.nii\.gz/);
  }
  const both = cli('train', ['--data', data, '--all-slices', '--split', join(first, SPLIT_FILE)]);
  assert.is(both.code, 1);
  assert.equal(both.err, ['error: --all-slices trains on every slice, so it takes no split: give --split or --all-slices, not both']);
  const resume = cli('train', ['--resume', first, '--split', join(first, SPLIT_FILE)]);
  assert.is(resume.code, 1);
  assert.match(resume.err.join('\n'), /^error: --resume continues a run with its own settings; .* not --split$/);
  const unknown = join(tmp, 'unknown.json');
  writeFileSync(unknown, JSON.stringify({ train: ['p1', 'p9'], val: ['p2'], test: ['p3'] }));
  const bad = cli('train', ['--data', data, '--split', unknown, '--size', '32', '--filters', '4,8', '--epochs', '1', '--out', join(tmp, 'run-bad')]);
  assert.is(bad.code, 1);
  assert.equal(bad.err, [`error: ${unknown} names 1 case the data does not hold: p9 (its cases: p1, p2, p3, p4).`]);
});

t.run();
