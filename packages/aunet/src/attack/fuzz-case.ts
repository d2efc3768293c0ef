// Node-only: what a fuzz case is (fuzz-mutations.ts and fuzz-dicom.ts make them, fuzz.ts runs
// them) and the seeded randomness every case is drawn from.

/** How the mutated file is used: alone as an image (predict) or a mask (a lung mask), or as one
 *  half of a training/evaluation data folder whose other half is valid. */
export type FuzzRole = 'image' | 'mask' | 'dataset-image' | 'dataset-mask';

export interface FuzzCase {
  seed: number;
  index: number;
  /** The file name errors must name. */
  name: string;
  role: FuzzRole;
  /** The valid volume the case started from. */
  base: string;
  /** What was done to it, in order. */
  mutations: string[];
  bytes: Uint8Array;
  /** For the dataset roles: the valid other file. */
  partner?: { name: string; bytes: Uint8Array };
  /** A DICOM case: the series' files (names relative to the folder `name`), or the zip of them
   *  (`name` then names the zip); `bytes` is then the damaged file (or the zip). */
  dicom?: { files: { name: string; bytes: Uint8Array }[]; zip?: Uint8Array };
}

// --------------------------------------------------------------------------------------------
// Seeded randomness: mulberry32 from a hash of (seed, index), so that each case stands alone.

export class Random {
  private state: number;
  constructor(seed: number, index: number) {
    let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(Math.floor(seed / 2 ** 32) + 0x27d4eb2f, 0x165667b1);
    h = Math.imul(h ^ (index >>> 0), 0xc2b2ae35) ^ Math.imul(Math.floor(index / 2 ** 32) + 0x632be5ab, 0x9e3779b1);
    h ^= h >>> 16;
    h = Math.imul(h, 0x7feb352d);
    h ^= h >>> 15;
    h = Math.imul(h, 0x846ca68b);
    this.state = (h ^ (h >>> 16)) >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  }
  /** An integer in 0..n-1. */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  bytes(n: number): Uint8Array {
    return Uint8Array.from({ length: n }, () => this.int(256));
  }
}

