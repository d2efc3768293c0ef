// Reading an aunet checkpoint from a file. Node-only.

import { readFile } from 'node:fs/promises';
import { CheckpointError, loadModel, type LoadedCheckpoint } from './checkpoint';

/** The checkpoint file's model, config and metadata; CheckpointError naming the file on any problem. */
export async function loadRunCheckpoint(file: string): Promise<LoadedCheckpoint> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CheckpointError(code === 'ENOENT' ? `${file}: no such checkpoint file` : `${file}: cannot read the checkpoint (${(e as Error).message})`);
  }
  return loadModel(bytes, file);
}
