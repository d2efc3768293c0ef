// DICOM CT series to a Volume, on bytes only (no file system), so that the commands and the web
// page read a series the same way. Parsing is dicom-parser's (cornerstonejs: small, no
// dependencies, Node and browser alike); what this module adds is the part that makes slices a
// volume: grouping by SeriesInstanceUID, ordering by position along the slice normal, checking
// that the slices form one evenly spaced stack, Hounsfield units from RescaleSlope/Intercept, and
// the geometry in NIfTI's RAS+ world (DICOM's patient frame is LPS+: x and y negated). What it
// cannot read it refuses with one line naming the file or the series. Browser-safe.

import * as dicomParserModule from 'dicom-parser';
import { Inflate, unzipSync } from 'fflate';
import { DataError } from './errors';
import type { NiftiDatatype, Volume } from './nifti';
import { spaceFromAffine, type Affine } from './space';

// dicom-parser is a UMD bundle: Node's ESM loader gives it as the default export only, esbuild
// (the page's bundle) as both.
const dicomParser = ((dicomParserModule as unknown as { default?: typeof dicomParserModule }).default ?? dicomParserModule) as typeof dicomParserModule;

/** A DICOM file's name (a path, or a name inside a zip: for messages) and bytes. */
export interface DicomInput {
  name: string;
  bytes: Uint8Array;
}

/** The transfer syntaxes a CT series comes in, by UID: their names, and whether this reader decodes them. */
export const TRANSFER_SYNTAXES: Readonly<Record<string, { name: string; decoded: boolean }>> = {
  '1.2.840.10008.1.2': { name: 'Implicit VR Little Endian', decoded: true },
  '1.2.840.10008.1.2.1': { name: 'Explicit VR Little Endian', decoded: true },
  '1.2.840.10008.1.2.1.99': { name: 'Deflated Explicit VR Little Endian', decoded: true },
  '1.2.840.10008.1.2.2': { name: 'Explicit VR Big Endian', decoded: true },
  '1.2.840.10008.1.2.1.98': { name: 'Encapsulated Uncompressed Explicit VR Little Endian', decoded: false },
  '1.2.840.10008.1.2.4.50': { name: 'JPEG Baseline (Process 1)', decoded: false },
  '1.2.840.10008.1.2.4.51': { name: 'JPEG Extended (Process 2 & 4)', decoded: false },
  '1.2.840.10008.1.2.4.57': { name: 'JPEG Lossless, Non-Hierarchical (Process 14)', decoded: false },
  '1.2.840.10008.1.2.4.70': { name: 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])', decoded: false },
  '1.2.840.10008.1.2.4.80': { name: 'JPEG-LS Lossless', decoded: false },
  '1.2.840.10008.1.2.4.81': { name: 'JPEG-LS Lossy (Near-Lossless)', decoded: false },
  '1.2.840.10008.1.2.4.90': { name: 'JPEG 2000 Image Compression (Lossless Only)', decoded: false },
  '1.2.840.10008.1.2.4.91': { name: 'JPEG 2000 Image Compression', decoded: false },
  '1.2.840.10008.1.2.4.92': { name: 'JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)', decoded: false },
  '1.2.840.10008.1.2.4.93': { name: 'JPEG 2000 Part 2 Multi-component Image Compression', decoded: false },
  '1.2.840.10008.1.2.4.201': { name: 'High-Throughput JPEG 2000 Image Compression (Lossless Only)', decoded: false },
  '1.2.840.10008.1.2.4.202': { name: 'High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)', decoded: false },
  '1.2.840.10008.1.2.4.203': { name: 'High-Throughput JPEG 2000 Image Compression', decoded: false },
  '1.2.840.10008.1.2.5': { name: 'RLE Lossless', decoded: false },
};

/** What to do with a series this reader cannot decode, said once in every such refusal. */
const HOW_TO_DECOMPRESS =
  'Convert the series to an uncompressed transfer syntax first (e.g. `gdcmconv --raw` or `dcmdjpeg` per file), or to NIfTI with dcm2niix.';

const SOP_CLASS = {
  enhancedCt: '1.2.840.10008.5.1.4.1.1.2.1',
  legacyEnhancedCt: '1.2.840.10008.5.1.4.1.1.2.2',
  mediaStorageDirectory: '1.2.840.10008.1.3.10',
};

/**
 * SOP classes (by UID prefix) of objects that hold no image and are met beside CT series in
 * exports: a DICOMDIR, structured reports, presentation states, RT structure sets and plans,
 * raw data and registrations, encapsulated documents, waveforms. Files of these are skipped; any
 * other file must be an image, so that a damaged slice is refused rather than skipped.
 */
const NON_IMAGE_SOP_CLASSES = [
  '1.2.840.10008.1.3.10', '1.2.840.10008.5.1.4.1.1.88.', '1.2.840.10008.5.1.4.1.1.11.', '1.2.840.10008.5.1.4.1.1.481.2', '1.2.840.10008.5.1.4.1.1.481.3',
  '1.2.840.10008.5.1.4.1.1.481.5', '1.2.840.10008.5.1.4.1.1.481.8', '1.2.840.10008.5.1.4.1.1.66', '1.2.840.10008.5.1.4.1.1.104.', '1.2.840.10008.5.1.4.1.1.9.',
];
const isNonImageClass = (uid: string) => NON_IMAGE_SOP_CLASSES.some((p) => uid === p || (p.endsWith('.') ? uid.startsWith(p) : uid.startsWith(`${p}.`) || uid === p));

/** Largest a deflated data set may inflate to (one CT slice is a few MB at most): past it, a deflate bomb. */
const MAX_INFLATED_BYTES = 256 * 2 ** 20;
/** Largest a zip of DICOM files may unpack to. */
const MAX_UNZIPPED_BYTES = 2 ** 31;

/** The "DICM" prefix at byte 128 of a DICOM Part 10 file. */
export function isDicom(bytes: Uint8Array): boolean {
  return bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

/** Whether the bytes start as a zip file does (a local file header, or an empty archive). */
export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && ((bytes[2] === 3 && bytes[3] === 4) || (bytes[2] === 5 && bytes[3] === 6));
}

/** The name of a transfer syntax UID (the UID itself when it is not one of {@link TRANSFER_SYNTAXES}). */
export const transferSyntaxName = (uid: string) => TRANSFER_SYNTAXES[uid]?.name ?? uid;

// --------------------------------------------------------------------------------------------
// One file.

/** One CT slice: what places it, what decodes it, and where its pixels are. */
interface DicomSlice {
  name: string;
  seriesUid: string;
  seriesDescription: string;
  seriesNumber: string;
  modality: string;
  /** ImageType (0008,0008) names LOCALIZER: a scout image, not a slice of the CT stack. */
  localizer: boolean;
  transferSyntax: string;
  rows: number;
  columns: number;
  /** Row spacing (between rows), column spacing (between columns), mm. */
  pixelSpacing: [number, number];
  position: [number, number, number];
  /** Direction of increasing column index, then of increasing row index (LPS, unit vectors). */
  orientation: [number, number, number, number, number, number];
  /** SpacingBetweenSlices or SliceThickness, for a series of one slice. */
  thickness: number | null;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  signed: boolean;
  slope: number;
  intercept: number;
  littleEndian: boolean;
  /** The pixel bytes, rows * columns * bitsAllocated / 8 of them. */
  pixels: Uint8Array;
}

/** A DICOM file that holds no image (a DICOMDIR, a structured report, a presentation state): skipped in a folder. */
interface DicomNonImage {
  name: string;
  nonImage: string;
}

type DataSet = ReturnType<typeof dicomParser.parseDicom>;

/** dicom-parser throws strings and `{ exception, dataSet }` objects as well as Errors: their text, on one line. */
function thrownText(err: unknown): string {
  const inner = err && typeof err === 'object' && 'exception' in err ? (err as { exception: unknown }).exception : err;
  const text = inner instanceof Error ? inner.message : String(inner);
  return text.replace(/\s+/g, ' ').trim();
}

/** Inflates a deflated data set (fflate, in Node and the browser alike), stopping past {@link MAX_INFLATED_BYTES}. */
function inflateDataSet(bytes: Uint8Array, position: number, name: string): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = position;
  const inflater = new Inflate((chunk) => {
    total += chunk.length;
    if (total > MAX_INFLATED_BYTES) throw new DataError(`${name}: its deflated data set expands past ${MAX_INFLATED_BYTES / 2 ** 20} MiB, more than any CT slice holds: the file is damaged or hostile.`, name);
    chunks.push(chunk);
  });
  inflater.push(bytes.subarray(position), true);
  const out = new Uint8Array(total);
  out.set(bytes.subarray(0, position));
  let at = position;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Parses one DICOM Part 10 file: a CT slice with everything the series needs checked, or a
 * note that it holds no image. DataError naming the file for anything it cannot read.
 */
function parseDicomFile(file: DicomInput): DicomSlice | DicomNonImage {
  const { name, bytes } = file;
  if (!isDicom(bytes)) {
    throw new DataError(
      `${name} is not a DICOM file (${bytes.length < 132 ? `${bytes.length} bytes, too short for the 132-byte preamble and "DICM" prefix` : 'no "DICM" prefix at byte 128'}). Pass the files of a DICOM CT series (Part 10 files, as PACS and scanners export them).`,
      name,
    );
  }
  // The file meta information ends where its group length (0002,0000) says. dicom-parser finds
  // its end by reading the next element whole, which fails when a deflated data set's first bytes
  // happen to read as a sequence (1 valid file in about 500, found by the fuzzer): so the meta
  // information and the data set are given to it apart, the data set with the transfer syntax.
  const metaEnd = metaInformationEnd(bytes);
  if (metaEnd !== null && metaEnd > bytes.length) {
    throw new DataError(`${name}: its file meta information is said to end at byte ${metaEnd}, past the end of the file (${bytes.length} bytes): the file is damaged or cut short. Get it again.`, name);
  }
  let meta: DataSet;
  try {
    meta = dicomParser.readPart10Header(metaEnd === null ? bytes : bytes.subarray(0, metaEnd));
  } catch (err) {
    throw new DataError(`${name}: its DICOM file meta information cannot be read (${thrownText(err)}): the file is damaged or cut short. Get it again.`, name);
  }
  const syntax = safe(() => meta.string('x00020010'))?.replace(/\0/g, '').trim();
  if (!syntax) throw new DataError(`${name}: its file meta information has no Transfer Syntax UID (0002,0010): the file is damaged.`, name);
  const known = TRANSFER_SYNTAXES[syntax];
  if (!known) {
    throw new DataError(
      `${name}: transfer syntax ${JSON.stringify(syntax.slice(0, 64))} is not one this reader knows (it reads ${Object.entries(TRANSFER_SYNTAXES).filter(([, t]) => t.decoded).map(([, t]) => t.name).join(', ')}). ${HOW_TO_DECOMPRESS}`,
      name,
    );
  }
  if (!known.decoded) {
    throw new DataError(`${name} is compressed with ${known.name} (transfer syntax ${syntax}), which this reader does not decode. ${HOW_TO_DECOMPRESS}`, name);
  }
  let ds: DataSet;
  try {
    // dicom-parser gives no position for a data set passed without its meta information: it starts at 0.
    const inflater = (arr: Uint8Array, position: number | undefined) => inflateDataSet(arr, position ?? 0, name);
    if (metaEnd === null) ds = dicomParser.parseDicom(bytes, { inflater } as Parameters<typeof dicomParser.parseDicom>[1]);
    else {
      const body = bytes.subarray(metaEnd);
      if (body.length === 0) throw new DataError(`${name}: the file ends after its file meta information, with no data set: it was cut short. Get it again.`, name);
      ds = dicomParser.parseDicom(body, { TransferSyntaxUID: syntax, inflater } as Parameters<typeof dicomParser.parseDicom>[1]);
    }
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw parseFailure(name, err, known.name);
  }

  const str = (tag: string) => safe(() => ds.string(tag))?.replace(/\0/g, '').trim() ?? '';
  const metaClass = safe(() => meta.string('x00020002'))?.replace(/\0/g, '').trim() ?? '';
  const sopClass = str('x00080016') || metaClass;
  const hasPixels = ['x7fe00010', 'x7fe00008', 'x7fe00009'].some((t) => ds.elements[t]);
  const hasRows = ds.elements.x00280010 !== undefined;
  if (sopClass === SOP_CLASS.mediaStorageDirectory) return { name, nonImage: 'a DICOMDIR' };
  if (!hasPixels && !hasRows && (isNonImageClass(sopClass) || isNonImageClass(metaClass))) return { name, nonImage: `no image (SOP class ${sopClass})` };

  const refuse = (why: string) => new DataError(`${name}: ${why}`, name);
  if (!hasPixels && !hasRows) {
    // An image's SOP class (or none) with neither Rows nor pixel data: its data set was not read as written.
    throw refuse(
      `no Rows (0028,0010) and no pixel data (7FE0,0010) could be read from it as ${known.name}, the transfer syntax its file meta information states, although it is not a non-image object: the file is damaged or states the wrong transfer syntax.`,
    );
  }
  if (sopClass === SOP_CLASS.enhancedCt || sopClass === SOP_CLASS.legacyEnhancedCt) {
    throw refuse('an Enhanced CT object (the whole series as frames of one file) is not supported: export the series as single-frame CT slices (one file per slice, CT Image Storage).');
  }
  const frames = str('x00280008');
  if (frames !== '' && frames !== '1') {
    throw refuse(`a multi-frame image (NumberOfFrames ${JSON.stringify(frames.slice(0, 20))}) is not supported: export the series as single-frame CT slices (one file per slice).`);
  }
  if (!ds.elements.x7fe00010) {
    if (ds.elements.x7fe00008 || ds.elements.x7fe00009) throw refuse('float pixel data (7FE0,0008 or 7FE0,0009) is not supported: CT slices store integers with RescaleSlope/RescaleIntercept.');
    throw refuse('has no pixel data element (7FE0,0010): the file holds the slice\'s header only (damaged, or an export that left the pixels out). Get it again.');
  }

  const rows = uint16(ds, 'x00280010', name, 'Rows');
  const columns = uint16(ds, 'x00280011', name, 'Columns');
  if (rows < 1 || columns < 1) throw refuse(`Rows ${rows} and Columns ${columns}: an image needs at least one of each. The header is damaged.`);
  const samples = optionalUint16(ds, 'x00280002', name) ?? 1;
  const photometric = str('x00280004');
  if (samples !== 1 || (photometric && photometric !== 'MONOCHROME2' && photometric !== 'MONOCHROME1')) {
    throw refuse(`a colour image (PhotometricInterpretation ${JSON.stringify(photometric.slice(0, 20))}, SamplesPerPixel ${samples}): CT slices are greyscale (MONOCHROME2, one sample per pixel). Is this a screenshot or a secondary capture?`);
  }
  const bitsAllocated = uint16(ds, 'x00280100', name, 'BitsAllocated');
  if (bitsAllocated !== 8 && bitsAllocated !== 16 && bitsAllocated !== 32) throw refuse(`BitsAllocated ${bitsAllocated} is not supported (8, 16 or 32).`);
  const bitsStored = optionalUint16(ds, 'x00280101', name) ?? bitsAllocated;
  const highBit = optionalUint16(ds, 'x00280102', name) ?? bitsStored - 1;
  if (bitsStored < 1 || bitsStored > bitsAllocated || highBit < bitsStored - 1 || highBit >= bitsAllocated) {
    throw refuse(`BitsStored ${bitsStored} and HighBit ${highBit} do not fit in BitsAllocated ${bitsAllocated}: the header is damaged.`);
  }
  const representation = optionalUint16(ds, 'x00280103', name) ?? 0;
  if (representation !== 0 && representation !== 1) throw refuse(`PixelRepresentation ${representation} is neither 0 (unsigned) nor 1 (signed): the header is damaged.`);

  const element = ds.elements.x7fe00010;
  if (element.encapsulatedPixelData || element.hadUndefinedLength) {
    throw refuse(`its pixel data is encapsulated (compressed fragments) although its transfer syntax (${known.name}) says it is not: the file is damaged.`);
  }
  const needed = rows * columns * (bitsAllocated / 8);
  const available = Math.max(0, Math.min(element.length, ds.byteArray.length - element.dataOffset));
  if (available < needed) {
    throw refuse(
      `truncated or its header is damaged: Rows ${rows} x Columns ${columns} of ${bitsAllocated}-bit pixels need ${needed} bytes of pixel data, the file holds ${available}. A file cut short (an interrupted copy?) reads like this: get it again.`,
    );
  }

  const modality = str('x00080060');
  const seriesUid = str('x0020000e');
  const position = numbers(ds, 'x00200032', 3, name, 'ImagePositionPatient (0020,0032)');
  const orientation = numbers(ds, 'x00200037', 6, name, 'ImageOrientationPatient (0020,0037)');
  const spacing = numbers(ds, 'x00280030', 2, name, 'PixelSpacing (0028,0030)');
  if (!spacing.every((s) => s > 0)) throw refuse(`PixelSpacing ${spacing.join('\\')} is not a pair of positive sizes in mm: the header is damaged.`);
  const r = orientation.slice(0, 3);
  const c = orientation.slice(3, 6);
  const norm = (v: number[]) => Math.hypot(v[0], v[1], v[2]);
  if (Math.abs(norm(r) - 1) > 1e-2 || Math.abs(norm(c) - 1) > 1e-2 || Math.abs(r[0] * c[0] + r[1] * c[1] + r[2] * c[2]) > 1e-3) {
    throw refuse(`ImageOrientationPatient ${orientation.join('\\')} is not two perpendicular unit vectors: the slice cannot be placed. The header is damaged.`);
  }
  const unit = (v: number[]) => v.map((x) => x / norm(v));
  const slope = optionalNumber(ds, 'x00281053', name, 'RescaleSlope') ?? 1;
  const intercept = optionalNumber(ds, 'x00281052', name, 'RescaleIntercept') ?? 0;
  if (slope === 0) throw refuse('RescaleSlope 0 would make every pixel the same value: the header is damaged.');
  // Used only to space a series of one slice: a damaged value is left unused rather than refused.
  const lenient = (tag: string, what: string) => safe(() => optionalNumber(ds, tag, name, what));
  const thickness = lenient('x00180088', 'SpacingBetweenSlices') ?? lenient('x00180050', 'SliceThickness') ?? null;

  return {
    name,
    seriesUid,
    seriesDescription: str('x0008103e'),
    seriesNumber: str('x00200011'),
    modality,
    localizer: str('x00080008').toUpperCase().split('\\').some((v) => v.trim() === 'LOCALIZER'),
    transferSyntax: syntax,
    rows,
    columns,
    pixelSpacing: [spacing[0], spacing[1]],
    position: position as [number, number, number],
    orientation: [...unit(r), ...unit(c)] as DicomSlice['orientation'],
    thickness: thickness !== null && thickness > 0 && thickness < 1e6 ? thickness : null,
    bitsAllocated,
    bitsStored,
    highBit,
    signed: representation === 1,
    slope,
    intercept,
    littleEndian: syntax !== '1.2.840.10008.1.2.2',
    pixels: ds.byteArray.subarray(element.dataOffset, element.dataOffset + needed),
  };
}

/**
 * Where the file meta information ends, from its group length (0002,0000, explicit VR UL right
 * after "DICM"), or null when the file does not start with that element (dicom-parser then
 * finds the end itself).
 */
function metaInformationEnd(bytes: Uint8Array): number | null {
  if (bytes.length < 144) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const isGroupLength = view.getUint16(132, true) === 0x0002 && view.getUint16(134, true) === 0x0000 && bytes[136] === 0x55 && bytes[137] === 0x4c && view.getUint16(138, true) === 4;
  return isGroupLength ? 144 + view.getUint32(140, true) : null;
}

/** A failed parse, said as precisely as the parser lets: a truncated file names its missing bytes. */
function parseFailure(name: string, err: unknown, syntax: string): DataError {
  const partial = err && typeof err === 'object' && 'dataSet' in err ? (err as { dataSet?: DataSet }).dataSet : undefined;
  const pixels = partial?.elements?.x7fe00010;
  if (partial && pixels && pixels.dataOffset + pixels.length > partial.byteArray.length) {
    return new DataError(
      `${name} is truncated: its pixel data element says ${pixels.length} bytes, the file holds ${Math.max(0, partial.byteArray.length - pixels.dataOffset)} of them. A file cut short (an interrupted copy?) reads like this: get it again.`,
      name,
    );
  }
  return new DataError(
    `${name} cannot be parsed as DICOM (${thrownText(err).slice(0, 200)}): the file is damaged, cut short, or not in ${syntax}, the transfer syntax its file meta information states. Get it again.`,
    name,
  );
}

/** `read()`, or undefined where the parser throws (a value that runs past the end of the file). */
function safe<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}

function uint16(ds: DataSet, tag: string, name: string, what: string): number {
  const v = optionalUint16(ds, tag, name);
  if (v === undefined) throw new DataError(`${name}: ${what} (${tagText(tag)}) is missing: the header of an image needs it. The file is damaged.`, name);
  return v;
}

function optionalUint16(ds: DataSet, tag: string, name: string): number | undefined {
  const el = ds.elements[tag];
  if (!el || el.length === 0) return undefined;
  if (el.length < 2) throw new DataError(`${name}: ${tagText(tag)} holds ${el.length} byte(s), not a 2-byte number: the header is damaged.`, name);
  const v = safe(() => ds.uint16(tag));
  if (v === undefined) throw new DataError(`${name}: ${tagText(tag)} runs past the end of the file: the file is damaged or cut short.`, name);
  return v;
}

/** A decimal string (DS) value, or undefined when absent; DataError when it is not a finite number. */
function optionalNumber(ds: DataSet, tag: string, name: string, what: string): number | undefined {
  const el = ds.elements[tag];
  if (!el || el.length === 0) return undefined;
  const text = safe(() => ds.string(tag));
  if (text === undefined) throw new DataError(`${name}: ${what} ${tagText(tag)} runs past the end of the file: the file is damaged or cut short.`, name);
  const v = Number(text.trim());
  if (text.trim() === '' || !Number.isFinite(v)) throw new DataError(`${name}: ${what} ${tagText(tag)} is ${JSON.stringify(text.slice(0, 40))}, not a number: the header is damaged.`, name);
  return v;
}

/** `count` decimal-string values of a multi-valued element (positions, orientations, spacings). */
function numbers(ds: DataSet, tag: string, count: number, name: string, what: string): number[] {
  const el = ds.elements[tag];
  if (!el || el.length === 0) {
    throw new DataError(`${name}: ${what} is missing, so the slice cannot be placed in the series (a CT slice always has it): the file is damaged or not a CT image.`, name);
  }
  const text = safe(() => readText(ds, el));
  if (text === undefined) throw new DataError(`${name}: ${what} runs past the end of the file: the file is damaged or cut short.`, name);
  const parts = text.split('\\');
  const values = parts.map((p) => Number(p.trim()));
  if (parts.length !== count || parts.some((p) => p.trim() === '') || !values.every(Number.isFinite)) {
    throw new DataError(`${name}: ${what} is ${JSON.stringify(text.slice(0, 80))}, not ${count} numbers: the header is damaged.`, name);
  }
  return values;
}

/** An element's whole text (dicom-parser's string() gives one value at a time). */
function readText(ds: DataSet, el: { dataOffset: number; length: number }): string {
  if (el.dataOffset + el.length > ds.byteArray.length) throw new RangeError('past the end');
  let s = '';
  for (let i = 0; i < el.length; i++) {
    const b = ds.byteArray[el.dataOffset + i];
    if (b === 0) break;
    s += String.fromCharCode(b);
  }
  return s.trim();
}

const tagText = (tag: string) => `(${tag.slice(1, 5).toUpperCase()},${tag.slice(5, 9).toUpperCase()})`;

// --------------------------------------------------------------------------------------------
// A series.

/** What was read: the series, and what else the files held. */
export interface DicomSeriesInfo {
  uid: string;
  description: string;
  number: string;
  modality: string;
  transferSyntax: string;
  slices: number;
  rows: number;
  columns: number;
  /** Column spacing, row spacing, slice spacing (mm). */
  voxelMm: [number, number, number];
  /** Files that were skipped, with why: of no image (a DICOMDIR, reports), or localizers
   *  (ImageType LOCALIZER) sharing the series' SeriesInstanceUID. */
  skipped: string[];
  /** How many of `skipped` are localizers. */
  localizers: number;
  /** The other series found beside it (when one was picked with `series`). */
  otherSeries: number;
}

export interface DicomSeriesOptions {
  /** The SeriesInstanceUID to read where the files hold several series. */
  series?: string;
  /** What the user does to pick one series, said when there are several (the commands: --series UID). */
  howToPick?: string;
}

/** How the commands let one pick a series: said where a folder holds several. */
export const PICK_SERIES_FLAG = 'Pick one with --series UID, or put each series in a folder of its own.';

/**
 * The volume of one DICOM CT series given as its files (any order, any names): slices sorted by
 * position along the slice normal (the cross product of ImageOrientationPatient's two vectors;
 * not by file name or InstanceNumber), values in Hounsfield units (RescaleSlope/Intercept
 * applied per slice), voxels x fastest with rows and columns as stored (column x, row y, slice
 * k), and the geometry as a NIfTI sform and qform in RAS+ (DICOM's LPS+ with x and y negated).
 * `source` (the folder or zip) names the series in messages. Files of no image are skipped.
 * DataError, on one line, for anything else it cannot read: a file that is not DICOM, damaged,
 * compressed, not CT, multi-frame; several series (listed, to pick one); slices of different
 * sizes or orientations, at the same position, missing or unevenly spaced (said where), or not
 * stacked along their normal (gantry tilt).
 */
export function volumeFromDicom(files: readonly DicomInput[], source: string, o: DicomSeriesOptions = {}): { volume: Volume; series: DicomSeriesInfo } {
  if (!files.length) throw new DataError(`${source} holds no DICOM file. Pass the files of one DICOM CT series.`, source);
  const parsed = files.map(parseDicomFile);
  const skipped = parsed.filter((p): p is DicomNonImage => 'nonImage' in p).map((p) => `${p.name} (${p.nonImage})`);
  const slices = parsed.filter((p): p is DicomSlice => !('nonImage' in p));
  if (!slices.length) throw new DataError(`${source} holds no DICOM image: ${skipped.length} DICOM file(s), none with pixel data (${skipped.slice(0, 3).join(', ')}${skipped.length > 3 ? ', ...' : ''}).`, source);

  const groups = new Map<string, DicomSlice[]>();
  for (const s of slices) groups.set(s.seriesUid, [...(groups.get(s.seriesUid) ?? []), s]);
  const listing = () =>
    [...groups.values()]
      .map((g) => `${g[0].seriesUid || '(no SeriesInstanceUID)'} ${JSON.stringify(g[0].seriesDescription)}${g[0].seriesNumber ? ` (series ${g[0].seriesNumber})` : ''}: ${g.length} slice${g.length === 1 ? '' : 's'}`)
      .join('; ');
  let chosen: DicomSlice[];
  if (o.series !== undefined) {
    const g = groups.get(o.series);
    if (!g) throw new DataError(`${source} holds no series ${o.series}; it holds ${listing()}.`, source);
    chosen = g;
  } else if (groups.size > 1) {
    throw new DataError(`${source} holds ${groups.size} DICOM series: ${listing()}. ${o.howToPick ?? PICK_SERIES_FLAG}`, source);
  } else chosen = [...groups.values()][0];
  // A localizer (scout) sharing the CT's SeriesInstanceUID, as some scanners store it: another
  // size and orientation, not a slice of the stack. Skipped, said in `skipped` (unless the series
  // is localizers only: then it is read, and refused, as it is).
  const localizers = chosen.filter((s) => s.localizer);
  const localizerCount = localizers.length < chosen.length ? localizers.length : 0;
  if (localizerCount) {
    chosen = chosen.filter((s) => !s.localizer);
    for (const s of localizers) skipped.push(`${s.name} (a localizer, ImageType LOCALIZER: not a slice of the series)`);
  }
  const first = chosen[0];
  const seriesName = `series ${first.seriesUid || '(no SeriesInstanceUID)'}${first.seriesDescription ? ` ${JSON.stringify(first.seriesDescription)}` : ''}`;

  if (first.modality !== 'CT') {
    throw new DataError(
      `${source}: ${seriesName} is ${first.modality ? `of modality ${first.modality}` : 'of no modality (no Modality (0008,0060))'}, not CT: AU-Net segments CT scans (Hounsfield units). Pass a CT series.`,
      source,
    );
  }
  for (const s of chosen) {
    const differs = (what: string, a: string, b: string) =>
      new DataError(`${source}: the slices of ${seriesName} differ in ${what}: ${first.name} has ${a}, ${s.name} has ${b}. A series must be one stack of equal slices; are two reconstructions sharing one SeriesInstanceUID?`, source);
    if (s.modality !== first.modality) throw differs('modality', first.modality, s.modality);
    if (s.rows !== first.rows || s.columns !== first.columns) throw differs('size', `${first.columns} x ${first.rows}`, `${s.columns} x ${s.rows}`);
    if (s.pixelSpacing.some((v, i) => Math.abs(v - first.pixelSpacing[i]) > 1e-4 * Math.max(1, v))) {
      throw differs('pixel spacing', first.pixelSpacing.join('\\'), s.pixelSpacing.join('\\'));
    }
    if (s.orientation.some((v, i) => Math.abs(v - first.orientation[i]) > 1e-4)) {
      throw differs('orientation', first.orientation.map((v) => +v.toFixed(5)).join('\\'), s.orientation.map((v) => +v.toFixed(5)).join('\\'));
    }
  }

  // Order along the normal n = row direction x column direction.
  const [r0, r1, r2, c0, c1, c2] = first.orientation;
  const normal = [r1 * c2 - r2 * c1, r2 * c0 - r0 * c2, r0 * c1 - r1 * c0];
  const along = (s: DicomSlice) => s.position[0] * normal[0] + s.position[1] * normal[1] + s.position[2] * normal[2];
  const stack = chosen.map((s) => ({ s, d: along(s) })).sort((a, b) => a.d - b.d);
  const mm = (v: number) => `${+v.toFixed(3)} mm`;
  for (let k = 1; k < stack.length; k++) {
    if (stack[k].d - stack[k - 1].d < 0.01) {
      throw new DataError(
        `${source}: two slices of ${seriesName} lie at the same position (${mm(stack[k].d)} along the slice normal): ${stack[k - 1].s.name} and ${stack[k].s.name}. The folder holds a slice twice, or two acquisitions share the series: keep one copy of each slice.`,
        source,
      );
    }
  }
  const spacing = stack.length > 1 ? sliceSpacing(stack.map((x) => ({ d: x.d, name: x.s.name })), source, seriesName) : first.thickness ?? 1;
  // Every slice must sit on the normal through the first: positions that also move sideways are
  // a gantry tilt (or stacks of another series), which one affine cannot describe.
  let sideways = 0;
  for (const { s, d } of stack) {
    const dd = d - stack[0].d;
    const off = [0, 1, 2].map((i) => s.position[i] - stack[0].s.position[i] - dd * normal[i]);
    sideways = Math.max(sideways, Math.hypot(off[0], off[1], off[2]));
  }
  const extent = stack[stack.length - 1].d - stack[0].d;
  if (sideways > 0.02 + 1e-3 * extent) {
    throw new DataError(
      `${source}: the slices of ${seriesName} do not stack along their normal: their positions also move sideways, by up to ${mm(sideways)} over the series (a gantry tilt). Resample the series to an untilted stack first (dcm2niix does), or pass a series without tilt.`,
      source,
    );
  }

  const [rowSpacing, columnSpacing] = first.pixelSpacing;
  const nx = first.columns;
  const ny = first.rows;
  const nz = stack.length;
  const data = new Float32Array(nx * ny * nz);
  stack.forEach(({ s }, k) => {
    const out = data.subarray(k * nx * ny, (k + 1) * nx * ny);
    decodePixels(s, out);
    // Finite stored values can overflow float32 once rescaled (RescaleSlope 1e38): name the header fields.
    if (!out.every(Number.isFinite)) {
      throw new DataError(`${s.name}: RescaleSlope ${s.slope} and RescaleIntercept ${s.intercept} make its values not finite (past float32's range): the header is damaged.`, s.name);
    }
  });

  // Voxel (i, j, k) in LPS: P0 + i * columnSpacing * r + j * rowSpacing * c + k * spacing * n;
  // RAS+ negates the x and y rows.
  const p0 = stack[0].s.position;
  const lps = [0, 1, 2].map((i) => [first.orientation[i] * columnSpacing, first.orientation[3 + i] * rowSpacing, normal[i] * spacing, p0[i]]);
  const affine = [lps[0].map((v) => -v), lps[1].map((v) => -v), lps[2]] as Affine;
  const sameScaling = stack.every(({ s }) => s.slope === first.slope && s.intercept === first.intercept);
  const identity = first.slope === 1 && first.intercept === 0;
  const volume: Volume = {
    source,
    dims: [nx, ny, nz],
    rank: 3,
    data,
    sliceAxis: 2,
    datatype: storedType(first),
    niftiVersion: 1,
    scaling: sameScaling && !identity ? { slope: first.slope, inter: first.intercept } : null,
    space: spaceFromAffine(affine),
    description: `DICOM CT ${first.seriesNumber ? `series ${first.seriesNumber} ` : ''}${first.seriesDescription}`.trim().slice(0, 79),
  };
  return {
    volume,
    series: {
      uid: first.seriesUid,
      description: first.seriesDescription,
      number: first.seriesNumber,
      modality: first.modality,
      transferSyntax: transferSyntaxName(first.transferSyntax),
      slices: nz,
      rows: ny,
      columns: nx,
      voxelMm: [columnSpacing, rowSpacing, spacing],
      skipped,
      localizers: localizerCount,
      otherSeries: groups.size - 1,
    },
  };
}

/**
 * The spacing of slices at positions `d` (sorted, distinct): the gap most of them share. A gap
 * that is a multiple of it means missing slices; any other gap, uneven spacing: both refused,
 * naming the slices on either side.
 */
function sliceSpacing(stack: { d: number; name: string }[], source: string, seriesName: string): number {
  const gaps = stack.slice(1).map((x, k) => x.d - stack[k].d);
  const tolerance = (g: number) => Math.max(0.01, 0.01 * g);
  // The most common gap (ties: the smallest), so that one missing slice does not move it.
  let reference = gaps[0];
  let best = -1;
  for (const g of gaps) {
    const count = gaps.filter((h) => Math.abs(h - g) <= tolerance(g)).length;
    if (count > best || (count === best && g < reference)) [reference, best] = [g, count];
  }
  const mm = (v: number) => `${+v.toFixed(3)} mm`;
  for (let k = 0; k < gaps.length; k++) {
    const g = gaps[k];
    if (Math.abs(g - reference) <= tolerance(reference)) continue;
    const between = `between ${stack[k].name} (${mm(stack[k].d)}) and ${stack[k + 1].name} (${mm(stack[k + 1].d)})`;
    const multiple = Math.round(g / reference);
    if (multiple >= 2 && Math.abs(g - multiple * reference) <= multiple * tolerance(reference)) {
      throw new DataError(
        `${source}: ${multiple - 1} slice${multiple > 2 ? 's are' : ' is'} missing from ${seriesName} ${between}: a gap of ${mm(g)} where the slices are ${mm(reference)} apart. Export the whole series again.`,
        source,
      );
    }
    throw new DataError(
      `${source}: the slices of ${seriesName} are unevenly spaced: a gap of ${mm(g)} ${between}, where the others are ${mm(reference)} apart. This reader takes evenly spaced slices only: resample the series (dcm2niix, 3D Slicer) or pass one reconstruction.`,
      source,
    );
  }
  return (stack[stack.length - 1].d - stack[0].d) / gaps.length;
}

/** The NIfTI type holding a slice's stored values. */
function storedType(s: DicomSlice): NiftiDatatype {
  const bits = s.bitsAllocated as 8 | 16 | 32;
  return ({ 8: s.signed ? 'int8' : 'uint8', 16: s.signed ? 'int16' : 'uint16', 32: s.signed ? 'int32' : 'uint32' } as const)[bits];
}

/** A slice's stored values (BitsStored of them from HighBit down, sign-extended when signed) times RescaleSlope plus RescaleIntercept. */
function decodePixels(s: DicomSlice, out: Float32Array): void {
  const view = new DataView(s.pixels.buffer, s.pixels.byteOffset, s.pixels.byteLength);
  const shift = s.highBit + 1 - s.bitsStored;
  const range = 2 ** s.bitsStored;
  const mask = range - 1;
  const signBit = range / 2;
  const le = s.littleEndian;
  const read =
    s.bitsAllocated === 8 ? (i: number) => view.getUint8(i) : s.bitsAllocated === 16 ? (i: number) => view.getUint16(2 * i, le) : (i: number) => view.getUint32(4 * i, le);
  for (let i = 0; i < out.length; i++) {
    // Division, not >>>: a 32-bit value must stay unsigned.
    let v = Math.floor(read(i) / 2 ** shift) % (mask + 1);
    if (s.signed && v >= signBit) v -= range;
    out[i] = v * s.slope + s.intercept;
  }
}

// --------------------------------------------------------------------------------------------
// Zips.

/**
 * The DICOM files inside a zip (entries with the "DICM" prefix, named `zip/entry`; others, such
 * as a README or __MACOSX records, are left out), for the page and the commands alike.
 * DataError naming the zip when it is damaged, would unpack past 2 GiB, or holds no DICOM file.
 */
export function dicomFilesFromZip(bytes: Uint8Array, name: string): DicomInput[] {
  let total = 0;
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes, {
      filter: (f) => {
        if (f.name.endsWith('/')) return false;
        total += f.originalSize;
        if (total > MAX_UNZIPPED_BYTES) throw new DataError(`${name} would unpack to more than ${MAX_UNZIPPED_BYTES / 2 ** 30} GiB: too large for one CT series (or a zip bomb).`, name);
        return true;
      },
    });
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError(`${name} cannot be unzipped (${thrownText(err)}): the zip is damaged or uses a compression other than deflate. Zip the series again.`, name);
  }
  const files = Object.entries(entries)
    .filter(([, b]) => isDicom(b))
    .map(([entry, b]) => ({ name: `${name}/${entry}`, bytes: b }));
  if (!files.length) {
    throw new DataError(`${name} holds no DICOM file (${Object.keys(entries).length} entries, none with the "DICOM" prefix "DICM" at byte 128). Zip the files of one DICOM CT series.`, name);
  }
  return files;
}

/** One line saying what series was read: for the commands' output and the page. */
export function dicomSeriesLine(s: DicomSeriesInfo): string {
  const [x, y, z] = s.voxelMm.map((v) => +v.toFixed(3));
  const noImage = s.skipped.length - s.localizers;
  const skipped =
    (noImage ? `; ${noImage} file(s) of no image skipped` : '') +
    (s.localizers ? `; ${s.localizers} localizer${s.localizers === 1 ? '' : 's'} (ImageType LOCALIZER) of the series skipped` : '');
  const others = s.otherSeries ? `; ${s.otherSeries} other series beside it` : '';
  return `DICOM ${s.modality} series ${s.uid}${s.description ? ` "${s.description}"` : ''}: ${s.slices} slices of ${s.columns} x ${s.rows}, voxel ${x} x ${y} x ${z} mm, ${s.transferSyntax}${skipped}${others}`;
}
