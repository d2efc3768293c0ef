// Removing small predicted lesions (src/lesions.ts, src/evaluate.ts): the components against
// SciPy's (test/fixtures/components.json, made by make-component-fixtures.py), and scoring with
// the removal at both resolutions. No WebGPU.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { removeSmallComponents } from '../src/lesions';
import { scoreSlices, withoutSmallLesions } from '../src/evaluate';
import type { SliceDataset } from '../src/data/dataset';

interface ComponentCase { width: number; height: number; minPixels: number; components: number; removed: number; mask: string; kept: string }
const fixture = JSON.parse(readFileSync(new URL('./fixtures/components.json', import.meta.url), 'utf8')) as { cases: ComponentCase[] };
const bits = (s: string) => Uint8Array.from(s, (c) => (c === '1' ? 1 : 0));

test('removeSmallComponents: the same masks as scipy.ndimage.label (8-connected) and a size cut', () => {
  assert.ok(fixture.cases.length >= 4);
  for (const c of fixture.cases) {
    const kept = removeSmallComponents(bits(c.mask), c.width, c.height, c.minPixels);
    assert.equal(Array.from(kept), Array.from(bits(c.kept)), `${c.width}x${c.height}, under ${c.minPixels} pixels removed (${c.removed} of ${c.components} components)`);
    assert.ok(c.removed > 0 && c.removed < c.components, 'the case removes some components and keeps some');
  }
  // Nothing is removed at 0 or 1, and the input is left alone.
  const m = bits(fixture.cases[0].mask);
  assert.equal(Array.from(removeSmallComponents(m, fixture.cases[0].width, fixture.cases[0].height, 1)), Array.from(m));
  assert.equal(Array.from(m), Array.from(bits(fixture.cases[0].mask)));
});

test('removeSmallComponents: diagonal neighbours are one lesion, a gap of one pixel makes two', () => {
  // 5 x 3: a diagonal of 3 pixels, and 2 pixels across a one-pixel gap.
  const mask = Uint8Array.from([1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1]);
  assert.equal(Array.from(removeSmallComponents(mask, 5, 3, 3)), [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0]);
});

test('scoreSlices with minLesionPixels: specks go at both resolutions, the report says so', () => {
  // One 8x8 slice, scored at 8x8 (the model's size) and 8x8: a 3x3 lesion and a 1-pixel speck predicted.
  const n = 8;
  const truth = new Uint8Array(n * n);
  const probs = new Float32Array(n * n);
  for (let y = 1; y < 4; y++) for (let x = 1; x < 4; x++) (truth[y * n + x] = 1), (probs[y * n + x] = 0.9);
  probs[6 * n + 6] = 0.8;
  const ds = { count: 1, width: n, height: n, images: [new Float32Array(n * n)], masks: [truth], lesionPixels: [9] } as unknown as SliceDataset;
  const plain = scoreSlices([probs], n, ds, [truth], [0]);
  const cleaned = scoreSlices([probs], n, ds, [truth], [0], 0.5, undefined, 2);
  assert.is(plain.original.perSlice[0].predictedPixels, 10);
  assert.is(cleaned.original.perSlice[0].predictedPixels, 9);
  assert.is(cleaned.model.perSlice[0].predictedPixels, 9);
  assert.is(cleaned.original.pooled.dice, 1);
  assert.is(cleaned.minLesionPixels, 2);
  assert.is(plain.minLesionPixels, undefined);
  // The probabilities of removed pixels become 0, the others stay.
  const p = withoutSmallLesions(probs, n, n, 0.5, 2);
  assert.is(p[6 * n + 6], 0);
  assert.is(p[2 * n + 2], probs[2 * n + 2]);
});

test.run();
