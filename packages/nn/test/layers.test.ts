import { test } from 'uvu';
import { add, mul, Rng, setConv2dVariant } from '@aunet/tensor';
import * as R from '@aunet/tensor/reference';
import type { Ref } from '@aunet/tensor/reference';
import { randomRef, setupGPU, testRng } from '@aunet/tensor/testing';
import {
  ChannelAttention, Conv2d, DeepSupervisionHead, DualAttention, InstanceNorm2d, ReLU, ResDilBlock, Sequential, Sigmoid, SpatialAttention, Upsample2x, type Module,
} from '../src/index';
import { addRef, checkLayer } from './helpers';

// conv2d's GPU variant throughout: the fallback variant (the default on lavapipe) unrolls kernels
// that take lavapipe 5-40 s each to compile on a fresh machine. Those kernels are checked against
// the float64 reference in the tensor package's conv2d.test.ts and run in training by aunet's
// tests; this suite checks the layers, which works the same on either variant.
test.before(async () => {
  await setupGPU();
  setConv2dVariant('gpu');
});
test.after(() => setConv2dVariant('auto'));

/** Give every parameter random values (so that affine norms and zero biases are exercised). */
function randomize(m: Module<any, any>, rng: Rng, scale = 0.5): void {
  for (const p of m.parameters()) p.assign(Float32Array.from({ length: p.size }, () => rng.range(-scale, scale)));
}


test('Conv2d: stride, padding, dilation, with and without bias', async () => {
  const rng = testRng('conv');
  const cases: [number, number, number, { stride?: number; padding?: number | 'same'; dilation?: number; bias?: boolean }, number[]][] = [
    [3, 5, 3, { padding: 1 }, [2, 3, 9, 11]],
    [3, 4, 3, { stride: 2, padding: 1 }, [2, 3, 9, 11]],
    [2, 3, 3, { dilation: 2, padding: 'same', bias: false }, [1, 2, 10, 7]],
    [4, 2, 1, {}, [2, 4, 5, 6]],
  ];
  for (const [inC, outC, k, o, xShape] of cases) {
    const layer = new Conv2d(inC, outC, k, { ...o, rng });
    randomize(layer, rng);
    const opts = { stride: layer.stride, padding: layer.padding, dilation: layer.dilation };
    await checkLayer({
      name: `Conv2d ${inC}->${outC} k${k} ${JSON.stringify(o)}`, rng, layer, inputs: [randomRef(rng, xShape)],
      call: (l, [x]) => l.forward(x),
      ref: ([x], [w, b]) => R.conv2d(x, w, b ?? null, opts),
      refBackward: ([x], [w, b], g) => {
        const [dx, dw, db] = R.conv2dBackward(x, w, b ?? null, opts, g);
        return b ? [dx, dw, db] : [dx, dw];
      },
    });
    layer.dispose();
  }
});

test('InstanceNorm2d: affine and not', async () => {
  const rng = testRng('instancenorm');
  for (const affine of [true, false]) {
    const layer = new InstanceNorm2d(3, { affine, eps: 1e-5 });
    randomize(layer, rng, 1.5);
    await checkLayer({
      name: `InstanceNorm2d affine=${affine}`, rng, layer, inputs: [randomRef(rng, [2, 3, 7, 9])],
      call: (l, [x]) => l.forward(x),
      ref: ([x], [gm, bt]) => R.instanceNorm(x, gm ?? null, bt ?? null, 1e-5),
      refBackward: ([x], [gm, bt], g) => {
        const [dx, dg, db] = R.instanceNormBackward(x, gm ?? null, bt ?? null, 1e-5, g);
        return affine ? [dx, dg, db] : [dx];
      },
    });
    layer.dispose();
  }
});

test('ReLU and Sigmoid layers', async () => {
  const rng = testRng('activations');
  const x = randomRef(rng, [2, 3, 5, 7], { low: -3, high: 3, avoid: [0] });
  await checkLayer({ name: 'ReLU', rng, layer: new ReLU(), inputs: [x], call: (l, [t]) => l.forward(t), ref: ([r]) => R.unary('relu', r), refBackward: ([r], _, g) => [R.unaryBackward('relu', r, g)] });
  await checkLayer({ name: 'Sigmoid', rng, layer: new Sigmoid(), inputs: [x], call: (l, [t]) => l.forward(t), ref: ([r]) => R.unary('sigmoid', r), refBackward: ([r], _, g) => [R.unaryBackward('sigmoid', r, g)] });
});

test('Upsample2x', async () => {
  const rng = testRng('upsample');
  await checkLayer({
    name: 'Upsample2x', rng, layer: new Upsample2x(), inputs: [randomRef(rng, [2, 3, 5, 7])],
    call: (l, [x]) => l.forward(x), ref: ([x]) => R.upsample2x(x), refBackward: ([x], _, g) => [R.upsample2xBackward(x, g)],
  });
});

test('ChannelAttention (reduction 2 and 3)', async () => {
  const rng = testRng('channelattention');
  for (const reduction of [2, 3]) {
    const layer = new ChannelAttention(6, { reduction, rng });
    randomize(layer, rng, 1);
    await checkLayer({
      name: `ChannelAttention r=${reduction}`, rng, layer, inputs: [randomRef(rng, [2, 6, 7, 9])],
      call: (l, [x]) => l.forward(x),
      ref: ([x], [w1, b1, w2, b2]) => R.channelAttention(x, w1, b1, w2, b2),
      refBackward: ([x], [w1, b1, w2, b2], g) => R.channelAttentionBackward(x, w1, b1, w2, b2, g),
    });
    layer.dispose();
  }
});

test('SpatialAttention', async () => {
  const rng = testRng('spatialattention');
  const layer = new SpatialAttention(5, { rng });
  randomize(layer, rng, 1);
  await checkLayer({
    name: 'SpatialAttention', rng, layer, inputs: [randomRef(rng, [2, 5, 6, 11])],
    call: (l, [x]) => l.forward(x),
    ref: ([x], [w, b]) => R.spatialAttention(x, w, b),
    refBackward: ([x], [w, b], g) => R.spatialAttentionBackward(x, w, b, g),
  });
  layer.dispose();
});

test('DualAttention = channel + spatial attention', async () => {
  const rng = testRng('dualattention');
  const layer = new DualAttention(6, { rng });
  randomize(layer, rng, 1);
  await checkLayer({
    name: 'DualAttention', rng, layer, inputs: [randomRef(rng, [2, 6, 9, 7])],
    call: (l, [x]) => l.forward(x),
    // Composed from the two single references, not the reference's own dualAttention.
    ref: ([x], [w1, b1, w2, b2, w, b]) => addRef(R.channelAttention(x, w1, b1, w2, b2), R.spatialAttention(x, w, b)),
    refBackward: ([x], [w1, b1, w2, b2, w, b], g) => {
      const [dxc, ...pc] = R.channelAttentionBackward(x, w1, b1, w2, b2, g);
      const [dxs, ...ps] = R.spatialAttentionBackward(x, w, b, g);
      return [addRef(dxc, dxs), ...pc, ...ps];
    },
  });
  layer.dispose();
});

/** relu(IN2(conv2(relu(IN1(conv1(x))))) + x), composed from the reference ops, with its VJP. */
function resDilRef(x: Ref, [w1, g1, b1, w2, g2, b2]: Ref[], [d1, d2]: number[], eps: number) {
  const o1 = { padding: d1, dilation: d1 };
  const o2 = { padding: d2, dilation: d2 };
  const c1 = R.conv2d(x, w1, null, o1);
  const n1 = R.instanceNorm(c1, g1, b1, eps);
  const r1 = R.unary('relu', n1);
  const c2 = R.conv2d(r1, w2, null, o2);
  const n2 = R.instanceNorm(c2, g2, b2, eps);
  const s = addRef(n2, x);
  const y = R.unary('relu', s);
  const backward = (gy: Ref): Ref[] => {
    const gs = R.unaryBackward('relu', s, gy);
    const [gc2, gg2, gb2] = R.instanceNormBackward(c2, g2, b2, eps, gs);
    const [gr1, gw2] = R.conv2dBackward(r1, w2, null, o2, gc2);
    const gn1 = R.unaryBackward('relu', n1, gr1);
    const [gc1, gg1, gb1] = R.instanceNormBackward(c1, g1, b1, eps, gn1);
    const [gx1, gw1] = R.conv2dBackward(x, w1, null, o1, gc1);
    return [addRef(gx1, gs), gw1, gg1, gb1, gw2, gg2, gb2];
  };
  return { y, backward };
}

test('ResDilBlock end to end against the composed reference', async () => {
  const rng = testRng('resdil');
  for (const dilations of [[2, 4], [1, 3]] as [number, number][]) {
    const layer = new ResDilBlock(4, { dilations, rng });
    randomize(layer, rng, 0.5);
    // Shift the norms' scales away from zero (a realistic, well-conditioned block).
    layer.norm1.weight!.assign(Float32Array.from({ length: 4 }, () => rng.range(0.5, 1.5)));
    layer.norm2.weight!.assign(Float32Array.from({ length: 4 }, () => rng.range(0.5, 1.5)));
    await checkLayer({
      name: `ResDilBlock dilations ${dilations}`, rng, layer, inputs: [randomRef(rng, [2, 4, 10, 13])],
      call: (l, [x]) => l.forward(x),
      ref: ([x], ps) => resDilRef(x, ps, dilations, 1e-5).y,
      refBackward: ([x], ps, g) => resDilRef(x, ps, dilations, 1e-5).backward(g),
      fdSamples: 24,
    });
    layer.dispose();
  }
});

test('Sequential chains its layers', async () => {
  const rng = testRng('sequential');
  const layer = new Sequential(new Conv2d(2, 3, 3, { padding: 1, rng }), new ReLU(), new Conv2d(3, 2, 1, { rng }));
  randomize(layer, rng);
  await checkLayer({
    name: 'Sequential conv-relu-conv', rng, layer, inputs: [randomRef(rng, [2, 2, 6, 7])],
    call: (l, [x]) => l.forward(x),
    ref: ([x], [w1, b1, w2, b2]) => R.conv2d(R.unary('relu', R.conv2d(x, w1, b1, { padding: 1 })), w2, b2),
    refBackward: ([x], [w1, b1, w2, b2], g) => {
      const h = R.conv2d(x, w1, b1, { padding: 1 });
      const r = R.unary('relu', h);
      const [gr, gw2, gb2] = R.conv2dBackward(r, w2, b2, {}, g);
      const [gx, gw1, gb1] = R.conv2dBackward(x, w1, b1, { padding: 1 }, R.unaryBackward('relu', h, gr));
      return [gx, gw1, gb1, gw2, gb2];
    },
  });
  layer.dispose();
});

/**
 * The head's reference with level i's map weighted by `weights[i]`: all ones is the summed output,
 * other weights a sum of the output and the side outputs as a loss on every level would read them.
 */
function deepSupervisionReference(weights: number[]) {
  const upTimes = (r: Ref, k: number) => {
    for (let j = 0; j < k; j++) r = R.upsample2x(r);
    return r;
  };
  return {
    // The definition: sum over levels of up^i(conv1x1_i(f_i)), each level up-sampled on its own.
    ref: (xs: Ref[], ps: Ref[]) => xs.map((f, i) => R.scale(upTimes(R.conv2d(f, ps[2 * i], ps[2 * i + 1]), i), weights[i])).reduce(addRef),
    refBackward: (xs: Ref[], ps: Ref[], g: Ref) => {
      const dIn: Ref[] = [];
      const dP: Ref[] = [];
      xs.forEach((f, i) => {
        // Walk the gradient back through i up-samplings.
        const convOut = R.conv2d(f, ps[2 * i], ps[2 * i + 1]);
        const chain = [convOut];
        for (let j = 0; j < i; j++) chain.push(R.upsample2x(chain[j]));
        let gi = R.scale(g, weights[i]);
        for (let j = i - 1; j >= 0; j--) gi = R.upsample2xBackward(chain[j], gi);
        const [df, dw, db] = R.conv2dBackward(f, ps[2 * i], ps[2 * i + 1], {}, gi);
        dIn.push(df);
        dP.push(dw, db);
      });
      return [...dIn, ...dP];
    },
  };
}

test('DeepSupervisionHead: 1x1 convs of three levels, up-sampled and summed', async () => {
  const rng = testRng('deepsupervision');
  const channels = [4, 3, 5];
  const layer = new DeepSupervisionHead(channels, 2, { rng });
  randomize(layer, rng);
  const [h, w] = [12, 8];
  const inputs = channels.map((c, i) => randomRef(rng, [2, c, h >> i, w >> i]));
  await checkLayer({ name: 'DeepSupervisionHead', rng, layer, inputs, call: (l, xs) => l.forward(xs), ...deepSupervisionReference([1, 1, 1]) });
  layer.dispose();
});

test('DeepSupervisionHead.forwardWithSides: the same output, and each level alone at full size', async () => {
  const rng = testRng('deepsupervision-sides');
  const channels = [4, 3, 5];
  const layer = new DeepSupervisionHead(channels, 1, { rng });
  randomize(layer, rng);
  const [h, w] = [12, 8];
  const inputs = channels.map((c, i) => randomRef(rng, [2, c, h >> i, w >> i]));
  // output + 2 side0 + 3 side1 + 4 side2 weighs level i by 1 + (i + 2): a different weight per
  // level, so a side that were another level's map, or not at full size, would fail.
  const sideWeight = (i: number) => i + 2;
  await checkLayer({
    name: 'DeepSupervisionHead.forwardWithSides', rng, layer, inputs,
    call: (l, xs) => {
      const { output, sides } = l.forwardWithSides(xs);
      return sides.reduce((acc, s, i) => add(acc, mul(s, sideWeight(i))), output);
    },
    ...deepSupervisionReference(channels.map((_, i) => 1 + sideWeight(i))),
  });
  layer.dispose();
});

test.run();
