// The aunet checkpoint: @aunet/nn's safetensors checkpoint with the training config (and so the
// model config) in its metadata, so that a file alone rebuilds its model. Browser-safe (bytes);
// checkpoint-file.ts reads files.

import { CheckpointMismatchError, decodeSafetensors, loadCheckpointBytes, SafetensorsError } from '@aunet/nn';
import { validateTrainConfig, type TrainConfig } from './config';
import { AUNet, type Architecture, type ModelConfig } from './model';

export const CONFIG_KEY = 'aunet.config';
export const EPOCH_KEY = 'aunet.epoch';
export const STATE_KEY = 'aunet.state';

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

/**
 * Rebuild the model a checkpoint's bytes were trained with and load its weights. `file` names
 * the source in messages. Every problem is a CheckpointError naming it.
 */
export function loadModel(bytes: Uint8Array, file = 'the checkpoint'): LoadedCheckpoint {
  let metadata: Record<string, string>;
  try {
    metadata = decodeSafetensors(bytes, file).metadata;
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CheckpointError(`${e.message}\n(the file is damaged or not a checkpoint: use another, e.g. best.safetensors or last.safetensors of the run)`);
    throw e;
  }
  const config = configFromMetadata(metadata, file);
  const model = new AUNet(config.model);
  try {
    loadCheckpointBytes(bytes, model, { source: file });
  } catch (e) {
    model.dispose();
    if (e instanceof CheckpointMismatchError) throw new CheckpointError(`${e.message}\n(the file's weights do not fit the model its own config describes: it was written by another model or version. Use a checkpoint written by this version's \`train\`, or train a new one)`);
    throw e;
  }
  const epoch = Number(metadata[EPOCH_KEY] ?? 0);
  return { config, model, metadata, epoch };
}
