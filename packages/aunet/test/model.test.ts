// The models: shapes, parameter counts, config checks, gradients against finite differences,
// memory. Sizes are small, and shared with train.test.ts, so that lavapipe compiles few kernels.
import './conv-variant';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { backward, mean, mul, noGrad, runtime, scope, sigmoid, tensor } from '@aunet/tensor';
import { setupGPU, testRng } from '@aunet/tensor/testing';
import { ref, relativeError, type Ref } from '@aunet/tensor/reference';
import { referenceForward } from './reference';
import { manualSeed } from '@aunet/nn';
import { AUNet, defaultModelConfig, validateModelConfig, type ModelConfig } from '../src/model';

const model = suite('model');
model.before(setupGPU);

const TINY: Partial<ModelConfig> = { filters: [4, 8, 16], inputSize: 16, deepSupervision: 2 };

function randomInput(name: string, shape: number[]): Float32Array {
  const rng = testRng(name);
  const n = shape.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: n }, () => rng.uniform());
}

model('the paper width: AU-Net 13.0 M parameters, U-Net 12.6 M; all 5 levels run forward', async () => {
  manualSeed(1);
  // At 32x32 the fifth level is 2x2: the smallest input the paper's 5 levels take.
  const aunet = new AUNet(defaultModelConfig({ architecture: 'aunet', inputSize: 32 }));
  const unet = new AUNet(defaultModelConfig({ architecture: 'unet', inputSize: 32 }));
  console.log(`  AU-Net ${aunet.numParameters()} parameters, U-Net ${unet.numParameters()}`);
  assert.is(aunet.numParameters(), 13_002_412);
  assert.is(unet.numParameters(), 12_562_499);
  assert.ok(!unet.namedParameters().some(([n]) => n.includes('attention')));
  assert.ok(aunet.namedParameters().some(([n]) => n === 'encoder.0.attention.channel.w1'));
  assert.ok(aunet.namedParameters().some(([n]) => n.startsWith('encoder.4.')), 'a fifth encoder level');
  for (const net of [aunet, unet]) {
    const x = tensor(randomInput('paper-width', [2, 1, 32, 32]), [2, 1, 32, 32]);
    const y = noGrad(() => net.forward(x));
    assert.equal(y.shape, [2, 1, 32, 32]);
    const v = await y.data();
    assert.ok(v.every((p) => Number.isFinite(p)), 'finite outputs');
    x.dispose();
    y.dispose();
    net.dispose();
  }
});

model('output shapes of both models and the deep-supervision settings; no leak without autodiff', async () => {
  const rt = runtime();
  for (const kind of ['aunet', 'unet'] as const) {
    for (const deepSupervision of [1, 2]) {
      const net = new AUNet(defaultModelConfig({ ...TINY, architecture: kind, deepSupervision }));
      const x = tensor(randomInput('shapes', [3, 1, 16, 16]), [3, 1, 16, 16]);
      const before = rt.memory().bytesInUse;
      const y = noGrad(() => net.forward(x));
      assert.equal(y.shape, [3, 1, 16, 16]);
      const v = await y.data();
      assert.ok(v.every(Number.isFinite), `${kind} ds ${deepSupervision}: finite outputs`);
      y.dispose();
      assert.is(rt.memory().bytesInUse, before, `${kind} ds ${deepSupervision}: intermediates freed`);
      x.dispose();
      net.dispose();
    }
  }
});

model('a wrong input shape and bad configs give clear errors', () => {
  const net = new AUNet(defaultModelConfig(TINY));
  const x = tensor(new Float32Array(2 * 24 * 24), [2, 1, 24, 24]);
  assert.throws(() => net.forward(x), /expected input \[N, 1, 16, 16\], got/);
  x.dispose();
  net.dispose();
  assert.throws(() => validateModelConfig(defaultModelConfig({ inputSize: 100 })), /inputSize must be a positive multiple of 16/);
  assert.throws(() => validateModelConfig(defaultModelConfig({ filters: [8] })), /filters must list at least 2 levels/);
  assert.throws(() => validateModelConfig(defaultModelConfig({ deepSupervision: 5 })), /deepSupervision must be 1..4/);
  assert.throws(() => validateModelConfig(defaultModelConfig({ architecture: 'vnet' as 'unet' })), /architecture must be "aunet" or "unet"/);
});

async function hostParams(net: AUNet): Promise<Map<string, Ref>> {
  const m = new Map<string, Ref>();
  for (const [name, p] of net.namedParameters()) m.set(name, ref(await p.value.data(), [...p.shape]));
  return m;
}

for (const kind of ['aunet', 'unet'] as const) {
  model(`${kind}: forward against the float64 reference`, async () => {
    manualSeed(3);
    const config = defaultModelConfig({ ...TINY, architecture: kind });
    const net = new AUNet(config);
    const shape = [2, 1, 16, 16];
    const xData = randomInput(`${kind}-ref`, shape);
    const x = tensor(xData, shape);
    const y = noGrad(() => net.forward(x));
    const expected = referenceForward(config, await hostParams(net), ref(xData, shape));
    const err = relativeError(await y.data(), expected.data);
    console.log(`  ${kind} forward: max-norm relative error ${err.toExponential(2)}`);
    assert.ok(err < 1e-4, `forward relative error ${err}`);
    for (const t of [x, y]) t.dispose();
    net.dispose();
  });
}

model('AU-Net gradients (every parameter and the input) against float64 finite differences of the reference', async () => {
  manualSeed(7);
  const config = defaultModelConfig(TINY);
  const net = new AUNet(config);
  const rng = testRng('fd');
  const shape = [2, 1, 16, 16];
  const xData = randomInput('fd-x', shape);
  const wData = Float32Array.from({ length: 2 * 256 }, () => rng.range(-1, 1));
  const weights = tensor(wData, shape);
  const x = tensor(xData, shape, { requiresGrad: true });
  await scope(async () => {
    backward(mean(mul(sigmoid(net.forward(x)), weights)));
  });
  const named = net.namedParameters();
  const params = await hostParams(net);
  const grads = new Map<string, Float32Array>();
  for (const [name, p] of named) grads.set(name, (await p.grad!.data()) as Float32Array);
  const gx = (await x.grad!.data()) as Float32Array;
  const loss = (ps: Map<string, Ref>, input: Ref) => {
    const y = referenceForward(config, ps, input);
    let s = 0;
    for (let i = 0; i < y.data.length; i++) s += wData[i] / (1 + Math.exp(-y.data[i]));
    return s / y.data.length;
  };
  // Directional derivatives along random directions over all parameters and the input at once,
  // then along each parameter tensor alone (so a wrong gradient in a small tensor shows).
  const check = (label: string, names: string[], withInput: boolean) => {
    const dirs = new Map(names.map((n) => [n, Float64Array.from(params.get(n)!.data, () => rng.range(-1, 1))]));
    const dx = withInput ? Float64Array.from(xData, () => rng.range(-1, 1)) : null;
    let analytic = 0;
    for (const [n, d] of dirs) d.forEach((v, j) => (analytic += v * grads.get(n)![j]));
    dx?.forEach((v, j) => (analytic += v * gx[j]));
    const at = (t: number) => {
      const moved = new Map(params);
      for (const [n, d] of dirs) moved.set(n, { shape: params.get(n)!.shape, data: params.get(n)!.data.map((v, j) => v + t * d[j]) });
      const input = dx ? { shape, data: Float64Array.from(xData, (v, j) => v + t * dx[j]) } : ref(xData, shape);
      return loss(moved, input);
    };
    // A ReLU input within reach of the step puts a kink inside the difference (seen at h = 1e-6 for
    // one seed in six, and possible at any h). The best of the central and the two one-sided
    // (second-order) differences at three step sizes counts: one kink spoils only the stencils that
    // reach across it, and a wrong gradient matches none. A ReLU input within float32 rounding of
    // 0 may also fall on the other side on the GPU than in float64 (SEED=608408922: a kink 1e-7
    // away along the direction); the GPU's gradient is then the derivative just past the kink, so
    // central differences at +-3h, beyond it, count too.
    let best = { label, analytic, numeric: NaN, rel: Infinity };
    const here = at(0);
    for (const h of [1e-6, 1e-7, 1e-8]) {
      const [up, down, up2, down2, up4, down4] = [at(h), at(-h), at(2 * h), at(-2 * h), at(4 * h), at(-4 * h)];
      const stencils = [(up - down) / (2 * h), (4 * up - 3 * here - up2) / (2 * h), (3 * here - 4 * down + down2) / (2 * h), (up4 - up2) / (2 * h), (down2 - down4) / (2 * h)];
      for (const numeric of stencils) {
        // Relative to the derivative, floored at 1e-5: the GPU's float32 sums carry absolute errors
        // near 1e-9 (seen on a bias whose derivative was 3.5e-7, SEED=1797532959), which a smaller
        // floor would count as a wrong gradient.
        const rel = Math.abs(numeric - analytic) / Math.max(1e-5, Math.abs(numeric));
        if (rel < best.rel) best = { label, analytic, numeric, rel };
      }
      if (best.rel < 1e-3) break; // a match: the smaller steps would only cost time
    }
    return best;
  };
  const results = [check('all parameters and the input', [...params.keys()], true), check('all parameters and the input', [...params.keys()], true)];
  for (const name of params.keys()) results.push(check(name, [name], false));
  const worst = results.reduce((a, b) => (b.rel > a.rel ? b : a));
  console.log(`  ${results.length} directional checks, worst ${worst.label}: analytic ${worst.analytic.toExponential(4)}, float64 finite difference ${worst.numeric.toExponential(4)} (relative ${worst.rel.toExponential(2)})`);
  for (const r of results) assert.ok(r.rel < 1e-3, `${r.label}: analytic ${r.analytic}, finite difference ${r.numeric}, relative error ${r.rel}`);
  x.dispose();
  weights.dispose();
  net.dispose();
});

model.run();
