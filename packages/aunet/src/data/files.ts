// Node-only: finding, reading and writing the NIfTI files on disk, reading a DICOM CT series
// (a folder, a .zip or one file: dicom.ts on the bytes), and reading a lung mask for an image.
// Outputs are written atomically through @aunet/nn's writeFileAtomic, as checkpoints are.
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { writeFileAtomic } from '@aunet/nn';
import { buildDataset, joinCases, slicesOf, type SliceDataset } from './dataset';
import { dicomFilesFromZip, isDicom, isZip, volumeFromDicom, type DicomInput, type DicomSeriesInfo, type DicomSeriesOptions } from './dicom';
import { DataError } from './errors';
import { encodeNifti, isGzip, parseNifti, toSliceStack, type NiftiImage, type NiftiSpace, type Volume } from './nifti';
import { NIFTI1_MAX_DIM } from './nifti-layout';
import { binaryMask } from './normalise';
import { affineText, sameGrid, voxelCorrespondence, voxelToWorld } from './space';
import { parseSplitFile, type GivenSplit } from './split';

/** The MedSeg COVID-19 copy shipped with the package (packages/aunet/data/medseg-covid). */
export const DEFAULT_DATA_DIR = fileURLToPath(new URL('../../data/medseg-covid', import.meta.url));

/** Image file names looked for, in order: the official Hounsfield file first. */
export const IMAGE_FILE_NAMES = ['tr_im.nii.gz', 'tr_im.nii', 'tr_im_lungwindow.nii.gz', 'tr_im_lungwindow.nii'];
export const MASK_FILE_NAMES = ['tr_mask.nii.gz', 'tr_mask.nii'];

const HOW_TO_POINT =
  'Pass --data DIR or set AUNET_DATA to a folder holding the MedSeg COVID-19 files (the official ' +
  'ones are listed in this package\'s data/medseg-covid/SOURCE.md), or the DICOM files of one CT series ' +
  'with its label volume tr_mask.nii.gz, or several cases (imagesTr/NAME.nii.gz with labelsTr/NAME.nii.gz, as the ' +
  'Decathlon and nnU-Net lay them out), or leave both unset to use that shipped copy.';

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
  /** The image's place in space (Volume.space): a lung mask with an orientation is put on the
   *  image's grid (see {@link maskOnImageGrid}). Absent: the mask is taken as stored. */
  space?: NiftiSpace;
}

/** The image a lung mask for the slices of `ds` must fit: the image file it was built from.
 *  DataError for a dataset of several cases: a lung mask file covers one volume. */
export function datasetImage(ds: SliceDataset): LungMaskImage {
  if (ds.cases) {
    throw new DataError(`${ds.imageSource} holds ${ds.cases.length} cases: a lung mask file covers one volume, so --lung-mask takes a single-volume data folder (--lungs auto finds the lungs in every case).`, ds.imageSource);
  }
  return { dims: ds.fileDims, sliceAxis: ds.sliceAxis, source: ds.imageSource, space: ds.space };
}

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
 * put on the image's grid as a label is (see {@link maskOnImageGrid}: reordered when it holds the
 * image's voxels in another order, refused when it lies elsewhere) when both have an orientation,
 * then checked against the image file's shape; DataError naming both files when the shapes differ.
 * The one lung-mask loader of `predict`, `evaluate`, `cv` and `ablation`.
 */
export function readLungMask(file: string, image: LungMaskImage): LungMask {
  const read = readVolume(file);
  const lung = image.space ? maskOnImageGrid({ ...image, space: image.space }, read, { what: 'lung mask' }) : read;
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
 * A DICOM image is the one series of the folder; its mask must lie on the series' grid. A folder
 * of several cases ({@link findCases}) gives one dataset of every case, in name order.
 */
export async function loadDataset(dir: string = resolveDataDir()): Promise<SliceDataset> {
  const cases = findCases(dir);
  if (cases) {
    const built: { name: string; ds: SliceDataset }[] = [];
    for (const c of cases) built.push({ name: c.name, ds: await loadPair(c, { requireLesion: false }) });
    return joinCases(built, dir, join(dir, LABELS_DIR));
  }
  return loadPair(findDataFiles(dir));
}

/** An image (a NIfTI file or a DICOM series) and its mask, put on the image's grid (see {@link maskOnImageGrid}), as a dataset. */
async function loadPair(files: { image: string; mask: string; dicom: boolean }, o: { requireLesion?: boolean } = {}): Promise<SliceDataset> {
  if (files.dicom) {
    const image = readVolume(files.image, { howToPick: PICK_DATA_SERIES });
    const mask = volumeFromBytes(await readFile(files.mask).catch((err: unknown) => Promise.reject(readError(files.mask, err))), files.mask);
    return buildDataset(image, maskOnImageGrid(image, mask, { image: 'the DICOM series' }), o);
  }
  const [imageBytes, maskBytes] = await Promise.all(
    [files.image, files.mask].map((f) => readFile(f).catch((err: unknown) => Promise.reject(readError(f, err)))),
  );
  const image = volumeFromBytes(imageBytes, files.image);
  return buildDataset(image, maskOnImageGrid(image, volumeFromBytes(maskBytes, files.mask)), o);
}

// ---------------------------------------------------------------------------------------------
// Data folders of several cases: the Medical Segmentation Decathlon / nnU-Net layout.

/** The folders of images and of label volumes in a data folder of several cases. */
export const IMAGES_DIR = 'imagesTr';
export const LABELS_DIR = 'labelsTr';
/** The optional description beside them (read for its channels and file ending). */
export const DATASET_JSON = 'dataset.json';

/** One case of a data folder of several: its name, image (a NIfTI file, or a DICOM series: a folder or .zip) and label volume. */
export interface CaseFiles {
  name: string;
  image: string;
  mask: string;
  dicom: boolean;
}

const NIFTI_NAME = /\.nii(\.gz)?$/i;
/** nnU-Net v2's channel suffix: NAME_0000.nii.gz is channel 0 of case NAME. */
const CHANNEL_SUFFIX = /^(.+)_(\d{4})$/;

const visibleEntries = (dir: string): string[] => {
  try {
    // Hidden files are left out: the Decathlon's archives hold macOS "._NAME.nii.gz" companions.
    return readdirSync(dir).filter((n) => !n.startsWith('.')).sort();
  } catch (err) {
    throw readError(dir, err);
  }
};
const isFolder = (path: string) => {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
};
const shortList = (names: string[]) => (names.length > 5 ? `${names.slice(0, 5).join(', ')} and ${names.length - 5} more` : names.join(', '));

/**
 * The cases of a data folder laid out as the Medical Segmentation Decathlon and nnU-Net lay
 * them out, or null when `dir` is not such a folder (it holds a single volume's files,
 * tr_im / tr_mask, or neither imagesTr/ nor labelsTr/). Labels are `labelsTr/NAME.nii.gz` (or
 * `.nii`); the image of case NAME is, in `imagesTr/`, `NAME.nii.gz` (Decathlon), `NAME_0000.nii.gz`
 * (nnU-Net v2's channel 0; `.nii` too), or a DICOM series: a folder `NAME/` or `NAME.zip`.
 * Without imagesTr/, the sub-folders of `dir` other than labelsTr/ that hold DICOM files are the
 * images, sub-folder NAME for labelsTr/NAME.nii.gz. An optional `dataset.json` must describe one
 * input channel. DataError, one line naming the files, for an image without a label, a label
 * without an image, two images of one case, a second channel, no case at all.
 */
export function findCases(dir: string): CaseFiles[] | null {
  if (!isFolder(dir)) return null;
  const top = (names: string[]) => names.some((n) => existsSync(join(dir, n)));
  if (top(IMAGE_FILE_NAMES) || top(MASK_FILE_NAMES)) return null;
  const imagesDir = join(dir, IMAGES_DIR);
  const labelsDir = join(dir, LABELS_DIR);
  const hasImages = isFolder(imagesDir);
  if (!hasImages && !isFolder(labelsDir)) return null;
  if (!isFolder(labelsDir)) throw new DataError(`${dir} has ${IMAGES_DIR}/ but no ${LABELS_DIR}/: every case needs its label volume, ${LABELS_DIR}/NAME.nii.gz.`, dir);
  checkDatasetJson(dir);

  const labels = new Map<string, string>();
  for (const n of visibleEntries(labelsDir)) {
    const path = join(labelsDir, n);
    if (NIFTI_NAME.test(n) && !isFolder(path)) {
      const name = n.replace(NIFTI_NAME, '');
      if (labels.has(name)) throw new DataError(`${LABELS_DIR}/ of ${dir} holds two label volumes of case ${name} (${basename(labels.get(name)!)}, ${n}): keep one.`, labelsDir);
      labels.set(name, path);
    }
  }

  // Each image: its case name, and whether it is a DICOM series.
  const images = new Map<string, { path: string; dicom: boolean }[]>();
  const channels: string[] = [];
  const add = (name: string, path: string, dicom: boolean) => images.set(name, [...(images.get(name) ?? []), { path, dicom }]);
  if (hasImages) {
    for (const n of visibleEntries(imagesDir)) {
      const path = join(imagesDir, n);
      if (isFolder(path)) add(n, path, true);
      else if (/\.zip$/i.test(n)) add(n.replace(/\.zip$/i, ''), path, true);
      else if (NIFTI_NAME.test(n)) {
        const stem = n.replace(NIFTI_NAME, '');
        const channel = CHANNEL_SUFFIX.exec(stem);
        // A stem that is itself a label's name is the case (a Decathlon name ending in 4 digits);
        // else NAME_XXXX is channel XXXX of NAME (nnU-Net v2).
        if (labels.has(stem) || !channel) add(stem, path, false);
        else if (Number(channel[2]) === 0) add(channel[1], path, false);
        else channels.push(`${IMAGES_DIR}/${n}`);
      }
    }
  } else {
    for (const n of visibleEntries(dir)) {
      const path = join(dir, n);
      if (n !== LABELS_DIR && isFolder(path) && findDicomFiles(path).length > 0) add(n, path, true);
    }
  }
  if (channels.length) {
    throw new DataError(
      `${dir} has images of a second input channel (${shortList(channels)}; nnU-Net names channel c of case NAME NAME_000c): this network takes one CT channel, NAME_0000.nii.gz; move the others away.`,
      dir,
    );
  }
  const twice = [...images].filter(([, list]) => list.length > 1);
  if (twice.length) {
    const [name, list] = twice[0];
    throw new DataError(`${dir} has ${list.length} images of case ${name} (${list.map((i) => basename(i.path)).join(', ')}): keep one.`, dir);
  }
  const where = hasImages ? `${IMAGES_DIR}/` : `${dir} (a sub-folder of DICOM files per case)`;
  const unlabelled = [...images.keys()].filter((name) => !labels.has(name));
  if (unlabelled.length) {
    throw new DataError(
      `${unlabelled.length} image${unlabelled.length > 1 ? 's' : ''} in ${where} ha${unlabelled.length > 1 ? 've' : 's'} no label volume: ${shortList(unlabelled)} (looked for ${LABELS_DIR}/NAME.nii.gz or .nii). Add the labels or move those images away.`,
      dir,
    );
  }
  const imageless = [...labels.keys()].filter((name) => !images.has(name));
  if (imageless.length) {
    const looked = hasImages ? `${IMAGES_DIR}/NAME.nii.gz, NAME_0000.nii.gz (or .nii), a DICOM folder NAME/ or NAME.zip` : `a sub-folder NAME/ of ${dir} holding DICOM files`;
    throw new DataError(
      `${imageless.length} label volume${imageless.length > 1 ? 's' : ''} in ${LABELS_DIR}/ ha${imageless.length > 1 ? 've' : 's'} no image: ${shortList(imageless)} (looked for ${looked}). Add the images or move those labels away.`,
      dir,
    );
  }
  if (!images.size) throw new DataError(`${dir} holds no case: ${where} has no image and ${LABELS_DIR}/ no label volume. ${HOW_TO_POINT}`, dir);
  return [...images].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, [image]]) => ({ name, image: image.path, mask: labels.get(name)!, dicom: image.dicom }));
}

/** Refuses a dataset.json that is not JSON, describes more than one input channel, or files this reader cannot read. */
function checkDatasetJson(dir: string): void {
  const file = join(dir, DATASET_JSON);
  if (!existsSync(file)) return;
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new DataError(`${file} is not valid JSON (${(err as Error).message}): fix it, or remove it (it is optional).`, file);
  }
  // Decathlon (v1) names the inputs in "modality", nnU-Net v2 in "channel_names".
  const inputs = (json?.channel_names ?? json?.modality) as Record<string, unknown> | undefined;
  const count = inputs && typeof inputs === 'object' ? Object.keys(inputs).length : 1;
  if (count > 1) {
    throw new DataError(`${file} describes ${count} input channels (${Object.values(inputs!).join(', ')}): this network takes one CT channel.`, file);
  }
  const ending = json?.file_ending;
  if (typeof ending === 'string' && !/^\.nii(\.gz)?$/i.test(ending)) {
    throw new DataError(`${file} gives the file ending ${ending}: this reader reads NIfTI (.nii.gz, .nii) and DICOM; convert the images and labels to NIfTI.`, file);
  }
}

/** The split file `path` (see parseSplitFile); DataError naming it when it cannot be read or used. */
export function readSplitFile(path: string): GivenSplit {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new DataError(`split file ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${(err as Error).message})`}.`, path);
  }
  return parseSplitFile(text, path);
}

/**
 * A mask (a label volume, a lung mask) on its image's grid: voxel (i, j, k) of the mask over voxel
 * (i, j, k) of the image (for a DICOM series, slices ordered along the normal as the series is
 * read, as ITK and 3D Slicer write a segmentation of it). When both have an orientation: a mask
 * on the same grid ({@link sameGrid}: its 8 corner voxels within 0.1 voxel of the image's) is
 * taken as stored; one that holds the same voxels in another order (slices reversed, rows
 * flipped, axes swapped, as dcm2niix writes a DICOM series' NIfTI) is reordered onto the image's
 * grid; one of the image's dims on another grid is refused (DataError, one line). A mask or image
 * without orientation, or a mask of other dims that is not the image's voxels reordered, is
 * returned as stored (the callers' dims checks refuse the latter). `o.image` names the image in
 * the message ("the image", "the DICOM series", "its label"), `o.what` the mask ("mask", "lung mask").
 */
export function maskOnImageGrid(
  image: { dims: readonly number[]; space: NiftiSpace; sliceAxis: 0 | 1 | 2; source: string },
  mask: Volume,
  o: { image?: string; what?: string } = {},
): Volume {
  const a = voxelToWorld(image.space);
  const b = voxelToWorld(mask.space);
  if (!a || !b) return mask;
  const sameDims = image.dims.length === mask.dims.length && image.dims.every((d, i) => d === mask.dims[i]);
  if (sameDims && sameGrid({ dims: image.dims, affine: a }, { dims: mask.dims, affine: b })) return mask;
  const count = (d: readonly number[]) => d.reduce((p, n) => p * n, 1);
  // Within the same 0.1 voxel as sameGrid: float32 headers written by two tools agree no closer.
  const order = count(image.dims) === count(mask.dims) ? voxelCorrespondence({ dims: mask.dims, affine: b }, { dims: image.dims, affine: a }, 0.1) : null;
  if (!order) {
    if (!sameDims) return mask;
    const name = o.image ?? 'the image';
    const what = o.what ?? 'mask';
    throw new DataError(
      `${mask.source} does not lie on the grid of ${name} ${image.source}: its voxel-to-world matrix is ${affineText(b)}, that of ${name} ${affineText(a)}, ` +
        `and its voxels are not those of ${name} in another order. Resample the ${what} onto the grid of ${name} (as ITK and 3D Slicer read it).`,
      mask.source,
    );
  }
  const data = new Float32Array(order.length);
  for (let t = 0; t < order.length; t++) data[t] = mask.data[order[t]];
  return { ...mask, dims: [image.dims[0], image.dims[1], image.dims[2]], data, space: image.space, sliceAxis: image.sliceAxis };
}

/** The former name of {@link maskOnImageGrid}, from when it served DICOM series only. */
export const maskOnSeriesGrid = (image: Volume, mask: Volume): Volume => maskOnImageGrid(image, mask, { image: 'the DICOM series' });

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

