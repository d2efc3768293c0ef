// The WebGPU runtime: one device per process, a pending command encoder that collects
// dispatches and submits them in batches, a pipeline cache keyed by WGSL source, a uniform
// arena that is rewritten per batch (so uniforms never leak), the buffer pool, and errors
// turned into exceptions that name the kernel.
// The reference below stays in the built declarations (`preserve`), so that a project using
// them has WebGPU's types (GPUDevice, GPUBuffer, ...) from @webgpu/types, which `webgpu` brings.
/// <reference types="@webgpu/types" preserve="true" />

import { WebGPUError, type OutOfMemoryError } from './errors';
import { Profiler, type Profile } from './profile';
import { BufferPool, type MemoryStats } from './pool';
import { uniformStruct } from './uniforms';
import { dawnStderrFilter, type StderrFilter } from './dawn-stderr';

export interface AdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True for software adapters such as lavapipe or SwiftShader. */
  isFallback: boolean;
  /** "cpu" for software adapters, "gpu" otherwise. */
  type: 'cpu' | 'gpu';
  features: string[];
  limits: Record<string, number>;
}

export interface InitOptions {
  powerPreference?: GPUPowerPreference;
  /** Dispatches collected before an automatic submit. */
  maxDispatchesPerSubmit?: number;
}

export interface StorageBinding {
  buffer: GPUBuffer;
  /** Bytes bound, from offset 0; a multiple of 4. */
  size: number;
}

export interface Dispatch {
  /** Kernel name, used for labels and in error messages. */
  kernel: string;
  /** Complete WGSL source; pipelines are cached by it. */
  code: string;
  /** Workgroup counts; use `grid1d` for 1-D problems larger than 65535 workgroups. */
  workgroups: [number, number?, number?];
  /** Storage buffers, bound at @group(0) @binding(1), (2), ... in order. */
  storage: StorageBinding[];
  /** Uniform data, bound at @group(0) @binding(0) when present. */
  uniforms?: ArrayBuffer | ArrayBufferView;
  /** Floating-point operations of the work done (2 per multiply-add), for the profile's rates. */
  flops?: number;
}

export { WebGPUError };

const STORAGE_USAGE = 0x0080 /* STORAGE */ | 0x0004 /* COPY_SRC */ | 0x0008; /* COPY_DST */
const READBACK_USAGE = 0x0001 /* MAP_READ */ | 0x0008; /* COPY_DST */
const UNIFORM_USAGE = 0x0040 /* UNIFORM */ | 0x0008; /* COPY_DST */
const MAP_MODE_READ = 0x0001;

// Dawn's node instance. Kept referenced for the life of the process: if it is garbage-collected
// while a device lives, Dawn crashes later in a random callback.
let dawnInstance: unknown = null;
/** Runs the calls that enumerate adapters, where Dawn prints its notices (see dawn-stderr.ts). */
let holdDawnNotices: StderrFilter = (fn) => fn();
/** How long a wait on the device polls before sleeping between polls (see Runtime.settle). */
const SETTLE_SPIN_MS = 2;

/**
 * An Int32Array to Atomics.wait on, when the device comes from dawn.node (which polls from
 * setImmediate); null otherwise (a browser's WebGPU, or where the main thread may not block).
 */
function dawnSleepCell(): Int32Array | null {
  if (!dawnInstance || typeof setImmediate !== 'function') return null;
  try {
    const cell = new Int32Array(new SharedArrayBuffer(4));
    Atomics.wait(cell, 0, 1, 0); // throws where blocking is not allowed
    return cell;
  } catch {
    return null;
  }
}
/**
 * AUNET_WEBGPU_WITHOUT=subgroups,shader-f16,timestamp-query (Node): leave those features off the
 * device although the adapter has them, to run and measure in Node the paths a browser takes
 * where it lacks them (a compatibility-mode adapter has none of the three).
 */
function featuresWithheld(): string[] {
  const v = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.AUNET_WEBGPU_WITHOUT;
  const names = (v ?? '').split(',').map((f) => f.trim()).filter(Boolean);
  const known = ['subgroups', 'shader-f16', 'timestamp-query'];
  const bad = names.filter((f) => !known.includes(f));
  if (bad.length) throw new WebGPUError(`AUNET_WEBGPU_WITHOUT lists ${bad.join(', ')}: it takes a comma-separated list of ${known.join(', ')}`);
  return names;
}

let current: Runtime | null = null;
let initializing: Promise<Runtime> | null = null;

function noAdapterMessage(): string {
  const lines = ['No WebGPU adapter is available, so no tensor can be created.'];
  const icd = typeof process !== 'undefined' ? process.env?.VK_ICD_FILENAMES ?? process.env?.VK_DRIVER_FILES : undefined;
  if (icd) lines.push(`VK_ICD_FILENAMES/VK_DRIVER_FILES is set to "${icd}": check that this Vulkan driver file exists, or unset it.`);
  if (typeof process !== 'undefined' && process.platform === 'linux') {
    lines.push(
      'On Linux without a GPU, WebGPU runs on Mesa\'s lavapipe (Vulkan on the CPU). Debian 12\'s own Mesa 22 is too old for Dawn;',
      'install Mesa from bookworm-backports (as root):',
      '  echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/backports.list',
      '  apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers',
      'or run `bash scripts/setup.sh` from the repository root, which does this. Dawn printed the underlying reason above.',
    );
  } else {
    lines.push('Install a Vulkan, Metal or D3D12 driver for your GPU, or use a browser with WebGPU enabled.');
  }
  return lines.join('\n');
}

async function getGPU(): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  // Node: Dawn's bindings. The module name is in a variable so that browser bundlers skip it.
  const moduleName = 'webgpu';
  const mod = (await import(/* @vite-ignore */ moduleName)) as {
    create: (flags: string[]) => GPU;
    globals: Record<string, unknown>;
  };
  // GPUBufferUsage, GPUMapMode etc. as globals, as in a browser.
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  if (!dawnInstance) {
    holdDawnNotices = await dawnStderrFilter();
    // Dawn rounds timestamps (a browser's guard against timing attacks); the profiler wants them exact.
    dawnInstance = holdDawnNotices(() => mod.create(['disable-dawn-features=timestamp_quantization']));
  }
  return dawnInstance as GPU;
}

/** Create the device (once per process) and return the runtime. */
export function init(options: InitOptions = {}): Promise<Runtime> {
  if (current) return Promise.resolve(current);
  if (!initializing) {
    initializing = Runtime.create(options).then(
      (rt) => (current = rt),
      (err) => {
        initializing = null;
        throw err;
      },
    );
  }
  return initializing;
}

/** The runtime created by `init()`; throws if `init()` has not completed. */
export function runtime(): Runtime {
  if (!current) throw new WebGPUError('The WebGPU runtime is not initialised: `await init()` before creating tensors.');
  return current;
}

const UNIFORM_SLOT = 256; // minUniformBufferOffsetAlignment on every adapter seen

export class Runtime {
  readonly pool: BufferPool;
  /** Host-readable staging buffers for readback (not counted in memory()). */
  private readonly staging: BufferPool;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private dispatchesInBatch = 0;
  private kernelsInBatch = new Set<string>();
  private kernelsSubmitted = new Set<string>();
  private uniformCpu = new Uint8Array(64 * 1024);
  private uniformGpu: GPUBuffer;
  private uniformBytes = 0;
  private pendingError: WebGPUError | null = null;
  /** The pending error explains the errors that follow it (a compile error, an allocation that ran out of memory). */
  private pendingIsCause = false;
  private lost: WebGPUError | null = null;
  private readonly maxDispatches: number;
  /** For settle(): where the main thread sleeps, pending device promises, whether a sleeper runs. */
  private readonly sleepCell = dawnSleepCell();
  private pendingWaits = 0;
  private sleeping = false;
  private spinUntil = 0;
  private sleepMs = 0.1;
  /** Counters for benchmarks and tests. */
  readonly counters = { dispatches: 0, submits: 0, pipelinesCompiled: 0, readbacks: 0 };
  /** Set between startProfile() and stopProfile(). */
  private profiler: Profiler | null = null;
  private profileStarting = false;

  private constructor(
    readonly device: GPUDevice,
    readonly adapter: AdapterReport,
    options: InitOptions,
  ) {
    // An allocation that ran out of memory explains the errors of the kernels that use its buffer.
    const outOfMemory = (e: OutOfMemoryError) => this.recordCause(e);
    this.pool = new BufferPool(device, STORAGE_USAGE, 'tensor', outOfMemory);
    this.staging = new BufferPool(device, READBACK_USAGE, 'readback', outOfMemory);
    this.uniformGpu = device.createBuffer({ size: this.uniformCpu.byteLength, usage: UNIFORM_USAGE, label: 'uniform-arena' });
    this.maxDispatches = options.maxDispatchesPerSubmit ?? 256;
    device.addEventListener('uncapturederror', (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      // The event may arrive after its batch was submitted: name the kernels of both batches.
      const kernels = new Set([...this.kernelsSubmitted, ...this.kernelsInBatch]);
      this.recordError(`WebGPU error in a batch with kernels [${[...kernels].join(', ')}]: ${e.message}`);
    });
    device.lost.then((info) => {
      // Any loss, a destroy() included: nothing queued after it runs, so every later call must say so.
      this.lost = new WebGPUError(`The WebGPU device was lost (${info.reason}${info.message ? `: ${info.message}` : ''}); nothing that was submitted since the last sync is done. Restart the process (a run resumes from its last checkpoint)`);
    });
  }

  static async create(options: InitOptions): Promise<Runtime> {
    const gpu = await getGPU();
    // Dawn enumerates the adapters, and prints its notices, within this call (not in the promise).
    const adapter = await holdDawnNotices(() => gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' }));
    if (!adapter) throw new WebGPUError(noAdapterMessage());
    const wanted: GPUFeatureName[] = ['timestamp-query', 'shader-f16', 'subgroups' as GPUFeatureName];
    const withheld = featuresWithheld();
    const requiredFeatures = wanted.filter((f) => adapter.features.has(f) && !withheld.includes(f));
    const L = adapter.limits;
    const requiredLimits: Record<string, number> = {
      maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
      maxBufferSize: L.maxBufferSize,
      maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: L.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: L.maxComputeWorkgroupSizeY,
      maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupsPerDimension: L.maxComputeWorkgroupsPerDimension,
    };
    const device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'aunet' });
    const info = adapter.info ?? ({} as GPUAdapterInfo);
    const isFallback = Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter)
      || /llvmpipe|lavapipe|swiftshader/i.test(`${info.device} ${info.description} ${info.architecture}`);
    const limits: Record<string, number> = {};
    for (const k of Object.keys(requiredLimits)) limits[k] = (device.limits as unknown as Record<string, number>)[k];
    limits.minUniformBufferOffsetAlignment = device.limits.minUniformBufferOffsetAlignment;
    const report: AdapterReport = {
      vendor: info.vendor ?? '',
      architecture: info.architecture ?? '',
      device: info.device ?? '',
      description: info.description ?? '',
      isFallback,
      type: isFallback ? 'cpu' : 'gpu',
      features: [...device.features].sort(),
      limits,
    };
    return new Runtime(device, report, options);
  }

  /** Human-readable one-line description of the adapter. */
  describe(): string {
    const a = this.adapter;
    const name = a.description || a.device || a.architecture || 'unknown adapter';
    return `${name} (${a.vendor || 'unknown vendor'}, ${a.type}${a.isFallback ? ', fallback' : ''})`;
  }

  private recordError(message: string): void {
    if (!this.pendingError) this.pendingError = new WebGPUError(message);
  }

  /** Record an error that explains those that follow it: it replaces them, unless another such error came first. */
  private recordCause(e: WebGPUError): void {
    if (this.pendingIsCause) return;
    this.pendingError = e;
    this.pendingIsCause = true;
  }

  /** Throw the first WebGPU error seen since the last check, if any. */
  throwIfError(): void {
    if (this.lost) throw this.lost;
    const e = this.pendingError;
    if (e) {
      this.pendingError = null;
      this.pendingIsCause = false;
      throw e;
    }
  }

  pipeline(kernel: string, code: string): GPUComputePipeline {
    let p = this.pipelines.get(code);
    if (p) return p;
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ code, label: kernel });
    p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: kernel });
    this.device.popErrorScope().then((err) => {
      // A compile error explains the errors that follow it, so it replaces them.
      if (!err) return;
      this.pendingError = new WebGPUError(`Kernel "${kernel}" failed to compile: ${err.message}\n--- WGSL ---\n${numbered(code)}`);
      this.pendingIsCause = true;
      // Uncached, a later dispatch of it reports the compile error again instead of an invalid pipeline.
      this.pipelines.delete(code);
    });
    this.pipelines.set(code, p);
    this.counters.pipelinesCompiled++;
    return p;
  }

  /** Encode one compute dispatch into the pending batch. */
  dispatch(d: Dispatch): void {
    if (this.lost) throw this.lost;
    if (this.profiler) {
      const t0 = performance.now();
      const profiler = this.profiler;
      try {
        return this.encodeDispatch(d);
      } finally {
        profiler.encodeMs += performance.now() - t0;
      }
    }
    this.encodeDispatch(d);
  }

  private encodeDispatch(d: Dispatch): void {
    const pipeline = this.pipeline(d.kernel, d.code);
    this.kernelsInBatch.add(d.kernel);
    const entries: GPUBindGroupEntry[] = [];
    if (d.uniforms) {
      const bytes = d.uniforms instanceof ArrayBuffer
        ? new Uint8Array(d.uniforms)
        : new Uint8Array(d.uniforms.buffer, d.uniforms.byteOffset, d.uniforms.byteLength);
      if (bytes.byteLength > UNIFORM_SLOT) throw new WebGPUError(`Kernel "${d.kernel}": uniforms of ${bytes.byteLength} B exceed ${UNIFORM_SLOT} B`);
      if (this.uniformBytes + UNIFORM_SLOT > this.uniformCpu.byteLength) this.flush();
      const offset = this.uniformBytes;
      this.uniformCpu.set(bytes, offset);
      this.uniformBytes += UNIFORM_SLOT;
      entries.push({ binding: 0, resource: { buffer: this.uniformGpu, offset, size: Math.ceil(bytes.byteLength / 16) * 16 } });
    }
    d.storage.forEach((s, i) => entries.push({ binding: i + 1, resource: { buffer: s.buffer, offset: 0, size: s.size } }));
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries, label: d.kernel });
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'batch' });
    const profiler = this.profiler;
    if (profiler?.timestamps) {
      // A pass per dispatch, its start and end timestamped.
      this.pass?.end();
      this.pass = this.encoder.beginComputePass({ label: d.kernel, timestampWrites: profiler.passTimestamps(d.kernel, d.flops ?? 0) });
    } else if (!this.pass) {
      this.pass = this.encoder.beginComputePass({ label: 'batch' });
    }
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup);
    const [x, y = 1, z = 1] = d.workgroups;
    if (x > 0 && y > 0 && z > 0) this.pass.dispatchWorkgroups(x, y, z);
    this.counters.dispatches++;
    if (profiler && !profiler.timestamps) {
      this.flush();
      profiler.timeSubmitted(d.kernel, d.flops ?? 0);
    } else if (++this.dispatchesInBatch >= this.maxDispatches || profiler?.full) {
      this.flush();
    }
  }

  /** Encode a buffer-to-buffer copy into the pending batch. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    const enc = this.openEncoder();
    enc.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  private openEncoder(): GPUCommandEncoder {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'batch' });
    return this.encoder;
  }

  /** Submit the pending batch (does not wait for it). */
  flush(): void {
    if (!this.encoder) return;
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    if (this.uniformBytes > 0) this.device.queue.writeBuffer(this.uniformGpu, 0, this.uniformCpu, 0, this.uniformBytes);
    const readTimestamps = this.profiler?.resolveBatch(this.encoder);
    this.device.queue.submit([this.encoder.finish()]);
    readTimestamps?.();
    this.encoder = null;
    this.uniformBytes = 0;
    this.dispatchesInBatch = 0;
    this.kernelsSubmitted = this.kernelsInBatch;
    this.kernelsInBatch = new Set();
    this.counters.submits++;
    // Errors are thrown at the next sync point (read or sync), once any compile error that
    // explains them has arrived.
  }

  /** Submit pending work and wait until the GPU has finished it. */
  async sync(): Promise<void> {
    this.flush();
    const t0 = performance.now();
    await this.settle(this.device.queue.onSubmittedWorkDone());
    if (this.profiler) this.profiler.waitMs += performance.now() - t0;
    this.throwIfError();
  }

  /**
   * Start timing every dispatch (see {@link Profiler}): from timestamp queries where the device
   * has the 'timestamp-query' feature (unless `timestamps: false`), else from host timers with
   * each dispatch submitted alone. Dispatches are attributed to the {@link profileSection} they
   * run in; profiling makes the work itself a little slower (a pass per dispatch).
   */
  async startProfile(o: { timestamps?: boolean } = {}): Promise<void> {
    if (this.profiler || this.profileStarting) throw new Error('startProfile: a profile is already running; call stopProfile() first');
    this.profileStarting = true;
    try {
      await this.sync();
    } finally {
      this.profileStarting = false;
    }
    const timestamps = (o.timestamps ?? true) && this.device.features.has('timestamp-query');
    // Two queries a dispatch; a query set holds at most 4096.
    this.profiler = new Profiler(this.device, timestamps, Math.min(this.maxDispatches, 2048));
  }

  /** Stop profiling: waits for the work profiled and returns every dispatch's time. */
  async stopProfile(): Promise<Profile> {
    const profiler = this.profiler;
    if (!profiler) throw new Error('stopProfile: no profile is running; call startProfile() first');
    let wallMs: number;
    try {
      await this.sync();
      wallMs = performance.now() - profiler.started;
    } finally {
      this.profiler = null;
      await profiler.finish();
    }
    const { dispatches, encodeMs, uploadMs, waitMs } = profiler;
    return { source: profiler.timestamps ? 'timestamps' : 'host', dispatches, wallMs, encodeMs, uploadMs, waitMs };
  }

  /**
   * Wait for a promise from the device without busy-waiting for long. dawn.node resolves its
   * promises by polling the device from setImmediate, so an awaited promise keeps the main thread
   * busy until the GPU is done (67% of the wait measured by `pnpm bench dispatch`'s wait-cpu); on
   * a CPU adapter that core is taken from the rasteriser's threads (conv kernels 1.2-1.4x slower
   * on 2 cores, interleaved A/B). So one sleeper loop runs while any such promise is pending:
   * after SETTLE_SPIN_MS of plain polling (short waits stay as fast as before: a sleeping thread
   * is slow to wake in a VM), it sleeps in Atomics.wait between event-loop turns, 0.1 ms growing
   * to 1 ms. Elsewhere (browsers) this is a plain await.
   */
  private settle<T>(promise: Promise<T>): Promise<T> {
    // A wait that fails because the device went away (its map is aborted) says so, clearly.
    promise = promise.catch(async (e: unknown) => {
      const lost = await Promise.race([this.device.lost.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 100))]);
      if (lost && this.lost) throw this.lost;
      // An error recorded meanwhile (a readback buffer that ran out of memory) explains this one.
      if (this.pendingError) this.throwIfError();
      throw e;
    });
    if (!this.sleepCell) return promise;
    this.pendingWaits++;
    const done = () => {
      this.pendingWaits--;
    };
    promise.then(done, done);
    // Each new wait starts with polling again (the sleeper may still be running for earlier ones).
    this.spinUntil = performance.now() + SETTLE_SPIN_MS;
    this.sleepMs = 0.1;
    if (!this.sleeping) void this.sleepWhileWaiting(this.sleepCell);
    return promise;
  }

  private async sleepWhileWaiting(cell: Int32Array): Promise<void> {
    this.sleeping = true;
    for (;;) {
      // One turn of the event loop: dawn.node's own setImmediate polls the device first.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.pendingWaits === 0) break;
      if (performance.now() < this.spinUntil) continue;
      Atomics.wait(cell, 0, 0, this.sleepMs);
      this.sleepMs = Math.min(2 * this.sleepMs, 1);
    }
    this.sleeping = false;
  }

  /** Write host data into a buffer, ordered after every dispatch encoded so far. */
  write(buffer: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    // queue.writeBuffer runs before any not-yet-submitted command, so submit those first:
    // the buffer may have been recycled from a tensor that pending dispatches still read.
    this.flush();
    const t0 = this.profiler ? performance.now() : 0;
    this.device.queue.writeBuffer(buffer, offset, data.buffer, data.byteOffset, data.byteLength);
    if (this.profiler) this.profiler.uploadMs += performance.now() - t0;
  }

  /** Copy `bytes` from the start of `buffer` back to the host. Flushes pending work. */
  async read(buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
    // Staging buffers are pooled: creating a fresh 16 MiB one per read costs 3x the copy itself.
    const staging = this.staging.acquire(size, 'readback');
    try {
      this.openEncoder().copyBufferToBuffer(buffer, 0, staging, 0, size);
      this.flush();
      const t0 = performance.now();
      await this.settle(staging.mapAsync(MAP_MODE_READ, 0, size));
      if (this.profiler) this.profiler.waitMs += performance.now() - t0;
      const out = staging.getMappedRange(0, size).slice(0, bytes);
      staging.unmap();
      this.counters.readbacks++;
      this.throwIfError();
      return out;
    } finally {
      if (staging.mapState !== 'unmapped') staging.unmap();
      this.staging.release(staging);
    }
  }

  /** Testing aid: when on, every new tensor buffer is filled with NaN first, so that elements
   *  an op fails to write show up as NaN. */
  poisonNewBuffers = false;

  /** Fill the first `words` 32-bit words of a buffer (all of it by default) with one pattern, in
   *  stream order. The library's one fill kernel: `fill_` and buffer poisoning both use it. */
  fillWords(buffer: GPUBuffer, bits: number, words = buffer.size / 4): void {
    this.dispatch({
      kernel: 'fillWords',
      code: FILL_WORDS,
      workgroups: grid1d(words, 256),
      storage: [{ buffer, size: words * 4 }],
      uniforms: FILL_WORDS_UNIFORMS.pack({ n: words, bits: bits >>> 0 }),
    });
  }

  /** Return every pooled (free) buffer, readback staging included, to the driver. */
  trim(): void {
    this.flush();
    this.pool.trim();
    this.staging.trim();
  }

  memory(): MemoryStats {
    return this.pool.stats();
  }
}

/** Workgroup counts for `n` invocations in workgroups of `size`, split over y past the 65535 limit.
 *  Kernels recover the linear index as `(wid.y * nwg.x + wid.x) * size + lid.x`. */
export function grid1d(n: number, size: number): [number, number] {
  const groups = Math.ceil(n / size);
  if (groups <= 65535) return [Math.max(groups, 1), 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}

function numbered(code: string): string {
  return code.split('\n').map((l, i) => `${String(i + 1).padStart(4)}  ${l}`).join('\n');
}

const FILL_WORDS_UNIFORMS = uniformStruct('fillWords', { n: 'u32', bits: 'u32' });

// The library's one fill kernel (a 1-D kernel as kernel.ts's ENTRY_1D and linearIndex write them).
const FILL_WORDS = `
${FILL_WORDS_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  if (i < p.n) { out[i] = p.bits; }
}`;
