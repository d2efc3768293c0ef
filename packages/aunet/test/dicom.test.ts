// DICOM CT series in (no GPU): series written by this package's own DICOM writer
// (src/attack/dicom-files.ts) from the shipped volume, read back through dicom-parser
// (src/data/dicom.ts): the same voxels and geometry as the NIfTI path, voxel for voxel, in every
// uncompressed transfer syntax, whatever the file names and InstanceNumbers, oblique too, with a
// second series mixed in; every refusal, each with its one line; the Node side (folders, zips,
// predict's inputs, train/evaluate data folders with the label volume on the series' grid); the
// web page's handling of dropped DICOM files and zips; and the fixture script.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { zipSync } from 'fflate';
import { DataError } from '../src/data/errors';
import { dicomFilesFromZip, dicomSeriesLine, isDicom, volumeFromDicom, TRANSFER_SYNTAXES, type DicomInput } from '../src/data/dicom';
import { datasetImage, DEFAULT_DATA_DIR, findDataFiles, loadDataset, maskOnSeriesGrid, readLungMask, readScan, readVolume, scanStem } from '../src/data/files';
import { encodeNifti, parseNifti, type Volume } from '../src/data/nifti';
import { affineDifference, spaceFromAffine, voxelCorrespondence, voxelToWorld, type Affine } from '../src/data/space';
import { defaultTrainConfig } from '../src/config';
import { predictFile, predictionInputs } from '../src/prediction-files';
import { classifyFile, dicomScanName, PICK_SERIES_ON_PAGE, stem, volumeFromDicomFiles } from '../src/web/inputs';
import { displayFlips, overlayRgb } from '../src/overlay';
import {
  decimalString, dicomFixture, dicomSeries, rotated, SHIPPED_HU, sliceElements, sliceFile, UID, withElement, type SeriesSpec,
} from '../src/attack/dicom-files';
import { corpusSeries, dicomdir } from '../src/attack/hostile-dicom';
import { sampleHU } from '../src/attack/hostile';
import { writeNifti } from './nifti-fixture';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'aunet-dicom-'));
let counter = 0;
const fresh = (name: string) => join(tmp, `${counter++}-${name}`);

/** Writes files into a new folder; returns its path. */
function folder(name: string, files: readonly { name: string; bytes: Uint8Array }[]): string {
  const dir = fresh(name);
  mkdirSync(dir, { recursive: true });
  for (const f of files) {
    mkdirSync(join(dir, f.name, '..'), { recursive: true });
    writeFileSync(join(dir, f.name), f.bytes);
  }
  return dir;
}

/** The DataError `fn` throws: one line, naming `names` (each), holding every fragment of `says`. */
function refusal(fn: () => unknown, names: string[], ...says: string[]): string {
  let error: unknown = null;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  assert.ok(error !== null, `nothing was thrown; expected a refusal saying ${says.join(', ')}`);
  assert.instance(error, DataError, `not a DataError: ${String(error)}`);
  const message = (error as Error).message;
  assert.not.match(message, /[\r\n]/, `not one line: ${JSON.stringify(message)}`);
  for (const n of names) assert.ok(message.includes(n), `"${message}" does not name ${n}`);
  for (const s of says) assert.ok(message.includes(s), `"${message}" lacks "${s}"`);
  return message;
}

/** Voxel for voxel: dims, every value, and the voxel-to-world matrix (within `mm`). */
function assertSameVolume(a: Volume, b: Volume, mm = 1e-4): void {
  assert.equal(a.dims, b.dims);
  assert.is(a.data.length, b.data.length);
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) assert.unreachable(`voxel ${i}: ${a.data[i]} vs ${b.data[i]}`);
  const diff = affineDifference(voxelToWorld(a.space)!, voxelToWorld(b.space)!);
  assert.ok(diff <= mm, `affines differ by ${diff}`);
}

const asInputs = (files: readonly { name: string; bytes: Uint8Array }[], dir = 'series') => files.map((f) => ({ name: `${dir}/${f.name}`, bytes: f.bytes }));
const shippedImage = readVolume(join(DEFAULT_DATA_DIR, 'tr_im_lungwindow.nii.gz'));
const shippedMask = readVolume(join(DEFAULT_DATA_DIR, 'tr_mask.nii.gz'));
/** The shipped slices with their slices' world z reversed (stored head to foot): a left-handed grid. */
const headToFoot: Volume = {
  ...shippedImage,
  space: { ...shippedImage.space, srow: shippedImage.space.srow.map((r, i) => (i === 2 ? [r[0], r[1], -r[2], -r[3]] : [...r])) as Volume['space']['srow'] },
};

// ---------------------------------------------------------------------------------------------
const reading = suite('reading a series');

reading('every uncompressed transfer syntax, signed and unsigned, 12 bits with noise above, 8 bits: the values written', () => {
  const [nx, ny, nz] = [7, 5, 4];
  const hu = sampleHU(nx, ny, nz);
  const affine: Affine = [[-0.7, 0, 0, 3], [0, -0.8, 0, 2], [0, 0, 2.5, -50]];
  const renderings: Partial<SeriesSpec>[] = [
    { slope: 1, intercept: -1024, signed: false, bitsStored: 12, highBitsNoise: true },
    { slope: 1, intercept: 0, signed: true, bitsStored: 16 },
    { slope: 0.5, intercept: 0, signed: true, bitsStored: 13, hu: hu.map((v) => v * 0.5).map((v) => Math.round(v * 2) / 2) },
    { slope: 8, intercept: -1024, bitsAllocated: 8, bitsStored: 8, hu: hu.map((v) => Math.max(-1024, Math.min(1016, Math.round((v + 1024) / 8) * 8 - 1024))) },
    { slope: 1, intercept: -1024, photometric: 'MONOCHROME1' },
  ];
  const syntaxes = [UID.explicitLittle, UID.implicitLittle, UID.explicitBig, UID.deflatedExplicitLittle];
  for (const syntax of syntaxes) {
    for (const r of renderings) {
      const spec: SeriesSpec = { dims: [nx, ny, nz], hu, affine, seriesUid: '2.25.1', transferSyntax: syntax, ...r };
      const { volume, series } = volumeFromDicom(asInputs(dicomSeries(spec)), 'series');
      const want = spec.hu;
      for (let i = 0; i < want.length; i++) if (volume.data[i] !== want[i]) assert.unreachable(`${TRANSFER_SYNTAXES[syntax].name} ${JSON.stringify(r)}: voxel ${i} ${volume.data[i]} vs ${want[i]}`);
      assert.is(series.transferSyntax, TRANSFER_SYNTAXES[syntax].name);
      assert.ok(affineDifference(voxelToWorld(volume.space)!, affine) < 1e-9);
    }
  }
});

reading('the geometry: LPS to RAS, the sform and the qform agree, pixel spacing in the right order, slice spacing from the positions', () => {
  const [nx, ny, nz] = [6, 4, 3];
  // Oblique and anisotropic: columns 0.6 mm, rows 0.9 mm, slices 3 mm.
  const affine = rotated([[-0.6, 0, 0, 10], [0, -0.9, 0, -5], [0, 0, 3, 40]], [0.2, 1, 0.4], 33);
  const files = dicomSeries({ dims: [nx, ny, nz], hu: sampleHU(nx, ny, nz), affine, seriesUid: '2.25.2' });
  // The writer's own DICOM view: ImageOrientationPatient's first vector is the LPS direction of +column.
  const iop = String(sliceElements({ dims: [nx, ny, nz], hu: sampleHU(nx, ny, nz), affine, seriesUid: '2.25.2' }, 0).find((e) => e.tag === 0x00200037)!.value).split('\\').map(Number);
  assert.ok(Math.abs(iop[0] - -affine[0][0] / 0.6) < 1e-12 && Math.abs(iop[1] - -affine[1][0] / 0.6) < 1e-12 && Math.abs(iop[2] - affine[2][0] / 0.6) < 1e-12, `IOP ${iop}`);
  const { volume, series } = volumeFromDicom(asInputs(files), 'series');
  assert.ok(affineDifference(voxelToWorld(volume.space)!, affine) < 1e-9);
  const qformOnly = voxelToWorld({ ...volume.space, sformCode: 0 })!;
  assert.ok(affineDifference(qformOnly, affine) < 1e-9, 'the qform places the voxels as the sform does');
  assert.equal(volume.space.pixdim.slice(0, 4).map((v) => +v.toFixed(9)), [1, 0.6, 0.9, 3]);
  assert.equal(series.voxelMm.map((v) => +v.toFixed(9)), [0.6, 0.9, 3]);
  assert.is(volume.space.qformCode, 1);
  assert.is(volume.space.sformCode, 1);
  assert.is(volume.space.xyztUnits, 2);
});

reading('the shipped volume, all 100 slices of 512 x 512: the DICOM path gives the NIfTI path\'s voxels and geometry, voxel for voxel', () => {
  // Shuffled file names and InstanceNumbers, a second series mixed in and picked by its UID.
  const f = dicomFixture(shippedImage, { shuffle: 7, secondSeries: true });
  const nifti = readVolume(writeFixtureNifti(f));
  const { volume, series } = volumeFromDicom(asInputs(f.files), 'series', { series: f.seriesUid });
  assertSameVolume(volume, nifti);
  assert.equal(volume.dims, [512, 512, 100]);
  assert.is(series.slices, 100);
  assert.is(series.otherSeries, 1);
  // And they are the shipped voxels as HU: 6 v - 1350 at the same pixel of the same slice.
  for (let i = 0; i < volume.data.length; i += 997) assert.is(volume.data[i], SHIPPED_HU.slope * shippedImage.data[i] + SHIPPED_HU.intercept);
});

reading('a tilted (oblique) rendering of the shipped slices: voxel for voxel the NIfTI of the same grid', () => {
  const f = dicomFixture(shippedImage, { slices: [30, 60], tilt: 25, shuffle: 3, transferSyntax: UID.implicitLittle });
  const { volume } = volumeFromDicom(asInputs(f.files), 'series');
  assertSameVolume(volume, readVolume(writeFixtureNifti(f)));
  const R = voxelToWorld(volume.space)!;
  assert.ok(Math.abs(R[2][0]) > 0.1 && Math.abs(R[0][2]) > 0.5, 'the grid is oblique');
});

reading('the shipped file\'s own sform (right-handed: columns to the patient\'s left, rows posterior): the series is the NIfTI, voxel for voxel', () => {
  assert.equal(voxelToWorld(shippedImage.space), [[-1, 0, 0, 255.5], [0, -1, 0, 255.5], [0, 0, 1, -49.5]]);
  const f = dicomFixture(shippedImage, { slices: [10, 20], geometry: 'source' });
  const { volume } = volumeFromDicom(asInputs(f.files), 'series');
  assertSameVolume(volume, readVolume(writeFixtureNifti(f)));
});

reading('a left-handed sform (the shipped slices stored head to foot): the same voxels at the same world points, slices read in the reverse order', () => {
  const f = dicomFixture(headToFoot, { slices: [10, 20], geometry: 'source' });
  const nifti = readVolume(writeFixtureNifti(f));
  const { volume } = volumeFromDicom(asInputs(f.files), 'series');
  const plane = 512 * 512;
  for (let k = 0; k < 10; k++) {
    const a = volume.data.subarray(k * plane, (k + 1) * plane);
    const b = nifti.data.subarray((9 - k) * plane, (10 - k) * plane);
    if (!a.every((v, i) => v === b[i])) assert.unreachable(`slice ${k} of the series is not slice ${9 - k} of the NIfTI`);
  }
  const order = voxelCorrespondence({ dims: nifti.dims, affine: voxelToWorld(nifti.space)! }, { dims: volume.dims, affine: voxelToWorld(volume.space)! });
  assert.ok(order, 'the two grids hold the same voxels');
  for (let t = 0; t < order!.length; t += 101) assert.is(volume.data[t], nifti.data[order![t]]);
  assert.ok(affineDifference(voxelToWorld(volume.space)!, voxelToWorld(nifti.space)!) > 1, 'different voxel orders');
});

/** Picture slice k of a volume (grey from `toGrey`, labels over it) as predict's PNGs and the page's canvas draw it. */
function picture(v: Volume, labels: ArrayLike<number>, k: number, toGrey: (value: number) => number): Uint8Array {
  const [nx, ny] = v.dims;
  const plane = nx * ny;
  const grey = Float32Array.from(v.data.subarray(k * plane, (k + 1) * plane), toGrey);
  const mask = Uint8Array.from({ length: plane }, (_, i) => (labels[k * plane + i] > 0.5 ? 1 : 0));
  return overlayRgb(grey, mask, nx, ny, 'fill', displayFlips(v.space));
}

/** World x and y (mm) of the voxel a picture draws at picture pixel (u, v) of slice k. */
function worldAtPixel(v: Volume, u: number, w: number, k: number): number[] {
  const [nx, ny] = v.dims;
  const { flipX, flipY } = displayFlips(v.space);
  const m = voxelToWorld(v.space)!;
  const [i, j] = [flipX ? nx - 1 - u : u, flipY ? ny - 1 - w : w];
  return m.map((r) => r[0] * i + r[1] * j + r[2] * k + r[3]);
}

reading('pictures: a DICOM series read by the standard (LPS to RAS) and the shipped NIfTI give the same picture, the patient\'s left on the right and anterior up', () => {
  const step = 8;
  const k0 = 40;
  const f = dicomFixture(shippedImage, { slices: [k0, k0 + 3], step }); // axial, ImageOrientationPatient 1\0\0\0\1\0
  const iop = String(sliceElements({ dims: f.dims, hu: f.hu, affine: f.affine, seriesUid: f.seriesUid, ...SHIPPED_HU }, 0).find((e) => e.tag === 0x00200037)!.value);
  assert.is(iop, '1\\0\\0\\0\\1\\0', 'columns towards the patient\'s left (+x LPS), rows towards posterior (+y LPS)');
  const [nx, ny, nz] = f.dims;
  const plane = nx * ny;
  // The shipped NIfTI, cut to the fixture's voxels, with its own sform.
  const cut: Volume = { ...shippedImage, dims: [nx, ny, nz], data: Float32Array.from(f.sourceIndex, (i) => shippedImage.data[i]) };
  const labels = Float32Array.from(f.sourceIndex, (i) => shippedMask.data[i]);
  const fromNifti = (k: number) => picture(cut, labels, k, (v) => v / 255);
  const hu8 = (h: number) => (h - SHIPPED_HU.intercept) / SHIPPED_HU.slope / 255; // back to the 8-bit value, exactly
  const { volume } = volumeFromDicom(asInputs(f.files), 'series');
  assert.equal(displayFlips(volume.space), { flipX: false, flipY: false }, 'a series stored as radiologists view it is drawn as stored');
  assert.equal(displayFlips(shippedImage.space), { flipX: false, flipY: false }, 'so are the shipped files');
  for (let k = 0; k < nz; k++) assert.equal(picture(volume, labels, k, hu8), fromNifti(k), `slice ${k}`);
  assert.ok(labels.some((v) => v > 0), 'lesions drawn');

  // The same patient stored the other way round (ImageOrientationPatient -1\0\0\0\-1\0: columns to
  // the patient's right, rows to anterior, as RAS-ordered NIfTI exports are): mirrored both ways
  // when drawn, the same picture.
  const mirrorIndex = (t: number) => {
    const [x, y, k] = [t % nx, Math.floor(t / nx) % ny, Math.floor(t / plane)];
    return nx - 1 - x + nx * (ny - 1 - y + ny * k);
  };
  const a = f.affine;
  const rasAffine: Affine = [
    [-a[0][0], 0, a[0][2], a[0][3] + a[0][0] * (nx - 1)],
    [0, -a[1][1], a[1][2], a[1][3] + a[1][1] * (ny - 1)],
    [...a[2]],
  ];
  const hu = Float32Array.from(f.hu, (_, t) => f.hu[mirrorIndex(t)]);
  const rasLabels = Float32Array.from(labels, (_, t) => labels[mirrorIndex(t)]);
  const spec: SeriesSpec = { dims: f.dims, hu, affine: rasAffine, seriesUid: '2.25.7777', slope: SHIPPED_HU.slope, intercept: SHIPPED_HU.intercept };
  assert.is(String(sliceElements(spec, 0).find((e) => e.tag === 0x00200037)!.value), '-1\\0\\0\\0\\-1\\0');
  const ras = volumeFromDicom(asInputs(dicomSeries(spec)), 'series').volume;
  assert.equal(displayFlips(ras.space), { flipX: true, flipY: true });
  // The same voxels at the same world points as the first series, in another order.
  const order = voxelCorrespondence({ dims: volume.dims, affine: voxelToWorld(volume.space)! }, { dims: ras.dims, affine: voxelToWorld(ras.space)! });
  assert.ok(order && order.every((s, t) => s === mirrorIndex(t)));
  for (let k = 0; k < nz; k++) assert.equal(picture(ras, rasLabels, k, hu8), fromNifti(k), `mirrored storage, slice ${k}`);

  // And the picture's axes, in the world: rightwards is towards the patient's left (world x falls),
  // downwards towards posterior (world y falls), for each of the three.
  for (const v of [cut, volume, ras]) {
    const [x0, y0] = worldAtPixel(v, 0, 0, 1);
    const [x1] = worldAtPixel(v, nx - 1, 0, 1);
    const [, y1] = worldAtPixel(v, 0, ny - 1, 1);
    assert.ok(x1 < x0 && y1 < y0, `${v.source}: picture right is world x ${x0} -> ${x1}, picture down is world y ${y0} -> ${y1}`);
  }
});

reading('file order, file names and InstanceNumbers do not matter: the order is by position along the normal', () => {
  const base = dicomFixture(shippedImage, { slices: [0, 8], step: 8 });
  const reference = volumeFromDicom(asInputs(base.files), 'series').volume;
  for (const seed of [1, 2, 3]) {
    const f = dicomFixture(shippedImage, { slices: [0, 8], step: 8, shuffle: seed });
    assert.not.equal(f.files.map((x) => x.name), base.files.map((x) => x.name));
    const v = volumeFromDicom(asInputs(f.files), 'series').volume;
    assertSameVolume(v, reference, 1e-12);
  }
  // InstanceNumbers and names counting against the positions.
  const spec = corpusSeries({ fileName: (k) => `IM${9 - k}`, instanceNumber: (k) => 9 - k });
  const v = volumeFromDicom(asInputs(dicomSeries(spec).reverse()), 'series').volume;
  assert.equal(Array.from(v.data), Array.from(spec.hu));
});

reading('a lone slice: a series of one, spaced by its SliceThickness; the series line says what was read', () => {
  const spec = corpusSeries();
  const { volume, series } = volumeFromDicom(asInputs(dicomSeries(spec).slice(0, 1)), 'series');
  assert.equal(volume.dims, [16, 12, 1]);
  assert.ok(Math.abs(voxelToWorld(volume.space)![2][2] - 2.5) < 1e-9);
  assert.is(series.slices, 1);
});

reading('files of no image beside the series (a DICOMDIR, a structured report) are skipped and counted', () => {
  const spec = corpusSeries();
  const sr = sliceFile(spec, withElement(withElement(withElement(sliceElements(spec, 0), 0x7fe00010, null), 0x00280010, null), 0x00080016, { vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.88.22' }), 0);
  const { series } = volumeFromDicom(asInputs([...dicomSeries(spec), { name: 'SR', bytes: sr }]), 'series');
  assert.is(series.skipped.length, 1);
  assert.match(series.skipped[0], /series\/SR \(no image \(SOP class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.88\.22\)\)/);
});

/** Writes a fixture's NIfTI next to nothing else; returns its path. */
function writeFixtureNifti(f: ReturnType<typeof dicomFixture>): string {
  const file = fresh('volume.nii.gz');
  writeNifti(file, f.nifti);
  return file;
}

reading.run();

// ---------------------------------------------------------------------------------------------
const refusals = suite('refusals, each one line');

const spec = corpusSeries();
const five = corpusSeries({ dims: [16, 12, 5], hu: sampleHU(16, 12, 5) });
const named = (files: { name: string; bytes: Uint8Array }[]) => asInputs(files.map((f, k) => ({ name: `IM${k}.dcm`, bytes: f.bytes })));
const slices = (s = spec) => Array.from({ length: s.dims[2] }, (_, k) => sliceElements(s, k));
const filesOf = (elements: ReturnType<typeof sliceElements>[], s = spec, o: { transferSyntax?: string; metaSyntax?: string }[] = []) =>
  named(elements.map((e, k) => ({ name: '', bytes: sliceFile(s, e, k, o[k]) })));
const setIn = (k: number, tag: number, change: Parameters<typeof withElement>[2], s = spec) => slices(s).map((e, i) => (i === k ? withElement(e, tag, change) : e));
const read = (files: DicomInput[], o = {}) => () => volumeFromDicom(files, 'series', o);

refusals('several series in one folder: each listed with UID, description and slice count, and how to pick one', () => {
  const other = dicomSeries({ ...spec, seriesUid: '2.25.77', description: 'bone kernel', seriesNumber: 4, fileName: (k) => `B${k}` });
  const files = [...named(dicomSeries(spec)), ...asInputs(other)];
  const message = refusal(read(files), ['series'], 'holds 2 DICOM series', '2.25.90210 "hostile corpus" (series 1): 3 slices', '2.25.77 "bone kernel" (series 4): 3 slices', '--series UID');
  assert.match(message, /Pick one with --series UID, or put each series in a folder of its own\.$/);
  assert.equal(volumeFromDicom(files, 'series', { series: '2.25.77' }).volume.data.length, 16 * 12 * 3);
  refusal(read(files, { series: '2.25.5' }), ['series'], 'holds no series 2.25.5', '2.25.77 "bone kernel"');
  refusal(read(files, { howToPick: 'Keep one.' }), ['series'], 'Keep one.');
});

refusals('a missing slice: how many and between which files', () => {
  const files = named(dicomSeries(five)).filter((_, k) => k !== 2);
  refusal(read(files), ['series', 'series/IM1.dcm', 'series/IM3.dcm'], '1 slice is missing', 'a gap of 5 mm where the slices are 2.5 mm apart');
  const two = named(dicomSeries(five)).filter((_, k) => k !== 1 && k !== 2);
  refusal(read(two), ['series/IM0.dcm', 'series/IM3.dcm'], '2 slices are missing', 'a gap of 7.5 mm');
});

refusals('uneven spacing: the gap, where it is, and the others', () => {
  const elements = slices(five).map((e, k) => (k === 4 ? e.map((x) => (x.tag === 0x00200032 ? { ...x, value: String(x.value).replace(/\\([^\\]+)$/, (_, z) => `\\${decimalString(Number(z) + 0.8)}`) } : x)) : e));
  refusal(read(filesOf(elements, five)), ['series/IM3.dcm', 'series/IM4.dcm'], 'unevenly spaced', 'a gap of 3.3 mm', 'the others are 2.5 mm apart');
});

refusals('two slices at one position, a slice sheared sideways (gantry tilt), slices that differ', () => {
  const files = named(dicomSeries(spec));
  refusal(read([...files, { name: 'series/COPY.dcm', bytes: files[1].bytes }]), ['series/IM1.dcm', 'series/COPY.dcm'], 'lie at the same position');
  const sheared = slices().map((e, k) => e.map((x) => (x.tag === 0x00200032 ? { ...x, value: String(x.value).split('\\').map((v, i) => decimalString(Number(v) + (i === 0 ? 2 * k : 0))).join('\\') } : x)));
  refusal(read(filesOf(sheared)), ['series'], 'do not stack along their normal', 'gantry tilt');
  const small = sliceFile({ ...spec, dims: [16, 10, 3] }, sliceElements({ ...spec, dims: [16, 10, 3] }, 2), 2);
  refusal(read([...files.slice(0, 2), { name: 'series/IM2.dcm', bytes: small }]), ['series/IM0.dcm', 'series/IM2.dcm'], 'differ in size', '16 x 12', '16 x 10');
  refusal(read(filesOf(setIn(2, 0x00200037, { vr: 'DS', value: '1\\0\\0\\0\\0.8\\0.6' }))), ['series/IM2.dcm'], 'differ in orientation');
  refusal(read(filesOf(setIn(2, 0x00280030, { vr: 'DS', value: '0.7\\0.9' }))), ['series/IM2.dcm'], 'differ in pixel spacing');
});

refusals('a localizer (ImageType LOCALIZER) sharing the series\' UID is skipped and listed; without LOCALIZER the same file is refused', () => {
  const files = named(dicomSeries(spec));
  // A coronal scout of another size, in the CT's series (as some scanners store it).
  const scoutSpec: SeriesSpec = { ...spec, dims: [16, 10, 1], hu: sampleHU(16, 10, 1), affine: rotated(spec.affine, [1, 0, 0], 90) };
  const scout = (imageType: string) => ({
    name: 'series/SCOUT.dcm',
    bytes: sliceFile(scoutSpec, withElement(sliceElements(scoutSpec, 0), 0x00080008, { vr: 'CS', value: imageType }), 0),
  });
  const alone = volumeFromDicom(files, 'series');
  const withScout = volumeFromDicom([scout('ORIGINAL\\PRIMARY\\LOCALIZER'), ...files], 'series');
  assertSameVolume(withScout.volume, alone.volume, 0);
  assert.is(withScout.series.slices, 3);
  assert.equal(withScout.series.skipped, ['series/SCOUT.dcm (a localizer, ImageType LOCALIZER: not a slice of the series)']);
  assert.is(withScout.series.localizers, 1);
  const line = dicomSeriesLine(withScout.series);
  assert.match(line, /: 3 slices of 16 x 12, .*; 1 localizer \(ImageType LOCALIZER\) of the series skipped$/);
  assert.not.match(line, /of no image/);
  assert.not.match(line, /[\r\n]/);
  assert.is(alone.series.localizers, 0);
  // The same file as an AXIAL image: a slice of the series, of another size.
  refusal(read([scout('ORIGINAL\\PRIMARY\\AXIAL'), ...files]), ['series/SCOUT.dcm'], 'differ in size');
});

refusals('compressed transfer syntaxes are named, with what to do; unknown ones too', () => {
  for (const [uid, name] of [
    [UID.jpeg2000Lossless, 'JPEG 2000 Image Compression (Lossless Only)'],
    [UID.jpegLossless, 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])'],
    [UID.rleLossless, 'RLE Lossless'],
    ['1.2.840.10008.1.2.4.50', 'JPEG Baseline (Process 1)'],
    ['1.2.840.10008.1.2.4.80', 'JPEG-LS Lossless'],
    ['1.2.840.10008.1.2.4.201', 'High-Throughput JPEG 2000 Image Compression (Lossless Only)'],
  ]) {
    refusal(read(filesOf(slices(), spec, [{}, { transferSyntax: uid }])), ['series/IM1.dcm'], `is compressed with ${name} (transfer syntax ${uid})`, 'which this reader does not decode', 'gdcmconv --raw', 'dcm2niix');
  }
  refusal(read(filesOf(slices(), spec, [{}, { transferSyntax: '1.2.3.4' }])), ['series/IM1.dcm'], 'transfer syntax "1.2.3.4" is not one this reader knows', 'Explicit VR Big Endian');
});

refusals('a wrong transfer syntax (the data in another than the file states): refused, never misread', () => {
  for (const stated of [UID.explicitBig, UID.implicitLittle, UID.deflatedExplicitLittle]) {
    refusal(read(filesOf(slices(), spec, [{}, { metaSyntax: stated }])), ['series/IM1.dcm'], TRANSFER_SYNTAXES[stated].name);
  }
});

refusals('not CT, multi-frame, Enhanced CT, colour, unsupported bits', () => {
  refusal(read(filesOf(slices().map((e) => withElement(e, 0x00080060, { vr: 'CS', value: 'MR' })))), ['series'], 'is of modality MR, not CT', 'segments CT scans');
  refusal(read(filesOf(setIn(1, 0x00280008, { vr: 'IS', value: '3' }))), ['series/IM1.dcm'], 'multi-frame image (NumberOfFrames "3") is not supported', 'one file per slice');
  refusal(read(filesOf(setIn(1, 0x00080016, { vr: 'UI', value: UID.enhancedCtImageStorage }))), ['series/IM1.dcm'], 'an Enhanced CT object');
  refusal(read(filesOf(slices().map((e, k) => (k === 1 ? withElement(withElement(e, 0x00280002, { vr: 'US', value: [3] }), 0x00280004, { vr: 'CS', value: 'RGB' }) : e)))), ['series/IM1.dcm'], 'a colour image (PhotometricInterpretation "RGB", SamplesPerPixel 3)');
  refusal(read(filesOf(setIn(1, 0x00280100, { vr: 'US', value: [12] }))), ['series/IM1.dcm'], 'BitsAllocated 12 is not supported');
  refusal(read(filesOf(setIn(1, 0x00280101, { vr: 'US', value: [20] }))), ['series/IM1.dcm'], 'BitsStored 20', 'do not fit');
});

refusals('a missing pixel data element, truncated files, absurd rows and columns, lying lengths', () => {
  refusal(read(filesOf(setIn(1, 0x7fe00010, null))), ['series/IM1.dcm'], 'has no pixel data element (7FE0,0010)');
  const files = named(dicomSeries(spec));
  const middle = files[1].bytes;
  refusal(read([files[0], { name: 'series/IM1.dcm', bytes: middle.slice(0, middle.length - 100) }, files[2]]), ['series/IM1.dcm'], 'is truncated', 'its pixel data element says 384 bytes, the file holds 284');
  refusal(read([files[0], { name: 'series/IM1.dcm', bytes: middle.slice(0, 300) }, files[2]]), ['series/IM1.dcm'], 'cannot be parsed as DICOM');
  refusal(read([files[0], { name: 'series/IM1.dcm', bytes: middle.slice(0, 150) }, files[2]]), ['series/IM1.dcm'], 'past the end of the file');
  const t0 = performance.now();
  refusal(
    read(filesOf(slices().map((e, k) => (k === 1 ? withElement(withElement(e, 0x00280010, { vr: 'US', value: [65535] }), 0x00280011, { vr: 'US', value: [65535] }) : e)))),
    ['series/IM1.dcm'], 'truncated or its header is damaged: Rows 65535 x Columns 65535 of 16-bit pixels need 8589672450 bytes of pixel data, the file holds 384',
  );
  assert.ok(performance.now() - t0 < 1000, 'refused from the header, nothing of that size allocated');
  refusal(read(filesOf(setIn(1, 0x00280010, { vr: 'US', value: [0] }))), ['series/IM1.dcm'], 'an image needs at least one of each');
  const lying = slices().map((e, k) => (k === 1 ? e.map((x) => (x.tag === 0x7fe00010 ? { ...x, length: 0xfffffff0 } : x)) : e));
  refusal(read(filesOf(lying)), ['series/IM1.dcm'], 'is truncated', 'says 4294967280 bytes');
});

refusals('headers that cannot place or scale a slice', () => {
  refusal(read(filesOf(setIn(1, 0x00200032, null))), ['series/IM1.dcm'], 'ImagePositionPatient (0020,0032) is missing');
  refusal(read(filesOf(setIn(1, 0x00200037, { vr: 'DS', value: '1\\0\\0\\1\\0\\0' }))), ['series/IM1.dcm'], 'not two perpendicular unit vectors');
  refusal(read(filesOf(setIn(1, 0x00280030, { vr: 'DS', value: '0\\0' }))), ['series/IM1.dcm'], 'not a pair of positive sizes');
  refusal(read(filesOf(setIn(1, 0x00280030, { vr: 'DS', value: 'abc\\1' }))), ['series/IM1.dcm'], 'PixelSpacing (0028,0030) is "abc\\\\1", not 2 numbers');
  refusal(read(filesOf(setIn(1, 0x00281053, { vr: 'DS', value: 'abc' }))), ['series/IM1.dcm'], 'RescaleSlope (0028,1053) is "abc", not a number');
  refusal(read(filesOf(setIn(1, 0x00281053, { vr: 'DS', value: '0' }))), ['series/IM1.dcm'], 'RescaleSlope 0');
  refusal(read(filesOf(setIn(1, 0x00281053, { vr: 'DS', value: '1e38' }))), ['series/IM1.dcm'], 'not finite');
});

refusals('not DICOM at all, nothing at all, images of no kind', () => {
  refusal(read([{ name: 'series/a.dcm', bytes: new TextEncoder().encode('hello'.repeat(40)) }]), ['series/a.dcm'], 'is not a DICOM file (no "DICM" prefix at byte 128)');
  refusal(read([{ name: 'series/b.dcm', bytes: new Uint8Array(20) }]), ['series/b.dcm'], 'too short');
  refusal(read([]), ['series'], 'holds no DICOM file');
  refusal(read([{ name: 'series/DICOMDIR', bytes: dicomdir() }]), ['series'], 'holds no DICOM image');
  // A CT slice whose pixels and rows cannot be read is refused, not skipped as if it held no image.
  refusal(read(filesOf(slices().map((e, k) => (k === 1 ? withElement(withElement(e, 0x7fe00010, null), 0x00280010, null) : e)))), ['series/IM1.dcm'], 'no Rows (0028,0010) and no pixel data (7FE0,0010)');
});

refusals.run();

// ---------------------------------------------------------------------------------------------
const node = suite('folders, zips and files on disk');

node('a folder (with subfolders, a README and a DICOMDIR-like file), a zip, and one file: the same series', () => {
  const files = dicomSeries(spec);
  const dir = folder('export', [
    ...files.map((f, k) => ({ name: `PAT1/STUDY1/SER${k % 2}/${f.name}`, bytes: f.bytes })),
    { name: 'README.txt', bytes: new TextEncoder().encode('an export') },
    { name: '.hidden', bytes: files[0].bytes },
  ]);
  const fromFolder = readScan(dir);
  assert.equal(fromFolder.volume.dims, [16, 12, 3]);
  assert.equal(Array.from(fromFolder.volume.data), Array.from(spec.hu));
  assert.ok(fromFolder.series, 'a DICOM scan says what series');
  const zip = fresh('series.zip');
  writeFileSync(zip, zipSync(Object.fromEntries(files.map((f) => [`a/${f.name}`, f.bytes]))));
  assertSameVolume(readVolume(zip), fromFolder.volume, 1e-12);
  const one = fresh('one.dcm');
  writeFileSync(one, files[0].bytes);
  assert.equal(readVolume(one).dims, [16, 12, 1]);
  assert.is(scanStem(dir), dir.split('/').pop());
  assert.is(scanStem(zip), zip.split('/').pop()!.replace('.zip', ''));
});

node('paths that hold no series: one line naming them', () => {
  const empty = folder('empty', [{ name: 'notes.txt', bytes: new TextEncoder().encode('x') }]);
  refusal(() => readScan(empty), [empty], 'is a folder holding no DICOM file', 'Pass a .nii or .nii.gz file, or a folder (or .zip) holding the DICOM files of one CT series');
  refusal(() => readScan(join(tmp, 'nowhere')), [join(tmp, 'nowhere')], 'does not exist');
  const nifti = fresh('scan.nii');
  writeFileSync(nifti, encodeNifti({ dims: [4, 4, 2], data: sampleHU(4, 4, 2), datatype: 'int16' }));
  refusal(() => readScan(nifti, { series: '2.25.1' }), [nifti], 'is not a DICOM series');
  const zip = fresh('text.zip');
  writeFileSync(zip, zipSync({ 'a.txt': new TextEncoder().encode('x') }));
  refusal(() => readScan(zip), [zip], 'holds no DICOM file');
  const broken = fresh('broken.zip');
  const z = zipSync(Object.fromEntries(dicomSeries(spec).map((f) => [f.name, f.bytes])), { level: 6 });
  for (let i = 60; i < 80; i++) z[i] ^= 0x5a;
  writeFileSync(broken, z);
  refusal(() => readScan(broken), [broken], 'cannot be unzipped');
});

node('predict\'s inputs: a DICOM folder is one input, a zip or a .dcm file one; NIfTI and DICOM together are refused', () => {
  const dir = folder('case', dicomSeries(spec));
  assert.equal(predictionInputs(dir), [{ file: dir, lungMask: undefined, series: undefined }]);
  assert.equal(predictionInputs(dir, undefined, '2.25.90210'), [{ file: dir, lungMask: undefined, series: '2.25.90210' }]);
  const mixed = folder('mixed', [...dicomSeries(spec), { name: 'scan.nii', bytes: encodeNifti({ dims: [4, 4, 2], data: sampleHU(4, 4, 2), datatype: 'int16' }) }]);
  refusal(() => predictionInputs(mixed), [mixed], 'holds both NIfTI volumes (scan.nii) and DICOM files (IM0', 'in a folder of its own');
  const niftis = folder('niftis', [{ name: 'scan.nii', bytes: encodeNifti({ dims: [4, 4, 2], data: sampleHU(4, 4, 2), datatype: 'int16' }) }]);
  refusal(() => predictionInputs(niftis, undefined, '2.25.1'), [niftis], '--series picks a series among the DICOM files');
  const nothing = folder('nothing', [{ name: 'a.txt', bytes: new Uint8Array(3) }]);
  refusal(() => predictionInputs(nothing), [nothing], 'holds no .nii or .nii.gz file and no DICOM file');
});

/** A data folder: a series (with its slices in the series' order) and labels on the series' grid. */
function dicomDataFolder(f: ReturnType<typeof dicomFixture>, labels: Float32Array, maskSpace: 'series' | 'none'): { dir: string; volume: Volume } {
  const dir = folder('data', f.files.map((x) => ({ name: `dicom/${x.name}`, bytes: x.bytes })));
  const { volume } = volumeFromDicom(asInputs(f.files), 'x');
  const order = voxelCorrespondence({ dims: f.dims, affine: f.affine }, { dims: volume.dims, affine: voxelToWorld(volume.space)! })!;
  const cut = Float32Array.from(f.sourceIndex, (i) => labels[i]);
  writeNifti(join(dir, 'tr_mask.nii.gz'), { dims: volume.dims, data: Uint8Array.from(order, (i) => cut[i]), datatype: 'uint8', space: maskSpace === 'series' ? volume.space : undefined });
  return { dir, volume };
}

node('train / evaluate data: a DICOM series with its labels loads as the same dataset as its NIfTI with them', async () => {
  const f = dicomFixture(shippedImage, { slices: [40, 52], step: 8, tilt: 10, shuffle: 2 });
  const { dir } = dicomDataFolder(f, shippedMask.data, 'series');
  assert.equal(findDataFiles(dir), { image: dir, mask: join(dir, 'tr_mask.nii.gz'), dicom: true });
  const fromDicom = await loadDataset(dir);
  const niftiDir = fresh('nifti-data');
  mkdirSync(niftiDir);
  writeNifti(join(niftiDir, 'tr_im.nii.gz'), f.nifti);
  copyFileSync(join(dir, 'tr_mask.nii.gz'), join(niftiDir, 'tr_mask.nii.gz'));
  const fromNifti = await loadDataset(niftiDir);
  assert.is(fromDicom.count, 12);
  assert.equal([fromDicom.width, fromDicom.height], [64, 64]);
  assert.is(fromDicom.intensity, 'hu');
  assert.equal(fromDicom.images.map((s) => Array.from(s)), fromNifti.images.map((s) => Array.from(s)));
  assert.equal(fromDicom.masks.map((s) => Array.from(s)), fromNifti.masks.map((s) => Array.from(s)));
  assert.equal(fromDicom.lesionPixels, fromNifti.lesionPixels);
  assert.ok(fromDicom.lesionPixels.some((p) => p > 0));
});

node('labels in another voxel order of the same grid are put on the series\' grid; on another grid, refused', async () => {
  // A left-handed sform (the shipped slices stored head to foot): its series is read with the slices reversed; the labels as stored (NIfTI order, with that sform).
  const f = dicomFixture(headToFoot, { slices: [40, 46], step: 8, geometry: 'source' });
  const dir = folder('data', f.files.map((x) => ({ name: `dicom/${x.name}`, bytes: x.bytes })));
  const cut = Uint8Array.from(f.sourceIndex, (i) => shippedMask.data[i]);
  writeNifti(join(dir, 'tr_mask.nii.gz'), { dims: f.dims, data: cut, datatype: 'uint8', space: f.nifti.space });
  const ds = await loadDataset(dir);
  const plane = 64 * 64;
  for (let k = 0; k < 6; k++) assert.equal(Array.from(ds.masks[k]), Array.from(cut.subarray((5 - k) * plane, (6 - k) * plane)).map((v) => (v > 0.5 ? 1 : 0)), `slice ${k} has the labels of NIfTI slice ${5 - k}`);
  // The same labels placed 3 mm away: not the series' voxels.
  const shifted = { ...f.nifti.space, srow: f.nifti.space.srow.map((r, i) => [...r.slice(0, 3), r[3] + (i === 0 ? 3.3 : 0)]) as typeof f.nifti.space.srow, sformCode: 1 };
  writeNifti(join(dir, 'tr_mask.nii.gz'), { dims: f.dims, data: cut, datatype: 'uint8', space: shifted });
  let error: unknown = null;
  await loadDataset(dir).catch((e: unknown) => (error = e));
  assert.instance(error, DataError);
  assert.match((error as Error).message, /tr_mask\.nii\.gz does not lie on the grid of the DICOM series/);
  assert.not.match((error as Error).message, /\n/);
  // maskOnSeriesGrid leaves a mask without orientation as stored.
  const series = readVolume(dir);
  const bare: Volume = { ...series, source: 'bare.nii', space: { ...series.space, qformCode: 0, sformCode: 0 } };
  assert.is(maskOnSeriesGrid(series, bare), bare);
});

node('a lung mask in another voxel order of the series\' grid is put on it for predict and for evaluate --data; on another grid, refused', async () => {
  // As above: the series is read with the slices reversed; the lung mask is stored in the NIfTI's order (dcm2niix's).
  const f = dicomFixture(headToFoot, { slices: [40, 46], step: 8, geometry: 'source' });
  const dir = folder('lung-data', f.files.map((x) => ({ name: `dicom/${x.name}`, bytes: x.bytes })));
  const plane = 64 * 64;
  const labels = Uint8Array.from(f.sourceIndex, (i) => shippedMask.data[i]);
  writeNifti(join(dir, 'tr_mask.nii.gz'), { dims: f.dims, data: labels, datatype: 'uint8', space: f.nifti.space });
  // The "lungs": a block of rows, different in each slice, so that a reversal shows.
  const lungs = Uint8Array.from({ length: 64 * 64 * 6 }, (_, t) => (Math.floor((t % plane) / 64) < 10 + 5 * Math.floor(t / plane) ? 1 : 0));
  const lungFile = join(dir, 'lungs.nii.gz');
  writeNifti(lungFile, { dims: f.dims, data: lungs, datatype: 'uint8', space: f.nifti.space });
  const inSeriesOrder = (k: number) => Array.from(lungs.subarray((5 - k) * plane, (6 - k) * plane));

  // predict: the lung mask against the series read as a volume, and predictFile's region.
  const { volume } = readScan(join(dir, 'dicom'));
  const lung = readLungMask(lungFile, volume);
  for (let k = 0; k < 6; k++) assert.equal(Array.from(lung.voxels.subarray(k * plane, (k + 1) * plane)), inSeriesOrder(k), `predict: slice ${k} is the lung mask's slice ${5 - k}`);
  const [todo] = predictionInputs(join(dir, 'dicom'), lungFile);
  const none = { size: 64, predict: async (images: Float32Array[]) => images.map((im) => new Float32Array(im.length)) };
  const model = defaultTrainConfig('cpu', DEFAULT_DATA_DIR).model;
  const r = await predictFile(none, todo, { out: join(dir, 'out'), checkpoint: 'none.safetensors', epoch: 1, model, tta: false, pictures: 'none' });
  assert.equal(r.report.region, lung.voxels, 'predictFile scores within the reordered lung mask');

  // evaluate --data DIR --lung-mask: the same reordering as the labels get.
  const ds = await loadDataset(dir);
  const slices = readLungMask(lungFile, datasetImage(ds)).slices;
  for (let k = 0; k < 6; k++) assert.equal(Array.from(slices[k]), inSeriesOrder(k), `evaluate --data: slice ${k} is the lung mask's slice ${5 - k}`);
  for (let k = 0; k < 6; k++) assert.equal(Array.from(ds.masks[k]), Array.from(labels.subarray((5 - k) * plane, (6 - k) * plane)).map((v) => (v > 0.5 ? 1 : 0)), `the labels alike, slice ${k}`);

  // The lung mask placed 3.3 mm away: refused, one line, for both.
  const shifted = { ...f.nifti.space, srow: f.nifti.space.srow.map((row, i) => [...row.slice(0, 3), row[3] + (i === 0 ? 3.3 : 0)]) as typeof f.nifti.space.srow, sformCode: 1 };
  const away = join(dir, 'lungs-away.nii.gz');
  writeNifti(away, { dims: f.dims, data: lungs, datatype: 'uint8', space: shifted });
  refusal(() => readLungMask(away, volume), [away, join(dir, 'dicom')], 'does not lie on the grid of', 'Resample the lung mask');
  refusal(() => readLungMask(away, datasetImage(ds)), [away], 'does not lie on the grid of', 'Resample the lung mask');
});

node('a data folder holding two series is refused with how to pick one for training', async () => {
  const f = dicomFixture(shippedImage, { slices: [40, 46], step: 16, secondSeries: true });
  const { dir } = dicomDataFolder({ ...f, files: f.files.filter((x) => x.name.startsWith('IM')) }, shippedMask.data, 'series');
  for (const x of f.files.filter((y) => y.name.startsWith('S2-'))) writeFileSync(join(dir, 'dicom', x.name), x.bytes);
  let error: unknown = null;
  await loadDataset(dir).catch((e: unknown) => (error = e));
  assert.instance(error, DataError);
  assert.match((error as Error).message, /holds 2 DICOM series: .*A data folder holds one series: move the others into folders of their own\.$/);
});

node.run();

// ---------------------------------------------------------------------------------------------
const page = suite('the web page\'s DICOM input (no browser: the functions the page calls)');

page('dropped files are known as DICOM by their prefix, whatever their names; zips by theirs', () => {
  const files = dicomSeries(spec);
  assert.is(classifyFile('IM0001', files[0].bytes), 'dicom');
  assert.is(classifyFile('1.2.840.113619.2.55.3', files[0].bytes), 'dicom');
  assert.is(classifyFile('slice.dcm', new Uint8Array(10)), 'dicom');
  const zip = zipSync({ a: files[0].bytes });
  assert.is(classifyFile('series.zip', zip), 'zip');
  assert.is(classifyFile('download', zip), 'zip');
  assert.ok(isDicom(files[0].bytes) && !isDicom(zip));
});

page('several dropped files, or a zip, or both: one series, the same volume as predict reads', () => {
  const files = dicomSeries(spec).map((f) => ({ name: `${f.name}.dcm`, bytes: f.bytes }));
  const loose = volumeFromDicomFiles([...files].reverse(), 'dicom-series');
  assert.equal(Array.from(loose.volume.data), Array.from(spec.hu));
  assert.is(loose.intensity, 'hu');
  assert.match(loose.series, /^DICOM CT series 2\.25\.90210 "hostile corpus": 3 slices of 16 x 12, voxel 0\.7 x 0\.7 x 2\.5 mm, Explicit VR Little Endian$/);
  const zip = { name: 'case.zip', bytes: zipSync(Object.fromEntries(files.map((f) => [`case/${f.name}`, f.bytes]))) };
  assertSameVolume(volumeFromDicomFiles([zip], dicomScanName([zip])).volume, loose.volume, 1e-12);
  assert.is(dicomScanName([zip]), 'case.zip');
  assert.is(stem(dicomScanName([zip])), 'case');
  assert.is(dicomScanName(files), 'dicom-series');
  const split = volumeFromDicomFiles([files[0], { name: 'rest.zip', bytes: zipSync({ b: files[1].bytes, c: files[2].bytes }) }], 'dicom-series');
  assertSameVolume(split.volume, loose.volume, 1e-12);
});

page('several series dropped: listed, and the page says to drop one', () => {
  const a = dicomSeries(spec);
  const b = dicomSeries({ ...spec, seriesUid: '2.25.5', description: 'other', fileName: (k) => `O${k}` });
  const message = refusal(() => volumeFromDicomFiles([...a, ...b], 'dicom-series'), ['dicom-series'], 'holds 2 DICOM series', PICK_SERIES_ON_PAGE);
  assert.not.match(message, /--series/);
  refusal(() => volumeFromDicomFiles([{ name: 'x.zip', bytes: new Uint8Array([0x50, 0x4b, 3, 4, 1, 2, 3]) }], 'x.zip'), ['x.zip'], 'cannot be unzipped');
});

page.run();

// ---------------------------------------------------------------------------------------------
const script = suite('scripts/make-dicom-series.ts');

script('writes a series from the shipped volume, checks it voxel for voxel, and the labels for a data folder', async () => {
  const out = fresh('made');
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'scripts/make-dicom-series.ts'), out, '--slices', '40:46', '--step', '16', '--tilt', '15', '--shuffle', '4', '--with-mask'], { cwd: pkg, encoding: 'utf8', timeout: 120_000 });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /^6 files in .*dicom .*DICOM CT series .*: 6 slices of 32 x 32, voxel 12 x 12 x 5 mm, Explicit VR Little Endian$/m);
  assert.match(r.stdout, /read back voxel for voxel equal to .*volume\.nii\.gz \(6144 voxels; same voxel order; affines/);
  assert.is(readdirSync(join(out, 'dicom')).length, 6);
  const ds = await loadDataset(out);
  assert.is(ds.count, 6);
  assertSameVolume(readVolume(join(out, 'dicom')), readVolume(join(out, 'volume.nii.gz')));
  const again = spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'scripts/make-dicom-series.ts'), out], { cwd: pkg, encoding: 'utf8', timeout: 120_000 });
  assert.is(again.status, 1);
  assert.match(again.stderr, /^error: .* is not empty: give a new or empty folder\n$/);
  const help = spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'scripts/make-dicom-series.ts'), '--help'], { cwd: pkg, encoding: 'utf8' });
  assert.is(help.status, 0);
  assert.match(help.stdout, /--second-series/);
});

script('the NIfTI made beside a series has the series\' geometry in both its sform and its qform', () => {
  const f = dicomFixture(shippedImage, { slices: [0, 3], step: 32, tilt: 40 });
  const nifti = parseNifti(encodeNifti(f.nifti), 'x.nii');
  assert.ok(affineDifference(voxelToWorld(nifti.space)!, f.affine) < 1e-4);
  assert.ok(affineDifference(voxelToWorld({ ...nifti.space, sformCode: 0 })!, f.affine) < 1e-4);
  assert.ok(affineDifference(voxelToWorld(spaceFromAffine(f.affine))!, f.affine) < 1e-12);
});

script.run();
