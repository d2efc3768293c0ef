// The commands on DICOM series (WebGPU: run under the lavapipe lock): `predict --input` on a
// series made from the shipped slices (shuffled file names, oblique, a second series mixed in)
// gives, voxel for voxel, the mask `predict` gives on the NIfTI of the same voxels, written with
// the series' geometry; `--series` picks a series and its absence lists them; a zip reads as its
// folder; `evaluate --data` scores a DICOM data folder exactly as the NIfTI one; `train --data`
// trains on a DICOM data folder.
import './conv-variant';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { zipSync } from 'fflate';
import { setupGPU } from '@aunet/tensor/testing';
import { manualSeed, saveCheckpoint } from '@aunet/nn';
import { defaultTrainConfig } from '../src/config';
import { CONFIG_KEY, EPOCH_KEY } from '../src/checkpoint';
import { DEFAULT_DATA_DIR, readVolume } from '../src/data/files';
import { volumeFromDicom } from '../src/data/dicom';
import { affineDifference, voxelCorrespondence, voxelToWorld } from '../src/data/space';
import { AUNet } from '../src/model';
import { dicomFixture } from '../src/attack/dicom-files';
import { writeNifti } from './nifti-fixture';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'aunet-dicom-commands-'));
const shippedImage = readVolume(join(DEFAULT_DATA_DIR, 'tr_im_lungwindow.nii.gz'));
const shippedMask = readVolume(join(DEFAULT_DATA_DIR, 'tr_mask.nii.gz'));

function command(name: string, args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(pkg, `src/cli/${name}.ts`), ...args], { cwd: pkg, encoding: 'utf8', timeout: 300_000 });
}

/** stderr's lines that are the command's own (not Dawn's notice, nor a progress bar). */
const ownLines = (stderr: string) => stderr.split('\n').filter((l) => l.trim() && !/artificially reduced/.test(l) && !/\] \d+\/\d+ (slices|batches)/.test(l));

function writeFolder(dir: string, files: { name: string; bytes: Uint8Array }[]): string {
  mkdirSync(dir, { recursive: true });
  for (const f of files) writeFileSync(join(dir, f.name), f.bytes);
  return dir;
}

const s = suite('the commands on DICOM series');
s.before(setupGPU);

let checkpoint = '';
s.before(async () => {
  manualSeed(4);
  const config = defaultTrainConfig('cpu', join(tmp, 'nowhere'), { model: { inputSize: 16, filters: [4, 8] } });
  const model = new AUNet(config.model);
  checkpoint = join(tmp, 'tiny.safetensors');
  await saveCheckpoint(checkpoint, model, { metadata: { [CONFIG_KEY]: JSON.stringify(config), [EPOCH_KEY]: '1' } });
  model.dispose();
});

s('predict --input: a DICOM folder gives the mask of its NIfTI, voxel for voxel, with the series\' geometry; --series picks; a zip is its folder', () => {
  // Slices 40-45 of the shipped scan, 64 x 64, oblique, shuffled names, a second series among them.
  const f = dicomFixture(shippedImage, { slices: [40, 46], step: 8, tilt: 20, shuffle: 9, secondSeries: true });
  const series = writeFolder(join(tmp, 'case'), f.files);
  const nifti = join(tmp, 'case.nii.gz');
  writeNifti(nifti, f.nifti);
  const out = join(tmp, 'out');

  // Two series in the folder: listed, one line, exit 1.
  const listed = command('predict', ['--checkpoint', checkpoint, '--input', series, '--out', out, '--png', 'none']);
  assert.is(listed.status, 1, listed.stderr);
  const lines = ownLines(listed.stderr);
  assert.is(lines.length, 1, listed.stderr);
  assert.match(lines[0], new RegExp(`^error: ${series} holds 2 DICOM series: ${f.seriesUid} ".*" \\(series 2\\): 6 slices; ${f.secondUid} "second series" \\(series 102\\): 3 slices\\. Pick one with --series UID`));

  const r = command('predict', ['--checkpoint', checkpoint, '--input', series, '--series', f.seriesUid, '--out', out, '--png', 'none', '--probabilities']);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^case: DICOM CT series ${f.seriesUid} ".*": 6 slices of 64 x 64, voxel 6 x 6 x 5 mm, Explicit VR Little Endian; 1 other series beside it$`, 'm'));
  const fromNifti = command('predict', ['--checkpoint', checkpoint, '--input', nifti, '--out', join(tmp, 'out-nifti'), '--png', 'none', '--probabilities']);
  assert.is(fromNifti.status, 0, fromNifti.stderr);

  const mask = readVolume(join(out, 'case_lesions.nii.gz'));
  const reference = readVolume(join(tmp, 'out-nifti', 'case_lesions.nii.gz'));
  assert.equal(mask.dims, [64, 64, 6]);
  assert.equal(mask.data, reference.data, 'the same mask, voxel for voxel');
  assert.equal(readVolume(join(out, 'case_probabilities.nii.gz')).data, readVolume(join(tmp, 'out-nifti', 'case_probabilities.nii.gz')).data);
  // The mask lies on the series: its geometry is the series', the tilted grid.
  const seriesVolume = readVolume(series, { series: f.seriesUid });
  assert.ok(affineDifference(voxelToWorld(mask.space)!, voxelToWorld(seriesVolume.space)!) < 1e-4);
  assert.ok(affineDifference(voxelToWorld(mask.space)!, f.affine) < 1e-4);
  const json = JSON.parse(readFileSync(join(out, 'case_lesions.json'), 'utf8'));
  assert.is(json.input, series);

  // The series alone, zipped: the same mask under the zip's name.
  const zip = join(tmp, 'zipped.zip');
  writeFileSync(zip, zipSync(Object.fromEntries(f.files.filter((x) => !x.name.startsWith('S2-')).map((x) => [`export/${x.name}`, x.bytes]))));
  const z = command('predict', ['--checkpoint', checkpoint, '--input', zip, '--out', out, '--png', 'none']);
  assert.is(z.status, 0, z.stderr);
  assert.equal(readVolume(join(out, 'zipped_lesions.nii.gz')).data, reference.data);

  // --series naming no series of the folder: one line listing those there are.
  const none = command('predict', ['--checkpoint', checkpoint, '--input', series, '--series', '2.25.404', '--out', out, '--png', 'none']);
  assert.is(none.status, 1);
  assert.match(ownLines(none.stderr).join('\n'), new RegExp(`^error: ${series} holds no series 2\\.25\\.404; it holds ${f.seriesUid}`));
});

s('predict on a left-handed grid (the shipped slices stored head to foot): the mask of slice k is the NIfTI mask of slice n-1-k, on the same world points', () => {
  const headToFoot = { ...shippedImage, space: { ...shippedImage.space, srow: shippedImage.space.srow.map((r, i) => (i === 2 ? [r[0], r[1], -r[2], -r[3]] : [...r])) as typeof shippedImage.space.srow } };
  const f = dicomFixture(headToFoot, { slices: [50, 54], step: 8, geometry: 'source' });
  const series = writeFolder(join(tmp, 'flipped'), f.files);
  const nifti = join(tmp, 'flipped.nii.gz');
  writeNifti(nifti, f.nifti);
  for (const [input, out] of [[series, join(tmp, 'out-f')], [nifti, join(tmp, 'out-fn')]]) {
    const r = command('predict', ['--checkpoint', checkpoint, '--input', input, '--out', out, '--png', 'none', '--probabilities']);
    assert.is(r.status, 0, r.stderr);
  }
  const a = readVolume(join(tmp, 'out-f', 'flipped_probabilities.nii.gz'));
  const b = readVolume(join(tmp, 'out-fn', 'flipped_probabilities.nii.gz'));
  const order = voxelCorrespondence({ dims: b.dims, affine: voxelToWorld(b.space)! }, { dims: a.dims, affine: voxelToWorld(a.space)! });
  assert.ok(order, 'the two outputs hold the same voxels');
  const plane = 64 * 64;
  for (let t = 0; t < order!.length; t++) {
    assert.is(order![t], (t % plane) + plane * (3 - Math.floor(t / plane)));
    if (a.data[t] !== b.data[order![t]]) assert.unreachable(`voxel ${t}: ${a.data[t]} vs ${b.data[order![t]]}`);
  }
});

/** A data folder of a DICOM series and its labels on the series' grid, and the NIfTI folder of the same. */
function dataFolders(name: string, o: Parameters<typeof dicomFixture>[1]): { dicom: string; nifti: string } {
  const f = dicomFixture(shippedImage, o);
  const dicom = writeFolder(join(tmp, `${name}-dicom`, 'series'), f.files);
  const { volume } = volumeFromDicom(f.files.map((x) => ({ name: x.name, bytes: x.bytes })), 'x');
  const order = voxelCorrespondence({ dims: f.dims, affine: f.affine }, { dims: volume.dims, affine: voxelToWorld(volume.space)! })!;
  const labels = Uint8Array.from(order, (i) => shippedMask.data[f.sourceIndex[i]]);
  writeNifti(join(dicom, '..', 'tr_mask.nii.gz'), { dims: volume.dims, data: labels, datatype: 'uint8', space: volume.space });
  const nifti = join(tmp, `${name}-nifti`);
  mkdirSync(nifti);
  writeNifti(join(nifti, 'tr_im.nii.gz'), { ...f.nifti, data: Int16Array.from(order, (i) => f.nifti.data[i]), space: volume.space });
  copyFileSync(join(dicom, '..', 'tr_mask.nii.gz'), join(nifti, 'tr_mask.nii.gz'));
  return { dicom: join(dicom, '..'), nifti };
}

s('evaluate --data: a DICOM data folder scores exactly as the NIfTI folder of the same voxels', () => {
  const { dicom, nifti } = dataFolders('eval', { slices: [30, 42], step: 16, tilt: 12, shuffle: 1 });
  const report = (data: string, json: string) => {
    const r = command('evaluate', ['--checkpoint', checkpoint, '--data', data, '--json', json]);
    assert.is(r.status, 0, r.stderr);
    return JSON.parse(readFileSync(json, 'utf8'));
  };
  const a = report(dicom, join(tmp, 'eval-dicom.json'));
  const b = report(nifti, join(tmp, 'eval-nifti.json'));
  assert.equal(a.model, b.model);
  assert.equal(a.original, b.original);
  assert.equal(a.slices, b.slices);
  assert.ok(Array.isArray(a.slices) && a.slices.length > 0);
});

s('train --data: trains on a DICOM data folder (a tiny run), its split and scores on the series\' slices', () => {
  const { dicom } = dataFolders('train', { slices: [20, 32], step: 16, shuffle: 5 });
  const run = join(tmp, 'run');
  const r = command('train', ['--data', dicom, '--out', run, '--preset', 'cpu', '--size', '16', '--filters', '4,8', '--epochs', '1', '--batch', '4']);
  assert.is(r.status, 0, r.stderr);
  assert.ok(existsSync(join(run, 'last.safetensors')));
  const config = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
  assert.is(config.data, dicom);
  const split = [...config.split.train, ...config.split.val, ...config.split.test].sort((x: number, y: number) => x - y);
  assert.equal(split, Array.from({ length: 12 }, (_, k) => k), 'the split covers the 12 slices of the series');
  assert.ok(existsSync(join(run, 'evaluation.json')));
});

s.run();
