// The distance transform and the surface metrics (src/surface-metrics.ts): against SciPy's
// distance_transform_edt and binary_erosion (fixtures/surface-metrics.json, made by
// fixtures/make-surface-fixtures.py), on shapes whose answer is known by hand with anisotropic
// voxels, on empty masks (MONAI's answers), and for time on a 512 x 512 x 100 volume.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import {
  distanceTransform, percentile, scoresOfDistances, squaredDistanceTransform, surfaceDistances, surfaceScores, surfaceVoxels, type SurfaceScores,
} from '../src/surface-metrics';

interface FixtureCase {
  name: string;
  dims: number[];
  spacing: number[];
  tolerance: number;
  pred: string;
  label: string;
  predSurface: string;
  labelSurface: string;
  predToLabel: number[];
  labelToPred: number[];
  hd95: number;
  hd: number;
  asd: number;
  nsd: number;
}
interface FixtureMap {
  name: string;
  dims: number[];
  spacing: number[];
  features: string;
  distances: number[];
}
const fixtures = JSON.parse(readFileSync(new URL('./fixtures/surface-metrics.json', import.meta.url), 'utf8')) as { meta: Record<string, unknown>; cases: FixtureCase[]; maps: FixtureMap[] };
const bits = (s: string) => Uint8Array.from(s, (c) => (c === '1' ? 1 : 0));
/** The fixture's floats are rounded to 12 significant digits: agreement to 1e-9 mm is exact. */
const TOL = 1e-9;

/** A 0/1 grid of `dims` (x fastest) with the voxels where `inside(x, y, z)` is true. */
function grid(dims: number[], inside: (x: number, y: number, z: number) => boolean): Uint8Array {
  const [nx, ny = 1, nz = 1] = dims;
  const out = new Uint8Array(nx * ny * nz);
  for (let z = 0, i = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++, i++) out[i] = inside(x, y, z) ? 1 : 0;
  return out;
}
const count = (a: Uint8Array) => a.reduce((s, v) => s + v, 0);
const close = (a: number, b: number, what: string, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} against ${b}`);

test('distance maps equal SciPy distance_transform_edt(sampling=...) on 2-D and 3-D grids', () => {
  assert.ok(fixtures.maps.length >= 4);
  let worst = 0;
  for (const m of fixtures.maps) {
    const d = distanceTransform(bits(m.features), m.dims, m.spacing);
    assert.is(d.length, m.distances.length, m.name);
    m.distances.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - d[i]))));
  }
  console.log(`  distance maps: worst difference from SciPy ${worst.toExponential(2)} mm over ${fixtures.maps.length} grids (SciPy ${fixtures.meta.scipy})`);
  assert.ok(worst < TOL, `worst ${worst}`);
});

test('surfaces, both directions of distances and HD95 / HD / ASD / NSD equal SciPy\'s on blobs and disjoint masks', () => {
  assert.ok(fixtures.cases.length >= 8);
  let worst = 0;
  for (const c of fixtures.cases) {
    const pred = bits(c.pred);
    const label = bits(c.label);
    assert.equal(Array.from(surfaceVoxels(pred, c.dims)).join(''), c.predSurface, `${c.name}: prediction surface`);
    assert.equal(Array.from(surfaceVoxels(label, c.dims)).join(''), c.labelSurface, `${c.name}: label surface`);
    const d = surfaceDistances(pred, label, c.dims, c.spacing);
    assert.is(d.predToLabel.length, c.predToLabel.length, c.name);
    assert.is(d.labelToPred.length, c.labelToPred.length, c.name);
    c.predToLabel.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - d.predToLabel[i]))));
    c.labelToPred.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - d.labelToPred[i]))));
    const s = surfaceScores(pred, label, c.dims, c.spacing, c.tolerance);
    for (const k of ['hd95', 'hd', 'asd', 'nsd'] as const) worst = Math.max(worst, Math.abs(s[k] - c[k]));
  }
  console.log(`  surface metrics: worst difference from SciPy ${worst.toExponential(2)} over ${fixtures.cases.length} mask pairs`);
  assert.ok(worst < TOL, `worst ${worst}`);
});

test('distance transform by hand: one feature with anisotropic voxels, none at all, 1-D', () => {
  const dims = [7, 5];
  const d = distanceTransform(grid(dims, (x, y) => x === 2 && y === 3), dims, [2, 3]);
  for (let y = 0; y < 5; y++) for (let x = 0; x < 7; x++) close(d[x + 7 * y], Math.hypot(2 * (x - 2), 3 * (y - 3)), `(${x}, ${y})`);
  const d3 = squaredDistanceTransform(grid([4, 3, 5], (x, y, z) => x === 3 && y === 0 && z === 1), [4, 3, 5], [0.5, 1, 2.5]);
  close(d3[0 + 4 * (2 + 3 * 4)], (0.5 * 3) ** 2 + 2 ** 2 + (2.5 * 3) ** 2, 'far corner, squared');
  assert.ok(distanceTransform(new Uint8Array(12), [4, 3], [1, 1]).every((v) => v === Infinity), 'no feature: Infinity everywhere');
  assert.equal(Array.from(distanceTransform(Uint8Array.from([0, 1, 0, 0, 0, 1]), [6], [0.5])), [0.5, 0, 0.5, 1, 0.5, 0]);
  assert.throws(() => distanceTransform(new Uint8Array(5), [2, 3], [1, 1]), /5 voxels for dims 2 x 3/);
  assert.throws(() => distanceTransform(new Uint8Array(6), [2, 3], [1, 0]), /spacing 1, 0 must give one positive size/);
});

test('surface voxels by hand: a ring in 2-D, the shell of a cube in 3-D, the grid border, a one-slice slab', () => {
  const square = grid([5, 5], (x, y) => x >= 1 && x <= 3 && y >= 1 && y <= 3);
  assert.equal(Array.from(surfaceVoxels(square, [5, 5])), Array.from(grid([5, 5], (x, y) => square[x + 5 * y] === 1 && !(x === 2 && y === 2))));
  assert.is(count(surfaceVoxels(grid([5, 5, 5], (x, y, z) => [x, y, z].every((v) => v >= 1 && v <= 3)), [5, 5, 5])), 26);
  // Outside the grid is background: a full grid's border is its surface.
  assert.is(count(surfaceVoxels(new Uint8Array(16).fill(1), [4, 4])), 12);
  // In 3-D a slab one slice thick is all surface (its slices above and below are background).
  assert.is(count(surfaceVoxels(grid([5, 5, 3], (x, y, z) => z === 1 && x >= 1 && x <= 3 && y >= 1 && y <= 3), [5, 5, 3])), 9);
});

test('a square shifted by k pixels: HD95 = HD = k times that axis\'s spacing; NSD by hand', () => {
  const n = 20;
  const k = 3;
  const dims = [40, 36];
  const spacing = [0.7, 1.6];
  const square = (dx: number, dy: number) => grid(dims, (x, y) => x >= 8 + dx && x < 8 + n + dx && y >= 6 + dy && y < 6 + n + dy);
  const alongX = surfaceScores(square(0, 0), square(k, 0), dims, spacing, 0);
  close(alongX.hd95, k * 0.7, 'HD95 along x');
  close(alongX.hd, k * 0.7, 'HD along x');
  assert.ok(alongX.asd > 0 && alongX.asd < k * 0.7, `ASD ${alongX.asd}`);
  // At tolerance 0 only the distances of 0 count: the n - k pixels of the top and bottom rows
  // shared by both rings, of 4n - 4 per ring.
  close(alongX.nsd, (4 * (n - k)) / (2 * (4 * n - 4)), 'NSD at 0 mm');
  assert.is(surfaceScores(square(0, 0), square(k, 0), dims, spacing, k * 0.7).nsd, 1, 'NSD at the shift');
  const alongY = surfaceScores(square(0, 0), square(0, k), dims, spacing, 1);
  close(alongY.hd95, k * 1.6, 'HD95 along y');
  close(alongY.hd, k * 1.6, 'HD along y');
  // 3-D: a cube shifted by 2 slices of 2.5 mm.
  const d3 = [14, 14, 16];
  const cube = (dz: number) => grid(d3, (x, y, z) => x >= 2 && x < 12 && y >= 2 && y < 12 && z >= 3 + dz && z < 13 + dz);
  const s3 = surfaceScores(cube(0), cube(2), d3, [0.8, 0.8, 2.5], 1);
  close(s3.hd95, 5, 'HD95 3-D');
  close(s3.hd, 5, 'HD 3-D');
  // Symmetric: swapping prediction and label changes nothing.
  assert.equal(surfaceScores(cube(2), cube(0), d3, [0.8, 0.8, 2.5], 1), s3);
});

test('two single pixels: every distance is their distance; identical masks: all 0 and NSD 1', () => {
  const dims = [9, 8];
  const s = surfaceScores(grid(dims, (x, y) => x === 1 && y === 1), grid(dims, (x, y) => x === 5 && y === 4), dims, [0.5, 2], 6);
  const d = Math.hypot(4 * 0.5, 3 * 2);
  for (const k of ['hd95', 'hd', 'asd'] as const) close(s[k], d, k);
  assert.is(s.nsd, 0, 'NSD at 6 mm: 6.32 mm apart');
  const blob = grid(dims, (x, y) => (x - 4) ** 2 + (y - 4) ** 2 < 9);
  assert.equal(surfaceScores(blob, blob, dims, [0.5, 2], 0), { hd95: 0, hd: 0, asd: 0, nsd: 1 });
});

test('empty masks give MONAI\'s answers: NaN when both are empty, infinite distances and NSD 0 when one is', () => {
  const dims = [6, 6];
  const empty = new Uint8Array(36);
  const some = grid(dims, (x, y) => x > 1 && x < 4 && y > 1 && y < 5);
  const nan = surfaceScores(empty, empty, dims, [1, 1], 1);
  for (const k of ['hd95', 'hd', 'asd', 'nsd'] as const) assert.ok(Number.isNaN(nan[k]), `${k} of two empty masks`);
  const infinite: SurfaceScores = { hd95: Infinity, hd: Infinity, asd: Infinity, nsd: 0 };
  assert.equal(surfaceScores(empty, some, dims, [1, 1], 1), infinite, 'nothing predicted');
  assert.equal(surfaceScores(some, empty, dims, [1, 1], 1), infinite, 'no lesion in the label');
  // As MONAI's get_surface_distance: one Infinity per surface voxel of the non-empty mask, both ways.
  const d = surfaceDistances(some, empty, dims, [1, 1]);
  assert.is(d.predToLabel.length, count(surfaceVoxels(some, dims)));
  assert.is(d.labelToPred.length, d.predToLabel.length);
  assert.equal(surfaceDistances(empty, empty, dims, [1, 1]), { predToLabel: new Float64Array(0), labelToPred: new Float64Array(0) });
  assert.throws(() => surfaceScores(some, some, dims, [1, 1], -1), /tolerance must be a finite number of mm, at least 0/);
});

test('percentile with linear interpolation, as numpy.percentile', () => {
  close(percentile([4, 1, 3, 2], 95), 3.85, 'p95 of 1..4');
  close(percentile([5], 95), 5, 'one value');
  assert.is(percentile([2, Infinity, Infinity], 95), Infinity);
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.throws(() => percentile([1], 101), /101 is not between 0 and 100/);
  close(scoresOfDistances({ predToLabel: Float64Array.from([0, 1, 2, 3]), labelToPred: Float64Array.from([0, 0, 10]) }, 1).hd95, Math.max(2.85, 9), 'HD95: the larger direction');
});

test('time: the distance transform of a 512 x 512 x 100 volume with CT spacing', () => {
  const dims = [512, 512, 100];
  const features = new Uint8Array(512 * 512 * 100);
  // A lesion-like surface: the shell of an ellipsoid, 2 mm slices, 0.7 mm pixels.
  for (let z = 0, i = 0; z < 100; z++) {
    for (let y = 0; y < 512; y++) {
      for (let x = 0; x < 512; x++, i++) {
        const r = ((x - 200) / 120) ** 2 + ((y - 260) / 90) ** 2 + ((z - 50) / 30) ** 2;
        if (r <= 1 && r > 0.97) features[i] = 1;
      }
    }
  }
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const d = squaredDistanceTransform(features, dims, [0.7, 0.7, 2]);
  const seconds = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu);
  const cpuSeconds = (used.user + used.system) / 1e6;
  console.log(`  distance transform of 512 x 512 x 100 (${(features.length / 1e6).toFixed(1)} M voxels): ${seconds.toFixed(2)} s (${cpuSeconds.toFixed(2)} s of CPU)`);
  // The far corner: its nearest shell voxel lies within the grid's diagonal.
  assert.ok(d[features.length - 1] > 0 && Number.isFinite(d[features.length - 1]));
  assert.is(d[features.indexOf(1)], 0);
  assert.ok(seconds < 30, `${seconds} s`);
});

test.run();
