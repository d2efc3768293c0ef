// A checkpoint file exported to an ONNX file (Node only): what `export` runs. The graph itself
// is built in `onnx-export.ts` (browser-safe).

import { writeFileAtomic } from '@aunet/nn';
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
