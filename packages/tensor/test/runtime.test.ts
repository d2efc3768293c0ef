import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { expectClose, setupGPU, testRng } from '../src/testing';
import * as T from '../src/index';

test.before(setupGPU);

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
  assert.throws(() => T.empty([limit / 4 + 1]), /storage binding limit/);
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
