// Child process: times TF.js's WebGPU backend on conv2d cases read as JSON on stdin, on Dawn's
// node bindings (the same adapter as our runtime). Answers on stdout after RESULT_MARKER.
//
// TF.js finds WebGPU through `navigator.gpu` when its backend module is imported, so the GPU
// object from webgpu's create() is installed there first. Layout is NHWC (TF.js's native one;
// NCHW conv is not supported by its WebGPU kernels) with HWIO filters; only kernel time counts.
// The gradients are its Conv2DBackpropInput / Conv2DBackpropFilter kernels (what tf.grad runs);
// TF.js has no gradient for dilated convolutions, so those cases answer null.

import { create, globals } from 'webgpu';
import { dawnStderrFilter } from '@aunet/tensor';
import type { KernelCase, PeerRequest, PeerResult } from '../cases';
import { timeRuns } from '../common';
import { RESULT_MARKER, type PeerAnswer } from './spawn';

// Library chatter goes to stderr; stdout carries only the answer.
console.log = (...a: unknown[]) => console.error(...a);
console.info = console.log;
console.warn = (...a: unknown[]) => console.error(...a);

/** Write the answer and exit (explicitly: Dawn's device would keep the process alive). */
async function answer(a: PeerAnswer): Promise<never> {
  await new Promise<void>((resolve) => process.stdout.write(`\n${RESULT_MARKER}${JSON.stringify(a)}\n`, () => resolve()));
  process.exit(0);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

const request = JSON.parse(await readStdin()) as PeerRequest;

Object.assign(globalThis, globals);
// Dawn prints its notices while it first enumerates the adapters: held back as in @aunet/tensor.
const holdDawnNotices = await dawnStderrFilter();
const gpu = holdDawnNotices(() => create([]));
await holdDawnNotices(() => gpu.requestAdapter());
// Referenced for the life of the process (see DESIGN.md: Dawn crashes if it is collected).
(globalThis as { __benchGpu?: unknown }).__benchGpu = gpu;
Object.defineProperty(globalThis, 'navigator', { value: { gpu, userAgent: 'node' }, configurable: true, writable: true });

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
let tf: Any;
try {
  tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-webgpu');
} catch (e) {
  await answer({ unavailable: `TF.js could not be loaded: ${e instanceof Error ? e.message : e} (install the benchmarks' devDependencies)` });
}
let ok = false;
try {
  ok = await tf.setBackend('webgpu');
  await tf.ready();
} catch (e) {
  await answer({ unavailable: `tfjs-backend-webgpu did not start on this Dawn build: ${e instanceof Error ? e.message : e}` });
}
if (!ok || tf.getBackend() !== 'webgpu') await answer({ unavailable: `tfjs-backend-webgpu did not start on this Dawn build (backend is "${tf.getBackend()}")` });

const backend = tf.backend() as Any;
const info = backend.adapterInfo ?? {};
console.error(`tfjs ${tf.version_core} on webgpu (${[info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'adapter'})`);

/** Submit what TF.js has encoded and wait for the device, without reading anything back. */
async function syncTf(out: Any): Promise<void> {
  if (typeof backend.submitQueue === 'function' && backend.device?.queue) {
    backend.endComputePassEncoder?.();
    if (backend.commandEncoder) backend.submitQueue();
    await backend.device.queue.onSubmittedWorkDone();
  } else {
    await out.data(); // fallback: includes a readback
  }
}

async function runCase(c: KernelCase): Promise<PeerResult> {
  const p = c.conv!;
  if (c.pass !== 'forward' && p.dilation !== 1) return { id: c.id, ms: null, note: 'TF.js has no gradient for dilated conv2d' };
  const [n, cin, h, w] = c.input;
  const ho = Math.floor((h + 2 * p.padding - p.dilation * (p.k - 1) - 1) / p.stride) + 1;
  const wo = Math.floor((w + 2 * p.padding - p.dilation * (p.k - 1) - 1) / p.stride) + 1;
  const pad = [[0, 0], [p.padding, p.padding], [p.padding, p.padding], [0, 0]];
  const strides: [number, number] = [p.stride, p.stride];
  const x = tf.randomUniform([n, h, w, cin], -1, 1);
  const filter = tf.randomUniform([p.k, p.k, cin, p.cout], -0.1, 0.1);
  const dy = tf.randomUniform([n, ho, wo, p.cout], -1, 1);
  const step = (): Any => {
    if (c.pass === 'forward') return tf.conv2d(x, filter, strides, pad, 'NHWC', [p.dilation, p.dilation]);
    if (c.pass === 'backward-input')
      return tf.engine().runKernel('Conv2DBackpropInput', { dy, filter }, { strides, pad, dataFormat: 'NHWC', inputShape: [n, h, w, cin] });
    return tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides, pad, dataFormat: 'NHWC', filterShape: [p.k, p.k, cin, p.cout] });
  };
  try {
    await syncTf(x);
    const t = await timeRuns(async () => {
      const out = step();
      await syncTf(out);
      out.dispose();
    }, request.timing);
    return { id: c.id, ms: t.ms };
  } catch (e) {
    return { id: c.id, ms: null, note: `failed: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}` };
  } finally {
    tf.dispose([x, filter, dy]);
  }
}

const results: PeerResult[] = [];
for (const [i, c] of request.cases.entries()) {
  const r = await runCase(c);
  results.push(r);
  console.error(`[${i + 1}/${request.cases.length}] ${c.op} ${c.pass} ${c.shape}: ${r.ms === null ? r.note : `${r.ms.toFixed(2)} ms`}`);
}
await answer({ notes: [`TF.js ${tf.version_core}, webgpu backend, NHWC`], results });
