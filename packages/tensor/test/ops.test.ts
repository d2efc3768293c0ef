import './quick-compile';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as R from '../src/reference/index';
import { checkOp, randomRef, setupGPU, testRng } from '../src/testing';
import * as T from '../src/index';

test.before(setupGPU);

const SHAPES = [[7], [3, 5], [2, 3, 17, 23], [1, 5, 9, 13]];

for (const op of ['neg', 'exp', 'log', 'sqrt', 'relu', 'sigmoid'] as const) {
  test(`${op}: forward and gradient on odd shapes`, async () => {
    const rng = testRng(op);
    for (const shape of SHAPES) {
      const positive = op === 'log' || op === 'sqrt';
      const x = randomRef(rng, shape, positive ? { low: 0.2, high: 3 } : { low: -3, high: 3, avoid: op === 'relu' ? [0] : [] });
      await checkOp({ name: `${op} [${shape}]`, rng, inputs: [x], gpu: ([t]) => T[op](t), ref: ([r]) => R.unary(op, r), refBackward: ([r], g) => [R.unaryBackward(op, r, g)] });
    }
  });
}

test('pow by constants, including negative bases with integer exponents', async () => {
  const rng = testRng('pow');
  for (const e of [2, 3, -1, 0.5, 1.7]) {
    const positive = !Number.isInteger(e);
    const x = randomRef(rng, [3, 5, 7], positive ? { low: 0.3, high: 2 } : { low: -2, high: 2, avoid: [0], margin: 0.2 });
    await checkOp({ name: `pow ${e}`, rng, inputs: [x], gpu: ([t]) => T.pow(t, e), ref: ([r]) => R.pow(r, e), refBackward: ([r], g) => [R.powBackward(r, e, g)] });
  }
});

test('clamp', async () => {
  const rng = testRng('clamp');
  const x = randomRef(rng, [2, 3, 17, 23], { low: -2, high: 2, avoid: [-0.5, 0.7] });
  await checkOp({ name: 'clamp', rng, inputs: [x], gpu: ([t]) => T.clamp(t, -0.5, 0.7), ref: ([r]) => R.clamp(r, -0.5, 0.7), refBackward: ([r], g) => [R.clampBackward(r, -0.5, 0.7, g)] });
});

test('scalar operands', async () => {
  const rng = testRng('scalar');
  const x = randomRef(rng, [3, 17]);
  await checkOp({ name: 'add 2.5', rng, inputs: [x], gpu: ([t]) => T.add(t, 2.5), ref: ([r]) => R.addScalar(r, 2.5), refBackward: (_, g) => [g] });
  await checkOp({ name: 'mul -1.5', rng, inputs: [x], gpu: ([t]) => T.mul(t, -1.5), ref: ([r]) => R.scale(r, -1.5), refBackward: (_, g) => [R.scale(g, -1.5)] });
});

const BROADCAST_CASES: [number[], number[]][] = [
  [[2, 3, 17, 23], [2, 3, 17, 23]], // same shape
  [[2, 3, 17, 23], [1, 3, 1, 1]], // per channel
  [[2, 3, 17, 23], [1]], // scalar tensor
  [[1, 3, 1, 1], [2, 3, 5, 7]], // broadcast on the left operand
  [[5, 1], [1, 7]], // both stretch
  [[3, 5], [5]], // rank differs
];

for (const op of ['add', 'sub', 'mul', 'div'] as const) {
  test(`${op}: broadcasting forward and gradients`, async () => {
    const rng = testRng(op);
    for (const [sa, sb] of BROADCAST_CASES) {
      const a = randomRef(rng, sa, { low: -2, high: 2 });
      const b = op === 'div' ? randomRef(rng, sb, { low: 0.5, high: 2 }) : randomRef(rng, sb, { low: -2, high: 2 });
      await checkOp({
        name: `${op} [${sa}] [${sb}]`, rng, inputs: [a, b],
        gpu: ([x, y]) => T[op](x, y), ref: ([x, y]) => R.binary(op, x, y), refBackward: ([x, y], g) => R.binaryBackward(op, x, y, g),
      });
    }
  });
}

test('sum and mean over all elements and chosen axes', async () => {
  const rng = testRng('reduce');
  const cases: [number[], number[] | undefined, boolean][] = [
    [[2, 3, 17, 23], undefined, false],
    [[2, 3, 17, 23], [0, 2, 3], true],
    [[2, 3, 17, 23], [1], false],
    [[2, 3, 17, 23], [3], true],
    [[3, 5], [0], false],
    [[7], [0], false],
    [[1, 3, 150, 151], [0, 2, 3], false], // long reductions split into parts
    [[300, 70], [1], false], // many outputs
  ];
  for (const [shape, axes, keep] of cases) {
    const x = randomRef(rng, shape);
    const magnitudes = { shape: x.shape, data: x.data.map(Math.abs) };
    for (const isMean of [false, true]) {
      const name = `${isMean ? 'mean' : 'sum'} [${shape}] axes ${axes ?? 'all'}`;
      // float32 rounding scales with the terms' magnitudes, not with a sum that cancels to near zero;
      // it stays far below 1e-6 of them (a dropped or doubled term would not).
      const forwardScale = Math.max(...R.sum(magnitudes, axes, keep, isMean).data);
      await checkOp({
        name, rng, inputs: [x], forwardScale, forwardTol: 1e-6,
        gpu: ([t]) => (isMean ? T.mean(t, axes, keep) : T.sum(t, axes, keep)),
        ref: ([r]) => R.sum(r, axes, keep, isMean),
        refBackward: ([r], g) => [R.sumBackward(r, axes, g, isMean)],
      });
    }
  }
});

test('a long sum stays accurate (4M elements)', async () => {
  const rng = testRng('longsum');
  const n = 4 * 1024 * 1024 + 3;
  const x = randomRef(rng, [n], { low: 0, high: 1 });
  const expected = x.data.reduce((a, b) => a + b, 0);
  const t = T.tensor(x.data, [n]);
  const s = T.sum(t);
  const value = await s.item();
  T.dispose(t, s);
  const err = R.relativeError([value], [expected]);
  if (!(err <= 1e-5)) throw new Error(`sum of ${n} values: ${value}, expected ${expected} (relative error ${err})`);
});

test('matmul with gradients', async () => {
  const rng = testRng('matmul');
  for (const [m, k, n] of [[4, 17, 9], [1, 64, 32], [13, 5, 1]]) {
    const a = randomRef(rng, [m, k]);
    const b = randomRef(rng, [k, n]);
    await checkOp({ name: `matmul ${m}x${k}x${n}`, rng, inputs: [a, b], gpu: ([x, y]) => T.matmul(x, y), ref: ([x, y]) => R.matmul(x, y), refBackward: ([x, y], g) => R.matmulBackward(x, y, g) });
  }
});

test('reshape, slice and concat along the channel axis', async () => {
  const rng = testRng('shape');
  const a = randomRef(rng, [2, 3, 5, 7]);
  const b = randomRef(rng, [2, 4, 5, 7]);
  await checkOp({ name: 'concat', rng, inputs: [a, b], gpu: (xs) => T.concat(xs, 1), ref: (xs) => R.concat(xs, 1), refBackward: (xs, g) => R.concatBackward(xs, 1, g) });
  await checkOp({ name: 'slice', rng, inputs: [b], gpu: ([x]) => T.slice(x, 1, 1, 2), ref: ([x]) => R.slice(x, 1, 1, 2), refBackward: ([x], g) => [R.sliceBackward(x, 1, 1, g)] });
  await checkOp({ name: 'slice last axis', rng, inputs: [a], gpu: ([x]) => T.slice(x, -1, 2, 5), ref: ([x]) => R.slice(x, 3, 2, 5), refBackward: ([x], g) => [R.sliceBackward(x, 3, 2, g)] });
  await checkOp({
    name: 'reshape then multiply', rng, inputs: [a],
    gpu: ([x]) => T.mul(T.reshape(x, [6, -1]), T.reshape(x, [6, 35])),
    ref: ([x]) => ({ shape: [6, 35], data: x.data.map((v) => v * v) }),
    refBackward: ([x], g) => [{ shape: x.shape, data: x.data.map((v, i) => 2 * v * g.data[i]) }],
  });
});

test('checkOp leaves out finite differences across a kink, and still fails a wrong gradient', async () => {
  const rng = testRng('checkOp');
  // 3e-7 and -5e-7 sit within the default step (1e-6) of relu's kink: their central differences
  // are wrong whatever the gradient, so they are left out and the check passes.
  const x = { shape: [10], data: Float64Array.from([0.5, -0.25, 3e-7, -5e-7, 1.5, -2, 0.75, -1, 2.5, -0.6].map(Math.fround)) };
  await checkOp({ name: 'relu near 0', rng, inputs: [x], gpu: ([t]) => T.relu(t), ref: ([r]) => R.unary('relu', r), refBackward: ([r], g) => [R.unaryBackward('relu', r, g)] });
  // A wrong backward, the same on both sides (2g for the identity), is no kink: the finer step agrees.
  const smooth = randomRef(rng, [20]);
  let error: Error | null = null;
  try {
    await checkOp({ name: 'wrong backward', rng, inputs: [smooth], forwardTol: Infinity, gpu: ([t]) => T.mul(t, 2), ref: ([r]) => r, refBackward: (_, g) => [R.scale(g, 2)] });
  } catch (e) {
    error = e as Error;
  }
  assert.ok(error, 'a wrong backward passed');
  assert.match(error.message, 'reference grad[0] vs finite differences');
});

test.run();
