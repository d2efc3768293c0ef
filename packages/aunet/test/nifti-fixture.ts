// Test fixtures as NIfTI files, written at once (not atomically) so that a test can read them back
// straight away from synchronous code. The product writes through the atomic writeNifti of
// src/data/files.ts; both encode through niftiFileBytes.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { niftiFileBytes } from '../src/data/files';
import type { NiftiImage } from '../src/data/nifti';
import type { Affine } from '../src/data/space';

export function writeNifti(file: string, image: NiftiImage): void {
  mkdirSync(dirname(resolve(file)), { recursive: true });
  writeFileSync(file, niftiFileBytes(file, image));
}

/**
 * A volume's voxels (x fastest, `dims`) with the rows (y) reversed, as dcm2niix stores a DICOM
 * series' rows, and the voxel-to-world matrix that places each voxel where it was under `affine`:
 * the same voxels of the same grid in another order.
 */
export function flipRows<T extends Float32Array | Uint8Array>(dims: readonly number[], data: T, affine: Affine): { data: T; affine: Affine } {
  const [nx, ny, nz] = dims;
  const out = data.slice() as T;
  for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) out[x + nx * (ny - 1 - y + ny * z)] = data[x + nx * (y + ny * z)];
  return { data: out, affine: affine.map((r) => [r[0], -r[1], r[2], r[3] + r[1] * (ny - 1)]) as Affine };
}
