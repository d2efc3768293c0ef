// A batch run in chunks (how batches past lavapipe's 128 MiB binding limit train) gives the whole
// batch's loss and gradients.
import './conv-variant';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { relativeError } from '@aunet/tensor/reference';
import { setupGPU, testRng } from '@aunet/tensor/testing';
import { Adam, manualSeed } from '@aunet/nn';
import { noGrad, runtime, scope, tensor, type Tensor } from '@aunet/tensor';
import { batchThatFits } from '../src/predict';
import { AUNet, defaultModelConfig } from '../src/model';
import { lossFromSums, pooledLoss, type LossSpec } from '../src/loss';
import { batchLossAndGradients, sideLossWeights, type StepLossSpec } from '../src/step';

const t = suite('step');
t.before(setupGPU);

t('lossFromSums: a perfect prediction, and the partials against finite differences', () => {
  const ftl: LossSpec = { loss: 'ftl', alpha: 0.7, beta: 0.3, gamma: 4 / 3 };
  assert.is(lossFromSums([10, 10, 10, 0, 0], { ...ftl, smooth: 0 }).value, 0);
  for (const spec of [ftl, { ...ftl, loss: 'dice' as const }]) {
    const s = [12.5, 30.25, 20.5, 17.75, 8];
    const { partials } = lossFromSums(s, spec);
    partials.forEach((d, k) => {
      const at = (h: number) => lossFromSums(s.map((v, j) => (j === k ? v + h : v)), spec).value;
      const numeric = (at(1e-6) - at(-1e-6)) / 2e-6;
      assert.ok(Math.abs(numeric - d) <= 1e-6 * Math.max(1, Math.abs(d)), `${spec.loss} dL/dS[${k}]: ${d} vs ${numeric}`);
    });
  }
});

const CHUNK_CASES = [
  { loss: 'ftl', deepSupervisionLoss: 'summed' },
  { loss: 'dice', deepSupervisionLoss: 'summed' },
  { loss: 'ftl', deepSupervisionLoss: 'levels' },
] as const;

for (const { loss, deepSupervisionLoss } of CHUNK_CASES) {
  t(`${loss}, loss on the ${deepSupervisionLoss} output${deepSupervisionLoss === 'levels' ? 's' : ''}: a batch of 3 in chunks of 1 and 2 equals the whole batch (loss and every gradient)`, async () => {
    manualSeed(11);
    const net = new AUNet(defaultModelConfig({ filters: [4, 8, 16], inputSize: 16, deepSupervision: 2 }));
    const rng = testRng(`step-${loss}`);
    const n = 3;
    const x = Float32Array.from({ length: n * 256 }, () => rng.uniform());
    const y = Float32Array.from({ length: n * 256 }, () => (rng.uniform() < 0.3 ? 1 : 0));
    const spec: StepLossSpec = { loss, alpha: 0.7, beta: 0.3, gamma: 4 / 3, deepSupervisionLoss };
    const run = async (chunk: number) => {
      net.zeroGrad();
      const value = await batchLossAndGradients(net, x, y, n, spec, chunk);
      const grads = await Promise.all(net.parameters().map(async (p) => Float64Array.from(await p.grad!.data())));
      return { value, grads };
    };
    const whole = await run(3);
    for (const chunk of [1, 2]) {
      const parts = await run(chunk);
      assert.ok(Math.abs(parts.value - whole.value) <= 1e-5 * Math.abs(whole.value), `chunks of ${chunk}: loss ${parts.value} vs ${whole.value}`);
      const all = (g: Float64Array[]) => Float64Array.from(g.flatMap((a) => Array.from(a)));
      const err = relativeError(all(parts.grads), all(whole.grads));
      console.log(`  ${loss}, chunks of ${chunk}: loss ${parts.value.toFixed(6)} (whole ${whole.value.toFixed(6)}), gradient relative error ${err.toExponential(2)}`);
      assert.ok(err < 1e-4, `chunks of ${chunk}: gradient relative error ${err}`);
    }
    net.dispose();
  });
}

t('sideLossWeights: the output 1, the levels 1/2, 1/4, 1/8, scaled to sum to 1', () => {
  assert.equal(sideLossWeights(3).map((w) => w * 15), [8, 4, 2, 1]);
  assert.equal(sideLossWeights(1), [2 / 3, 1 / 3]);
});

t("levels: the step's loss is the weighted sum of each map's loss, the maps being the output and each level alone at full size", async () => {
  manualSeed(13);
  const size = 16;
  const net = new AUNet(defaultModelConfig({ filters: [4, 8, 16], inputSize: size, deepSupervision: 2 }));
  const rng = testRng('levels');
  const n = 2;
  const x = Float32Array.from({ length: n * size * size }, () => rng.uniform());
  const y = Float32Array.from({ length: n * size * size }, () => (rng.uniform() < 0.3 ? 1 : 0));
  const spec: StepLossSpec = { loss: 'ftl', alpha: 0.7, beta: 0.3, gamma: 4 / 3, deepSupervisionLoss: 'levels' };
  net.eval();
  const maps = await scope(async () => {
    const input = tensor(x, [n, 1, size, size]);
    const plain = noGrad(() => net.forward(input));
    const { output, sides } = noGrad(() => net.forwardWithSides(input));
    const f32 = async (t: Tensor) => Float32Array.from(await t.data());
    return { plain: await f32(plain), output: await f32(output), sides: await Promise.all(sides.map(f32)) };
  });
  assert.equal(Array.from(maps.output), Array.from(maps.plain), 'forwardWithSides gives forward\'s output');
  // The sides add up to the output; level 1 is constant on 2x2 blocks (up-sampled from 8x8).
  const summed = maps.sides[0].map((v, i) => v + maps.sides[1][i]);
  assert.ok(relativeError(summed, maps.output) < 1e-6, 'the sides add up to the output');
  assert.ok(maps.sides[1].every((v, i) => v === maps.sides[1][i - (i % 2) - (Math.floor(i / size) % 2) * size]), 'level 1 up-sampled by nearest');
  // The host's loss of each map, weighted.
  const sigmoid = (a: Float32Array) => a.map((v) => 1 / (1 + Math.exp(-v)));
  const perSlice = (a: Float32Array) => Array.from({ length: n }, (_, j) => a.subarray(j * size * size, (j + 1) * size * size));
  const masks = perSlice(y).map((m) => Uint8Array.from(m));
  const expected = [maps.output, ...maps.sides].reduce((acc, m, k) => acc + sideLossWeights(2)[k] * pooledLoss(perSlice(sigmoid(m)), masks, spec), 0);
  net.train();
  net.zeroGrad();
  const value = await batchLossAndGradients(net, x, y, n, spec);
  console.log(`  levels: step loss ${value.toFixed(6)}, host ${expected.toFixed(6)}`);
  assert.ok(Math.abs(value - expected) <= 1e-5, `step loss ${value} vs host ${expected}`);
  net.dispose();
});

t('training steps, whole and chunked, keep GPU memory flat', async () => {
  manualSeed(12);
  const net = new AUNet(defaultModelConfig({ filters: [4, 8, 16], inputSize: 16, deepSupervision: 2 }));
  const opt = new Adam(net, { lr: 1e-3 });
  const rng = testRng('memory');
  const x = Float32Array.from({ length: 2 * 256 }, () => rng.uniform());
  const y = Float32Array.from({ length: 2 * 256 }, () => (rng.uniform() < 0.3 ? 1 : 0));
  const rt = runtime();
  for (const [chunk, deepSupervisionLoss] of [[2, 'summed'], [1, 'summed'], [2, 'levels'], [1, 'levels']] as const) {
    const spec: StepLossSpec = { loss: 'ftl', alpha: 0.7, beta: 0.3, gamma: 4 / 3, deepSupervisionLoss };
    let after1 = 0;
    for (let step = 1; step <= 5; step++) {
      await batchLossAndGradients(net, x, y, 2, spec, chunk);
      opt.step();
      opt.zeroGrad();
      await rt.sync();
      if (step === 1) after1 = rt.memory().bytesInUse;
    }
    assert.is(rt.memory().bytesInUse, after1, `${deepSupervisionLoss}, chunks of ${chunk}: bytes in use after step 5 equal step 1's`);
  }
  opt.dispose();
  net.dispose();
});

t('batchThatFits: the largest activation of a level against the binding limit', () => {
  const MiB = 2 ** 20;
  // 512x512, filters 32..: the 64-channel level-0 concatenation is 64 MiB a slice.
  assert.is(batchThatFits(defaultModelConfig({ inputSize: 512 }), 4, 128 * MiB), 2);
  assert.is(batchThatFits(defaultModelConfig({ inputSize: 128 }), 4, 128 * MiB), 4);
  // filters 16, 64: the decoder's up-sampled 64 channels outweigh the 32-channel concatenation.
  assert.is(batchThatFits(defaultModelConfig({ inputSize: 512, filters: [16, 64] }), 4, 128 * MiB), 2);
  assert.is(batchThatFits(defaultModelConfig({ inputSize: 512, filters: [16, 64] }), 4, 96 * MiB), 1);
});

t.run();
