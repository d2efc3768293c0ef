import './quick-compile';
import { test } from 'uvu';
import * as R from '../src/reference/index';
import { checkOp, expectClose, randomRef, setupGPU, testRng, toTensor } from '../src/testing';
import type { Ref } from '../src/reference/index';
import type { Rng } from '../src/random';
import * as T from '../src/index';

test.before(setupGPU);

// Odd shapes (H*W not a multiple of 4: the scalar paths) and shapes with H*W % 4 == 0 (vec4 paths).
const SHAPES = [[2, 3, 17, 23], [1, 5, 9, 13], [2, 3, 8, 12], [1, 1, 1, 1], [3, 2, 1, 6]];

test('upsample2x: forward and gradient', async () => {
  const rng = testRng('upsample2x');
  for (const shape of [...SHAPES, [1, 2, 4, 8]]) {
    const x = randomRef(rng, shape);
    await checkOp({ name: `upsample2x [${shape}]`, rng, inputs: [x], gpu: ([t]) => T.upsample2x(t), ref: ([r]) => R.upsample2x(r), refBackward: ([r], g) => [R.upsample2xBackward(r, g)] });
  }
});

test('instanceNorm: forward and gradients, affine and not', async () => {
  const rng = testRng('instanceNorm');
  // The last two split each plane's reduction into parts (few planes of >= 512 quads).
  for (const shape of [...SHAPES, [1, 2, 48, 48], [1, 1, 45, 47]]) {
    const c = shape[1];
    const x = randomRef(rng, shape, { low: -2, high: 3 });
    const gamma = randomRef(rng, [c], { low: 0.5, high: 1.5 });
    const beta = randomRef(rng, [c]);
    await checkOp({
      name: `instanceNorm affine [${shape}]`, rng, inputs: [x, gamma, beta],
      gpu: ([t, ga, be]) => T.instanceNorm(t, ga, be),
      ref: ([r, ga, be]) => R.instanceNorm(r, ga, be),
      refBackward: ([r, ga, be], g) => R.instanceNormBackward(r, ga, be, 1e-5, g),
    });
    await checkOp({
      name: `instanceNorm [${shape}]`, rng, inputs: [x],
      gpu: ([t]) => T.instanceNorm(t, null, null, 1e-3),
      ref: ([r]) => R.instanceNorm(r, null, null, 1e-3),
      refBackward: ([r], g) => [R.instanceNormBackward(r, null, null, 1e-3, g)[0]],
    });
  }
});

test('instanceNorm: gamma without beta', async () => {
  const rng = testRng('instanceNorm.gamma');
  const x = randomRef(rng, [2, 3, 8, 12]);
  const gamma = randomRef(rng, [1, 3, 1, 1], { low: 0.5, high: 1.5 });
  await checkOp({
    name: 'instanceNorm gamma only', rng, inputs: [x, gamma],
    gpu: ([t, ga]) => T.instanceNorm(t, ga, null),
    ref: ([r, ga]) => R.instanceNorm(r, ga, null),
    refBackward: ([r, ga], g) => R.instanceNormBackward(r, ga, null, 1e-5, g).slice(0, 2),
  });
});

/**
 * Moves the residual (without one, x) until no value before the ReLU lies within 1e-3 of its kink,
 * where the float32 kernel and the float64 reference may disagree on the mask.
 */
function awayFromKink(x: Ref, gamma: Ref | null, beta: Ref | null, residual: Ref | null): void {
  for (let round = 0; round < 20; round++) {
    const pre = R.instanceNorm(x, gamma, beta);
    let moved = false;
    for (let i = 0; i < pre.data.length; i++) {
      if (Math.abs(pre.data[i] + (residual ? residual.data[i] : 0)) < 1e-3) {
        (residual ?? x).data[i] += 1e-2;
        moved = true;
      }
    }
    if (!moved) return;
  }
  throw new Error('awayFromKink: values keep landing next to the kink');
}

test('instanceNormRelu: relu(instanceNorm + residual), forward and gradients of all four inputs', async () => {
  const rng = testRng('instanceNormRelu');
  for (const shape of [...SHAPES, [1, 2, 48, 48], [1, 1, 45, 47]]) {
    const c = shape[1];
    const x = randomRef(rng, shape, { low: -2, high: 3 });
    const gamma = randomRef(rng, [c], { low: 0.5, high: 1.5 });
    const beta = randomRef(rng, [c], { avoid: [0] }); // a one-element plane normalises to 0, leaving beta as the ReLU's input
    const residual = randomRef(rng, shape);
    awayFromKink(x, gamma, beta, null);
    awayFromKink(x, gamma, beta, residual);
    await checkOp({
      name: `instanceNormRelu residual [${shape}]`, rng, inputs: [x, gamma, beta, residual],
      gpu: ([t, ga, be, r]) => T.instanceNormRelu(t, ga, be, r),
      ref: ([t, ga, be, r]) => R.instanceNormRelu(t, ga, be, r),
      refBackward: ([t, ga, be, r], g) => R.instanceNormReluBackward(t, ga, be, r, 1e-5, g),
    });
    await checkOp({
      name: `instanceNormRelu [${shape}]`, rng, inputs: [x, gamma, beta],
      gpu: ([t, ga, be]) => T.instanceNormRelu(t, ga, be),
      ref: ([t, ga, be]) => R.instanceNormRelu(t, ga, be, null),
      refBackward: ([t, ga, be], g) => R.instanceNormReluBackward(t, ga, be, null, 1e-5, g).slice(0, 3),
    });
  }
  // Only the residual wants a gradient (the input is a constant), and the reverse.
  const shape = [2, 3, 8, 12];
  const x = randomRef(rng, shape);
  const residual = randomRef(rng, shape);
  awayFromKink(x, null, null, residual);
  for (const grad of [[false, true], [true, false]]) {
    await checkOp({
      name: `instanceNormRelu grads [${grad}]`, rng, inputs: [x, residual], grad,
      gpu: ([t, r]) => T.instanceNormRelu(t, null, null, r),
      ref: ([t, r]) => R.instanceNormRelu(t, null, null, r),
      refBackward: ([t, r], g) => { const b = R.instanceNormReluBackward(t, null, null, r, 1e-5, g); return [b[0], b[3]]; },
    });
  }
});

test('instanceNormRelu: the same as relu(instanceNorm(x) + r) composed of the separate ops', () => T.scope(async () => {
  const rng = testRng('instanceNormRelu.composed');
  const x = toTensor(randomRef(rng, [2, 4, 9, 12]));
  const r = toTensor(randomRef(rng, [2, 4, 9, 12]));
  const gamma = toTensor(randomRef(rng, [4], { low: 0.5, high: 1.5 }));
  const beta = toTensor(randomRef(rng, [4]));
  const fused = await T.instanceNormRelu(x, gamma, beta, r).data();
  const composed = await T.relu(T.add(T.instanceNorm(x, gamma, beta), r)).data();
  expectClose(fused, composed, 1e-6, 'fused vs composed');
}));

test('instanceNormRelu: a residual of another shape is refused', () => {
  const x = T.zeros([1, 2, 4, 4]);
  let message = '';
  try {
    T.instanceNormRelu(x, null, null, T.zeros([1, 2, 4, 5]));
  } catch (e) {
    message = (e as Error).message;
  }
  if (!/instanceNormRelu: the residual has shape \[1,2,4,5\], the input \[1,2,4,4\]/.test(message)) throw new Error(`unexpected: ${message}`);
});

test('instanceNorm: 512x512 planes with a large offset stay within 1e-5 (planes split into parts)', async () => {
  const rng = testRng('instanceNorm.large');
  for (const [shape, lo, hi] of [[[1, 2, 512, 512], 10, 11], [[1, 3, 255, 257], -1, 1]] as [number[], number, number][]) {
    const x = randomRef(rng, shape, { low: lo, high: hi });
    const gamma = randomRef(rng, [shape[1]], { low: 0.5, high: 1.5 });
    const beta = randomRef(rng, [shape[1]]);
    await checkOp({ name: `instanceNorm [${shape}] in [${lo}, ${hi})`, rng, inputs: [x, gamma, beta], gpu: ([t, a, b]) => T.instanceNorm(t, a, b), ref: ([r, a, b]) => R.instanceNorm(r, a, b) });
  }
});

function attentionInputs(rng: Rng, shape: number[]): Ref[] {
  const c = shape[1];
  const hd = c / 2;
  const x = randomRef(rng, shape, { low: -2, high: 2 });
  return [x, randomRef(rng, [hd, c]), randomRef(rng, [hd]), randomRef(rng, [c, hd]), randomRef(rng, [c]), randomRef(rng, [1, c, 1, 1]), randomRef(rng, [1])];
}

// Channel attention needs C divisible by the reduction 2.
const ATTENTION_SHAPES = [[2, 6, 17, 23], [1, 10, 9, 13], [2, 4, 8, 12], [3, 2, 1, 6], [1, 2, 1, 1], [1, 2, 40, 52], [1, 2, 45, 47]];

test('channelAttention: forward and gradients', async () => {
  const rng = testRng('channelAttention');
  for (const shape of ATTENTION_SHAPES) {
    const [x, w1, b1, w2, b2] = attentionInputs(rng, shape);
    await checkOp({
      name: `channelAttention [${shape}]`, rng, inputs: [x, w1, b1, w2, b2],
      gpu: ([t, a, b, c, d]) => T.channelAttention(t, a, b, c, d),
      ref: ([t, a, b, c, d]) => R.channelAttention(t, a, b, c, d),
      refBackward: ([t, a, b, c, d], g) => R.channelAttentionBackward(t, a, b, c, d, g),
    });
  }
});

test('spatialAttention: forward and gradients', async () => {
  const rng = testRng('spatialAttention');
  for (const shape of [...SHAPES, ...ATTENTION_SHAPES]) {
    const [x, , , , , w, b] = attentionInputs(rng, [shape[0], shape[1] * 2, shape[2], shape[3]]);
    await checkOp({
      name: `spatialAttention [${x.shape}]`, rng, inputs: [x, w, b],
      gpu: ([t, a, c]) => T.spatialAttention(t, a, c),
      ref: ([t, a, c]) => R.spatialAttention(t, a, c),
      refBackward: ([t, a, c], g) => R.spatialAttentionBackward(t, a, c, g),
    });
  }
});

test('dualAttention: forward and gradients of x and all seven parameters', async () => {
  const rng = testRng('dualAttention');
  for (const shape of ATTENTION_SHAPES) {
    await checkOp({
      name: `dualAttention [${shape}]`, rng, inputs: attentionInputs(rng, shape),
      gpu: ([t, w1, b1, w2, b2, w, b]) => T.dualAttention(t, { w1, b1, w2, b2 }, { w, b }),
      ref: ([t, w1, b1, w2, b2, w, b]) => R.dualAttention(t, w1, b1, w2, b2, w, b),
      refBackward: ([t, w1, b1, w2, b2, w, b], g) => R.dualAttentionBackward(t, w1, b1, w2, b2, w, b, g),
    });
  }
  // Large planes split into parts, and a forward that the reference checks to 1e-5.
  const big = attentionInputs(rng, [1, 4, 256, 256]);
  await checkOp({
    name: 'dualAttention [1,4,256,256]', rng, inputs: big,
    gpu: ([t, w1, b1, w2, b2, w, b]) => T.dualAttention(t, { w1, b1, w2, b2 }, { w, b }),
    ref: ([t, w1, b1, w2, b2, w, b]) => R.dualAttention(t, w1, b1, w2, b2, w, b),
  });
});

function binaryTargets(rng: Rng, shape: number[]): Ref {
  const r = randomRef(rng, shape, { low: 0, high: 1 });
  return { shape: r.shape, data: r.data.map((v) => (v < 0.4 ? 1 : 0)) };
}

test('tverskySums: one-pass sums and gradients in p and g', async () => {
  const rng = testRng('tverskySums');
  for (const shape of [[7], [2, 1, 17, 23], [1, 1, 9, 13], [3, 1, 64, 64]]) {
    const p = randomRef(rng, shape, { low: 0, high: 1 });
    await checkOp({ name: `tverskySums [${shape}]`, rng, inputs: [p, binaryTargets(rng, shape)], gpu: ([a, b]) => T.tverskySums(a, b), ref: ([a, b]) => R.tverskySums(a, b), refBackward: ([a, b], g) => R.tverskySumsBackward(a, b, g) });
  }
  // Many workgroups of partial sums: 1M elements.
  const n = 1 << 20;
  const p = randomRef(rng, [n], { low: 0, high: 1 });
  await checkOp({ name: `tverskySums [${n}]`, rng, inputs: [p, binaryTargets(rng, [n])], gpu: ([a, b]) => T.tverskySums(a, b), ref: ([a, b]) => R.tverskySums(a, b) });
});

test('diceLoss, tverskyLoss, focalTverskyLoss: values and gradients in p', async () => {
  const rng = testRng('losses');
  for (const shape of [[2, 1, 17, 23], [1, 1, 9, 13]]) {
    const p = randomRef(rng, shape, { low: 0.01, high: 0.99 });
    const g = binaryTargets(rng, shape);
    const cases: [string, (a: T.Tensor, b: T.Tensor) => T.Tensor, (a: Ref, b: Ref) => Ref, R.SumsLoss][] = [
      ['dice', (a, b) => T.diceLoss(a, b, { smooth: 1 }), (a, b) => R.diceLoss(a, b, 1), { kind: 'dice', smooth: 1 }],
      ['dice smooth 0.5', (a, b) => T.diceLoss(a, b, { smooth: 0.5 }), (a, b) => R.diceLoss(a, b, 0.5), { kind: 'dice', smooth: 0.5 }],
      ['tversky', (a, b) => T.tverskyLoss(a, b, { alpha: 0.7, beta: 0.3, smooth: 1 }), (a, b) => R.tverskyLoss(a, b, 0.7, 0.3, 1), { kind: 'tversky', alpha: 0.7, beta: 0.3, gamma: 1, smooth: 1 }],
      ['focalTversky', (a, b) => T.focalTverskyLoss(a, b), (a, b) => R.focalTverskyLoss(a, b), { kind: 'focalTversky', alpha: 0.7, beta: 0.3, gamma: 4 / 3, smooth: 1 }],
      ['focalTversky gamma 2', (a, b) => T.focalTverskyLoss(a, b, { alpha: 0.4, beta: 0.6, gamma: 2, smooth: 0.1 }), (a, b) => R.focalTverskyLoss(a, b, 0.4, 0.6, 2, 0.1), { kind: 'focalTversky', alpha: 0.4, beta: 0.6, gamma: 2, smooth: 0.1 }],
    ];
    for (const [name, gpu, ref, o] of cases) {
      await checkOp({ name: `${name} [${shape}]`, rng, inputs: [p, g], grad: [true, false], gpu: ([a, b]) => gpu(a, b), ref: ([a, b]) => ref(a, b), refBackward: ([a, b], G) => [R.sumsLossBackward(a, b, o, G), b] });
    }
  }
});

test('focalTverskyLoss: a perfect prediction gives 0 and a finite gradient', async () => {
  const g = T.tensor([1, 0, 1, 0, 0, 1, 1], [7], {});
  const p = T.tensor([1, 0, 1, 0, 0, 1, 1], [7], { requiresGrad: true });
  const loss = T.focalTverskyLoss(p, g, { smooth: 0 });
  const value = await loss.item();
  if (value !== 0) throw new Error(`loss of a perfect prediction: ${value}`);
  T.backward(loss);
  const grad = await p.grad!.data();
  if (!grad.every(Number.isFinite)) throw new Error(`gradient at a perfect prediction is not finite: ${grad}`);
  T.dispose(g, p, loss, p.grad);
});

test('dice, Tversky and focal Tversky losses pass NaN predictions on (a diverged network is not a perfect one)', async () => {
  const g = T.tensor([1, 0, 1, 0, 0, 1, 1], [7], {});
  const p = T.tensor([NaN, NaN, NaN, NaN, NaN, NaN, NaN], [7], {});
  for (const [name, loss] of [['dice', T.diceLoss(p, g)], ['tversky', T.tverskyLoss(p, g)], ['focalTversky', T.focalTverskyLoss(p, g)]] as const) {
    const value = await loss.item();
    if (!Number.isNaN(value)) throw new Error(`${name} of NaN predictions: ${value}, expected NaN`);
    loss.dispose();
  }
  T.dispose(g, p);
});

test('bceWithLogits: stable for large logits, gradients in logits and targets', async () => {
  const rng = testRng('bce');
  for (const shape of [[7], [2, 1, 17, 23], [1, 3, 9, 13]]) {
    const x = randomRef(rng, shape, { low: -6, high: 6 });
    const t = randomRef(rng, shape, { low: 0, high: 1 });
    await checkOp({ name: `bceWithLogits [${shape}]`, rng, inputs: [x, t], gpu: ([a, b]) => T.bceWithLogits(a, b), ref: ([a, b]) => R.bceWithLogits(a, b), refBackward: ([a, b], g) => R.bceWithLogitsBackward(a, b, g) });
  }
  const x = { shape: [6], data: Float64Array.from([-120, -40, -1e-3, 0, 40, 120]) };
  const t = { shape: [6], data: Float64Array.from([0, 1, 1, 0, 0, 1]) };
  await checkOp({ name: 'bceWithLogits extreme logits', rng, inputs: [x, t], gpu: ([a, b]) => T.bceWithLogits(a, b), ref: ([a, b]) => R.bceWithLogits(a, b) });
});

test('adamStep: 20 steps match float64 Adam, L2 and decoupled (AdamW) weight decay', async () => {
  const rng = testRng('adam');
  const variants = [{}, { weightDecay: 0.1 }, { weightDecay: 0.1, decoupled: true }];
  for (const extra of variants) {
    for (const shape of [[7], [3, 5, 17]]) {
      const p0 = randomRef(rng, shape);
      const param = toTensor(p0);
      const m = T.zeros(shape);
      const v = T.zeros(shape);
      const rp = Float64Array.from(p0.data);
      const rm = new Float64Array(rp.length);
      const rv = new Float64Array(rp.length);
      for (let step = 1; step <= 20; step++) {
        const gr = randomRef(rng, shape, { low: -1, high: 1 });
        const grad = toTensor(gr);
        const o = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, step, ...extra };
        T.adamStep(param, grad, m, v, o);
        R.adamStep(rp, gr.data, rm, rv, o);
        grad.dispose();
      }
      const what = `adam ${JSON.stringify(extra)} [${shape}]`;
      expectClose(await param.data(), rp, 1e-5, `${what} param`);
      expectClose(await m.data(), rm, 1e-5, `${what} m`);
      expectClose(await v.data(), rv, 1e-5, `${what} v`);
      T.dispose(param, m, v);
    }
  }
});

test.run();
