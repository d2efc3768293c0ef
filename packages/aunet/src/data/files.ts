// Node-only: finding, reading and writing the NIfTI files on disk, and reading a lung mask for an
// image. Outputs are written atomically through @aunet/nn's writeFileAtomic, as checkpoints are.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { writeFileAtomic } from '@aunet/nn';
import { buildDataset, slicesOf, type SliceDataset } from './dataset';
import { DataError } from './errors';
import { encodeNifti, isGzip, parseNifti, toSliceStack, type NiftiImage, type Volume } from './nifti';
import { NIFTI1_MAX_DIM } from './nifti-layout';
import { binaryMask } from './normalise';

/** The MedSeg COVID-19 copy shipped with the package (packages/aunet/data/medseg-covid). */
export const DEFAULT_DATA_DIR = fileURLToPath(new URL('../../data/medseg-covid', import.meta.url));

/** Image file names looked for, in order: the official Hounsfield file first. */
export const IMAGE_FILE_NAMES = ['tr_im.nii.gz', 'tr_im.nii', 'tr_im_lungwindow.nii.gz', 'tr_im_lungwindow.nii'];
export const MASK_FILE_NAMES = ['tr_mask.nii.gz', 'tr_mask.nii'];

const HOW_TO_POINT =
  'Pass --data DIR or set AUNET_DATA to a folder holding the MedSeg COVID-19 files (the official ' +
  'ones are listed in this package\'s data/medseg-covid/SOURCE.md), or leave both unset to use that shipped copy.';

/** The data folder, absolute: the --data flag, else $AUNET_DATA, else {@link DEFAULT_DATA_DIR}. */
export function resolveDataDir(flag?: string): string {
  const env = process.env.AUNET_DATA;
  if (flag) return resolve(flag);
  if (env) return resolve(env);
  return DEFAULT_DATA_DIR;
}

/** The image and mask files in a data folder; DataError naming the folder when either is missing. */
export function findDataFiles(dir: string): { image: string; mask: string } {
  if (!existsSync(dir)) throw new DataError(`Data folder ${dir} does not exist. ${HOW_TO_POINT}`, dir);
  if (!statSync(dir).isDirectory()) throw new DataError(`${dir} is a file, not a data folder. ${HOW_TO_POINT}`, dir);
  const first = (names: string[]) => names.map((n) => join(dir, n)).find((p) => existsSync(p));
  const image = first(IMAGE_FILE_NAMES);
  const mask = first(MASK_FILE_NAMES);
  const missing = [
    image ? null : `no image (looked for ${IMAGE_FILE_NAMES.join(', ')})`,
    mask ? null : `no mask (looked for ${MASK_FILE_NAMES.join(', ')})`,
  ].filter((m) => m !== null);
  if (!image || !mask) throw new DataError(`Data folder ${dir} has ${missing.join(' and ')}. ${HOW_TO_POINT}`, dir);
  return { image, mask };
}

/** Reads a .nii or .nii.gz file; DataError naming it when it cannot be read or is not valid. */
export function readVolume(file: string): Volume {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw readError(file, err);
  }
  return volumeFromBytes(bytes, file);
}

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
  return new DataError(`${file} ${why}. Pass the path of a .nii or .nii.gz file.`, file);
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

/** Finds, reads and checks the image and mask of a data folder (default: {@link resolveDataDir}). */
export async function loadDataset(dir: string = resolveDataDir()): Promise<SliceDataset> {
  const files = findDataFiles(dir);
  const [imageBytes, maskBytes] = await Promise.all(
    [files.image, files.mask].map((f) => readFile(f).catch((err: unknown) => Promise.reject(readError(f, err)))),
  );
  return buildDataset(volumeFromBytes(imageBytes, files.image), volumeFromBytes(maskBytes, files.mask));
}

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

