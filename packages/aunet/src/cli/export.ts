// `pnpm --filter aunet export --checkpoint FILE --onnx OUT`: a checkpoint as an ONNX model.
// Flags only: the graph is onnx-export.ts, the file onnx-file.ts. Node-only.

import { existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { init } from '@aunet/tensor';
import { ONNX_INPUT, ONNX_OPSET, ONNX_OUTPUT } from '../onnx-export';
import { exportCheckpointOnnx } from '../onnx-file';
import { fail, parseFlags, userPath } from './common';

const usage = `
Export a trained checkpoint to ONNX (opset ${ONNX_OPSET}, ONNX's standard operators, the weights
inside the file), for ONNX Runtime or any other ONNX runtime.

Usage: pnpm --filter aunet export --checkpoint FILE --onnx OUT

  --checkpoint FILE   best.safetensors or last.safetensors of a training run (required)
  --onnx OUT          the .onnx file to write (required; replaced if it exists)
  --verbose           also show Dawn's (the WebGPU library's) own notices on stderr
  -h, --help          this help

The model takes "${ONNX_INPUT}", float32 [N, 1, S, S] (S the checkpoint's input size; slices
normalised as for training: 0..1, see the package README's Data section), and gives
"${ONNX_OUTPUT}", float32 [N, 1, S, S]: the lesion probabilities, as predict computes them
before its threshold (0.5). The checkpoint's model config is in the file's metadata
("aunet.model").
`;

const flags = parseFlags(usage, { checkpoint: { type: 'string' }, onnx: { type: 'string' } });

try {
  if (!flags.checkpoint) throw new Error('--checkpoint FILE is required (see --help)');
  if (!flags.onnx) throw new Error('--onnx OUT is required (see --help)');
  const checkpoint = userPath(flags.checkpoint);
  const out = userPath(flags.onnx);
  // Checked before the adapter starts, so that a typo costs nothing.
  if (!existsSync(checkpoint)) throw new Error(`${checkpoint} does not exist: give a run's best.safetensors or last.safetensors`);
  if (existsSync(out) && statSync(out).isDirectory()) throw new Error(`${out} is a folder: --onnx takes the file to write, e.g. ${out}/model.onnx`);
  if (!existsSync(dirname(out))) throw new Error(`${dirname(out)} does not exist: create it first, or write the file elsewhere`);
  await init();
  const e = await exportCheckpointOnnx(checkpoint, out);
  const m = e.config.model;
  const ops = Object.entries(e.operators).map(([op, n]) => `${op} ${n}`).join(', ');
  console.log(`${checkpoint}: ${m.architecture}, ${m.inputSize}x${m.inputSize}, epoch ${e.epoch}, ${e.parameters.toLocaleString('en-US')} parameters`);
  console.log(`wrote ${out} (${(e.bytes.byteLength / 2 ** 20).toFixed(1)} MiB, ONNX opset ${ONNX_OPSET}, ${e.nodes} nodes: ${ops})`);
  process.exit(0);
} catch (e) {
  fail(e);
}
