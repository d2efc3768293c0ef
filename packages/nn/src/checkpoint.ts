// Checkpoints in the safetensors format: a module's parameters under their dotted names and,
// optionally, Adam's moments as "optim.m.<name>" / "optim.v.<name>" with its step count and
// hyper-parameters in __metadata__. The weights may be stored in half precision (F16 or BF16) to
// ship a model at half the size; they load back into float32 parameters as any checkpoint does.
// `checkpointBytes` / `loadCheckpointBytes` work on bytes (browser-safe); `saveCheckpoint` /
// `loadCheckpoint` add atomic file IO for Node.

import { runtime, type Tensor } from '@aunet/tensor';
import type { Adam } from './optim';
import type { Module } from './module';
import { decodeSafetensors, encodeSafetensors, SafetensorsError, type HostTensor, type SafetensorsDtype } from './safetensors';

export const OPTIM_M = 'optim.m.';
export const OPTIM_V = 'optim.v.';
const FORMAT = 'aunet-nn/1';

export interface CheckpointOptions {
  /** Also store this optimiser's state (only with F32 weights). */
  optimizer?: Adam;
  /**
   * How the parameters are stored: F32 (the default: exact), F16 (about 3 significant digits,
   * magnitudes up to 65504; a larger weight is an error) or BF16 (about 2 digits, float32's
   * range). Half the size either way; loading gives float32 parameters holding the stored values.
   */
  dtype?: SafetensorsDtype;
  /** Extra string metadata (epoch, metrics, configuration). Keys starting with "optim." and "format" are reserved. */
  metadata?: Record<string, string>;
}

/** Serialise the module's parameters (and the optimiser's state) to safetensors bytes. */
export async function checkpointBytes(module: Module<any, any>, options: CheckpointOptions = {}): Promise<Uint8Array> {
  const dtype = options.dtype ?? 'F32';
  // The optimiser's state is there to resume training exactly; from rounded weights it would not
  // be a resume, and Adam's second moments (squared gradients, often under 1e-8) flush to zero in
  // F16, which turns the first update after it into a jump. Save a second, F32 file for that.
  if (options.optimizer && dtype !== 'F32') {
    throw new Error(`a checkpoint with optimiser state must keep its weights in F32 (asked for ${dtype}): resuming from rounded weights is no resume; save the ${dtype} copy without the optimiser`);
  }
  const tensors = new Map<string, HostTensor>();
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(options.metadata ?? {})) {
    if (k.startsWith('optim.') || k === 'format') throw new Error(`checkpoint metadata key "${k}" is reserved`);
    metadata[k] = String(v);
  }
  metadata.format = FORMAT;
  const named = module.namedParameters();
  for (const [name, p] of named) tensors.set(name, { shape: [...p.shape], data: (await p.value.data()) as Float32Array, dtype });
  const opt = options.optimizer;
  if (opt) {
    // Moments only for the parameters the optimiser updates (frozen ones have none).
    const updated = new Set(opt.params);
    for (const [name, p] of named) {
      if (!updated.has(p)) continue;
      const s = opt.stateOf(p);
      tensors.set(OPTIM_M + name, { shape: [...p.shape], data: (await s.m.data()) as Float32Array });
      tensors.set(OPTIM_V + name, { shape: [...p.shape], data: (await s.v.data()) as Float32Array });
    }
    const st = opt.state;
    Object.assign(metadata, {
      'optim.type': 'Adam',
      'optim.step': String(st.step),
      'optim.lr': String(st.lr),
      'optim.beta1': String(st.betas[0]),
      'optim.beta2': String(st.betas[1]),
      'optim.eps': String(st.eps),
      'optim.weightDecay': String(st.weightDecay),
      'optim.decoupled': String(st.decoupled),
    });
  }
  return encodeSafetensors(tensors, metadata);
}

export interface LoadOptions {
  /** Restore this optimiser's state too (the file must hold it). */
  optimizer?: Adam;
  /** Name of the source in error messages. */
  source?: string;
}

/** Thrown when a checkpoint's names or shapes do not match the module; lists every mismatch. */
export class CheckpointMismatchError extends Error {
  override name = 'CheckpointMismatchError';
  constructor(
    source: string,
    readonly mismatches: string[],
  ) {
    super(`${source} does not match the module (${mismatches.length} mismatch${mismatches.length > 1 ? 'es' : ''}):\n  ${mismatches.join('\n  ')}`);
  }
}

/**
 * Load safetensors bytes into the module's parameters (in place: identities are kept) and
 * optionally the optimiser. Everything is checked before anything is written: on a mismatch
 * nothing changes. Returns the file's metadata.
 */
export function loadCheckpointBytes(bytes: Uint8Array, module: Module<any, any>, options: LoadOptions = {}): Record<string, string> {
  const source = options.source ?? 'checkpoint';
  const { tensors, metadata } = decodeSafetensors(bytes, source);
  const named = module.namedParameters();
  const opt = options.optimizer;
  const expected = new Map<string, readonly number[]>();
  const updated = new Set(opt?.params ?? []);
  for (const [name, p] of named) {
    expected.set(name, p.shape);
    if (updated.has(p)) {
      expected.set(OPTIM_M + name, p.shape);
      expected.set(OPTIM_V + name, p.shape);
    }
  }
  const mismatches: string[] = [];
  for (const [name, shape] of expected) {
    const t = tensors.get(name);
    if (!t) mismatches.push(`missing "${name}" [${shape}] in the file`);
    else if (t.shape.join() !== shape.join()) mismatches.push(`shape of "${name}": file [${t.shape}], module [${shape}]`);
  }
  for (const [name, t] of tensors) {
    if (expected.has(name)) continue;
    // Optimiser state is ignored when no optimiser is being restored.
    if (!opt && (name.startsWith(OPTIM_M) || name.startsWith(OPTIM_V))) continue;
    mismatches.push(`unexpected "${name}" [${t.shape}] in the file (not in the module)`);
  }
  let step = 0;
  if (opt) {
    step = Number(metadata['optim.step']);
    if (!Number.isSafeInteger(step) || step < 0) mismatches.push(`metadata "optim.step" is ${JSON.stringify(metadata['optim.step'])}, not a step count`);
  }
  if (mismatches.length) throw new CheckpointMismatchError(source, mismatches);
  for (const [name, p] of named) p.assign(tensors.get(name)!.data);
  if (opt) {
    for (const [name, p] of named) {
      if (!updated.has(p)) continue;
      const s = opt.stateOf(p);
      writeInto(s.m, tensors.get(OPTIM_M + name)!.data);
      writeInto(s.v, tensors.get(OPTIM_V + name)!.data);
    }
    opt.stepCount = step;
    const num = (k: string, fallback: number) => {
      const v = Number(metadata[k]);
      return metadata[k] !== undefined && Number.isFinite(v) ? v : fallback;
    };
    opt.lr = num('optim.lr', opt.lr);
    opt.beta1 = num('optim.beta1', opt.beta1);
    opt.beta2 = num('optim.beta2', opt.beta2);
    opt.eps = num('optim.eps', opt.eps);
    opt.weightDecay = num('optim.weightDecay', opt.weightDecay);
    if (metadata['optim.decoupled'] !== undefined) opt.decoupled = metadata['optim.decoupled'] === 'true';
  }
  return metadata;
}

function writeInto(t: Tensor, data: Float32Array): void {
  if (t.size > 0) runtime().write(t.buffer, data);
}

// ---- files (Node) -------------------------------------------------------------------------------

type FsPromises = typeof import('node:fs/promises');
type PathModule = typeof import('node:path');

async function nodeModules(): Promise<{ fs: FsPromises; path: PathModule }> {
  // Names in variables so that browser bundlers leave them alone.
  const fsName = 'node:fs/promises';
  const pathName = 'node:path';
  return { fs: (await import(/* @vite-ignore */ fsName)) as FsPromises, path: (await import(/* @vite-ignore */ pathName)) as PathModule };
}

/**
 * Write `contents` (bytes, or text as UTF-8) to `file` atomically: a temporary file in the same
 * directory, fsync, rename over the target, fsync of the directory. A crash leaves either the old
 * file or the new one, never a partial one; the temporary file is removed on failure.
 */
export async function writeFileAtomic(file: string, contents: Uint8Array | string): Promise<void> {
  const bytes = typeof contents === 'string' ? new TextEncoder().encode(contents) : contents;
  const { fs, path } = await nodeModules();
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`);
  let handle: Awaited<ReturnType<FsPromises['open']>> | null = null;
  try {
    handle = await fs.open(tmp, 'wx', 0o644);
    let off = 0;
    while (off < bytes.byteLength) {
      const { bytesWritten } = await handle.write(bytes, off, bytes.byteLength - off);
      off += bytesWritten;
    }
    await handle.sync();
    await handle.close();
    handle = null;
    await fs.rename(tmp, file);
  } catch (e) {
    if (handle) await handle.close().catch(() => {});
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
  // Make the rename itself durable; not every platform can open a directory.
  try {
    const d = await fs.open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    /* best effort */
  }
}

/** Write `value` as indented JSON (NaN and infinities become null) with a final newline, atomically. */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/** Save the module (and optimiser) to a safetensors file, atomically. */
export async function saveCheckpoint(file: string, module: Module<any, any>, options: CheckpointOptions = {}): Promise<void> {
  await writeFileAtomic(file, await checkpointBytes(module, options));
}

/** Load a safetensors file into the module (and optimiser). Returns the file's metadata. */
export async function loadCheckpoint(file: string, module: Module<any, any>, options: Omit<LoadOptions, 'source'> = {}): Promise<Record<string, string>> {
  const { fs } = await nodeModules();
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await fs.readFile(file));
  } catch (e) {
    throw new Error(`Cannot read checkpoint "${file}": ${(e as Error).message}`);
  }
  return loadCheckpointBytes(bytes, module, { ...options, source: `checkpoint "${file}"` });
}

export { SafetensorsError };
