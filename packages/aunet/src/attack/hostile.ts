// Node-only: a corpus of malformed NIfTI files, built from small valid volumes and broken byte by
// byte, to check that the loaders (and the commands on top of them) either read a file correctly
// or stop with one line naming it. Also the file makers the fuzzer (fuzz-mutations.ts) starts
// from: a NIfTI-2 writer, a byte-order swap and sample volumes. The header layout is
// data/nifti-layout.ts's.

import { gzipSync } from 'node:zlib';
import { encodeNifti, type NiftiDatatype } from '../data/nifti';
import {
  datatypeByCode, datatypeByName, headerLayout, NIFTI1_HEADER as N1, NIFTI1_NUMERIC_FIELDS, NIFTI2_HEADER as N2, NIFTI2_MAGIC,
  NIFTI2_NUMERIC_FIELDS, writeVoxels,
} from '../data/nifti-layout';

/** A NIfTI-2 single file (little-endian, voxels at 544), the counterpart of encodeNifti. */
export function encodeNifti2(image: { dims: readonly number[]; data: ArrayLike<number>; datatype: NiftiDatatype; sclSlope?: number; sclInter?: number }): Uint8Array {
  const info = datatypeByName(image.datatype);
  if (!info) throw new RangeError(`encodeNifti2: unsupported datatype ${image.datatype}`);
  const { code, bytes: size } = info;
  const count = image.dims.reduce((a, b) => a * b, 1);
  if (count !== image.data.length) throw new RangeError(`encodeNifti2: dims ${image.dims.join(' x ')} need ${count} values, got ${image.data.length}`);
  const out = new Uint8Array(N2.dataAt + count * size);
  const view = new DataView(out.buffer);
  view.setInt32(N2.sizeofHdr, N2.headerBytes, true);
  out.set(NIFTI2_MAGIC, N2.magic);
  view.setInt16(N2.datatype, code, true);
  view.setInt16(N2.bitpix, size * 8, true);
  view.setBigInt64(N2.dim, BigInt(image.dims.length), true);
  for (let i = 1; i <= 7; i++) view.setBigInt64(N2.dim + 8 * i, BigInt(image.dims[i - 1] ?? 1), true);
  for (let i = 0; i < 8; i++) view.setFloat64(N2.pixdim + 8 * i, 1, true);
  view.setBigInt64(N2.voxOffset, BigInt(N2.dataAt), true);
  view.setFloat64(N2.sclSlope, image.sclSlope ?? 0, true);
  view.setFloat64(N2.sclInter, image.sclInter ?? 0, true);
  for (let r = 0; r < 3; r++) view.setFloat64(N2.srow + 8 * (4 * r + r), 1, true);
  writeVoxels(view, N2.dataAt, image.data, image.datatype, true);
  return out;
}

/**
 * The same file in big-endian byte order: every numeric header field and every voxel swapped,
 * as a big-endian machine writes it. The input
 * must be a valid little-endian NIfTI-1 or -2 file with voxels right after the header.
 */
export function toBigEndian(bytes: Uint8Array): Uint8Array {
  const layout = headerLayout(bytes);
  if (!layout || !layout.le) throw new RangeError('toBigEndian: not a little-endian NIfTI file');
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  const v2 = layout.version === 2;
  const datatype = view.getInt16(v2 ? N2.datatype : N1.datatype, true);
  const size = datatypeByCode(datatype)?.bytes;
  if (!size) throw new RangeError(`toBigEndian: datatype ${datatype} is not one of the loader's`);
  const offset = v2 ? Number(view.getBigInt64(N2.voxOffset, true)) : view.getFloat32(N1.voxOffset, true);
  for (const [at, n] of v2 ? NIFTI2_NUMERIC_FIELDS : NIFTI1_NUMERIC_FIELDS) out.subarray(at, at + n).reverse();
  if (size > 1) for (let p = offset; p + size <= out.length; p += size) out.subarray(p, p + size).reverse();
  return out;
}

/** A copy of `bytes` changed by `edit` (given a little-endian DataView of the copy). */
export function edited(bytes: Uint8Array, edit: (view: DataView, out: Uint8Array) => void): Uint8Array {
  const out = new Uint8Array(bytes);
  edit(new DataView(out.buffer), out);
  return out;
}

/**
 * Stored int16 values of a small CT-like volume in Hounsfield units: air (-1000) around an
 * ellipse of soft tissue (40) holding two lungs (-850) with a ground-glass patch (-550).
 */
export function sampleHU(nx: number, ny: number, nz: number): number[] {
  return overVoxels(nx, ny, nz, (u, v, k, x, y) => {
    let hu = -1000;
    if (u * u + v * v < 0.8) hu = 40;
    if ((u + 0.4) ** 2 + v * v < 0.12 || (u - 0.4) ** 2 + v * v < 0.12) hu = -850;
    if ((u + 0.4) ** 2 + (v - 0.1) ** 2 < 0.03 + 0.01 * k) hu = -550;
    return hu + ((x * 7 + y * 13 + k * 3) % 11); // a little texture
  });
}

/** Labels of a small mask: 1 (ground glass) in the patch of {@link sampleHU}, a 2 beside it. */
export function sampleLabels(nx: number, ny: number, nz: number): number[] {
  return overVoxels(nx, ny, nz, (u, v, k) => ((u + 0.4) ** 2 + (v - 0.1) ** 2 < 0.03 + 0.01 * k ? 1 : (u - 0.4) ** 2 + v * v < 0.02 ? 2 : 0));
}

/** `f` of every voxel (x fastest), given its centre in -1..1 (u across, v down) and its slice k. */
function overVoxels(nx: number, ny: number, nz: number, f: (u: number, v: number, k: number, x: number, y: number) => number): number[] {
  const out: number[] = [];
  for (let k = 0; k < nz; k++)
    for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) out.push(f((2 * x + 1) / nx - 1, (2 * y + 1) / ny - 1, k, x, y));
  return out;
}

export interface HostileFile {
  /** File name, with .nii or .nii.gz. */
  name: string;
  /** What is wrong with it, and what the loader should do and why. */
  what: string;
  bytes: Uint8Array;
  /** 'ok': loads and normalises correctly; 'error': a one-line DataError naming the file. */
  expect: 'ok' | 'error';
  /** How the commands use it: an image (normalised to 0..1) or a label mask. */
  role: 'image' | 'mask';
  /** For 'ok' files: the dims and real voxel values (slope and intercept applied) the loader must return. */
  values?: { dims: [number, number, number]; data: Float32Array };
  /** For 'error' files: a fragment the message must hold besides the file name. */
  says?: string;
}

/** Dims of the corpus's volumes: 16 columns, 12 rows, 3 slices. */
export const CORPUS_DIMS: [number, number, number] = [16, 12, 3];

/**
 * The hostile corpus: each case from a small valid volume ({@link CORPUS_DIMS}, int16 HU or
 * uint8 labels), then broken byte-wise. Built in memory, the same every time.
 */
export function hostileCorpus(): HostileFile[] {
  const [nx, ny, nz] = CORPUS_DIMS;
  const n = nx * ny * nz;
  const hu = sampleHU(nx, ny, nz);
  const labels = sampleLabels(nx, ny, nz);
  const image = encodeNifti({ dims: CORPUS_DIMS, data: hu, datatype: 'int16' });
  const mask = encodeNifti({ dims: CORPUS_DIMS, data: labels, datatype: 'uint8' });
  const image2 = encodeNifti2({ dims: CORPUS_DIMS, data: hu, datatype: 'int16' });
  const values = { dims: CORPUS_DIMS, data: Float32Array.from(hu) };
  const gz = gzipSync(image);
  const floatImage = (poison: number) => {
    const data = Float32Array.from(hu);
    data[5] = poison;
    data[n - 7] = poison;
    return encodeNifti({ dims: CORPUS_DIMS, data, datatype: 'float32' });
  };
  const extension = (edit: (view: DataView, out: Uint8Array) => void) => {
    // The image with a 32-byte extension area between header and voxels (vox_offset 384).
    const out = new Uint8Array(image.length + 32);
    out.set(image.subarray(0, N1.dataAt));
    out.set(image.subarray(N1.dataAt), N1.dataAt + 32);
    const view = new DataView(out.buffer);
    view.setFloat32(N1.voxOffset, N1.dataAt + 32, true);
    out[N1.extension] = 1;
    edit(view, out);
    return out;
  };
  const error = (name: string, what: string, bytes: Uint8Array, says?: string, role: 'image' | 'mask' = 'image'): HostileFile =>
    ({ name, what, bytes, expect: 'error', role, ...(says && { says }) });
  const ok = (name: string, what: string, bytes: Uint8Array, v = values, role: 'image' | 'mask' = 'image'): HostileFile =>
    ({ name, what, bytes, expect: 'ok', role, values: v });

  return [
    ok('valid.nii', 'control: the untouched 16 x 12 x 3 int16 HU volume every other case starts from', image),
    ok('valid.nii.gz', 'control: the same, gzipped', gz),
    ok('valid-mask.nii', 'control: its uint8 label mask (labels 0-2)', mask, { dims: CORPUS_DIMS, data: Float32Array.from(labels) }, 'mask'),
    ok('valid-nifti2.nii', 'control: the volume as NIfTI-2 (540-byte header, int64 dims, voxels at 544)', image2),

    // Truncation.
    error('empty.nii', 'a file of 0 bytes (an interrupted copy)', new Uint8Array(0), 'shorter than a NIfTI header'),
    error('truncated-header.nii', 'cut after 200 of the 348 header bytes', image.slice(0, 200), 'shorter than a NIfTI header'),
    error('truncated-header-nifti2.nii', 'a NIfTI-2 file cut after 400 of its 540 header bytes (long enough for a NIfTI-1 header, not a NIfTI-2 one)', image2.slice(0, 400), 'NIfTI-2 header'),
    error('header-only.nii', 'the 352 bytes of header and extension flag, no voxels', image.slice(0, N1.dataAt), 'truncated'),
    error('truncated-data.nii', 'cut half-way through the voxels', image.slice(0, N1.dataAt + n), 'truncated'),
    error('truncated-data-1-byte.nii', 'the last byte of the voxels missing', image.slice(0, image.length - 1), 'truncated'),
    error('truncated.nii.gz', 'the gzip stream cut in half (no deflate end, no trailer)', gz.slice(0, gz.length >> 1), 'gzip'),
    error('truncated-trailer.nii.gz', 'the gzip stream complete but its 8-byte trailer (CRC, length) cut to 3 bytes', gz.slice(0, gz.length - 5), 'gzip'),

    // Not NIfTI, or the wrong kind.
    error('wrong-magic.nii', 'magic "xyz\\0" instead of "n+1\\0" at byte 344', edited(image, (_, b) => b.set([0x78, 0x79, 0x7a, 0], N1.magic)), 'magic'),
    error('magic-ni1.nii', 'magic "ni1": the header of a .hdr/.img pair, whose voxels are in another file', edited(image, (_, b) => b.set([0x6e, 0x69, 0x31, 0], N1.magic)), '.hdr/.img'),
    error('sizeof-hdr-wrong.nii', 'sizeof_hdr 349 instead of 348 (in neither byte order a NIfTI-1 size)', edited(image, (v) => v.setInt32(N1.sizeofHdr, 349, true)), 'header'),
    error('sizeof-hdr-540.nii', 'NIfTI-1 magic but sizeof_hdr 540 (NIfTI-2\'s): header and magic disagree', edited(image, (v) => v.setInt32(N1.sizeofHdr, 540, true)), 'header'),
    error('random-bytes.nii', '1000 bytes of noise', noise(1000, 7), 'not a NIfTI file'),
    error('text.nii', 'a text file renamed .nii', new TextEncoder().encode('this is not an image\n'.repeat(30)), 'not a NIfTI file'),

    // Byte order.
    ok('big-endian.nii', 'the volume written big-endian (every header number and voxel byte-swapped; sizeof_hdr reads 348 only big-endian): NIfTI allows either order, and the loader (as nifti-reader-js) reads both, so it must give the same values', toBigEndian(image)),
    ok('big-endian.nii.gz', 'the big-endian file gzipped', gzipSync(toBigEndian(image))),
    ok('big-endian-nifti2.nii', 'the NIfTI-2 volume written big-endian', toBigEndian(image2)),
    ok('big-endian-mask.nii', 'the uint8 mask written big-endian (header swapped; 1-byte voxels have no order)', toBigEndian(mask), { dims: CORPUS_DIMS, data: Float32Array.from(labels) }, 'mask'),
    error('mixed-endian.nii', 'sizeof_hdr swapped to big-endian but every other field left little-endian (a half-converted file): read big-endian, datatype 4 becomes 1024 (int64) and dim[0] 768, so it is refused', edited(image, (_, b) => b.subarray(0, 4).reverse()), 'not supported'),

    // Dimensions.
    error('dim-zero.nii', 'dim[2] (rows) = 0', edited(image, (v) => v.setInt16(N1.dim + 4, 0, true)), 'invalid dimensions'),
    error('dim-negative.nii', 'dim[1] (columns) = -16', edited(image, (v) => v.setInt16(N1.dim + 2, -16, true)), 'invalid dimensions'),
    error('rank-zero.nii', 'dim[0] (the number of dimensions) = 0', edited(image, (v) => v.setInt16(N1.dim, 0, true)), 'invalid dimensions'),
    error('rank-eight.nii', 'dim[0] = 8 (NIfTI allows 1 to 7)', edited(image, (v) => v.setInt16(N1.dim, 8, true)), 'invalid dimensions'),
    error('absurd-dims.nii', 'dims 16384 x 16384 x 4096 = 2^40 int16 voxels (2 TiB) in a 1.5 kB file: refused from the header, before any allocation', edited(image, (v) => [16384, 16384, 4096].forEach((d, i) => v.setInt16(N1.dim + 2 + 2 * i, d, true))), 'truncated'),
    error('max-dims.nii', 'dims 32767 x 32767 x 32767 (the int16 maximum in every used dim)', edited(image, (v) => [32767, 32767, 32767].forEach((d, i) => v.setInt16(N1.dim + 2 + 2 * i, d, true))), 'truncated'),
    error('absurd-dims-nifti2.nii', 'NIfTI-2 dims 2^40 x 1 x 1: int64 dims allow it, the 1.5 kB file does not hold it', edited(image2, (v) => [2 ** 40, 1, 1].forEach((d, i) => v.setBigInt64(N2.dim + 8 + 8 * i, BigInt(d), true))), 'truncated'),
    error('huge-dims-nifti2.nii', 'NIfTI-2 dims 2^62 x 2^62 x 2^62: the voxel count overflows any integer', edited(image2, (v) => [1, 2, 3].forEach((i) => v.setBigInt64(N2.dim + 8 * i, 2n ** 62n, true))), 'truncated'),
    error('negative-dims-nifti2.nii', 'NIfTI-2 dim[3] = -1 (int64)', edited(image2, (v) => v.setBigInt64(N2.dim + 24, -1n, true)), 'invalid dimensions'),
    ok('4d-singleton.nii', 'a 4-D header (dim[0] = 4) whose 4th dimension is 1: one 3-D volume, as FSL and SPM write single volumes', edited(image, (v) => { v.setInt16(N1.dim, 4, true); v.setInt16(N1.dim + 8, 1, true); })),
    ok('7d-singleton.nii', 'dim[0] = 7 with dims 4 to 7 all 1: still one 3-D volume', edited(image, (v) => { v.setInt16(N1.dim, 7, true); for (let i = 4; i <= 7; i++) v.setInt16(N1.dim + 2 * i, 1, true); })),
    error('4d-two-volumes.nii', 'a 4-D series of 2 volumes of 16 x 12 x 3 (a time series or two phases): which one to segment is not ours to guess', fourD(hu), 'only 2-D images and 3-D stacks'),
    ok('2d-slice.nii', 'a 2-D file (dim[0] = 2), one 16 x 12 slice: read as a stack of one slice (predict segments it; training refuses a dataset of one slice as too few for a split)', encodeNifti({ dims: [nx, ny], data: hu.slice(0, nx * ny), datatype: 'int16' }), { dims: [nx, ny, 1], data: Float32Array.from(hu.slice(0, nx * ny)) }),
    ok('unused-dims-garbage.nii', 'dim[0] = 3 with dim[4..7] = 0, -5, 32767, 9: dims past dim[0] are unused (the standard says so; writers leave junk there)', edited(image, (v) => [0, -5, 32767, 9].forEach((d, i) => v.setInt16(N1.dim + 8 + 2 * i, d, true)))),
    ok('nifti2-wide.nii', 'NIfTI-2 with 40000 columns (past NIfTI-1\'s int16 limit), 1 row, 1 slice: legal, and read', encodeNifti2({ dims: [40000, 1, 1], data: Array.from({ length: 40000 }, (_, i) => (i % 200) - 1000), datatype: 'int16' }), { dims: [40000, 1, 1], data: Float32Array.from({ length: 40000 }, (_, i) => (i % 200) - 1000) }),

    // Datatypes.
    error('datatype-rgb24.nii', 'datatype 128 (RGB, 3 bytes a voxel): a colour picture, not a CT', edited(image, (v) => { v.setInt16(N1.datatype, 128, true); v.setInt16(N1.bitpix, 24, true); }), 'rgb24'),
    error('datatype-complex64.nii', 'datatype 32 (complex64)', edited(image, (v) => { v.setInt16(N1.datatype, 32, true); v.setInt16(N1.bitpix, 64, true); }), 'complex64'),
    error('datatype-int64.nii', 'datatype 1024 (int64): not read (values past 2^53 would lose precision silently)', edited(image, (v) => { v.setInt16(N1.datatype, 1024, true); v.setInt16(N1.bitpix, 64, true); }), 'int64'),
    error('datatype-binary.nii', 'datatype 1 (1-bit binary)', edited(image, (v) => { v.setInt16(N1.datatype, 1, true); v.setInt16(N1.bitpix, 1, true); }), 'binary'),
    error('datatype-unknown.nii', 'datatype 999 (no such code)', edited(image, (v) => v.setInt16(N1.datatype, 999, true)), 'datatype 999'),
    error('datatype-zero.nii', 'datatype 0 (DT_UNKNOWN)', edited(image, (v) => v.setInt16(N1.datatype, 0, true)), 'datatype 0'),
    ok('bitpix-wrong.nii', 'bitpix 8 for an int16 datatype: the datatype code decides the voxel size, as in nibabel (which only warns); the values read right', edited(image, (v) => v.setInt16(N1.bitpix, 8, true))),

    // Where the voxels are.
    error('vox-offset-past-end.nii', 'vox_offset 1e6 in a 1.5 kB file', edited(image, (v) => v.setFloat32(N1.voxOffset, 1e6, true)), 'vox_offset'),
    error('vox-offset-in-header.nii', 'vox_offset 100: the voxels would start inside the header', edited(image, (v) => v.setFloat32(N1.voxOffset, 100, true)), 'vox_offset'),
    error('vox-offset-fraction.nii', 'vox_offset 352.5: not a byte position', edited(image, (v) => v.setFloat32(N1.voxOffset, 352.5, true)), 'vox_offset'),
    error('vox-offset-nan.nii', 'vox_offset NaN', edited(image, (v) => v.setFloat32(N1.voxOffset, NaN, true)), 'vox_offset'),
    error('vox-offset-past-end-nifti2.nii', 'NIfTI-2 vox_offset 2^50', edited(image2, (v) => v.setBigInt64(N2.voxOffset, 2n ** 50n, true)), 'vox_offset'),
    ok('extension-valid.nii', 'a valid 32-byte header extension (esize 32, ecode 6 = comment) before the voxels at 384: extensions hold metadata the loader does not use', extension((v) => { v.setInt32(N1.dataAt, 32, true); v.setInt32(N1.dataAt + 4, 6, true); })),
    ok('extension-loop.nii', 'an extension of size -16 at 352 and a "size" of 16 at 336: nifti-reader-js\'s extension walk went back and forth between them for ever (a hang, growing memory). The loader reads no extension, so the file (header and voxels intact) loads', extension((v) => { v.setInt32(N1.dataAt, -16, true); v.setInt32(N1.intentName + 8, 16, true); })),
    ok('extension-bad-size.nii', 'an extension of size 7 (the standard requires a multiple of 16): ignored, as every extension is', extension((v) => v.setInt32(N1.dataAt, 7, true))),
    ok('trailing-bytes.nii', '100 bytes of junk after the last voxel: ignored, as every reader does', concat(image, noise(100, 3))),

    // gzip.
    error('corrupt.nii.gz', '16 bytes in the middle of the deflate stream overwritten (fflate, parseNifti\'s own gunzip, inflated it to wrong voxels without a word until the CRC was checked)', edited(gz, (_, b) => b.set(noise(16, 11), gz.length >> 1)), 'gzip'),
    error('gzip-bad-crc.nii.gz', 'intact deflate stream, wrong CRC-32 in the trailer (node:zlib checks it; parseNifti now checks it after fflate too)', edited(gz, (v) => v.setUint32(gz.length - 8, v.getUint32(gz.length - 8, true) ^ 1, true)), 'gzip'),
    error('gzip-bad-length.nii.gz', 'intact deflate stream, ISIZE (uncompressed length) in the trailer 0xffffffff', edited(gz, (v) => v.setUint32(gz.length - 4, 0xffffffff, true)), 'gzip'),
    error('gzip-bad-method.nii.gz', 'gzip magic, then compression method 7 (only 8, deflate, exists)', edited(gz, (_, b) => (b[2] = 7)), 'gzip'),
    error('gzip-magic-only.nii.gz', 'the two gzip magic bytes, then noise', concat(new Uint8Array([0x1f, 0x8b]), noise(500, 5)), 'gzip'),
    error('gzip-trailing-garbage.nii.gz', 'a valid gzip member followed by 3 junk bytes: node:zlib refuses what gzip(1) only warns about', concat(gz, new Uint8Array([1, 2, 3])), 'gzip'),
    error('gzip-empty.nii.gz', 'a valid gzip stream of 0 bytes', gzipSync(new Uint8Array(0)), 'shorter than a NIfTI header'),
    ok('double-gzip.nii.gz', 'gzipped twice: after node:zlib (readVolume) the bytes are gzip again, which parseNifti gunzips itself, so the commands read it. parseNifti alone (the browser path) takes off one layer and then says it is not NIfTI', gzipSync(gz)),

    // Values.
    error('nan-voxels.nii', 'a float32 image with 2 NaN voxels', floatImage(NaN), 'NaN or infinite'),
    error('inf-voxels.nii', 'a float32 image with 2 +Infinity voxels', floatImage(Infinity), 'NaN or infinite'),
    error('neg-inf-voxels.nii', 'a float32 image with 2 -Infinity voxels', floatImage(-Infinity), 'NaN or infinite'),
    error('scl-slope-overflow.nii', 'scl_slope 1e38: the stored values are finite but times the slope overflow float32 to infinity', edited(image, (v) => v.setFloat32(N1.sclSlope, 1e38, true)), 'scl_slope'),
    ok('scl-slope-nan.nii', 'scl_slope NaN: no usable scaling, so none is applied (as nibabel does); the stored values are the values', edited(image, (v) => { v.setFloat32(N1.sclSlope, NaN, true); v.setFloat32(N1.sclInter, 5, true); })),
    ok('scl-inter-hu.nii', 'uint16 stored HU + 1024 with scl_slope 1, scl_inter -1024 (as scanners write): the loader applies them and gets HU', encodeNifti({ dims: CORPUS_DIMS, data: hu.map((h) => h + 1024), datatype: 'uint16', sclSlope: 1, sclInter: -1024 })),
    error('values-out-of-range.nii', 'uint16 HU + 1024 without the intercept (0..1064): neither HU, 8-bit nor 0..1, so the loader will not guess', encodeNifti({ dims: CORPUS_DIMS, data: hu.map((h) => h + 1024), datatype: 'uint16' }), 'values range'),
    error('nan-mask.nii', 'a float32 label mask with a NaN', encodeNifti({ dims: CORPUS_DIMS, data: labels.map((l, i) => (i === 40 ? NaN : l)), datatype: 'float32' }), 'NaN', 'mask'),
    error('negative-mask.nii', 'an int16 label mask with a -1', encodeNifti({ dims: CORPUS_DIMS, data: labels.map((l, i) => (i === 40 ? -1 : l)), datatype: 'int16' }), 'negative', 'mask'),
  ];

  function fourD(stored: number[]): Uint8Array {
    return encodeNifti({ dims: [nx, ny, nz, 2], data: [...stored, ...stored], datatype: 'int16' });
  }
}

/** Seeded noise bytes (a fixed linear congruential sequence). */
function noise(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let s = seed >>> 0;
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
