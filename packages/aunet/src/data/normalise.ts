// Image intensities to 0..1 and label volumes to binary lesion masks.
import { DataError } from './errors';
import type { Volume } from './nifti';

/** How an image's values were read: Hounsfield units, an 8-bit window, or already 0..1. */
export type IntensityKind = 'hu' | '8bit' | 'unit';

/**
 * The lung window used for Hounsfield images: -1000 HU (air) maps to 0 and 400 HU to 1.
 * It spans what matters for COVID-19 lesions (aerated lung about -900, ground-glass about
 * -700 to -300, consolidation and effusion about 0 to 60 HU) and clips bone, metal and the
 * padding values (-1024, -2048, -3024) that scanners write outside the field of view.
 */
export const LUNG_WINDOW_HU = { low: -1000, high: 400 } as const;

/** A minimum below this can only be Hounsfield units: 8-bit and 0..1 images are never
 *  negative, and every CT slice holds air (-1000 HU) around the patient. */
export const HU_MINIMUM_BELOW = -500;

export interface NormalisedImage {
  kind: IntensityKind;
  /** Same layout as the volume's data, values in 0..1. */
  data: Float32Array;
  /** Range of the values before normalising. */
  min: number;
  max: number;
}

/** The kind of a volume with these extreme values, or null when none fits. */
export function detectIntensity(min: number, max: number): IntensityKind | null {
  if (min < HU_MINIMUM_BELOW) return 'hu';
  if (min >= 0 && max <= 1) return 'unit';
  if (min >= 0 && max <= 255) return '8bit';
  return null;
}

/**
 * The image as a new Float32Array in 0..1, whatever form it came in, so that one trained model
 * takes both the official Hounsfield file (`tr_im.nii.gz`) and the shipped 8-bit copy
 * (`tr_im_lungwindow.nii.gz`):
 * - Hounsfield units (minimum below -500): linear through {@link LUNG_WINDOW_HU}, clipped;
 * - 8-bit (values in 0..255, maximum above 1): divided by 255, keeping the window the 8-bit
 *   copy was made with;
 * - already in 0..1: kept.
 * Other ranges throw a DataError naming the file, rather than guess a scaling.
 */
export function normaliseImage(vol: Volume): NormalisedImage {
  const { min, max, nonFinite } = valueRange(vol.data);
  if (nonFinite > 0) {
    // Finite stored values can overflow float32 once scaled (scl_slope 1e38): name the header
    // fields then, rather than blame voxels the file holds correctly.
    const scaling = vol.scaling ? ` after applying its header's scl_slope ${vol.scaling.slope} and scl_inter ${vol.scaling.inter}` : '';
    throw new DataError(
      `${vol.source} contains ${nonFinite} voxels that are NaN or infinite${scaling}: the image is damaged or was exported ` +
        'badly. Replace them (e.g. by -1000 HU) or export the image again.',
      vol.source,
    );
  }
  const kind = detectIntensity(min, max);
  if (kind === null) {
    throw new DataError(
      `${vol.source}: values range from ${min} to ${max}, which is neither Hounsfield units (minimum below ` +
        `${HU_MINIMUM_BELOW}: air is -1000), nor an 8-bit image (0..255), nor 0..1. Convert the image to one of ` +
        'these; if it holds HU + 1024 (0..4095), set its header scl_inter to -1024.',
      vol.source,
    );
  }
  const data = new Float32Array(vol.data.length);
  if (kind === 'hu') {
    const { low, high } = LUNG_WINDOW_HU;
    const scale = 1 / (high - low);
    for (let i = 0; i < data.length; i++) data[i] = Math.min(1, Math.max(0, (vol.data[i] - low) * scale));
  } else if (kind === '8bit') {
    for (let i = 0; i < data.length; i++) data[i] = vol.data[i] / 255;
  } else {
    data.set(vol.data);
  }
  return { kind, data, min, max };
}

/**
 * 1 where the label is above 0.5, else 0: for a lesion mask, the three lesion classes of MedSeg
 * (1 ground-glass, 2 consolidation, 3 pleural effusion) merged into one, as AU-Net segments
 * "lesion"; for a lung mask, both lungs. The 0.5 threshold also takes masks stored as floats or
 * resampled. Throws a DataError for NaN or
 * negative labels, which no label volume holds.
 */
export function binaryMask(vol: Volume): Uint8Array {
  const { min, nonFinite } = valueRange(vol.data);
  if (nonFinite > 0 || min < 0) {
    throw new DataError(
      `${vol.source} does not look like a label mask: it holds ${nonFinite > 0 ? `${nonFinite} NaN or infinite values` : `negative values (down to ${min})`}, ` +
        'where labels are 0 (background) and 1-3 (lesions). Check that it is the mask file (tr_mask), not an image.',
      vol.source,
    );
  }
  const mask = new Uint8Array(vol.data.length);
  for (let i = 0; i < mask.length; i++) mask[i] = vol.data[i] > 0.5 ? 1 : 0;
  return mask;
}

function valueRange(data: Float32Array): { min: number; max: number; nonFinite: number } {
  let min = Infinity;
  let max = -Infinity;
  let nonFinite = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!Number.isFinite(v)) nonFinite++;
    else {
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  return { min, max, nonFinite };
}
