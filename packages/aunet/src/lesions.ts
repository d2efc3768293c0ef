// Lesion area and burden per slice and per volume, in pixels and physical units. Browser-safe.

import type { NiftiSpace } from './data/nifti';

/** What the burden is measured against: a given lung mask ('lung'), the lungs found in the image
 *  by lungs.ts ('computed-lung'), or the body found in the image ('body', where no lungs are). */
export type BurdenReference = 'lung' | 'computed-lung' | 'body';

/** Each reference in words, for reports: "burden 12% of the ..." */
export const BURDEN_REFERENCE_TEXT: Readonly<Record<BurdenReference, string>> = {
  lung: 'lungs (lung mask)',
  'computed-lung': 'lungs found in the image',
  body: 'body (no lungs found in the image)',
};

export interface SliceLesions {
  slice: number;
  lesionPixels: number;
  lesionMm2: number;
  /** Pixels of the reference region (lungs or body) in this slice. */
  referencePixels: number;
  /** lesionPixels / referencePixels (lesion pixels outside the region count too); NaN when the
   *  slice holds none of the region. */
  burden: number;
}

export interface LesionReport {
  reference: BurdenReference;
  /** Voxel size in mm: [x, y, slice spacing]. */
  voxelMm: [number, number, number];
  /** False when the header gives no spatial unit (millimetres assumed) or no usable voxel size (1 mm assumed). */
  unitsKnown: boolean;
  slices: SliceLesions[];
  volume: { lesionPixels: number; lesionMm2: number; lesionMl: number; referencePixels: number; burden: number };
}

/** Millimetres per unit of NIfTI's xyzt_units spatial code (0, unknown, is taken as mm). */
const MM_PER_UNIT: Record<number, number> = { 0: 1, 1: 1000, 2: 1, 3: 0.001 };

/** The voxel size in mm from a header's pixdim and units. */
export function voxelSizeMm(space: NiftiSpace): { voxelMm: [number, number, number]; unitsKnown: boolean } {
  const code = space.xyztUnits & 7;
  const scale = MM_PER_UNIT[code] ?? 1;
  // pixdim is a size: its sign means nothing (some writers store negative values).
  const valid = [1, 2, 3].every((i) => Number.isFinite(space.pixdim[i]) && space.pixdim[i] !== 0);
  const size = (i: number) => (valid ? Math.abs(space.pixdim[i]) * scale : 1);
  return { voxelMm: [size(1), size(2), size(3)], unitsKnown: valid && code in MM_PER_UNIT && code !== 0 };
}

/**
 * Otsu's threshold of values in 0..1 (256 bins): the level that best separates the darker
 * values (air, and in a lung window the aerated lung) from the brighter ones (soft tissue).
 */
export function otsuThreshold(values: ArrayLike<number>): number {
  const bins = new Float64Array(256);
  for (let i = 0; i < values.length; i++) bins[Math.min(255, Math.max(0, Math.floor(values[i] * 256)))]++;
  const total = values.length;
  let sumAll = 0;
  for (let b = 0; b < 256; b++) sumAll += b * bins[b];
  let weightBelow = 0;
  let sumBelow = 0;
  let best = 0;
  let threshold = 0;
  for (let b = 0; b < 255; b++) {
    weightBelow += bins[b];
    sumBelow += b * bins[b];
    const weightAbove = total - weightBelow;
    if (weightBelow === 0 || weightAbove === 0) continue;
    const between = weightBelow * weightAbove * (sumBelow / weightBelow - (sumAll - sumBelow) / weightAbove) ** 2;
    if (between > best) {
      best = between;
      threshold = b;
    }
  }
  return (threshold + 1) / 256;
}

/**
 * The patient's body in each slice of a normalised image (values 0..1, x fastest): the pixels not
 * reachable from the slice's border through pixels darker than the slice's Otsu threshold. The
 * air around the patient is reached and excluded; the lungs, as dark but enclosed by the chest
 * wall, are not, and so belong to the body. The threshold comes from each slice, because the air
 * level differs between windows: 0 for Hounsfield images through the lung window, about 0.2 in
 * the shipped 8-bit copy.
 */
export function bodyMask(image: Float32Array, nx: number, ny: number, nz: number): Uint8Array {
  const plane = nx * ny;
  const body = new Uint8Array(image.length);
  const outside = new Uint8Array(plane);
  const stack = new Int32Array(plane);
  for (let k = 0; k < nz; k++) {
    const off = k * plane;
    const slice = image.subarray(off, off + plane);
    const threshold = otsuThreshold(slice);
    reachFromBorder(nx, ny, (i) => slice[i] < threshold, outside, stack);
    for (let i = 0; i < plane; i++) body[off + i] = outside[i] ? 0 : 1;
  }
  return body;
}

/**
 * Marks in `reached` (1, else 0) the pixels of an `nx` x `ny` plane that a 4-connected path
 * through pixels where `passable` holds joins to the plane's border (the border pixels that pass
 * included). `stack` holds at least nx * ny entries; both are overwritten.
 */
export function reachFromBorder(nx: number, ny: number, passable: (i: number) => boolean, reached: Uint8Array, stack: Int32Array): void {
  const plane = nx * ny;
  reached.fill(0, 0, plane);
  let top = 0;
  const visit = (i: number) => {
    if (!reached[i] && passable(i)) {
      reached[i] = 1;
      stack[top++] = i;
    }
  };
  for (let x = 0; x < nx; x++) {
    visit(x);
    visit(x + nx * (ny - 1));
  }
  for (let y = 0; y < ny; y++) {
    visit(nx * y);
    visit(nx - 1 + nx * y);
  }
  while (top > 0) {
    const i = stack[--top];
    const x = i % nx;
    if (x > 0) visit(i - 1);
    if (x < nx - 1) visit(i + 1);
    if (i >= nx) visit(i - nx);
    if (i < plane - nx) visit(i + nx);
  }
}

/**
 * Lesion area and burden of a binary mask (x fastest, dims [nx, ny, nz]) against a reference
 * region of the same layout (a lung mask, the lungs of lungs.ts, or {@link bodyMask}).
 */
export function lesionReport(mask: Uint8Array, reference: Uint8Array, dims: readonly number[], space: NiftiSpace, kind: BurdenReference): LesionReport {
  const [nx, ny, nz] = dims;
  const plane = nx * ny;
  if (mask.length !== plane * nz || reference.length !== mask.length) {
    throw new RangeError(`lesionReport: mask (${mask.length}) and reference (${reference.length}) must both have ${dims.join(' x ')} voxels`);
  }
  const { voxelMm, unitsKnown } = voxelSizeMm(space);
  const pixelMm2 = voxelMm[0] * voxelMm[1];
  const slices: SliceLesions[] = [];
  let lesionPixels = 0;
  let referencePixels = 0;
  for (let k = 0; k < nz; k++) {
    let lesion = 0;
    let ref = 0;
    for (let i = k * plane; i < (k + 1) * plane; i++) {
      lesion += mask[i];
      ref += reference[i] ? 1 : 0;
    }
    lesionPixels += lesion;
    referencePixels += ref;
    slices.push({ slice: k, lesionPixels: lesion, lesionMm2: lesion * pixelMm2, referencePixels: ref, burden: ref > 0 ? lesion / ref : NaN });
  }
  return {
    reference: kind,
    voxelMm,
    unitsKnown,
    slices,
    volume: {
      lesionPixels,
      lesionMm2: lesionPixels * pixelMm2,
      lesionMl: (lesionPixels * pixelMm2 * voxelMm[2]) / 1000,
      referencePixels,
      burden: referencePixels > 0 ? lesionPixels / referencePixels : NaN,
    },
  };
}

/** The report as CSV: one row per slice, then a row "volume" with the totals. The reference
 *  names two columns: lung_pixels, computed_lung_pixels or body_pixels, and burden_of_the same. */
export function lesionCsv(r: LesionReport): string {
  const ref = r.reference.replace('-', '_');
  const head = `slice,lesion_pixels,lesion_mm2,${ref}_pixels,burden_of_${ref}`;
  const num = (v: number, digits: number) => (Number.isNaN(v) ? '' : v.toFixed(digits));
  const rows = r.slices.map((s) => `${s.slice},${s.lesionPixels},${num(s.lesionMm2, 2)},${s.referencePixels},${num(s.burden, 5)}`);
  const v = r.volume;
  rows.push(`volume,${v.lesionPixels},${num(v.lesionMm2, 2)},${v.referencePixels},${num(v.burden, 5)}`);
  return [head, ...rows].join('\n') + '\n';
}

/**
 * `mask` (width x height, x fastest) without its lesions of fewer than `minPixels` pixels, a
 * lesion being an 8-connected component (scipy.ndimage.label with a 3x3 structure): the small
 * isolated specks a network leaves, which cost precision and rarely hold real lesion. A new
 * array; `minPixels` 0 or 1 keeps everything.
 */
export function removeSmallComponents(mask: Uint8Array, width: number, height: number, minPixels: number): Uint8Array {
  const out = Uint8Array.from(mask);
  if (minPixels <= 1) return out;
  const plane = width * height;
  const seen = new Uint8Array(plane);
  const members = new Int32Array(plane);
  for (let s = 0; s < plane; s++) {
    if (!mask[s] || seen[s]) continue;
    // Flood the component from s; `members` holds it, in the order reached.
    let count = 0;
    seen[s] = 1;
    members[count++] = s;
    for (let k = 0; k < count; k++) {
      const i = members[k];
      const x = i % width;
      const y = (i - x) / width;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= width) continue;
          const j = yy * width + xx;
          if (mask[j] && !seen[j]) {
            seen[j] = 1;
            members[count++] = j;
          }
        }
      }
    }
    if (count < minPixels) for (let k = 0; k < count; k++) out[members[k]] = 0;
  }
  return out;
}
