import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backward, mul, scope, sub, sum, tensor, type Tensor } from '@aunet/tensor';
import { relativeError } from '@aunet/tensor/reference';
import { setupGPU, testRng } from '@aunet/tensor/testing';
import { Adam, EarlyStopping, Module, Parameter, ReduceLROnPlateau, type AdamOptions } from '../src/index';

test.before(setupGPU);

/** Adam as the paper and torch.optim.Adam/AdamW define it, in float64. */
class RefAdam {
  m: Float64Array[];
  v: Float64Array[];
  t = 0;
  constructor(
    public params: Float64Array[],
    public o: Required<AdamOptions>,
  ) {
    this.m = params.map((p) => new Float64Array(p.length));
    this.v = params.map((p) => new Float64Array(p.length));
  }
  step(grads: Float64Array[]): void {
    this.t++;
    const { lr, betas: [b1, b2], eps, weightDecay: wd, decoupled } = this.o;
    this.params.forEach((p, k) => {
      for (let i = 0; i < p.length; i++) {
        let g = grads[k][i];
        if (decoupled) p[i] -= lr * wd * p[i];
        else g += wd * p[i];
        this.m[k][i] = b1 * this.m[k][i] + (1 - b1) * g;
        this.v[k][i] = b2 * this.v[k][i] + (1 - b2) * g * g;
        const mh = this.m[k][i] / (1 - b1 ** this.t);
        const vh = this.v[k][i] / (1 - b2 ** this.t);
        p[i] -= (lr * mh) / (Math.sqrt(vh) + eps);
      }
    });
  }
}



test('Adam: 20 steps on a fixed problem match a float64 implementation to 1e-5', async () => {
  const rng = testRng('adam');
  // Loss = sum(c * (w - t)^2) per parameter: gradient 2 c (w - t), computed on the GPU from the
  // current float32 weights and in float64 by the reference from its own.
  const shapes = [[3, 5], [7], [2, 2, 3, 3]];
  const configs: Required<AdamOptions>[] = [
    { lr: 0.05, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, decoupled: false },
    { lr: 0.02, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.1, decoupled: false },
    { lr: 0.03, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.05, decoupled: true },
  ];
  for (const cfg of configs) {
    const init = shapes.map((s) => Float64Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => Math.fround(rng.range(-1, 1))));
    const targets = init.map((p) => Float64Array.from(p, () => Math.fround(rng.range(-2, 2))));
    const coefs = init.map((p) => Float64Array.from(p, () => Math.fround(rng.range(0.1, 3))));
    const params = init.map((d, i) => new Parameter({ data: d, shape: shapes[i] }));
    const frozen = new Parameter({ data: [1, 2, 3], shape: [3] }); // never gets a gradient
    const opt = new Adam([...params, frozen], cfg);
    const ref = new RefAdam(init.map((d) => Float64Array.from(d)), cfg);
    const tT = targets.map((d, i) => tensor(d, shapes[i]));
    const cT = coefs.map((d, i) => tensor(d, shapes[i]));
    for (let step = 0; step < 20; step++) {
      if (step === 10) {
        opt.lr *= 0.5; // a settable rate, as a scheduler would
        ref.o = { ...ref.o, lr: ref.o.lr * 0.5 };
      }
      await scope(async () => {
        params.forEach((p, i) => {
          const d = sub(p.value, tT[i]);
          backward(sum(mul(mul(d, d), cT[i])));
        });
      });
      opt.step();
      ref.step(ref.params.map((p, k) => Float64Array.from(p, (w, i) => 2 * coefs[k][i] * (w - targets[k][i]))));
      opt.zeroGrad();
    }
    assert.is(opt.stepCount, 20);
    for (let k = 0; k < params.length; k++) {
      const what = `${JSON.stringify(cfg)} param ${k}`;
      const err = relativeError(await params[k].value.data(), ref.params[k]);
      assert.ok(err <= 1e-5, `${what}: relative error ${err}`);
      const s = opt.stateOf(params[k]);
      assert.ok(relativeError(await s.m.data(), ref.m[k]) <= 1e-5, `${what}: m`);
      assert.ok(relativeError(await s.v.data(), ref.v[k]) <= 1e-5, `${what}: v`);
    }
    assert.equal(await frozen.value.array(), [1, 2, 3], 'a parameter without a gradient is not touched');
    assert.equal(await opt.stateOf(frozen).m.array(), [0, 0, 0]);
    for (const t of [...tT, ...cT]) t.dispose();
    for (const p of [...params, frozen]) p.dispose();
    opt.dispose();
  }
});

test('Adam: options are checked; a module gives its parameters', () => {
  class M extends Module {
    a = new Parameter({ data: [1], shape: [1] });
    b = new Parameter({ data: [1, 2], shape: [2] });
    forward(x: Tensor) {
      return x;
    }
  }
  const m = new M();
  const opt = new Adam(m, { lr: 5e-5 });
  assert.equal(opt.params, [m.a, m.b]);
  assert.is(opt.stateOf(m.b).m.size, 2);
  assert.throws(() => opt.stateOf(new Parameter({ data: [0], shape: [1] })), /not one of this optimiser's parameters/);
  assert.throws(() => new Adam(m, { betas: [1, 0.9] }), /betas/);
  assert.throws(() => new Adam(m, { lr: -1 }), /learning rate/);
  opt.dispose();
  m.dispose();
});

test('ReduceLROnPlateau: halves the rate after `patience` epochs without improvement, down to minLr', () => {
  const opt = { lr: 1 };
  const s = new ReduceLROnPlateau(opt, { factor: 0.5, patience: 2, minLr: 0.2, threshold: 0.01 });
  const reduced = [5, 4, 4, 3.99, 4, 10, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2].map((v) => s.step(v));
  // 4 -> 4 and 3.99 are not 1% better than 4: epochs 3, 4, 5 are bad; the rate drops on the third.
  assert.equal(reduced.map((r, i) => (r ? i : -1)).filter((i) => i >= 0), [4, 9, 12]);
  assert.is(opt.lr, 0.2, 'clamped at minLr');
  assert.is(s.step(2), false);
  const max = new ReduceLROnPlateau({ lr: 1e-3 }, { mode: 'max', factor: 0.1, patience: 0, thresholdMode: 'abs', threshold: 0.05 });
  assert.is(max.step(0.5), false);
  assert.is(max.step(0.54), true); // not 0.05 better
  assert.ok(Math.abs(max.lr - 1e-4) < 1e-12);
  assert.is(max.step(0.6), false);
  assert.is(max.step(Number.NaN), true, 'NaN is no improvement');
});

test('EarlyStopping: stops after `patience` epochs without improvement and restores the best weights', async () => {
  class M extends Module {
    w = new Parameter({ data: [0, 0], shape: [2] });
    forward(x: Tensor) {
      return x;
    }
  }
  const m = new M();
  const es = new EarlyStopping({ patience: 3, mode: 'max', minDelta: 0.01 });
  const scores = [0.1, 0.5, 0.505, 0.4, 0.3];
  const stops: boolean[] = [];
  for (let epoch = 0; epoch < scores.length; epoch++) {
    m.w.assign([epoch, -epoch]);
    stops.push(await es.step(scores[epoch], m));
  }
  assert.equal(stops, [false, false, false, false, true]);
  assert.is(es.best, 0.5);
  assert.is(es.bestEpoch, 1);
  const t = m.w.value;
  es.restore(m);
  assert.equal(await m.w.value.array(), [1, -1]);
  assert.is(m.w.value, t, 'restored in place');
  const wrong = new (class extends Module {
    v = new Parameter({ data: [0], shape: [1] });
    forward(x: Tensor) {
      return x;
    }
  })();
  assert.throws(() => es.restore(wrong), /"v" has no recorded weights[\s\S]*"w" is recorded but not in the module/);
  assert.throws(() => new EarlyStopping().restore(m), /no weights recorded/);
  m.dispose();
  wrong.dispose();
});

test.run();
