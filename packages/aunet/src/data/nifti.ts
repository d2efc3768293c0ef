// NIfTI-1/2 reading (through nifti-reader-js) and NIfTI-1 writing, on bytes only: no file
// system, so a web page can use it on a dropped file. Where the fields and voxels are, and the
// datatypes, are in nifti-layout.ts.
import { decompress, isNIFTI, isNIFTI1, readHeader, type NIFTI1, type NIFTI2 } from 'nifti-reader-js';
import { DataError } from './errors';
import {
  datatypeByCode, datatypeByName, headerLayout, NIFTI1_HEADER, NIFTI1_MAGIC, NIFTI1_MAX_DIM, NIFTI2_HEADER, NIFTI_DATATYPES,
  readVoxels, UNREAD_DATATYPE_NAMES, voxelSetter, type NiftiDatatype,
} from './nifti-layout';

export type { NiftiDatatype } from './nifti-layout';

/**
 * The header fields that place the voxel grid in space, kept as stored so that a volume
 * written with them (a predicted mask) lines up with its source in any viewer.
 */
export interface NiftiSpace {
  /** pixdim[0..7]; pixdim[0] is qfac (-1 or 1), pixdim[1..3] the voxel size. */
  pixdim: number[];
  xyztUnits: number;
  qformCode: number;
  /** quatern_b, quatern_c, quatern_d. */
  quatern: [number, number, number];
  /** qoffset_x, qoffset_y, qoffset_z. */
  qoffset: [number, number, number];
  sformCode: number;
  /** srow_x, srow_y, srow_z: the rows of the sform affine, 4 values each. */
  srow: [number[], number[], number[]];
  /** dim_info: freq_dim, phase_dim and slice_dim (bits 4-5, 1-based; 0 unknown). */
  dimInfo: number;
}

/** A 2-D or 3-D NIfTI volume as float32. */
export interface Volume {
  /** File name or other label of where the bytes came from, for messages. */
  source: string;
  /** [nx, ny, nz]: columns, rows, slices (nz = 1 for a 2-D file). */
  dims: [number, number, number];
  /** The header's dim[0]: 2 for a file holding one 2-D slice, 3 for a stack (4 to 7 when the
   *  extra dimensions are 1). Outputs on this grid are written with the file's own rank (up to
   *  3; see storedDims in prediction-report.ts). Absent (volumes made in memory): 3. */
  rank?: number;
  /** Real values (slope and intercept applied), x fastest as stored: pixel (row y, column x)
   *  of slice k is at `x + nx * (y + ny * k)`. */
  data: Float32Array;
  /** The axis (0 x, 1 y, 2 z) the slices run along: the header's slice_dim when it names one
   *  and the file is 3-D, else the third. See {@link toSliceStack}. */
  sliceAxis: 0 | 1 | 2;
  /** Stored voxel type. */
  datatype: NiftiDatatype;
  niftiVersion: 1 | 2;
  /** The scl_slope/scl_inter applied to the stored values, or null when none was. */
  scaling: { slope: number; inter: number } | null;
  space: NiftiSpace;
  description: string;
}

/** What {@link encodeNifti} writes. */
export interface NiftiImage {
  /** [nx, ny] or [nx, ny, nz]. */
  dims: readonly number[];
  /** Stored values, x fastest; integers for the integer datatypes. */
  data: ArrayLike<number>;
  datatype: NiftiDatatype;
  /** scl_slope and scl_inter to write; when the slope is absent, 0 is written (no scaling). */
  sclSlope?: number;
  sclInter?: number;
  /** Spatial header fields, usually `space` of the volume this one was computed from (same
   *  grid); without it the file has unit voxels and no orientation. */
  space?: NiftiSpace;
  description?: string;
}

const NIFTI1_HEADER_BYTES = NIFTI1_HEADER.headerBytes;
const NIFTI2_HEADER_BYTES = NIFTI2_HEADER.headerBytes;

/** Whether the bytes start with both gzip magic bytes (nifti-reader-js's isCompressed accepts
 *  either one alone, so random bytes would be reported as broken gzip instead of "not NIfTI"). */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** An ArrayBuffer holding exactly these bytes (a copy only when the view is partial). */
function exactBuffer(bytes: ArrayBuffer | Uint8Array): ArrayBuffer {
  if (bytes instanceof ArrayBuffer) return bytes;
  if (bytes.buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) {
    return bytes.buffer;
  }
  return new Uint8Array(bytes).buffer; // a copy (Node's Buffer.slice would not copy)
}

/**
 * Reads a NIfTI-1 or NIfTI-2 single file (`.nii`, or `.nii.gz` gzipped) of 1 to 3 dimensions
 * (4-D and more when the extra dimensions are 1). Throws {@link DataError}, naming `source`,
 * when the bytes are not NIfTI, broken gzip, shorter than the header promises, of an
 * unsupported voxel type or of more dimensions.
 */
export function parseNifti(bytes: ArrayBuffer | Uint8Array, source: string): Volume {
  let buffer = exactBuffer(bytes);
  if (isGzip(new Uint8Array(buffer, 0, Math.min(2, buffer.byteLength)))) buffer = gunzip(buffer, source);
  const notNifti = (why: string) =>
    new DataError(`${source} is not a NIfTI file (${why}). Pass a NIfTI-1 or NIfTI-2 volume (.nii or .nii.gz).`, source);
  if (buffer.byteLength < NIFTI1_HEADER_BYTES) {
    throw notNifti(`${buffer.byteLength} bytes, shorter than a NIfTI header (${NIFTI1_HEADER_BYTES} bytes); a cut-short copy reads the same`);
  }
  if (!isNIFTI(buffer)) {
    if (isNIFTI(buffer, true)) {
      throw new DataError(
        `${source} is the header of a .hdr/.img pair, which is not supported: convert it to a single .nii or .nii.gz file.`,
        source,
      );
    }
    throw notNifti('no NIfTI magic "n+1" or "n+2" in its header');
  }
  const niftiVersion = isNIFTI1(buffer) ? 1 : 2;
  const headerBytes = niftiVersion === 1 ? NIFTI1_HEADER_BYTES : NIFTI2_HEADER_BYTES;
  // A NIfTI-2 header is 540 bytes: a shorter file passes the 348-byte check above, and
  // nifti-reader-js would then read past its end.
  if (buffer.byteLength < headerBytes) {
    throw notNifti(`${buffer.byteLength} bytes, shorter than a NIfTI-2 header (${NIFTI2_HEADER_BYTES} bytes); a cut-short copy reads the same`);
  }
  // sizeof_hdr tells the byte order; one that matches the magic's version in neither order is a
  // damaged header (said here, rather than through the library's "does not appear to be NIFTI").
  if (headerLayout(buffer)?.version !== niftiVersion) {
    const sizeofHdr = new DataView(buffer).getInt32(NIFTI1_HEADER.sizeofHdr, true);
    throw notNifti(`its magic says NIfTI-${niftiVersion}, whose header size is ${headerBytes}, but its sizeof_hdr (byte 0) reads ${sizeofHdr}: the header is damaged`);
  }
  let header: NIFTI1 | NIFTI2;
  try {
    // The header bytes only: header extensions (between the header and vox_offset) hold metadata
    // this loader does not use, and nifti-reader-js's walk through them never ends on a negative
    // extension size (found by the hostile corpus: extension-loop.nii hung the commands).
    header = readHeader(buffer.slice(0, headerBytes));
  } catch (err) {
    throw notNifti(`its header cannot be read: ${(err as Error).message}`);
  }

  const info = datatypeByCode(header.datatypeCode);
  if (!info) {
    const name = UNREAD_DATATYPE_NAMES[header.datatypeCode] ?? 'unknown';
    throw new DataError(
      `${source}: voxel datatype ${header.datatypeCode} (${name}) is not supported; supported: ` +
        `${NIFTI_DATATYPES.map((d) => d.name).join(', ')}. Convert the volume to one of these (e.g. float32).`,
      source,
    );
  }

  const dims = volumeDims(header.dims, source);
  const voxels = dims[0] * dims[1] * dims[2];
  const offset = Number(header.vox_offset);
  if (!Number.isInteger(offset) || offset < headerBytes) {
    throw new DataError(
      `${source}: the header's vox_offset (${header.vox_offset}) does not point past the header: the file is damaged ` +
        'or not a single-file NIfTI. Re-export it as .nii or .nii.gz.',
      source,
    );
  }
  if (offset > buffer.byteLength) {
    throw new DataError(
      `${source}: the header's vox_offset (${offset}) points past the end of the file (${buffer.byteLength} bytes): the ` +
        'header is damaged or the file was cut short. Get it again.',
      source,
    );
  }
  // Checked here, before reading: nifti-reader-js's readImage would return fewer bytes silently
  // (and it multiplies dim[3..5] even when dim[0] says they are unused, so we slice ourselves).
  // It also keeps absurd dims (2^40 voxels in a 1 kB file) from reaching any allocation: the
  // voxels must be in the file before a Float32Array is made for them.
  const needed = voxels * info.bytes;
  const available = buffer.byteLength - offset;
  if (available < needed) {
    throw new DataError(
      `${source} is truncated or its header is damaged: the header describes ${dims.join(' x ')} ${info.name} voxels, ` +
        `${needed} bytes from byte ${offset}, but the file holds only ${available} bytes of voxel data. A file cut short ` +
        '(an interrupted download or copy?) reads like this: get it again.',
      source,
    );
  }

  const data = readVoxels(buffer, offset, voxels, info.name, header.littleEndian);
  const slope = Number(header.scl_slope);
  const inter = Number(header.scl_inter);
  // NIfTI: slope 0 means "no scaling"; (1, 0) is the identity. Non-finite values are treated
  // as absent, as nibabel does.
  const scaled = Number.isFinite(slope) && Number.isFinite(inter) && slope !== 0 && !(slope === 1 && inter === 0);
  if (scaled) for (let i = 0; i < data.length; i++) data[i] = data[i] * slope + inter;

  const space = readSpace(buffer, header, niftiVersion);
  return {
    source,
    dims,
    rank: Number(header.dims[0]),
    data,
    sliceAxis: sliceAxisOf(space.dimInfo, dims),
    datatype: info.name,
    niftiVersion,
    scaling: scaled ? { slope, inter } : null,
    space,
    description: header.description.replace(/\0+$/, ''),
  };
}

/**
 * Decompresses with fflate (through nifti-reader-js), which checks neither the CRC nor the
 * length: it allocates the size written in the last 4 bytes, which in a cut-short file are any
 * bytes. So that size is checked first against what deflate can reach (at most 1032 bytes per
 * byte), and the CRC-32 and length of what came out are checked after: without that check a
 * .nii.gz whose deflate data was damaged loaded as a wrong image without a word (found by the
 * hostile corpus: corrupt.nii.gz). Node code gunzips with node:zlib, which checks both, first.
 */
function gunzip(buffer: ArrayBuffer, source: string): ArrayBuffer {
  const broken = (why: string) =>
    new DataError(
      `${source}: the gzip data is corrupt or truncated (${why}). Copy or download the file again, or pass an uncompressed .nii.`,
      source,
    );
  const statedSize = buffer.byteLength >= 18 ? new DataView(buffer).getUint32(buffer.byteLength - 4, true) : 0;
  if (statedSize < NIFTI1_HEADER_BYTES || statedSize > 1032 * buffer.byteLength) {
    throw broken(`its trailer states ${statedSize} uncompressed bytes`);
  }
  let out: ArrayBuffer;
  try {
    out = decompress(buffer) as ArrayBuffer;
  } catch (err) {
    throw broken((err as Error).message);
  }
  if (out.byteLength % 2 ** 32 !== statedSize) throw broken(`${out.byteLength} bytes came out, its trailer states ${statedSize}`);
  const statedCrc = new DataView(buffer).getUint32(buffer.byteLength - 8, true);
  if (crc32(new Uint8Array(out)) !== statedCrc) throw broken('the CRC-32 of the data does not match its trailer');
  return out;
}

let crcTable: Uint32Array | null = null;

/** CRC-32 as gzip computes it (IEEE polynomial, reflected), table-driven. */
function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** [nx, ny, nz] from the header's dim[], refusing anything that is not one image or one stack. */
function volumeDims(dim: number[], source: string): [number, number, number] {
  const rank = dim[0];
  const used = dim.slice(1, 1 + rank);
  if (!(rank >= 1 && rank <= 7) || used.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new DataError(
      `${source}: invalid dimensions in the header (dim = [${dim.join(', ')}]): the file is damaged. Get it again.`,
      source,
    );
  }
  const extra = used.slice(3);
  if (extra.some((d) => d > 1)) {
    throw new DataError(
      `${source} has shape ${used.join(' x ')}: only 2-D images and 3-D stacks of slices are supported (dimensions ` +
        '4 to 7 must be 1). Split the volume into 3-D files first.',
      source,
    );
  }
  return [used[0], used[1] ?? 1, used[2] ?? 1];
}

/** The spatial fields as stored. nifti-reader-js folds them into one `affine` (choosing qform
 *  or sform), which loses the other, so srow is read from the bytes here. */
function readSpace(buffer: ArrayBuffer, header: NIFTI1 | NIFTI2, version: 1 | 2): NiftiSpace {
  const view = new DataView(buffer);
  const le = header.littleEndian;
  const srowAt = (row: number, col: number) =>
    version === 1
      ? view.getFloat32(NIFTI1_HEADER.srow + (row * 4 + col) * 4, le)
      : view.getFloat64(NIFTI2_HEADER.srow + (row * 4 + col) * 8, le);
  const srowRow = (row: number) => [0, 1, 2, 3].map((col) => srowAt(row, col));
  return {
    pixdim: header.pixDims.slice(0, 8).map(Number),
    xyztUnits: Number(header.xyzt_units),
    qformCode: Number(header.qform_code),
    quatern: [header.quatern_b, header.quatern_c, header.quatern_d],
    qoffset: [header.qoffset_x, header.qoffset_y, header.qoffset_z],
    sformCode: Number(header.sform_code),
    srow: [srowRow(0), srowRow(1), srowRow(2)],
    dimInfo: Number(header.dim_info) & 0xff,
  };
}

/** slice_dim (bits 4-5 of dim_info, 1-based) as an axis index; the third axis when it is unset
 *  (most CT files) or the file holds one image. */
function sliceAxisOf(dimInfo: number, dims: readonly number[]): 0 | 1 | 2 {
  const sliceDim = (dimInfo >> 4) & 3;
  return sliceDim === 0 || dims[2] === 1 ? 2 : ((sliceDim - 1) as 0 | 1 | 2);
}

/**
 * The voxels of a volume of `dims` (x fastest) as a stack of slices along `axis`, slice slowest:
 * the same array for axis 2; for axis 0, slices over x with y across and z down ([ny, nz, nx]);
 * for axis 1, slices over y with x across and z down ([nx, nz, ny]). `dims` of the result are
 * [width, height, count]. {@link fromSliceStack} undoes it.
 */
export function toSliceStack<T extends Float32Array | Uint8Array>(data: T, dims: readonly number[], axis: 0 | 1 | 2): { data: T; dims: [number, number, number] } {
  const [nx, ny, nz] = dims;
  if (axis === 2) return { data, dims: [nx, ny, nz] };
  const out = new (data.constructor as new (n: number) => T)(data.length);
  forEachStackIndex(dims, axis, (fileIndex, stackIndex) => (out[stackIndex] = data[fileIndex]));
  return { data: out, dims: axis === 0 ? [ny, nz, nx] : [nx, nz, ny] };
}

/** Per-voxel values of a slice stack (see {@link toSliceStack}) back in the file's layout. */
export function fromSliceStack<T extends Float32Array | Uint8Array>(stack: T, dims: readonly number[], axis: 0 | 1 | 2): T {
  if (axis === 2) return stack;
  const out = new (stack.constructor as new (n: number) => T)(stack.length);
  forEachStackIndex(dims, axis, (fileIndex, stackIndex) => (out[fileIndex] = stack[stackIndex]));
  return out;
}

function forEachStackIndex(dims: readonly number[], axis: 0 | 1, visit: (fileIndex: number, stackIndex: number) => void): void {
  const [nx, ny, nz] = dims;
  for (let z = 0, i = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) visit(i, axis === 0 ? y + ny * (z + nz * x) : x + nx * (z + nz * y));
    }
  }
}

/** Spatial fields of a file written without a source: unit voxels, no orientation. */
export function defaultSpace(): NiftiSpace {
  return {
    pixdim: [1, 1, 1, 1, 1, 1, 1, 1],
    xyztUnits: 0,
    qformCode: 0,
    quatern: [0, 0, 0],
    qoffset: [0, 0, 0],
    sformCode: 0,
    srow: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]],
    dimInfo: 0,
  };
}

/**
 * A NIfTI-1 single file (`.nii` bytes, little-endian, header then voxels at byte 352).
 * Throws RangeError when dims and data length disagree or a value does not fit the datatype.
 */
export function encodeNifti(image: NiftiImage): Uint8Array {
  const info = datatypeByName(image.datatype);
  if (!info) throw new RangeError(`encodeNifti: unsupported datatype ${image.datatype}`);
  const dims = [...image.dims];
  if (dims.length < 1 || dims.length > 7 || dims.some((d) => !Number.isInteger(d) || d < 1 || d > NIFTI1_MAX_DIM)) {
    throw new RangeError(`encodeNifti: dims must be 1 to 7 integers in 1..${NIFTI1_MAX_DIM}, got [${dims.join(', ')}]`);
  }
  const count = dims.reduce((a, b) => a * b, 1);
  if (image.data.length !== count) {
    throw new RangeError(`encodeNifti: dims ${dims.join(' x ')} need ${count} values, data has ${image.data.length}`);
  }
  const h = NIFTI1_HEADER;
  const voxOffset = h.dataAt; // the header + 4 extension-flag bytes (no extension)
  const bytes = new Uint8Array(voxOffset + count * info.bytes);
  const view = new DataView(bytes.buffer);
  const le = true;
  const space = image.space ?? defaultSpace();

  view.setInt32(h.sizeofHdr, h.headerBytes, le);
  bytes[h.regular] = 'r'.charCodeAt(0); // "regular", expected by old Analyze readers
  bytes[h.dimInfo] = space.dimInfo & 0xff;
  view.setInt16(h.dim, dims.length, le);
  for (let i = 1; i <= 7; i++) view.setInt16(h.dim + 2 * i, dims[i - 1] ?? 1, le);
  view.setInt16(h.datatype, info.code, le);
  view.setInt16(h.bitpix, info.bytes * 8, le);
  for (let i = 0; i < 8; i++) view.setFloat32(h.pixdim + 4 * i, space.pixdim[i] ?? (i === 0 ? 1 : 0), le);
  view.setFloat32(h.voxOffset, voxOffset, le);
  view.setFloat32(h.sclSlope, image.sclSlope ?? 0, le);
  view.setFloat32(h.sclInter, image.sclSlope === undefined ? 0 : image.sclInter ?? 0, le);
  bytes[h.xyztUnits] = space.xyztUnits & 0xff;
  writeAscii(bytes, h.descrip, 80, image.description ?? '');
  view.setInt16(h.qformCode, space.qformCode, le);
  view.setInt16(h.sformCode, space.sformCode, le);
  space.quatern.forEach((q, i) => view.setFloat32(h.quatern + 4 * i, q, le));
  space.qoffset.forEach((q, i) => view.setFloat32(h.qoffset + 4 * i, q, le));
  space.srow.forEach((row, r) => row.forEach((v, c) => view.setFloat32(h.srow + (r * 4 + c) * 4, v, le)));
  bytes.set(NIFTI1_MAGIC, h.magic);

  const set = voxelSetter(view, info.name, le);
  for (let i = 0; i < count; i++) {
    const v = image.data[i];
    if (info.range && !(Number.isInteger(v) && v >= info.range[0] && v <= info.range[1])) {
      throw new RangeError(`encodeNifti: value ${v} at index ${i} is not a ${info.name}`);
    }
    set(voxOffset + i * info.bytes, v);
  }
  return bytes;
}

function writeAscii(bytes: Uint8Array, at: number, size: number, text: string): void {
  // Leaves at least one NUL at the end of the field.
  for (let i = 0; i < Math.min(text.length, size - 1); i++) bytes[at + i] = text.charCodeAt(i) & 0x7f;
}
