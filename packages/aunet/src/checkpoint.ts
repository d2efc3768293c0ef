// The aunet checkpoint: @aunet/nn's safetensors checkpoint with the training config (and so the
// model config) in its metadata, so that a file alone rebuilds its model. Every metadata key the
// project writes is named here. Browser-safe (bytes); run-folder.ts reads and writes the files.

import { CheckpointMismatchError, decodeSafetensors, loadCheckpointBytes, SafetensorsError } from '@aunet/nn';
import { validateTrainConfig, type TrainConfig } from './config';
import type { SliceDataset } from './data/dataset';
import type { Scores } from './metrics';
import { AUNet, type Architecture, type ModelConfig } from './model';

/** The training config, as JSON. */
export const CONFIG_KEY = 'aunet.config';
/** The last epoch the weights are from. */
export const EPOCH_KEY = 'aunet.epoch';
/** The trainer's scheduler and early-stopping state (last.safetensors only), as JSON. */
export const STATE_KEY = 'aunet.state';
/** What the run was trained on (see DataInfo), as JSON. */
export const DATA_KEY = 'aunet.data';
/** The validation scores that made this checkpoint the best (best.safetensors only), as JSON. */
export const VAL_KEY = 'aunet.val';

/** A checkpoint that cannot be used: names the file and what to do. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export interface LoadedCheckpoint {
  config: TrainConfig;
  model: AUNet;
  metadata: Record<string, string>;
  epoch: number;
}

/** What a run was trained on; stored in its checkpoints and checked on resume and evaluation. */
export interface DataInfo {
  count: number;
  height: number;
  width: number;
  intensity: string;
  /** The image file's slice axis (absent in checkpoints written before it was recorded: 2). */
  sliceAxis?: number;
  /** The case names, in order, of a dataset of several cases (absent for one volume). */
  cases?: string[];
}

export function dataInfo(ds: SliceDataset): DataInfo {
  return { count: ds.count, height: ds.height, width: ds.width, intensity: ds.intensity, sliceAxis: ds.sliceAxis, ...(ds.cases && { cases: ds.cases.map((c) => c.name) }) };
}

/** How a dataset's cases differ from those a checkpoint records; null when they are the same (or neither has cases). */
function caseDifference(was: string[] | undefined, now: string[] | undefined): string | null {
  if (!was && !now) return null;
  if (!was || !now) return was ? `was trained on ${was.length} cases, this data is one volume` : `was trained on one volume, this data holds ${now!.length} cases`;
  const gone = was.filter((n) => !now.includes(n));
  const added = now.filter((n) => !was.includes(n));
  if (!gone.length && !added.length && was.join('\0') === now.join('\0')) return null;
  const list = (names: string[]) => (names.length > 5 ? `${names.slice(0, 5).join(', ')} and ${names.length - 5} more` : names.join(', '));
  return `was trained on ${was.length} cases, this data holds ${now.length}${gone.length ? ` (without ${list(gone)})` : ''}${added.length ? ` (with ${list(added)} besides)` : ''}`;
}

/** What the trainer stores beside the weights; every field but the config and epoch is optional. */
export interface CheckpointRecord {
  config: TrainConfig;
  epoch: number;
  state?: unknown;
  data?: DataInfo;
  val?: Scores;
}

/** The metadata of a checkpoint holding `r`. */
export function checkpointMetadata(r: CheckpointRecord): Record<string, string> {
  return {
    [CONFIG_KEY]: JSON.stringify(r.config),
    [EPOCH_KEY]: String(r.epoch),
    ...(r.state !== undefined && { [STATE_KEY]: JSON.stringify(r.state) }),
    ...(r.data && { [DATA_KEY]: JSON.stringify(r.data) }),
    ...(r.val && { [VAL_KEY]: JSON.stringify(r.val) }),
  };
}

/**
 * The metadata of a checkpoint's bytes; a CheckpointError naming `file`, and saying what to do
 * (`advice`), when they are not a readable safetensors file.
 */
export function readCheckpointMetadata(bytes: Uint8Array, file: string, advice = 'use best.safetensors or last.safetensors of a run folder that `train` wrote'): Record<string, string> {
  try {
    return decodeSafetensors(bytes, file).metadata;
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CheckpointError(`${e.message}\n(the file is damaged or not a checkpoint: ${advice})`);
    throw e;
  }
}

/** The training config stored in a checkpoint's metadata. */
export function configFromMetadata(metadata: Record<string, string>, file: string): TrainConfig {
  const text = metadata[CONFIG_KEY];
  if (!text) throw new CheckpointError(`${file} is not an aunet checkpoint: its metadata has no "${CONFIG_KEY}" (was it written by another program?). Pass best.safetensors or last.safetensors of a run folder that \`train\` wrote.`);
  let config: TrainConfig;
  try {
    config = JSON.parse(text) as TrainConfig;
    // Checkpoints written before augmentation had levels stored a boolean (true: the full set).
    const augment = config.augment as unknown;
    if (typeof augment === 'boolean') config.augment = augment ? 'full' : 'none';
    // Checkpoints written before training on every slice was possible held out a split.
    config.allSlices ??= false;
    // Checkpoints written before split files were taken used the seeded shuffle.
    config.splitFile ??= null;
    // Checkpoints written before the loss could read each level read the summed output.
    config.deepSupervisionLoss ??= 'summed';
    // Checkpoints written before the architecture had its own name stored it as `model.model`.
    const model = config.model as ModelConfig & { model?: Architecture };
    if (model && model.architecture === undefined && model.model !== undefined) {
      model.architecture = model.model;
      delete model.model;
    }
    validateTrainConfig(config);
  } catch (e) {
    throw new CheckpointError(`${file}: the stored "${CONFIG_KEY}" is unusable: ${(e as Error).message}`);
  }
  return config;
}

/** The epoch a checkpoint's metadata names (0 when it names none). */
export function epochFromMetadata(metadata: Record<string, string>): number {
  return Number(metadata[EPOCH_KEY] ?? 0);
}

/**
 * `stored` is a checkpoint's DATA_KEY entry. Throws when `ds` has another slice count or size than the run was trained on (its split would
 * differ, so test slices could have been trained on). Returns a warning when only the intensity
 * kind differs (a model trained on the 8-bit copy sees other values on Hounsfield files).
 */
export function checkSameData(stored: string | undefined, ds: SliceDataset, file: string): string | null {
  if (!stored) return null; // written before the data was recorded
  const was = JSON.parse(stored) as DataInfo;
  const cases = caseDifference(was.cases, ds.cases?.map((c) => c.name));
  if (cases) throw new CheckpointError(`${file} ${cases}: its train/test split would not hold; use the data it was trained on (--data)`);
  if (was.count !== ds.count || was.height !== ds.height || was.width !== ds.width || (was.sliceAxis ?? 2) !== ds.sliceAxis) {
    throw new CheckpointError(
      `${file} was trained on ${was.count} slices of ${was.height}x${was.width} along ${'xyz'[was.sliceAxis ?? 2]}, ` +
        `this data has ${ds.count} of ${ds.height}x${ds.width} along ${'xyz'[ds.sliceAxis]}: ` +
        'its train/test split would not hold; use the data it was trained on (--data)',
    );
  }
  return was.intensity === ds.intensity ? null : `warning: ${file} was trained on ${was.intensity} images, this data is ${ds.intensity}: scores may suffer`;
}

/**
 * For a checkpoint trained on every slice of its data (`allSlices`: no split to keep), scored on
 * `ds`: a warning when `ds` has the shape of that data (`stored`, its DATA_KEY entry), since its
 * slices are then likely the ones it was trained on and the scores no test; null otherwise.
 */
export function allSlicesDataWarning(stored: string | undefined, ds: SliceDataset, file: string): string | null {
  const was = stored ? (JSON.parse(stored) as DataInfo) : null;
  const same = !was || (was.count === ds.count && was.height === ds.height && was.width === ds.width && (was.sliceAxis ?? 2) === ds.sliceAxis);
  if (!same) return null;
  return (
    `warning: ${file} was trained on every slice of ${was ? `${was.count} slices of ${was.height}x${was.width}` : 'its data'}, ` +
    `and these data have that shape: if they are those slices, the scores below are on training slices, not a test`
  );
}

/**
 * Rebuild the model a checkpoint's bytes were trained with and load its weights. `file` names
 * the source in messages. Every problem is a CheckpointError naming it.
 */
export function loadModel(bytes: Uint8Array, file = 'the checkpoint'): LoadedCheckpoint {
  const metadata = readCheckpointMetadata(bytes, file);
  const config = configFromMetadata(metadata, file);
  const model = new AUNet(config.model);
  try {
    loadCheckpointBytes(bytes, model, { source: file });
  } catch (e) {
    model.dispose();
    if (e instanceof CheckpointMismatchError) throw new CheckpointError(`${e.message}\n(the file's weights do not fit the model its own config describes: it was written by another model or version. Use a checkpoint written by this version's \`train\`, or train a new one)`);
    throw e;
  }
  return { config, model, metadata, epoch: epochFromMetadata(metadata) };
}
