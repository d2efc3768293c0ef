// Shared pieces of the benchmark suites: options, timing, statistics, notes.

/** Options every suite receives from the command line. */
export interface SuiteOptions {
  /** Fewer repetitions and a shorter time budget per case. */
  quick: boolean;
  /** Larger problem sizes (kernels: adds 512x512). */
  full: boolean;
  /** Run only the cases whose label contains this substring (case-insensitive). */
  only: string | null;
  /** Peers to compare against (kernels: torch, tfjs; step and scan: torch, ort); empty to skip them. */
  peers: Set<'torch' | 'tfjs' | 'ort'>;
  /** Steps to run (soak suite); null for the suite's default. */
  steps: number | null;
  /** Time every dispatch of one step per case and report where the time goes (step suite). */
  profile: boolean;
  /** The adapter's peak fp32 rate in GFLOP/s, to report rates as a share of it (kernels, step). */
  peakGflops: number | null;
  /** Slices of the volume to segment (scan suite); null for all. */
  slices: number | null;
  /** Slices per network call (scan suite); null for the suite's default. */
  batch: number | null;
  /** A checkpoint file to take the weights from (scan suite; an absolute path); null for the seeded initial weights. */
  checkpoint: string | null;
  /** queue suite: jobs submitted, worker processes, workers SIGKILLed; null for the suite's defaults. */
  jobs: number | null;
  workers: number | null;
  kills: number | null;
}

/** `rate` as a share of the peak, when a peak was given and the rate is known. */
export function peakShare(gflops: number | null, o: Pick<SuiteOptions, 'peakGflops'>): number | null {
  return gflops === null || o.peakGflops === null ? null : gflops / o.peakGflops;
}

/** The result of a suite: rows for the table, records for --json, notes to print below the table. */
export interface SuiteResult {
  table: Table;
  records: object[];
  notes: string[];
  /** A line printed last, after the record count (queue: its `N jobs: N done once, ...` line). */
  finalLine?: string;
}

export interface Suite {
  name: string;
  /** One line for the usage message. */
  description: string;
  run(options: SuiteOptions, log: (line: string) => void): Promise<SuiteResult>;
}

export interface Table {
  columns: { title: string; align?: 'left' | 'right' }[];
  rows: (string | number | null)[][];
}

/** How a case is repeated: warm-up runs (not timed), then up to `runs` timed runs, stopping early
 *  once the timed runs add up to `budgetMs` (at least one timed run always happens). */
export interface TimingPlan {
  warmup: number;
  runs: number;
  budgetMs: number;
}

export function timingPlan(o: Pick<SuiteOptions, 'quick'>): TimingPlan {
  return o.quick ? { warmup: 1, runs: 3, budgetMs: 300 } : { warmup: 1, runs: 15, budgetMs: 1000 };
}

export interface Timing {
  /** Median of the timed runs, in milliseconds. */
  ms: number;
  min: number;
  runs: number;
}

export const now = (): number => performance.now();

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Time `fn` (which must include its own synchronisation with the device) by the plan. */
export async function timeRuns(fn: () => Promise<void>, plan: TimingPlan): Promise<Timing> {
  for (let i = 0; i < plan.warmup; i++) await fn();
  const samples: number[] = [];
  let total = 0;
  while (samples.length < plan.runs) {
    const t0 = now();
    await fn();
    const dt = now() - t0;
    samples.push(dt);
    total += dt;
    if (total >= plan.budgetMs) break;
  }
  return { ms: median(samples), min: Math.min(...samples), runs: samples.length };
}

export function errorText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  // First line only: WebGPU errors carry the whole WGSL source.
  const first = msg.split('\n')[0];
  return first.length > 300 ? `${first.slice(0, 300)}...` : first;
}

/** Round for JSON: `digits` significant digits (null stays null). */
export function sig(v: number | null, digits = 4): number | null {
  if (v === null || !Number.isFinite(v) || v === 0) return v;
  return Number(v.toPrecision(digits));
}
