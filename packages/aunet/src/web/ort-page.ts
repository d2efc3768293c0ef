// The ONNX Runtime Web timing page (browser; for `web-time` only, bundled and served by
// ort-timing.ts, never by the web page's server): the scan that web-time drops on the web page,
// through the same `predictVolume` (normalising, one slice per network call, the probabilities on
// the host), with onnxruntime-web on the model exported to ONNX as the network instead of ours.
// Its per-slice times are taken as the web page takes its own, so the two compare.
//
// The query names the ONNX Runtime build (`script`, a file of onnxruntime-web's dist/) and its
// execution provider (`ep`: wasm or webgpu); config.json, model.onnx and scan.nii come from the
// same server. Threads: as many as the browser reports cores, when the page is cross-origin
// isolated (SharedArrayBuffer); one otherwise.

import type * as OrtWeb from 'onnxruntime-web';
import { parseNifti } from '../data/nifti';
import { mirroredTTA, predictVolume, type SlicePredictor } from '../predict';

/** What ort-timing.ts serves as config.json. */
export interface OrtPageConfig {
  /** The model's input size. */
  size: number;
  channels: number;
  inputName: string;
  outputName: string;
  /** Mirroring test-time augmentation, as the web page's checkbox. */
  tta: boolean;
}

/** What the page reports when done (window.ortPage.result()). */
export interface OrtPageResult {
  ep: string;
  script: string;
  ortVersion: string;
  crossOriginIsolated: boolean;
  hardwareConcurrency: number;
  /** Threads ONNX Runtime's wasm side was given (env.wasm.numThreads after the session started). */
  threads: number;
  /** For ep webgpu: the adapter the page found (vendor, architecture, description). */
  adapter: string | null;
  /** InferenceSession.create, model bytes to a ready session. */
  sessionMs: number;
  msPerSlice: number[];
  /** The volume's probabilities (float32, the input's layout) as base64. */
  probabilities: string;
}

type State = 'starting' | 'running' | 'done' | 'error';

let result: OrtPageResult | null = null;
let failure: string | null = null;

function setState(s: State): void {
  document.body.dataset.state = s;
  document.body.textContent = s === 'error' ? `failed: ${failure}` : s;
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

function base64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

async function fetchBytes(path: string): Promise<Uint8Array> {
  const res = await fetch(path);
  if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** The adapter WebGPU gives this page, described; throws when the route offers none. */
async function describeAdapter(): Promise<string> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) throw new Error('this browser gives the page no WebGPU (navigator.gpu is missing)');
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('WebGPU gives this page no adapter');
  const i = adapter.info;
  const compat = !adapter.features.has('core-features-and-limits');
  const name = [i.vendor, i.architecture, i.description].filter(Boolean).join(' ') || 'an adapter that gives no name';
  return compat ? `${name} (compatibility mode)` : name;
}

async function main(): Promise<void> {
  setState('starting');
  const query = new URLSearchParams(location.search);
  const script = query.get('script') ?? '';
  const ep = query.get('ep') ?? '';
  if (!/^ort[\w.-]*\.mjs$/.test(script) || !['wasm', 'webgpu'].includes(ep)) throw new Error(`bad query: script=${script} ep=${ep}`);
  const config = (await (await fetch('config.json')).json()) as OrtPageConfig;
  const adapter = ep === 'webgpu' ? await describeAdapter() : null;
  // The dist file as ONNX Runtime ships it (not bundled: it finds its .wasm and worker files
  // beside itself, under ort/).
  const ort = (await import(new URL(`ort/${script}`, location.href).href)) as typeof OrtWeb;
  ort.env.wasm.wasmPaths = new URL('ort/', location.href).href;
  ort.env.wasm.numThreads = crossOriginIsolated ? navigator.hardwareConcurrency : 1;
  if (ep === 'webgpu') ort.env.webgpu.powerPreference = 'high-performance';
  const model = await fetchBytes('model.onnx');
  const scanBytes = await fetchBytes('scan.nii');
  const t0 = performance.now();
  // Only the one provider: should it fail to start, the session fails rather than falling back to
  // another. Verbose while the session starts, for ONNX Runtime's "Node(s) placed on [provider]"
  // lines (ort-timing.ts reads from them which nodes, if any, went to another provider); the runs
  // log warnings only.
  const session = await ort.InferenceSession.create(model, { executionProviders: [ep], graphOptimizationLevel: 'all', executionMode: 'sequential', logSeverityLevel: 0 });
  const sessionMs = performance.now() - t0;
  const { size, channels } = config;
  const network: SlicePredictor = {
    size,
    async predict(images) {
      const plane = channels * size * size;
      const x = new Float32Array(images.length * plane);
      images.forEach((im, i) => x.set(im, i * plane));
      const out = await session.run({ [config.inputName]: new ort.Tensor('float32', x, [images.length, channels, size, size]) }, { logSeverityLevel: 2 });
      const p = (await out[config.outputName].getData()) as Float32Array;
      return images.map((_, i) => p.slice(i * size * size, (i + 1) * size * size));
    },
  };
  setState('running');
  const volume = parseNifti(scanBytes, 'scan.nii');
  const nz = volume.dims[volume.sliceAxis];
  const msPerSlice: number[] = [];
  // Timed as the web page times its slices: from before predictVolume, one step per slice.
  let last = performance.now();
  const p = await predictVolume(config.tta ? mirroredTTA(network) : network, volume, {
    batch: 1,
    onProgress: (done) => {
      const now = performance.now();
      const ms = now - last;
      last = now;
      msPerSlice.push(ms);
      console.log(`ort-timing slice=${done}/${nz} ms=${ms.toFixed(1)} ep=${ep}`);
    },
  });
  await session.release();
  result = {
    ep,
    script,
    ortVersion: ort.env.versions.web ?? '?',
    crossOriginIsolated,
    hardwareConcurrency: navigator.hardwareConcurrency,
    threads: ort.env.wasm.numThreads ?? 1,
    adapter,
    sessionMs,
    msPerSlice,
    probabilities: base64(new Uint8Array(p.probabilities.buffer, p.probabilities.byteOffset, p.probabilities.byteLength)),
  };
  setState('done');
}

(window as unknown as { ortPage: { result(): OrtPageResult | null; error(): string | null } }).ortPage = { result: () => result, error: () => failure };

void main().catch((e) => {
  failure = errorText(e);
  console.error(`ort-timing failed: ${failure}`);
  setState('error');
});
