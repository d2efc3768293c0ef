import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { confusion, scores, SegmentationMetrics } from '../src/metrics';
import { scoreSlices } from '../src/evaluate';
import { pooledLoss } from '../src/loss';
import type { SliceDataset } from '../src/data/dataset';
import type { LossSpec } from '../src/loss';

const FTL: LossSpec = { loss: 'ftl', alpha: 0.7, beta: 0.3, gamma: 4 / 3 };

test('confusion counts at the threshold', () => {
  const c = confusion([0.9, 0.5, 0.49, 0.1, 0.7, 0.2], [1, 1, 1, 0, 0, 0]);
  assert.equal(c, { tp: 2, fp: 1, fn: 1, tn: 2 });
  assert.throws(() => confusion([0.1], [0, 1]), /1 predictions against 2/);
});

test('Dice, sensitivity and specificity by hand, and the empty cases', () => {
  const s = scores({ tp: 6, fp: 2, fn: 4, tn: 88 });
  assert.ok(Math.abs(s.dice - 12 / 18) < 1e-12);
  assert.ok(Math.abs(s.sensitivity - 0.6) < 1e-12);
  assert.ok(Math.abs(s.specificity - 88 / 90) < 1e-12);
  const empty = scores({ tp: 0, fp: 0, fn: 0, tn: 10 });
  assert.is(empty.dice, 1);
  assert.ok(Number.isNaN(empty.sensitivity));
  assert.is(empty.specificity, 1);
});

test('pooled over pixels differs from the per-slice mean, which skips undefined slices', () => {
  const m = new SegmentationMetrics();
  m.add([1, 1, 0, 0], [1, 1, 0, 0]); // perfect: Dice 1
  m.add([1, 0, 0, 0], [1, 1, 1, 1]); // tp 1 fn 3: Dice 2/5, sens 1/4, spec NaN
  m.add([0, 0, 0, 0], [0, 0, 0, 0]); // no lesion: Dice 1, sens NaN
  const pooled = m.pooled(); // tp 3 fp 0 fn 3 tn 6
  assert.ok(Math.abs(pooled.dice - 6 / 9) < 1e-12);
  assert.ok(Math.abs(pooled.sensitivity - 0.5) < 1e-12);
  assert.is(pooled.specificity, 1);
  const mean = m.perSliceMean();
  assert.ok(Math.abs(mean.dice - (1 + 0.4 + 1) / 3) < 1e-12);
  assert.ok(Math.abs(mean.sensitivity - (1 + 0.25) / 2) < 1e-12);
  assert.is(mean.specificity, 1);
});

test('pooled soft losses: perfect prediction 0, focal Tversky by hand', () => {
  const p = [new Float32Array([1, 0, 1, 0])];
  const g = [new Uint8Array([1, 0, 1, 0])];
  assert.ok(pooledLoss(p, g, FTL) < 1e-12);
  assert.ok(pooledLoss(p, g, { ...FTL, loss: 'dice' }) < 1e-12);
  // tp 0.5, fn 1.5, fp 0.5: TI = 1.5 / (1.5 + 1.05 + 0.15) with smooth 1.
  const q = [new Float32Array([0.5, 0.5, 0, 0])];
  const h = [new Uint8Array([1, 0, 1, 0])];
  const ti = 1.5 / (0.5 + 0.7 * 1.5 + 0.3 * 0.5 + 1);
  assert.ok(Math.abs(pooledLoss(q, h, FTL) - Math.pow(1 - ti, 0.75)) < 1e-12);
});


test('scoreSlices with a region: predictions outside it count as background', () => {
  const plane = (on: number[]) => Uint8Array.from({ length: 16 }, (_, i) => (on.includes(i) ? 1 : 0));
  const masks = [plane([0, 1]), plane([5])];
  const ds = { images: masks.map(() => new Float32Array(16)), masks, height: 4, width: 4, count: 2, intensity: 'unit', imageSource: 'im', maskSource: 'mask', lesionPixels: [2, 1] } as SliceDataset;
  const probs = [Float32Array.from(plane([0, 1, 15])), Float32Array.from(plane([5, 6]))];
  const plain = scoreSlices(probs, 4, ds, masks, [0, 1]);
  assert.equal(plain.original.perSlice.map((s) => s.predictedPixels), [3, 2]);
  assert.is(plain.region, undefined);
  // The region leaves out pixel 15 (a false positive) of slice 0 and pixel 5 (a lesion) of slice 1.
  const all = Array.from({ length: 16 }, (_, i) => i);
  const region = { source: 'lungs.nii.gz', masks: [plane(all.filter((i) => i !== 15)), plane(all.filter((i) => i !== 5))] };
  const r = scoreSlices(probs, 4, ds, masks, [0, 1], 0.5, region);
  assert.is(r.region, 'lungs.nii.gz');
  for (const res of [r.model, r.original]) {
    assert.equal(res.perSlice.map((s) => [s.predictedPixels, s.lesionPixels]), [[2, 2], [1, 1]]);
    assert.is(res.perSlice[0].dice, 1);
    assert.is(res.perSlice[1].dice, 0);
  }
  assert.throws(() => scoreSlices(probs, 4, ds, masks, [0, 1], 0.5, { source: 'short.nii', masks: [region.masks[0]] }), /short\.nii must have 2 slices of 4x4/);
});

test.run();
