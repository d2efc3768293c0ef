// Data folders of several cases (the Decathlon / nnU-Net layout, DICOM series per case), splits by
// case, and split files. The cases are made here from the shipped volume: its 100 slices cut into
// 5 cases of 20, every 8th row and column (64x64), so the tests stay fast and need no download.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dicomFixture } from '../src/attack/dicom-files';
import { checkSameData, CheckpointError, configFromMetadata, CONFIG_KEY, dataInfo } from '../src/checkpoint';
import { defaultTrainConfig, splitFor, type TrainConfig } from '../src/config';
import type { SliceDataset } from '../src/data/dataset';
import { DataError } from '../src/data/errors';
import { datasetImage, DEFAULT_DATA_DIR, findCases, loadDataset, readSplitFile, readVolume } from '../src/data/files';
import type { Volume } from '../src/data/nifti';
import { parseSplitFile, splitFromFile, splitRecord, splitSlices, type Split } from '../src/data/split';
import { keepRunSplit, SPLIT_FILE, startRunFolder } from '../src/run-folder';
import { spaceFromAffine, type Affine } from '../src/data/space';
import { flipRows, writeNifti } from './nifti-fixture';

const tmp = mkdtempSync(join(tmpdir(), 'aunet-cases-'));
let counter = 0;
const fresh = (name: string) => join(tmp, `${counter++}-${name}`);

const STEP = 8;
const CASES = ['case_a', 'case_b', 'case_c', 'case_d', 'case_e'];
const PER_CASE = 20;
const shippedImage = readVolume(join(DEFAULT_DATA_DIR, 'tr_im_lungwindow.nii.gz'));
const shippedMask = readVolume(join(DEFAULT_DATA_DIR, 'tr_mask.nii.gz'));

/** Slices [k0, k1) of a shipped volume, every STEP-th row and column, as uint8 (labels keep their classes). */
function cut(vol: Volume, k0: number, k1: number): { dims: [number, number, number]; data: Uint8Array } {
  const [sx, sy] = vol.dims;
  const nx = sx / STEP;
  const ny = sy / STEP;
  const data = new Uint8Array(nx * ny * (k1 - k0));
  for (let k = k0, t = 0; k < k1; k++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++, t++) data[t] = vol.data[x * STEP + sx * (y * STEP + sy * k)];
  return { dims: [nx, ny, k1 - k0], data };
}

type Layout = 'decathlon' | 'nnunet' | 'dicom-imagesTr' | 'dicom-folders';

/** The 5 cases in a data folder of `layout`; returns the folder. */
function makeCases(layout: Layout, o: { names?: string[] } = {}): string {
  const dir = fresh(layout);
  const names = o.names ?? CASES;
  names.forEach((name, c) => {
    const [k0, k1] = [c * PER_CASE, (c + 1) * PER_CASE];
    if (layout === 'decathlon' || layout === 'nnunet') {
      const image = cut(shippedImage, k0, k1);
      writeNifti(join(dir, 'imagesTr', layout === 'nnunet' ? `${name}_0000.nii.gz` : `${name}.nii.gz`), { ...image, datatype: 'uint8' });
      writeNifti(join(dir, 'labelsTr', `${name}.nii.gz`), { ...cut(shippedMask, k0, k1), datatype: 'uint8' });
      return;
    }
    // A DICOM series of the same slices (HU = 6 v - 1350) and its labels on the series' grid.
    const fixture = dicomFixture(shippedImage, { slices: [k0, k1], step: STEP });
    const series = layout === 'dicom-imagesTr' ? join(dir, 'imagesTr', name) : join(dir, name);
    mkdirSync(series, { recursive: true });
    for (const f of fixture.files) writeFileSync(join(series, f.name), f.bytes);
    const labels = Uint8Array.from(fixture.sourceIndex, (i) => shippedMask.data[i]);
    writeNifti(join(dir, 'labelsTr', `${name}.nii.gz`), { dims: fixture.dims, data: labels, datatype: 'uint8', space: fixture.nifti.space });
  });
  if (layout === 'nnunet') {
    writeFileSync(join(dir, 'dataset.json'), JSON.stringify({ channel_names: { 0: 'CT' }, labels: { background: 0, lesion: [1, 2, 3] }, numTraining: names.length, file_ending: '.nii.gz' }));
  }
  return dir;
}

async function refused(p: Promise<unknown> | (() => unknown), ...mustContain: string[]): Promise<string> {
  let error: unknown = null;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof Error, `refused (got ${String(error)})`);
  const message = (error as Error).message;
  assert.not.match(message, /\n/, 'one line');
  for (const part of mustContain) assert.ok(message.includes(part), `"${message}" says "${part}"`);
  return message;
}

/** Every case's slices lie in one part, and the parts hold every slice once. */
function checkByCase(ds: SliceDataset, split: Split): void {
  const partOf = new Map<number, string>();
  for (const part of ['train', 'val', 'test'] as const) for (const s of split[part]) {
    assert.not.ok(partOf.has(s), `slice ${s} in two parts`);
    partOf.set(s, part);
  }
  assert.is(partOf.size, ds.count, 'every slice in a part');
  for (const c of ds.cases!) {
    const parts = new Set(Array.from({ length: c.count }, (_, i) => partOf.get(c.first + i)));
    assert.is(parts.size, 1, `${c.name} lies in ${[...parts].join(' and ')}`);
  }
}

const config = (o: Partial<TrainConfig> = {}): TrainConfig => ({ ...defaultTrainConfig('cpu', '/data'), ...o });

// ---------------------------------------------------------------------------------------------
const layout = suite('data folders of several cases');

layout('the Decathlon layout: 5 cases in name order, the voxels of the single volume they were cut from', async () => {
  const dir = makeCases('decathlon', { names: ['case_c', 'case_a', 'case_e', 'case_b', 'case_d'] });
  // macOS companions in the Decathlon's archives are skipped.
  writeFileSync(join(dir, 'imagesTr', '._case_a.nii.gz'), 'not a volume');
  const ds = await loadDataset(dir);
  assert.equal(ds.cases!.map((c) => [c.name, c.first, c.count]), CASES.map((n, i) => [n, i * PER_CASE, PER_CASE]));
  assert.is(ds.count, 100);
  assert.is(ds.width, 64);
  assert.is(ds.cases![0].imageSource, join(dir, 'imagesTr', 'case_a.nii.gz'));
  assert.is(ds.cases![0].maskSource, join(dir, 'labelsTr', 'case_a.nii.gz'));
  // case_a holds what makeCases wrote for the name at index 1 (slices 20-39 of the shipped volume).
  const single = fresh('single');
  writeNifti(join(single, 'tr_im.nii.gz'), { ...cut(shippedImage, 0, 100), datatype: 'uint8' });
  writeNifti(join(single, 'tr_mask.nii.gz'), { ...cut(shippedMask, 0, 100), datatype: 'uint8' });
  const whole = await loadDataset(single);
  assert.is(whole.cases, undefined, 'a single-volume folder stays one volume');
  const sourceOf = [1, 3, 0, 4, 2]; // case_a..case_e -> the index of the name in the order written
  for (const [c, range] of ds.cases!.entries()) {
    for (let k = 0; k < PER_CASE; k++) {
      const from = sourceOf[c] * PER_CASE + k;
      assert.equal(ds.masks[range.first + k], whole.masks[from], `${range.name} slice ${k}: mask`);
      assert.equal(ds.images[range.first + k], whole.images[from], `${range.name} slice ${k}: image`);
    }
  }
  assert.equal(dataInfo(ds).cases, CASES);
});

layout('nnU-Net v2 (NAME_0000.nii.gz, dataset.json) and DICOM series (imagesTr/NAME/, or sub-folders NAME/) read as the Decathlon folder', async () => {
  const decathlon = await loadDataset(makeCases('decathlon'));
  const nnunet = await loadDataset(makeCases('nnunet'));
  assert.equal(nnunet.cases!.map((c) => c.name), CASES);
  assert.equal(nnunet.images, decathlon.images);
  assert.equal(nnunet.masks, decathlon.masks);
  for (const kind of ['dicom-imagesTr', 'dicom-folders'] as const) {
    const dir = makeCases(kind);
    const cases = findCases(dir)!;
    assert.equal(cases.map((c) => [c.name, c.dicom]), CASES.map((n) => [n, true]));
    assert.is(cases[0].image, kind === 'dicom-imagesTr' ? join(dir, 'imagesTr', 'case_a') : join(dir, 'case_a'));
    const ds = await loadDataset(dir);
    assert.is(ds.intensity, 'hu', 'HU from the series');
    assert.equal(ds.masks, decathlon.masks, `${kind}: the labels on the series' grid`);
    assert.equal(ds.lesionPixels, decathlon.lesionPixels);
  }
  // A Decathlon case whose name ends in 4 digits is that name, not channel 0001 of another.
  const digits = makeCases('decathlon', { names: ['lung_0001', 'lung_0002'] });
  assert.equal(findCases(digits)!.map((c) => c.name), ['lung_0001', 'lung_0002']);
});

layout('a single-volume folder is not taken for one of several cases', async () => {
  assert.is(findCases(DEFAULT_DATA_DIR), null);
  assert.is(findCases(fresh('missing')), null);
  const both = makeCases('decathlon');
  writeNifti(join(both, 'tr_im.nii.gz'), { ...cut(shippedImage, 0, 4), datatype: 'uint8' });
  writeNifti(join(both, 'tr_mask.nii.gz'), { ...cut(shippedMask, 0, 4), datatype: 'uint8' });
  assert.is(findCases(both), null, 'tr_im / tr_mask at the top: the single volume, as before');
  assert.is((await loadDataset(both)).count, 4);
});

layout('refusals, one line each', async () => {
  const base = () => makeCases('decathlon');
  let dir = base();
  rmSync(join(dir, 'labelsTr', 'case_b.nii.gz'));
  await refused(loadDataset(dir), '1 image in imagesTr/ has no label volume: case_b', 'labelsTr/NAME.nii.gz');
  dir = base();
  rmSync(join(dir, 'imagesTr', 'case_d.nii.gz'));
  rmSync(join(dir, 'imagesTr', 'case_e.nii.gz'));
  await refused(loadDataset(dir), '2 label volumes in labelsTr/ have no image: case_d, case_e', 'NAME_0000.nii.gz');
  dir = base();
  writeNifti(join(dir, 'labelsTr', 'case_c.nii.gz'), { ...cut(shippedMask, 40, 59), datatype: 'uint8' });
  await refused(loadDataset(dir), 'imagesTr/case_c.nii.gz is 64 x 64 x 20', 'labelsTr/case_c.nii.gz is 64 x 64 x 19', 'must have the same shape');
  dir = base();
  writeNifti(join(dir, 'imagesTr', 'case_a_0001.nii.gz'), { ...cut(shippedImage, 0, 20), datatype: 'uint8' });
  await refused(loadDataset(dir), 'second input channel (imagesTr/case_a_0001.nii.gz', 'one CT channel');
  dir = base();
  writeNifti(join(dir, 'imagesTr', 'case_a_0000.nii.gz'), { ...cut(shippedImage, 0, 20), datatype: 'uint8' });
  await refused(loadDataset(dir), 'has 2 images of case case_a (case_a.nii.gz, case_a_0000.nii.gz): keep one');
  dir = base();
  writeFileSync(join(dir, 'dataset.json'), JSON.stringify({ modality: { 0: 'CT', 1: 'PET' } }));
  await refused(loadDataset(dir), 'dataset.json describes 2 input channels (CT, PET)');
  writeFileSync(join(dir, 'dataset.json'), '{"name": ');
  await refused(loadDataset(dir), 'dataset.json is not valid JSON', 'it is optional');
  writeFileSync(join(dir, 'dataset.json'), JSON.stringify({ channel_names: { 0: 'CT' }, file_ending: '.mha' }));
  await refused(loadDataset(dir), 'gives the file ending .mha');
  dir = base();
  rmSync(join(dir, 'labelsTr'), { recursive: true });
  await refused(loadDataset(dir), 'has imagesTr/ but no labelsTr/');
  dir = fresh('empty');
  mkdirSync(join(dir, 'imagesTr'), { recursive: true });
  mkdirSync(join(dir, 'labelsTr'));
  await refused(loadDataset(dir), 'holds no case');
  dir = base();
  writeNifti(join(dir, 'imagesTr', 'case_b.nii.gz'), { ...cut({ ...shippedImage, dims: [256, 256, 400] } as Volume, 0, 20), datatype: 'uint8' });
  writeNifti(join(dir, 'labelsTr', 'case_b.nii.gz'), { ...cut({ ...shippedMask, dims: [256, 256, 400] } as Volume, 0, 20), datatype: 'uint8' });
  await refused(loadDataset(dir), 'case_b.nii.gz has slices of 32x32', 'case_a.nii.gz of 64x64', 'share the slice size');
  dir = base();
  for (const n of CASES) writeNifti(join(dir, 'labelsTr', `${n}.nii.gz`), { dims: [64, 64, 20], data: new Uint8Array(64 * 64 * 20), datatype: 'uint8' });
  await refused(loadDataset(dir), 'no label volume of', 'has a lesion voxel');
  // A lung mask file covers one volume.
  const ds = await loadDataset(base());
  await refused(() => datasetImage(ds), 'holds 5 cases: a lung mask file covers one volume');
});

layout('NIfTI cases: a label with its rows reversed (as its header places them) is put on its image\'s grid; one on another grid is refused', async () => {
  const GRID: Affine = [[-0.7, 0, 0, 30], [0, -0.7, 0, 20], [0, 0, 2.5, -10]];
  const image = cut(shippedImage, 40, 44);
  const label = cut(shippedMask, 40, 44);
  assert.ok(label.data.some((v) => v > 0), 'the slices hold lesion');
  const flipped = flipRows(image.dims, label.data, GRID);
  const make = (labelB: { data: Uint8Array; affine: Affine }) => {
    const dir = fresh('nifti-grids');
    for (const name of ['case_a', 'case_b']) writeNifti(join(dir, 'imagesTr', `${name}.nii.gz`), { ...image, datatype: 'uint8', space: spaceFromAffine(GRID) });
    writeNifti(join(dir, 'labelsTr', 'case_a.nii.gz'), { dims: image.dims, data: label.data, datatype: 'uint8', space: spaceFromAffine(GRID) });
    writeNifti(join(dir, 'labelsTr', 'case_b.nii.gz'), { dims: image.dims, data: labelB.data, datatype: 'uint8', space: spaceFromAffine(labelB.affine) });
    return dir;
  };
  const ds = await loadDataset(make(flipped));
  assert.equal(ds.cases!.map((c) => c.count), [4, 4]);
  assert.equal(ds.masks.slice(4).map((m) => Array.from(m)), ds.masks.slice(0, 4).map((m) => Array.from(m)), 'case_b has case_a\'s labels, in the image\'s order');
  assert.ok(ds.lesionPixels.slice(4).some((p) => p > 0));
  // The same voxels with a spacing of 0.72 mm across: 1.3 mm apart at the far column, not the image's grid.
  const dir = make({ data: label.data, affine: GRID.map((r, i) => (i === 0 ? [-0.72, 0, 0, 30] : [...r])) as Affine });
  let error: unknown = null;
  await loadDataset(dir).catch((e: unknown) => (error = e));
  assert.instance(error, DataError);
  const message = (error as Error).message;
  assert.ok(message.startsWith(`${join(dir, 'labelsTr', 'case_b.nii.gz')} does not lie on the grid of the image ${join(dir, 'imagesTr', 'case_b.nii.gz')}`), message);
  assert.not.match(message, /\n/);
});

layout.run();

// ---------------------------------------------------------------------------------------------
const splits = suite('splits by case');

splits('the seeded split and every fold of cross-validation keep each case whole', async () => {
  const ds = await loadDataset(makeCases('decathlon'));
  const split = splitFor(config(), ds.count, ds.cases);
  checkByCase(ds, split);
  const record = splitRecord(split, ds.cases);
  assert.equal([record.train.length, record.val.length, record.test.length], [3, 1, 1], '5 cases: 20% test, a validation case');
  assert.equal(splitFor(config({ seed: 1 }), ds.count, ds.cases), split, 'the same seed, the same split');
  const tests: string[] = [];
  for (let k = 1; k <= 5; k++) {
    const fold = splitFor(config({ fold: { k, K: 5 } }), ds.count, ds.cases);
    checkByCase(ds, fold);
    tests.push(...splitRecord(fold, ds.cases!).test);
  }
  assert.equal(tests.sort(), CASES, 'the 5 folds\' test cases partition the cases');
  await refused(() => splitFor(config({ fold: { k: 1, K: 6 } }), ds.count, ds.cases), 'K = 6 folds is more than the 5 cases');
  // One volume: the slices, as before.
  assert.equal(splitFor(config(), 100), splitSlices(100, { seed: 1, testFraction: 0.2, valFraction: 0.1 }));
  assert.equal(splitFor(config({ fold: { k: 2, K: 5 } }), 100), splitSlices(100, { seed: 1, valFraction: 0.1, fold: { k: 2, K: 5 } }));
});

splits('a split file of names, and nnU-Net\'s splits_final.json with --fold; split.json reads back as the same split', async () => {
  const ds = await loadDataset(makeCases('decathlon'));
  const file = fresh('split.json');
  writeFileSync(file, JSON.stringify({ train: ['case_e', 'case_a'], val: ['case_c'], test: ['case_b', 'case_d'] }));
  const given = readSplitFile(file);
  assert.is(given.perFold, false);
  const split = splitFor(config({ splitFile: given }), ds.count, ds.cases);
  checkByCase(ds, split);
  assert.equal(splitRecord(split, ds.cases), { train: ['case_a', 'case_e'], val: ['case_c'], test: ['case_b', 'case_d'] });

  const nnunet = fresh('splits_final.json');
  writeFileSync(nnunet, JSON.stringify([
    { train: ['case_a', 'case_b', 'case_c', 'case_d'], val: ['case_e'] },
    { train: ['case_c', 'case_d', 'case_e'], val: ['case_a', 'case_b'] },
  ]));
  const folds = readSplitFile(nnunet);
  assert.is(folds.perFold, true);
  const fold2 = splitFor(config({ splitFile: folds, fold: { k: 2, K: 2 }, seed: 3 }), ds.count, ds.cases);
  const named = splitRecord(fold2, ds.cases);
  assert.equal(named.test, ['case_a', 'case_b'], 'the entry\'s val is the test part');
  assert.equal([...named.train, ...named.val].sort(), ['case_c', 'case_d', 'case_e'], 'validation drawn from the entry\'s train');
  assert.is(named.val.length, 1);
  // What split.json holds, fed back as --split, gives the same split (whatever the seed).
  const again = fresh('again.json');
  writeFileSync(again, JSON.stringify(named));
  assert.equal(splitFor(config({ splitFile: readSplitFile(again), seed: 99 }), ds.count, ds.cases), fold2);
  // The list form cv writes (a {train, val, test} per fold) is taken as it is.
  const cvFile = fresh('cv-split.json');
  writeFileSync(cvFile, JSON.stringify([splitRecord(split, ds.cases), named]));
  assert.equal(splitFor(config({ splitFile: readSplitFile(cvFile), fold: { k: 2, K: 2 }, seed: 5 }), ds.count, ds.cases), fold2);

  // One volume: slice indices.
  const indices = fresh('indices.json');
  writeFileSync(indices, JSON.stringify({ train: [0, 1, 2, 5], val: [3], test: [4, 6] }));
  assert.equal(splitFor(config({ splitFile: readSplitFile(indices) }), 7), { train: [0, 1, 2, 5], val: [3], test: [4, 6] });
  assert.equal(splitRecord({ train: [0, 1], val: [2], test: [3] }), { train: [0, 1], val: [2], test: [3] });
});

splits('split files refused, one line each', async () => {
  const ds = await loadDataset(makeCases('decathlon'));
  const write = (json: unknown) => {
    const f = fresh('bad.json');
    writeFileSync(f, typeof json === 'string' ? json : JSON.stringify(json));
    return f;
  };
  const use = (json: unknown, o: Partial<TrainConfig> = {}, data: { count: number; cases?: SliceDataset['cases'] } = ds) =>
    splitFor(config({ splitFile: readSplitFile(write(json)), ...o }), data.count, data.cases);
  await refused(() => readSplitFile(fresh('none.json')), 'split file', 'does not exist');
  await refused(() => use('{"train": ['), 'is not valid JSON');
  await refused(() => use({ train: ['case_a'], val: ['case_b'] }), 'has no "test" list');
  await refused(() => use({ train: ['case_a'], val: [], test: ['case_b'] }), 'the "val" list is empty');
  await refused(() => use([]), 'is an empty list');
  await refused(() => use({ train: ['case_a', 'case_b'], val: ['case_c'], test: ['case_b'] }), '"case_b" is in "train" and in "test"; a case belongs to one list');
  await refused(() => use({ train: ['case_a', 'case_a'], val: ['case_c'], test: ['case_b'] }), '"case_a" is in "train" twice');
  await refused(() => use({ train: ['case_a', 3], val: ['case_c'], test: ['case_b'] }), 'mixes case names and slice indices');
  await refused(() => use({ train: ['case_a', 'case_x', 'case_y'], val: ['case_c'], test: ['case_b'] }), 'names 2 cases the data does not hold: case_x, case_y');
  await refused(() => use({ train: [0, 1], val: [2], test: [3] }), 'lists slice indices, but the data holds 5 cases');
  await refused(() => use({ train: ['a'], val: ['b'], test: ['c'] }, {}, { count: 100 }), 'names cases (a, b, c), but the data is one volume');
  await refused(() => use({ train: [0, 100], val: [2], test: [3] }, {}, { count: 100 }), 'lists slice 100, but the data has 100 slices (0 to 99)');
  await refused(() => use({ train: [-1], val: [2], test: [3] }, {}, { count: 100 }), 'neither a case name nor a slice index');
  const nnunet = [{ train: ['case_a', 'case_b'], val: ['case_c'] }, { train: ['case_c'], val: ['case_a'] }];
  await refused(() => use(nnunet), 'holds 2 folds', 'pick one with --fold k/2');
  await refused(() => use(nnunet, { fold: { k: 1, K: 5 } }), '--fold 1/5 does not fit', 'which holds 2 folds');
  await refused(() => use({ train: ['case_a'], val: ['case_b'], test: ['case_c'] }, { fold: { k: 1, K: 2 } }), 'holds one split (train, val, test), not one per fold');
  await refused(() => use([{ train: ['case_a', 'case_b'], val: ['case_c'] }, { train: ['case_c'], val: ['case_c'] }]), 'entry 2: "case_c" is in "train" and in "val"');
});

splits('a run folder gets split.json; resume keeps it and refuses one that changed; checkpoints know their cases', async () => {
  const ds = await loadDataset(makeCases('decathlon'));
  const dir = fresh('run');
  const split = splitFor(config(), ds.count, ds.cases);
  await startRunFolder(dir, config(), split, dir, ds.cases);
  const written = JSON.parse(readFileSync(join(dir, SPLIT_FILE), 'utf8'));
  assert.equal(written, splitRecord(split, ds.cases));
  assert.ok(written.test.every((n: unknown) => typeof n === 'string'), 'case names');
  await keepRunSplit(dir, split, ds.cases);
  writeFileSync(join(dir, SPLIT_FILE), JSON.stringify({ ...written, test: [written.val[0]], val: written.test }));
  await refused(keepRunSplit(dir, split, ds.cases), `${join(dir, SPLIT_FILE)} is not the split this run computes`);
  rmSync(join(dir, SPLIT_FILE));
  await keepRunSplit(dir, split, ds.cases);
  assert.ok(existsSync(join(dir, SPLIT_FILE)), 'written for a run that had none');
  // A single volume: slice indices, as config.json's split.
  const one = fresh('run-one');
  await startRunFolder(one, config(), splitFor(config(), 12), one);
  assert.equal(JSON.parse(readFileSync(join(one, SPLIT_FILE), 'utf8')), splitFor(config(), 12));
  // The checkpoint's data record names the cases: other cases are refused, one volume too.
  const stored = JSON.stringify(dataInfo(ds));
  assert.is(checkSameData(stored, ds, 'run.safetensors'), null);
  const fewer = { ...ds, cases: ds.cases!.slice(0, 4) };
  assert.throws(() => checkSameData(stored, fewer, 'run.safetensors'), (e: Error) => e instanceof CheckpointError && /trained on 5 cases, this data holds 4 \(without case_e\)/.test(e.message));
  const { cases: _cases, ...single } = ds;
  assert.throws(() => checkSameData(stored, single, 'run.safetensors'), /trained on 5 cases, this data is one volume/);
  // Configs stored before split files: no split file.
  const { splitFile: _splitFile, ...old } = config();
  assert.is(configFromMetadata({ [CONFIG_KEY]: JSON.stringify(old) }, 'old.safetensors').splitFile, null);
});

splits.run();

// Parsed without data: the shapes alone.
const parse = suite('split file shapes');
parse('parseSplitFile keeps the lists and the form', () => {
  const one = parseSplitFile('{"train": [0, 1], "val": [2], "test": [3]}', 'a.json');
  assert.equal(one, { file: 'a.json', perFold: false, entries: [{ train: [0, 1], val: [2], test: [3] }] });
  const folds = parseSplitFile('[{"train": ["x"], "val": ["y"]}, {"train": ["y"], "val": ["x"], "test": ["z"]}]', 'b.json');
  assert.is(folds.perFold, true);
  assert.equal(folds.entries[1].test, ['z']);
  assert.throws(() => parseSplitFile('"train"', 'c.json'), (e: Error) => e instanceof DataError && /c\.json is not an object of lists/.test(e.message));
  assert.equal(splitFromFile(one, null, { count: 4 }, { seed: 1, valFraction: 0.1 }), { train: [0, 1], val: [2], test: [3] });
});
parse.run();
