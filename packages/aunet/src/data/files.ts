// Node-only: finding, reading and writing the NIfTI files on disk, reading a DICOM CT series
// (a folder, a .zip or one file: dicom.ts on the bytes), and reading a lung mask for an image.
// Outputs are written atomically through @aunet/nn's writeFileAtomic, as checkpoints are.
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { writeFileAtomic } from '@aunet/nn';
import { buildDataset, slicesOf, type SliceDataset } from './dataset';
import { dicomFilesFromZip, isDicom, isZip, volumeFromDicom, type DicomInput, type DicomSeriesInfo, type DicomSeriesOptions } from './dicom';
import { DataError } from './errors';
import { encodeNifti, isGzip, parseNifti, toSliceStack, type NiftiImage, type Volume } from './nifti';
import { NIFTI1_MAX_DIM } from './nifti-layout';
import { binaryMask } from './normalise';
import { affineDifference, affineText, voxelCorrespondence, voxelToWorld } from './space';

/** The MedSeg COVID-19 copy shipped with the package (packages/aunet/data/medseg-covid). */
export const DEFAULT_DATA_DIR = fileURLToPath(new URL('../../data/medseg-covid', import.meta.url));

/** Image file names looked for, in order: the official Hounsfield file first. */
export const IMAGE_FILE_NAMES = ['tr_im.nii.gz', 'tr_im.nii', 'tr_im_lungwindow.nii.gz', 'tr_im_lungwindow.nii'];
export const MASK_FILE_NAMES = ['tr_mask.nii.gz', 'tr_mask.nii'];

const HOW_TO_POINT =
  'Pass --data DIR or set AUNET_DATA to a folder holding the MedSeg COVID-19 files (the official ' +
  'ones are listed in this package\'s data/medseg-covid/SOURCE.md), or the DICOM files of one CT series ' +
  'with its label volume tr_mask.nii.gz, or leave both unset to use that shipped copy.';

/** How a data folder's series is picked where it holds several: train and evaluate take one series per folder. */
const PICK_DATA_SERIES = 'A data folder holds one series: move the others into folders of their own.';

/** The data folder, absolute: the --data flag, else $AUNET_DATA, else {@link DEFAULT_DATA_DIR}. */
export function resolveDataDir(flag?: string): string {
  const env = process.env.AUNET_DATA;
  if (flag) return resolve(flag);
  if (env) return resolve(env);
  return DEFAULT_DATA_DIR;
}

/**
 * The image and mask of a data folder: the image is the first NIfTI file of
 * {@link IMAGE_FILE_NAMES}, else the DICOM CT series found in the folder and its subfolders
 * (`image` is then the folder and `dicom` true); the mask is a NIfTI file of
 * {@link MASK_FILE_NAMES}. DataError naming the folder when either is missing.
 */
export function findDataFiles(dir: string): { image: string; mask: string; dicom: boolean } {
  if (!existsSync(dir)) throw new DataError(`Data folder ${dir} does not exist. ${HOW_TO_POINT}`, dir);
  if (!statSync(dir).isDirectory()) throw new DataError(`${dir} is a file, not a data folder. ${HOW_TO_POINT}`, dir);
  const first = (names: string[]) => names.map((n) => join(dir, n)).find((p) => existsSync(p));
  const nifti = first(IMAGE_FILE_NAMES);
  const dicom = !nifti && findDicomFiles(dir).length > 0;
  const image = nifti ?? (dicom ? dir : undefined);
  const mask = first(MASK_FILE_NAMES);
  const missing = [
    image ? null : `no image (looked for ${IMAGE_FILE_NAMES.join(', ')} and for DICOM files)`,
    mask ? null : `no mask (looked for ${MASK_FILE_NAMES.join(', ')})`,
  ].filter((m) => m !== null);
  if (!image || !mask) throw new DataError(`Data folder ${dir} has ${missing.join(' and ')}. ${HOW_TO_POINT}`, dir);
  return { image, mask, dicom };
}

/** Folders deeper than this below the one given are not searched for DICOM files (PACS exports nest about 4 deep). */
const DICOM_SEARCH_DEPTH = 8;

/** Whether the file starts as a DICOM Part 10 file ("DICM" at byte 128), reading only its first 132 bytes. */
function fileIsDicom(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const head = new Uint8Array(132);
    return readSync(fd, head, 0, 132, 0) === 132 && isDicom(head);
  } catch {
    return false; // unreadable files are not taken (a folder's other files)
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The DICOM files (by their "DICM" prefix, whatever their names) in a folder and its subfolders
 * down to `maxDepth` (0: the folder alone), sorted by path; hidden files and folders are left out.
 */
export function findDicomFiles(dir: string, maxDepth = DICOM_SEARCH_DEPTH): string[] {
  const found: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir).sort();
  } catch (err) {
    throw readError(dir, err);
  }
  for (const name of entries) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    let stat;
    try {
      stat = statSync(path);
    } catch {
      continue; // a dangling link
    }
    if (stat.isDirectory()) {
      if (maxDepth > 0) found.push(...findDicomFiles(path, maxDepth - 1));
    } else if (stat.isFile() && fileIsDicom(path)) found.push(path);
  }
  return found;
}

/** A scan as read: the volume, and for a DICOM series what series it is. */
export interface Scan {
  volume: Volume;
  series?: DicomSeriesInfo;
}

/**
 * Reads a scan: a .nii or .nii.gz file, or a DICOM CT series given as a folder (searched with its
 * subfolders), a .zip of its files, or one DICOM file (a series of one slice). `o.series` picks a
 * series where there are several. DataError naming the path when it cannot be read or is not valid.
 */
export function readScan(path: string, o: DicomSeriesOptions = {}): Scan {
  let isFolder = false;
  try {
    isFolder = statSync(path).isDirectory();
  } catch (err) {
    throw readError(path, err);
  }
  if (isFolder) {
    const found = findDicomFiles(path);
    if (!found.length) {
      throw new DataError(`${path} is a folder holding no DICOM file (searched ${DICOM_SEARCH_DEPTH} folders deep for files starting with the DICOM prefix). ${WHAT_TO_PASS}`, path);
    }
    return volumeFromDicom(found.map(readDicomInput), path, o);
  }
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw readError(path, err);
  }
  if (isZip(bytes) || /\.zip$/i.test(path)) return volumeFromDicom(dicomFilesFromZip(bytes, path), path, o);
  if (isDicom(bytes) || /\.dcm$/i.test(path)) return volumeFromDicom([{ name: path, bytes }], path, o);
  if (o.series !== undefined) throw new DataError(`${path} is not a DICOM series: a series is picked (--series) only among the DICOM files of a folder or a zip.`, path);
  return { volume: volumeFromBytes(bytes, path) };
}

/** Reads a .nii or .nii.gz file, or a DICOM series (see {@link readScan}); DataError naming it when it cannot be read or is not valid. */
export function readVolume(file: string, o: DicomSeriesOptions = {}): Volume {
  return readScan(file, o).volume;
}

function readDicomInput(path: string): DicomInput {
  try {
    return { name: path, bytes: readFileSync(path) };
  } catch (err) {
    throw readError(path, err);
  }
}

const WHAT_TO_PASS = 'Pass a .nii or .nii.gz file, or a folder (or .zip) holding the DICOM files of one CT series.';

/**
 * The volume in a file's bytes, as {@link readVolume} reads it (`file` names it in errors).
 * Gunzips with node:zlib, which checks the CRC and length that fflate (in parseNifti) does not.
 * Exported so that the fuzzer (src/attack/fuzz.ts) runs the commands' own loading path on bytes.
 */
export function volumeFromBytes(bytes: Uint8Array, file: string): Volume {
  if (!isGzip(bytes)) return parseNifti(bytes, file);
  let raw: Uint8Array;
  try {
    raw = gunzipSync(bytes, { chunkSize: 1 << 20 }); // large chunks: several times faster on 200 MB
  } catch (err) {
    throw new DataError(
      `${file}: the gzip data is corrupt or truncated (${(err as Error).message}). Copy or download the file again.`,
      file,
    );
  }
  return parseNifti(raw, file);
}

function readError(file: string, err: unknown): DataError {
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a folder, not a file' : `cannot be read (${(err as Error).message})`;
  return new DataError(`${file} ${why}. ${WHAT_TO_PASS}`, file);
}

/** The image file a lung mask must fit: its dims as stored in the file (not those of its slice
 *  stack, which differ when slices run along x or y), the axis its slices run along, its name. */
export interface LungMaskImage {
  /** [nx, ny, nz] of the image file (Volume.dims, SliceDataset.fileDims). */
  dims: readonly number[];
  sliceAxis: 0 | 1 | 2;
  /** The image file, for messages. */
  source: string;
}

/** The image a lung mask for the slices of `ds` must fit: the image file it was built from. */
export const datasetImage = (ds: SliceDataset): LungMaskImage => ({ dims: ds.fileDims, sliceAxis: ds.sliceAxis, source: ds.imageSource });

/** A lung mask read for an image, in the two layouts its users need. */
export interface LungMask {
  source: string;
  /** 1 inside the lungs, in the file's layout (x fastest): for a whole volume (`predict`). */
  voxels: Uint8Array;
  /** One mask per slice along the image's slice axis, as the image's slices are cut: for
   *  slice-wise scoring (`evaluate`, `cv`, `ablation`). */
  slices: Uint8Array[];
}

/**
 * The lung mask in `file` (inside: values above 0.5, as label masks are read) for `image`,
 * checked against the image file's shape; DataError naming both files when the shapes differ.
 * The one lung-mask loader of `predict`, `evaluate`, `cv` and `ablation`.
 */
export function readLungMask(file: string, image: LungMaskImage): LungMask {
  const lung = readVolume(file);
  const dims = image.dims;
  if (lung.dims.length !== dims.length || lung.dims.some((d, i) => d !== dims[i])) {
    throw new DataError(
      `${file} is ${lung.dims.join(' x ')} but ${image.source} is ${dims.join(' x ')}: the lung mask must have the image's shape.`,
      file,
    );
  }
  const voxels = binaryMask(lung);
  const { data: stack, dims: [width, height] } = toSliceStack(voxels, dims, image.sliceAxis);
  return { source: file, voxels, slices: slicesOf(stack, width * height) };
}

/**
 * Finds, reads and checks the image and mask of a data folder (default: {@link resolveDataDir}).
 * A DICOM image is the one series of the folder; its mask must lie on the series' grid.
 */
export async function loadDataset(dir: string = resolveDataDir()): Promise<SliceDataset> {
  const files = findDataFiles(dir);
  if (files.dicom) {
    const image = readVolume(files.image, { howToPick: PICK_DATA_SERIES });
    const mask = volumeFromBytes(await readFile(files.mask).catch((err: unknown) => Promise.reject(readError(files.mask, err))), files.mask);
    return buildDataset(image, maskOnSeriesGrid(image, mask));
  }
  const [imageBytes, maskBytes] = await Promise.all(
    [files.image, files.mask].map((f) => readFile(f).catch((err: unknown) => Promise.reject(readError(f, err)))),
  );
  return buildDataset(volumeFromBytes(imageBytes, files.image), volumeFromBytes(maskBytes, files.mask));
}

/**
 * A label volume for a DICOM series, on the series' grid: voxel (i, j, k) of the mask over voxel
 * (i, j, k) of the series, slices ordered along the normal as the series is read (as ITK and 3D
 * Slicer write a segmentation of it). A mask that holds the same voxels in another order (slices
 * reversed, rows flipped, as dcm2niix writes its NIfTI) is reordered onto the series' grid; one
 * on another grid is refused; one without orientation (or of another shape, which buildDataset
 * refuses) is taken as stored.
 */
export function maskOnSeriesGrid(image: Volume, mask: Volume): Volume {
  const a = voxelToWorld(image.space);
  const b = voxelToWorld(mask.space);
  if (!a || !b || image.dims.some((d, i) => d !== mask.dims[i])) return mask;
  if (affineDifference(a, b) <= 0.01) return mask;
  const order = voxelCorrespondence({ dims: mask.dims, affine: b }, { dims: image.dims, affine: a });
  if (!order) {
    throw new DataError(
      `${mask.source} does not lie on the grid of the DICOM series ${image.source}: its voxel-to-world matrix is ${affineText(b)}, the series' ${affineText(a)}, ` +
        'and its voxels are not the series\' voxels in another order. Resample the mask onto the series (the grid ITK and 3D Slicer read it on).',
      mask.source,
    );
  }
  const data = new Float32Array(order.length);
  for (let t = 0; t < order.length; t++) data[t] = mask.data[order[t]];
  return { ...mask, data, space: image.space, sliceAxis: image.sliceAxis };
}

/** The name of a scan's outputs: scan.nii.gz, scan.zip and the folder scan/ give `scan`. */
export const scanStem = (path: string) => basename(path).replace(/\.(nii(\.gz)?|zip|dcm)$/i, '');

/**
 * The bytes of a NIfTI-1 file named `file`: gzipped when the name ends in .gz. Give `space` of
 * the volume it was computed from to keep that volume's orientation and voxel size.
 */
export function niftiFileBytes(file: string, image: NiftiImage): Uint8Array {
  // A NIfTI-2 input may have more than 32767 voxels along an axis (the hostile corpus's
  // nifti2-wide.nii), which NIfTI-1 cannot hold: say so naming the file, not with encodeNifti's
  // RangeError.
  if (image.dims.some((d) => d > NIFTI1_MAX_DIM)) {
    throw new DataError(
      `cannot write ${file}: its dims ${image.dims.join(' x ')} exceed ${NIFTI1_MAX_DIM}, the most a NIfTI-1 file (what this ` +
        `writer writes) holds along one axis. Crop or resample the input to at most ${NIFTI1_MAX_DIM} voxels a side.`,
      file,
    );
  }
  const bytes = encodeNifti(image);
  return file.endsWith('.gz') ? gzipSync(bytes) : bytes;
}

/**
 * Writes a NIfTI-1 file (see {@link niftiFileBytes}) atomically, creating its folder: a
 * temporary file, fsynced and renamed into place (@aunet/nn's writeFileAtomic, as checkpoints),
 * so a kill or a crash never leaves a half-written volume under the name.
 */
export async function writeNifti(file: string, image: NiftiImage): Promise<void> {
  const bytes = niftiFileBytes(file, image);
  await mkdir(dirname(resolve(file)), { recursive: true });
  await writeFileAtomic(file, bytes);
}

