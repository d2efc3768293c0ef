// Seeded train / validation / test split of slice indices, and k-fold cross-validation.
import { Rng } from '@aunet/tensor';

export interface SplitOptions {
  seed: number;
  /** Share of all slices held out for test; default 0.2. Ignored when `fold` is given. */
  testFraction?: number;
  /** Share of the non-test slices held out for validation; default 0.1. */
  valFraction?: number;
  /** Cross-validation: the k-th (1-based) of K near-equal parts is the test set. */
  fold?: { k: number; K: number };
}

export interface Split {
  train: number[];
  val: number[];
  test: number[];
}

/**
 * Splits slices 0..n-1 into three disjoint sorted lists that together hold every slice. One
 * shuffle, seeded, orders the slices: the test set is its last round(n * testFraction), or with
 * a fold its k-th of K contiguous parts (so the K test sets of one seed partition the slices);
 * validation is the last round(valFraction * rest) of the rest (at least 1 when valFraction > 0
 * and 2 or more remain, and never all of it). The same seed gives the same split.
 */
export function splitSlices(n: number, opts: SplitOptions): Split {
  const { seed, testFraction = 0.2, valFraction = 0.1, fold } = opts;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`splitSlices: the number of slices must be a positive integer, got ${n}`);
  if (!Number.isFinite(seed)) throw new RangeError(`splitSlices: the seed must be a number, got ${seed}`);
  checkFraction('testFraction', testFraction);
  checkFraction('valFraction', valFraction);

  const order = new Rng(seed).shuffle(Array.from({ length: n }, (_, i) => i));
  let test: number[];
  let rest: number[];
  if (fold) {
    checkFold(fold.k, fold.K, n);
    const start = Math.floor(((fold.k - 1) * n) / fold.K);
    const end = Math.floor((fold.k * n) / fold.K);
    test = order.slice(start, end);
    rest = [...order.slice(0, start), ...order.slice(end)];
  } else {
    const testCount = Math.round(n * testFraction);
    test = order.slice(n - testCount);
    rest = order.slice(0, n - testCount);
  }
  let valCount = Math.round(valFraction * rest.length);
  if (valFraction > 0 && rest.length >= 2) valCount = Math.max(1, valCount);
  valCount = Math.min(valCount, Math.max(0, rest.length - 1));
  const val = rest.slice(rest.length - valCount);
  const train = rest.slice(0, rest.length - valCount);
  const ascending = (a: number, b: number) => a - b;
  return { train: train.sort(ascending), val: val.sort(ascending), test: test.sort(ascending) };
}

function checkFraction(name: string, value: number): void {
  if (!(value >= 0 && value < 1)) throw new RangeError(`splitSlices: ${name} must be in [0, 1), got ${value}`);
}

function checkFold(k: number, K: number, n: number): void {
  if (!Number.isInteger(K) || K < 2) throw new RangeError(`fold k/K: K (the number of folds) must be an integer of at least 2, got ${K}`);
  if (K > n) throw new RangeError(`fold k/K: K = ${K} folds is more than the ${n} slices`);
  if (!Number.isInteger(k) || k < 1 || k > K) throw new RangeError(`fold k/K: k must be an integer from 1 to ${K}, got ${k}`);
}

/** "2/5" as { k: 2, K: 5 } (fold 2 of 5); throws a RangeError saying the expected form. */
export function parseFold(text: string): { k: number; K: number } {
  const match = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  const k = match ? Number(match[1]) : NaN;
  const K = match ? Number(match[2]) : NaN;
  if (!match || K < 2 || k < 1 || k > K) {
    throw new RangeError(`fold must be k/K with 1 <= k <= K and K >= 2, such as "2/5" (fold 2 of 5); got "${text}"`);
  }
  return { k, K };
}
