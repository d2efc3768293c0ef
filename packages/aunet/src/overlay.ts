// Slice pictures: the CT in grey with the predicted lesions drawn over it, as PNG. Browser-safe.

import { encode as encodePng } from 'fast-png';
import type { NiftiSpace } from './data/nifti';

/** How to turn a stored slice (column x, row y) so that it shows as radiologists view it. */
export interface DisplayFlips {
  /** Mirror left-right: draw column x at nx - 1 - x. */
  flipX: boolean;
  /** Mirror top-bottom: draw row y at ny - 1 - y. */
  flipY: boolean;
}

/** The voxel-to-world rotation's first two columns (world directions of +x and +y voxel steps). */
function axisDirections(space: NiftiSpace): [number[], number[]] | null {
  if (space.sformCode > 0) {
    const [r0, r1, r2] = space.srow;
    return [[r0[0], r1[0], r2[0]], [r0[1], r1[1], r2[1]]];
  }
  if (space.qformCode > 0) {
    // NIfTI-1's quaternion (b, c, d; a from unit norm) to a rotation matrix; qfac does not touch
    // the first two columns.
    const [b, c, d] = space.quatern;
    const a = Math.sqrt(Math.max(0, 1 - (b * b + c * c + d * d)));
    return [
      [a * a + b * b - c * c - d * d, 2 * (b * c + a * d), 2 * (b * d - a * c)],
      [2 * (b * c - a * d), a * a + c * c - b * b - d * d, 2 * (c * d + a * b)],
    ];
  }
  return null;
}

/**
 * Flips that show an axial slice in radiological convention: the patient's anterior at the top
 * and the patient's left on the right of the picture (as if looking up from the patient's feet).
 * NIfTI's world space is RAS+ (nifti1.h: "+x = Right +y = Anterior +z = Superior"; DICOM's LPS+
 * with x and y negated), so a voxel step whose world x is negative (towards the patient's left)
 * runs rightwards, and one whose world y is positive (anterior) runs upwards. Hence a mirror
 * left-right when the columns run towards the patient's right (world x > 0), and top-bottom when
 * the rows run towards anterior (world y > 0). A DICOM series read as the standard says (columns
 * towards the patient's left, rows towards posterior, as scanners write axial CT) is drawn as
 * stored. A file with no orientation is shown as stored: slices exported from DICOM or from
 * pictures (as MedSeg's) are stored in display order.
 * Only mirrors: a slice whose in-plane axes are swapped (columns running front to back) is
 * shown with each axis mirrored by the sign of its own display component, not transposed.
 */
export function displayFlips(space: NiftiSpace): DisplayFlips {
  const dirs = axisDirections(space);
  if (!dirs) return { flipX: false, flipY: false };
  const [ix, iy] = dirs;
  return { flipX: ix[0] > 0, flipY: iy[1] > 0 };
}

export type OverlayStyle = 'outline' | 'fill';

const LESION_RGB = [255, 40, 40];

/**
 * An RGB picture (nx x ny, 3 bytes a pixel) of one slice: `image` (0..1) in grey with the lesion
 * `mask` drawn as a red outline (the lesion pixels with a background 4-neighbour) or as a
 * translucent red fill (40% red) with the outline on top.
 */
export function overlayRgb(image: ArrayLike<number>, mask: ArrayLike<number>, nx: number, ny: number, style: OverlayStyle, flips: DisplayFlips): Uint8Array {
  if (image.length !== nx * ny || mask.length !== nx * ny) throw new RangeError(`overlayRgb: image and mask must have ${nx} x ${ny} pixels`);
  const out = new Uint8Array(nx * ny * 3);
  const lesion = (x: number, y: number) => x >= 0 && y >= 0 && x < nx && y < ny && mask[x + nx * y] > 0;
  for (let y = 0; y < ny; y++) {
    const row = flips.flipY ? ny - 1 - y : y;
    for (let x = 0; x < nx; x++) {
      const col = flips.flipX ? nx - 1 - x : x;
      const o = 3 * (col + nx * row);
      const grey = Math.round(255 * Math.min(1, Math.max(0, image[x + nx * y])));
      out[o] = out[o + 1] = out[o + 2] = grey;
      if (!lesion(x, y)) continue;
      const edge = !lesion(x - 1, y) || !lesion(x + 1, y) || !lesion(x, y - 1) || !lesion(x, y + 1);
      const weight = edge ? 1 : style === 'fill' ? 0.4 : 0;
      for (let c = 0; c < 3; c++) out[o + c] = Math.round(grey + weight * (LESION_RGB[c] - grey));
    }
  }
  return out;
}

/** {@link overlayRgb} as PNG bytes. */
export function overlayPng(image: ArrayLike<number>, mask: ArrayLike<number>, nx: number, ny: number, style: OverlayStyle, flips: DisplayFlips): Uint8Array {
  return encodePng({ width: nx, height: ny, channels: 3, depth: 8, data: overlayRgb(image, mask, nx, ny, style, flips) });
}
