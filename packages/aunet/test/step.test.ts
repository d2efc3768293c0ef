// A batch run in chunks (how batches past lavapipe's 128 MiB binding limit train) gives the whole
// batch's loss and gradients.
import './conv-variant';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { relativeError } from '@aunet/tensor/reference';
import { setupGPU, testRng } from '@aunet/tensor/testing';
import { Adam, manualSeed } from '@aunet/nn';
import { runtime } from '@aunet/tensor';
import { batchThatFits } from '../src/predict';
import { AUNet, defaultModelConfig } from '../src/model';
import { lossFromSums, type LossSpec } from '../src/loss';
import { batchLossAndGradients } from '../src/step';

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

for (const loss of ['ftl', 'dice'] as const) {
  t(`${loss}: a batch of 3 in chunks of 1 and 2 equals the whole batch (loss and every gradient)`, async () => {
    manualSeed(11);
    const net = new AUNet(defaultModelConfig({ filters: [4, 8, 16], inputSize: 16, deepSupervision: 2 }));
    const rng = testRng(`step-${loss}`);
    const n = 3;
    const x = Float32Array.from({ length: n * 256 }, () => rng.uniform());
    const y = Float32Array.from({ length: n * 256 }, () => (rng.uniform() < 0.3 ? 1 : 0));
    const spec: LossSpec = { loss, alpha: 0.7, beta: 0.3, gamma: 4 / 3 };
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

t('training steps, whole and chunked, keep GPU memory flat', async () => {
  manualSeed(12);
  const net = new AUNet(defaultModelConfig({ filters: [4, 8, 16], inputSize: 16, deepSupervision: 2 }));
  const opt = new Adam(net, { lr: 1e-3 });
  const rng = testRng('memory');
  const x = Float32Array.from({ length: 2 * 256 }, () => rng.uniform());
  const y = Float32Array.from({ length: 2 * 256 }, () => (rng.uniform() < 0.3 ? 1 : 0));
  const spec: LossSpec = { loss: 'ftl', alpha: 0.7, beta: 0.3, gamma: 4 / 3 };
  const rt = runtime();
  for (const chunk of [2, 1]) {
    let after1 = 0;
    for (let step = 1; step <= 5; step++) {
      await batchLossAndGradients(net, x, y, 2, spec, chunk);
      opt.step();
      opt.zeroGrad();
      await rt.sync();
      if (step === 1) after1 = rt.memory().bytesInUse;
    }
    assert.is(rt.memory().bytesInUse, after1, `chunks of ${chunk}: bytes in use after step 5 equal step 1's`);
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
