// Where things are in a NIfTI file: the offsets of the NIfTI-1 and NIfTI-2 header fields, the
// table of voxel datatypes, the byte order a header is written in, and the typed reading and
// writing of voxels in either byte order. The one home of this knowledge: the loader and writer
// (nifti.ts), the web page and the tools that break files (attack/) all take it from here.
// On bytes only (browser-safe). The offsets are those of nifti1.h and nifti2.h.

/** Byte offsets of NIfTI-1 header fields (a 348-byte header; in a single file without
 *  extensions the voxels start at 352, after 4 extension-flag bytes). */
export const NIFTI1_HEADER = {
  sizeofHdr: 0, // int32, 348
  regular: 38, // char: 'r', expected by old Analyze readers
  dimInfo: 39, // uint8: freq_dim, phase_dim, slice_dim (bits 4-5)
  dim: 40, // int16[8]: dim[0] = rank, dim[1..7] sizes
  datatype: 70, // int16
  bitpix: 72, // int16
  pixdim: 76, // float32[8]
  voxOffset: 108, // float32
  sclSlope: 112, // float32
  sclInter: 116, // float32
  xyztUnits: 123, // uint8
  descrip: 148, // char[80]
  qformCode: 252, // int16
  sformCode: 254, // int16
  quatern: 256, // float32[3]
  qoffset: 268, // float32[3]
  srow: 280, // float32[12]
  intentName: 328, // char[16]
  magic: 344, // char[4], "n+1\0"
  extension: 348, // char[4]: extension[0] != 0 says extensions follow
  headerBytes: 348,
  dataAt: 352,
} as const;

/** Byte offsets of NIfTI-2 header fields (a 540-byte header; voxels at 544 without extensions). */
export const NIFTI2_HEADER = {
  sizeofHdr: 0, // int32, 540
  magic: 4, // char[8], "n+2\0\r\n\032\n"
  datatype: 12, // int16
  bitpix: 14, // int16
  dim: 16, // int64[8]
  pixdim: 104, // float64[8]
  voxOffset: 168, // int64
  sclSlope: 176, // float64
  sclInter: 184, // float64
  qformCode: 344, // int32
  sformCode: 348, // int32
  quatern: 352, // float64[3]
  qoffset: 376, // float64[3]
  srow: 400, // float64[12]
  xyztUnits: 500, // int32
  dimInfo: 524, // uint8
  extension: 540, // char[4]
  headerBytes: 540,
  dataAt: 544,
} as const;

/** The magic of a NIfTI-1 single file, at {@link NIFTI1_HEADER}.magic. */
export const NIFTI1_MAGIC: readonly number[] = [0x6e, 0x2b, 0x31, 0]; // "n+1\0"
/** The magic of a NIfTI-2 single file, at {@link NIFTI2_HEADER}.magic. */
export const NIFTI2_MAGIC: readonly number[] = [0x6e, 0x2b, 0x32, 0, 0x0d, 0x0a, 0x1a, 0x0a]; // "n+2\0\r\n\032\n"

/** The largest size along one axis a NIfTI-1 header holds (its dims are int16). */
export const NIFTI1_MAX_DIM = 32767;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
/** `count` numeric fields of `bytes` each, one after another from `at`, as [offset, bytes]. */
const fields = (at: number, count: number, bytes: number) => range(count).map((i): [number, number] => [at + bytes * i, bytes]);

/** Every multi-byte numeric field of the NIfTI-1 header as [offset, bytes]: what a change of
 *  byte order swaps (the character and uint8 fields stay as they are). */
export const NIFTI1_NUMERIC_FIELDS: readonly (readonly [number, number])[] = [
  [0, 4], [32, 4], [36, 2], ...fields(40, 8, 2), [56, 4], [60, 4], [64, 4], [68, 2], [70, 2], [72, 2], [74, 2],
  ...fields(76, 8, 4), [108, 4], [112, 4], [116, 4], [120, 2], [124, 4], [128, 4], [132, 4], [136, 4], [140, 4],
  [144, 4], [252, 2], [254, 2], ...fields(256, 6, 4), ...fields(280, 12, 4),
];

/** Every multi-byte numeric field of the NIfTI-2 header as [offset, bytes]. */
export const NIFTI2_NUMERIC_FIELDS: readonly (readonly [number, number])[] = [
  [0, 4], [12, 2], [14, 2], ...fields(16, 8, 8), [80, 8], [88, 8], [96, 8], ...fields(104, 8, 8), [168, 8],
  ...fields(176, 6, 8), [224, 8], [232, 8], [344, 4], [348, 4], ...fields(352, 6, 8), ...fields(400, 12, 8),
  [496, 4], [500, 4], [504, 4],
];

/** The NIfTI version (by sizeof_hdr: 348 or 540) and the byte order a header is written in. */
export interface HeaderLayout {
  version: 1 | 2;
  /** Little-endian. */
  le: boolean;
}

/** Version and byte order by sizeof_hdr, which reads 348 or 540 in the file's order only; null
 *  when it reads as neither in either order (not NIfTI, or a damaged header). */
export function headerLayout(bytes: ArrayBuffer | Uint8Array): HeaderLayout | null {
  if (bytes.byteLength < 4) return null;
  const view = bytes instanceof Uint8Array ? new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength) : new DataView(bytes);
  for (const le of [true, false]) {
    const size = view.getInt32(NIFTI1_HEADER.sizeofHdr, le);
    if (size === NIFTI1_HEADER.headerBytes) return { version: 1, le };
    if (size === NIFTI2_HEADER.headerBytes) return { version: 2, le };
  }
  return null;
}

/** Whether the bytes could be a NIfTI single file by their start: as long as a NIfTI-1 header,
 *  with an "n" where the magic of either version begins (a guess for a file without a name;
 *  the parser decides). */
export function mayBeNiftiHeader(bytes: Uint8Array): boolean {
  return bytes.length >= NIFTI1_HEADER.headerBytes && (bytes[NIFTI1_HEADER.magic] === NIFTI1_MAGIC[0] || bytes[NIFTI2_HEADER.magic] === NIFTI2_MAGIC[0]);
}

// --------------------------------------------------------------------------------------------
// Datatypes.

/** Voxel types read and written; values are converted to float32 on reading. */
export type NiftiDatatype = 'uint8' | 'int8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';

export interface NiftiDatatypeInfo {
  name: NiftiDatatype;
  /** The header's datatype code. */
  code: number;
  /** Bytes a voxel (bitpix / 8). */
  bytes: number;
  /** Integer range, for checking values before writing; null for floats. */
  range: readonly [number, number] | null;
}

/** The voxel types read and written, in the order error messages list them. */
export const NIFTI_DATATYPES: readonly NiftiDatatypeInfo[] = [
  { name: 'uint8', code: 2, bytes: 1, range: [0, 255] },
  { name: 'int8', code: 256, bytes: 1, range: [-128, 127] },
  { name: 'int16', code: 4, bytes: 2, range: [-32768, 32767] },
  { name: 'uint16', code: 512, bytes: 2, range: [0, 65535] },
  { name: 'int32', code: 8, bytes: 4, range: [-2147483648, 2147483647] },
  { name: 'uint32', code: 768, bytes: 4, range: [0, 4294967295] },
  { name: 'float32', code: 16, bytes: 4, range: null },
  { name: 'float64', code: 64, bytes: 8, range: null },
];

/** Names of the other datatype codes of the NIfTI-1 standard, which are not read (for messages). */
export const UNREAD_DATATYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'unknown', 1: 'binary', 32: 'complex64', 128: 'rgb24', 1024: 'int64', 1280: 'uint64', 1536: 'float128',
  1792: 'complex128', 2048: 'complex256', 2304: 'rgba32',
};

/** Every datatype code of the NIfTI-1 standard, ascending: the 8 read and the others. */
export const ALL_DATATYPE_CODES: readonly number[] = [...NIFTI_DATATYPES.map((d) => d.code), ...Object.keys(UNREAD_DATATYPE_NAMES).map(Number)].sort((a, b) => a - b);

/** The read datatype of this name; undefined for any other string. */
export function datatypeByName(name: string): NiftiDatatypeInfo | undefined {
  return NIFTI_DATATYPES.find((d) => d.name === name);
}

/** The read datatype of this header code; undefined for the codes not read. */
export function datatypeByCode(code: number): NiftiDatatypeInfo | undefined {
  return NIFTI_DATATYPES.find((d) => d.code === code);
}

// --------------------------------------------------------------------------------------------
// Voxels.

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * `count` stored values of `type` from byte `offset` of `buffer`, in the given byte order, as
 * float32; a typed-array conversion when the byte order is the host's. The caller has checked
 * that they are in the buffer.
 */
export function readVoxels(buffer: ArrayBuffer, offset: number, count: number, type: NiftiDatatype, le: boolean): Float32Array {
  const bytes = datatypeByName(type)!.bytes;
  const out = new Float32Array(count);
  if (le === HOST_LITTLE_ENDIAN) {
    // slice() copies to a new buffer, so the typed view is aligned whatever the offset is.
    out.set(typedView(buffer.slice(offset, offset + count * bytes), type));
    return out;
  }
  const get = voxelGetter(new DataView(buffer, offset, count * bytes), type, le);
  for (let i = 0; i < count; i++) out[i] = get(i * bytes);
  return out;
}

/** Stored values written one after another from byte `at` of `view`, in the given byte order. */
export function writeVoxels(view: DataView, at: number, data: ArrayLike<number>, type: NiftiDatatype, le: boolean): void {
  const bytes = datatypeByName(type)!.bytes;
  const set = voxelSetter(view, type, le);
  for (let i = 0; i < data.length; i++) set(at + i * bytes, data[i]);
}

/** A writer of one stored value of `type` at a byte offset of `view`, in the given byte order
 *  (values out of the type's range wrap, as DataView's setters do). */
export function voxelSetter(view: DataView, type: NiftiDatatype, le: boolean): (at: number, value: number) => void {
  switch (type) {
    case 'uint8': return (at, v) => view.setUint8(at, v);
    case 'int8': return (at, v) => view.setInt8(at, v);
    case 'int16': return (at, v) => view.setInt16(at, v, le);
    case 'uint16': return (at, v) => view.setUint16(at, v, le);
    case 'int32': return (at, v) => view.setInt32(at, v, le);
    case 'uint32': return (at, v) => view.setUint32(at, v, le);
    case 'float32': return (at, v) => view.setFloat32(at, v, le);
    case 'float64': return (at, v) => view.setFloat64(at, v, le);
  }
}

/** A reader of one stored value of `type` at a byte offset of `view`, in the given byte order. */
function voxelGetter(view: DataView, type: NiftiDatatype, le: boolean): (at: number) => number {
  switch (type) {
    case 'uint8': return (at) => view.getUint8(at);
    case 'int8': return (at) => view.getInt8(at);
    case 'int16': return (at) => view.getInt16(at, le);
    case 'uint16': return (at) => view.getUint16(at, le);
    case 'int32': return (at) => view.getInt32(at, le);
    case 'uint32': return (at) => view.getUint32(at, le);
    case 'float32': return (at) => view.getFloat32(at, le);
    case 'float64': return (at) => view.getFloat64(at, le);
  }
}

function typedView(raw: ArrayBuffer, type: NiftiDatatype): ArrayLike<number> {
  switch (type) {
    case 'uint8': return new Uint8Array(raw);
    case 'int8': return new Int8Array(raw);
    case 'int16': return new Int16Array(raw);
    case 'uint16': return new Uint16Array(raw);
    case 'int32': return new Int32Array(raw);
    case 'uint32': return new Uint32Array(raw);
    case 'float32': return new Float32Array(raw);
    case 'float64': return new Float64Array(raw);
  }
}
