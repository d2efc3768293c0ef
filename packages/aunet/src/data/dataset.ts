// Image and label volumes to a list of normalised slices with binary lesion masks.
import { DataError } from './errors';
import { toSliceStack, type NiftiSpace, type Volume } from './nifti';
import type { CaseRange } from './split';
import { binaryMask, normaliseImage, type IntensityKind } from './normalise';
import { resizeImage, resizeNearest } from './transforms';

/** One case of a dataset of several: its slices in the dataset, and the files they came from. */
export interface CaseSlices extends CaseRange {
  imageSource: string;
  maskSource: string;
  /** The case's image file's [nx, ny, nz] and slice axis (see SliceDataset.fileDims). */
  fileDims: [number, number, number];
  sliceAxis: 0 | 1 | 2;
}

/**
 * The slices of one image volume and its mask, at the files' resolution; or of several cases
 * (`cases`), each case's slices following the previous case's.
 */
export interface SliceDataset {
  /** Per slice, height * width values in 0..1 (views into one buffer). */
  images: Float32Array[];
  /** Per slice, height * width values: 1 lesion, 0 background (views into one buffer). */
  masks: Uint8Array[];
  height: number;
  width: number;
  count: number;
  /** The image file's [nx, ny, nz], and the axis its slices run along (see Volume.sliceAxis):
   *  another volume on the same grid (a lung mask) is sliced with {@link toSliceStack}. For a
   *  dataset of several cases, the stack of all slices ([width, height, count], axis 2): each
   *  case's own file is in `cases`. */
  fileDims: [number, number, number];
  sliceAxis: 0 | 1 | 2;
  /** How the image's values were read; see normaliseImage. */
  intensity: IntensityKind;
  /** The image file's place in space (Volume.space), for one volume: another volume for its
   *  slices (a lung mask) is put on its grid. Absent for a dataset of several cases. */
  space?: NiftiSpace;
  imageSource: string;
  maskSource: string;
  /** Per slice, the number of lesion pixels (0 for a slice without lesion). */
  lesionPixels: number[];
  /** A dataset of several cases (a Decathlon / nnU-Net folder): the cases in order, sorted by
   *  name. Absent for one volume. Splits are then made by case (see splitCases). */
  cases?: CaseSlices[];
}

function shapeText(vol: Volume): string {
  return `${vol.dims.join(' x ')} (x, y, slices)`;
}

/**
 * Checks that image and mask have the same shape and that the mask has a lesion somewhere,
 * normalises the image to 0..1 and merges the lesion labels. Both are sliced along the image's
 * slice axis. Throws DataError naming the files. `requireLesion: false` takes a mask without
 * lesion (one case of several, checked as a whole by {@link joinCases}).
 */
export function buildDataset(image: Volume, mask: Volume, o: { requireLesion?: boolean } = {}): SliceDataset {
  if (image.dims.some((d, i) => d !== mask.dims[i])) {
    throw new DataError(
      `${image.source} is ${shapeText(image)} but ${mask.source} is ${shapeText(mask)}: image and mask must have ` +
        'the same shape, one label per voxel. Pass the mask that belongs to this image.',
      mask.source,
    );
  }
  const axis = image.sliceAxis;
  const { data: labels, dims: [width, height, count] } = toSliceStack(binaryMask(mask), image.dims, axis);
  const plane = width * height;
  const lesionPixels: number[] = [];
  for (let k = 0; k < count; k++) {
    let sum = 0;
    for (let i = k * plane; i < (k + 1) * plane; i++) sum += labels[i];
    lesionPixels.push(sum);
  }
  if ((o.requireLesion ?? true) && lesionPixels.every((p) => p === 0)) {
    throw new DataError(
      `${mask.source} has no lesion voxel (no label > 0): this trainer needs lesion masks (1 ground-glass, ` +
        '2 consolidation, 3 effusion; 0 background). Check that this is the lesion mask (tr_mask) of the image.',
      mask.source,
    );
  }
  const { kind, data } = normaliseImage(image);
  return {
    images: slicesOf(toSliceStack(data, image.dims, axis).data, plane),
    masks: slicesOf(labels, plane),
    height,
    width,
    count,
    fileDims: [...image.dims] as [number, number, number],
    sliceAxis: axis,
    intensity: kind,
    space: image.space,
    imageSource: image.source,
    maskSource: mask.source,
    lesionPixels,
  };
}

/**
 * The cases (each built by {@link buildDataset}, named) as one dataset, in the order given. They
 * must share the slice size and the intensity kind (one network input), and hold a lesion
 * somewhere; DataError naming the folder `source` and the cases otherwise.
 */
export function joinCases(cases: { name: string; ds: SliceDataset }[], source: string, maskSource: string): SliceDataset {
  if (!cases.length) throw new DataError(`${source} holds no case.`, source);
  const [first] = cases;
  const otherSize = cases.find((c) => c.ds.width !== first.ds.width || c.ds.height !== first.ds.height);
  if (otherSize) {
    throw new DataError(
      `${otherSize.ds.imageSource} has slices of ${otherSize.ds.width}x${otherSize.ds.height}, ${first.ds.imageSource} of ${first.ds.width}x${first.ds.height}: ` +
        'the cases of a dataset must share the slice size; resample them to one.',
      otherSize.ds.imageSource,
    );
  }
  const otherKind = cases.find((c) => c.ds.intensity !== first.ds.intensity);
  if (otherKind) {
    throw new DataError(
      `${otherKind.ds.imageSource} reads as ${otherKind.ds.intensity} values, ${first.ds.imageSource} as ${first.ds.intensity}: ` +
        'give every case of a dataset in the same kind (Hounsfield units for CT).',
      otherKind.ds.imageSource,
    );
  }
  const lesionPixels = cases.flatMap((c) => c.ds.lesionPixels);
  if (lesionPixels.every((p) => p === 0)) {
    throw new DataError(`no label volume of ${source} has a lesion voxel (no label > 0): this trainer needs lesion masks (1 ground-glass, 2 consolidation, 3 effusion; 0 background).`, source);
  }
  let next = 0;
  const ranges: CaseSlices[] = cases.map(({ name, ds }) => {
    const r: CaseSlices = { name, first: next, count: ds.count, imageSource: ds.imageSource, maskSource: ds.maskSource, fileDims: ds.fileDims, sliceAxis: ds.sliceAxis };
    next += ds.count;
    return r;
  });
  const { width, height } = first.ds;
  return {
    images: cases.flatMap((c) => c.ds.images),
    masks: cases.flatMap((c) => c.ds.masks),
    height,
    width,
    count: next,
    fileDims: [width, height, next],
    sliceAxis: 2,
    intensity: first.ds.intensity,
    imageSource: source,
    maskSource,
    lesionPixels,
    cases: ranges,
  };
}

/** A volume's voxels (slice slowest) as one view per slice of `plane` voxels. */
export function slicesOf<T extends Float32Array | Uint8Array>(voxels: T, plane: number): T[] {
  return Array.from({ length: voxels.length / plane }, (_, k) => voxels.subarray(k * plane, (k + 1) * plane) as T);
}

/**
 * Every slice at size x size: images by the box filter when the slice shrinks by an integer
 * factor (512 to 256 or 128), bilinear otherwise; masks by nearest pixel, so they stay 0/1.
 * A slice that is not square is stretched. New arrays; the dataset is not changed.
 */
export function resizeDataset(ds: SliceDataset, size: number): { images: Float32Array[]; masks: Uint8Array[] } {
  return {
    images: ds.images.map((im) => resizeImage(im, ds.height, ds.width, size, size)),
    masks: ds.masks.map((m) => resizeNearest(m, ds.height, ds.width, size, size)),
  };
}
