// `pnpm --filter aunet export --checkpoint FILE --onnx OUT | --safetensors OUT [--dtype f16]`: a
// checkpoint as an ONNX model, or as a weights-only checkpoint in half precision.
// Flags only: the graph is onnx-export.ts, the files onnx-file.ts. Node-only.

import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { SafetensorsDtype } from '@aunet/nn';
import { init } from '@aunet/tensor';
import { ONNX_INPUT, ONNX_OPSET, ONNX_OUTPUT } from '../onnx-export';
import { exportCheckpointOnnx, exportCheckpointSafetensors } from '../onnx-file';
import { fail, parseFlags, userPath } from './common';

const DTYPES: Record<string, SafetensorsDtype> = { f16: 'F16', bf16: 'BF16', f32: 'F32' };

const usage = `
Export a trained checkpoint to ONNX (opset ${ONNX_OPSET}, ONNX's standard operators, the weights
inside the file), for ONNX Runtime or any other ONNX runtime; or to a checkpoint holding only
the weights, in half precision, to ship a model at half the size.

Usage: pnpm --filter aunet export --checkpoint FILE --onnx OUT
       pnpm --filter aunet export --checkpoint FILE --safetensors OUT [--dtype f16|bf16|f32]

  --checkpoint FILE   best.safetensors or last.safetensors of a training run (required)
  --onnx OUT          the .onnx file to write (replaced if it exists)
  --safetensors OUT   the checkpoint to write (replaced if it exists): the weights in --dtype and
                      the checkpoint's metadata, without the optimiser's state (training cannot
                      resume from it); predict, evaluate, web and loadModel read it as any
                      checkpoint, the weights back in float32
  --dtype D           how --safetensors stores the weights: f16 (the default; about 3 significant
                      digits, a weight over 65504 is an error), bf16 (about 2 digits, float32's
                      range) or f32 (exact)
  --verbose           also show Dawn's (the WebGPU library's) own notices on stderr
  -h, --help          this help

At least one of --onnx and --safetensors is required; both may be given.

The model takes "${ONNX_INPUT}", float32 [N, 1, S, S] (S the checkpoint's input size; slices
normalised as for training: 0..1, see the package README's Data section), and gives
"${ONNX_OUTPUT}", float32 [N, 1, S, S]: the lesion probabilities, as predict computes them
before its threshold (0.5). The checkpoint's model config is in the file's metadata
("aunet.model").
`;

const flags = parseFlags(usage, { checkpoint: { type: 'string' }, onnx: { type: 'string' }, safetensors: { type: 'string' }, dtype: { type: 'string' } });

/** A file to write: not a folder, in a folder that exists. */
function checkOutput(out: string, flag: string, example: string): void {
  if (existsSync(out) && statSync(out).isDirectory()) throw new Error(`${out} is a folder: --${flag} takes the file to write, e.g. ${out}/${example}`);
  if (!existsSync(dirname(out))) throw new Error(`${dirname(out)} does not exist: create it first, or write the file elsewhere`);
}

const MiB = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

try {
  if (!flags.checkpoint) throw new Error('--checkpoint FILE is required (see --help)');
  if (!flags.onnx && !flags.safetensors) throw new Error('--onnx OUT or --safetensors OUT is required (see --help)');
  if (flags.dtype !== undefined && !flags.safetensors) throw new Error('--dtype is how --safetensors stores the weights: give --safetensors OUT too');
  const dtype = DTYPES[(flags.dtype ?? 'f16').toLowerCase()];
  if (!dtype) throw new Error(`--dtype takes f16, bf16 or f32, got "${flags.dtype}"`);
  const checkpoint = userPath(flags.checkpoint);
  const onnxOut = userPath(flags.onnx);
  const safetensorsOut = userPath(flags.safetensors);
  // Checked before the adapter starts, so that a typo costs nothing.
  if (!existsSync(checkpoint)) throw new Error(`${checkpoint} does not exist: give a run's best.safetensors or last.safetensors`);
  if (onnxOut) checkOutput(onnxOut, 'onnx', 'model.onnx');
  if (safetensorsOut) {
    checkOutput(safetensorsOut, 'safetensors', 'model.safetensors');
    // Replacing the run's own checkpoint would lose its float32 weights and optimiser state.
    if (resolve(safetensorsOut) === resolve(checkpoint)) throw new Error(`--safetensors ${safetensorsOut} is the checkpoint itself: write the export to another file`);
  }
  await init();
  if (onnxOut) {
    const e = await exportCheckpointOnnx(checkpoint, onnxOut);
    const m = e.config.model;
    const ops = Object.entries(e.operators).map(([op, n]) => `${op} ${n}`).join(', ');
    console.log(`${checkpoint}: ${m.architecture}, ${m.inputSize}x${m.inputSize}, epoch ${e.epoch}, ${e.parameters.toLocaleString('en-US')} parameters`);
    console.log(`wrote ${onnxOut} (${MiB(e.bytes.byteLength)}, ONNX opset ${ONNX_OPSET}, ${e.nodes} nodes: ${ops})`);
  }
  if (safetensorsOut) {
    const e = await exportCheckpointSafetensors(checkpoint, safetensorsOut, dtype);
    const m = e.config.model;
    if (!onnxOut) console.log(`${checkpoint}: ${m.architecture}, ${m.inputSize}x${m.inputSize}, epoch ${e.epoch}, ${e.parameters.toLocaleString('en-US')} parameters`);
    console.log(`wrote ${safetensorsOut} (${MiB(e.bytes)}, weights in ${e.dtype}, no optimiser state)`);
  }
  process.exit(0);
} catch (e) {
  fail(e);
}
