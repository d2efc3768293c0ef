// Where this package is and how it runs: from its TypeScript sources in the repository (through
// tsx), or from its build (dist/, as `npm install aunet` puts it under node_modules). Node-only.
// src/ and dist/ sit at the same depth, so the package's own files (models/, data/, MODEL.md)
// are found the same way from either; what differs is where a command writes when no flag says,
// and how a file of the package is started in a process of its own.

import { join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's folder (this file is src/package-dir.ts, or dist/package-dir.js in the build). */
export const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));

/** Running from the TypeScript sources (tsx), not from the build. */
export const FROM_SOURCE = import.meta.url.endsWith('.ts');

/** Installed as a dependency (a folder under node_modules), rather than the repository's own package. */
export const INSTALLED = PACKAGE_DIR.split(sep).includes('node_modules');

/** Folders the commands write into when no flag names one (relative to the package in the repository, or to the current folder when installed). */
export const OUTPUT_FOLDERS = ['runs', 'predictions', 'data/medseg-official'] as const;
export type OutputFolder = (typeof OUTPUT_FOLDERS)[number];

/**
 * Where a command writes `folder` by default: inside the package in the repository (so
 * `packages/aunet/runs` wherever `pnpm --filter aunet` was run from), and in the current folder
 * when installed: never inside node_modules, which the next install may wipe.
 */
export function defaultOutputDir(folder: OutputFolder): string {
  return INSTALLED ? resolve(process.cwd(), folder) : join(PACKAGE_DIR, folder);
}

/** The file of one of the package's modules (`rel` from src/ or dist/, without extension), as this copy runs it. */
export function moduleFile(rel: string): string {
  return FROM_SOURCE ? join(PACKAGE_DIR, 'src', `${rel}.ts`) : join(PACKAGE_DIR, 'dist', `${rel}.js`);
}

/** Node flags that let a process of its own run {@link moduleFile}: tsx's loader from source, none for the build. */
export function moduleLoaderArgs(): string[] {
  return FROM_SOURCE ? ['--import', import.meta.resolve('tsx')] : [];
}
