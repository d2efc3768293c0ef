// Node-only: the cases of the mutation fuzzer (fuzz.ts runs them). Each case is a small valid
// volume (NIfTI-1 or -2, either byte order, one of the 8 voxel types, gzipped or not) broken by
// random byte flips, truncations, header fields set to extreme values, inserted extensions or
// gzip-level damage; every fourth case is a small DICOM series broken instead (fuzz-dicom.ts).
// Case i of seed s is the same on every machine: `--seed s --case i` replays it.

import { gzipSync } from 'node:zlib';
import { encodeNifti, type NiftiDatatype } from '../data/nifti';
import { ALL_DATATYPE_CODES, datatypeByName, headerLayout, NIFTI1_HEADER as N1, NIFTI2_HEADER as N2, voxelSetter } from '../data/nifti-layout';
import { Random, type FuzzCase } from './fuzz-case';
import { isDicomSlot, makeDicomCase } from './fuzz-dicom';
import { encodeNifti2, sampleHU, sampleLabels, toBigEndian } from './hostile';

export type { FuzzCase, FuzzRole } from './fuzz-case';

// --------------------------------------------------------------------------------------------
// Valid base volumes.

interface Base {
  bytes: Uint8Array;
  describe: string;
  datatype: NiftiDatatype;
  version: 1 | 2;
}

/** Stored values and datatype of a valid image (HU, 8-bit or 0..1) or label mask. */
function baseValues(r: Random, dims: [number, number, number], mask: boolean): { data: number[]; datatype: NiftiDatatype; slope?: number; inter?: number; what: string } {
  const [nx, ny, nz] = dims;
  if (mask) {
    const labels = sampleLabels(nx, ny, nz);
    labels[Math.floor(labels.length / 2)] = 1; // at least one lesion voxel, however small the volume
    const datatype = r.pick(['uint8', 'uint8', 'int16', 'uint16', 'int8', 'int32', 'uint32', 'float32', 'float64'] as const);
    return { data: labels, datatype, what: `${datatype} labels` };
  }
  const hu = sampleHU(nx, ny, nz);
  for (let k = 0; k < nz; k++) hu[k * nx * ny] = -1000; // a corner of air in every slice, as in CT
  const window = (h: number) => Math.min(1, Math.max(0, (h + 1000) / 1400));
  switch (r.int(8)) {
    case 0: return { data: hu, datatype: 'int16', what: 'int16 HU' };
    case 1: return { data: hu, datatype: r.pick(['int32', 'float32', 'float64'] as const), what: 'HU' };
    case 2: return { data: hu.map((h) => h + 1024), datatype: 'uint16', slope: 1, inter: -1024, what: 'uint16 HU + 1024, scl_inter -1024' };
    case 3: return { data: hu.map((h) => Math.max(-128, Math.min(127, Math.round(h / 8)))), datatype: 'int8', slope: 8, inter: 0, what: 'int8 HU / 8, scl_slope 8' };
    case 4: return { data: hu.map((h) => Math.round(255 * window(h))), datatype: 'uint8', what: 'uint8 lung window' };
    case 5: return { data: hu.map((h) => Math.round(255 * window(h))), datatype: r.pick(['uint16', 'uint32', 'int16'] as const), what: '8-bit lung window' };
    case 6: return { data: hu.map(window), datatype: r.pick(['float32', 'float64'] as const), what: '0..1 lung window' };
    default: return { data: hu.map((h) => h * 0.5 - 5), datatype: 'float32', slope: 2, inter: 10, what: 'float32 HU with scl_slope 2, scl_inter 10' };
  }
}

function baseVolume(r: Random, dims: [number, number, number], mask: boolean): Base {
  const v = baseValues(r, dims, mask);
  const [nx, ny, nz] = dims;
  const version = r.chance(0.3) ? 2 : 1;
  // Shapes written as the writers do: 2-D for one slice, sometimes 4-D with a 4th dim of 1.
  const shape = nz === 1 && r.chance(0.5) ? [nx, ny] : r.chance(0.15) ? [nx, ny, nz, 1] : [nx, ny, nz];
  const image = { dims: shape, data: v.data, datatype: v.datatype, sclSlope: v.slope, sclInter: v.inter };
  let bytes = version === 1 ? encodeNifti(image) : encodeNifti2(image);
  const bigEndian = r.chance(0.2);
  if (bigEndian) bytes = toBigEndian(bytes);
  return {
    bytes,
    datatype: v.datatype,
    version,
    describe: `NIfTI-${version} ${bigEndian ? 'big' : 'little'}-endian ${shape.join('x')} ${v.what}`,
  };
}

// --------------------------------------------------------------------------------------------
// Mutations.

type FieldType = 'i16' | 'i32' | 'i64' | 'f32' | 'f64' | 'u8' | 'datatype' | 'voxOffset32' | 'voxOffset64' | 'magic1' | 'magic2';
interface Field { name: string; at: number; type: FieldType }

const N1_FIELDS: Field[] = [
  { name: 'sizeof_hdr', at: N1.sizeofHdr, type: 'i32' },
  ...Array.from({ length: 8 }, (_, i): Field => ({ name: `dim[${i}]`, at: N1.dim + 2 * i, type: 'i16' })),
  ...Array.from({ length: 4 }, (_, i): Field => ({ name: `dim[${i + 1}]`, at: N1.dim + 2 * (i + 1), type: 'i16' })), // sizes twice as often
  { name: 'datatype', at: N1.datatype, type: 'datatype' },
  { name: 'datatype', at: N1.datatype, type: 'datatype' },
  { name: 'bitpix', at: N1.bitpix, type: 'i16' },
  ...Array.from({ length: 4 }, (_, i): Field => ({ name: `pixdim[${i}]`, at: N1.pixdim + 4 * i, type: 'f32' })),
  { name: 'vox_offset', at: N1.voxOffset, type: 'voxOffset32' },
  { name: 'vox_offset', at: N1.voxOffset, type: 'voxOffset32' },
  { name: 'scl_slope', at: N1.sclSlope, type: 'f32' },
  { name: 'scl_inter', at: N1.sclInter, type: 'f32' },
  { name: 'xyzt_units', at: N1.xyztUnits, type: 'u8' },
  { name: 'dim_info', at: N1.dimInfo, type: 'u8' },
  { name: 'qform_code', at: N1.qformCode, type: 'i16' },
  { name: 'sform_code', at: N1.sformCode, type: 'i16' },
  { name: 'quatern_b', at: N1.quatern, type: 'f32' },
  { name: 'srow_x[0]', at: N1.srow, type: 'f32' },
  { name: 'magic', at: N1.magic, type: 'magic1' },
  { name: 'extension[0]', at: N1.extension, type: 'u8' },
];

const N2_FIELDS: Field[] = [
  { name: 'sizeof_hdr', at: N2.sizeofHdr, type: 'i32' },
  { name: 'magic', at: N2.magic, type: 'magic2' },
  { name: 'datatype', at: N2.datatype, type: 'datatype' },
  { name: 'datatype', at: N2.datatype, type: 'datatype' },
  { name: 'bitpix', at: N2.bitpix, type: 'i16' },
  ...Array.from({ length: 8 }, (_, i): Field => ({ name: `dim[${i}]`, at: N2.dim + 8 * i, type: 'i64' })),
  ...Array.from({ length: 4 }, (_, i): Field => ({ name: `dim[${i + 1}]`, at: N2.dim + 8 * (i + 1), type: 'i64' })),
  ...Array.from({ length: 4 }, (_, i): Field => ({ name: `pixdim[${i}]`, at: N2.pixdim + 8 * i, type: 'f64' })),
  { name: 'vox_offset', at: N2.voxOffset, type: 'voxOffset64' },
  { name: 'vox_offset', at: N2.voxOffset, type: 'voxOffset64' },
  { name: 'scl_slope', at: N2.sclSlope, type: 'f64' },
  { name: 'scl_inter', at: N2.sclInter, type: 'f64' },
  { name: 'qform_code', at: N2.qformCode, type: 'i32' },
  { name: 'sform_code', at: N2.sformCode, type: 'i32' },
  { name: 'xyzt_units', at: N2.xyztUnits, type: 'i32' },
  { name: 'dim_info', at: N2.dimInfo, type: 'u8' },
  { name: 'srow_x[0]', at: N2.srow, type: 'f64' },
  { name: 'extension[0]', at: N2.extension, type: 'u8' },
];

/** Sets a header field to an extreme, boundary, neighbouring or random value, in the file's
 *  byte order (little-endian when sizeof_hdr no longer says). */
function setField(r: Random, bytes: Uint8Array, version: 1 | 2): { bytes: Uint8Array; what: string } {
  const field = r.pick(version === 1 ? N1_FIELDS : N2_FIELDS);
  const size = { i16: 2, i32: 4, i64: 8, f32: 4, f64: 8, u8: 1, datatype: 2, voxOffset32: 4, voxOffset64: 8, magic1: 4, magic2: 8 }[field.type];
  if (field.at + size > bytes.length) return { bytes, what: `${field.name}: past the end, unchanged` };
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  const le = headerLayout(out)?.le ?? true;
  const length = out.length;
  const headerBytes = version === 1 ? N1.headerBytes : N2.headerBytes;
  let value: number | bigint | string;
  switch (field.type) {
    case 'u8':
      value = r.pick([0, 1, 2, 3, 8, 255, r.int(256)]);
      view.setUint8(field.at, value);
      break;
    case 'i16': {
      const old = view.getInt16(field.at, le);
      value = r.pick([0, 1, -1, 2, 3, 4, 5, 7, 8, 16, 255, 256, 4096, 32767, -32768, -2, old + 1, old - 1, old * 2, r.int(65536) - 32768]);
      view.setInt16(field.at, value, le);
      break;
    }
    case 'datatype':
      value = r.chance(0.9) ? r.pick(ALL_DATATYPE_CODES) : r.int(65536) - 32768;
      view.setInt16(field.at, value, le);
      break;
    case 'i32': {
      const old = view.getInt32(field.at, le);
      // Among them the two header sizes, as they are and byte-swapped (0x5c010000, 0x1c020000).
      value = r.pick([0, 1, -1, N1.headerBytes, N2.headerBytes, 0x5c010000, 0x1c020000, 2 ** 31 - 1, -(2 ** 31), old + 1, old - 1, r.int(2 ** 32) - 2 ** 31]);
      view.setInt32(field.at, value, le);
      break;
    }
    case 'i64': {
      const old = view.getBigInt64(field.at, le);
      value = r.pick([0n, 1n, -1n, 2n, 3n, 4n, 8n, 7n, 2n ** 15n, 2n ** 31n, 2n ** 32n + 1n, 2n ** 40n, 2n ** 53n + 1n, 2n ** 62n, -(2n ** 63n), 2n ** 63n - 1n, old + 1n, old - 1n, old * 2n, BigInt(r.int(2 ** 32))]);
      view.setBigInt64(field.at, BigInt.asIntN(64, value), le);
      break;
    }
    case 'f32':
    case 'f64': {
      const old = field.type === 'f32' ? view.getFloat32(field.at, le) : view.getFloat64(field.at, le);
      value = r.pick([0, -0, 1, -1, 0.5, NaN, Infinity, -Infinity, 1e38, -1e38, 3.4e38, 1e-40, 1e-300, 1e300, 352.5, 1e10, old + 1, old * 2, -old, (r.next() - 0.5) * 2e6]);
      if (field.type === 'f32') view.setFloat32(field.at, value, le);
      else view.setFloat64(field.at, value, le);
      break;
    }
    case 'voxOffset32':
    case 'voxOffset64': {
      const offsets = [0, 1, headerBytes - 1, headerBytes, headerBytes + 3, headerBytes + 4, headerBytes + 5, headerBytes + 20, N2.headerBytes, N2.dataAt, length - 1, length, length + 1, 1e6, 2 ** 31, -N1.dataAt];
      if (field.type === 'voxOffset32') {
        const offset = r.pick([...offsets, NaN, Infinity, 352.5, 3e38]);
        view.setFloat32(field.at, offset, le);
        value = offset;
      } else {
        const offset = r.chance(0.1) ? 2n ** 62n : BigInt(r.pick(offsets));
        view.setBigInt64(field.at, offset, le);
        value = offset;
      }
      break;
    }
    case 'magic1':
    case 'magic2': {
      const magic = r.pick(['n+1\0', 'n+2\0', 'ni1\0', 'ni2\0', '\0\0\0\0', 'n+1 ', 'N+1\0']);
      if (r.chance(0.2)) {
        out.set(r.bytes(size), field.at);
        value = 'random bytes';
      } else {
        for (let i = 0; i < 4; i++) out[field.at + i] = magic.charCodeAt(i);
        value = JSON.stringify(magic);
      }
      break;
    }
  }
  return { bytes: out, what: `${field.name} = ${typeof value === 'bigint' ? `${value}n` : Object.is(value, -0) ? '-0' : value}${le ? '' : ' (big-endian)'}` };
}

function flipBytes(r: Random, bytes: Uint8Array, headerEnd: number): { bytes: Uint8Array; what: string } {
  if (!bytes.length) return { bytes, what: 'flip: empty file, unchanged' };
  const out = new Uint8Array(bytes);
  const n = 1 + r.int(8);
  const at: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = r.chance(0.7) ? r.int(Math.min(out.length, headerEnd)) : r.int(out.length);
    out[p] = r.chance(0.5) ? out[p] ^ (1 << r.int(8)) : r.int(256);
    at.push(p);
  }
  return { bytes: out, what: `bytes changed at ${at.join(', ')}` };
}

function truncate(r: Random, bytes: Uint8Array, headerBytes: number, dataAt: number): { bytes: Uint8Array; what: string } {
  const n = bytes.length;
  const cut = Math.max(0, Math.min(n - 1, r.pick([r.int(n), headerBytes - 1 - r.int(8), headerBytes + r.int(4), dataAt + r.int(Math.max(1, n - dataAt)), n - 1 - r.int(4), r.int(16)])));
  return { bytes: bytes.slice(0, cut), what: `truncated to ${cut} of ${n} bytes` };
}

/** Voxels set to NaN, infinities, the extremes of the type or huge values. */
function pokeVoxels(r: Random, bytes: Uint8Array, base: Base): { bytes: Uint8Array; what: string } {
  const layout = headerLayout(bytes);
  const dataAt = base.version === 1 ? N1.dataAt : N2.dataAt;
  const { bytes: size, range } = datatypeByName(base.datatype)!;
  const count = Math.floor((bytes.length - dataAt) / size);
  if (!layout || count < 1) return { bytes, what: 'poke: no voxels, unchanged' };
  const out = new Uint8Array(bytes);
  // The integer types' extremes; for the floats, the values no image should hold.
  const floatValues = {
    float32: [NaN, Infinity, -Infinity, 3.4e38, -3.4e38, 1e-45], float64: [NaN, Infinity, -Infinity, 1e308, -1e308, 5e-324],
  };
  const v = r.pick(range ?? floatValues[base.datatype as 'float32' | 'float64']);
  const n = 1 + r.int(3);
  const set = voxelSetter(new DataView(out.buffer), base.datatype, layout.le);
  for (let i = 0; i < n; i++) set(dataAt + r.int(count) * size, v);
  return { bytes: out, what: `${n} voxels set to ${v}` };
}

/** An extension area of 16-48 bytes inserted before the voxels (vox_offset moved past it, the
 *  extension flag set), holding sizes the standard allows or not. */
function insertExtension(r: Random, bytes: Uint8Array, version: 1 | 2): { bytes: Uint8Array; what: string } {
  const layout = headerLayout(bytes);
  const dataAt = version === 1 ? N1.dataAt : N2.dataAt;
  if (!layout || bytes.length < dataAt) return { bytes, what: 'extension: no room, unchanged' };
  const extra = 16 * (1 + r.int(3));
  const out = new Uint8Array(bytes.length + extra);
  out.set(bytes.subarray(0, dataAt));
  out.set(bytes.subarray(dataAt), dataAt + extra);
  const view = new DataView(out.buffer);
  if (version === 1) view.setFloat32(N1.voxOffset, dataAt + extra, layout.le);
  else view.setBigInt64(N2.voxOffset, BigInt(dataAt + extra), layout.le);
  out[version === 1 ? N1.extension : N2.extension] = 1;
  const esize = r.pick([-16, -32, 0, 7, 8, 16, 32, extra, extra + 16, 2 ** 31 - 16, r.int(2 ** 32) - 2 ** 31]);
  view.setInt32(dataAt, esize, layout.le);
  view.setInt32(dataAt + 4, r.pick([0, 2, 4, 6, 18, 44, -1]), layout.le);
  // The 4 bytes before the extension (intent_name's end or unused_str) as a second "size": the
  // pair (-16 here, 16 there) made nifti-reader-js loop for ever.
  const before = r.chance(0.3) ? r.pick([16, 32, -16]) : null;
  if (before !== null) view.setInt32(dataAt - 16, before, layout.le);
  return { bytes: out, what: `extension of ${extra} bytes inserted, esize ${esize}${before === null ? '' : `, ${before} at byte ${dataAt - 16}`}` };
}

function deleteBytes(r: Random, bytes: Uint8Array): { bytes: Uint8Array; what: string } {
  if (bytes.length < 2) return { bytes, what: 'delete: too short, unchanged' };
  const at = r.int(bytes.length - 1);
  const n = 1 + r.int(Math.min(8, bytes.length - at - 1));
  const out = new Uint8Array(bytes.length - n);
  out.set(bytes.subarray(0, at));
  out.set(bytes.subarray(at + n), at);
  return { bytes: out, what: `${n} bytes deleted at ${at}` };
}

function append(r: Random, bytes: Uint8Array): { bytes: Uint8Array; what: string } {
  const extra = r.bytes(1 + r.int(64));
  const out = new Uint8Array(bytes.length + extra.length);
  out.set(bytes);
  out.set(extra, bytes.length);
  return { bytes: out, what: `${extra.length} random bytes appended` };
}

/** Damage to the gzip stream itself: flips (in the gzip header, the deflate data or the
 *  trailer), truncation, a wrong length, junk after it, or a second layer of gzip. */
function gzipMutation(r: Random, gz: Uint8Array): { bytes: Uint8Array; what: string } {
  const out = new Uint8Array(gz);
  const view = new DataView(out.buffer);
  switch (r.int(6)) {
    case 0: {
      const at: number[] = [];
      for (let i = 0, n = 1 + r.int(6); i < n; i++) {
        const where = r.int(3);
        const p = where === 0 ? r.int(Math.min(10, out.length)) : where === 1 ? Math.max(0, out.length - 1 - r.int(8)) : r.int(out.length);
        out[p] ^= 1 << r.int(8);
        at.push(p);
      }
      return { bytes: out, what: `gzip: bits flipped at ${at.join(', ')} of ${out.length}` };
    }
    case 1: {
      const cut = r.int(out.length);
      return { bytes: out.slice(0, cut), what: `gzip: truncated to ${cut} of ${out.length} bytes` };
    }
    case 2: {
      const size = r.pick([0, 1, 347, 0xffffffff, 0x7fffffff, r.int(2 ** 32), view.getUint32(out.length - 4, true) + 1]);
      view.setUint32(out.length - 4, size >>> 0, true);
      return { bytes: out, what: `gzip: ISIZE set to ${size >>> 0}` };
    }
    case 3: {
      const junk = r.chance(0.5) ? r.bytes(1 + r.int(32)) : Uint8Array.from([0x1f, 0x8b, 8, 0, ...r.bytes(r.int(20))]);
      const joined = new Uint8Array(out.length + junk.length);
      joined.set(out);
      joined.set(junk, out.length);
      return { bytes: joined, what: `gzip: ${junk.length} junk bytes after the stream${junk[0] === 0x1f ? ' (a broken second member)' : ''}` };
    }
    case 4:
      return { bytes: new Uint8Array(gzipSync(out)), what: 'gzip: gzipped twice' };
    default: {
      view.setUint32(out.length - 8, r.int(2 ** 32), true);
      return { bytes: out, what: 'gzip: CRC-32 replaced' };
    }
  }
}

/**
 * Case `index` of `seed`: a valid volume with 1 to 3 mutations (or only gzip damage), the same
 * every time. `mutate: false` gives the valid volume (for checking that every base loads).
 */
export function makeCase(seed: number, index: number, o: { mutate?: boolean } = {}): FuzzCase {
  if (isDicomSlot(index)) return makeDicomCase(seed, index, o);
  const r = new Random(seed, index);
  const role = r.pick(['image', 'image', 'mask', 'dataset-image', 'dataset-mask'] as const);
  const dims: [number, number, number] = [2 + r.int(23), 2 + r.int(23), 1 + r.int(5)];
  const isMask = role === 'mask' || role === 'dataset-mask';
  const base = baseVolume(r, dims, isMask);
  const gzipped = r.chance(0.5);
  const name = `fuzz-s${seed}-${index}-${isMask ? 'mask' : 'image'}.nii${gzipped ? '.gz' : ''}`;
  let bytes = base.bytes;
  const mutations: string[] = [];
  if (o.mutate !== false) {
    const gzipDamage = gzipped && r.chance(0.35);
    const count = gzipDamage ? r.int(2) : 1 + r.int(3);
    const headerBytes = base.version === 1 ? N1.headerBytes : N2.headerBytes;
    const dataAt = base.version === 1 ? N1.dataAt : N2.dataAt;
    for (let i = 0; i < count; i++) {
      const kind = r.int(100);
      const m =
        kind < 30 ? setField(r, bytes, base.version)
        : kind < 55 ? flipBytes(r, bytes, dataAt + 8)
        : kind < 70 ? truncate(r, bytes, headerBytes, dataAt)
        : kind < 80 ? pokeVoxels(r, bytes, base)
        : kind < 88 ? insertExtension(r, bytes, base.version)
        : kind < 94 ? deleteBytes(r, bytes)
        : append(r, bytes);
      bytes = m.bytes;
      mutations.push(m.what);
    }
    if (gzipped) bytes = new Uint8Array(gzipSync(bytes));
    if (gzipDamage) {
      const m = gzipMutation(r, bytes);
      bytes = m.bytes;
      mutations.push(m.what);
    }
  } else if (gzipped) bytes = new Uint8Array(gzipSync(bytes));

  let partner: FuzzCase['partner'];
  if (role === 'dataset-image' || role === 'dataset-mask') {
    const other = baseVolume(r, dims, !isMask);
    partner = { name: `fuzz-s${seed}-${index}-${isMask ? 'image' : 'mask'}.nii`, bytes: other.bytes };
  }
  return { seed, index, name, role, base: `${base.describe}${gzipped ? ', gzipped' : ''}`, mutations, bytes, partner };
}

/** One line saying what the case is. */
export function describeCase(c: FuzzCase): string {
  return `${c.role}, ${c.base}; ${c.mutations.length ? c.mutations.join('; ') : 'not mutated'}`;
}
