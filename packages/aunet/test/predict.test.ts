// Prediction on volumes: resizing to and from the model's size, mirroring TTA on predictors whose
// output is known, lesion area and burden on hand-made masks, slice pictures, the outputs built
// once for predict's files and the page (the same bytes from both), and the predict command end
// to end on a small NIfTI volume (geometry kept, files readable) and on a 2-D slice, and with no
// --checkpoint: the default model (a stand-in exported to F16, named by $AUNET_MODEL), or one line
// saying it is missing.
import './conv-variant';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import * as nifti from 'nifti-reader-js';
import { decode as decodePng } from 'fast-png';
import { setupGPU } from '@aunet/tensor/testing';
import { manualSeed, saveCheckpoint } from '@aunet/nn';
import { defaultTrainConfig } from '../src/config';
import { CONFIG_KEY, EPOCH_KEY, loadModel } from '../src/checkpoint';
import { exportCheckpointSafetensors } from '../src/onnx-file';
import { loadRunCheckpoint, saveRunCheckpoint } from '../src/run-folder';
import { defaultModel, defaultModelLine, missingModelMessage, MODEL_CARD_FILE, MODEL_ENV, SHIPPED_MODEL_FILE } from '../src/shipped-model';
import { DEFAULT_DATA_DIR, readLungMask, readVolume } from '../src/data/files';
import { writeNifti } from './nifti-fixture';
import { defaultSpace, type NiftiSpace, type Volume } from '../src/data/nifti';
import { bodyMask, lesionCsv, lesionReport, voxelSizeMm } from '../src/lesions';
import { volumeLungMask } from '../src/lungs';
import { AUNet } from '../src/model';
import { displayFlips, overlayRgb } from '../src/overlay';
import { mirror, mirroredTTA, modelPredictor, predictVolume, type SlicePredictor } from '../src/predict';
import { predictFile, predictionInputHash, predictionInputs } from '../src/prediction-files';
import { maskNifti, predictionFileNames, predictionReport, reportCsv, reportJson, slicePictures, storedDims, withThreshold } from '../src/prediction-report';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'aunet-predict-'));

/** An oriented space: 0.7 x 0.8 mm pixels, 5 mm slices, units mm, an sform with a flipped x. */
const SPACE: NiftiSpace = {
  pixdim: [-1, 0.7, 0.8, 5, 1, 1, 1, 1],
  xyztUnits: 2 | 8,
  qformCode: 1,
  quatern: [0, 1, 0],
  qoffset: [10, -20, -30],
  sformCode: 2,
  srow: [[-0.7, 0, 0, 10], [0, 0.8, 0, -20], [0, 0, 5, -30]],
  dimInfo: 0,
};

function volume(dims: [number, number, number], data: Float32Array, space = SPACE, sliceAxis: 0 | 1 | 2 = 2): Volume {
  return { source: 'test.nii', dims, data, sliceAxis, datatype: 'float32', niftiVersion: 1, scaling: null, space, description: '' };
}

/** A predictor that returns fixed maps (or a function of the input) at size s. */
const fake = (size: number, f: (im: Float32Array) => Float32Array): SlicePredictor & { calls: number } => {
  const p = { size, calls: 0, predict: async (ims: Float32Array[]) => (p.calls++, ims.map(f)) };
  return p;
};

const v = suite('predictVolume');

v('non-square slices of another size: resized to the model and back, thresholded, batched', async () => {
  // 8-bit volume 24 x 20 x 5: left half bright (255), right half dark; the "model" returns its input.
  const [nx, ny, nz] = [24, 20, 5];
  const data = new Float32Array(nx * ny * nz);
  for (let k = 0; k < nz; k++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) data[x + nx * (y + ny * k)] = x < 12 ? 255 : 0;
  const model = fake(16, (im) => im);
  const seen: number[] = [];
  const p = await predictVolume(model, volume([nx, ny, nz], data), { batch: 2, onProgress: (d) => seen.push(d) });
  assert.equal(p.dims, [nx, ny, nz]);
  assert.is(p.intensity, '8bit');
  assert.is(p.probabilities.length, nx * ny * nz);
  assert.is(model.calls, 3, '5 slices in batches of 2');
  assert.equal(seen, [2, 4, 5]);
  for (let k = 0; k < nz; k++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const i = x + nx * (y + ny * k);
        // Away from the edge between the halves the round trip is exact.
        if (x < 10) assert.is(p.mask[i], 1, `lesion at ${x},${y},${k}`);
        if (x >= 14) assert.is(p.mask[i], 0, `background at ${x},${y},${k}`);
        assert.is(p.mask[i], p.probabilities[i] >= 0.5 ? 1 : 0);
      }
    }
  }
});

v('slices run along the header\'s slice axis, and the mask comes back in the file\'s layout', async () => {
  // 8-bit volumes whose slices along the axis are 4 x 4 (no resizing for a model of size 4) and
  // whose other axis is 5 long; the "model" marks its slice's row 0, column 1.
  for (const [axis, dims] of [[0, [5, 4, 4]], [1, [4, 5, 4]]] as const) {
    const [nx, ny, nz] = dims;
    const data = Float32Array.from({ length: nx * ny * nz }, (_, i) => (i * 37) % 256);
    const seen: Float32Array[] = [];
    const model = fake(4, (im) => (seen.push(im), im.map((_, j) => (j === 1 ? 1 : 0))));
    const p = await predictVolume(model, volume([nx, ny, nz], data, SPACE, axis), { batch: 3 });
    assert.equal(p.dims, [nx, ny, nz]);
    assert.is(seen.length, 5, 'one slice per voxel along the slice axis');
    // Slice k along x holds (y across, z down); along y, (x across, z down).
    seen.forEach((im, k) => im.forEach((value, j) => {
      const [a, b] = [j % 4, Math.floor(j / 4)];
      const [x, y, z] = axis === 0 ? [k, a, b] : [a, k, b];
      assert.is(value, Math.fround(data[x + nx * (y + ny * z)] / 255), `slice ${k}, pixel ${j}`);
    }));
    for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) {
      const marked = z === 0 && (axis === 0 ? y === 1 : x === 1);
      assert.is(p.mask[x + nx * (y + ny * z)], marked ? 1 : 0, `axis ${axis}, voxel ${x},${y},${z}`);
    }
  }
});

v('Hounsfield volumes are windowed as in training; a non-finite prediction is refused', async () => {
  const hu = new Float32Array(16 * 16).fill(-1000);
  hu[0] = 400;
  const p = await predictVolume(fake(16, (im) => im), volume([16, 16, 1], hu));
  assert.is(p.intensity, 'hu');
  assert.is(p.image[0], 1);
  assert.is(p.image[1], 0);
  try {
    await predictVolume(fake(16, (im) => im.map(() => NaN)), volume([16, 16, 1], hu));
    assert.unreachable('NaN accepted');
  } catch (e) {
    assert.match((e as Error).message, /slice 0 are not finite/);
  }
});

v('mirroring TTA: the mean over the four mirrorings, each mapped back', async () => {
  const s = 8;
  // A map that ignores the input and rises left to right: its mirrored mean is 0.5 everywhere.
  const ramp = fake(s, () => Float32Array.from({ length: s * s }, (_, i) => (i % s) / (s - 1)));
  const [out] = await mirroredTTA(ramp).predict([new Float32Array(s * s)]);
  for (const value of out) assert.ok(Math.abs(value - 0.5) < 1e-6, `${value}`);
  assert.is(ramp.calls, 4);
  // A predictor that commutes with mirroring (pixel-wise) is unchanged by TTA.
  const image = Float32Array.from({ length: s * s }, (_, i) => ((i * 37) % 11) / 10);
  const pixelwise = fake(s, (im) => im.map((x) => x * x));
  const [tta] = await mirroredTTA(pixelwise).predict([image]);
  image.forEach((x, i) => assert.ok(Math.abs(tta[i] - x * x) < 1e-6));
  // An input-dependent, position-dependent map: checked against the mean computed by hand.
  const shifted = fake(s, (im) => im.map((x, i) => (i % s === 0 ? x : 0)));
  const [mean] = await mirroredTTA(shifted).predict([image]);
  const expected = new Float32Array(s * s);
  for (const [fx, fy] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    const back = mirror(mirror(image, s, fx, fy).map((x, i) => (i % s === 0 ? x : 0)), s, fx, fy);
    back.forEach((x, i) => (expected[i] += x / 4));
  }
  expected.forEach((x, i) => assert.ok(Math.abs(mean[i] - x) < 1e-6));
});

const l = suite('lesion area and burden');

l('areas in pixels, mm^2 and ml from the voxel size; burden over a lung mask', () => {
  const [nx, ny, nz] = [10, 10, 2];
  const mask = new Uint8Array(nx * ny * nz);
  const lung = new Uint8Array(nx * ny * nz);
  for (let i = 0; i < 12; i++) mask[i] = 1; // slice 0: 12 lesion pixels
  for (let i = 0; i < 40; i++) lung[i] = 1; // slice 0: 40 lung pixels; slice 1: none
  const r = lesionReport(mask, lung, [nx, ny, nz], SPACE, 'lung');
  assert.equal(r.voxelMm, [0.7, 0.8, 5]);
  assert.ok(r.unitsKnown);
  assert.is(r.slices[0].lesionPixels, 12);
  assert.ok(Math.abs(r.slices[0].lesionMm2 - 12 * 0.56) < 1e-9);
  assert.ok(Math.abs(r.slices[0].burden - 0.3) < 1e-12);
  assert.ok(Number.isNaN(r.slices[1].burden), 'no lung in slice 1');
  assert.ok(Math.abs(r.volume.lesionMl - (12 * 0.56 * 5) / 1000) < 1e-12);
  assert.ok(Math.abs(r.volume.burden - 0.3) < 1e-12);
  const csv = lesionCsv(r).trim().split('\n');
  assert.is(csv[0], 'slice,lesion_pixels,lesion_mm2,lung_pixels,burden_of_lung');
  assert.is(csv[1], '0,12,6.72,40,0.30000');
  assert.is(csv[2], '1,0,0.00,0,');
  assert.is(csv[3], 'volume,12,6.72,40,0.30000');
});

l('voxel units: metres and microns converted, unknown taken as mm and flagged', () => {
  assert.equal(voxelSizeMm({ ...SPACE, xyztUnits: 1, pixdim: [1, 0.001, 0.002, 0.005] }).voxelMm.map((x) => +x.toFixed(9)), [1, 2, 5]);
  assert.equal(voxelSizeMm({ ...SPACE, xyztUnits: 3, pixdim: [1, 700, 800, 5000] }).voxelMm.map((x) => +x.toFixed(9)), [0.7, 0.8, 5]);
  const unknown = voxelSizeMm(defaultSpace());
  assert.equal(unknown.voxelMm, [1, 1, 1]);
  assert.is(unknown.unitsKnown, false);
});

l('on the shipped 8-bit slices the body holds the lungs and leaves out the air (about 0.2 there, not 0)', () => {
  const im = readVolume(join(DEFAULT_DATA_DIR, 'tr_im_lungwindow.nii.gz'));
  const lung = readVolume(join(DEFAULT_DATA_DIR, 'tr_lungmask.nii.gz'));
  const [nx, ny] = im.dims;
  const plane = nx * ny;
  for (const k of [3, 30, 50]) {
    const slice = Float32Array.from(im.data.subarray(k * plane, (k + 1) * plane), (v) => v / 255);
    const body = bodyMask(slice, nx, ny, 1);
    let inBody = 0;
    let lungPixels = 0;
    for (let i = 0; i < plane; i++) if (lung.data[k * plane + i] > 0.5) (lungPixels++, (inBody += body[i]));
    assert.ok(inBody / lungPixels > 0.99, `slice ${k}: ${inBody} of ${lungPixels} lung pixels in the body`);
    const fraction = body.reduce((a, b) => a + b, 0) / plane;
    assert.ok(fraction < 0.9, `slice ${k}: the body is ${(100 * fraction).toFixed(1)}% of the slice`);
    assert.is(body[0], 0, 'the corner is air');
  }
});

l('the body mask fills the dark lungs enclosed by the chest wall and leaves the outside air', () => {
  // 12 x 12: a bright ring (rows/cols 2..9) around a dark inside (4..7), air elsewhere.
  const n = 12;
  const im = new Float32Array(n * n);
  for (let y = 2; y <= 9; y++) for (let x = 2; x <= 9; x++) im[x + n * y] = x >= 4 && x <= 7 && y >= 4 && y <= 7 ? 0.05 : 0.6;
  const body = bodyMask(im, n, n, 1);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) assert.is(body[x + n * y], x >= 2 && x <= 9 && y >= 2 && y <= 9 ? 1 : 0, `${x},${y}`);
});

const o = suite('slice pictures');

o('display flips follow the orientation: anterior up, patient left on the right (NIfTI world RAS+: +x is the patient\'s right)', () => {
  const sform = (srow: NiftiSpace['srow']): NiftiSpace => ({ ...defaultSpace(), sformCode: 1, srow });
  // SPACE: columns towards world -x (the patient's left), rows towards +y (anterior): mirror top-bottom only.
  assert.equal(displayFlips(SPACE), { flipX: false, flipY: true });
  assert.equal(displayFlips({ ...SPACE, sformCode: 0 }), { flipX: false, flipY: true }, 'from the quaternion');
  assert.equal(displayFlips(defaultSpace()), { flipX: false, flipY: false }, 'no orientation: as stored');
  // Stored as radiologists view it (columns towards the patient's left, rows towards posterior):
  // a DICOM axial series (ImageOrientationPatient 1\0\0\0\1\0, LPS to RAS) and the shipped files' sform.
  assert.equal(displayFlips(sform([[-0.75, 0, 0, 0], [0, -0.75, 0, 0], [0, 0, 5, 0]])), { flipX: false, flipY: false });
  assert.equal(displayFlips(sform([[-1, 0, 0, 255.5], [0, -1, 0, 255.5], [0, 0, 1, -49.5]])), { flipX: false, flipY: false }, 'the shipped files\' sform');
  // RAS storage (nibabel's canonical, dcm2niix's usual output): columns towards the patient's right, rows anterior.
  assert.equal(displayFlips(sform([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])), { flipX: true, flipY: true });
  assert.equal(displayFlips(sform([[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 1, 0]])), { flipX: true, flipY: false }, 'columns towards the patient\'s right');
  // The same from a quaternion: 180 degrees about z (columns -x, rows -y) draws as stored.
  assert.equal(displayFlips({ ...defaultSpace(), qformCode: 1, quatern: [0, 0, 1] }), { flipX: false, flipY: false });
  assert.equal(displayFlips({ ...defaultSpace(), qformCode: 1, quatern: [0, 0, 0] }), { flipX: true, flipY: true }, 'identity: RAS');
});

o('outline in red on the grey CT, interior untouched; fill tints the interior', () => {
  const n = 5;
  const im = new Float32Array(n * n).fill(0.5);
  const mask = new Uint8Array(n * n);
  for (let y = 1; y <= 3; y++) for (let x = 1; x <= 3; x++) mask[x + n * y] = 1;
  const px = (rgb: Uint8Array, x: number, y: number) => [...rgb.slice(3 * (x + n * y), 3 * (x + n * y) + 3)];
  const none = { flipX: false, flipY: false };
  const outline = overlayRgb(im, mask, n, n, 'outline', none);
  assert.equal(px(outline, 0, 0), [128, 128, 128]);
  assert.equal(px(outline, 2, 2), [128, 128, 128], 'interior');
  assert.equal(px(outline, 1, 1), [255, 40, 40], 'edge');
  const fill = overlayRgb(im, mask, n, n, 'fill', none);
  assert.equal(px(fill, 2, 2), [179, 93, 93]);
  // Flipped: stored pixel (1, 1) is drawn at (3, 3).
  const flipped = overlayRgb(im, mask.map((_, i) => (i === 1 + n ? 1 : 0)), n, n, 'outline', { flipX: true, flipY: true });
  assert.equal(px(flipped, 3, 3), [255, 40, 40]);
});

const w = suite('prediction outputs: one builder for the files and the page');

/** A model-free run of predict's library path: the "network" returns its input (bright = lesion). */
const identity = () => fake(16, (im) => im);
const RUN = { checkpoint: 'none.safetensors', epoch: 1, model: defaultTrainConfig('cpu', DEFAULT_DATA_DIR).model, tta: false };
const gunzipped = (file: string) => new Uint8Array(gunzipSync(readFileSync(file)));

w('predict\'s files are the builder\'s outputs: mask, probabilities, CSV, JSON and pictures, byte for byte', async () => {
  const [nx, ny, nz] = [24, 20, 3];
  const hu = Int16Array.from({ length: nx * ny * nz }, (_, i) => ((i * 7919) % 1400) - 1000);
  const input = join(tmp, 'shared', 'vol.nii.gz');
  writeNifti(input, { dims: [nx, ny, nz], data: hu, datatype: 'int16', space: SPACE });
  const out = join(tmp, 'shared', 'out');
  const [todo] = predictionInputs(input);
  const r = await predictFile(identity(), todo, { out, ...RUN, probabilities: true, pictures: 'outline', threshold: 0.4 });
  const names = predictionFileNames(join(out, 'vol'));
  assert.equal(r.files, [names.mask, names.probabilities, names.csv, names.json, names.pictures]);
  assert.is(r.slices, nz);

  // What the page computes from the same volume and predictions (it has no lung mask either).
  const volume = readVolume(input);
  const page = predictionReport(volume, await predictVolume(identity(), volume, { threshold: 0.4 }));
  assert.equal(page.lesions, r.report.lesions);
  assert.equal(gunzipped(names.mask), maskNifti(page), 'the mask file is the page\'s download');
  assert.is(readFileSync(names.csv, 'utf8'), reportCsv(page), 'the CSV file is the page\'s');
  const json = JSON.parse(readFileSync(names.json, 'utf8'));
  assert.equal(json, JSON.parse(JSON.stringify(reportJson(page, { ...RUN, input, seconds: json.seconds, inputSha256: predictionInputHash(todo), outputs: { probabilities: true, pictures: 'outline' } }))));
  assert.is(json.threshold, 0.4);
  // Without a lung mask the burden is over the lungs found in the image (here air pockets of the
  // pattern, enclosed by brighter pixels).
  assert.is(json.reference, 'computed-lung');
  assert.equal(page.region, volumeLungMask(volume));
  const probabilities = readVolume(names.probabilities);
  assert.equal(probabilities.data, page.prediction.probabilities);
  assert.equal(probabilities.space.srow, SPACE.srow.map((row) => row.map(Math.fround)));
  const pictures = [...slicePictures(page, 'outline')];
  assert.equal(readdirSync(names.pictures).sort(), pictures.map((p) => p.name));
  for (const p of pictures) assert.equal(new Uint8Array(readFileSync(join(names.pictures, p.name))), p.png, p.name);
  for (const dir of [out, names.pictures]) assert.not.ok(readdirSync(dir).some((f) => f.endsWith('.tmp')), `no temporary files left in ${dir}`);

  // The page's threshold slider: the same report as a prediction at that threshold.
  const at06 = predictionReport(volume, await predictVolume(identity(), volume, { threshold: 0.6 }));
  const moved = withThreshold(page, 0.6);
  assert.equal(moved.prediction.mask, at06.prediction.mask);
  assert.equal(moved.lesions, at06.lesions);
  assert.equal(maskNifti(moved), maskNifti(at06));
});

w('with a lung mask: the burden is over the lungs, and the JSON names the mask', async () => {
  const [nx, ny, nz] = [16, 16, 2];
  const image = Float32Array.from({ length: nx * ny * nz }, (_, i) => (i % nx < 4 ? 255 : 0)); // 4 bright columns
  const lungs = Uint8Array.from({ length: nx * ny * nz }, (_, i) => (i % nx < 8 ? 1 : 0)); // the left half
  const input = join(tmp, 'lung', 'ct.nii');
  const lungFile = join(tmp, 'lung', 'lungs', 'ct.nii');
  writeNifti(input, { dims: [nx, ny, nz], data: image, datatype: 'uint8', space: SPACE });
  writeNifti(lungFile, { dims: [nx, ny, nz], data: lungs, datatype: 'uint8', space: SPACE });
  const out = join(tmp, 'lung', 'out');
  const [todo] = predictionInputs(input, lungFile);
  const r = await predictFile(identity(), todo, { out, ...RUN, pictures: 'none' });
  assert.is(r.report.reference, 'lung');
  assert.is(r.report.lesions.volume.burden, 0.5);
  assert.equal(r.files, [join(out, 'ct_lesions.nii.gz'), join(out, 'ct_lesions.csv'), join(out, 'ct_lesions.json')], 'no probabilities or pictures unless asked');
  const json = JSON.parse(readFileSync(join(out, 'ct_lesions.json'), 'utf8'));
  assert.is(json.burdenReference, `lung mask ${lungFile}`);
  assert.is(json.volume.burden, 0.5);
  assert.match(readFileSync(join(out, 'ct_lesions.csv'), 'utf8'), /^slice,lesion_pixels,lesion_mm2,lung_pixels,burden_of_lung\n/);
  // The same region as the loader gives it to evaluate and cv, in the file's layout.
  assert.equal(r.report.region, readLungMask(lungFile, readVolume(input)).voxels);
});

w('a 2-D input (one slice, dim[0] = 2) gets a 2-D mask and probabilities back, with its dimensions', async () => {
  const [nx, ny] = [64, 48];
  const input = join(tmp, 'flat', 'slice.nii.gz');
  writeNifti(input, { dims: [nx, ny], data: Uint8Array.from({ length: nx * ny }, (_, i) => (i % nx < 20 ? 255 : 30)), datatype: 'uint8', space: SPACE });
  const volume = readVolume(input);
  assert.equal([volume.rank, volume.dims], [2, [nx, ny, 1]]);
  assert.equal(storedDims(volume), [nx, ny]);
  const out = join(tmp, 'flat', 'out');
  await predictFile(identity(), { file: input }, { out, ...RUN, probabilities: true, pictures: 'none' });
  for (const name of ['slice_lesions.nii.gz', 'slice_probabilities.nii.gz']) {
    const header = nifti.readHeader(gunzipped(join(out, name)).buffer as ArrayBuffer) as nifti.NIFTI1;
    assert.equal(header.dims.slice(0, 4), [2, nx, ny, 1], name);
  }
  const mask = readVolume(join(out, 'slice_lesions.nii.gz'));
  assert.is(mask.rank, 2);
  assert.is(mask.data.reduce((a, b) => a + b, 0), 20 * ny);
});

const c = suite('predict command');
c.before(setupGPU);

c('a small HU volume: the mask keeps the geometry and reads back; CSV, JSON and PNGs written', async () => {
  manualSeed(3);
  const config = defaultTrainConfig('cpu', DEFAULT_DATA_DIR, { model: { inputSize: 16, filters: [4, 8] } });
  const model = new AUNet(config.model);
  const checkpoint = join(tmp, 'tiny.safetensors');
  await saveCheckpoint(checkpoint, model, { metadata: { [CONFIG_KEY]: JSON.stringify(config), [EPOCH_KEY]: '1' } });
  const [nx, ny, nz] = [24, 20, 3];
  const hu = Int16Array.from({ length: nx * ny * nz }, (_, i) => ((i * 7919) % 1400) - 1000);
  const input = join(tmp, 'scan.nii.gz');
  writeNifti(input, { dims: [nx, ny, nz], data: hu, datatype: 'int16', space: SPACE });
  const out = join(tmp, 'out');
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'src/cli/predict.ts'), '--checkpoint', checkpoint, '--input', input, '--out', out, '--probabilities', '--tta'], {
    cwd: pkg,
    encoding: 'utf8',
    timeout: 300_000,
  });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /scan: 3 slices/);

  const mask = nifti.readHeader(gunzipSync(readFileSync(join(out, 'scan_lesions.nii.gz'))).buffer as ArrayBuffer) as nifti.NIFTI1;
  assert.equal(mask.dims.slice(0, 4), [3, nx, ny, nz]);
  assert.is(mask.datatypeCode, 2, 'uint8');
  assert.equal(mask.pixDims.slice(0, 4), [-1, 0.7, 0.8, 5].map(Math.fround));
  assert.is(mask.qform_code, 1);
  assert.is(mask.sform_code, 2);
  assert.equal([mask.quatern_b, mask.quatern_c, mask.quatern_d], [0, 1, 0]);
  assert.equal([mask.qoffset_x, mask.qoffset_y, mask.qoffset_z], [10, -20, -30]);
  assert.equal(mask.affine.slice(0, 3).map((row) => row.map((x) => +x.toFixed(5))), SPACE.srow);
  assert.is(mask.xyzt_units, SPACE.xyztUnits);

  const probs = gunzipSync(readFileSync(join(out, 'scan_probabilities.nii.gz')));
  const probHeader = nifti.readHeader(probs.buffer as ArrayBuffer) as nifti.NIFTI1;
  const p = new Float32Array(nifti.readImage(probHeader, probs.buffer as ArrayBuffer));
  const maskData = new Uint8Array(nifti.readImage(mask, gunzipSync(readFileSync(join(out, 'scan_lesions.nii.gz'))).buffer as ArrayBuffer));
  assert.is(p.length, nx * ny * nz);
  p.forEach((x, i) => assert.is(maskData[i], x >= 0.5 ? 1 : 0));

  // The command's probabilities are the library's (TTA over the same model).
  const loaded = loadModel(readFileSync(checkpoint), checkpoint);
  const lib = await predictVolume(mirroredTTA(modelPredictor(loaded.model)), volume([nx, ny, nz], Float32Array.from(hu)));
  loaded.model.dispose();
  model.dispose();
  lib.probabilities.forEach((x, i) => assert.ok(Math.abs(x - p[i]) < 1e-5, `voxel ${i}: ${x} vs ${p[i]}`));

  const csv = readFileSync(join(out, 'scan_lesions.csv'), 'utf8').trim().split('\n');
  assert.is(csv.length, nz + 2);
  assert.is(csv[0], 'slice,lesion_pixels,lesion_mm2,computed_lung_pixels,burden_of_computed_lung');
  const json = JSON.parse(readFileSync(join(out, 'scan_lesions.json'), 'utf8'));
  assert.is(json.reference, 'computed-lung');
  assert.is(json.volume.lesionPixels, maskData.reduce((a, b) => a + b, 0));
  assert.ok(json.tta);
  const pngs = readdirSync(join(out, 'scan_png')).sort();
  assert.equal(pngs, ['slice_000.png', 'slice_001.png', 'slice_002.png']);
  const png = decodePng(readFileSync(join(out, 'scan_png', pngs[0])));
  assert.equal([png.width, png.height, png.channels], [nx, ny, 3]);
  assert.not.ok(readdirSync(out).some((f) => f.includes('.partial-')), 'no temporary files left');
  for (const dir of [out, join(out, 'scan_png')]) assert.not.ok(readdirSync(dir).some((f) => f.endsWith('.tmp')), `no temporary files left in ${dir}`);

  // A lung mask of another shape and a missing input: one clear line, exit 1.
  const wrongLung = join(tmp, 'lung.nii');
  writeNifti(wrongLung, { dims: [nx, ny, 1], data: new Uint8Array(nx * ny), datatype: 'uint8' });
  for (const [args, message] of [
    [['--input', input, '--lung-mask', wrongLung], /lung mask must have the image's shape/],
    [['--input', join(tmp, 'nope.nii.gz')], /nope\.nii\.gz does not exist/],
  ] as const) {
    const bad = spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'src/cli/predict.ts'), '--checkpoint', checkpoint, '--out', out, ...args], { cwd: pkg, encoding: 'utf8' });
    const lines = bad.stderr.split('\n').filter((line) => line.trim() && !/artificially reduced/.test(line));
    assert.is(bad.status, 1);
    assert.is(lines.length, 1, bad.stderr);
    assert.match(lines[0], message);
  }
  assert.ok(existsSync(join(out, 'scan_lesions.nii.gz')), 'earlier output kept');

  // A 2-D input file: the command writes its mask with dim[0] = 2 and the input's dimensions.
  const flat = join(tmp, 'flat-cli.nii');
  writeNifti(flat, { dims: [nx, ny], data: hu.subarray(0, nx * ny), datatype: 'int16', space: SPACE });
  const two = spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'src/cli/predict.ts'), '--checkpoint', checkpoint, '--input', flat, '--out', out, '--png', 'none'], { cwd: pkg, encoding: 'utf8', timeout: 300_000 });
  assert.is(two.status, 0, two.stderr);
  const flatMask = nifti.readHeader(gunzipped(join(out, 'flat-cli_lesions.nii.gz')).buffer as ArrayBuffer) as nifti.NIFTI1;
  assert.equal(flatMask.dims.slice(0, 4), [2, nx, ny, 1]);
});

c('no --checkpoint: the default model (here $AUNET_MODEL\'s F16 stand-in) segments the scan, said in one line; a missing one is one error line', async () => {
  // The stand-in is made as the shipped model is: a run's checkpoint (trained on all slices)
  // exported with its weights in F16.
  manualSeed(4);
  const config = defaultTrainConfig('cpu', DEFAULT_DATA_DIR, { allSlices: true, model: { inputSize: 16, filters: [4, 8] } });
  const model = new AUNet(config.model);
  const run = join(tmp, 'shipped-run', 'last.safetensors');
  mkdirSync(join(tmp, 'shipped-run'));
  await saveRunCheckpoint(run, model, { config, epoch: 12 });
  model.dispose();
  const shipped = join(tmp, 'models', 'aunet-medseg.safetensors');
  mkdirSync(join(tmp, 'models'));
  await exportCheckpointSafetensors(run, shipped, 'F16');

  const [nx, ny, nz] = [24, 20, 3];
  const hu = Int16Array.from({ length: nx * ny * nz }, (_, i) => ((i * 6007) % 1400) - 1000);
  const input = join(tmp, 'default-model', 'ct.nii.gz');
  writeNifti(input, { dims: [nx, ny, nz], data: hu, datatype: 'int16', space: SPACE });
  const out = join(tmp, 'default-model', 'out');
  const predict = (env: Record<string, string>, ...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'src/cli/predict.ts'), '--input', input, '--out', out, '--probabilities', '--png', 'none', ...args], {
      cwd: pkg,
      encoding: 'utf8',
      timeout: 300_000,
      env: { ...process.env, ...env },
    });
  // $AUNET_MODEL relative to the folder the command runs in, as --checkpoint would be.
  const r = predict({ [MODEL_ENV]: relative(pkg, shipped) });
  assert.is(r.status, 0, r.stderr);
  const said = r.stdout.split('\n').filter((l) => l.startsWith('no --checkpoint'));
  assert.equal(said, [`no --checkpoint: using ${shipped}, which $AUNET_MODEL names in place of the shipped model (see MODEL.md)`]);
  assert.match(r.stdout, /: aunet, 16x16, epoch 12/);
  // The files are the library's prediction with the F16 file read through predict's loader.
  const loaded = await loadRunCheckpoint(shipped);
  const lib = await predictVolume(modelPredictor(loaded.model), readVolume(input));
  loaded.model.dispose();
  const p = readVolume(join(out, 'ct_probabilities.nii.gz')).data;
  lib.probabilities.forEach((x, i) => assert.ok(Math.abs(x - p[i]) < 1e-6, `voxel ${i}: ${x} vs ${p[i]}`));
  assert.equal(Array.from(readVolume(join(out, 'ct_lesions.nii.gz')).data), Array.from(lib.mask));
  assert.ok(existsSync(join(out, 'ct_lesions.json')));

  // --checkpoint still wins: no line about the default model, even where $AUNET_MODEL names one that is not there.
  const named = predict({ [MODEL_ENV]: join(tmp, 'gone.safetensors') }, '--checkpoint', shipped);
  assert.is(named.status, 0, named.stderr);
  assert.not.match(named.stdout, /no --checkpoint/);

  // The default model missing: one line, exit 1, nothing written.
  const missing = predict({ [MODEL_ENV]: join(tmp, 'gone.safetensors') }, '--out', join(tmp, 'never'));
  const lines = missing.stderr.split('\n').filter((l) => l.trim() && !/artificially reduced/.test(l));
  assert.is(missing.status, 1);
  assert.equal(lines, [`error: no --checkpoint given, and $AUNET_MODEL names ${join(tmp, 'gone.safetensors')}, which does not exist: correct or unset AUNET_MODEL, or pass --checkpoint FILE`]);
  assert.not.ok(existsSync(join(tmp, 'never')));

  // Without $AUNET_MODEL: the package's own file, and what is said about it from the repository root.
  const root = join(pkg, '..', '..');
  const m = defaultModel({ env: {} });
  assert.equal(m, { file: SHIPPED_MODEL_FILE, exists: existsSync(SHIPPED_MODEL_FILE), from: 'package' });
  assert.is(SHIPPED_MODEL_FILE, join(pkg, 'models', 'aunet-medseg.safetensors'));
  assert.is(MODEL_CARD_FILE, join(pkg, 'MODEL.md'));
  assert.is(defaultModelLine(m, root), 'no --checkpoint: using the shipped model packages/aunet/models/aunet-medseg.safetensors (see packages/aunet/MODEL.md)');
  assert.is(
    missingModelMessage({ ...m, exists: false }, root),
    "no --checkpoint given, and the shipped model packages/aunet/models/aunet-medseg.safetensors is not in this copy of the package: pass --checkpoint FILE (a run's best.safetensors or last.safetensors)",
  );
  // Empty counts as unset; outside the folder the path is shown whole.
  assert.is(defaultModel({ env: { [MODEL_ENV]: '' } }).from, 'package');
  assert.match(defaultModelLine(m, tmp), new RegExp(`using the shipped model ${SHIPPED_MODEL_FILE.replace(/[.]/g, '\\.')} \\(see ${MODEL_CARD_FILE.replace(/[.]/g, '\\.')}\\)`));
});

c('the shipped model: its card gives its SHA-256 and size, and predict with no --checkpoint segments shipped slices with it', async () => {
  assert.ok(existsSync(SHIPPED_MODEL_FILE), `${SHIPPED_MODEL_FILE} is missing`);
  const bytes = readFileSync(SHIPPED_MODEL_FILE);
  const card = readFileSync(MODEL_CARD_FILE, 'utf8');
  const sha = createHash('sha256').update(bytes).digest('hex');
  assert.ok(card.includes(sha), `MODEL.md gives the file's SHA-256 (${sha})`);
  assert.ok(card.includes(`${(bytes.length / 1e6).toFixed(1)} MB`), `MODEL.md gives the file's size (${(bytes.length / 1e6).toFixed(1)} MB)`);
  // Three slices with lesions of the shipped 8-bit volume as a scan of their own.
  const ct = readVolume(join(DEFAULT_DATA_DIR, 'tr_im_lungwindow.nii.gz'));
  const labels = readVolume(join(DEFAULT_DATA_DIR, 'tr_mask.nii.gz'));
  const [nx, ny] = [ct.dims[0], ct.dims[1]];
  const plane = nx * ny;
  const picked = [7, 40, 66];
  const data = new Uint8Array(plane * picked.length);
  picked.forEach((k, i) => data.set(Uint8Array.from(ct.data.subarray(k * plane, (k + 1) * plane)), i * plane));
  const input = join(tmp, 'shipped-model', 'ct.nii.gz');
  writeNifti(input, { dims: [nx, ny, picked.length], data, datatype: 'uint8' });
  const out = join(tmp, 'shipped-model', 'out');
  const env = { ...process.env };
  delete env[MODEL_ENV];
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'src/cli/predict.ts'), '--input', input, '--out', out, '--png', 'none'], { cwd: pkg, encoding: 'utf8', timeout: 300_000, env });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /no --checkpoint: using the shipped model (packages\/aunet\/)?models\/aunet-medseg\.safetensors \(see (packages\/aunet\/)?MODEL\.md\)/);
  const mask = readVolume(join(out, 'ct_lesions.nii.gz')).data;
  // Dice against the slices' labels. They are training slices (the model was trained on all 100),
  // so this shows the file loads and segments, not how it does on new scans (MODEL.md).
  let both = 0;
  let sum = 0;
  picked.forEach((k, i) => {
    for (let j = 0; j < plane; j++) {
      const truth = labels.data[k * plane + j] > 0 ? 1 : 0;
      const said = mask[i * plane + j] > 0 ? 1 : 0;
      both += truth & said;
      sum += truth + said;
    }
  });
  const dice = (2 * both) / sum;
  console.log(`  shipped model on slices ${picked.join(', ')} (training slices): Dice ${dice.toFixed(3)}`);
  assert.ok(dice >= 0.6, `Dice ${dice} on its own training slices`);
});

c('library use from another package: loadModel, predictVolume, evaluate imported from "aunet"', () => {
  // A package of its own whose node_modules/aunet links to this one, as a workspace or npm install makes it.
  const app = join(tmp, 'app');
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  symlinkSync(pkg, join(app, 'node_modules', 'aunet'), 'dir');
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', type: 'module', private: true }));
  writeFileSync(
    join(app, 'main.ts'),
    `import { readFileSync } from 'node:fs';
import { init } from '@aunet/tensor';
import { AUNet, loadModel, modelPredictor, predictVolume, evaluate } from 'aunet';
import { loadDataset, readVolume } from 'aunet/node';
await init();
const { model } = loadModel(readFileSync(process.argv[2]));
if (!(model instanceof AUNet)) throw new Error('not an AUNet');
const p = await predictVolume(modelPredictor(model), readVolume(process.argv[3]));
const ds = await loadDataset(process.argv[4]);
const report = await evaluate(model, ds, [0, 1]);
console.log(JSON.stringify({ dims: p.dims, slices: report.slices, dice: report.original.pooled.dice }));
process.exit(0);
`,
  );
  // @aunet/tensor comes through aunet's own dependencies, as it would for a user's package.
  symlinkSync(join(pkg, 'node_modules', '@aunet'), join(app, 'node_modules', '@aunet'), 'dir');
  const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), join(app, 'main.ts'), join(tmp, 'tiny.safetensors'), join(tmp, 'scan.nii.gz'), DEFAULT_DATA_DIR], { cwd: app, encoding: 'utf8', timeout: 300_000 });
  assert.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(out.dims, [24, 20, 3]);
  assert.equal(out.slices, [0, 1]);
  assert.ok(out.dice >= 0 && out.dice <= 1);
});

v.run();
l.run();
o.run();
w.run();
c.run();
