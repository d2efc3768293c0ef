// Test fixtures as NIfTI files, written at once (not atomically) so that a test can read them back
// straight away from synchronous code. The product writes through the atomic writeNifti of
// src/data/files.ts; both encode through niftiFileBytes.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { niftiFileBytes } from '../src/data/files';
import type { NiftiImage } from '../src/data/nifti';

export function writeNifti(file: string, image: NiftiImage): void {
  mkdirSync(dirname(resolve(file)), { recursive: true });
  writeFileSync(file, niftiFileBytes(file, image));
}
