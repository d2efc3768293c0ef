// Where the time goes: named sections (as PyTorch's record_function), and a profiler that times
// every dispatch, from timestamp queries where the adapter has them and host timers otherwise.
// Sections are plain strings on a stack, cheap enough to leave in model code: a recorded op keeps
// the section it ran in, so its backward pass is attributed to the same section.

let sections: string[] = [];
let backwardDepth = 0;

/** Run `fn` inside a named section (nested sections join with "/"). Synchronous code only. */
export function profileSection<T>(name: string, fn: () => T): T {
  sections.push(name);
  try {
    return fn();
  } finally {
    sections.pop();
  }
}

/** The current section path ("" outside any). */
export function currentSection(): string {
  return sections.join('/');
}

/** Internal (autograd): run a backward rule in the section its op was recorded in. */
export function inBackwardOf<T>(section: string, fn: () => T): T {
  const saved = sections;
  sections = section ? [section] : [];
  backwardDepth++;
  try {
    return fn();
  } finally {
    backwardDepth--;
    sections = saved;
  }
}

export function isInBackward(): boolean {
  return backwardDepth > 0;
}

/** One timed dispatch. */
export interface DispatchTiming {
  kernel: string;
  section: string;
  backward: boolean;
  /** Device time in milliseconds. */
  ms: number;
  /** Floating-point operations the dispatch's launch declared (0 when it declared none). */
  flops: number;
}

export interface Profile {
  /** 'timestamps': per-dispatch device time from timestamp queries; 'host': each dispatch submitted
   *  alone and timed from its completion (approximate, and slower than unprofiled work). */
  source: 'timestamps' | 'host';
  dispatches: DispatchTiming[];
  /** Wall time from start to stop. */
  wallMs: number;
  /** Host time spent encoding dispatches, uploading data and waiting for the device. */
  encodeMs: number;
  uploadMs: number;
  waitMs: number;
}

/** The kind of work a kernel does, for the profile's first table. */
export function kernelKind(kernel: string, backward: boolean): string {
  if (kernel.startsWith('conv2d.')) {
    if (/^conv2d\.(winograd\.(f4x4\.)?)?(weightGrad|gradLayout|dw1x1)/.test(kernel)) return 'conv weight gradient';
    return backward ? 'conv input gradient' : 'conv forward';
  }
  if (/^instanceNorm(Relu)?\./.test(kernel)) return backward ? 'instance norm backward' : 'instance norm forward';
  if (kernel.startsWith('attention.') || kernel.startsWith('dualAttention')) return backward ? 'attention backward' : 'attention forward';
  if (kernel.startsWith('adam')) return 'optimiser';
  if (/^(sum|mean|tverskySums|bceWithLogits|matmul)/.test(kernel)) return backward ? 'reductions, loss backward' : 'reductions, loss';
  return backward ? 'element-wise backward' : 'element-wise forward';
}

export interface ProfileRow {
  name: string;
  ms: number;
  dispatches: number;
  /** Share of the summed device time. */
  share: number;
  /** Declared floating-point operations (see {@link Dispatch.flops}); 0 for kernels that declare none. */
  flops: number;
}

/** Device time summed by a key, largest first. */
export function groupProfile(p: Profile, key: (d: DispatchTiming) => string): ProfileRow[] {
  const rows = new Map<string, ProfileRow>();
  let total = 0;
  for (const d of p.dispatches) {
    const name = key(d);
    let r = rows.get(name);
    if (!r) rows.set(name, (r = { name, ms: 0, dispatches: 0, share: 0, flops: 0 }));
    r.ms += d.ms;
    r.flops += d.flops;
    r.dispatches++;
    total += d.ms;
  }
  for (const r of rows.values()) r.share = total > 0 ? r.ms / total : 0;
  return [...rows.values()].sort((a, b) => b.ms - a.ms);
}

/** The profile's summary: device time by kind and by top-level section, and the host's share. */
/**
 * For a convolution's dispatch, its pass and how it ran: "conv forward, Winograd" (the Winograd
 * F(2x2, 3x3) or F(4x4, 3x3) kernels: transforms and GEMM) or "conv forward, direct" (the correlation, 1x1 and
 * weight-gradient kernels and their re-layouts); null for other kernels. The profile thereby
 * records which algorithm conv2d chose, and what each cost.
 */
export function convAlgorithm(kernel: string, backward: boolean): string | null {
  if (!kernel.startsWith('conv2d.')) return null;
  return `${kernelKind(kernel, backward)}, ${kernel.startsWith('conv2d.winograd.') ? 'Winograd' : 'direct'}`;
}

export function summariseProfile(p: Profile): { deviceMs: number; idleMs: number; byKind: ProfileRow[]; bySection: ProfileRow[]; byConvAlgorithm: ProfileRow[] } {
  const deviceMs = p.dispatches.reduce((s, d) => s + d.ms, 0);
  return {
    deviceMs,
    // Wall time in which the device ran nothing: the host encoding, uploading or waiting.
    idleMs: Math.max(0, p.wallMs - deviceMs),
    byKind: groupProfile(p, (d) => kernelKind(d.kernel, d.backward)),
    bySection: groupProfile(p, (d) => `${d.section.split('/')[0] || '(none)'}${d.backward ? ' backward' : ''}`),
    // Shares of the convolutions' time only.
    byConvAlgorithm: groupProfile({ ...p, dispatches: p.dispatches.filter((d) => d.kernel.startsWith('conv2d.')) }, (d) => convAlgorithm(d.kernel, d.backward)!),
  };
}

const QUERY_RESOLVE = 0x0200;
const COPY_SRC = 0x0004;
const COPY_DST = 0x0008;
const MAP_READ = 0x0001;

/**
 * Collects per-dispatch timings for the runtime. With timestamps, every dispatch gets a compute
 * pass of its own whose beginning and end write a timestamp; each submitted batch resolves its
 * queries into a buffer that is read back later. Without, the runtime submits each dispatch alone
 * and the profiler times it from the completion of the one before.
 */
export class Profiler {
  readonly dispatches: DispatchTiming[] = [];
  readonly started = performance.now();
  encodeMs = 0;
  uploadMs = 0;
  waitMs = 0;
  private slots: Omit<DispatchTiming, 'ms'>[] = [];
  private querySet: GPUQuerySet | null = null;
  private readonly pending: Promise<void>[] = [];
  private lastDone = 0;

  constructor(
    private readonly device: GPUDevice,
    readonly timestamps: boolean,
    private readonly capacity: number,
  ) {}

  /** Timestamp mode: the timestampWrites of the next dispatch's pass. */
  passTimestamps(kernel: string, flops: number): GPUComputePassTimestampWrites {
    if (!this.querySet) this.querySet = this.device.createQuerySet({ type: 'timestamp', count: 2 * this.capacity, label: 'profile' });
    const k = this.slots.length;
    this.slots.push({ kernel, section: currentSection(), backward: isInBackward(), flops });
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * k, endOfPassWriteIndex: 2 * k + 1 };
  }

  /** Whether the batch has no room for another timed dispatch. */
  get full(): boolean {
    return this.slots.length >= this.capacity;
  }

  /** Timestamp mode, before the batch's encoder is finished: resolve its queries for reading. */
  resolveBatch(encoder: GPUCommandEncoder): (() => void) | null {
    if (!this.slots.length || !this.querySet) return null;
    const slots = this.slots;
    const querySet = this.querySet;
    this.slots = [];
    this.querySet = null;
    const bytes = slots.length * 16;
    const resolved = this.device.createBuffer({ size: bytes, usage: QUERY_RESOLVE | COPY_SRC, label: 'profile-resolve' });
    const readable = this.device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST, label: 'profile-read' });
    encoder.resolveQuerySet(querySet, 0, 2 * slots.length, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, readable, 0, bytes);
    // After submission: read the timestamps back whenever the batch is done.
    return () => {
      this.pending.push(
        readable.mapAsync(MAP_READ).then(() => {
          const t = new BigUint64Array(readable.getMappedRange().slice(0));
          // Some backends may write an end before its beginning: count that as 0.
          slots.forEach((s, k) => this.dispatches.push({ ...s, ms: t[2 * k + 1] > t[2 * k] ? Number(t[2 * k + 1] - t[2 * k]) / 1e6 : 0 }));
          readable.unmap();
        }).finally(() => {
          readable.destroy();
          resolved.destroy();
          querySet.destroy();
        }),
      );
    };
  }

  /**
   * Host mode, after one dispatch was submitted alone: time it from the queue's completion. The
   * completions are seen only between turns of the event loop, so a dispatch's time may include
   * its neighbours' within one synchronous stretch of encoding: sums over sections and kinds are
   * sound, single dispatches are not.
   */
  timeSubmitted(kernel: string, flops: number): void {
    const slot = { kernel, section: currentSection(), backward: isInBackward(), flops };
    const submitted = performance.now();
    this.pending.push(
      this.device.queue.onSubmittedWorkDone().then(() => {
        const done = performance.now();
        this.dispatches.push({ ...slot, ms: done - Math.max(submitted, this.lastDone) });
        this.lastDone = done;
      }),
    );
  }

  /** Wait for every timing still being read; one that fails (a lost device) is dropped. */
  async finish(): Promise<void> {
    await Promise.allSettled(this.pending);
  }
}
