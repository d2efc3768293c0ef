// Seeded train / validation / test split of slice indices, and k-fold cross-validation; the same
// by case for a dataset of several cases (no case has slices in two parts); and split files
// (train / val / test lists, or nnU-Net's splits_final.json, a {train, val} per fold).
import { Rng } from '@aunet/tensor';
import { DataError } from './errors';

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

/** One case's slices in a dataset of several cases: slices first .. first+count-1, in dataset order. */
export interface CaseRange {
  name: string;
  first: number;
  count: number;
}

const ascending = (a: number, b: number) => a - b;

/**
 * Splits slices 0..n-1 into three disjoint sorted lists that together hold every slice. One
 * shuffle, seeded, orders the slices: the test set is its last round(n * testFraction), or with
 * a fold its k-th of K contiguous parts (so the K test sets of one seed partition the slices);
 * validation is the last round(valFraction * rest) of the rest (at least 1 when valFraction > 0
 * and 2 or more remain, and never all of it). The same seed gives the same split.
 */
export function splitSlices(n: number, opts: SplitOptions): Split {
  return splitItems(n, opts, 'slices');
}

/**
 * The split of {@link splitSlices} made on the cases instead of the slices (the same shuffle,
 * fractions and folds, counted in cases), each case's slices going whole to its part: no case
 * has slices in two parts, and the K test parts of one seed partition the cases.
 */
export function splitCases(cases: readonly CaseRange[], opts: SplitOptions): Split {
  const byCase = splitItems(cases.length, opts, 'cases');
  return { train: slicesOfCases(cases, byCase.train), val: slicesOfCases(cases, byCase.val), test: slicesOfCases(cases, byCase.test) };
}

/** The slices of the cases at `indices`, ascending. */
function slicesOfCases(cases: readonly CaseRange[], indices: readonly number[]): number[] {
  return indices.flatMap((c) => Array.from({ length: cases[c].count }, (_, i) => cases[c].first + i)).sort(ascending);
}

function splitItems(n: number, opts: SplitOptions, unit: 'slices' | 'cases'): Split {
  const { seed, testFraction = 0.2, valFraction = 0.1, fold } = opts;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`splitSlices: the number of ${unit} must be a positive integer, got ${n}`);
  if (!Number.isFinite(seed)) throw new RangeError(`splitSlices: the seed must be a number, got ${seed}`);
  checkFraction('testFraction', testFraction);
  checkFraction('valFraction', valFraction);

  const order = new Rng(seed).shuffle(Array.from({ length: n }, (_, i) => i));
  let test: number[];
  let rest: number[];
  if (fold) {
    checkFold(fold.k, fold.K, n, unit);
    const start = Math.floor(((fold.k - 1) * n) / fold.K);
    const end = Math.floor((fold.k * n) / fold.K);
    test = order.slice(start, end);
    rest = [...order.slice(0, start), ...order.slice(end)];
  } else {
    const testCount = Math.round(n * testFraction);
    test = order.slice(n - testCount);
    rest = order.slice(0, n - testCount);
  }
  const { train, val } = carveValidation(rest, valFraction);
  return { train: train.sort(ascending), val: val.sort(ascending), test: test.sort(ascending) };
}

/** The last round(valFraction * n) of `rest` (at least 1 when valFraction > 0 and 2 or more remain, never all) for validation, the others for training. */
function carveValidation<T>(rest: T[], valFraction: number): { train: T[]; val: T[] } {
  let valCount = Math.round(valFraction * rest.length);
  if (valFraction > 0 && rest.length >= 2) valCount = Math.max(1, valCount);
  valCount = Math.min(valCount, Math.max(0, rest.length - 1));
  return { train: rest.slice(0, rest.length - valCount), val: rest.slice(rest.length - valCount) };
}

function checkFraction(name: string, value: number): void {
  if (!(value >= 0 && value < 1)) throw new RangeError(`splitSlices: ${name} must be in [0, 1), got ${value}`);
}

function checkFold(k: number, K: number, n: number, unit: 'slices' | 'cases'): void {
  if (!Number.isInteger(K) || K < 2) throw new RangeError(`fold k/K: K (the number of folds) must be an integer of at least 2, got ${K}`);
  if (K > n) throw new RangeError(`fold k/K: K = ${K} folds is more than the ${n} ${unit}`);
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

// ---------------------------------------------------------------------------------------------
// Split files.

/** A case name (a dataset of several cases) or a slice index (a single volume). */
export type SplitItem = string | number;

/** The lists of one split as a file gives them; `test` absent in an entry of nnU-Net's splits_final.json. */
export interface SplitLists {
  train: SplitItem[];
  val: SplitItem[];
  test?: SplitItem[];
}

/**
 * A split file as read (stored whole in the training config, so a checkpoint alone repeats its
 * split). `perFold`: the file is a list with one entry per fold, the shape of nnU-Net's
 * splits_final.json; `--fold k/K` picks entry k, K being the number of entries. Otherwise
 * `entries` holds the one split of the file, with its test list.
 */
export interface GivenSplit {
  file: string;
  perFold: boolean;
  entries: SplitLists[];
}

/** The split that a run folder's split.json holds and a split file gives: case names, or slice indices for a single volume. */
export type SplitRecord = Required<SplitLists>;

const SPLIT_SHAPES =
  'a split file is JSON: {"train": [...], "val": [...], "test": [...]} with case names (or slice indices for a single volume), ' +
  'or a list of {"train": [...], "val": [...]} per fold as nnU-Net\'s splits_final.json';

/**
 * The split file `file` holding `text`, checked on its own (the data is checked later, by
 * {@link splitFromFile}): its shape, lists that are not empty, items all names or all slice
 * indices, none in two lists of one entry nor twice in a list. DataError naming the file.
 */
export function parseSplitFile(text: string, file: string): GivenSplit {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new DataError(`${file} is not valid JSON (${(e as Error).message}): ${SPLIT_SHAPES}.`, file);
  }
  const perFold = Array.isArray(json);
  const raw = perFold ? (json as unknown[]) : [json];
  if (perFold && raw.length === 0) throw new DataError(`${file} is an empty list: ${SPLIT_SHAPES}.`, file);
  let kind: 'string' | 'number' | null = null;
  const entries = raw.map((entry, e) => {
    const where = perFold ? `${file}, entry ${e + 1}` : file;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new DataError(`${where} is not an object of lists: ${SPLIT_SHAPES}.`, file);
    const o = entry as Record<string, unknown>;
    const keys = perFold && o.test === undefined ? (['train', 'val'] as const) : (['train', 'val', 'test'] as const);
    const lists: Partial<Record<'train' | 'val' | 'test', SplitItem[]>> = {};
    const seen = new Map<SplitItem, string>();
    for (const key of keys) {
      const list = o[key];
      if (!Array.isArray(list)) throw new DataError(`${where} has no "${key}" list: ${SPLIT_SHAPES}.`, file);
      if (list.length === 0) throw new DataError(`${where}: the "${key}" list is empty; every list needs at least one case (or slice index).`, file);
      for (const item of list) {
        const itemKind = typeof item === 'string' && item !== '' ? 'string' : Number.isInteger(item) && (item as number) >= 0 ? 'number' : null;
        if (itemKind === null) throw new DataError(`${where}: "${key}" holds ${JSON.stringify(item)}, neither a case name nor a slice index (an integer from 0).`, file);
        kind ??= itemKind;
        if (itemKind !== kind) throw new DataError(`${where} mixes case names and slice indices (${JSON.stringify(item)} in "${key}"): give names for a dataset of cases, indices for one volume.`, file);
        const before = seen.get(item as SplitItem);
        if (before !== undefined) {
          throw new DataError(`${where}: ${JSON.stringify(item)} is in "${before}"${before === key ? ' twice' : ` and in "${key}"`}; a ${kind === 'number' ? 'slice' : 'case'} belongs to one list.`, file);
        }
        seen.set(item as SplitItem, key);
      }
      lists[key] = list as SplitItem[];
    }
    return lists as SplitLists;
  });
  return { file, perFold, entries };
}

/**
 * The slices of each part of `given` on the data (`count` slices; `cases` for a dataset of
 * several cases, whose split names cases). A per-fold file (nnU-Net's) needs `fold` with K its
 * number of entries; entry k's `val` is then the test part (what nnU-Net scores a fold on) and
 * validation is carved from its `train` cases by the seed, as {@link splitSlices} carves it;
 * an entry (or a file) with its own `test` is taken as it is. DataError naming the file for a
 * fold that does not fit, names that are not the data's cases, indices out of range.
 */
export function splitFromFile(
  given: GivenSplit,
  fold: { k: number; K: number } | null,
  data: { count: number; cases?: readonly CaseRange[] },
  carve: { seed: number; valFraction: number },
): Split {
  const n = given.entries.length;
  if (given.perFold && !fold) throw new DataError(`${given.file} holds ${n} folds (a list, as nnU-Net's splits_final.json): pick one with --fold k/${n}.`, given.file);
  if (!given.perFold && fold) throw new DataError(`${given.file} holds one split (train, val, test), not one per fold: --fold does not apply to it.`, given.file);
  if (fold && fold.K !== n) throw new DataError(`--fold ${fold.k}/${fold.K} does not fit ${given.file}, which holds ${n} folds: use --fold k/${n}.`, given.file);
  const entry = given.entries[fold ? fold.k - 1 : 0];
  const resolve = resolverFor(given, data);
  const test = resolve(entry.test ?? entry.val);
  let train = resolve(entry.train);
  let val = entry.test ? resolve(entry.val) : [];
  if (!entry.test) {
    // nnU-Net's val is the fold's held-out part, scored at the end: validation (for the schedule,
    // early stopping and the best checkpoint) comes from the training cases, by the seed.
    const carved = carveValidation(new Rng(carve.seed).shuffle([...train]), carve.valFraction);
    train = carved.train;
    val = carved.val;
  }
  const expand = (units: number[]) => (data.cases ? slicesOfCases(data.cases, units) : [...units].sort(ascending));
  return { train: expand(train), val: expand(val), test: expand(test) };
}

/** Maps a file's items to case indices (data of several cases) or slice indices, refusing those the data does not have. */
function resolverFor(given: GivenSplit, data: { count: number; cases?: readonly CaseRange[] }): (items: SplitItem[]) => number[] {
  const items = given.entries.flatMap((e) => [...e.train, ...e.val, ...(e.test ?? [])]);
  const file = given.file;
  if (data.cases) {
    const index = new Map(data.cases.map((c, i) => [c.name, i]));
    const numbers = items.filter((x) => typeof x === 'number');
    if (numbers.length) throw new DataError(`${file} lists slice indices, but the data holds ${data.cases.length} cases: list case names (${listed(data.cases.map((c) => c.name))}).`, file);
    const unknown = [...new Set(items.filter((x) => !index.has(x as string)))] as string[];
    if (unknown.length) throw new DataError(`${file} names ${unknown.length} case${unknown.length > 1 ? 's' : ''} the data does not hold: ${listed(unknown)} (its cases: ${listed(data.cases.map((c) => c.name))}).`, file);
    return (list) => list.map((x) => index.get(x as string)!);
  }
  const names = items.filter((x) => typeof x === 'string');
  if (names.length) throw new DataError(`${file} names cases (${listed(names as string[])}), but the data is one volume: list slice indices from 0 to ${data.count - 1}.`, file);
  const outside = [...new Set(items.filter((x) => (x as number) >= data.count))];
  if (outside.length) throw new DataError(`${file} lists slice${outside.length > 1 ? 's' : ''} ${listed(outside.map(String))}, but the data has ${data.count} slices (0 to ${data.count - 1}).`, file);
  return (list) => list as number[];
}

const listed = (names: string[]) => (names.length > 5 ? `${names.slice(0, 5).join(', ')} and ${names.length - 5} more` : names.join(', '));

/**
 * A split as split.json holds it: case names for a dataset of several cases (each case in the
 * part its slices are in, in dataset order), slice indices for a single volume. What a split file
 * gives back to {@link splitFromFile} unchanged.
 */
export function splitRecord(split: Split): { train: number[]; val: number[]; test: number[] };
export function splitRecord(split: Split, cases: readonly CaseRange[]): { train: string[]; val: string[]; test: string[] };
export function splitRecord(split: Split, cases?: readonly CaseRange[]): SplitRecord;
export function splitRecord(split: Split, cases?: readonly CaseRange[]): SplitRecord {
  if (!cases) return { train: [...split.train], val: [...split.val], test: [...split.test] };
  const named = (slices: number[]) => {
    const set = new Set(slices);
    return cases.filter((c) => set.has(c.first)).map((c) => c.name);
  };
  return { train: named(split.train), val: named(split.val), test: named(split.test) };
}
