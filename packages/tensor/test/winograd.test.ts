// Winograd F(2x2, 3x3) and F(4x4, 3x3) conv kernels (packages/tensor/src/ops/conv2d/winograd.ts),
// called directly so that they are tested whether or not the tuning table selects them: their
// matrices against direct correlation in float64 (and the weight gradient's dual form); forward,
// input gradient and weight gradient against the float64 reference on random data, outputs poisoned (every new buffer starts as NaN), planes that are no
// multiple of the 2x2 or 4x4 tile nor of the GEMM's 16- or 32-tile block, dilations 1, 2, 4, with
// and without the shared-load GEMM and the vec4 transforms, and chunked over images; conv2d with
// each forced, through checkOp (reference backward and finite differences).
//
// Tolerance: the error is measured as the worst absolute difference over the reference's largest
// magnitude (as checkOp does).
// F(2x2, 3x3)'s transforms have constants 1 and 1/2 only, so its float32 rounding stays at the
// direct kernel's: on these cases (printed by the first test) Winograd 1.0-3.9e-7, the direct
// kernel 0.9-6.4e-7 (it sums 9x more products per output). TOL, 2e-6, leaves 5x head-room over the
// worst Winograd error measured and is still far below what a wrong tap or a missed tile gives
// (order 1e-1).
// F(4x4, 3x3)'s transforms have constants up to 8 (and 1/24): B^T d B sums input values scaled by
// up to 25 and A^T M A adds terms scaled by up to 64, so cancellation costs more bits. On these
// cases (printed by the F(4x4) test, three seeds) 2e-7-7.5e-6, forward 1-20x the direct kernel's.
// On the network's activations (scratch measurement, 2026-12-07): the checkpoint of epoch 5 of the
// training run /work/runs/winograd-fold1 (cpu preset: filters 32-512, 128x128, val Dice 0.44) ran
// slice 7 of tr_im_lungwindow.nii.gz (the slice with the most lesion voxels), and each of its 27
// 3x3 convolutions' real input and weights went through F(2x2), F(4x4) and the direct kernel
// against the float64 reference (forward pass), relative error per layer:
//   F(2x2) 1.7e-7-1.3e-6, F(4x4) 7.8e-7-1.2e-5, direct 1.4e-7-2.3e-6; F(4x4)'s worst on
//   decoder.3.fuse.conv (512 -> 256 channels, 16x16) and encoder.4.resDil.conv1 (512, 8x8, d2): the
//   error grows with the channels summed. RMS error over the reference's RMS: F(4x4) 1.9e-7-3.5e-6.
//   The same network with its initial weights, and on uniform noise: F(4x4) at most 1.5e-5.
//   End to end, the probabilities on that slice differ from the direct kernels' by at most 8.3e-6
//   with F(2x2) everywhere, 2.5e-5 with F(4x4) everywhere.
// The weight gradient sums over all tiles of a batch: on larger shapes with a cancelling sum (input
// of mean 3, output gradient of zero mean per image and channel, as after instance norm; scratch
// measurement, 2026-12-07), relative error F(2x2) / F(4x4) / direct: 4x64x32x32 d1 1.5e-6 / 2.7e-6 /
// 1.9e-6, 4x32x128x128 d2 4.8e-6 / 6.1e-6 / 5.8e-6, 4x128x16x16 d4 6.1e-7 / 1.5e-6 / 6.6e-7: at
// the direct kernel's level. On random cases below: F(2x2) 1.7-2.6e-7, F(4x4) 0.8-2.4e-6.
// TOL_F4, 2e-5, bounds F(4x4) on these small cases (up to 64 channels) by what the trained
// network's own 512-channel layers reach (1.2e-5): 1.7x over that and 2.7x over the worst measured
// here, and 4 orders of magnitude below a wrong tap or tile.

import './quick-compile';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as R from '../src/reference/index';
import { relativeError } from '../src/reference/core';
import { checkOp, randomRef, sampleCases, setupGPU, testRng, toTensor } from '../src/testing';
import * as T from '../src/index';
import { scope } from '../src/tensor';
import { geometry } from '../src/ops/conv2d/geometry';
import {
  WINOGRAD_F2, WINOGRAD_F4, setWinogradChunkLimit, winogradForward, winogradInputGrad, winogradInputGradApplies, winogradWeightGrad, type WinogradTransforms,
} from '../src/ops/conv2d/winograd';
import { WINOGRAD_MIN_CHANNELS, sharedLoadsPossible, useWinograd, winogradTable } from '../src/ops/conv2d/tuning';

test.before(setupGPU);
test.after(() => {
  setWinogradChunkLimit(null);
  T.setConv2dAlgorithm('auto');
  T.setConv2dVariant('auto');
});

const TOL = 2e-6;
const TOL_F4 = 2e-5;

interface Case {
  x: number[];
  cout: number;
  padding: number;
  dilation: number;
  bias?: boolean;
}

// Channels of 32, 60 and 64 take the shared-load GEMM (>= ~24 output channels on lavapipe); the
// others the unshared one. For the input gradient the roles swap (its outputs are Cin). Planes
// whose rows are whole vec4s with tiles in groups of 4 take the vec4 transforms (input and output
// separately), channel counts that are multiples of 4 the vec4 weight transform; the rest the
// scalar kernels.
const CASES: Case[] = [
  { x: [2, 5, 13, 11], cout: 7, padding: 1, dilation: 1 },
  { x: [1, 3, 17, 23], cout: 5, padding: 0, dilation: 1, bias: false },
  { x: [2, 6, 19, 14], cout: 9, padding: 2, dilation: 2 },
  { x: [1, 4, 21, 10], cout: 6, padding: 4, dilation: 4 },
  { x: [1, 3, 9, 9], cout: 5, padding: 3, dilation: 2 },
  { x: [2, 20, 9, 13], cout: 64, padding: 1, dilation: 1 },
  { x: [1, 36, 11, 18], cout: 60, padding: 2, dilation: 2 },
  { x: [2, 64, 8, 8], cout: 33, padding: 4, dilation: 4 },
  // vec4 transforms
  { x: [2, 8, 12, 16], cout: 12, padding: 1, dilation: 1 },
  { x: [1, 36, 11, 16], cout: 60, padding: 2, dilation: 2 },
  { x: [2, 32, 20, 20], cout: 32, padding: 4, dilation: 4 },
  { x: [1, 4, 10, 18], cout: 8, padding: 0, dilation: 1, bias: false },
  { x: [1, 4, 12, 14], cout: 4, padding: 3, dilation: 2 },
];

// More F(4x4) cases: planes 12 to 32 wide whose 4x4 tiles come in groups of 4 (the vec4 transforms)
// or not, and a plane smaller than one tile.
const CASES_F4: Case[] = [
  { x: [1, 8, 28, 32], cout: 8, padding: 1, dilation: 1 },
  { x: [2, 12, 24, 24], cout: 16, padding: 4, dilation: 4 },
  { x: [1, 16, 30, 28], cout: 20, padding: 2, dilation: 2, bias: false },
  { x: [1, 5, 3, 2], cout: 3, padding: 1, dilation: 1 },
];

const label = (c: Case) => `x[${c.x}] -> ${c.cout}, p${c.padding} d${c.dilation}${c.bias === false ? ' no bias' : ''}`;

/** Forward and input-gradient errors of one case against the float64 reference: Winograd F(m x m)'s and the direct kernel's. */
async function errors(c: Case, seedName: string, m: 2 | 4 = 2) {
  const rng = testRng(seedName);
  const opts = { padding: c.padding, dilation: c.dilation };
  const x = randomRef(rng, c.x);
  const w = randomRef(rng, [c.cout, c.x[1], 3, 3], { low: -0.5, high: 0.5 });
  const b = c.bias === false ? null : randomRef(rng, [c.cout]);
  const yRef = R.conv2d(x, w, b, opts);
  const gy = randomRef(rng, yRef.shape);
  const [dxRef, dwRef] = R.conv2dBackward(x, w, b, opts, gy);
  return scope(async () => {
    const xt = toTensor(x);
    const wt = toTensor(w);
    const bt = b ? toTensor(b) : null;
    const g = geometry(xt, wt, bt, opts);
    const y = winogradForward(xt, wt, bt, g, m);
    assert.ok(y, `${label(c)}: Winograd applies`);
    assert.equal(y!.shape, yRef.shape);
    // The direct kernel's error beside it (printed, not checked), for F(2x2) only, by the GPU
    // variant's small kernels: the fallback variant's (the default on lavapipe) would compile
    // large kernels no other test needs (lavapipe: 5-20 s each on an empty cache); both variants'
    // direct kernels are checked in conv2d.test.ts.
    let direct: T.Tensor | null = null;
    if (m === 2) {
      T.setConv2dAlgorithm('direct');
      T.setConv2dVariant('gpu');
      try {
        direct = T.conv2d(xt, wt, bt, opts);
      } finally {
        T.setConv2dAlgorithm('auto');
        T.setConv2dVariant('auto');
      }
    }
    const out = {
      forward: relativeError(await y!.data(), yRef.data),
      directForward: direct ? relativeError(await direct.data(), yRef.data) : NaN,
      inputGrad: NaN,
      weightGrad: NaN,
    };
    const dw = winogradWeightGrad(xt, toTensor(gy), g, m);
    assert.ok(dw, `${label(c)}: Winograd weight gradient applies`);
    assert.equal(dw!.shape, w.shape);
    out.weightGrad = relativeError(await dw!.data(), dwRef.data);
    if (winogradInputGradApplies(g)) {
      const dx = winogradInputGrad(toTensor(gy), wt, g, m);
      assert.ok(dx, `${label(c)}: Winograd input gradient applies`);
      assert.equal(dx!.shape, c.x);
      out.inputGrad = relativeError(await dx!.data(), dxRef.data);
    }
    return out;
  });
}

/** Cases that reach every F(2x2) path: scalar and vec4 transforms, each with the unshared and the shared GEMM. */
const PATH_CASES = [CASES[0], CASES[5], CASES[8], CASES[9]];

test('forward and input gradient match the float64 reference (dilations 1, 2, 4; planes not multiples of the tiles)', async () => {
  // On an empty shader cache each case compiles kernels for a few seconds: every run takes the
  // cases of every path and three drawn by the seed (FULL=1 runs all).
  for (const c of sampleCases('F(2x2) cases', CASES, { always: (c) => PATH_CASES.includes(c), sampled: 3 })) {
    const e = await errors(c, `winograd ${label(c)}`);
    console.log(`  ${label(c)}: forward ${e.forward.toExponential(2)} (direct ${e.directForward.toExponential(2)}), input gradient ${e.inputGrad.toExponential(2)}, weight gradient ${e.weightGrad.toExponential(2)}`);
    assert.ok(e.forward <= TOL, `${label(c)} forward: relative error ${e.forward} > ${TOL}`);
    assert.ok(e.inputGrad <= TOL, `${label(c)} input gradient: relative error ${e.inputGrad} > ${TOL}`);
    assert.ok(e.weightGrad <= TOL, `${label(c)} weight gradient: relative error ${e.weightGrad} > ${TOL}`);
  }
});

/** The 1-D taps' gradient by the dual algorithm in float64: G^T [(A dy) . (B^T d)] for m output gradients dy. */
function winogradWeightGrad1d(tf: WinogradTransforms, d: number[], dy: number[]): number[] {
  const a = tf.m + 2;
  const ady = Array.from({ length: a }, (_, j) => tf.AT.reduce((s, row, i) => s + row[j] * dy[i], 0));
  const bd = tf.BT.map((row) => row.reduce((s, c, k) => s + c * d[k], 0));
  return [0, 1, 2].map((k) => tf.G.reduce((s, row, j) => s + row[k] * ady[j] * bd[j], 0));
}

/** 1-D F(m, 3) in float64 by the matrices: A^T [(G g) . (B^T d)] for m + 2 inputs d and 3 taps g. */
function winograd1d(tf: WinogradTransforms, d: number[], g: number[]): number[] {
  const mul = (M: number[][], v: number[]) => M.map((row) => row.reduce((s, c, k) => s + c * v[k], 0));
  const gg = mul(tf.G, g);
  const bd = mul(tf.BT, d);
  return mul(tf.AT, gg.map((x, k) => x * bd[k]));
}

test('the transform matrices compute 1-D F(2, 3) and F(4, 3), and the taps\' gradient by the dual form: direct correlation in float64 on random inputs', () => {
  const rng = testRng('winograd 1-D matrices');
  for (const tf of [WINOGRAD_F2, WINOGRAD_F4]) {
    const a = tf.m + 2;
    assert.equal([tf.BT.length, tf.BT[0].length, tf.G.length, tf.G[0].length, tf.AT.length, tf.AT[0].length], [a, a, a, 3, tf.m, a]);
    for (let trial = 0; trial < 100; trial++) {
      const d = Array.from({ length: a }, () => rng.range(-1, 1));
      const g = Array.from({ length: 3 }, () => rng.range(-1, 1));
      const y = winograd1d(tf, d, g);
      for (let i = 0; i < tf.m; i++) {
        const direct = g[0] * d[i] + g[1] * d[i + 1] + g[2] * d[i + 2];
        assert.ok(Math.abs(y[i] - direct) <= 1e-14, `F(${tf.m}, 3) output ${i}: ${y[i]} against ${direct}`);
      }
      // The weight gradient's dual form: G^T [(A dy) . (B^T d)] = sum_i dy_i d_(i+k).
      const dy = Array.from({ length: tf.m }, () => rng.range(-1, 1));
      const dg = winogradWeightGrad1d(tf, d, dy);
      for (let k = 0; k < 3; k++) {
        const direct = dy.reduce((s, v, i) => s + v * d[i + k], 0);
        assert.ok(Math.abs(dg[k] - direct) <= 1e-14, `F(${tf.m}, 3) weight gradient tap ${k}: ${dg[k]} against ${direct}`);
      }
    }
  }
});

test('F(4x4, 3x3): forward and input gradient match the float64 reference (dilations 1, 2, 4; planes not multiples of the tiles)', async () => {
  // Compiling F(4x4)'s kernels takes lavapipe minutes on an empty shader cache: every run takes
  // the cases made for F(4x4)'s paths and those of every F(2x2) path, plus two of the others
  // drawn by the seed (FULL=1 runs all).
  const all = [...CASES, ...CASES_F4];
  for (const c of sampleCases('F(4x4) cases', all, { always: (c) => CASES_F4.includes(c) || PATH_CASES.includes(c), sampled: 2 })) {
    const e = await errors(c, `winograd ${label(c)}`, 4);
    console.log(`  F(4x4) ${label(c)}: forward ${e.forward.toExponential(2)}, input gradient ${e.inputGrad.toExponential(2)}, weight gradient ${e.weightGrad.toExponential(2)}`);
    assert.ok(e.forward <= TOL_F4, `${label(c)} forward: relative error ${e.forward} > ${TOL_F4}`);
    assert.ok(e.inputGrad <= TOL_F4, `${label(c)} input gradient: relative error ${e.inputGrad} > ${TOL_F4}`);
    assert.ok(e.weightGrad <= TOL_F4, `${label(c)} weight gradient: relative error ${e.weightGrad} > ${TOL_F4}`);
  }
});

test('batches whose transformed planes pass the binding limit run in chunks of images', async () => {
  // Bytes of V and M per image (tiles rounded up to the GEMM block): 16 floats per channel and tile,
  // 64 x 64 x 64 = 256 KiB for the first case, 64 x 8 x 48 = 24 KiB for the second: 2 images a chunk.
  try {
    const cases = [
      { c: { x: [5, 20, 13, 11], cout: 64, padding: 1, dilation: 1 }, limit: 520 * 1024 },
      { c: { x: [3, 7, 12, 10], cout: 6, padding: 2, dilation: 2 }, limit: 50 * 1024 },
    ];
    for (const { c, limit } of cases) {
      setWinogradChunkLimit(limit);
      const e = await errors(c, `winograd chunks ${label(c)}`);
      assert.ok(e.forward <= TOL, `${label(c)} forward in chunks: relative error ${e.forward}`);
      assert.ok(e.inputGrad <= TOL, `${label(c)} input gradient in chunks: relative error ${e.inputGrad}`);
      assert.ok(e.weightGrad <= TOL, `${label(c)} weight gradient in chunks: relative error ${e.weightGrad}`);
    }
    // F(4x4): 36 floats per channel and tile. Forward passes: 4 x 36 x 64 x 32 = 288 KiB per image
    // for the first case (12 tiles rounded up to the GEMM's 32), 4 x 36 x 8 x 16 = 18 KiB for the
    // second (16 tiles): 2 images a chunk, the last chunk partial.
    for (const { c, limit } of [
      { c: { x: [5, 20, 13, 11], cout: 64, padding: 1, dilation: 1 }, limit: 600 * 1024 },
      { c: { x: [3, 7, 12, 10], cout: 6, padding: 2, dilation: 2 }, limit: 40 * 1024 },
    ]) {
      setWinogradChunkLimit(limit);
      const e = await errors(c, `winograd chunks ${label(c)}`, 4);
      assert.ok(e.forward <= TOL_F4, `F(4x4) ${label(c)} forward in chunks: relative error ${e.forward}`);
      assert.ok(e.inputGrad <= TOL_F4, `F(4x4) ${label(c)} input gradient in chunks: relative error ${e.inputGrad}`);
      assert.ok(e.weightGrad <= TOL_F4, `F(4x4) ${label(c)} weight gradient in chunks: relative error ${e.weightGrad}`);
    }
    // Not even one image fits: no Winograd (the caller falls back to the direct kernel).
    setWinogradChunkLimit(1024);
    await scope(async () => {
      const x = toTensor(randomRef(testRng('winograd too large'), [1, 4, 16, 16]));
      const w = toTensor(randomRef(testRng('winograd too large w'), [4, 4, 3, 3]));
      assert.is(winogradForward(x, w, null, geometry(x, w, null, { padding: 1 })), null);
      assert.is(winogradWeightGrad(x, x, geometry(x, w, null, { padding: 1 })), null);
    });
  } finally {
    setWinogradChunkLimit(null);
  }
});

test('applies to 3x3 stride 1 only; the input gradient for padding up to 2 x dilation', async () => {
  await scope(async () => {
    const x = toTensor(randomRef(testRng('winograd applies'), [1, 2, 9, 9]));
    const w3 = toTensor(randomRef(testRng('winograd applies w3'), [2, 2, 3, 3]));
    const w1 = toTensor(randomRef(testRng('winograd applies w1'), [2, 2, 1, 1]));
    assert.is(winogradForward(x, w3, null, geometry(x, w3, null, { stride: 2, padding: 1 })), null);
    assert.is(winogradForward(x, w1, null, geometry(x, w1, null, {})), null);
    assert.not.ok(winogradInputGradApplies(geometry(x, w3, null, { padding: 3, dilation: 1 })));
    assert.ok(winogradInputGradApplies(geometry(x, w3, null, { padding: 2, dilation: 1 })));
  });
});

for (const algorithm of ['winograd', 'winograd4'] as const) test(`conv2d with Winograd forced ('${algorithm}'): forward, gradients against the reference backward and finite differences`, async () => {
  T.setConv2dAlgorithm(algorithm);
  try {
    for (const c of [
      { x: [2, 6, 10, 12], cout: 8, padding: 1, dilation: 1 },
      { x: [1, 5, 11, 9], cout: 7, padding: 2, dilation: 2 },
      { x: [1, 4, 13, 12], cout: 5, padding: 4, dilation: 4 },
    ]) {
      const rng = testRng(`winograd conv2d ${label(c)}`);
      const opts = { padding: c.padding, dilation: c.dilation };
      await checkOp({
        name: `conv2d (${algorithm}) ${label(c)}`,
        rng,
        forwardTol: algorithm === 'winograd4' ? TOL_F4 : undefined,
        inputs: [randomRef(rng, c.x), randomRef(rng, [c.cout, c.x[1], 3, 3], { low: -0.5, high: 0.5 }), randomRef(rng, [c.cout])],
        fdSamples: 16,
        gpu: (t) => T.conv2d(t[0], t[1], t[2], opts),
        ref: (r) => R.conv2d(r[0], r[1], r[2], opts),
        refBackward: (r, g) => R.conv2dBackward(r[0], r[1], r[2], opts, g),
      });
    }
  } finally {
    T.setConv2dAlgorithm('auto');
  }
});

for (const c of [
  { x: [1, 128, 6, 7], cout: 128, padding: 2, dilation: 2 },
  { x: [1, 64, 16, 17], cout: 64, padding: 1, dilation: 1 },
]) test(`conv2d picks Winograd by the tuning table (${label(c)}) and matches the reference, gradients included`, async () => {
  const rng = testRng(`winograd auto ${label(c)}`);
  const opts = { padding: c.padding, dilation: c.dilation };
  await checkOp({
    name: `conv2d (auto) ${label(c)}`,
    rng,
    // F(4x4) where the table picks it for the forward pass (the direct kernels' 1e-5 otherwise).
    forwardTol: useWinograd({ kh: 3, kw: 3, s: 1, d: c.dilation, p: c.padding, ci: c.x[1], co: c.cout, h: c.x[2], w: c.x[3] }, 'forward') === 4 ? TOL_F4 : undefined,
    inputs: [randomRef(rng, c.x), randomRef(rng, [c.cout, c.x[1], 3, 3], { low: -0.1, high: 0.1 }), randomRef(rng, [c.cout])],
    fdSamples: 8,
    gpu: (t) => T.conv2d(t[0], t[1], t[2], opts),
    ref: (r) => R.conv2d(r[0], r[1], r[2], opts),
    refBackward: (r, g) => R.conv2dBackward(r[0], r[1], r[2], opts, g),
  });
  // Which kernels ran: Winograd's exactly where the table says so (on lavapipe with subgroups of 8: yes).
  await scope(async () => {
    const x = toTensor(randomRef(rng, c.x));
    const wRef = randomRef(rng, [c.cout, c.x[1], 3, 3]);
    const w = toTensor(wRef);
    const rt = T.runtime();
    await rt.startProfile();
    T.conv2d(x, w, null, opts);
    const kernels = (await rt.stopProfile()).dispatches.map((d) => d.kernel);
    const chosen = useWinograd(geometry(x, w, null, opts), 'forward');
    assert.is(kernels.includes('conv2d.winograd.gemm'), chosen === 2, `Winograd F(2x2) ran: ${kernels.join(', ')}`);
    assert.is(kernels.includes('conv2d.winograd.f4x4.gemm'), chosen === 4, `Winograd F(4x4) ran: ${kernels.join(', ')}`);
    console.log(`  conv2d ${label(c)} ran: ${kernels.join(', ')}`);
    // The weight gradient alone (input without a gradient).
    const wg = toTensor(wRef, true);
    await rt.startProfile();
    T.backward(T.sum(T.conv2d(x, wg, null, opts)));
    const backwardKernels = (await rt.stopProfile()).dispatches.map((d) => d.kernel);
    const chosenDw = useWinograd(geometry(x, w, null, opts), 'weightGrad');
    assert.is(backwardKernels.includes('conv2d.winograd.weightGrad.gemm'), chosenDw === 2, `Winograd F(2x2) weight gradient ran: ${backwardKernels.join(', ')}`);
    assert.is(backwardKernels.includes('conv2d.winograd.f4x4.weightGrad.gemm'), chosenDw === 4, `Winograd F(4x4) weight gradient ran: ${backwardKernels.join(', ')}`);
  });
});

test('the tuning table, fallback variant, 3x3 stride 1, dilation 1, 2, 4, padding = dilation: with shared loads F(4x4) from 64 channels on planes from 16x16 (the weight gradient from 32 channels), F(2x2) on smaller planes from 128 channels (64 for the forward at dilation 1); without, F(4x4) but at dilation 4 below 64x64', () => {
  // An 8x8 plane, then larger ones. winogradTable is the table for either kind of adapter.
  const g = { kh: 3, kw: 3, s: 1, d: 1, p: 1, ci: 128, co: 128, h: 8, w: 8 };
  const table = (shape: typeof g, pass: 'forward' | 'inputGrad' | 'weightGrad', shared = true) => winogradTable(shape, pass, shared);
  for (const d of [1, 2, 4]) {
    for (const pass of ['forward', 'inputGrad', 'weightGrad'] as const) {
      assert.is(table({ ...g, d, p: d }, pass), 2, `d${d} ${pass}, 8x8: F(2x2)`);
      assert.is(table({ ...g, d, p: d, h: 16, w: 16 }, pass), 4, `d${d} ${pass}, 16x16: F(4x4)`);
      assert.is(table({ ...g, d, p: d, ci: 64, co: 64, h: 128, w: 128 }, pass), 4, `d${d} ${pass}, 64 channels, 128x128: F(4x4)`);
      // Without shared loads: F(4x4), but F(2x2) at dilation 4 below 64x64.
      assert.is(table({ ...g, d, p: d }, pass, false), d === 4 ? 2 : 4, `d${d} ${pass}, 8x8, no shared loads`);
      assert.is(table({ ...g, d, p: d, h: 32, w: 32 }, pass, false), d === 4 ? 2 : 4, `d${d} ${pass}, 32x32, no shared loads`);
      assert.is(table({ ...g, d, p: d, ci: 32, co: 32, h: 64, w: 64 }, pass, false), 4, `d${d} ${pass}, 32 channels, 64x64, no shared loads`);
    }
    assert.is(table({ ...g, d, p: d, ci: 32, co: 32, h: 128, w: 128 }, 'weightGrad'), 4, `d${d} weight gradient, 32 channels: F(4x4)`);
  }
  assert.is(table({ ...g, ci: WINOGRAD_MIN_CHANNELS, co: 512 }, 'forward'), 2);
  assert.is(table({ ...g, ci: 64, co: 64 }, 'forward'), 2, '64 channels, 8x8, dilation 1: F(2x2) forward');
  assert.is(table({ ...g, h: 16, w: 15 }, 'forward'), 2, 'a plane narrower than 16: F(2x2)');
  assert.not.ok(table({ ...g, ci: 32, co: 32, h: 128, w: 128 }, 'forward'), '32 channels: direct');
  assert.not.ok(table({ ...g, ci: 32, co: 64, h: 128, w: 128 }, 'inputGrad'), '32 input channels: direct');
  assert.not.ok(table({ ...g, ci: 64, co: 64 }, 'inputGrad'), '64 channels on 8x8, input gradient: direct');
  assert.not.ok(table({ ...g, ci: 64, co: 64, d: 2, p: 2 }, 'forward'), '64 channels on 8x8, dilation 2: direct');
  assert.not.ok(table({ ...g, ci: 64, co: 256 }, 'inputGrad'), 'fewer than 128 input channels on 8x8: direct');
  assert.not.ok(table({ ...g, ci: 64, co: 8, h: 64, w: 64 }, 'weightGrad'), 'weight gradient, 8 output channels (too few lanes to share): direct');
  for (const shared of [true, false]) assert.not.ok(table({ ...g, ci: 1, co: 32, h: 128, w: 128 }, 'weightGrad', shared), 'weight gradient of the 1 -> 32 conv: direct (not measured)');
  for (const shared of [true, false]) {
    assert.not.ok(table({ ...g, s: 2 }, 'forward', shared), 'stride 2');
    assert.not.ok(table({ ...g, kh: 1, kw: 1, p: 0 }, 'weightGrad', shared), '1x1');
    assert.not.ok(table({ ...g, d: 3, p: 3 }, 'forward', shared), 'dilation 3: not measured');
    assert.not.ok(table({ ...g, p: 0 }, 'forward', shared), 'padding other than the dilation: not measured');
  }
  try {
    T.setConv2dVariant('fallback');
    for (const pass of ['forward', 'inputGrad', 'weightGrad'] as const) assert.is(useWinograd(g, pass), winogradTable(g, pass, sharedLoadsPossible()), `useWinograd takes the table (${pass})`);
    T.setConv2dVariant('gpu');
    assert.not.ok(useWinograd(g, 'forward'), 'gpu variant: not measured');
    T.setConv2dAlgorithm('winograd');
    assert.is(useWinograd(g, 'forward'), 2, 'forced');
    assert.is(useWinograd(g, 'weightGrad'), 2, 'forced, weight gradient');
    assert.not.ok(useWinograd({ ...g, s: 2 }, 'forward'), 'forced, but stride 2');
    T.setConv2dAlgorithm('winograd4');
    assert.is(useWinograd(g, 'inputGrad'), 4, 'F(4x4) forced');
    assert.not.ok(useWinograd({ ...g, kh: 1, kw: 1, p: 0 }, 'forward'), 'F(4x4) forced, but 1x1');
    T.setConv2dAlgorithm('direct');
    T.setConv2dVariant('fallback');
    assert.not.ok(useWinograd(g, 'forward'), 'direct forced');
    assert.not.ok(useWinograd(g, 'weightGrad'), 'direct forced, weight gradient');
  } finally {
    T.setConv2dVariant('auto');
    T.setConv2dAlgorithm('auto');
  }
});

test.run();
