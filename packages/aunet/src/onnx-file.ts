// A checkpoint file exported to an ONNX file, or to a weights-only checkpoint in half precision
// (Node only): what `export` runs. The graph itself is built in `onnx-export.ts` (browser-safe).

import { checkpointBytes, writeFileAtomic, type SafetensorsDtype } from '@aunet/nn';
import type { TrainConfig } from './config';
import { exportOnnx, type OnnxExport } from './onnx-export';
import { loadRunCheckpoint } from './run-folder';
import { basename } from 'node:path';

export interface OnnxFileExport extends OnnxExport {
  config: TrainConfig;
  epoch: number;
}

/**
 * Load `checkpoint` (a run's best.safetensors or last.safetensors), export its model to ONNX
 * and write it to `out` atomically (a kill never leaves a partial file under the name). Needs
 * `init()` from @aunet/tensor first: the weights are loaded onto the device and read back.
 */
export async function exportCheckpointOnnx(checkpoint: string, out: string): Promise<OnnxFileExport> {
  const { model, config, epoch } = await loadRunCheckpoint(checkpoint);
  try {
    const e = await exportOnnx(model, {
      description: `weights of ${basename(checkpoint)}, epoch ${epoch}`,
      metadata: { 'aunet.checkpoint': basename(checkpoint), 'aunet.epoch': String(epoch) },
    });
    await writeFileAtomic(out, e.bytes);
    return { ...e, config, epoch };
  } finally {
    model.dispose();
  }
}

export interface SafetensorsFileExport {
  config: TrainConfig;
  epoch: number;
  dtype: SafetensorsDtype;
  parameters: number;
  /** The size of the file written. */
  bytes: number;
}

/**
 * Load `checkpoint` and write its weights to `out` as a checkpoint with the weights stored in
 * `dtype` (F16 or BF16: half the size), atomically; `loadModel`, `predict --checkpoint`,
 * `evaluate` and the web page read it as any checkpoint (the weights come back as float32). The
 * metadata is the checkpoint's (config, epoch, data, scores), less the optimiser's: the file holds
 * no optimiser state, so training cannot resume from it. A weight beyond F16's range (65504) is an
 * error naming it (BF16 or F32 store it). Needs `init()` from @aunet/tensor first.
 */
export async function exportCheckpointSafetensors(checkpoint: string, out: string, dtype: SafetensorsDtype): Promise<SafetensorsFileExport> {
  const { model, config, epoch, metadata } = await loadRunCheckpoint(checkpoint);
  try {
    // "format" is written by @aunet/nn itself; "optim.*" describe state this file does not hold.
    const kept = Object.fromEntries(Object.entries(metadata).filter(([k]) => k !== 'format' && !k.startsWith('optim.')));
    const bytes = await checkpointBytes(model, { dtype, metadata: kept });
    await writeFileAtomic(out, bytes);
    return { config, epoch, dtype, parameters: model.numParameters(), bytes: bytes.byteLength };
  } finally {
    model.dispose();
  }
}
