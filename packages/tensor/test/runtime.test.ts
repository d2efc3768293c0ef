import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { expectClose, setupGPU, testRng } from '../src/testing';
import * as T from '../src/index';
import { BufferPool } from '../src/pool';

test.before(setupGPU);

/** The error `fn` throws (fails if it returns). */
function caught(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

const packageDir = fileURLToPath(new URL('..', import.meta.url));

test('no adapter: a clear error naming the cause and the fix, exit code non-zero', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/probe.ts'], {
    cwd: packageDir,
    env: { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' },
    encoding: 'utf8',
  });
  assert.is.not(r.status, 0);
  assert.match(r.stderr, 'No WebGPU adapter is available');
  assert.match(r.stderr, '/nonexistent/icd.json');
  assert.match(r.stderr, 'bookworm-backports');
});

/** Environment without AUNET_VERBOSE (a developer may have it set), plus `extra`. */
function envWith(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (!('AUNET_VERBOSE' in extra)) delete env.AUNET_VERBOSE;
  return env;
}

test("Dawn's limit notices are held back from stderr, other lines written to descriptor 2 go through, AUNET_VERBOSE=1 shows all", () => {
  const notice = 'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.';
  // What Dawn's C++ does: write straight to descriptor 2, under the filter the runtime puts around adapter enumeration.
  const script = `
    import { writeSync } from 'node:fs';
    import { dawnStderrFilter } from ${JSON.stringify(fileURLToPath(new URL('../src/dawn-stderr.ts', import.meta.url)))};
    const hold = await dawnStderrFilter();
    const value = hold(() => { writeSync(2, ${JSON.stringify(`${notice}\nsomething else from Dawn\n`)}); return 42; });
    process.stdout.write(String(value));`;
  const run = (extra: Record<string, string>) =>
    spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: packageDir, env: envWith(extra), encoding: 'utf8' });
  const quiet = run({});
  assert.is(quiet.status, 0, quiet.stderr);
  assert.is(quiet.stdout, '42');
  if (process.platform === 'linux' || process.platform === 'darwin') assert.is(quiet.stderr, 'something else from Dawn\n');
  const verbose = run({ AUNET_VERBOSE: '1' });
  assert.is(verbose.stdout, '42');
  assert.is(verbose.stderr, `${notice}\nsomething else from Dawn\n`);
});

test('the probe (a real Dawn start) prints no Dawn notice on stderr; with AUNET_VERBOSE=1 it does (Vulkan)', () => {
  const probe = (extra: Record<string, string>) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/probe.ts'], { cwd: packageDir, env: envWith(extra), encoding: 'utf8', timeout: 120_000 });
  const quiet = probe({});
  assert.is(quiet.status, 0, quiet.stderr);
  assert.match(quiet.stdout, /^WebGPU OK: /);
  assert.is(quiet.stderr, '', 'nothing on stderr');
  if (process.platform === 'linux') {
    // Dawn's Vulkan backend prints the notices on every driver seen (lavapipe, NVIDIA, RADV).
    const verbose = probe({ AUNET_VERBOSE: '1' });
    assert.is(verbose.status, 0, verbose.stderr);
    assert.match(verbose.stderr, /artificially reduced/);
  }
});

test('the adapter report names the adapter and its limits', () => {
  const rt = T.runtime();
  assert.ok(rt.describe().length > 0);
  assert.ok(rt.adapter.limits.maxStorageBufferBindingSize >= 128 * 2 ** 20);
  assert.ok(['cpu', 'gpu'].includes(rt.adapter.type));
});

test('a shared subexpression gets the right gradient: y = x*x + sigmoid(x)*x', async () => {
  const rng = testRng('shared');
  const xs = Array.from({ length: 37 }, () => Math.fround(rng.range(-3, 3)));
  await T.scope(async () => {
    const x = T.tensor(xs, [37], { requiresGrad: true });
    const y = T.sum(T.add(T.mul(x, x), T.mul(T.sigmoid(x), x)));
    T.backward(y);
    const expected = xs.map((v) => {
      const s = 1 / (1 + Math.exp(-v));
      return 2 * v + s + v * s * (1 - s);
    });
    expectClose(await x.grad!.data(), expected, 1e-5, 'dy/dx');
    x.grad!.dispose();
  });
});

test('gradients accumulate across uses and across backward calls; noGrad records nothing', async () => {
  await T.scope(async () => {
    const x = T.tensor([1, 2, 3], [3], { requiresGrad: true });
    const w = T.tensor([0.5, -1, 2], [3], { requiresGrad: true });
    // x feeds three ops: d/dx sum(x*w + x + exp(x)) = w + 1 + exp(x)
    T.backward(T.sum(T.add(T.add(T.mul(x, w), x), T.exp(x))));
    expectClose(await x.grad!.data(), [0.5 + 1 + Math.E, -1 + 1 + Math.exp(2), 2 + 1 + Math.exp(3)], 1e-5, 'dx');
    T.backward(T.sum(T.mul(x, w)));
    expectClose(await x.grad!.data(), [0.5 + 1 + Math.E + 0.5, -1 + 1 + Math.exp(2) - 1, 2 + 1 + Math.exp(3) + 2], 1e-5, 'dx accumulated');
    expectClose(await w.grad!.data(), [2, 4, 6], 1e-5, 'dw accumulated');
    const y = T.noGrad(() => T.mul(x, w));
    assert.is(y.requiresGrad, false);
    assert.is(y.gradFn, null);
    T.dispose(x.grad, w.grad);
  });
});

test('backward on a tensor with no recorded inputs fails clearly', () => {
  T.tidy(() => {
    const x = T.tensor([1, 2], [2]);
    assert.throws(() => T.backward(T.sum(x)), /does not require grad/);
    const y = T.tensor([1, 2], [2], { requiresGrad: true });
    assert.throws(() => T.backward(T.mul(y, y)), /non-scalar/);
  });
});

test('a second backward through a released graph fails clearly; retainGraph allows it', async () => {
  await T.scope(async () => {
    const x = T.tensor([1, 2], [2], { requiresGrad: true });
    const shared = T.mul(x, x);
    T.backward(T.sum(shared));
    assert.throws(() => T.backward(T.sum(T.mul(shared, 3))), /already released/);
    x.grad!.dispose();
    x.grad = null;
    const y = T.exp(x);
    T.backward(T.sum(y), { retainGraph: true });
    T.backward(T.sum(T.mul(y, 2)));
    expectClose(await x.grad!.data(), [3 * Math.E, 3 * Math.exp(2)], 1e-5, 'grad after two passes');
    x.grad!.dispose();
  });
});

test('a tensor above the storage binding limit is refused with the sizes', () => {
  const limit = T.runtime().adapter.limits.maxStorageBufferBindingSize;
  assert.throws(() => T.empty([Math.floor(limit / 4) + 1]), /storage binding limit/);
  // 4 bytes above the limit: the MiB are the same to one decimal, so the bytes are given too.
  const err = caught(() => T.empty([Math.floor(limit / 4) + 1]));
  assert.instance(err, T.TensorSizeError);
  assert.match(err.message, /^A tensor of shape \[\d+\] needs [\d.]+ MiB \(\d+ B, the limit \d+ B\), above this adapter's \d+ MiB storage binding limit \(maxStorageBufferBindingSize; its largest buffer, maxBufferSize, is \d+ MiB\): use a smaller batch or smaller slices$/);
});

test('a tensor above the limit names the op that asked for it (conv2d, add, concat), before allocating anything', () => {
  const rt = T.runtime();
  const limit = rt.adapter.limits.maxStorageBufferBindingSize;
  const mib = `${(limit / 2 ** 20).toFixed(0)} MiB storage binding limit`;
  T.tidy(() => {
    // conv2d: a small input, an output of co planes of 1 MiB, just above the limit.
    const co = Math.floor(limit / 2 ** 20) + 1;
    const x = T.zeros([1, 1, 512, 512]);
    const w = T.zeros([co, 1, 3, 3]);
    // add: two small operands that broadcast to [4096, m], just above the limit.
    const m = Math.floor(limit / 4 / 4096) + 1;
    const a = T.zeros([4096, 1]);
    const b = T.zeros([1, m]);
    // concat: two views claiming limit/8 + 1 elements over a 4-element buffer (no kernel reads
    // them: concat refuses its output before copying), so nothing large is allocated.
    const small = T.zeros([4]);
    const halfSize = Math.floor(limit / 8) + 1;
    const half = small.view([halfSize]);
    const before = rt.memory().bytesInUse;
    const cases: [string, () => unknown, string][] = [
      ['conv2d', () => T.conv2d(x, w, null, { padding: 1 }), `[1,${co},512,512]`],
      ['add', () => T.add(a, b), `[4096,${m}]`],
      ['concat', () => T.concat([half, half], 0), `[${2 * halfSize}]`],
    ];
    for (const [op, run, shape] of cases) {
      const err = caught(run);
      assert.instance(err, T.TensorSizeError, op);
      assert.ok(err.message.startsWith(`${op}: a tensor of shape ${shape} needs `), err.message);
      assert.match(err.message, mib);
      assert.match(err.message, 'maxStorageBufferBindingSize');
      assert.is((err as T.TensorSizeError).op, op);
      assert.ok((err as T.TensorSizeError).bytes > limit);
    }
    assert.is(rt.memory().bytesInUse, before, 'nothing allocated by the refused ops');
    half.dispose();
  });
});

/** A stand-in for a device, enough for a BufferPool: error scopes, createBuffer, counters. */
function fakeDevice() {
  class GPUOutOfMemoryError {
    constructor(readonly message: string) {}
  }
  const state = {
    scopes: [] as string[],
    pushed: 0,
    created: 0,
    oom: false,
    throws: null as Error | null,
    destroyed: [] as string[],
  };
  const device = {
    pushErrorScope(filter: string) {
      state.scopes.push(filter);
      state.pushed++;
    },
    popErrorScope() {
      const filter = state.scopes.pop();
      if (filter === undefined) return Promise.reject(new Error('popErrorScope without a scope'));
      return Promise.resolve(state.oom && filter === 'out-of-memory' ? new GPUOutOfMemoryError('Out of memory (fake)') : null);
    },
    createBuffer(d: GPUBufferDescriptor) {
      if (state.throws) throw state.throws;
      state.created++;
      const label = d.label ?? '';
      return { size: d.size, label, destroy: () => state.destroyed.push(label) };
    },
  };
  return { device: device as unknown as GPUDevice, state };
}

const nextTask = () => new Promise((r) => setTimeout(r, 0));

test('out of memory: a new buffer is made in an out-of-memory scope; an error names the op, the bytes and the pool', async () => {
  const { device, state } = fakeDevice();
  const errors: T.OutOfMemoryError[] = [];
  const pool = new BufferPool(device, 0, 'tensor', (e) => errors.push(e));
  const a = pool.acquire(3 * 2 ** 20, 'upsample2x');
  const b = pool.acquire(1024 * 1024, 'upsample2x');
  pool.release(b); // 1 MiB pooled, 3 MiB in use
  await nextTask();
  assert.is(errors.length, 0);
  assert.is(state.pushed, 2);
  // A pooled buffer is reused without createBuffer or an error scope.
  const b2 = pool.acquire(1024 * 1024, 'upsample2x');
  assert.is(b2, b);
  assert.is(state.pushed, 2);
  pool.release(b2);

  state.oom = true;
  const c = pool.acquire(5 * 2 ** 20, 'conv2d');
  assert.is(state.created, 3, 'the buffer is still returned (invalid), the error comes later');
  await nextTask();
  assert.is(state.scopes.length, 0, 'every scope popped');
  assert.is(errors.length, 1);
  const e = errors[0];
  assert.instance(e, T.OutOfMemoryError);
  assert.instance(e, T.WebGPUError);
  assert.is(e.message,
    'conv2d: out of GPU memory allocating a tensor buffer of 5.0 MiB, while this pool holds 3.0 MiB in use and 1.0 MiB pooled for reuse: ' +
    'use a smaller batch or smaller slices, dispose tensors no longer needed, or call runtime().trim() to return the pooled buffers to the driver (device: Out of memory (fake))');
  assert.equal([e.op, e.bytes, e.bytesInUse, e.pooledBytes], ['conv2d', 5 * 2 ** 20, 3 * 2 ** 20, 2 ** 20]);
  // The failed buffer is destroyed on release, never pooled for reuse.
  state.oom = false;
  const pooledBefore = pool.stats().pooledBytes;
  pool.release(c);
  assert.equal(state.destroyed, [`tensor[${5 * 2 ** 20}]`]);
  assert.is(pool.stats().pooledBytes, pooledBefore);
  assert.is(pool.stats().bytesInUse, 3 * 2 ** 20);
  const c2 = pool.acquire(5 * 2 ** 20, 'conv2d');
  assert.is.not(c2, c);
  assert.is(state.created, 4);
  pool.release(c2);
  pool.release(a);
  // Without an op name: a generic wording naming the kind of buffer. A failed buffer released
  // before the device reports the error is taken out of the free list then.
  state.oom = true;
  const d = pool.acquire(7 * 2 ** 20);
  pool.release(d);
  assert.is(pool.stats().pooledBytes, (1 + 3 + 5 + 7) * 2 ** 20);
  await nextTask();
  assert.ok(errors[1].message.startsWith('Out of GPU memory allocating a tensor buffer of 7.0 MiB, while this pool holds '), errors[1].message);
  assert.is(pool.stats().pooledBytes, (1 + 3 + 5) * 2 ** 20);
  assert.equal(state.destroyed, [`tensor[${5 * 2 ** 20}]`, `tensor[${7 * 2 ** 20}]`]);
});

test('out of memory: createBuffer throwing is rethrown as OutOfMemoryError naming the op, the pool left as it was', async () => {
  const { device, state } = fakeDevice();
  const errors: unknown[] = [];
  const pool = new BufferPool(device, 0, 'tensor', (e) => errors.push(e));
  const a = pool.acquire(2 * 2 ** 20, 'instanceNorm');
  state.throws = new RangeError('Invalid array buffer length');
  const err = caught(() => pool.acquire(2 ** 40, 'instanceNorm backward'));
  assert.instance(err, T.OutOfMemoryError);
  assert.ok(err.message.startsWith('instanceNorm backward: out of GPU memory allocating a tensor buffer of 1048576.0 MiB, while this pool holds 2.0 MiB in use and 0 B pooled for reuse: use a smaller batch'), err.message);
  assert.match(err.message, 'runtime().trim()');
  assert.match(err.message, '(device: RangeError: Invalid array buffer length)');
  await nextTask();
  assert.is(state.scopes.length, 0, 'the scope is popped');
  assert.is(errors.length, 0);
  assert.equal(pool.stats(), { bytesInUse: 2 * 2 ** 20, peakBytes: 2 * 2 ** 20, pooledBytes: 0, buffersInUse: 1 });
  pool.release(a);
});

test('out of memory reported by the device is thrown at the next sync, naming the op', async () => {
  const rt = T.runtime();
  await rt.sync();
  rt.trim(); // so that the tensor below needs a new buffer
  const holder = rt.pool as unknown as { device: GPUDevice };
  const real = holder.device;
  // The real device, except that its out-of-memory scope reports an error.
  holder.device = {
    createBuffer: (d: GPUBufferDescriptor) => real.createBuffer(d),
    pushErrorScope: (f: GPUErrorFilter) => real.pushErrorScope(f),
    popErrorScope: () => real.popErrorScope().then(() => ({ message: 'Out of memory (simulated)' }) as GPUError),
  } as unknown as GPUDevice;
  let t: T.Tensor;
  try {
    t = T.zeros([3 * 2 ** 18]);
  } finally {
    holder.device = real;
  }
  const err = await rt.sync().then(() => null, (e: unknown) => e);
  assert.instance(err, T.OutOfMemoryError);
  assert.ok(String((err as Error).message).startsWith('zeros: out of GPU memory allocating a tensor buffer of 3.0 MiB, while this pool holds '), String(err));
  assert.match(String(err), 'Out of memory (simulated)');
  t.dispose();
  await rt.sync(); // reported once; the runtime goes on
  const x = T.ones([4]);
  assert.equal(Array.from(await x.data()), [1, 1, 1, 1]);
  x.dispose();
});

test('a disposed tensor gives a clear error', async () => {
  const x = T.tensor([1, 2], [2]);
  x.dispose();
  x.dispose(); // twice is fine
  assert.throws(() => T.add(x, x), /was disposed/);
});

test('scopes free intermediates and keep what is returned or kept', () => {
  const before = T.runtime().memory().bytesInUse;
  let kept: T.Tensor | null = null;
  const { out } = T.tidy(() => {
    const a = T.ones([100]);
    const b = T.add(a, a);
    kept = T.keep(T.mul(b, b));
    return { out: T.add(b, 1) };
  });
  assert.ok(!out.disposed);
  assert.ok(!kept!.disposed);
  const during = T.runtime().memory().bytesInUse;
  out.dispose();
  kept!.dispose();
  assert.ok(during > before);
  assert.is(T.runtime().memory().bytesInUse, before);
});

test('500 forward+backward steps inside scopes leave bytes in use where they started', async () => {
  const rng = testRng('steps');
  const w = T.randn([16, 8], { rng, std: 0.3, requiresGrad: true });
  const b = T.zeros([8], { requiresGrad: true });
  const x = T.randn([4, 16], { rng });
  const target = T.rand([4, 8], { rng });
  await T.runtime().sync();
  const start = T.runtime().memory();
  let first = 0;
  let last = 0;
  let pooledAfterFirst = 0;
  for (let step = 0; step < 500; step++) {
    const loss = await T.scope(async () => {
      const y = T.sigmoid(T.add(T.matmul(x, w), b));
      const d = T.sub(y, target);
      const l = T.mean(T.mul(d, d));
      T.backward(l);
      // plain SGD, without autodiff
      T.noGrad(() => {
        for (const p of [w, b]) {
          const next = T.sub(p, T.mul(p.grad!, 0.5));
          T.runtime().copy(next.buffer, 0, p.buffer, 0, p.size * 4);
          p.grad!.dispose();
          p.grad = null;
        }
      });
      return step % 100 === 0 || step === 499 ? l.item() : 0;
    });
    if (step === 0) first = loss;
    if (step === 0) pooledAfterFirst = T.runtime().memory().pooledBytes + T.runtime().memory().bytesInUse;
    if (step === 499) last = loss;
  }
  await T.runtime().sync();
  const end = T.runtime().memory();
  assert.is(end.bytesInUse, start.bytesInUse, 'bytes in use');
  assert.is(end.buffersInUse, start.buffersInUse, 'buffers in use');
  // After the first step every buffer a step needs is in the pool: no growth afterwards.
  assert.is(end.pooledBytes + end.bytesInUse, pooledAfterFirst, 'pool + live bytes after step 1 vs after step 500');
  assert.ok(last < first, `loss fell (${first} -> ${last})`);
  T.dispose(w, b, x, target);
});

test('dispatches are batched into few submits and no shader compiles twice', async () => {
  const rt = T.runtime();
  const x = T.zeros([10]);
  await rt.sync();
  let y = T.addScalar(x, 1);
  y.dispose();
  const before = { ...rt.counters };
  let acc = T.addScalar(x, 0);
  for (let i = 0; i < 200; i++) {
    const next = T.addScalar(acc, 1);
    acc.dispose();
    acc = next;
  }
  const mid = { ...rt.counters };
  assert.is(mid.pipelinesCompiled, before.pipelinesCompiled, 'no new pipelines');
  assert.ok(mid.submits - before.submits <= 1, `submits while encoding: ${mid.submits - before.submits}`);
  assert.equal(Array.from(await acc.data()), new Array(10).fill(200));
  T.dispose(x, acc);
});

test('uniforms stay correct across many batches (arena rewritten per submit)', async () => {
  let acc = T.zeros([5]);
  for (let i = 1; i <= 1500; i++) {
    const next = T.addScalar(acc, i % 7);
    acc.dispose();
    acc = next;
  }
  let expected = 0;
  for (let i = 1; i <= 1500; i++) expected += i % 7;
  assert.equal(Array.from(await acc.data()), new Array(5).fill(expected));
  acc.dispose();
});

test('an upload into a recycled buffer does not overtake pending reads of it', async () => {
  const a = T.tensor([1, 2, 3, 4], [4]);
  const b = T.addScalar(a, 10); // pending: reads a's buffer
  a.dispose(); // a's buffer goes back to the pool...
  const c = T.tensor([100, 200, 300, 400], [4]); // ...and is likely reused here
  assert.equal(Array.from(await b.data()), [11, 12, 13, 14]);
  assert.equal(Array.from(await c.data()), [100, 200, 300, 400]);
  T.dispose(b, c);
});

test('creation: shapes, dtypes, seeded random values, errors', async () => {
  assert.throws(() => T.tensor([1, 2, 3], [2, 2]), /do not fill shape/);
  assert.throws(() => T.zeros([2, -1]), /Invalid shape/);
  const i = T.tensor([-1, 2, 3], [3], { dtype: 'int32' });
  assert.equal(Array.from(await i.data()), [-1, 2, 3]);
  assert.ok((await i.data()) instanceof Int32Array);
  const r1 = await T.randn([50], { seed: 7 }).data();
  const r2 = await T.randn([50], { seed: 7 }).data();
  assert.equal(Array.from(r1), Array.from(r2));
  const u = await T.rand([1000], { seed: 3, low: 2, high: 5 }).data();
  assert.ok(u.every((v) => v >= 2 && v < 5));
  assert.equal(Array.from(await T.full([3], 2.5).data()), [2.5, 2.5, 2.5]);
  i.dispose();
});

test('a WGSL compile error is thrown at the next sync and names the kernel', async () => {
  const rt = T.runtime();
  rt.dispatch({ kernel: 'deliberately_broken', code: '@compute @workgroup_size(1) fn main() { let a: u32 = 1.5; }', workgroups: [1], storage: [] });
  let err: unknown = null;
  try {
    await rt.sync();
  } catch (e) {
    err = e;
  }
  assert.instance(err, T.WebGPUError);
  assert.match(String(err), 'deliberately_broken');
  // the runtime keeps working afterwards (the failed batch's own work is lost)
  const x = T.zeros([4]);
  assert.equal(Array.from(await T.addScalar(x, 1).data()), [1, 1, 1, 1]);
  x.dispose();
});

test.run();
