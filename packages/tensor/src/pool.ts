// Buffer pool with size classes, so that a training step's intermediates reuse the previous
// step's buffers instead of asking the driver for new ones. Only a new buffer (a pool miss) is
// created inside an out-of-memory error scope, so reuse costs nothing more.

import { OutOfMemoryError } from './errors';

/** Round a byte count up to its size class: multiples of 256 B, then 4 classes per power of two (waste < 25%). */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 256) * 256);
  if (b <= 4096) return b;
  const pow = 2 ** Math.floor(Math.log2(b));
  const step = pow / 4;
  return Math.ceil(b / step) * step;
}

export interface MemoryStats {
  /** Bytes held by live tensors (size classes, not requested sizes). */
  bytesInUse: number;
  /** Highest bytesInUse since start or the last resetPeak(). */
  peakBytes: number;
  /** Bytes held in free lists, ready for reuse. */
  pooledBytes: number;
  /** Live buffers handed out. */
  buffersInUse: number;
}

export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private inUse = 0;
  private peak = 0;
  private pooled = 0;
  private liveBuffers = 0;
  /** Buffers whose creation ran out of memory (invalid): destroyed on release, never reused. */
  // Weak: a failed buffer that trim() destroyed while free is never released, and must not stay here.
  private readonly failed = new WeakSet<GPUBuffer>();

  /**
   * `onError` receives an out-of-memory error reported by the device after createBuffer returned
   * (the runtime records it, to be thrown at the next sync point).
   */
  constructor(
    private readonly device: GPUDevice,
    private readonly usage: number,
    private readonly label: string,
    private readonly onError: (error: OutOfMemoryError) => void = () => {},
  ) {}

  /** A buffer of at least `bytes` (its size class); `op` names the operation, for errors. */
  acquire(bytes: number, op?: string): GPUBuffer {
    const size = sizeClass(bytes);
    const list = this.free.get(size);
    let buffer = list?.pop();
    if (buffer) this.pooled -= size;
    else buffer = this.create(size, bytes, op);
    this.inUse += size;
    this.liveBuffers++;
    if (this.inUse > this.peak) this.peak = this.inUse;
    return buffer;
  }

  private create(size: number, bytes: number, op: string | undefined): GPUBuffer {
    const device = this.device;
    const inUse = this.inUse;
    const pooled = this.pooled;
    device.pushErrorScope('out-of-memory');
    let buffer: GPUBuffer;
    try {
      buffer = device.createBuffer({ size, usage: this.usage, label: `${this.label}[${size}]` });
    } catch (e) {
      // Some implementations throw (a RangeError) for sizes they cannot allocate at all.
      device.popErrorScope().catch(() => {});
      throw new OutOfMemoryError(bytes, inUse, pooled, op, e instanceof Error ? `${e.name}: ${e.message}` : String(e), this.label);
    }
    device.popErrorScope().then(
      (err) => {
        if (!err) return;
        this.discard(buffer);
        this.onError(new OutOfMemoryError(bytes, inUse, pooled, op, err.message, this.label));
      },
      // Rejected when the device is lost, which the runtime reports itself.
      () => {},
    );
    return buffer;
  }

  /** Never reuse a buffer whose creation failed: destroy it now if it is already free, else on release. */
  private discard(buffer: GPUBuffer): void {
    const list = this.free.get(buffer.size);
    const i = list ? list.indexOf(buffer) : -1;
    if (i < 0) {
      this.failed.add(buffer);
      return;
    }
    list!.splice(i, 1);
    this.pooled -= buffer.size;
    buffer.destroy();
  }

  release(buffer: GPUBuffer): void {
    const size = buffer.size;
    this.inUse -= size;
    this.liveBuffers--;
    if (this.failed.delete(buffer)) {
      buffer.destroy();
      return;
    }
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buffer);
    this.pooled += size;
  }

  /** Destroy every pooled (free) buffer, returning their memory to the driver. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.pooled = 0;
  }

  resetPeak(): void {
    this.peak = this.inUse;
  }

  stats(): MemoryStats {
    return { bytesInUse: this.inUse, peakBytes: this.peak, pooledBytes: this.pooled, buffersInUse: this.liveBuffers };
  }
}
