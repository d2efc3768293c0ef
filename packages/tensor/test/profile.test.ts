// The profiler: every dispatch timed once, attributed to its kernel kind and to the section its
// op ran in (backward included), from timestamp queries and from host timers; results unchanged.
import './quick-compile';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setupGPU } from '../src/testing';
import * as T from '../src/index';

test.before(setupGPU);

// The convolutions here have the geometry of conv2d.test.ts's cases that run every time (3 -> 5
// channels on 17x23, padding 1; 32 channels on 7x12, stride 2), so that on a fresh machine
// lavapipe compiles none of the fallback variant's large kernels again (the shader cache keeps
// them: 5-40 s each otherwise).

/** One training-like step of a conv, instance norm and ReLU block in section "block", the loss in "loss". */
async function step(): Promise<{ y: number[]; gw: number[] }> {
  return T.scope(async () => {
    const x = T.randn([1, 3, 17, 23], { seed: 1, requiresGrad: true });
    const w = T.randn([5, 3, 3, 3], { seed: 2, requiresGrad: true });
    const gamma = T.ones([5], { requiresGrad: true });
    const beta = T.zeros([5], { requiresGrad: true });
    const h = T.profileSection('block', () => T.relu(T.instanceNorm(T.conv2d(x, w, null, { padding: 1 }), gamma, beta)));
    const loss = T.profileSection('loss', () => T.sum(T.mul(h, h)));
    T.backward(loss);
    const out = { y: await h.array(), gw: await w.grad!.array() };
    T.dispose(x.grad!, w.grad!, gamma.grad!, beta.grad!);
    return out;
  });
}

test('sections nest and end with their function, also when it throws', () => {
  assert.is(T.profileSection('a', () => T.profileSection('b', () => T.currentSection())), 'a/b');
  assert.throws(() => T.profileSection('a', () => { throw new Error('boom'); }), /boom/);
  assert.is(T.currentSection(), '');
});

for (const timestamps of [true, false]) {
  test(`a profiled step (${timestamps ? 'timestamp queries' : 'host timers'}): every dispatch once, by kind and section; same results`, async () => {
    const plain = await step();
    const rt = T.runtime();
    if (timestamps && !rt.device.features.has('timestamp-query')) {
      console.log('  (this adapter has no timestamp-query: the host-timer path is tested below)');
      return;
    }
    const before = rt.counters.dispatches;
    await rt.startProfile({ timestamps });
    const profiled = await step();
    const p = await rt.stopProfile();
    assert.is(p.source, timestamps ? 'timestamps' : 'host');
    assert.equal(profiled, plain, 'profiling changes no value');
    assert.is(p.dispatches.length, rt.counters.dispatches - before, 'each dispatch timed once');
    for (const d of p.dispatches) assert.ok(Number.isFinite(d.ms) && d.ms >= 0, `${d.kernel}: ${d.ms} ms`);
    const sum = p.dispatches.reduce((s, d) => s + d.ms, 0);
    assert.ok(sum > 0 && sum <= p.wallMs * 1.01 + 1, `device ${sum} ms within wall ${p.wallMs} ms`);
    assert.ok(p.encodeMs > 0 && p.waitMs >= 0 && p.uploadMs >= 0);

    const kinds = new Set(p.dispatches.map((d) => T.kernelKind(d.kernel, d.backward)));
    for (const k of ['conv forward', 'conv input gradient', 'conv weight gradient', 'instance norm forward', 'instance norm backward']) {
      assert.ok(kinds.has(k), `kind "${k}" in [${[...kinds]}]`);
    }
    // The conv's forward and its gradients are in "block"; the loss's sum in "loss".
    const conv = p.dispatches.filter((d) => d.kernel.startsWith('conv2d.'));
    assert.ok(conv.every((d) => d.section === 'block'), `conv sections: ${[...new Set(conv.map((d) => d.section))]}`);
    assert.ok(conv.some((d) => d.backward) && conv.some((d) => !d.backward));
    assert.ok(p.dispatches.some((d) => d.kernel.startsWith('sum') && d.section === 'loss' && !d.backward));
    const s = T.summariseProfile(p);
    assert.ok(Math.abs(s.byKind.reduce((a, r) => a + r.ms, 0) - sum) < 1e-6);
    assert.ok(Math.abs(s.byKind.reduce((a, r) => a + r.share, 0) - 1) < 1e-9);
    assert.ok(s.bySection.some((r) => r.name === 'block backward') && s.bySection.some((r) => r.name === 'block'));
    // The conv declares its work: 2 flops per multiply-add, 1x5x17x23 outputs of 3x3x3 taps, for
    // the forward and for each gradient; no other kernel declares any.
    const convFlops = 2 * 1 * 5 * 17 * 23 * 3 * 3 * 3;
    const flopsOf = (kind: string) => s.byKind.find((r) => r.name === kind)!.flops;
    assert.equal(['conv forward', 'conv input gradient', 'conv weight gradient'].map(flopsOf), [convFlops, convFlops, convFlops]);
    assert.ok(s.byKind.filter((r) => !r.name.startsWith('conv')).every((r) => r.flops === 0));
    assert.is(s.bySection.find((r) => r.name === 'block backward')!.flops, 2 * convFlops);
  });
}

/** Profile one forward and backward of a conv; the profile is stopped before any failure is rethrown. */
async function profiledConv(xShape: number[], wShape: number[], opts: { stride?: number; padding?: number }): Promise<T.Profile> {
  const rt = T.runtime();
  await rt.startProfile();
  const failed = await T.scope(async () => {
    const x = T.randn(xShape, { seed: 3, requiresGrad: true });
    const w = T.randn(wShape, { seed: 4, requiresGrad: true });
    T.backward(T.sum(T.conv2d(x, w, null, opts)));
    await x.grad!.data();
    T.dispose(x.grad!, w.grad!);
  }).then(() => null, (e: unknown) => e);
  const profile = await rt.stopProfile();
  if (failed) throw failed;
  return profile;
}

const flopsOfKind = (p: T.Profile, kind: string) => p.dispatches.filter((d) => T.kernelKind(d.kernel, d.backward) === kind).reduce((a, d) => a + d.flops, 0);

// The strided conv below takes the fallback variant's input gradient by stride phase.
test('declared flops: a strided conv and a 1x1 conv count 2 per multiply-add in each of the three passes, on both variants', async () => {
  const cases: { x: number[]; w: number[]; opts: { stride?: number; padding?: number }; out: number }[] = [
    { x: [1, 32, 7, 12], w: [32, 32, 3, 3], opts: { stride: 2, padding: 1 }, out: 4 * 6 },
    { x: [2, 6, 5, 7], w: [3, 6, 1, 1], opts: {}, out: 5 * 7 },
  ];
  try {
    for (const variant of ['fallback', 'gpu'] as const) {
      T.setConv2dVariant(variant);
      for (const c of cases) {
        const p = await profiledConv(c.x, c.w, c.opts);
        const expected = 2 * c.x[0] * c.w[0] * c.out * c.w[1] * c.w[2] * c.w[3];
        for (const kind of ['conv forward', 'conv input gradient', 'conv weight gradient']) {
          const flops = flopsOfKind(p, kind);
          assert.ok(Math.abs(flops - expected) <= 1e-9 * expected, `${variant} ${c.w.join('x')} ${kind}: ${flops} flops, expected ${expected}`);
        }
      }
    }
  } finally {
    T.setConv2dVariant('auto');
  }
});

test('declared flops: the strided input gradient in phases shares its count by each phase\'s pixels times taps', async () => {
  T.setConv2dVariant('fallback');
  try {
    const p = await profiledConv([1, 32, 7, 12], [32, 32, 3, 3], { stride: 2, padding: 1 });
    const phases = p.dispatches.filter((d) => d.backward && d.kernel === 'conv2d.corr').map((d) => d.flops).sort((a, b) => a - b);
    // dx rows 0, 2, 4, 6 get 1 tap (ky = 1), rows 1, 3, 5 get 2; columns 0, .., 10 get 1, 1, .., 11 get 2:
    // phase work 4*6, 4*2*6, 3*2*6, 3*2*2*6 = 24, 48, 36, 72 pixel-taps of 180.
    const all = 2 * 1 * 32 * (4 * 6) * 32 * 9;
    assert.equal(phases.map((f) => Math.round(f * 1e6) / 1e6), [24, 36, 48, 72].map((w) => Math.round(((all * w) / 180) * 1e6) / 1e6));
  } finally {
    T.setConv2dVariant('auto');
  }
});

test('start twice or stop without start: clear errors; profiling ends cleanly', async () => {
  const rt = T.runtime();
  await rt.startProfile();
  await rt.startProfile().then(() => assert.unreachable('started twice'), (e: Error) => assert.match(e.message, /already running/));
  await rt.stopProfile();
  await rt.stopProfile().then(() => assert.unreachable('stopped twice'), (e: Error) => assert.match(e.message, /no profile is running/));
});

test('the profile records which algorithm each convolution pass ran (Winograd or direct), with its time and work', async () => {
  const x = [1, 3, 17, 23];
  const w = [5, 3, 3, 3];
  const work = 2 * 5 * 17 * 23 * 3 * 9;
  try {
    for (const algorithm of ['winograd', 'direct'] as const) {
      T.setConv2dAlgorithm(algorithm);
      const s = T.summariseProfile(await profiledConv(x, w, { padding: 1 }));
      const fast = algorithm === 'winograd' ? 'Winograd' : 'direct';
      assert.equal(s.byConvAlgorithm.map((r) => r.name).sort(), [`conv forward, ${fast}`, `conv input gradient, ${fast}`, `conv weight gradient, ${fast}`].sort());
      for (const r of s.byConvAlgorithm) assert.ok(Math.abs(r.flops - work) <= 1e-9 * work, `${algorithm} ${r.name}: ${r.flops} flops, expected ${work}`);
      assert.ok(Math.abs(s.byConvAlgorithm.reduce((a, r) => a + r.share, 0) - 1) < 1e-9, 'shares of the convolutions\' time');
    }
  } finally {
    T.setConv2dAlgorithm('auto');
  }
  assert.is(T.convAlgorithm('conv2d.winograd.gemm', true), 'conv input gradient, Winograd');
  assert.is(T.convAlgorithm('conv2d.winograd.f4x4.weightGrad.input', true), 'conv weight gradient, Winograd');
  assert.is(T.convAlgorithm('conv2d.weightGrad', true), 'conv weight gradient, direct');
  assert.is(T.convAlgorithm('instanceNorm.forward', false), null);
});

test.run();
