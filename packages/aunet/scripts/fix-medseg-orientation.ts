// Rewrites the orientation in the headers of the two files this package wrote for the shipped
// MedSeg data (data/medseg-covid/tr_im_lungwindow.nii.gz and tr_lungmask.nii.gz), changing the
// header only: the voxels stay byte for byte as they are.
//
//   cd packages/aunet && node --import tsx scripts/fix-medseg-orientation.ts [--check] [DIR]
//
// Why (2026-12-07): the slices are stored in radiological display order (column index towards
// the patient's LEFT, row index towards posterior). NIfTI's world is RAS+ (nifti1.h: "+x = Right
// +y = Anterior +z = Superior"), so the column axis must have a NEGATIVE world x. The files were
// written with srow_x = [1, 0, 0, -255.5], which says columns run towards the patient's right:
// real viewers (NiiVue, 3D Slicer) showed them mirrored left-right. The fix negates the world x
// row (srow_x = [-1, 0, 0, 255.5]: the same centre, x = 0 at column 255.5) and writes the
// matching quaternion fields (qform_code stays 0, as it was; the fields now agree with the sform):
//   old  srow = [[1,0,0,-255.5],[0,-1,0,255.5],[0,0,1,-49.5]]   quatern (1,0,0), qfac -1, qoffset (-255.5, 255.5, -49.5)
//   new  srow = [[-1,0,0,255.5],[0,-1,0,255.5],[0,0,1,-49.5]]   quatern (0,0,1), qfac  1, qoffset ( 255.5, 255.5, -49.5)
// The new grid is right-handed (a 180-degree turn about z: DICOM's LPS axes as a scanner writes an
// axial series). tr_mask.nii.gz is the official file byte for byte, with no qform or sform: it is
// not touched.
//
// The file is gunzipped, the fields pixdim[0], quatern_b/c/d, qoffset_x/y/z and srow_x/y/z are
// rewritten, and it is gzipped again with Node's zlib at its default level (6, mtime 0), which is
// how the files were written (gzipping the old files' contents that way gives their bytes
// exactly). The script checks, before writing, that nothing but those fields changed and that
// everything from vox_offset on is the same bytes. Run again, it finds the files corrected and
// writes nothing. --check writes nothing and exits 1 if a file still has the old header.

import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { NIFTI1_HEADER as H, NIFTI1_MAGIC } from '../src/data/nifti-layout';
import { parseNifti } from '../src/data/nifti';
import { affineDifference, spaceFromAffine, voxelToWorld, type Affine } from '../src/data/space';

export const OLD_SROW: Affine = [[1, 0, 0, -255.5], [0, -1, 0, 255.5], [0, 0, 1, -49.5]];
export const NEW_SROW: Affine = [[-1, 0, 0, 255.5], [0, -1, 0, 255.5], [0, 0, 1, -49.5]];
export const FILES = ['tr_im_lungwindow.nii.gz', 'tr_lungmask.nii.gz'] as const;

/** The byte ranges [start, end) of the header fields this script writes. */
const WRITTEN: [number, number][] = [
  [H.pixdim, H.pixdim + 4], // pixdim[0]: qfac
  [H.quatern, H.quatern + 12],
  [H.qoffset, H.qoffset + 12],
  [H.srow, H.srow + 48],
];

function readSrow(view: DataView): Affine {
  return [0, 1, 2].map((r) => [0, 1, 2, 3].map((c) => view.getFloat32(H.srow + 4 * (4 * r + c), true))) as Affine;
}

/** The corrected `.nii` bytes of `nii` (a copy), or null when it already has the new header. Throws on anything unexpected. */
export function correctedHeader(nii: Uint8Array, name: string): Uint8Array | null {
  const view = new DataView(nii.buffer, nii.byteOffset, nii.byteLength);
  if (view.getInt32(H.sizeofHdr, true) !== H.headerBytes || !NIFTI1_MAGIC.every((b, i) => nii[H.magic + i] === b)) throw new Error(`${name}: not a little-endian NIfTI-1 single file`);
  const voxOffset = view.getFloat32(H.voxOffset, true);
  if (view.getInt16(H.sformCode, true) !== 2) throw new Error(`${name}: sform_code ${view.getInt16(H.sformCode, true)}, expected 2`);
  const srow = readSrow(view);
  if (affineDifference(srow, NEW_SROW) === 0) return null;
  if (affineDifference(srow, OLD_SROW) !== 0) throw new Error(`${name}: srow ${JSON.stringify(srow)} is neither the old nor the new one; not touched`);

  const space = spaceFromAffine(NEW_SROW); // the quaternion, qfac and offsets of the same matrix
  const out = nii.slice();
  const w = new DataView(out.buffer);
  w.setFloat32(H.pixdim, space.pixdim[0], true);
  space.quatern.forEach((q, i) => w.setFloat32(H.quatern + 4 * i, q, true));
  space.qoffset.forEach((q, i) => w.setFloat32(H.qoffset + 4 * i, q, true));
  NEW_SROW.forEach((row, r) => row.forEach((v, c) => w.setFloat32(H.srow + 4 * (4 * r + c), v, true)));

  // Only the fields above changed; the voxels (from vox_offset on) are the same bytes.
  for (let i = 0; i < out.length; i++) {
    if (out[i] !== nii[i] && !WRITTEN.some(([a, b]) => i >= a && i < b)) throw new Error(`${name}: byte ${i} changed outside the orientation fields`);
  }
  if (!Buffer.from(out.subarray(voxOffset)).equals(Buffer.from(nii.subarray(voxOffset)))) throw new Error(`${name}: the voxels changed`);
  // Read back: the sform, and the quaternion (as a reader that takes the qform would) give the new matrix.
  const parsed = parseNifti(out, name);
  if (affineDifference(voxelToWorld(parsed.space)!, NEW_SROW) !== 0) throw new Error(`${name}: the sform does not read back`);
  if (affineDifference(voxelToWorld({ ...parsed.space, sformCode: 0, qformCode: 1 })!, NEW_SROW) > 1e-6) throw new Error(`${name}: the quaternion does not give the sform's matrix`);
  return out;
}

function main(): void {
  const args = process.argv.slice(2);
  const check = args.includes('--check');
  const dir = resolve(args.find((a) => !a.startsWith('--')) ?? fileURLToPath(new URL('../data/medseg-covid', import.meta.url)));
  let stale = 0;
  for (const name of FILES) {
    const file = join(dir, name);
    const gz = readFileSync(file);
    const nii = new Uint8Array(gunzipSync(gz));
    const fixed = correctedHeader(nii, name);
    if (!fixed) {
      console.log(`${file}: already has srow ${JSON.stringify(NEW_SROW)}; not written`);
      continue;
    }
    stale++;
    if (check) {
      console.log(`${file}: still has the mirrored srow ${JSON.stringify(OLD_SROW)}`);
      continue;
    }
    const bytes = gzipSync(fixed);
    if (!Buffer.from(gunzipSync(bytes)).equals(Buffer.from(fixed))) throw new Error(`${name}: gzip round trip failed`);
    writeFileSync(file, bytes);
    console.log(`${file}: srow ${JSON.stringify(OLD_SROW)} -> ${JSON.stringify(NEW_SROW)}; ${gz.length} -> ${bytes.length} bytes gzipped; voxels unchanged`);
  }
  if (check && stale) process.exit(1);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main();
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    process.exit(1);
  }
}
