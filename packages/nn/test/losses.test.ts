import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tensor, type Tensor } from '@aunet/tensor';
import * as R from '@aunet/tensor/reference';
import type { Ref } from '@aunet/tensor/reference';
import { checkOp, randomRef, setupGPU, testRng } from '@aunet/tensor/testing';
import type { Rng } from '@aunet/tensor';
import { bceWithLogits, diceLoss, focalTverskyLoss, tverskyLoss } from '../src/index';

test.before(setupGPU);

function binaryTarget(rng: Rng, shape: number[]): Ref {
  const r = randomRef(rng, shape, { low: 0, high: 1 });
  return { shape: r.shape, data: r.data.map((v) => (v < 0.3 ? 1 : 0)) };
}

const SHAPE = [2, 1, 13, 11];

async function checkLoss(name: string, rng: Rng, gpu: (p: Tensor, g: Tensor) => Tensor, ref: (p: Ref, g: Ref) => Ref, refBackward: (p: Ref, g: Ref, G: Ref) => Ref, logits = false) {
  const p = logits ? randomRef(rng, SHAPE, { low: -4, high: 4 }) : randomRef(rng, SHAPE, { low: 0.02, high: 0.98 });
  const g = binaryTarget(rng, SHAPE);
  await checkOp({
    name, rng, inputs: [p, g], grad: [true, false],
    gpu: ([a, b]) => gpu(a, b), ref: ([a, b]) => ref(a, b), refBackward: ([a, b], G) => [refBackward(a, b, G), R.refZeros(b.shape)],
  });
}

test('diceLoss, tverskyLoss, focalTverskyLoss over the batch, with their parameters', async () => {
  const rng = testRng('losses');
  for (const smooth of [1, 1e-3]) {
    await checkLoss(`dice smooth=${smooth}`, rng, (p, g) => diceLoss(p, g, { smooth }), (p, g) => R.diceLoss(p, g, smooth),
      (p, g, G) => R.sumsLossBackward(p, g, { kind: 'dice', smooth }, G));
  }
  for (const [alpha, beta] of [[0.7, 0.3], [0.5, 0.5]]) {
    await checkLoss(`tversky ${alpha}/${beta}`, rng, (p, g) => tverskyLoss(p, g, { alpha, beta, smooth: 0.5 }), (p, g) => R.tverskyLoss(p, g, alpha, beta, 0.5),
      (p, g, G) => R.sumsLossBackward(p, g, { kind: 'tversky', alpha, beta, gamma: 1, smooth: 0.5 }, G));
  }
  for (const gamma of [4 / 3, 2]) {
    await checkLoss(`focal tversky gamma=${gamma}`, rng, (p, g) => focalTverskyLoss(p, g, { gamma }), (p, g) => R.focalTverskyLoss(p, g, 0.7, 0.3, gamma, 1),
      (p, g, G) => R.sumsLossBackward(p, g, { kind: 'focalTversky', alpha: 0.7, beta: 0.3, gamma, smooth: 1 }, G));
  }
});

test('bceWithLogits: mean over every element', async () => {
  const rng = testRng('bce');
  await checkLoss('bceWithLogits', rng, (x, t) => bceWithLogits(x, t), (x, t) => R.bceWithLogits(x, t), (x, t, G) => R.bceWithLogitsBackward(x, t, G)[0], true);
});

test('paper defaults; the focal loss with gamma 1 is the Tversky loss; shapes are checked', async () => {
  const p = tensor([0.9, 0.2, 0.6, 0.1], [1, 1, 2, 2]);
  const g = tensor([1, 0, 1, 1], [1, 1, 2, 2]);
  const pr = R.ref([0.9, 0.2, 0.6, 0.1], [1, 1, 2, 2]);
  const gr = R.ref([1, 0, 1, 1], [1, 1, 2, 2]);
  const close = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));
  assert.ok(close(await focalTverskyLoss(p, g).item(), R.focalTverskyLoss(pr, gr, 0.7, 0.3, 4 / 3, 1).data[0]));
  assert.ok(close(await tverskyLoss(p, g).item(), R.tverskyLoss(pr, gr, 0.7, 0.3, 1).data[0]));
  assert.ok(close(await diceLoss(p, g).item(), R.diceLoss(pr, gr, 1).data[0]));
  assert.ok(close(await focalTverskyLoss(p, g, { gamma: 1 }).item(), await tverskyLoss(p, g).item()));
  const wrong = tensor([1, 0, 1, 1], [4]);
  assert.throws(() => diceLoss(p, wrong), /differ in shape/);
  assert.throws(() => bceWithLogits(p, wrong), /differ in shape/);
  for (const t of [p, g, wrong]) t.dispose();
});

test.run();
