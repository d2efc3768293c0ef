// The library's error classes, one per failure a caller may want to catch: WebGPU errors reported
// by the device (thrown at the next sync point), a tensor above the adapter's binding limit
// (thrown where it is created, before anything is allocated), and an allocation the GPU could not
// satisfy.

export class WebGPUError extends Error {
  override name = 'WebGPUError';
}

/** Bytes as a short human-readable size (B, KiB or MiB). */
export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

/**
 * A tensor larger than one storage binding of this adapter (maxStorageBufferBindingSize): no
 * kernel could bind it. Thrown when the tensor is created, before any allocation; `op` names the
 * operation that asked for it, when known.
 */
export class TensorSizeError extends Error {
  override name = 'TensorSizeError';
  constructor(
    readonly shape: readonly number[],
    /** Bytes the tensor needs. */
    readonly bytes: number,
    /** The adapter's maxStorageBufferBindingSize. */
    readonly limit: number,
    readonly op?: string,
    /** The adapter's maxBufferSize, when known. */
    readonly maxBufferSize?: number,
  ) {
    const mib = (b: number) => (b / 2 ** 20).toFixed(0);
    const largest = maxBufferSize ? `; its largest buffer, maxBufferSize, is ${mib(maxBufferSize)} MiB` : '';
    const need = (bytes / 2 ** 20).toFixed(1);
    // Just above the limit, MiB to one decimal hide the difference: give the bytes too.
    const exact = Number(need) <= limit / 2 ** 20 ? ` (${bytes} B, the limit ${limit} B)` : '';
    super(
      `${op ? `${op}: a tensor` : 'A tensor'} of shape [${shape}] needs ${need} MiB${exact}, above this adapter's ` +
        `${mib(limit)} MiB storage binding limit (maxStorageBufferBindingSize${largest}): use a smaller batch or smaller slices`,
    );
  }
}

/**
 * The GPU could not allocate a new buffer (an out-of-memory error from the device, or
 * createBuffer throwing). Thrown at once when createBuffer throws, else at the next sync point
 * (`sync()`, `data()`) like the other device errors.
 */
export class OutOfMemoryError extends WebGPUError {
  override name = 'OutOfMemoryError';
  constructor(
    /** Bytes asked for. */
    readonly bytes: number,
    /** Bytes the pool held in live buffers, and in free buffers kept for reuse, at that moment. */
    readonly bytesInUse: number,
    readonly pooledBytes: number,
    readonly op?: string,
    /** What the device (or the exception from createBuffer) said. */
    readonly detail?: string,
    /** What kind of buffer was asked for ("tensor", "readback"). */
    what = 'tensor',
  ) {
    super(
      `${op ? `${op}: out` : 'Out'} of GPU memory allocating a ${what} buffer of ${formatBytes(bytes)}, while this pool holds ` +
        `${formatBytes(bytesInUse)} in use and ${formatBytes(pooledBytes)} pooled for reuse: use a smaller batch or smaller slices, ` +
        `dispose tensors no longer needed, or call runtime().trim() to return the pooled buffers to the driver` +
        (detail ? ` (device: ${detail})` : ''),
    );
  }
}
