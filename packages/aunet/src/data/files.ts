// Node-only: finding, reading and writing the NIfTI files on disk.
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { buildDataset, type SliceDataset } from './dataset';
import { DataError } from './errors';
import { encodeNifti, isGzip, parseNifti, type NiftiImage, type Volume } from './nifti';
import { lesionMask } from './normalise';

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
 * Exported so that the fuzzer (src/fuzz.ts) runs the commands' own loading path on bytes.
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

/**
 * A lung mask (inside: values above 0.5, as label masks are read) from `file` for the volume
 * `of` (its file, for the message) of dims `dims` (x, y, slices); DataError naming both when the
 * shapes differ.
 */
export function readLungMask(file: string, dims: readonly number[], of: string): Uint8Array {
  const lung = readVolume(file);
  if (lung.dims.length !== dims.length || lung.dims.some((d, i) => d !== dims[i])) {
    throw new DataError(
      `${file} is ${lung.dims.join(' x ')} but ${of} is ${dims.join(' x ')}: the lung mask must have the image's shape.`,
      file,
    );
  }
  return lesionMask(lung);
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
 * Writes a NIfTI-1 file, gzipped when the name ends in .gz, creating its folder. Give `space`
 * of the volume it was computed from to keep that volume's orientation and voxel size.
 */
export function writeNifti(file: string, image: NiftiImage): void {
  // A NIfTI-2 input may have more than 32767 voxels along an axis (the hostile corpus's
  // nifti2-wide.nii), which NIfTI-1 cannot hold: say so naming the file, not with encodeNifti's
  // RangeError.
  if (image.dims.some((d) => d > 32767)) {
    throw new DataError(
      `cannot write ${file}: its dims ${image.dims.join(' x ')} exceed 32767, the most a NIfTI-1 file (what this writer ` +
        'writes) holds along one axis. Crop or resample the input to at most 32767 voxels a side.',
      file,
    );
  }
  const bytes = encodeNifti(image);
  mkdirSync(dirname(resolve(file)), { recursive: true });
  // A temporary file renamed into place: a kill never leaves a half-written volume under the name.
  const partial = `${file}.partial-${process.pid}`;
  writeFileSync(partial, file.endsWith('.gz') ? gzipSync(bytes) : bytes);
  renameSync(partial, file);
}
