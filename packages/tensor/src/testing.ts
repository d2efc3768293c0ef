// Test support shared by the packages' suites: seeded data, GPU-vs-reference checks with
// poisoned outputs, gradients against the reference's backward and finite differences.

import { backward } from './autograd';
import { tensor } from './ops/creation';
import { finiteDifference, relativeError, type Ref } from './reference/core';
import { Rng } from './random';
import { init, runtime } from './runtime';
import { Tensor, scope } from './tensor';

let seedLogged = false;

/** The run's seed: $SEED if set, else fresh; printed once so a failure can be replayed. */
export function testSeed(): number {
  const env = typeof process !== 'undefined' ? process.env.SEED : undefined;
  const seed = env !== undefined ? Number(env) >>> 0 : (globalThis as { __testSeed?: number }).__testSeed ?? Math.floor(Math.random() * 2 ** 31);
  (globalThis as { __testSeed?: number }).__testSeed = seed;
  if (!seedLogged) {
    console.log(`  seed ${seed} (replay with SEED=${seed})`);
    seedLogged = true;
  }
  return seed;
}

/** A generator for one test, derived from the run's seed and the test's name. */
export function testRng(name: string): Rng {
  let h = testSeed();
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return new Rng(h);
}

/** Whether to run every case of the sampled sweeps: `FULL=1` (see sampleCases). */
export function fullSweeps(): boolean {
  const env = typeof process !== 'undefined' ? process.env.FULL : undefined;
  return env !== undefined && env !== '' && env !== '0';
}

/**
 * The cases of a sweep to run now. On lavapipe every new kernel costs seconds to compile on a
 * fresh machine, so a sweep runs the cases `always` picks (those that alone reach some code path
 * of the kernels) and `sampled` more of the others, drawn from the run's seed (SEED=n replays the
 * same draw); `FULL=1` runs them all. Keeps the cases' order and prints what it picked.
 */
export function sampleCases<C>(name: string, cases: readonly C[], o: { always: (c: C) => boolean; sampled: number }): C[] {
  const fixed = cases.filter(o.always);
  const others = cases.filter((c) => !o.always(c));
  let picked: C[];
  if (fullSweeps() || o.sampled >= others.length) {
    picked = [...cases];
  } else {
    const rng = testRng(`${name} sample`);
    const order = others.map((c) => ({ c, key: rng.uniform() })).sort((a, b) => a.key - b.key);
    const drawn = new Set(order.slice(0, o.sampled).map((e) => e.c));
    picked = cases.filter((c) => o.always(c) || drawn.has(c));
  }
  const all = picked.length === cases.length;
  const drawn = picked.filter((c) => !o.always(c)).map((c) => `#${cases.indexOf(c) + 1}`);
  console.log(`  ${name}: ${all ? `all ${cases.length}` : `${picked.length} of ${cases.length}`} cases${all ? '' : ` (${fixed.length} always; drawn by the seed: ${drawn.join(', ')}; FULL=1 runs all)`}`);
  return picked;
}

/**
 * Initialise WebGPU and switch on output poisoning (every new buffer starts as NaN). When WebGPU
 * cannot start, print why and exit with code 1: uvu swallows an exception thrown by a `before`
 * hook and would exit 0 with no test run and no message.
 */
export async function setupGPU(): Promise<void> {
  try {
    await init();
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    console.error(`setupGPU: WebGPU could not start, so this suite cannot run:\n${why}`);
    if (typeof process !== 'undefined' && typeof process.exit === 'function') process.exit(1);
    throw e;
  }
  runtime().poisonNewBuffers = true;
}

export interface RandomOptions {
  low?: number;
  high?: number;
  /** Keep values at least this far from these points (kinks of relu, clamp bounds). */
  avoid?: number[];
  margin?: number;
}

/** Random float32-representable values, as a reference tensor. */
export function randomRef(rng: Rng, shape: number[], o: RandomOptions = {}): Ref {
  const n = shape.reduce((a, b) => a * b, 1);
  const lo = o.low ?? -1;
  const hi = o.high ?? 1;
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let v: number;
    do v = Math.fround(rng.range(lo, hi));
    while ((o.avoid ?? []).some((p) => Math.abs(v - p) < (o.margin ?? 1e-2)));
    data[i] = v;
  }
  return { shape: [...shape], data };
}

export function toTensor(r: Ref, requiresGrad = false): Tensor {
  return tensor(r.data, r.shape, { requiresGrad });
}

export async function toRef(t: Tensor): Promise<Ref> {
  return { shape: [...t.shape], data: Float64Array.from(await t.data()) };
}

/** Throw unless `actual` matches `expected` to relative error `tol` (NaN always fails); `scale` as in relativeError. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string, scale?: number): void {
  const err = relativeError(actual, expected, scale);
  if (!(err <= tol)) {
    let worst = 0;
    let at = 0;
    for (let i = 0; i < expected.length; i++) {
      const e = Math.abs(actual[i] - expected[i]);
      if (!(e <= worst)) {
        worst = Number.isNaN(e) ? Infinity : e;
        at = i;
      }
    }
    throw new Error(`${what}: relative error ${err.toExponential(3)} > ${tol} (length ${actual.length} vs ${expected.length}; worst at [${at}]: got ${actual[at]}, expected ${expected[at]})`);
  }
}

export interface OpCheck {
  name: string;
  inputs: Ref[];
  /** Which inputs get gradients (default: all). */
  grad?: boolean[];
  gpu: (xs: Tensor[]) => Tensor;
  ref: (xs: Ref[]) => Ref;
  /** The reference's vector-Jacobian product: dL/dx for every input, given dL/dy = g. */
  refBackward?: (xs: Ref[], g: Ref) => Ref[];
  forwardTol?: number;
  /** What forward errors are measured against (default: the reference output's largest magnitude). */
  forwardScale?: number;
  gradTol?: number;
  /** Finite-difference step (float64). */
  h?: number;
  /** Elements per input checked by finite differences (default 48; smaller inputs: all). */
  fdSamples?: number;
  rng: Rng;
}

/**
 * Forward output against the reference; then, with a random upstream gradient, GPU gradients
 * against the reference's backward, and the reference's backward against finite differences.
 */
export async function checkOp(c: OpCheck): Promise<void> {
  await scope(async () => {
    const wantGrad = c.grad ?? c.inputs.map(() => true);
    const xs = c.inputs.map((r, i) => toTensor(r, Boolean(c.refBackward) && wantGrad[i]));
    const y = c.gpu(xs);
    const expected = c.ref(c.inputs);
    if (y.shape.join() !== expected.shape.join()) throw new Error(`${c.name}: shape [${y.shape}], reference [${expected.shape}]`);
    expectClose(await y.data(), expected.data, c.forwardTol ?? 1e-5, `${c.name} forward`, c.forwardScale);
    if (!c.refBackward) return;
    const g = randomRef(c.rng, expected.shape);
    backward(y, { grad: toTensor(g) });
    const refGrads = c.refBackward(c.inputs, g);
    const scales = typicalGradientScales(c, g, refGrads);
    const tol = c.gradTol ?? 1e-3;
    for (let i = 0; i < xs.length; i++) {
      if (!wantGrad[i]) continue;
      const gpuGrad = xs[i].grad;
      if (!gpuGrad) throw new Error(`${c.name}: no gradient reached input ${i}`);
      const gpuData = await gpuGrad.data();
      expectClose(gpuData, refGrads[i].data, tol, `${c.name} grad[${i}] vs reference backward`, scales[i]);
      // Finite differences cost two forward passes per element: check a random sample of them.
      const n = c.inputs[i].data.length;
      const samples = n <= (c.fdSamples ?? 48) ? Array.from({ length: n }, (_, k) => k) : Array.from({ length: c.fdSamples ?? 48 }, () => c.rng.int(n));
      const f = (xi: Ref) => c.ref(c.inputs.map((r, k) => (k === i ? xi : r)));
      const { smooth, fd } = differencesAwayFromKinks(f, c.inputs[i], g, c.h ?? 1e-6, samples, refGrads[i], tol * scales[i], c.name);
      expectClose(smooth.map((k) => refGrads[i].data[k]), fd, tol, `${c.name} reference grad[${i}] vs finite differences`, scales[i]);
      expectClose(smooth.map((k) => gpuData[k]), fd, tol, `${c.name} grad[${i}] vs finite differences`, scales[i]);
      gpuGrad.dispose();
      xs[i].grad = null;
    }
  });
}

/**
 * The scale each input's gradient errors are measured against: the larger of its largest entry
 * and the largest per-entry RMS over this and three more random upstream gradients of the same
 * norm (float64, on the CPU). An entry that is one long sum (a bias, a broadcast operand, a norm's
 * shift) can cancel to near zero for one upstream gradient while its float32 rounding stays at the
 * size of its terms. The same norm keeps a small upstream gradient (a loss's one number) from
 * borrowing a larger scale.
 */
function typicalGradientScales(c: OpCheck, g: Ref, refGrads: Ref[]): number[] {
  const more = 3;
  const norm = (d: ArrayLike<number>) => Math.sqrt(Array.from(d).reduce((s, v) => s + v * v, 0));
  const sumSquares = refGrads.map((r) => Float64Array.from(r.data, (v) => v * v));
  for (let k = 0; k < more; k++) {
    const other = randomRef(c.rng, g.shape);
    const toNorm = norm(g.data) / Math.max(norm(other.data), 1e-30);
    other.data.forEach((v, j) => (other.data[j] = v * toNorm));
    c.refBackward!(c.inputs, other).forEach((r, i) => r.data.forEach((v, j) => (sumSquares[i][j] += v * v)));
  }
  const largest = (d: ArrayLike<number>) => {
    let m = 0;
    for (let j = 0; j < d.length; j++) if (Number.isFinite(d[j])) m = Math.max(m, Math.abs(d[j]));
    return m;
  };
  return refGrads.map((r, i) => Math.max(largest(r.data), Math.sqrt(largest(sumSquares[i]) / (more + 1)), 1e-6));
}

/**
 * Central differences at the samples where they are valid. Where a step of ±h crosses a kink (a
 * ReLU input or clamp bound within h), the difference is wrong whatever the gradient. Samples
 * where it disagrees with the reference's gradient are retried with a step 8x smaller: across a
 * kink the two differences disagree and the sample is left out; on a smooth stretch they agree,
 * whatever the gradient, and the sample stays to be checked.
 */
function differencesAwayFromKinks(f: (x: Ref) => Ref, x: Ref, g: Ref, h: number, samples: number[], refGrad: Ref, allowed: number, name: string): { smooth: number[]; fd: number[] } {
  const fd = finiteDifference(f, x, g, h, samples);
  const suspects = samples.flatMap((e, k) => (Math.abs(fd[k] - refGrad.data[e]) > allowed ? [k] : []));
  const finer = suspects.length ? finiteDifference(f, x, g, h / 8, suspects.map((k) => samples[k])) : [];
  const atKink = new Set(suspects.filter((k, s) => Math.abs(finer[s] - fd[k]) > allowed / 2));
  if (atKink.size > samples.length / 4) throw new Error(`${name}: ${atKink.size} of ${samples.length} finite-difference samples sit at kinks; draw inputs away from them`);
  const kept = samples.flatMap((_, k) => (atKink.has(k) ? [] : [k]));
  return { smooth: kept.map((k) => samples[k]), fd: kept.map((k) => fd[k]) };
}

/** Shapes chosen to be no multiple of any workgroup or tile size. */
export const ODD_SHAPES: number[][] = [[1], [7], [3, 5], [2, 3, 17, 23], [1, 5, 9, 13]];
