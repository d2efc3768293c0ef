import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Rng } from '@aunet/tensor';
import {
  augmentPair, BASIC_AUGMENT, FULL_AUGMENT, buildDataset, DataError, defaultSpace, encodeNifti, fromSliceStack, binaryMask, normaliseImage, parseFold, parseNifti, resizeArea,
  resizeBilinear, resizeDataset, resizeImage, resizeNearest, splitSlices, toSliceStack, type NiftiDatatype, type Volume,
} from '../src/data/index';
import { ALL_DATATYPE_CODES, headerLayout, mayBeNiftiHeader, NIFTI_DATATYPES, readVoxels, writeVoxels } from '../src/data/nifti-layout';
import { datasetImage, DEFAULT_DATA_DIR, findDataFiles, loadDataset, maskOnImageGrid, readLungMask, readVolume, resolveDataDir } from '../src/data/files';
import { flipRows, writeNifti } from './nifti-fixture';
import { displayFlips } from '../src/overlay';
import { affineDifference, sameGrid, spaceFromAffine, voxelToWorld, worldOf, type Affine } from '../src/data/space';
import { correctedHeader } from '../scripts/fix-medseg-orientation';

const tmp = mkdtempSync(join(tmpdir(), 'aunet-data-'));
let fileCounter = 0;
/** A fresh path in the temp folder (each test writes its own files). */
const tmpPath = (name: string) => join(tmp, `${fileCounter++}-${name}`);

function throwsDataError(fn: () => unknown, ...mustContain: string[]): DataError {
  let error: unknown = null;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  return checkDataError(error, mustContain);
}

async function rejectsDataError(promise: Promise<unknown>, ...mustContain: string[]): Promise<DataError> {
  let error: unknown = null;
  try {
    await promise;
  } catch (err) {
    error = err;
  }
  return checkDataError(error, mustContain);
}

function checkDataError(err: unknown, mustContain: string[]): DataError {
  assert.ok(err !== null, `nothing was thrown; expected a DataError containing ${mustContain.join(', ')}`);
  assert.instance(err, DataError, `not a DataError: ${String(err)}`);
  for (const part of mustContain) assert.ok((err as Error).message.includes(part), `"${(err as Error).message}" lacks "${part}"`);
  return err as DataError;
}

/** A tiny labelled volume: image in 8-bit, mask with one lesion square per slice. */
function smallPair(nx: number, ny: number, nz: number, lesion = true): { image: number[]; mask: number[] } {
  const image: number[] = [];
  const mask: number[] = [];
  for (let k = 0; k < nz; k++)
    for (let y = 0; y < ny; y++)
      for (let x = 0; x < nx; x++) {
        const inside = lesion && x >= 1 && x <= 2 && y >= 1 && y <= 2;
        image.push(inside ? 200 : (x * 7 + y * 3 + k) % 120);
        mask.push(inside ? 1 + (k % 3) : 0);
      }
  return { image, mask };
}

// ---------------------------------------------------------------------------------------------
const shipped = suite('shipped MedSeg files');
let shippedImage: Volume;
let shippedMask: Volume;
shipped.before(() => {
  const files = findDataFiles(DEFAULT_DATA_DIR);
  shippedImage = readVolume(files.image);
  shippedMask = readVolume(files.mask);
});

shipped('the default folder holds the 8-bit lung-window image and the official mask', () => {
  assert.ok(DEFAULT_DATA_DIR.replace(/\\/g, '/').endsWith('packages/aunet/data/medseg-covid'));
  const files = findDataFiles(DEFAULT_DATA_DIR);
  assert.ok(files.image.endsWith('tr_im_lungwindow.nii.gz'));
  assert.ok(files.mask.endsWith('tr_mask.nii.gz'));
  assert.equal(shippedImage.dims, [512, 512, 100]);
  assert.equal(shippedMask.dims, [512, 512, 100]);
  assert.is(shippedImage.datatype, 'uint8');
  assert.is(shippedMask.datatype, 'float64');
  assert.is(shippedImage.space.sformCode, 2);
});

shipped('the shipped files\' orientation (NIfTI world RAS+, +x the patient\'s right): columns towards the patient\'s left, rows posterior; header fixed 2026-12-07, voxels as before', () => {
  const want = [[-1, 0, 0, 255.5], [0, -1, 0, 255.5], [0, 0, 1, -49.5]];
  const lungs = readVolume(join(DEFAULT_DATA_DIR, 'tr_lungmask.nii.gz'));
  for (const v of [shippedImage, lungs]) {
    assert.is(v.space.sformCode, 2);
    assert.equal(v.space.srow, want, `${v.source}: sform`);
    // The quaternion fields (qform_code 0) say the same: 180 degrees about z, qfac 1.
    assert.is(v.space.qformCode, 0);
    assert.equal([v.space.pixdim[0], ...v.space.quatern, ...v.space.qoffset], [1, 0, 0, 1, 255.5, 255.5, -49.5]);
    assert.equal(voxelToWorld({ ...v.space, sformCode: 0, qformCode: 1 }), want);
    assert.equal(displayFlips(v.space), { flipX: false, flipY: false }, 'stored in radiological display order: drawn as stored');
  }
  // The patient's left (the descending aorta's side) at the higher column numbers: world x falls.
  assert.ok(worldOf(voxelToWorld(shippedImage.space)!, 511, 0, 0)[0] < worldOf(voxelToWorld(shippedImage.space)!, 0, 0, 0)[0]);
  assert.is(shippedMask.space.sformCode + shippedMask.space.qformCode, 0, 'the official mask has no orientation');
  // The fix script finds nothing left to do; the voxels are the bytes they were before it.
  const sha = (file: string) => createHash('sha256').update(gunzipSync(readFileSync(join(DEFAULT_DATA_DIR, file))).subarray(352)).digest('hex');
  for (const [file, hash] of [
    ['tr_im_lungwindow.nii.gz', '7416484ceeaefe99629f726c56b667fcbcd31dba0505ba443bd1936d14d94911'],
    ['tr_lungmask.nii.gz', '751b89486aacd6459666d17005039e185d5a5591bb0ee173a42d866dfbbbcea1'],
  ]) {
    assert.is(correctedHeader(new Uint8Array(gunzipSync(readFileSync(join(DEFAULT_DATA_DIR, file)))), file), null, `${file}: already corrected`);
    assert.is(sha(file), hash, `${file}: voxels`);
  }
});

shipped('label counts match SOURCE.md', () => {
  const counts = [0, 0, 0, 0];
  for (const v of shippedMask.data) counts[v]++;
  assert.equal(counts, [24_394_464, 1_196_461, 589_210, 34_265]);
});

shipped('dataset: 100 slices of 512 x 512, 8-bit, lesions on every slice but 48', () => {
  const ds = buildDataset(shippedImage, shippedMask);
  assert.is(ds.count, 100);
  assert.is(ds.height, 512);
  assert.is(ds.width, 512);
  assert.is(ds.images.length, 100);
  assert.is(ds.masks.length, 100);
  assert.is(ds.intensity, '8bit');
  assert.is(ds.lesionPixels.reduce((a, b) => a + b, 0), 1_196_461 + 589_210 + 34_265);
  let total = 0;
  for (let k = 0; k < 100; k++) {
    const pixels = ds.masks[k].reduce((a, b) => a + b, 0);
    assert.is(pixels, ds.lesionPixels[k]);
    total += pixels;
    if (k === 48) assert.is(pixels, 0, 'slice 48 has no lesion');
    else assert.ok(pixels > 0, `slice ${k} has lesions`);
  }
  assert.is(total, 1_819_936);
  let min = Infinity;
  let max = -Infinity;
  for (const im of ds.images) for (const v of im) (min = Math.min(min, v)), (max = Math.max(max, v));
  assert.ok(min >= 0 && max <= 1 && max > 0.5, `image range ${min}..${max}`);
});

shipped('a mask written with the image header keeps its orientation', () => {
  const file = tmpPath('pred.nii.gz');
  const [nx, ny] = shippedImage.dims;
  const data = new Uint8Array(nx * ny * 2);
  data[5] = 1;
  writeNifti(file, { dims: [nx, ny, 2], data, datatype: 'uint8', space: shippedImage.space });
  const back = readVolume(file);
  assert.equal(back.space, shippedImage.space);
  assert.equal(back.dims, [nx, ny, 2]);
  assert.is(back.data[5], 1);
});

shipped.run();

// ---------------------------------------------------------------------------------------------
const nifti = suite('NIfTI reading and writing');

/** Stored test values for each datatype, covering its range. */
const SAMPLES: Record<NiftiDatatype, number[]> = {
  uint8: [0, 1, 127, 200, 255, 3],
  int8: [-128, -1, 0, 1, 100, 127],
  int16: [-32768, -1024, 0, 400, 1000, 32767],
  uint16: [0, 1, 1024, 4095, 40000, 65535],
  int32: [-2147483648, -70000, 0, 5, 70000, 2147483647],
  uint32: [0, 1, 70000, 16777216, 3000000000, 4294967295],
  float32: [-1000.5, -0.25, 0, 0.5, 1e-3, 3.25e6],
  float64: [-1000.5, -0.25, 0, 0.5, 1.5e-3, 3.25e6],
};

for (const datatype of Object.keys(SAMPLES) as NiftiDatatype[]) {
  for (const ext of ['.nii', '.nii.gz']) {
    nifti(`${datatype} ${ext} round-trips, with and without slope/intercept`, () => {
      const stored = SAMPLES[datatype];
      const plain = tmpPath(`plain-${datatype}${ext}`);
      writeNifti(plain, { dims: [3, 2, 1], data: stored, datatype });
      const vol = readVolume(plain);
      assert.is(vol.datatype, datatype);
      assert.equal(vol.dims, [3, 2, 1]);
      assert.is(vol.scaling, null);
      assert.equal(Array.from(vol.data), stored.map(Math.fround));

      const scaledFile = tmpPath(`scaled-${datatype}${ext}`);
      writeNifti(scaledFile, { dims: [2, 3], data: stored, datatype, sclSlope: 0.5, sclInter: -10 });
      const scaled = readVolume(scaledFile);
      assert.equal(scaled.scaling, { slope: 0.5, inter: -10 });
      assert.equal(Array.from(scaled.data), stored.map((v) => Math.fround(v * 0.5 - 10)));
    });
  }
}

nifti('slope 1 and intercept 0 is no scaling; slope 0 means none', () => {
  for (const [slope, inter] of [[1, 0], [0, 5]]) {
    const vol = parseNifti(encodeNifti({ dims: [2, 1], data: [3, 4], datatype: 'int16', sclSlope: slope, sclInter: inter }), 'mem');
    assert.is(vol.scaling, null);
    assert.equal(Array.from(vol.data), [3, 4]);
  }
});

nifti('2-D files are one slice; a 4-D file with dim4 = 1 is 3-D', () => {
  const flat = parseNifti(encodeNifti({ dims: [4, 3], data: Array.from({ length: 12 }, (_, i) => i), datatype: 'uint8' }), 'flat');
  assert.equal(flat.dims, [4, 3, 1]);
  assert.is(flat.data[1 + 4 * 2], 9); // row 2, column 1
  const four = parseNifti(encodeNifti({ dims: [2, 2, 3, 1], data: Array.from({ length: 12 }, (_, i) => i), datatype: 'int16' }), 'four');
  assert.equal(four.dims, [2, 2, 3]);
  assert.equal(Array.from(four.data.subarray(8, 12)), [8, 9, 10, 11]); // slice 2
});

nifti('a 2-D header whose unused dims are 0 still reads (dims past dim[0] are ignored)', () => {
  const bytes = encodeNifti({ dims: [3, 2], data: [1, 2, 3, 4, 5, 6], datatype: 'uint8' });
  new DataView(bytes.buffer).setInt16(46, 0, true); // dim[3] = 0
  assert.equal(Array.from(parseNifti(bytes, 'zeros').data), [1, 2, 3, 4, 5, 6]);
});

nifti('the slice axis is the header\'s slice_dim (the third axis when unset); the writer keeps dim_info', () => {
  const [nx, ny, nz] = [3, 4, 5];
  const data = Array.from({ length: nx * ny * nz }, (_, i) => i);
  const withSliceDim = (sliceDim: number, dims: number[] = [nx, ny, nz]) =>
    parseNifti(encodeNifti({ dims, data: data.slice(0, dims.reduce((a, b) => a * b, 1)), datatype: 'int16', space: { ...defaultSpace(), dimInfo: sliceDim << 4 } }), `slice_dim ${sliceDim}`);
  assert.equal([0, 1, 2, 3].map((d) => withSliceDim(d).sliceAxis), [2, 0, 1, 2]);
  assert.is(withSliceDim(1, [nx, ny]).sliceAxis, 2, 'a 2-D file is one slice whatever slice_dim says');
  const alongX = withSliceDim(1);
  assert.is(alongX.space.dimInfo, 1 << 4);
  assert.is(encodeNifti({ dims: alongX.dims, data: alongX.data, datatype: 'int16', space: alongX.space })[39], 1 << 4);
  // Along x: slice k is the plane x = k, y across, z down; along y: x across, z down.
  for (const [axis, stackDims] of [[0, [ny, nz, nx]], [1, [nx, nz, ny]]] as const) {
    const stack = toSliceStack(alongX.data, alongX.dims, axis);
    assert.equal(stack.dims, stackDims);
    for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) {
      const at = axis === 0 ? y + ny * (z + nz * x) : x + nx * (z + nz * y);
      assert.is(stack.data[at], data[x + nx * (y + ny * z)]);
    }
    assert.equal(Array.from(fromSliceStack(stack.data, alongX.dims, axis)), data);
  }
  assert.is(toSliceStack(alongX.data, alongX.dims, 2).data, alongX.data, 'the third axis needs no copy');
});

nifti('big-endian files are read', () => {
  // A minimal big-endian NIfTI-1 header: only the fields a reader needs.
  const values = [-1000, -3, 0, 250, 400, 1200];
  const bytes = new Uint8Array(352 + values.length * 2);
  const view = new DataView(bytes.buffer);
  view.setInt32(0, 348, false);
  [2, 3, 2, 1, 1, 1, 1, 1].forEach((d, i) => view.setInt16(40 + 2 * i, d, false));
  view.setInt16(70, 4, false); // int16
  view.setInt16(72, 16, false);
  view.setFloat32(76, 1, false);
  view.setFloat32(108, 352, false);
  view.setFloat32(112, 2, false); // slope
  view.setFloat32(116, 1, false); // intercept
  bytes.set([0x6e, 0x2b, 0x31, 0], 344); // "n+1"
  values.forEach((v, i) => view.setInt16(352 + 2 * i, v, false));
  const vol = parseNifti(bytes, 'big-endian.nii');
  assert.equal(vol.dims, [3, 2, 1]);
  assert.equal(Array.from(vol.data), values.map((v) => 2 * v + 1));
});

nifti('NIfTI-2 files are read', () => {
  const values = [1.5, -2, 3, 400];
  const bytes = new Uint8Array(544 + values.length * 4);
  const view = new DataView(bytes.buffer);
  view.setInt32(0, 540, true);
  bytes.set([0x6e, 0x2b, 0x32, 0, 0x0d, 0x0a, 0x1a, 0x0a], 4); // "n+2\0\r\n\032\n"
  view.setInt16(12, 16, true); // float32
  view.setInt16(14, 32, true);
  [2, 2, 2, 1, 1, 1, 1, 1].forEach((d, i) => view.setBigInt64(16 + 8 * i, BigInt(d), true));
  [1, 0.8, 0.8, 1, 1, 1, 1, 1].forEach((p, i) => view.setFloat64(104 + 8 * i, p, true));
  view.setBigInt64(168, 544n, true); // vox_offset
  view.setInt32(348, 1, true); // sform_code
  bytes[524] = 2 << 4; // dim_info: slice_dim 2 (y), ignored for a single slice
  [[0.8, 0, 0, -10], [0, 0.8, 0, 20], [0, 0, 1, 5]].forEach((row, r) =>
    row.forEach((v, c) => view.setFloat64(400 + (r * 4 + c) * 8, v, true)),
  );
  values.forEach((v, i) => view.setFloat32(544 + 4 * i, v, true));
  const vol = parseNifti(bytes, 'two.nii');
  assert.is(vol.niftiVersion, 2);
  assert.equal(vol.dims, [2, 2, 1]);
  assert.equal(Array.from(vol.data), values);
  assert.equal(vol.space.srow, [[0.8, 0, 0, -10], [0, 0.8, 0, 20], [0, 0, 1, 5]]);
  assert.is(vol.space.sformCode, 1);
  assert.is(vol.space.dimInfo, 2 << 4);
  assert.is(vol.sliceAxis, 2);
});

nifti('parseNifti gunzips by itself (the browser path) and refuses cut or damaged gzip', () => {
  const values = Array.from({ length: 40 * 30 }, (_, i) => (i * 13) % 256);
  const gz = gzipSync(encodeNifti({ dims: [40, 30], data: values, datatype: 'uint8' }));
  assert.equal(Array.from(parseNifti(gz, 'mem.nii.gz').data), values);
  throwsDataError(() => parseNifti(gz.subarray(0, gz.length >> 1), 'cut.nii.gz'), 'cut.nii.gz', 'gzip');
  const damaged = Uint8Array.from(gz);
  damaged.fill(0xff, 20, 60);
  throwsDataError(() => parseNifti(damaged, 'damaged.nii.gz'), 'damaged.nii.gz');
});

nifti('the writer refuses values that do not fit the datatype', () => {
  assert.throws(() => encodeNifti({ dims: [2], data: [1, 256], datatype: 'uint8' }), /not a uint8/);
  assert.throws(() => encodeNifti({ dims: [2], data: [1, 0.5], datatype: 'int16' }), /not a int16/);
  assert.throws(() => encodeNifti({ dims: [3], data: [1, 2], datatype: 'float32' }), /need 3 values/);
});

nifti('the NIfTI layout: version and byte order from sizeof_hdr, the magic sniff, voxels in either order', () => {
  const file = encodeNifti({ dims: [2, 2], data: [1, 2, 3, 4], datatype: 'uint8' });
  assert.equal(headerLayout(file), { version: 1, le: true });
  const swapped = Uint8Array.from(file);
  swapped.subarray(0, 4).reverse();
  assert.equal(headerLayout(swapped), { version: 1, le: false });
  const two = new Uint8Array(540);
  new DataView(two.buffer).setInt32(0, 540, false);
  assert.equal(headerLayout(two), { version: 2, le: false });
  assert.is(headerLayout(new Uint8Array(600).fill(7)), null);
  assert.is(headerLayout(file.subarray(0, 3)), null);

  assert.ok(mayBeNiftiHeader(file), 'NIfTI-1: "n" at 344');
  two[4] = 0x6e;
  assert.ok(mayBeNiftiHeader(two), 'NIfTI-2: "n" at 4');
  assert.not.ok(mayBeNiftiHeader(file.subarray(0, 347)), 'shorter than a header');
  assert.not.ok(mayBeNiftiHeader(new TextEncoder().encode('x'.repeat(400))));

  assert.equal(ALL_DATATYPE_CODES, [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304]);
  for (const { name, bytes, range } of NIFTI_DATATYPES) {
    const values = range ? [range[0], range[1], 1, 0] : [-1.5, 3.25, 1e30, 0];
    for (const le of [true, false]) {
      const buffer = new ArrayBuffer(3 + values.length * bytes); // an odd offset: unaligned for the typed arrays
      writeVoxels(new DataView(buffer), 3, values, name, le);
      assert.equal(Array.from(readVoxels(buffer, 3, values.length, name, le)), values.map(Math.fround), `${name} ${le ? 'little' : 'big'}-endian`);
    }
  }
});

nifti.run();

// ---------------------------------------------------------------------------------------------
const intensity = suite('intensity and labels');

function memVolume(data: number[], dims: [number, number, number], source = 'mem.nii'): Volume {
  return parseNifti(encodeNifti({ dims, data, datatype: 'float32' }), source);
}

intensity('Hounsfield int16 volumes go through the lung window -1000..400', () => {
  // Stored as HU + 1024 with intercept -1024, as many scanners write them.
  const hu = [-3024, -1024, -1000, -300, 0, 400, 1500, -650];
  const file = tmpPath('hu.nii.gz');
  writeNifti(file, { dims: [4, 2, 1], data: hu.map((v) => v + 1024 * 3), datatype: 'int16', sclSlope: 1, sclInter: -1024 * 3 });
  const vol = readVolume(file);
  assert.equal(Array.from(vol.data), hu);
  const norm = normaliseImage(vol);
  assert.is(norm.kind, 'hu');
  const expected = [0, 0, 0, 0.5, 1000 / 1400, 1, 1, 350 / 1400];
  norm.data.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6, `HU ${hu[i]} -> ${v}, expected ${expected[i]}`));
});

intensity('8-bit images are divided by 255; 0..1 images are kept', () => {
  const eight = normaliseImage(memVolume([0, 51, 255, 100], [2, 2, 1]));
  assert.is(eight.kind, '8bit');
  assert.equal(Array.from(eight.data), [0, 51, 255, 100].map((v) => Math.fround(v / 255)));
  const unit = normaliseImage(memVolume([0, 0.25, 1, 0.5], [2, 2, 1]));
  assert.is(unit.kind, 'unit');
  assert.equal(Array.from(unit.data), [0, 0.25, 1, 0.5]);
});

intensity('other ranges and NaN are refused, naming the file', () => {
  throwsDataError(() => normaliseImage(memVolume([0, 4095, 100, 3], [2, 2, 1], 'raw12bit.nii')), 'raw12bit.nii', 'scl_inter');
  throwsDataError(() => normaliseImage(memVolume([-100, 300, 0, 3], [2, 2, 1], 'soft.nii')), 'soft.nii');
  throwsDataError(() => normaliseImage(memVolume([0, NaN, 1, 0], [2, 2, 1], 'nan.nii')), 'nan.nii', 'NaN');
});

intensity('binaryMask merges labels 1-3 and refuses negative labels', () => {
  assert.equal(Array.from(binaryMask(memVolume([0, 1, 2, 3, 0.4, 0.6], [6, 1, 1]))), [0, 1, 1, 1, 0, 1]);
  throwsDataError(() => binaryMask(memVolume([0, -1000, 2, 3], [4, 1, 1], 'image-as-mask.nii')), 'image-as-mask.nii', 'negative');
});

intensity.run();

// ---------------------------------------------------------------------------------------------
const split = suite('splits');

function checkPartition(s: { train: number[]; val: number[]; test: number[] }, n: number): void {
  const all = [...s.train, ...s.val, ...s.test].sort((a, b) => a - b);
  assert.equal(all, Array.from({ length: n }, (_, i) => i), 'disjoint and complete');
  for (const part of [s.train, s.val, s.test]) assert.equal(part, [...part].sort((a, b) => a - b), 'sorted');
}

split('seeded, disjoint, complete: 80/20 with 8 of the 80 for validation', () => {
  const a = splitSlices(100, { seed: 1 });
  checkPartition(a, 100);
  assert.is(a.test.length, 20);
  assert.is(a.val.length, 8);
  assert.is(a.train.length, 72);
  assert.equal(splitSlices(100, { seed: 1 }), a);
  assert.not.equal(splitSlices(100, { seed: 2 }).test, a.test);
  const noVal = splitSlices(10, { seed: 3, testFraction: 0.3, valFraction: 0 });
  checkPartition(noVal, 10);
  assert.equal([noVal.train.length, noVal.val.length, noVal.test.length], [7, 0, 3]);
  const small = splitSlices(5, { seed: 3, valFraction: 0.01 });
  assert.is(small.val.length, 1, 'at least one validation slice');
  checkPartition(small, 5);
});

split('the K test folds partition the slices', () => {
  for (const [n, K] of [[100, 5], [23, 4], [7, 7]]) {
    const tests: number[] = [];
    for (let k = 1; k <= K; k++) {
      const s = splitSlices(n, { seed: 9, fold: { k, K } });
      checkPartition(s, n);
      assert.ok(s.test.length === Math.floor(n / K) || s.test.length === Math.ceil(n / K), 'near-equal folds');
      tests.push(...s.test);
    }
    assert.equal(tests.sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
  }
});

split('bad arguments throw clear errors', () => {
  assert.throws(() => splitSlices(10, { seed: 1, fold: { k: 0, K: 5 } }), /k must be an integer from 1 to 5/);
  assert.throws(() => splitSlices(10, { seed: 1, fold: { k: 6, K: 5 } }), /k must be/);
  assert.throws(() => splitSlices(10, { seed: 1, fold: { k: 1, K: 1 } }), /at least 2/);
  assert.throws(() => splitSlices(3, { seed: 1, fold: { k: 1, K: 4 } }), /more than the 3 slices/);
  assert.throws(() => splitSlices(10, { seed: 1, testFraction: 1 }), /testFraction must be in \[0, 1\)/);
  assert.throws(() => splitSlices(10, { seed: 1, valFraction: -0.1 }), /valFraction/);
  assert.throws(() => splitSlices(0, { seed: 1 }), /positive integer/);
  assert.equal(parseFold('2/5'), { k: 2, K: 5 });
  assert.equal(parseFold(' 5 / 5 '), { k: 5, K: 5 });
  for (const bad of ['', '2', '0/5', '6/5', '1/1', 'a/b', '2/5/1', '-1/5', '1.5/5']) {
    assert.throws(() => parseFold(bad), /k\/K/, bad);
  }
});

split.run();

// ---------------------------------------------------------------------------------------------
const resize = suite('resizing');

resize('constant images stay constant', () => {
  const c = new Float32Array(12 * 20).fill(0.375);
  for (const [H, W] of [[5, 7], [24, 40], [3, 4], [12, 20]]) {
    for (const v of resizeBilinear(c, 12, 20, H, W)) assert.ok(Math.abs(v - 0.375) < 1e-6);
    for (const v of resizeImage(c, 12, 20, H, W)) assert.ok(Math.abs(v - 0.375) < 1e-6);
  }
  for (const v of resizeArea(c, 12, 20, 3, 5)) assert.ok(Math.abs(v - 0.375) < 1e-6);
});

resize('known small cases', () => {
  const ramp = Float32Array.from({ length: 16 }, (_, i) => i); // 4 x 4
  assert.equal(Array.from(resizeArea(ramp, 4, 4, 2, 2)), [2.5, 4.5, 10.5, 12.5]);
  assert.equal(Array.from(resizeBilinear(ramp, 4, 4, 2, 2)), [2.5, 4.5, 10.5, 12.5]);
  // Upscaling 2 x 2 to 4 x 4, as torch F.interpolate(bilinear, align_corners=False) gives.
  const up = resizeBilinear(Float32Array.from([0, 1, 2, 3]), 2, 2, 4, 4);
  assert.equal(Array.from(up), [0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3]);
  // Shrinking 6 x 6 by 3: the box filter averages 9 pixels, bilinear reads only the centre one.
  const six = Float32Array.from({ length: 36 }, (_, i) => (i * 7) % 5);
  assert.equal(resizeImage(six, 6, 6, 2, 2), resizeArea(six, 6, 6, 2, 2));
  assert.equal(Array.from(resizeBilinear(six, 6, 6, 2, 2)), [7, 10, 25, 28].map((i) => six[i]));
  // Nearest takes the pixel under each output centre.
  const labels = Uint8Array.from({ length: 16 }, (_, i) => i);
  assert.equal(Array.from(resizeNearest(labels, 4, 4, 2, 2)), [5, 7, 13, 15]);
  assert.equal(Array.from(resizeNearest(Uint8Array.from([1, 2, 3, 4]), 2, 2, 4, 4)), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
});

resize('nearest keeps masks binary; resizeDataset resizes every slice', () => {
  const rng = new Rng(4);
  const mask = Uint8Array.from({ length: 30 * 30 }, () => (rng.uniform() < 0.3 ? 1 : 0));
  for (const [H, W] of [[7, 11], [60, 45], [10, 10]]) {
    for (const v of resizeNearest(mask, 30, 30, H, W)) assert.ok(v === 0 || v === 1);
  }
  const pair = smallPair(8, 8, 3);
  const ds = buildDataset(memVolume(pair.image, [8, 8, 3]), memVolume(pair.mask, [8, 8, 3], 'm.nii'));
  const small = resizeDataset(ds, 4);
  assert.is(small.images.length, 3);
  assert.is(small.images[0].length, 16);
  assert.equal(small.images[1], resizeArea(ds.images[1], 8, 8, 4, 4));
  assert.equal(small.masks[2], resizeNearest(ds.masks[2], 8, 8, 4, 4));
  assert.equal(ds.images[0].length, 64, 'dataset unchanged');
});

resize.run();

// ---------------------------------------------------------------------------------------------
const augment = suite('augmentation');
const SIZE = 48;

/** A disc and a bar, asymmetric so that every mirror and turn gives a different mask. */
function shapes(): Uint8Array {
  const m = new Uint8Array(SIZE * SIZE);
  for (let y = 0; y < SIZE; y++)
    for (let x = 0; x < SIZE; x++) {
      const disc = (x - 14) ** 2 + (y - 17) ** 2 < 64;
      const bar = x >= 25 && x < 40 && y >= 30 && y < 35;
      const tab = x >= 36 && x < 40 && y >= 8 && y < 30;
      m[y * SIZE + x] = disc || bar || tab ? 1 : 0;
    }
  return m;
}

/** Pixels with a 4-neighbour of the other value. */
function boundaryCount(m: Uint8Array): number {
  let count = 0;
  for (let y = 0; y < SIZE; y++)
    for (let x = 0; x < SIZE; x++) {
      const v = m[y * SIZE + x];
      const differs = [[1, 0], [-1, 0], [0, 1], [0, -1]].some(([dx, dy]) => {
        const nx = x + dx, ny = y + dy;
        return nx >= 0 && nx < SIZE && ny >= 0 && ny < SIZE && m[ny * SIZE + nx] !== v;
      });
      if (differs) count++;
    }
  return count;
}

augment('mirrors and quarter turns move image and mask exactly together', () => {
  const mask = shapes();
  const image = Float32Array.from(mask);
  const seen = new Set<string>();
  for (let seed = 0; seed < 64; seed++) {
    const out = augmentPair(image, mask, SIZE, new Rng(seed), { rotateProbability: 0, scaleProbability: 0, jitterProbability: 0 });
    assert.equal(out.image, Float32Array.from(out.mask), `seed ${seed}`);
    assert.is(out.mask.reduce((a, b) => a + b, 0), mask.reduce((a, b) => a + b, 0), 'a permutation of pixels');
    seen.add(out.mask.join(''));
  }
  assert.is(seen.size, 8, 'all 8 symmetries of the square occur');
});

augment('the basic set (the default) only mirrors, turns and jitters: the mask is a permutation, never resampled', () => {
  const mask = shapes();
  const image = Float32Array.from(mask, (v, i) => 0.25 + 0.5 * v + (i % 7) / 100);
  const sorted = (a: Float32Array) => [...a].sort((x, y) => x - y);
  let jittered = 0;
  for (let seed = 0; seed < 64; seed++) {
    const out = augmentPair(image, mask, SIZE, new Rng(seed), BASIC_AUGMENT);
    assert.equal(sorted(Float32Array.from(out.mask)), sorted(Float32Array.from(mask)), `seed ${seed}: same pixels`);
    const same = sorted(out.image).every((v, i) => v === sorted(image)[i]);
    if (!same) {
      jittered++;
      // Jitter is one affine map of the values: their order is kept.
      const o = sorted(out.image);
      for (let i = 1; i < o.length; i++) assert.ok(o[i] >= o[i - 1]);
    }
  }
  assert.ok(jittered > 16 && jittered < 48, `about half the samples jittered: ${jittered}`);
  assert.is(BASIC_AUGMENT.rotateProbability, 0);
  assert.is(BASIC_AUGMENT.scaleProbability, 0);
  assert.ok(FULL_AUGMENT.rotateProbability > 0 && FULL_AUGMENT.scaleProbability > 0);
});

augment('with rotation and zoom, image and mask stay aligned', () => {
  const mask = shapes();
  const image = Float32Array.from(mask);
  let worst = 0;
  for (let seed = 0; seed < 60; seed++) {
    const out = augmentPair(image, mask, SIZE, new Rng(seed), {
      rotateProbability: 1, scaleProbability: 1, jitterProbability: 0, maxRotationDegrees: 30,
    });
    let differ = 0;
    for (let i = 0; i < out.mask.length; i++) if ((out.image[i] > 0.5 ? 1 : 0) !== out.mask[i]) differ++;
    // A one-pixel shift would disagree on about half the boundary pixels.
    worst = Math.max(worst, differ / boundaryCount(out.mask));
  }
  assert.ok(worst < 0.1, `worst disagreement ${worst} of the boundary pixels`);
});

augment('zoom above 1 enlarges about the centre', () => {
  const mask = shapes();
  const out = augmentPair(Float32Array.from(mask), mask, SIZE, new Rng(1), {
    flipXProbability: 0, flipYProbability: 0, rot90Probability: 0, rotateProbability: 0, jitterProbability: 0,
    scaleProbability: 1, minScale: 1.5, maxScale: 1.5,
  });
  const area = (m: Uint8Array) => m.reduce((a, b) => a + b, 0);
  const ratio = area(out.mask) / area(mask);
  assert.ok(ratio > 1.8 && ratio < 2.7, `area ratio ${ratio}`);
});

augment('jitter changes contrast and brightness within range and clips to 0..1', () => {
  const rng = new Rng(5);
  const image = Float32Array.from({ length: SIZE * SIZE }, () => rng.uniform());
  const mask = new Uint8Array(SIZE * SIZE);
  const out = augmentPair(image, mask, SIZE, new Rng(2), {
    flipXProbability: 0, flipYProbability: 0, rot90Probability: 0, rotateProbability: 0, scaleProbability: 0,
    jitterProbability: 1, contrastJitter: 0.05, brightnessJitter: 0.05,
  });
  let changed = 0;
  for (let i = 0; i < image.length; i++) {
    assert.ok(out.image[i] >= 0 && out.image[i] <= 1);
    assert.ok(Math.abs(out.image[i] - image[i]) <= 0.1 + 1e-6);
    if (out.image[i] !== image[i]) changed++;
  }
  assert.ok(changed > image.length / 2);
  assert.equal(out.mask, mask);
});

augment('seeded, and the inputs are left alone', () => {
  const rng = new Rng(8);
  const image = Float32Array.from({ length: SIZE * SIZE }, () => rng.uniform());
  const mask = shapes();
  const imageBefore = image.slice();
  const maskBefore = mask.slice();
  const all = { flipXProbability: 1, rot90Probability: 1, rotateProbability: 1, scaleProbability: 1, jitterProbability: 1 };
  const a = augmentPair(image, mask, SIZE, new Rng(11), all);
  const b = augmentPair(image, mask, SIZE, new Rng(11), all);
  const c = augmentPair(image, mask, SIZE, new Rng(12), all);
  assert.equal(a.image, b.image);
  assert.equal(a.mask, b.mask);
  assert.not.equal(a.image, c.image);
  assert.equal(image, imageBefore);
  assert.equal(mask, maskBefore);
  assert.ok(a.image !== image && a.mask !== mask);
  for (const v of a.mask) assert.ok(v === 0 || v === 1);
  assert.throws(() => augmentPair(image, mask, SIZE + 1, new Rng(1)), /not 49 x 49/);
});

augment.run();

// ---------------------------------------------------------------------------------------------
const grid = suite('masks on their image\'s grid');

/** Voxels 0.7 x 0.7 x 2.5 mm, x and y reversed (as scanners store them), somewhere in space. */
const GRID: Affine = [[-0.7, 0, 0, 100], [0, -0.7, 0, 80], [0, 0, 2.5, -50]];
const memoryVolume = (source: string, dims: [number, number, number], data: Float32Array, affine: Affine): Volume => ({
  source, dims, data, sliceAxis: 2, datatype: 'uint8', niftiVersion: 1, scaling: null, space: spaceFromAffine(affine), description: '',
});

grid('sameGrid compares where the corner voxels lie: 0.700 against 0.709 mm is 4.6 mm apart over 512 voxels, not one grid', () => {
  const wide: Affine = GRID.map((r, i) => (i === 0 ? [-0.709, 0, 0, 100] : [...r])) as Affine;
  assert.ok(affineDifference(GRID, wide) <= 0.01, 'the entries are within 0.01: the old test took these for one grid');
  assert.not.ok(sameGrid({ dims: [512, 512, 2], affine: GRID }, { dims: [512, 512, 2], affine: wide }));
  // On 4 voxels the same spacings stay 0.03 mm apart: within 0.1 voxel (0.07 mm).
  assert.ok(sameGrid({ dims: [4, 4, 2], affine: GRID }, { dims: [4, 4, 2], affine: wide }));
  const moved = (mm: number): Affine => GRID.map((r, i) => [r[0], r[1], r[2], r[3] + (i === 1 ? mm : 0)]) as Affine;
  assert.ok(sameGrid({ dims: [512, 512, 2], affine: GRID }, { dims: [512, 512, 2], affine: moved(0.05) }), '0.05 mm: 0.07 voxel');
  assert.not.ok(sameGrid({ dims: [512, 512, 2], affine: GRID }, { dims: [512, 512, 2], affine: moved(0.08) }), '0.08 mm: 0.11 voxel');
  assert.not.ok(sameGrid({ dims: [512, 512, 2], affine: GRID }, { dims: [512, 256, 4], affine: GRID }), 'other dims');
  const flipped = flipRows([512, 512, 2], new Uint8Array(512 * 512 * 2), GRID).affine;
  assert.not.ok(sameGrid({ dims: [512, 512, 2], affine: GRID }, { dims: [512, 512, 2], affine: flipped }), 'the same voxels in another order');
});

grid('maskOnImageGrid: a mask 0.009 mm per voxel off the image\'s spacing is refused; one with its rows reversed is put back in order', () => {
  const dims: [number, number, number] = [512, 2, 2];
  const data = Float32Array.from({ length: 512 * 4 }, (_, i) => (i * 7) % 3);
  const image = memoryVolume('ct.nii.gz', dims, new Float32Array(data.length), GRID);
  const wide = memoryVolume('wide.nii.gz', dims, data, GRID.map((r, i) => (i === 0 ? [-0.709, 0, 0, 100] : [...r])) as Affine);
  const message = throwsDataError(() => maskOnImageGrid(image, wide), 'wide.nii.gz does not lie on the grid of the image ct.nii.gz', 'Resample the mask').message;
  assert.not.match(message, /\n/);
  const f = flipRows(dims, data, GRID);
  const back = maskOnImageGrid(image, memoryVolume('flipped.nii.gz', dims, f.data, f.affine));
  assert.equal(back.data, data);
  assert.equal(back.space, image.space);
  const same = memoryVolume('same.nii.gz', dims, data, GRID);
  assert.is(maskOnImageGrid(image, same), same, 'on the same grid: as stored');
});

grid('readLungMask: a lung mask with its rows reversed, or its x and y swapped, is put on the image\'s grid; on another grid, refused', async () => {
  const dir = tmpPath('lung-grid');
  mkdirSync(dir);
  const dims: [number, number, number] = [8, 6, 3];
  const [nx, ny, nz] = dims;
  const image = Uint8Array.from({ length: nx * ny * nz }, (_, i) => (i * 37) % 200);
  const labels = Uint8Array.from({ length: nx * ny * nz }, (_, i) => (i % nx < 3 && Math.floor(i / nx) % ny < 2 ? 1 : 0));
  // A lung mask that differs row to row (rows 0-2 of each slice, and column 7).
  const lungs = Uint8Array.from({ length: nx * ny * nz }, (_, i) => (Math.floor(i / nx) % ny < 3 || i % nx === 7 ? 1 : 0));
  writeNifti(join(dir, 'tr_im.nii.gz'), { dims, data: image, datatype: 'uint8', space: spaceFromAffine(GRID) });
  writeNifti(join(dir, 'tr_mask.nii.gz'), { dims, data: labels, datatype: 'uint8', space: spaceFromAffine(GRID) });
  const f = flipRows(dims, lungs, GRID);
  const flippedFile = join(dir, 'lungs-flipped.nii.gz');
  writeNifti(flippedFile, { dims, data: f.data, datatype: 'uint8', space: spaceFromAffine(f.affine) });
  // x and y swapped: voxel (y, x, z) of the file is voxel (x, y, z) of the image.
  const swapped = new Uint8Array(lungs.length);
  for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) swapped[y + ny * (x + nx * z)] = lungs[x + nx * (y + ny * z)];
  const swappedFile = join(dir, 'lungs-swapped.nii.gz');
  writeNifti(swappedFile, { dims: [ny, nx, nz], data: swapped, datatype: 'uint8', space: spaceFromAffine([[0, -0.7, 0, 100], [-0.7, 0, 0, 80], [0, 0, 2.5, -50]]) });
  const volume = readVolume(join(dir, 'tr_im.nii.gz'));
  // predict (the image volume) and evaluate --data (the dataset built from it) alike.
  const ds = await loadDataset(dir);
  for (const file of [flippedFile, swappedFile]) {
    assert.equal(readLungMask(file, volume).voxels, lungs, file);
    assert.equal(readLungMask(file, datasetImage(ds)).slices, [0, 1, 2].map((k) => lungs.subarray(k * nx * ny, (k + 1) * nx * ny)), file);
  }
  const away = join(dir, 'lungs-away.nii.gz');
  writeNifti(away, { dims, data: lungs, datatype: 'uint8', space: spaceFromAffine(GRID.map((r, i) => [r[0], r[1], r[2], r[3] + (i === 0 ? 0.35 : 0)]) as Affine) });
  for (const image of [volume, datasetImage(ds)]) {
    throwsDataError(() => readLungMask(away, image), `${away} does not lie on the grid of the image ${join(dir, 'tr_im.nii.gz')}`, 'Resample the lung mask');
  }
});

grid.run();

// ---------------------------------------------------------------------------------------------
const errors = suite('bad inputs');

/** A folder with a small image and mask; the files are returned for changing. */
function dataFolder(opts: { imageName?: string; maskName?: string; maskDims?: [number, number, number]; lesion?: boolean } = {}) {
  const dir = tmpPath('data');
  mkdirSync(dir);
  const pair = smallPair(6, 5, 4, opts.lesion ?? true);
  const image = join(dir, opts.imageName ?? 'tr_im.nii');
  const mask = join(dir, opts.maskName ?? 'tr_mask.nii.gz');
  writeNifti(image, { dims: [6, 5, 4], data: pair.image, datatype: 'uint8' });
  const maskDims = opts.maskDims ?? [6, 5, 4];
  const maskData = maskDims[2] === 4 ? pair.mask : new Array(maskDims[0] * maskDims[1] * maskDims[2]).fill(1);
  writeNifti(mask, { dims: maskDims, data: maskData, datatype: 'float64' });
  return { dir, image, mask };
}

errors('a small folder loads; the HU file name is preferred over the 8-bit copy', async () => {
  const { dir } = dataFolder();
  writeFileSync(join(dir, 'tr_im_lungwindow.nii.gz'), 'not read');
  const ds = await loadDataset(dir);
  assert.is(ds.count, 4);
  assert.is(ds.width, 6);
  assert.is(ds.height, 5);
  assert.ok(ds.imageSource.endsWith('tr_im.nii'));
  assert.is(ds.intensity, '8bit');
  assert.equal(ds.lesionPixels, [4, 4, 4, 4]);
});

errors('the official layout: an int16 HU tr_im.nii.gz with slope and intercept, sliced along its header\'s slice axis', async () => {
  // The 8-bit folder's slices (6 x 5, 4 of them), stored as HU = 5 v - 1000 (int16 v, slope 5,
  // intercept -1000) in a file whose slices run along x (slice_dim 1): dims [4, 6, 5].
  const axial = await loadDataset(dataFolder().dir);
  const pair = smallPair(6, 5, 4);
  const dir = tmpPath('official');
  mkdirSync(dir);
  const [w, h, n] = [6, 5, 4];
  const image = new Array<number>(w * h * n);
  const mask = new Array<number>(w * h * n);
  for (let k = 0; k < n; k++) for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) {
    image[k + n * (c + w * r)] = pair.image[c + w * (r + h * k)];
    mask[k + n * (c + w * r)] = pair.mask[c + w * (r + h * k)];
  }
  const space = { ...defaultSpace(), dimInfo: 1 << 4 };
  writeNifti(join(dir, 'tr_im.nii.gz'), { dims: [n, w, h], data: image, datatype: 'int16', sclSlope: 5, sclInter: -1000, space });
  writeNifti(join(dir, 'tr_mask.nii.gz'), { dims: [n, w, h], data: mask, datatype: 'uint8', space });
  const ds = await loadDataset(dir);
  assert.is(ds.intensity, 'hu');
  assert.equal([ds.width, ds.height, ds.count, ds.sliceAxis], [w, h, n, 0]);
  assert.equal(ds.fileDims, [n, w, h]);
  assert.equal(ds.lesionPixels, axial.lesionPixels);
  assert.equal(ds.masks, axial.masks);
  // Lung window -1000..400 HU: v / 255 in the 8-bit file is 5 v / 1400 here.
  ds.images.forEach((im, k) => im.forEach((x, i) => assert.ok(Math.abs(x - (axial.images[k][i] * 255 * 5) / 1400) < 1e-6, `slice ${k}, pixel ${i}`)));
  // A lung mask has the image file's shape ([n, w, h]), not the slice stack's ([w, h, n]), and is
  // cut into slices as the image is (here the label mask stands in for one).
  const lung = readLungMask(join(dir, 'tr_mask.nii.gz'), datasetImage(ds));
  assert.equal(lung.slices, ds.masks);
  assert.equal(lung.voxels, Uint8Array.from(mask, (v) => (v > 0.5 ? 1 : 0)));
  const stackShaped = join(dir, 'lungs-stack-shaped.nii');
  writeNifti(stackShaped, { dims: [w, h, n], data: mask, datatype: 'uint8' });
  throwsDataError(() => readLungMask(stackShaped, datasetImage(ds)), stackShaped, `is ${w} x ${h} x ${n} but`, `is ${n} x ${w} x ${h}`, "the image's shape");
});

errors('resolveDataDir: flag, then AUNET_DATA, then the shipped folder', () => {
  const saved = process.env.AUNET_DATA;
  try {
    delete process.env.AUNET_DATA;
    assert.is(resolveDataDir(), DEFAULT_DATA_DIR);
    process.env.AUNET_DATA = tmp;
    assert.is(resolveDataDir(), tmp);
    assert.is(resolveDataDir('/some/where'), '/some/where');
  } finally {
    if (saved === undefined) delete process.env.AUNET_DATA;
    else process.env.AUNET_DATA = saved;
  }
});

errors('a missing folder or missing files', async () => {
  const missing = join(tmp, 'no-such-folder');
  throwsDataError(() => findDataFiles(missing), missing, '--data', 'AUNET_DATA', 'SOURCE.md');
  await rejectsDataError(loadDataset(missing), missing);
  const empty = tmpPath('empty');
  mkdirSync(empty);
  throwsDataError(() => findDataFiles(empty), empty, 'tr_im.nii.gz', 'tr_mask.nii.gz', '--data');
  const { dir, mask } = dataFolder();
  rmSync(mask);
  const err = throwsDataError(() => findDataFiles(dir), dir, 'no mask', 'tr_mask.nii.gz');
  assert.not.ok(err.message.includes('no image'));
  throwsDataError(() => readVolume(join(tmp, 'absent.nii.gz')), 'absent.nii.gz', 'does not exist');
});

errors('files that are not NIfTI', () => {
  const rng = new Rng(3);
  const random = tmpPath('random.nii');
  writeFileSync(random, Uint8Array.from({ length: 2000 }, () => rng.int(256)));
  throwsDataError(() => readVolume(random), random, 'not a NIfTI file');
  const text = tmpPath('notes.nii.gz');
  writeFileSync(text, 'These are my notes about the scans.\n'.repeat(20));
  throwsDataError(() => readVolume(text), text, 'not a NIfTI file');
  const short = tmpPath('short.nii');
  writeFileSync(short, 'tiny');
  throwsDataError(() => readVolume(short), short, 'shorter than a NIfTI header');
  const fakeGzip = tmpPath('fake.nii.gz');
  writeFileSync(fakeGzip, Uint8Array.from([0x1f, 0x8b, ...Array.from({ length: 500 }, () => rng.int(256))]));
  throwsDataError(() => readVolume(fakeGzip), fakeGzip, 'gzip');
  const gzippedText = tmpPath('text.nii.gz');
  writeFileSync(gzippedText, gzipSync(Buffer.from('plain text, gzipped '.repeat(40))));
  throwsDataError(() => readVolume(gzippedText), gzippedText, 'not a NIfTI file');
});

errors('truncated files', () => {
  const { image } = dataFolder();
  const whole = readFileSync(image);
  const half = tmpPath('half.nii');
  writeFileSync(half, whole.subarray(0, 352 + 30));
  throwsDataError(() => readVolume(half), half, 'truncated', '6 x 5 x 4');
  const headerOnly = tmpPath('header-cut.nii');
  writeFileSync(headerOnly, whole.subarray(0, 200));
  throwsDataError(() => readVolume(headerOnly), headerOnly);
  // A gzip stream cut in half, and a complete gzip stream of a cut file.
  const big = encodeNifti({ dims: [64, 64, 4], data: Array.from({ length: 64 * 64 * 4 }, (_, i) => (i * 37) % 251), datatype: 'uint8' });
  const gz = gzipSync(big);
  const cutGz = tmpPath('cut.nii.gz');
  writeFileSync(cutGz, gz.subarray(0, gz.length >> 1));
  throwsDataError(() => readVolume(cutGz), cutGz, 'gzip', 'corrupt or truncated');
  const gzOfCut = tmpPath('gz-of-cut.nii.gz');
  writeFileSync(gzOfCut, gzipSync(big.subarray(0, big.length - 100)));
  throwsDataError(() => readVolume(gzOfCut), gzOfCut, 'truncated');
});

errors('unsupported datatypes and more than 3 dimensions', () => {
  const bytes = encodeNifti({ dims: [2, 2], data: [1, 2, 3, 4], datatype: 'float32' });
  new DataView(bytes.buffer).setInt16(70, 32, true); // complex64
  const complex = tmpPath('complex.nii');
  writeFileSync(complex, bytes);
  throwsDataError(() => readVolume(complex), complex, 'complex64', 'not supported');
  const fourD = tmpPath('time.nii.gz');
  writeNifti(fourD, { dims: [2, 2, 2, 3], data: new Array(24).fill(0), datatype: 'uint8' });
  throwsDataError(() => readVolume(fourD), fourD, '2 x 2 x 2 x 3', 'only 2-D images and 3-D stacks');
});

errors('image and mask of different shapes', async () => {
  const { dir, image, mask } = dataFolder({ maskDims: [6, 5, 3] });
  await rejectsDataError(loadDataset(dir), image, mask, '6 x 5 x 4', '6 x 5 x 3');
});

errors('a mask without any lesion', async () => {
  const { dir, mask } = dataFolder({ lesion: false });
  await rejectsDataError(loadDataset(dir), mask, 'has no lesion voxel (no label > 0)');
});

errors.after(() => rmSync(tmp, { recursive: true, force: true }));
errors.run();
