// The model that ships with the package, models/aunet-medseg.safetensors (its weights in F16,
// as `export --safetensors --dtype f16` writes them, the run's config in the metadata; its model
// card is MODEL.md): what `predict`, `evaluate --data` and `web` use when no --checkpoint is
// given, so that a scan can be segmented with no training. $AUNET_MODEL names another file in
// its place (a model of one's own as the default; the tests' stand-in). Node-only.

import { statSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** packages/aunet/models/aunet-medseg.safetensors. */
export const SHIPPED_MODEL_FILE = fileURLToPath(new URL('../models/aunet-medseg.safetensors', import.meta.url));
/** packages/aunet/MODEL.md: the shipped model's card (data, recipe, figures, intended use, licence). */
export const MODEL_CARD_FILE = fileURLToPath(new URL('../MODEL.md', import.meta.url));
/** The environment variable that names a model file in place of the shipped one. */
export const MODEL_ENV = 'AUNET_MODEL';

/** The model used when no checkpoint is given. */
export interface DefaultModel {
  /** The file, absolute. */
  file: string;
  /** Whether it is there (a file). */
  exists: boolean;
  /** The package's own file, or the one $AUNET_MODEL names. */
  from: 'package' | typeof MODEL_ENV;
}

/**
 * The model to use when no checkpoint is given: the file $AUNET_MODEL names (a relative path
 * taken from `base`; empty counts as unset), else the shipped one; and whether it exists.
 */
export function defaultModel(o: { env?: NodeJS.ProcessEnv; base?: string } = {}): DefaultModel {
  const named = (o.env ?? process.env)[MODEL_ENV];
  const file = named ? resolve(o.base ?? process.cwd(), named) : SHIPPED_MODEL_FILE;
  let exists = false;
  try {
    exists = statSync(file).isFile();
  } catch {
    /* not there */
  }
  return { file, exists, from: named ? MODEL_ENV : 'package' };
}

/** `file` as the user best reads it: relative to `base` when inside it (from the repository root: packages/aunet/...), else absolute. */
export function shownPath(file: string, base = process.cwd()): string {
  const r = relative(base, file);
  return r && !r.startsWith('..') && !isAbsolute(r) ? r : file;
}

/** The one line a command prints when it uses the default model. */
export function defaultModelLine(m: DefaultModel, base = process.cwd()): string {
  const card = shownPath(MODEL_CARD_FILE, base);
  return m.from === 'package'
    ? `no --checkpoint: using the shipped model ${shownPath(m.file, base)} (see ${card})`
    : `no --checkpoint: using ${shownPath(m.file, base)}, which $${MODEL_ENV} names in place of the shipped model (see ${card})`;
}

/** What to say, on one line, when the default model is not there. */
export function missingModelMessage(m: DefaultModel, base = process.cwd()): string {
  return m.from === 'package'
    ? `no --checkpoint given, and the shipped model ${shownPath(m.file, base)} is not in this copy of the package: pass --checkpoint FILE (a run's best.safetensors or last.safetensors)`
    : `no --checkpoint given, and $${MODEL_ENV} names ${m.file}, which does not exist: correct or unset ${MODEL_ENV}, or pass --checkpoint FILE`;
}

/** The default model's file, or an Error saying it is missing (see {@link missingModelMessage}). */
export function requireDefaultModel(o: { env?: NodeJS.ProcessEnv; base?: string } = {}): { model: DefaultModel; line: string } {
  const model = defaultModel(o);
  if (!model.exists) throw new Error(missingModelMessage(model, o.base));
  return { model, line: defaultModelLine(model, o.base) };
}
