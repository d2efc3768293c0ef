// `evaluate --checkpoint` reports every score of `evaluate --pred` (src/evaluate-file.ts): on a
// tiny untrained network and a made data folder whose labels hold the three lesion classes, the
// full scores agree with the paper's figures computed the old way, count each class of the test
// slices, and --labels-as lung-lesion takes the effusion out of the lesion; the command writes
// both reports. Uses WebGPU.
import './conv-variant';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setupGPU } from '@aunet/tensor/testing';
import { manualSeed, saveCheckpoint } from '@aunet/nn';
import { CONFIG_KEY, EPOCH_KEY } from '../src/checkpoint';
import { defaultTrainConfig, splitFor } from '../src/config';
import { defaultSpace } from '../src/data/nifti';
import { evaluateCheckpoint } from '../src/evaluate-file';
import { AUNet } from '../src/model';
import { writeNifti } from './nifti-fixture';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'aunet-evaluate-checkpoint-'));
const N = 32;
const SLICES = 15;
const plane = N * N;

// The data: 15 slices of 32 x 32, voxels 0.7 x 0.7 x 5 mm; in each slice a bright disc of ground
// glass, in every third a consolidation square, in every other a crescent of effusion at the
// edge. The image is the labels made visible (8-bit), so that even an untrained network predicts
// some lesion and some background.
const labels = new Uint8Array(plane * SLICES);
for (let k = 0; k < SLICES; k++) {
  for (let y = 0; y < N; y++) {
    for (let x = 0; x < N; x++) {
      const i = k * plane + y * N + x;
      if ((x - 12) ** 2 + (y - 14) ** 2 < 16 + k) labels[i] = 1;
      else if (k % 3 === 0 && x >= 20 && x < 26 && y >= 6 && y < 12) labels[i] = 2;
      else if (k % 2 === 1 && x >= 27 && y >= 10 && y < 24) labels[i] = 3;
    }
  }
}
const image = Uint8Array.from(labels, (v, i) => (v ? 120 + 40 * v : 20) + (i % 7));
const data = join(tmp, 'data');
const space = { ...defaultSpace(), pixdim: [1, 0.7, 0.7, 5, 1, 1, 1, 1], xyztUnits: 2 };
writeNifti(join(data, 'tr_im.nii.gz'), { dims: [N, N, SLICES], data: image, datatype: 'uint8', space });
writeNifti(join(data, 'tr_mask.nii.gz'), { dims: [N, N, SLICES], data: labels, datatype: 'uint8', space });
const config = defaultTrainConfig('cpu', data, { seed: 3, model: { inputSize: 16, filters: [4, 8] } });
const checkpoint = join(tmp, 'tiny.safetensors');
const testSlices = splitFor(config, SLICES).test;

/** Voxels of each class (1-3) in the test slices, and the lesion voxels per test slice without effusion. */
const classVoxels = [1, 2, 3].map((c) => testSlices.reduce((s, k) => s + labels.subarray(k * plane, (k + 1) * plane).filter((v) => v === c).length, 0));
const lungLesion = testSlices.map((k) => labels.subarray(k * plane, (k + 1) * plane).filter((v) => v === 1 || v === 2).length);

test.before(async () => {
  await setupGPU();
  manualSeed(5);
  const model = new AUNet(config.model);
  await saveCheckpoint(checkpoint, model, { metadata: { [CONFIG_KEY]: JSON.stringify(config), [EPOCH_KEY]: '1' } });
  model.dispose();
});

test('the full scores agree with the paper\'s figures, count each class, and have per-slice surfaces only', async () => {
  const e = await evaluateCheckpoint(checkpoint);
  assert.ok(testSlices.length >= 3, `${testSlices.length} test slices`);
  const c = e.scores.cases[0];
  assert.equal(c.slices.map((s) => s.slice), testSlices);
  // The same masks at the original resolution: the same Dice, sensitivity, specificity, counts.
  assert.equal(c.slices.map((s) => [s.dice, s.sensitivity, s.specificity, s.lesionPixels, s.predictedPixels]), e.report.original.perSlice.map((s) => [s.dice, s.sensitivity, s.specificity, s.lesionPixels, s.predictedPixels]));
  assert.equal(
    { dice: e.scores.pooled.overlap.dice, sensitivity: e.scores.pooled.overlap.sensitivity, specificity: e.scores.pooled.overlap.specificity },
    e.report.original.pooled,
  );
  assert.equal(c.classes.map((k) => k.voxels), classVoxels);
  for (const k of c.classes) assert.ok(k.found >= 0 && k.found <= k.voxels, `${k.name}: ${k.found} of ${k.voxels}`);
  assert.equal(c.pixelMm, [0.7, 0.7]);
  assert.is(c.surface, null, 'test slices are not a volume: no 3-D scores');
  // A slice's surface scores follow from what it holds.
  for (const s of c.slices) {
    const kind = s.lesionPixels && s.predictedPixels ? 'both' : s.lesionPixels || s.predictedPixels ? 'one' : 'neither';
    assert.ok(kind === 'both' ? Number.isFinite(s.hd95) && s.nsd >= 0 && s.nsd <= 1 : kind === 'one' ? s.hd95 === Infinity && s.nsd === 0 : Number.isNaN(s.hd95), `slice ${s.slice}: ${kind}, HD95 ${s.hd95}`);
  }
  assert.is(e.scores.labelsAs, 'lesion');
  assert.is(e.scores.toleranceMm, 1);
  assert.match(e.scores.scope, /tiny\.safetensors \(epoch 1\) on the \d+ test slices of .*data, at 32x32/);
});

test('--labels-as lung-lesion: the effusion leaves the lesion, the predictions stay', async () => {
  const lesion = await evaluateCheckpoint(checkpoint);
  const lung = await evaluateCheckpoint(checkpoint, { labelsAs: 'lung-lesion', toleranceMm: 2 });
  assert.equal(lung.report.original.perSlice.map((s) => s.lesionPixels), lungLesion);
  assert.equal(lung.scores.cases[0].slices.map((s) => s.lesionPixels), lungLesion);
  assert.equal(lung.report.original.perSlice.map((s) => s.predictedPixels), lesion.report.original.perSlice.map((s) => s.predictedPixels));
  assert.equal(lung.scores.cases[0].classes, lesion.scores.cases[0].classes);
  assert.ok(lungLesion.reduce((a, b) => a + b, 0) < lesion.report.original.perSlice.reduce((a, s) => a + s.lesionPixels, 0), 'the test slices hold effusion');
  assert.is(lung.scores.toleranceMm, 2);
});

test('--part val scores the validation slices; --min-lesion removes small predicted lesions, all of them when larger than any', async () => {
  const val = await evaluateCheckpoint(checkpoint, { part: 'val' });
  assert.equal(val.report.slices, splitFor(config, SLICES).val);
  assert.match(val.scores.scope, /on the \d+ validation slices/);
  const plain = await evaluateCheckpoint(checkpoint);
  const predicted = (e: typeof plain) => e.report.original.perSlice.map((s) => s.predictedPixels);
  assert.ok(predicted(plain).some((n) => n > 0), 'the untrained network predicts some lesion');
  const some = await evaluateCheckpoint(checkpoint, { minLesionPixels: 6 });
  assert.is(some.report.minLesionPixels, 6);
  assert.match(some.scores.scope, /lesions under 6 pixels removed/);
  predicted(some).forEach((n, j) => assert.ok(n <= predicted(plain)[j], `slice ${j}: ${n} > ${predicted(plain)[j]}`));
  assert.equal(some.scores.cases[0].slices.map((x) => x.predictedPixels), predicted(some), 'the full scores see the same masks');
  const all = await evaluateCheckpoint(checkpoint, { minLesionPixels: plane + 1 });
  assert.ok(predicted(all).every((n) => n === 0) && all.report.model.perSlice.every((x) => x.predictedPixels === 0), 'no lesion is larger than the slice');
});

test('the command: both reports, their names, the table; a bad --labels-as in one line', () => {
  const evaluate = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'src/cli/evaluate.ts'), '--checkpoint', checkpoint, ...args], { cwd: pkg, encoding: 'utf8', timeout: 300_000 });
  const out = join(tmp, 'report');
  const r = evaluate('--labels-as', 'lung-lesion', '--out', out);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /lesion: --labels-as lung-lesion \(pleural effusion counts as background\)/);
  assert.match(r.stdout, /every score at 32x32:\n\s+Dice\s+IoU\s+Sens\s+Spec\s+Prec\s+HD95 mm/);
  assert.match(r.stdout, /found per class \(sensitivity\): ground glass .* pleural effusion /);
  const json = JSON.parse(readFileSync(join(tmp, 'evaluation-tiny-lung-lesion-labels.json'), 'utf8'));
  assert.is(json.labelsAs, 'lung-lesion');
  assert.equal(json.original.perSlice.map((s: { lesionPixels: number }) => s.lesionPixels), lungLesion);
  assert.equal(json.scores.cases[0].classes.map((k: { voxels: number }) => k.voxels), classVoxels);
  for (const f of ['evaluation.csv', 'evaluation.json', 'evaluation.md']) assert.ok(existsSync(join(out, f)), f);
  assert.match(readFileSync(join(out, 'evaluation.md'), 'utf8'), /tiny\.safetensors \(epoch 1\) on the \d+ test slices/);
  const val = evaluate('--part', 'val', '--min-lesion', '5');
  assert.is(val.status, 0, val.stderr);
  assert.match(val.stdout, /predicted lesions under 5 pixels removed/);
  assert.is(JSON.parse(readFileSync(join(tmp, 'evaluation-tiny-min5-val.json'), 'utf8')).minLesionPixels, 5);
  const bad = evaluate('--labels-as', 'all');
  assert.is(bad.status, 1);
  assert.equal(bad.stderr.trim().split('\n'), ['error: --labels-as takes lesion or lung-lesion; got "all"']);
});

test.run();
