import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng, backward, noGrad, relu, runtime, scope, setConv2dVariant, tensor, type Tensor } from '@aunet/tensor';
import { setupGPU, testRng } from '@aunet/tensor/testing';
import { Adam, Conv2d, DeepSupervisionHead, DualAttention, Module, ReLU, ResDilBlock, Sequential, bceWithLogits } from '../src/index';

// conv2d's GPU variant throughout: the fallback variant (the default on lavapipe) unrolls kernels
// that take lavapipe 5-40 s each to compile on a fresh machine. Those kernels are checked against
// the float64 reference in the tensor package's conv2d.test.ts and run in training by aunet's
// tests; this suite trains a small network, which works the same on either variant.
test.before(async () => {
  await setupGPU();
  setConv2dVariant('gpu');
});
test.after(() => setConv2dVariant('auto'));

/** conv -> res_dil -> attention at full resolution, strided conv -> attention at half, deep-supervision head over both. */
class TinyNet extends Module {
  stem: Conv2d;
  block: ResDilBlock;
  att0: DualAttention;
  down: Conv2d;
  att1: DualAttention;
  head: DeepSupervisionHead;
  constructor(rng: Rng, c = 8) {
    super();
    this.stem = new Conv2d(1, c, 3, { padding: 1, rng });
    this.block = new ResDilBlock(c, { rng });
    this.att0 = new DualAttention(c, { rng });
    this.down = new Conv2d(c, c, 3, { stride: 2, padding: 1, rng });
    this.att1 = new DualAttention(c, { rng });
    this.head = new DeepSupervisionHead([c, c], 1, { rng });
  }
  forward(x: Tensor): Tensor {
    const f0 = this.att0.forward(this.block.forward(relu(this.stem.forward(x))));
    const f1 = this.att1.forward(relu(this.down.forward(f0)));
    return this.head.forward([f0, f1]);
  }
}

test('a tiny network (conv, res_dil, attention, deep supervision) overfits one random batch; memory stays flat', async () => {
  const rng = testRng('overfit');
  // Train at full speed: poisoning every new buffer is for op tests.
  runtime().poisonNewBuffers = false;
  try {
    const net = new TinyNet(new Rng(1234));
    const opt = new Adam(net, { lr: 1e-2 });
    const shape = [2, 1, 16, 16];
    const n = 2 * 16 * 16;
    const x = tensor(Float32Array.from({ length: n }, () => rng.normal()), shape);
    const y = tensor(Float32Array.from({ length: n }, () => (rng.uniform() < 0.5 ? 1 : 0)), shape);
    const step = () =>
      scope(async () => {
        const loss = bceWithLogits(net.forward(x), y);
        backward(loss);
        opt.step();
        opt.zeroGrad();
        return loss.item();
      });
    const first = await step();
    await runtime().sync();
    const bytesAfterFirst = runtime().memory().bytesInUse;
    let last = first;
    let steps = 1;
    const maxSteps = 200; // about 45 are needed
    const t0 = performance.now();
    while (steps < maxSteps && last >= first / 10) {
      last = await step();
      steps++;
    }
    await runtime().sync();
    const ms = performance.now() - t0;
    console.log(`  overfit: loss ${first.toFixed(4)} -> ${last.toFixed(4)} in ${steps} steps (${(ms / (steps - 1)).toFixed(1)} ms/step)`);
    assert.ok(last < first / 10, `loss ${first} -> ${last} after ${steps} steps: not below a tenth of the start`);
    assert.is(runtime().memory().bytesInUse, bytesAfterFirst, 'bytes in use grew over the training steps');
    x.dispose();
    y.dispose();
    opt.dispose();
    net.dispose();
  } finally {
    runtime().poisonNewBuffers = true; // also after a failure: later tests rely on poisoned outputs
  }
});

test('without autodiff, blocks free their intermediates at once (only the output stays)', async () => {
  const rng = new Rng(3);
  const block = new ResDilBlock(4, { rng });
  const seq = new Sequential(new Conv2d(4, 4, 3, { padding: 1, rng }), new ReLU(), new Conv2d(4, 4, 1, { rng }));
  const head = new DeepSupervisionHead([4, 4, 4], 1, { rng });
  const x = tensor(Float32Array.from({ length: 2 * 4 * 8 * 8 }, () => rng.normal()), [2, 4, 8, 8]);
  const levels = [x, ...[4, 2].map((s) => tensor(Float32Array.from({ length: 2 * 4 * s * s }, () => rng.normal()), [2, 4, s, s]))];
  for (const run of [() => block.forward(x), () => seq.forward(x), () => head.forward(levels)]) {
    await runtime().sync();
    const before = runtime().memory().buffersInUse;
    const y = noGrad(run);
    assert.is(runtime().memory().buffersInUse, before + 1);
    y.dispose();
  }
  for (const m of [block, seq, head]) m.dispose();
  for (const t of levels) t.dispose();
});

test.run();
