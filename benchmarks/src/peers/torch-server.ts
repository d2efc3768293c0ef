// PyTorch as a slice server (python/torch_scan.py): the aunet network built in PyTorch, loaded
// with our model's weights, answering batches of slices with their probabilities over the child's
// stdin/stdout, so that a whole scan can run through the aunet package's own `predictVolume` with
// only the network swapped. The protocol is described in the script.

import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { ModelConfig } from 'aunet';
import { RESULT_MARKER, forwardStderr } from './spawn';
import { pythonScript, torchPython } from './torch';

/** Exact-length reads from a byte stream (the child's stdout). */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private closed: Error | null = null;
  private wake: (() => void) | null = null;

  constructor(stream: Readable, closedError: () => Error) {
    stream.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      this.wake?.();
    });
    stream.on('close', () => {
      this.closed = closedError();
      this.wake?.();
    });
  }

  private async waitFor(ready: () => boolean): Promise<void> {
    while (!ready()) {
      if (this.closed) throw this.closed;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks = n < all.length ? [all.subarray(n)] : [];
    this.buffered -= n;
    return all.subarray(0, n);
  }

  async bytes(n: number): Promise<Buffer> {
    await this.waitFor(() => this.buffered >= n);
    return this.take(n);
  }

  /** The next line, without its "\n". */
  async line(): Promise<string> {
    let at = -1;
    await this.waitFor(() => {
      if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
      at = this.chunks.length ? this.chunks[0].indexOf(10) : -1;
      return at >= 0;
    });
    const line = this.take(at + 1);
    return line.subarray(0, at).toString();
  }
}

export interface TorchServerInfo {
  torch: string;
  threads: number;
  params: number;
}

/** Thrown when PyTorch cannot run here at all (not installed): the suite reports it and goes on. */
export class TorchUnavailable extends Error {}

export class TorchSliceServer {
  private constructor(
    private readonly child: ReturnType<typeof spawn>,
    private readonly out: ByteReader,
    private readonly size: number,
    private readonly channels: number,
    readonly info: TorchServerInfo,
  ) {}

  /**
   * Starts python/torch_scan.py with a model's config and weights (`Module.stateDict()`, by our
   * parameter names); resolves once PyTorch has loaded them.
   */
  static async start(config: ModelConfig, state: Map<string, { shape: number[]; data: Float32Array }>, log: (line: string) => void): Promise<TorchSliceServer> {
    const python = torchPython();
    const script = pythonScript('torch_scan.py');
    log(`torch: ${python} ${script}`);
    const child = spawn(python, [script], { stdio: ['pipe', 'pipe', 'pipe'] });
    const stderr = forwardStderr(child.stderr!, 'torch', log);
    let exit = '';
    let startError: Error | null = null;
    child.on('error', (e) => (startError = e));
    child.on('exit', (code, signal) => (exit = signal ? `killed by ${signal}` : `exit code ${code}`));
    const out = new ByteReader(child.stdout!, () => {
      const tail = stderr.flush().trim().split('\n').slice(-3).join(' | ');
      const why = startError ? `could not start ${python}: ${(startError as Error).message}` : `ended (${exit || 'stdout closed'})`;
      return new Error(`the PyTorch process ${why}${tail ? `: ${tail}` : ''}`);
    });
    child.stdin!.on('error', () => {
      /* the child exited early: the next read says why */
    });
    try {
      const params = [...state].map(([name, t]) => [name, t.shape] as const);
      child.stdin!.write(`${JSON.stringify({ config, params })}\n`);
      for (const t of state.values()) child.stdin!.write(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      const hello = await readAnswer(out);
      if (typeof hello.unavailable === 'string') throw new TorchUnavailable(hello.unavailable);
      if (typeof hello.error === 'string') throw new Error(`PyTorch could not load our weights: ${hello.error}`);
      const info = hello as unknown as TorchServerInfo;
      return new TorchSliceServer(child, out, config.inputSize, config.inChannels, info);
    } catch (e) {
      child.kill();
      throw e;
    }
  }

  /** Probabilities of `images` (each channels x size x size), one forward pass; `ms` is PyTorch's own time for it (not the pipe's). */
  async predict(images: Float32Array[]): Promise<{ probabilities: Float32Array[]; ms: number }> {
    const plane = this.size * this.size;
    const head = Buffer.alloc(4);
    head.writeUInt32LE(images.length);
    this.child.stdin!.write(head);
    for (const im of images) {
      if (im.length !== this.channels * plane) throw new Error(`torch: a slice has ${im.length} values, the model takes ${this.channels}x${this.size}x${this.size}`);
      this.child.stdin!.write(Buffer.from(im.buffer, im.byteOffset, im.byteLength));
    }
    const ms = (await this.out.bytes(8)).readDoubleLE(0);
    const bytes = await this.out.bytes(images.length * plane * 4);
    // Copied out: the buffer need not be 4-byte aligned.
    const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    return { probabilities: images.map((_, i) => all.slice(i * plane, (i + 1) * plane)), ms };
  }

  /** Ends the process; resolves with its peak resident set in bytes (null if it did not say). */
  async close(): Promise<number | null> {
    try {
      this.child.stdin!.end(Buffer.alloc(4));
      const bye = await readAnswer(this.out);
      return typeof bye.peak_rss === 'number' ? bye.peak_rss : null;
    } catch {
      return null;
    } finally {
      this.child.kill();
    }
  }

  /** Stops the process without waiting (after a failure). */
  kill(): void {
    this.child.kill();
  }
}

/** The next RESULT_MARKER line's JSON (lines before it, such as the blank one before every answer, are skipped). */
async function readAnswer(out: ByteReader): Promise<Record<string, unknown>> {
  for (;;) {
    const line = await out.line();
    if (line.startsWith(RESULT_MARKER)) return JSON.parse(line.slice(RESULT_MARKER.length)) as Record<string, unknown>;
  }
}
