// ONNX Runtime side by side (Node only): the model exported from our own AUNet (same random
// weights, `exportOnnx` from the aunet package) run by onnxruntime-node on the CPU, 2 intra-op
// threads (the machine's cores, as PyTorch's 2 threads), in this process. What a user who wants
// the model in production on a CPU would pick.

import { cpus } from 'node:os';
import { ONNX_INPUT, ONNX_OUTPUT } from 'aunet';
import { timeRuns, type TimingPlan, type Timing } from '../common';

/** Threads ONNX Runtime may use inside an operator: 2, as PyTorch's set_num_threads(2). */
export const ORT_THREADS = 2;

export interface OrtTiming extends Timing {
  /** Worst |ORT - ours| over the probabilities of the timed input. */
  worstDiff: number;
  /** onnxruntime-node's version. */
  version: string;
}

/** onnxruntime-node, loaded on first use (the native module is needed only by the inference rows). */
const loadOrt = () => import('onnxruntime-node');

/** A session on the ONNX model `bytes` as every suite runs it: CPU, ORT_THREADS intra-op threads, sequential, graph optimisation "all". */
export async function createOrtSession(bytes: Uint8Array) {
  const ort = await loadOrt();
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: ORT_THREADS,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  return { ort, session, version: ort.env.versions.node ?? '?' };
}

/**
 * Probabilities of square slices from an ONNX session on our exported model, `n` slices a run
 * ([n, channels, size, size]), and the milliseconds `session.run` took with the result on the host.
 */
export async function runOrtSlices(o: Awaited<ReturnType<typeof createOrtSession>>, images: Float32Array[], channels: number, size: number): Promise<{ probabilities: Float32Array[]; ms: number }> {
  const plane = channels * size * size;
  const x = new Float32Array(images.length * plane);
  images.forEach((im, i) => x.set(im, i * plane));
  const t0 = performance.now();
  const out = await o.session.run({ [ONNX_INPUT]: new o.ort.Tensor('float32', x, [images.length, channels, size, size]) });
  const ms = performance.now() - t0;
  const p = out[ONNX_OUTPUT].data as Float32Array;
  const outPlane = size * size;
  return { probabilities: images.map((_, i) => p.slice(i * outPlane, (i + 1) * outPlane)), ms };
}

/**
 * Median milliseconds of `session.run` on `input` ([n, 1, s, s]) with the ONNX model `bytes`,
 * timed as ours is (`plan`: a warm-up run, then runs until the count or the budget); each run
 * ends with the probabilities on the host, as ours. `ours` (the same input's probabilities from
 * our stack) is compared with ORT's, so a table row never times a wrong graph silently.
 */
export async function timeOrt(bytes: Uint8Array, input: Float32Array, dims: [number, number, number, number], ours: Float32Array, plan: TimingPlan): Promise<OrtTiming> {
  const { ort, session } = await createOrtSession(bytes);
  try {
    const feeds = { [ONNX_INPUT]: new ort.Tensor('float32', input, dims) };
    let last: Float32Array | null = null;
    const t = await timeRuns(async () => {
      const out = await session.run(feeds);
      last = out[ONNX_OUTPUT].data as Float32Array;
    }, plan);
    const probs = last as Float32Array | null;
    let worstDiff = Infinity;
    if (probs && probs.length === ours.length) {
      worstDiff = 0;
      for (let i = 0; i < ours.length; i++) worstDiff = Math.max(worstDiff, Math.abs(probs[i] - ours[i]));
      if (Number.isNaN(worstDiff)) worstDiff = Infinity;
    }
    return { ...t, worstDiff, version: ort.env.versions.node ?? '?' };
  } finally {
    await session.release();
  }
}

/** One line for the notes under the table. */
export function ortNote(version: string): string {
  return `ort: onnxruntime-node ${version} (CPU execution provider, ${ORT_THREADS} intra-op threads of ${cpus().length} cores, graph optimisation "all", float32), the model exported to ONNX from ours with the same weights`;
}
