import './quick-compile';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as R from '../src/reference/index';
import { checkOp, randomRef, sampleCases, setupGPU, testRng, toTensor } from '../src/testing';
import * as T from '../src/index';
import type { Rng } from '../src/random';
import { forwardAxis, inputGradAxis, rowSpacing } from '../src/ops/conv2d/taps';
import { inputGradTile, tuning } from '../src/ops/conv2d/tuning';

// The direct kernels' test: Winograd, which the tuning table picks for many 3x3 stride-1 passes
// on the fallback variant, has its own (winograd.test.ts), so every case here runs the direct
// kernels, whatever the table says.
test.before(async () => {
  await setupGPU();
  T.setConv2dAlgorithm('direct');
});
test.after(() => {
  T.setConv2dVariant('auto');
  T.setConv2dAlgorithm('auto');
});

// Tap planning, against the convolution's definition along one axis: output o reads input
// o*s - p + kk*d through tap kk, so input x receives tap kk from output (x + p - kk*d) / s.
test('tap planning: forward and input-gradient axes match the definition, for every stride, dilation, padding', () => {
  for (const k of [1, 2, 3, 5]) {
    for (const s of [1, 2, 3]) {
      for (const d of [1, 2, 4]) {
        for (const p of [0, 1, 2, 3, 5]) {
          for (const spacing of [1, 2]) {
            const size = 7;
            const fwd = forwardAxis(size, spacing, k, s, d);
            fwd.taps.forEach((list, i) => {
              // Output i*spacing (tile origin 0) reads input i*spacing*s + kk*d (in padded coordinates).
              assert.equal(list, Array.from({ length: k }, (_, kk) => [kk, i * spacing * s + kk * d]), `forward k${k} s${s} d${d} i${i}`);
            });
            assert.is(fwd.maxOffset, Math.max(...fwd.taps.flat().map(([, t]) => t)));
            const pm = p % s;
            const pq = (p - pm) / s;
            const { axis, base } = inputGradAxis(size, spacing, k, s, d, pm);
            axis.taps.forEach((list, i) => {
              const x = i * spacing; // input pixel, tile origin 0 (a multiple of s)
              const expected: [number, number][] = [];
              for (let kk = 0; kk < k; kk++) {
                const num = x + p - kk * d;
                if (num % s === 0) expected.push([kk, num / s]); // the output pixel, possibly outside the plane
              }
              // The plan's offsets are output pixels shifted by base - pq (the front padding of the gradient copy).
              assert.equal(list.map(([kk, t]) => [kk, t - base + pq]), expected, `input gradient k${k} s${s} d${d} p${p} spacing ${spacing} i${i}`);
              for (const [, t] of list) assert.ok(t >= 0 && t <= axis.maxOffset, 'offsets are non-negative');
            });
          }
        }
      }
    }
  }
});

test('row spacing: the dilation, unless spaced tiles would reach far past a small plane', () => {
  const tile = { pr: 4, spaced: true };
  assert.is(rowSpacing(tile, 8, 1, 4), 1, '8 rows, dilation 4: spaced 4-row tiles would cover 16');
  assert.is(rowSpacing(tile, 16, 1, 4), 4);
  assert.is(rowSpacing(tile, 100, 1, 4), 4, '112 rows covered instead of 100: within a quarter');
  assert.is(rowSpacing(tile, 8, 1, 2), 2);
  assert.is(rowSpacing(tile, 64, 2, 2), 1, 'stride 2: never spaced');
  assert.is(rowSpacing({ pr: 4, spaced: false }, 64, 1, 4), 1);
  assert.is(rowSpacing(tile, 64, 1, 1), 1);
});

test('correlation tiles: 8x8 for the fallback input gradient of 3x3, stride 1, dilation 1 or 2; 8x4 otherwise', () => {
  const size = (t: { pw: number; pr: number }) => `${t.pw}x${t.pr}`;
  const k3 = { kh: 3, kw: 3, s: 1, d: 1 };
  try {
    T.setConv2dVariant('fallback');
    assert.is(size(inputGradTile(k3)), '8x8');
    assert.is(size(inputGradTile({ ...k3, d: 2 })), '8x8');
    assert.is(size(tuning().fwd), '8x4');
    assert.is(size(inputGradTile({ ...k3, d: 4 })), '8x4');
    assert.is(size(inputGradTile({ ...k3, s: 2 })), '8x4');
    assert.is(size(inputGradTile({ ...k3, kh: 5, kw: 5 })), '8x4');
    T.setConv2dVariant('gpu');
    assert.is(size(inputGradTile(k3)), '4x2');
  } finally {
    T.setConv2dVariant('auto');
  }
});

interface Case {
  x: number[];
  cout: number;
  k: number;
  stride?: number;
  padding?: number;
  dilation?: number;
  bias?: boolean;
  /** Elements per input checked by finite differences (default 48). */
  fd?: number;
  /** Run every time: the case alone reaches some kernel path of its variant (the others are sampled, see sampleCases). */
  always?: boolean;
}

async function checkConv(rng: Rng, c: Case, label = ''): Promise<void> {
  const opts = { stride: c.stride, padding: c.padding, dilation: c.dilation };
  const bias = c.bias ?? true;
  const x = randomRef(rng, c.x);
  const w = randomRef(rng, [c.cout, c.x[1], c.k, c.k], { low: -0.5, high: 0.5 });
  const inputs = bias ? [x, w, randomRef(rng, [c.cout])] : [x, w];
  await checkOp({
    name: `conv2d${label} x[${c.x}] -> ${c.cout}, ${c.k}x${c.k} s${c.stride ?? 1} p${c.padding ?? 0} d${c.dilation ?? 1}${bias ? '' : ' no bias'}`,
    rng,
    inputs,
    fdSamples: c.fd,
    gpu: (t) => T.conv2d(t[0], t[1], bias ? t[2] : null, opts),
    ref: (r) => R.conv2d(r[0], r[1], bias ? r[2] : null, opts),
    refBackward: (r, g) => R.conv2dBackward(r[0], r[1], bias ? r[2] : null, opts, g).slice(0, bias ? 3 : 2),
  });
}

// The GPU variant's cases (small tiles: quick to compile on lavapipe, yet a second or more each on
// a fresh machine). Every run: the forward, input-gradient and weight-gradient kernels at stride 1
// and stride 2 (tiles aligned to the stride) on planes that are no multiple of the tiles; the
// rest are drawn by the seed.
const CASES: Case[] = [
  { x: [1, 3, 17, 23], cout: 5, k: 3, padding: 1, always: true },
  { x: [1, 3, 17, 23], cout: 5, k: 3 }, // no padding: 15x21 output
  { x: [2, 5, 13, 11], cout: 13, k: 3, stride: 2, padding: 1, always: true }, // odd input, stride 2
  { x: [1, 3, 9, 12], cout: 3, k: 3, stride: 2 }, // stride 2, no padding
  { x: [2, 4, 16, 16], cout: 8, k: 1, stride: 2 }, // 1x1 stride 2, aligned rows
  { x: [3, 5, 11, 14], cout: 6, k: 3, padding: 2, dilation: 2, bias: false },
  { x: [1, 13, 19, 9], cout: 5, k: 3, padding: 4, dilation: 4 },
  { x: [2, 3, 5, 6], cout: 4, k: 3, padding: 4, dilation: 4 }, // input smaller than the dilated kernel's reach
  { x: [1, 2, 3, 3], cout: 3, k: 3, padding: 3, dilation: 4 }, // 3x3 input, 9x9 reach: 1x1 output
  { x: [2, 32, 5, 6], cout: 32, k: 3, padding: 1 },
  { x: [1, 13, 10, 7], cout: 32, k: 3, padding: 2, dilation: 2, stride: 2 },
  { x: [1, 32, 6, 9], cout: 13, k: 1, bias: false },
  { x: [2, 6, 12, 8], cout: 7, k: 3, padding: 3, stride: 2 }, // padding larger than the stride
  { x: [1, 32, 4, 8], cout: 32, k: 3, padding: 1, fd: 6 },
  { x: [1, 32, 6, 8], cout: 32, k: 3, padding: 2, dilation: 2, fd: 6 },
  { x: [1, 32, 5, 8], cout: 28, k: 3, padding: 4, dilation: 4, bias: false, fd: 6 },
  { x: [1, 32, 4, 16], cout: 32, k: 3, padding: 1, stride: 2, fd: 6 },
  { x: [1, 32, 7, 12], cout: 32, k: 3, padding: 1, stride: 2, fd: 6 },
  { x: [2, 8, 12, 10], cout: 6, k: 3, padding: 1, stride: 2 },
  { x: [1, 6, 9, 10], cout: 4, k: 5, padding: 2, stride: 2 },
  { x: [1, 4, 11, 13], cout: 5, k: 3, padding: 1, stride: 3 },
];

// The fallback (lavapipe) variant's kernels are large and unrolled: each takes lavapipe seconds to
// compile the first time, so it runs the cases that reach its own code paths (every tap plan is
// the shared code generator's, checked above with the GPU variant's tiles): the U-Net's
// configurations with 32 channels (lanes of a subgroup share loads; rows of whole vec4s read in
// place, other rows from a padded copy; 7 groups of 4 channels on 8 lanes), stride 2 (input
// gradient by stride phase, even and odd sizes, padded copy and in place, padding larger than the
// stride; forward with 8 channels per lane), stride 3 (all phases in one tile), dilation 4 beyond
// the input, and few channels (padded copies). Each of these compiles kernels that take lavapipe
// 5-50 s on a fresh machine (its shader cache empty), so every run takes the two that reach every
// kernel family of the variant, and the seed draws the rest: few channels at stride 1 (forward,
// the 8x8 input-gradient tile, weight gradient over a band of input channels, padded copies),
// and 32 channels at stride 2 (shared subgroup loads, two channel groups per lane in the forward,
// the input gradient by stride phase from a padded copy).
const FALLBACK_CASES: Case[] = [
  { x: [1, 3, 17, 23], cout: 5, k: 3, padding: 1, always: true },
  { x: [2, 5, 13, 11], cout: 13, k: 3, stride: 2, padding: 1 },
  { x: [2, 6, 12, 8], cout: 7, k: 3, padding: 3, stride: 2 },
  { x: [2, 3, 5, 6], cout: 4, k: 3, padding: 4, dilation: 4 },
  { x: [1, 4, 11, 13], cout: 5, k: 3, padding: 1, stride: 3 },
  { x: [2, 32, 5, 6], cout: 32, k: 3, padding: 1 },
  { x: [1, 32, 4, 8], cout: 32, k: 3, padding: 1, fd: 6 },
  { x: [1, 32, 6, 8], cout: 32, k: 3, padding: 2, dilation: 2, fd: 6 },
  { x: [1, 32, 5, 8], cout: 28, k: 3, padding: 4, dilation: 4, bias: false, fd: 6 }, // contiguous tile rows (see rowSpacing)
  { x: [1, 32, 16, 8], cout: 32, k: 3, padding: 4, dilation: 4, fd: 6 }, // tile rows spaced 4 apart
  { x: [1, 32, 4, 16], cout: 32, k: 3, padding: 1, stride: 2, fd: 6 },
  { x: [1, 32, 7, 12], cout: 32, k: 3, padding: 1, stride: 2, fd: 6, always: true },
  // Stride 2 where 8 channels per lane still fill 3/4 of a subgroup's lanes (41-64 channels, on
  // adapters with 8-lane subgroups): the forward's lanes take two groups of 4 channels. 60: the
  // last lane's second group is empty; 42: 6 of 8 lanes busy and a partial group of 4; rows of
  // 13: a padded copy.
  { x: [1, 8, 8, 16], cout: 60, k: 3, padding: 1, stride: 2, fd: 6 },
  { x: [1, 6, 9, 8], cout: 42, k: 3, padding: 1, stride: 2, fd: 6 },
  { x: [2, 5, 9, 13], cout: 64, k: 3, padding: 1, stride: 2, fd: 6 },
  { x: [1, 3, 17, 23], cout: 5, k: 1 },
  { x: [1, 32, 6, 9], cout: 13, k: 1, bias: false },
];

// 1x1, stride 1, no padding, at most 4 output channels: the dedicated per-pixel kernels (small, on
// both variants), with vec4 units along the plane when H*W is a multiple of 4, f32 units otherwise.
// Quick to compile: all of them run every time.
const SMALL_1X1_CASES: Case[] = [
  { x: [2, 3, 7, 9], cout: 1, k: 1 }, // 63 pixels: f32 units
  { x: [1, 32, 5, 11], cout: 2, k: 1, bias: false, fd: 12 },
  { x: [2, 32, 5, 12], cout: 1, k: 1, fd: 12 }, // 60 pixels: vec4 units, odd height
  { x: [3, 3, 9, 4], cout: 2, k: 1 },
  { x: [2, 5, 7, 8], cout: 4, k: 1 },
  { x: [1, 6, 3, 5], cout: 3, k: 1, dilation: 2 }, // dilation is moot for 1x1
  { x: [1, 3, 47, 48], cout: 1, k: 1, fd: 12 },
  { x: [1, 32, 33, 65], cout: 2, k: 1, fd: 6 },
  // Several weight-gradient parts per plane with a short last one on either variant (the fallback's
  // runs are about 4096 / N units long).
  { x: [64, 3, 12, 30], cout: 1, k: 1, fd: 6 },
  { x: [64, 2, 9, 31], cout: 2, k: 1, fd: 6 }, // f32 units
];

// How many of the cases not marked `always` each run draws (FULL=1: all of them).
const SAMPLED = { gpu: 5, fallback: 2 };

for (const [variant, cases] of [['gpu', CASES], ['fallback', FALLBACK_CASES]] as const) {
  test(`conv2d (${variant} kernels): forward, input, weight and bias gradients`, async () => {
    T.setConv2dVariant(variant);
    try {
      const rng = testRng(`conv2d-${variant}`);
      const picked = sampleCases(`conv2d ${variant} kernels`, cases, { always: (c) => c.always === true, sampled: SAMPLED[variant] });
      for (const c of picked) await checkConv(rng, c, ` [${variant}]`);
    } finally {
      T.setConv2dVariant('auto'); // a failure must not leave the next tests on this variant
    }
  });
}

test('conv2d 1x1 with at most 4 output channels (dedicated kernels, both variants)', async () => {
  const rng = testRng('conv2d-1x1');
  try {
    for (const variant of ['gpu', 'fallback'] as const) {
      T.setConv2dVariant(variant);
      for (const c of SMALL_1X1_CASES) await checkConv(rng, c, ` [${variant}]`);
    }
  } finally {
    T.setConv2dVariant('auto');
  }
});

test('conv2d with the adapter-chosen variant on a larger AU-Net-like shape (forward only)', async () => {
  const rng = testRng('conv2d-auto');
  const x = randomRef(rng, [1, 32, 16, 20]);
  const w = randomRef(rng, [32, 32, 3, 3], { low: -0.2, high: 0.2 });
  const b = randomRef(rng, [32]);
  for (const d of [1, 2, 4]) {
    await checkOp({ name: `conv2d d${d}`, rng, inputs: [x, w, b], gpu: ([a, k, c]) => T.conv2d(a, k, c, { padding: d, dilation: d }), ref: ([a, k, c]) => R.conv2d(a, k, c, { padding: d, dilation: d }) });
  }
});

test('conv2d rejects bad shapes and options with clear errors', async () => {
  const x = toTensor(R.refZeros([1, 3, 8, 8]));
  const w = toTensor(R.refZeros([4, 3, 3, 3]));
  const throwsWith = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: Error) => re.test(e.message));
  throwsWith(() => T.conv2d(toTensor(R.refZeros([3, 8, 8])), w, null), /input must be 4-D/);
  throwsWith(() => T.conv2d(x, toTensor(R.refZeros([4, 3, 3])), null), /weights must be 4-D/);
  throwsWith(() => T.conv2d(x, toTensor(R.refZeros([4, 2, 3, 3])), null), /3 channels .* expect 2/);
  throwsWith(() => T.conv2d(x, w, toTensor(R.refZeros([3]))), /bias must have shape \[4\]/);
  throwsWith(() => T.conv2d(x, w, null, { dilation: 4 }), /spans 9x9 pixels, more than the padded input 8x8/);
  throwsWith(() => T.conv2d(x, w, null, { stride: 0 }), /stride must be an integer >= 1/);
  throwsWith(() => T.conv2d(x, w, null, { padding: -1 }), /padding must be an integer >= 0/);
  throwsWith(() => T.conv2d(x, w, null, { dilation: 1.5 }), /dilation must be an integer >= 1/);
  x.dispose();
  w.dispose();
});

// The geometries of two cases above that run every time, so that on lavapipe no kernel is new
// here: stride 1 with padded copies of few channels, and stride 2 with the fallback's input
// gradient by stride phase and a padded copy of the output gradient (rows of 6).
test('conv2d backward frees its temporaries', async () => {
  const rng = testRng('conv2d-memory');
  for (const c of [{ x: [1, 3, 17, 23], cout: 5, stride: 1 }, { x: [1, 32, 7, 12], cout: 32, stride: 2 }]) {
    const x = toTensor(randomRef(rng, c.x), true);
    const w = toTensor(randomRef(rng, [c.cout, c.x[1], 3, 3]), true);
    const b = toTensor(randomRef(rng, [c.cout]), true);
    const step = () => {
      const y = T.conv2d(x, w, b, { padding: 1, stride: c.stride });
      const l = T.sum(y);
      T.backward(l);
      y.dispose();
      l.dispose();
      T.dispose(x.grad, w.grad, b.grad);
      x.grad = w.grad = b.grad = null;
    };
    step();
    await T.runtime().sync();
    const before = T.runtime().memory();
    for (let i = 0; i < 3; i++) step();
    await T.runtime().sync();
    const after = T.runtime().memory();
    assert.equal(after.bytesInUse, before.bytesInUse, `x [${c.x}], stride ${c.stride}: bytes in use`);
    assert.equal(after.buffersInUse, before.buffersInUse, `x [${c.x}], stride ${c.stride}: buffers in use`);
    T.dispose(x, w, b);
  }
});

test('the variant probe times both variants and keeps the faster (fallback only under 0.8x); forced and CPU adapters skip it', async () => {
  await setupGPU();
  const before = T.conv2dVariantChoice();
  assert.is(before.how, 'adapter', 'lavapipe names itself a CPU: no probe at init');
  assert.is(before.variant, T.runtime().adapter.isFallback ? 'fallback' : 'gpu');
  assert.equal(await T.measureConv2dVariant(), before, 'a CPU adapter is not measured unless asked');
  try {
    const m = await T.measureConv2dVariant({ evenOnCpu: true });
    assert.is(m.how, 'measured');
    assert.ok(m.fallbackMs! > 0 && Number.isFinite(m.fallbackMs) && m.gpuMs! > 0 && Number.isFinite(m.gpuMs), `times ${m.fallbackMs} ${m.gpuMs}`);
    assert.is(m.variant, m.fallbackMs! < 0.8 * m.gpuMs! ? 'fallback' : 'gpu');
    assert.equal(T.conv2dVariantChoice(), m, 'auto now takes the measured variant');
    assert.match(T.describeConv2dVariant(), /^conv2d: (fallback|gpu) kernels \(measured: fallback [\d.]+ ms, gpu [\d.]+ ms\)$/);
    T.setConv2dVariant('gpu');
    assert.equal(T.conv2dVariantChoice(), { variant: 'gpu', how: 'forced' });
    assert.equal(await T.measureConv2dVariant({ evenOnCpu: true }), { variant: 'gpu', how: 'forced' }, 'a forced variant is not measured');
  } finally {
    T.setConv2dVariant('auto');
    T.setMeasuredConv2dVariant(null);
  }
  assert.equal(T.conv2dVariantChoice(), before);
});

test.run();
