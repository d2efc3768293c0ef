// Buffer pool with size classes, so that a training step's intermediates reuse the previous
// step's buffers instead of asking the driver for new ones.

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

  constructor(
    private readonly device: GPUDevice,
    private readonly usage: number,
    private readonly label: string,
  ) {}

  acquire(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    const list = this.free.get(size);
    let buffer = list?.pop();
    if (buffer) this.pooled -= size;
    else buffer = this.device.createBuffer({ size, usage: this.usage, label: `${this.label}[${size}]` });
    this.inUse += size;
    this.liveBuffers++;
    if (this.inUse > this.peak) this.peak = this.inUse;
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    const size = buffer.size;
    this.inUse -= size;
    this.liveBuffers--;
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
