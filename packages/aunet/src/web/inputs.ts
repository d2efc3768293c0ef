// What the web page does with dropped files, on bytes and typed arrays only (no DOM), so that
// Node tests can check it too; its mask, report and downloads are prediction-report.ts's, as
// `predict`'s files are. Browser-safe.

import { dicomFilesFromZip, dicomSeriesLine, isDicom, isZip, volumeFromDicom, type DicomInput } from '../data/dicom';
import { DataError } from '../data/errors';
import { defaultSpace, isGzip, parseNifti, type NiftiSpace, type Volume } from '../data/nifti';
import { mayBeNiftiHeader } from '../data/nifti-layout';
import { normaliseImage, type IntensityKind } from '../data/normalise';

export type DroppedKind = 'nifti' | 'picture' | 'checkpoint' | 'dicom' | 'zip';

export const ACCEPTED =
  '.nii, .nii.gz (NIfTI-1 or -2 CT volumes), the DICOM files of one CT series (dropped together, or as one .zip), .png, .jpg (a single slice), .safetensors (a checkpoint)';

/** What the page says to do where the dropped DICOM files hold several series. */
export const PICK_SERIES_ON_PAGE = 'Drop the files (or a zip) of one series only.';

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];
const JPEG_MAGIC = [0xff, 0xd8, 0xff];
const startsWith = (b: Uint8Array, magic: number[]) => b.length >= magic.length && magic.every((m, i) => b[i] === m);

/** A safetensors file: 8-byte little-endian header length, then a JSON header starting with "{". */
function looksLikeSafetensors(b: Uint8Array): boolean {
  if (b.length < 10) return false;
  const n = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  return n > 1n && n <= BigInt(b.length - 8) && b[8] === 0x7b;
}

/**
 * What a dropped file is, by its name and, where the name says nothing, its first bytes; a
 * DataError naming the file for anything else.
 */
export function classifyFile(name: string, bytes: Uint8Array): DroppedKind {
  const lower = name.toLowerCase();
  if (lower.endsWith('.safetensors')) return 'checkpoint';
  if (/\.nii(\.gz)?$/.test(lower)) return 'nifti';
  if (/\.(png|jpe?g)$/.test(lower)) return 'picture';
  if (lower.endsWith('.zip')) return 'zip';
  if (lower.endsWith('.dcm')) return 'dicom';
  if (startsWith(bytes, PNG_MAGIC) || startsWith(bytes, JPEG_MAGIC)) return 'picture';
  // DICOM files often have no extension at all (IM0001, 1.2.840...): known by "DICM" at byte 128.
  if (isDicom(bytes)) return 'dicom';
  if (isZip(bytes)) return 'zip';
  if (looksLikeSafetensors(bytes)) return 'checkpoint';
  if (isGzip(bytes) || mayBeNiftiHeader(bytes)) return 'nifti';
  throw new DataError(`${name} is not a CT volume or a checkpoint: this page reads ${ACCEPTED}.`, name);
}

/** A NIfTI volume from dropped bytes, checked to be a CT image the network can read (HU, 8-bit or 0..1). */
export function volumeFromNifti(name: string, bytes: Uint8Array): { volume: Volume; intensity: IntensityKind; min: number; max: number } {
  const volume = parseNifti(bytes, name);
  const { kind, min, max } = normaliseImage(volume);
  return { volume, intensity: kind, min, max };
}

/**
 * The CT series in dropped DICOM files and zips of them (the page's drop), read as `predict`
 * reads a DICOM folder (volumeFromDicom) and checked as a NIfTI scan is; `series` is the line
 * saying which series it is. DataError naming the file or the series otherwise.
 */
export function volumeFromDicomFiles(dropped: readonly DicomInput[], name: string): { volume: Volume; intensity: IntensityKind; min: number; max: number; series: string } {
  const files = dropped.flatMap((f) => (isZip(f.bytes) || f.name.toLowerCase().endsWith('.zip') ? dicomFilesFromZip(f.bytes, f.name) : [f]));
  const { volume, series } = volumeFromDicom(files, name, { howToPick: PICK_SERIES_ON_PAGE });
  const { kind, min, max } = normaliseImage(volume);
  return { volume, intensity: kind, min, max, series: dicomSeriesLine(series) };
}

/** The name a dropped DICOM series goes by (its mask downloads as NAME_lesions.nii.gz): a zip's own name, else "dicom-series". */
export function dicomScanName(dropped: readonly { name: string }[]): string {
  return dropped.length === 1 && dropped[0].name.toLowerCase().endsWith('.zip') ? dropped[0].name : 'dicom-series';
}

/**
 * A picture's pixels (RGBA, row 0 at the top, as canvases give them) as a one-slice 8-bit
 * volume: grey = luminance (ITU-R BT.601). Rows are kept in display order, which is how the
 * project reads a file without orientation (see displayFlips), so the mask lies over the picture.
 */
export function volumeFromPicture(name: string, rgba: Uint8ClampedArray | Uint8Array, width: number, height: number): { volume: Volume; intensity: IntensityKind; min: number; max: number } {
  if (rgba.length !== width * height * 4) throw new DataError(`${name}: the decoded picture has ${rgba.length} bytes, not ${width} x ${height} RGBA pixels`, name);
  const data = new Float32Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = Math.round(0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]);
  const volume: Volume = { source: name, dims: [width, height, 1], data, sliceAxis: 2, datatype: 'uint8', niftiVersion: 1, scaling: null, space: defaultSpace(), description: '' };
  const { kind, min, max } = normaliseImage(volume);
  return { volume, intensity: kind, min, max };
}

/** Whether the header places the voxels in space (a qform or an sform). */
export const isOriented = (space: NiftiSpace) => space.qformCode > 0 || space.sformCode > 0;

/**
 * The space NiiVue shows a volume in. An oriented volume keeps its own; one without orientation
 * gets an sform that draws it as stored (column x rightwards, row y downwards, in NiiVue's
 * radiological view), which is how `predict`'s pictures show such files (MedSeg's slices, pictures):
 * columns towards the patient's left (world -x: NIfTI's world is RAS+, and the radiological view
 * puts the patient's left on the right), rows towards posterior (world -y).
 */
export function displaySpace(space: NiftiSpace): NiftiSpace {
  if (isOriented(space)) return space;
  const size = (i: number) => (Number.isFinite(space.pixdim[i]) && space.pixdim[i] !== 0 ? Math.abs(space.pixdim[i]) : 1);
  return { ...space, sformCode: 2, srow: [[-size(1), 0, 0, 0], [0, -size(2), 0, 0], [0, 0, size(3), 0]] };
}

/** Window (width) and level (centre) to start with: the network's lung window for HU images, else the full range. */
export function defaultWindow(intensity: IntensityKind): { window: number; level: number } {
  if (intensity === 'hu') return { window: 1400, level: -300 };
  if (intensity === '8bit') return { window: 255, level: 127.5 };
  return { window: 1, level: 0.5 };
}

/** Window presets (name, width, level) for an image of this kind. */
export function windowPresets(intensity: IntensityKind): { name: string; window: number; level: number }[] {
  if (intensity !== 'hu') return [{ name: 'full range', ...defaultWindow(intensity) }];
  return [
    { name: "network's (-1000..400 HU)", window: 1400, level: -300 },
    { name: 'lung (W 1500, L -600)', window: 1500, level: -600 },
    { name: 'mediastinum (W 400, L 40)', window: 400, level: 40 },
  ];
}

/** The file name stem of an input: scan.nii.gz -> scan. */
export const stem = (name: string) => name.replace(/\.(nii(\.gz)?|png|jpe?g|zip|dcm)$/i, '') || 'scan';
