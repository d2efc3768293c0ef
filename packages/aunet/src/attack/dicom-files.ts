// Node-only: DICOM files made from volumes, written byte by byte (a DICOM Part 10 writer of its
// own: preamble, file meta information, then the data set in any of the four uncompressed
// transfer syntaxes), so that the tests, scripts/make-dicom-series.ts, the hostile corpus and
// the fuzzer can make CT series with exactly the elements, values and damage they need, and so
// that what the reader (dicom-parser, in src/data/dicom.ts) reads back was written by another
// implementation. Nothing is downloaded.

import { deflateRawSync } from 'node:zlib';
import type { Volume } from '../data/nifti';
import { spaceFromAffine, voxelToWorld, type Affine } from '../data/space';

export const UID = {
  ctImageStorage: '1.2.840.10008.5.1.4.1.1.2',
  enhancedCtImageStorage: '1.2.840.10008.5.1.4.1.1.2.1',
  implicitLittle: '1.2.840.10008.1.2',
  explicitLittle: '1.2.840.10008.1.2.1',
  deflatedExplicitLittle: '1.2.840.10008.1.2.1.99',
  explicitBig: '1.2.840.10008.1.2.2',
  jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  jpegLossless: '1.2.840.10008.1.2.4.70',
  rleLossless: '1.2.840.10008.1.2.5',
  /** This writer's implementation class UID (under the 2.25 UUID-derived root). */
  implementation: '2.25.274339870915427162339203116374652712377',
} as const;

/** One data element: tag as 0xGGGGEEEE, its VR, and its value (text, numbers for binary VRs, or bytes). */
export interface DicomElement {
  tag: number;
  vr: string;
  value: string | number[] | Uint8Array;
  /** A value length to write in place of the true one (for damaged files). */
  length?: number;
}

/** VRs written with a 4-byte length (and 2 reserved bytes) in explicit VR. */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** A value's bytes in the given byte order, padded to even length as the standard requires. */
export function valueBytes(e: DicomElement, le: boolean): Uint8Array {
  const v = e.value;
  if (typeof v === 'string') {
    const padded = v.length % 2 ? v + (e.vr === 'UI' ? '\0' : ' ') : v;
    return Uint8Array.from(padded, (ch) => ch.charCodeAt(0) & 0xff);
  }
  if (v instanceof Uint8Array) {
    let out = v.length % 2 ? Uint8Array.from([...v, 0]) : v;
    if (!le && e.vr === 'OW') {
      out = new Uint8Array(out);
      for (let i = 0; i + 1 < out.length; i += 2) [out[i], out[i + 1]] = [out[i + 1], out[i]];
    }
    return out;
  }
  const size = { US: 2, SS: 2, UL: 4, SL: 4, FL: 4, FD: 8 }[e.vr];
  if (!size) throw new RangeError(`encodeDicom: numbers given for VR ${e.vr}`);
  const out = new Uint8Array(size * v.length);
  const view = new DataView(out.buffer);
  v.forEach((x, i) => {
    const at = i * size;
    if (e.vr === 'US') view.setUint16(at, x, le);
    else if (e.vr === 'SS') view.setInt16(at, x, le);
    else if (e.vr === 'UL') view.setUint32(at, x, le);
    else if (e.vr === 'SL') view.setInt32(at, x, le);
    else if (e.vr === 'FL') view.setFloat32(at, x, le);
    else view.setFloat64(at, x, le);
  });
  return out;
}

/** Elements in a transfer syntax's encoding (explicit or implicit VR, either byte order). */
function encodeElements(elements: readonly DicomElement[], explicit: boolean, le: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of elements) {
    const value = valueBytes(e, le);
    const length = e.length ?? value.length;
    const long = LONG_VRS.has(e.vr);
    const head = new Uint8Array(explicit ? (long ? 12 : 8) : 8);
    const view = new DataView(head.buffer);
    view.setUint16(0, e.tag >>> 16, le);
    view.setUint16(2, e.tag & 0xffff, le);
    if (!explicit) view.setUint32(4, length >>> 0, le);
    else {
      head[4] = e.vr.charCodeAt(0);
      head[5] = e.vr.charCodeAt(1);
      if (long) view.setUint32(8, length >>> 0, le);
      else view.setUint16(6, length & 0xffff, le);
    }
    parts.push(head, value);
  }
  return concat(parts);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * A DICOM Part 10 file: 128-byte preamble, "DICM", the file meta information (group 0002,
 * explicit VR little endian, with its group length), then `elements` (sorted by tag) in
 * `transferSyntax`: implicit or explicit VR little endian, explicit big endian, or deflated
 * explicit little endian. Any other syntax UID is written as given over an explicit little
 * endian data set (a file that lies about its encoding, for the hostile corpus).
 */
export function encodeDicom(elements: readonly DicomElement[], o: { transferSyntax: string; sopClass: string; sopInstance: string; metaSyntax?: string }): Uint8Array {
  const meta = encodeElements(
    [
      { tag: 0x00020001, vr: 'OB', value: Uint8Array.from([0, 1]) },
      { tag: 0x00020002, vr: 'UI', value: o.sopClass },
      { tag: 0x00020003, vr: 'UI', value: o.sopInstance },
      { tag: 0x00020010, vr: 'UI', value: o.metaSyntax ?? o.transferSyntax },
      { tag: 0x00020012, vr: 'UI', value: UID.implementation },
    ],
    true,
    true,
  );
  const groupLength = encodeElements([{ tag: 0x00020000, vr: 'UL', value: [meta.length] }], true, true);
  const sorted = [...elements].sort((a, b) => a.tag - b.tag);
  const syntax = o.transferSyntax;
  let body: Uint8Array;
  if (syntax === UID.implicitLittle) body = encodeElements(sorted, false, true);
  else if (syntax === UID.explicitBig) body = encodeElements(sorted, true, false);
  else if (syntax === UID.deflatedExplicitLittle) body = new Uint8Array(deflateRawSync(encodeElements(sorted, true, true)));
  else body = encodeElements(sorted, true, true);
  const preamble = new Uint8Array(132);
  preamble.set([0x44, 0x49, 0x43, 0x4d], 128);
  return concat([preamble, groupLength, meta, body]);
}

/** A number as a DICOM decimal string (DS): at most 16 characters, as many digits as fit. */
export function decimalString(v: number): string {
  for (let p = 15; p >= 1; p--) {
    const s = String(Number(v.toPrecision(p)));
    if (s.length <= 16) return s === '-0' ? '0' : s;
  }
  throw new RangeError(`decimalString: ${v} does not fit 16 characters`);
}

const ds = (values: number[]) => values.map(decimalString).join('\\');

/** How a CT series is written from a volume. */
export interface SeriesSpec {
  /** [columns, rows, slices]; values x fastest (pixel (x, y) of slice k at x + nx * (y + ny * k)), in HU. */
  dims: readonly [number, number, number];
  hu: ArrayLike<number>;
  /** Voxel to RAS+ world (mm), as a NIfTI sform: the series' geometry. */
  affine: Affine;
  seriesUid: string;
  studyUid?: string;
  seriesNumber?: number;
  description?: string;
  modality?: string;
  /** Stored value = (HU - intercept) / slope: must come out an integer that fits the bits (else RangeError). Default 1 and -1024. */
  slope?: number;
  intercept?: number;
  /** Default: unsigned 16-bit (PixelRepresentation 0), 12 bits stored. */
  signed?: boolean;
  bitsAllocated?: 8 | 16;
  bitsStored?: number;
  /** Random bits above the stored ones (as some scanners leave overlay bits there): the reader must mask them. */
  highBitsNoise?: boolean;
  photometric?: 'MONOCHROME2' | 'MONOCHROME1';
  transferSyntax?: string;
  /** InstanceNumber of slice k (default k + 1). */
  instanceNumber?: (k: number) => number;
  /** File name of slice k (default `IM${k}`). */
  fileName?: (k: number) => string;
}

const PATIENT_ID = 'AUNET-TEST';

/** The elements of slice k of a series (file meta information aside), in the order of tags. */
export function sliceElements(s: SeriesSpec, k: number): DicomElement[] {
  const [nx, ny] = s.dims;
  // LPS = RAS with x and y negated.
  const lps = [s.affine[0].map((v) => -v), s.affine[1].map((v) => -v), s.affine[2]];
  const column = (c: number) => [lps[0][c], lps[1][c], lps[2][c]];
  const size = (v: number[]) => Math.hypot(v[0], v[1], v[2]);
  const [across, down] = [column(0), column(1)];
  const position = [0, 1, 2].map((i) => lps[i][2] * k + lps[i][3]);
  const slope = s.slope ?? 1;
  const intercept = s.intercept ?? -1024;
  const bitsAllocated = s.bitsAllocated ?? 16;
  const bitsStored = s.bitsStored ?? (bitsAllocated === 8 ? 8 : 12);
  const signed = s.signed ?? false;
  const [low, high] = signed ? [-(2 ** (bitsStored - 1)), 2 ** (bitsStored - 1) - 1] : [0, 2 ** bitsStored - 1];
  const pixels = new Uint8Array(nx * ny * (bitsAllocated / 8));
  const view = new DataView(pixels.buffer);
  const storedRange = 2 ** bitsStored;
  const noiseRange = 2 ** (bitsAllocated - bitsStored);
  // Negative values sign-extended to the full width, as writers store them (unless noise fills the bits above).
  const signExtension = 2 ** bitsAllocated - storedRange;
  const addNoise = !!s.highBitsNoise && bitsStored < bitsAllocated;
  let noise = (0x2545f491 ^ Math.imul(k, 0x9e3779b1)) >>> 0;
  const plane = k * nx * ny;
  for (let i = 0; i < nx * ny; i++) {
    const hu = s.hu[plane + i];
    const stored = (hu - intercept) / slope;
    if (stored !== Math.round(stored) || stored < low || stored > high) {
      throw new RangeError(`sliceElements: ${hu} HU at voxel ${i} of slice ${k} is not an integer stored value in ${low}..${high} with slope ${slope} and intercept ${intercept}`);
    }
    let bits = stored < 0 ? stored + storedRange : stored;
    if (addNoise) {
      noise = (Math.imul(noise, 1103515245) + 12345) >>> 0;
      bits += ((noise >>> 16) % noiseRange) * storedRange;
    } else if (stored < 0) bits += signExtension;
    if (bitsAllocated === 8) pixels[i] = bits;
    else view.setUint16(2 * i, bits, true);
  }
  const sopInstance = `${s.seriesUid}.${k + 1}`;
  return [
    { tag: 0x00080016, vr: 'UI', value: UID.ctImageStorage },
    { tag: 0x00080018, vr: 'UI', value: sopInstance },
    { tag: 0x00080060, vr: 'CS', value: s.modality ?? 'CT' },
    { tag: 0x0008103e, vr: 'LO', value: s.description ?? '' },
    { tag: 0x00100020, vr: 'LO', value: PATIENT_ID },
    { tag: 0x00180050, vr: 'DS', value: decimalString(size(column(2))) },
    { tag: 0x0020000d, vr: 'UI', value: s.studyUid ?? `${s.seriesUid}.0` },
    { tag: 0x0020000e, vr: 'UI', value: s.seriesUid },
    { tag: 0x00200011, vr: 'IS', value: String(s.seriesNumber ?? 1) },
    { tag: 0x00200013, vr: 'IS', value: String(s.instanceNumber?.(k) ?? k + 1) },
    { tag: 0x00200032, vr: 'DS', value: ds(position) },
    { tag: 0x00200037, vr: 'DS', value: ds([...across.map((v) => v / size(across)), ...down.map((v) => v / size(down))]) },
    { tag: 0x00280002, vr: 'US', value: [1] },
    { tag: 0x00280004, vr: 'CS', value: s.photometric ?? 'MONOCHROME2' },
    { tag: 0x00280010, vr: 'US', value: [ny] },
    { tag: 0x00280011, vr: 'US', value: [nx] },
    // Row spacing (between rows: along a column), then column spacing.
    { tag: 0x00280030, vr: 'DS', value: ds([size(down), size(across)]) },
    { tag: 0x00280100, vr: 'US', value: [bitsAllocated] },
    { tag: 0x00280101, vr: 'US', value: [bitsStored] },
    { tag: 0x00280102, vr: 'US', value: [bitsStored - 1] },
    { tag: 0x00280103, vr: 'US', value: [signed ? 1 : 0] },
    { tag: 0x00281052, vr: 'DS', value: decimalString(intercept) },
    { tag: 0x00281053, vr: 'DS', value: decimalString(slope) },
    { tag: 0x7fe00010, vr: bitsAllocated === 8 ? 'OB' : 'OW', value: pixels },
  ];
}

/** A slice's elements as a file of the series' transfer syntax. */
export function sliceFile(s: SeriesSpec, elements: readonly DicomElement[], k: number, o: { transferSyntax?: string; metaSyntax?: string } = {}): Uint8Array {
  return encodeDicom(elements, {
    transferSyntax: o.transferSyntax ?? s.transferSyntax ?? UID.explicitLittle,
    metaSyntax: o.metaSyntax,
    sopClass: UID.ctImageStorage,
    sopInstance: `${s.seriesUid}.${k + 1}`,
  });
}

/** Every slice of a series as a file, named by `fileName` (default IM0, IM1, ...), in slice order. */
export function dicomSeries(s: SeriesSpec): { name: string; bytes: Uint8Array }[] {
  return Array.from({ length: s.dims[2] }, (_, k) => ({ name: s.fileName?.(k) ?? `IM${k}`, bytes: sliceFile(s, sliceElements(s, k), k) }));
}

/** An element replaced (or added), or removed with `value: null`. */
export function withElement(elements: readonly DicomElement[], tag: number, change: Omit<DicomElement, 'tag'> | null): DicomElement[] {
  const rest = elements.filter((e) => e.tag !== tag);
  return change ? [...rest, { tag, ...change }] : rest;
}

/** The rotation by `degrees` about the axis `axis` (Rodrigues' formula), as 3 rows. */
export function rotation(axis: readonly number[], degrees: number): number[][] {
  const [x, y, z] = axis.map((v) => v / Math.hypot(axis[0], axis[1], axis[2]));
  const t = (degrees * Math.PI) / 180;
  const [c, s, C] = [Math.cos(t), Math.sin(t), 1 - Math.cos(t)];
  return [
    [c + x * x * C, x * y * C - z * s, x * z * C + y * s],
    [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
    [z * x * C - y * s, z * y * C + x * s, c + z * z * C],
  ];
}

/** An affine turned in world space by `degrees` about `axis` (through the world origin): a tilted grid. */
export function rotated(m: Affine, axis: readonly number[], degrees: number): Affine {
  const R = rotation(axis, degrees);
  return R.map((row) => [0, 1, 2, 3].map((c) => row[0] * m[0][c] + row[1] * m[1][c] + row[2] * m[2][c])) as Affine;
}

/**
 * The shipped 8-bit lung-window slices (tr_im_lungwindow.nii.gz) as Hounsfield units:
 * HU = 6 v - 1350, so 0 is -1350 HU (air and below) and 255 is 180 HU (soft tissue and above).
 * A linear rendering, not the scanner's values (the official HU file, tr_im.nii.gz, is not shipped:
 * fetch-data gets it); integer, so that a series stores it exactly as stored value v with
 * RescaleSlope 6 and RescaleIntercept -1350, as a scanner stores HU + 1024 with slope 1.
 */
export const SHIPPED_HU = { slope: 6, intercept: -1350 } as const;

/** How a test series is made from a volume: which slices, how coarse, where in space, how mixed up. */
export interface FixtureOptions {
  /** Slices [start, end) of the source (default all). */
  slices?: [number, number];
  /** Keep every `step`-th column and row (default 1): a smaller series of the same scan. */
  step?: number;
  /**
   * 'axial' (default): as a scanner writes an axial series, 0.75 mm pixels (times `step`), 5 mm
   * apart, ImageOrientationPatient 1\0\0\0\1\0 (a right-handed grid: the series is read in the
   * source's slice order); 'source': the source file's own affine (the shipped files' is
   * right-handed, columns to the patient's left and rows to posterior as in the axial case, so
   * their series is read in their slice order; a left-handed one, slices stored head to foot, is
   * read with the slices in the reverse order).
   */
  geometry?: 'axial' | 'source';
  /** Degrees to turn the grid about an oblique axis: a tilted (oblique) series. */
  tilt?: number;
  /** Seed: random file names, InstanceNumbers in a random order, files listed in a random order. */
  shuffle?: number;
  /** Also a second series (3 slices, another SeriesInstanceUID, elsewhere in space) among the files. */
  secondSeries?: boolean;
  transferSyntax?: string;
  seriesNumber?: number;
}

/** A DICOM series made from a volume, and the NIfTI the same voxels and geometry make. */
export interface DicomFixture {
  files: { name: string; bytes: Uint8Array }[];
  seriesUid: string;
  secondUid?: string;
  /** The series' voxels (HU, x fastest, the source's slice order) and geometry: what the NIfTI path reads from `nifti`. */
  dims: [number, number, number];
  hu: Float32Array;
  affine: Affine;
  /** An int16 NIfTI of the same voxels and geometry (sform and qform). */
  nifti: { dims: number[]; data: Int16Array; datatype: 'int16'; space: ReturnType<typeof spaceFromAffine> };
  /** The source voxel index of each fixture voxel (for cutting a label volume the same way). */
  sourceIndex: Int32Array;
}

/** A seeded linear congruential generator (the fixtures are the same every time). */
function lcg(seed: number): () => number {
  let state = (seed * 2654435761) >>> 0 || 1;
  return () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/**
 * A CT series from `source` (HU, or the shipped 8-bit lung window rendered as {@link SHIPPED_HU}),
 * in the geometry `o` asks for. The series is written with RescaleSlope/Intercept (6 and -1350,
 * 12 bits stored with noise above them, for the 8-bit source; 1 and 0, signed 16 bits, for HU).
 */
export function dicomFixture(source: Volume, o: FixtureOptions = {}): DicomFixture {
  const [sx, sy, sz] = source.dims;
  const [k0, k1] = o.slices ?? [0, sz];
  const step = o.step ?? 1;
  if (!(k0 >= 0 && k1 <= sz && k1 > k0) || !(Number.isInteger(step) && step >= 1)) throw new RangeError(`dicomFixture: slices ${k0}:${k1} of ${sz}, step ${step}`);
  const nx = Math.ceil(sx / step);
  const ny = Math.ceil(sy / step);
  const nz = k1 - k0;
  let min = Infinity;
  for (const v of source.data) min = Math.min(min, v);
  const eightBit = min >= 0; // the lung-window copy; HU files hold air below -500
  const hu = new Float32Array(nx * ny * nz);
  const sourceIndex = new Int32Array(nx * ny * nz);
  for (let k = 0, t = 0; k < nz; k++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, t++) {
        const i = x * step + sx * (y * step + sy * (k + k0));
        sourceIndex[t] = i;
        hu[t] = eightBit ? SHIPPED_HU.slope * source.data[i] + SHIPPED_HU.intercept : source.data[i];
      }
    }
  }
  let affine: Affine;
  if ((o.geometry ?? 'axial') === 'source') {
    const m = voxelToWorld(source.space) ?? ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]] as Affine);
    affine = m.map((r) => [r[0] * step, r[1] * step, r[2], r[2] * k0 + r[3]]) as Affine;
  } else {
    const px = 0.75 * step;
    affine = [[-px, 0, 0, (px * (nx - 1)) / 2], [0, -px, 0, (px * (ny - 1)) / 2 + 20], [0, 0, 5, -400 + 5 * k0]];
  }
  if (o.tilt) affine = rotated(affine, [0.8, 0.5, 0.3], o.tilt);

  const random = lcg(o.shuffle ?? 0);
  const seriesNumber = o.seriesNumber ?? 2;
  const seriesUid = `2.25.7031${seriesNumber}${nx}${nz}`;
  const order = Array.from({ length: nz }, (_, k) => k);
  if (o.shuffle !== undefined) for (let i = order.length - 1; i > 0; i--) { const j = Math.floor(random() * (i + 1)); [order[i], order[j]] = [order[j], order[i]]; }
  const name = (prefix: string, k: number) => (o.shuffle !== undefined ? `${prefix}${Math.floor(random() * 2 ** 32).toString(16).padStart(8, '0')}` : `${prefix}IM${String(k + 1).padStart(4, '0')}.dcm`);
  const rendering = eightBit
    ? { slope: SHIPPED_HU.slope, intercept: SHIPPED_HU.intercept, signed: false, bitsStored: 12, highBitsNoise: true }
    : { slope: 1, intercept: 0, signed: true, bitsStored: 16 };
  const spec: SeriesSpec = {
    dims: [nx, ny, nz], hu, affine, seriesUid, seriesNumber, description: `AU-Net test series from ${source.source.split(/[\\/]/).pop()}`,
    transferSyntax: o.transferSyntax, instanceNumber: (k) => order[k] + 1, ...rendering,
  };
  const files = Array.from({ length: nz }, (_, k) => ({ name: name('', k), bytes: sliceFile(spec, sliceElements(spec, k), k) }));
  let secondUid: string | undefined;
  if (o.secondSeries) {
    // Three slices elsewhere (a scout-like second acquisition of the same patient), with their own UID.
    secondUid = `${seriesUid}.2`;
    const second: SeriesSpec = {
      ...spec, dims: [nx, ny, Math.min(3, nz)], seriesUid: secondUid, seriesNumber: seriesNumber + 100, description: 'second series',
      affine: affine.map((r, i) => [r[0], r[1], r[2] * 2, r[3] + (i === 2 ? 300 : 0)]) as Affine, instanceNumber: undefined,
    };
    files.push(...Array.from({ length: second.dims[2] }, (_, k) => ({ name: name('S2-', k), bytes: sliceFile(second, sliceElements(second, k), k) })));
  }
  if (o.shuffle !== undefined) for (let i = files.length - 1; i > 0; i--) { const j = Math.floor(random() * (i + 1)); [files[i], files[j]] = [files[j], files[i]]; }
  return {
    files,
    seriesUid,
    secondUid,
    dims: [nx, ny, nz],
    hu,
    affine,
    nifti: { dims: [nx, ny, nz], data: Int16Array.from(hu), datatype: 'int16', space: spaceFromAffine(affine) },
    sourceIndex,
  };
}
