// A volume's place in space as one voxel-to-world matrix (NIfTI's RAS+ world, in mm), from the
// header fields (NiftiSpace) and back: what the DICOM reader writes into a Volume, and what
// compares the geometry of two volumes. Browser-safe.

import type { NiftiSpace } from './nifti';

/** 3 rows of 4: world = M * [i, j, k, 1] for voxel (column i, row j, slice k). */
export type Affine = [number[], number[], number[]];

/**
 * The voxel-to-world matrix NIfTI readers use: the sform when its code is set, else the qform
 * (quaternion, qfac in pixdim[0], voxel size in pixdim[1..3]), else null (no orientation).
 */
export function voxelToWorld(space: NiftiSpace): Affine | null {
  if (space.sformCode > 0) return space.srow.map((r) => [...r]) as Affine;
  if (space.qformCode <= 0) return null;
  const [b, c, d] = space.quatern;
  const a = Math.sqrt(Math.max(0, 1 - (b * b + c * c + d * d)));
  const R = [
    [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
    [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
    [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
  ];
  const qfac = space.pixdim[0] < 0 ? -1 : 1;
  const s = [space.pixdim[1] || 1, space.pixdim[2] || 1, (space.pixdim[3] || 1) * qfac];
  return R.map((row, i) => [row[0] * s[0], row[1] * s[1], row[2] * s[2], space.qoffset[i]]) as Affine;
}

/** The world position (mm) of voxel (i, j, k). */
export function worldOf(m: Affine, i: number, j: number, k: number): [number, number, number] {
  return m.map((r) => r[0] * i + r[1] * j + r[2] * k + r[3]) as [number, number, number];
}

/**
 * Header fields for an affine whose three columns are orthogonal (a rotation times voxel sizes,
 * as a DICOM series gives): the sform holds the matrix itself and the qform the same as a
 * quaternion (nifti1_io's nifti_mat44_to_quatern), both with code 1 (scanner coordinates), so
 * that readers that take either place the voxels alike. Units mm.
 */
export function spaceFromAffine(m: Affine): NiftiSpace {
  const column = (c: number) => [m[0][c], m[1][c], m[2][c]];
  const size = [0, 1, 2].map((c) => Math.hypot(...column(c)));
  const unit = [0, 1, 2].map((c) => column(c).map((v) => v / size[c]));
  // Rows of the rotation R (R[i][j]: world axis i of voxel axis j).
  const R = [0, 1, 2].map((i) => [unit[0][i], unit[1][i], unit[2][i]]);
  const det =
    R[0][0] * (R[1][1] * R[2][2] - R[1][2] * R[2][1]) - R[0][1] * (R[1][0] * R[2][2] - R[1][2] * R[2][0]) + R[0][2] * (R[1][0] * R[2][1] - R[1][1] * R[2][0]);
  const qfac = det < 0 ? -1 : 1;
  if (qfac < 0) for (let i = 0; i < 3; i++) R[i][2] = -R[i][2];
  const [[r11, r12, r13], [r21, r22, r23], [r31, r32, r33]] = R;
  let a = r11 + r22 + r33 + 1;
  let b: number, c: number, d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r32 - r23)) / a;
    c = (0.25 * (r13 - r31)) / a;
    d = (0.25 * (r21 - r12)) / a;
  } else {
    const xd = 1 + r11 - (r22 + r33);
    const yd = 1 + r22 - (r11 + r33);
    const zd = 1 + r33 - (r11 + r22);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r12 + r21)) / b;
      d = (0.25 * (r13 + r31)) / b;
      a = (0.25 * (r32 - r23)) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r12 + r21)) / c;
      d = (0.25 * (r23 + r32)) / c;
      a = (0.25 * (r13 - r31)) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r13 + r31)) / d;
      c = (0.25 * (r23 + r32)) / d;
      a = (0.25 * (r21 - r12)) / d;
    }
    if (a < 0) [b, c, d] = [-b, -c, -d];
  }
  return {
    pixdim: [qfac, size[0], size[1], size[2], 1, 1, 1, 1],
    xyztUnits: 2, // NIFTI_UNITS_MM
    qformCode: 1,
    quatern: [b, c, d],
    qoffset: [m[0][3], m[1][3], m[2][3]],
    sformCode: 1,
    srow: m.map((r) => [...r]) as Affine,
    dimInfo: 0,
  };
}

/** The largest difference between two affines' entries (mm for the offsets, mm per voxel for the rest). */
export function affineDifference(a: Affine, b: Affine): number {
  let worst = 0;
  for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) worst = Math.max(worst, Math.abs(a[i][j] - b[i][j]));
  return worst;
}

/** The voxel sizes (mm) of an affine: the lengths of its three columns. */
export function voxelSizes(m: Affine): [number, number, number] {
  return [0, 1, 2].map((c) => Math.hypot(m[0][c], m[1][c], m[2][c])) as [number, number, number];
}

/**
 * Whether two grids are the same voxels in the same order: the same dims, and the world
 * positions of their 8 corner voxels within `tolerance` voxels (of the smallest voxel size of
 * either) of each other. The difference of two affines is affine, so no voxel is further apart
 * than the worst corner: unlike comparing matrix entries, a spacing of 0.70 against 0.71 mm
 * (5 mm apart after 512 voxels) is not the same grid.
 */
export function sameGrid(
  a: { dims: readonly number[]; affine: Affine },
  b: { dims: readonly number[]; affine: Affine },
  tolerance = 0.1,
): boolean {
  if (a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i])) return false;
  const limit = tolerance * Math.min(...voxelSizes(a.affine), ...voxelSizes(b.affine));
  const [nx, ny, nz] = a.dims;
  for (const i of [0, nx - 1]) {
    for (const j of [0, ny - 1]) {
      for (const k of [0, nz - 1]) {
        const p = worldOf(a.affine, i, j, k);
        const q = worldOf(b.affine, i, j, k);
        if (!(Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]) <= limit)) return false;
      }
    }
  }
  return true;
}

/** An affine as text, one row of 4 per bracket, for messages. */
export const affineText = (m: Affine) => `[${m.map((r) => `[${r.map((v) => +v.toFixed(4)).join(', ')}]`).join(', ')}]`;

/** The inverse of an affine (3 rows of 4); null when its 3x3 part is singular. */
export function invertAffine(m: Affine): Affine | null {
  const [[a, b, c, x], [d, e, f, y], [g, h, i, z]] = m;
  const A = e * i - f * h;
  const B = -(d * i - f * g);
  const C = d * h - e * g;
  const det = a * A + b * B + c * C;
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) return null;
  const inv = [
    [A / det, -(b * i - c * h) / det, (b * f - c * e) / det],
    [B / det, (a * i - c * g) / det, -(a * f - c * d) / det],
    [C / det, -(a * h - b * g) / det, (a * e - b * d) / det],
  ];
  return inv.map((r) => [...r, -(r[0] * x + r[1] * y + r[2] * z)]) as Affine;
}

/**
 * Where each voxel of grid `to` lies in grid `from`: for voxel index t of `to` (x fastest), the
 * index of the voxel of `from` at the same world point. Null when some voxel of `to` is not on a
 * voxel centre of `from` (more than `tolerance` voxels off) or lies outside it: the two grids are
 * not the same voxels in another order. Two volumes on one grid in different voxel orders (slices
 * reversed, rows flipped, axes swapped) map exactly.
 */
export function voxelCorrespondence(
  from: { dims: readonly number[]; affine: Affine },
  to: { dims: readonly number[]; affine: Affine },
  tolerance = 1e-3,
): Int32Array | null {
  const inverse = invertAffine(from.affine);
  if (!inverse) return null;
  // from-voxel coordinates of to-voxel (i, j, k) = M * [i, j, k, 1], with M = inverse(from) * to.
  const M = inverse.map((r) => [0, 1, 2, 3].map((c) => r[0] * to.affine[0][c] + r[1] * to.affine[1][c] + r[2] * to.affine[2][c] + (c === 3 ? r[3] : 0)));
  const [fx, fy, fz] = from.dims;
  const [tx, ty, tz] = to.dims;
  const out = new Int32Array(tx * ty * tz);
  let t = 0;
  for (let k = 0; k < tz; k++) {
    for (let j = 0; j < ty; j++) {
      // Along a row only i changes: start at i = 0 and step by M's first column.
      let x = M[0][1] * j + M[0][2] * k + M[0][3];
      let y = M[1][1] * j + M[1][2] * k + M[1][3];
      let z = M[2][1] * j + M[2][2] * k + M[2][3];
      for (let i = 0; i < tx; i++, t++, x += M[0][0], y += M[1][0], z += M[2][0]) {
        const qx = Math.round(x);
        const qy = Math.round(y);
        const qz = Math.round(z);
        if (Math.abs(x - qx) > tolerance || Math.abs(y - qy) > tolerance || Math.abs(z - qz) > tolerance) return null;
        if (qx < 0 || qy < 0 || qz < 0 || qx >= fx || qy >= fy || qz >= fz) return null;
        out[t] = qx + fx * (qy + fy * qz);
      }
    }
  }
  return out;
}
