// Reading an aunet checkpoint from a file. Node-only.

import { readFileSync } from 'node:fs';
import { CheckpointError, loadModel, type LoadedCheckpoint } from './checkpoint';

/** A checkpoint file's bytes; CheckpointError naming the file and what to pass when it cannot be read. */
export function readCheckpointBytes(file: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CheckpointError(
      code === 'ENOENT'
        ? `${file}: no such checkpoint file. Pass best.safetensors or last.safetensors of a run folder that \`train\` wrote`
        : `${file}: cannot read the checkpoint (${(e as Error).message})`,
    );
  }
}

/** The checkpoint file's model, config and metadata; CheckpointError naming the file on any problem. */
export async function loadRunCheckpoint(file: string): Promise<LoadedCheckpoint> {
  return loadModel(readCheckpointBytes(file), file);
}
