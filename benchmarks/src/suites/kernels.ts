// `pnpm bench kernels`: every kernel of the AU-Net on its shapes (batch 4, filters 32..512 at
// levels of halving resolution) at 128x128 and 256x256, and 512x512 with --full; forward,
// input-gradient and weight-gradient passes; PyTorch (CPU, 2 threads) and TF.js (WebGPU, same
// Dawn adapter) side by side where available.
//
// Method: per case, inputs are made once; one warm-up run (pipeline compilation), then timed runs
// until `runs` or the time budget is reached; each run ends with `await runtime().sync()`; the
// median is reported. Backward passes run the forward once under autodiff and time
// `backward(y, { grad, retainGraph: true })`, with requiresGrad only on the input (backward-input)
// or only on the weights (backward-weight).
//
// AUNET_CONV2D=direct|winograd|winograd4 (environment) forces how 3x3 stride-1 convs run
// (setConv2dAlgorithm in @aunet/tensor: direct kernels, Winograd F(2x2, 3x3) or F(4x4, 3x3);
// default auto: the tuning table), to compare them on the same shapes.

import * as T from '@aunet/tensor';
import { backward, init, noGrad, onesLike, runtime, scope, tidy, type Tensor } from '@aunet/tensor';
import { allCases, caseLabel, type KernelCase, type KernelOp, type PeerResult } from '../cases';
import { errorText, peakShare, sig, timeRuns, timingPlan, type Suite, type SuiteOptions, type TimingPlan } from '../common';
import { binary, uniform } from '../fill';
import { runTfjs } from '../peers/tfjs';
import { runTorch } from '../peers/torch';

/** The export of @aunet/tensor each op needs. */
const EXPORTS: Record<KernelOp, string> = {
  conv2d: 'conv2d',
  upsample2x: 'upsample2x',
  instance_norm: 'instanceNorm',
  dual_attention: 'dualAttention',
  focal_tversky: 'focalTverskyLoss',
  adam: 'adamStep',
};

// The ops are looked up at run time: they land one by one, and a missing one is skipped.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFn = (...args: any[]) => any;
const lib = T as unknown as Record<string, unknown>;
const op = (name: string): AnyFn => lib[name] as AnyFn;
const has = (name: string): boolean => typeof lib[name] === 'function';

export interface KernelRecord {
  op: KernelOp;
  pass: string;
  shape: string;
  /** Image size of the network this shape comes from (0 for adam, which depends on no image size). */
  image: number;
  /** Median milliseconds of one run; null when our op was skipped or failed. */
  ms: number | null;
  gflops: number | null;
  /** gflops over --peak, when given. */
  peak_share?: number | null;
  gbps: number | null;
  adapter: string;
  torch_gflops: number | null;
  tfjs_gflops: number | null;
  /** Milliseconds per run of the peers (null where not run); the ratios for ops without flops. */
  torch_ms: number | null;
  tfjs_ms: number | null;
  /** Timed runs behind `ms`. */
  runs: number;
  /** Why a figure is missing, when one is. */
  note?: string;
}

/** What one case needs: a synchronous step that encodes the work, and the leaf tensors whose
 *  .grad (kept out of scopes by backward()) must be freed after each run. */
interface Bench {
  step: () => void;
  leaves: Tensor[];
}

const EPS = 1e-5;

/** Leaf tensors flagged requiresGrad in a backward case; their .grad is freed after each run. */
function leaf(t: Tensor, grad: boolean): Tensor {
  t.requiresGrad = grad;
  return t;
}

function freeGrads(ts: Tensor[]): void {
  for (const t of ts) {
    t.grad?.dispose();
    t.grad = null;
  }
}

/** Forward under noGrad in a tidy, or forward once under autodiff and backward per run. */
function forwardOrBackward(c: KernelCase, leaves: Tensor[], forward: () => Tensor): Bench {
  if (c.pass === 'forward') return { step: () => tidy(() => void noGrad(forward)), leaves };
  const y = forward();
  const dy = y.size === 1 ? onesLike(y) : uniform(y.shape);
  return { step: () => tidy(() => backward(y, { grad: dy, retainGraph: true })), leaves };
}

function build(c: KernelCase): Bench {
  const x = (grad: boolean) => leaf(uniform(c.input), grad);
  const wantX = c.pass === 'backward-input';
  const wantW = c.pass === 'backward-weight';
  switch (c.op) {
    case 'conv2d': {
      const p = c.conv!;
      const cin = c.input[1];
      const bound = 1 / Math.sqrt(cin * p.k * p.k);
      const xi = x(wantX);
      const w = leaf(uniform([p.cout, cin, p.k, p.k], -bound, bound), wantW);
      const b = uniform([p.cout], -bound, bound);
      const opts = { stride: p.stride, padding: p.padding, dilation: p.dilation };
      return forwardOrBackward(c, [xi, w], () => op('conv2d')(xi, w, b, opts));
    }
    case 'upsample2x': {
      const xi = x(wantX);
      return forwardOrBackward(c, [xi], () => op('upsample2x')(xi));
    }
    case 'instance_norm': {
      const C = c.input[1];
      const xi = x(wantX);
      const gamma = leaf(uniform([C], 0.5, 1.5), wantW);
      const beta = leaf(uniform([C], -0.5, 0.5), wantW);
      return forwardOrBackward(c, [xi, gamma, beta], () => op('instanceNorm')(xi, gamma, beta, EPS));
    }
    case 'dual_attention': {
      const C = c.input[1];
      const xi = x(wantX);
      const ch = { w1: uniform([C / 2, C], -0.1, 0.1), b1: uniform([C / 2], -0.1, 0.1), w2: uniform([C, C / 2], -0.1, 0.1), b2: uniform([C], -0.1, 0.1) };
      const sp = { w: uniform([1, C, 1, 1], -0.1, 0.1), b: uniform([1], -0.1, 0.1) };
      const weights = [...Object.values(ch), ...Object.values(sp)];
      for (const t of weights) leaf(t, wantW);
      return forwardOrBackward(c, [xi, ...weights], () => op('dualAttention')(xi, ch, sp));
    }
    case 'focal_tversky': {
      const p = leaf(uniform(c.input, 0.01, 0.99), wantX);
      const g = binary(c.input, 0.3);
      return forwardOrBackward(c, [p], () => op('focalTverskyLoss')(p, g, { alpha: 0.7, beta: 0.3, gamma: 4 / 3, smooth: 1 }));
    }
    case 'adam': {
      const param = uniform(c.input, -0.1, 0.1);
      const grad = uniform(c.input, -1e-3, 1e-3);
      const m = uniform(c.input, -1e-4, 1e-4);
      const v = uniform(c.input, 0, 1e-6);
      let step = 0;
      return {
        step: () => tidy(() => void noGrad(() => op('adamStep')(param, grad, m, v, { lr: 5e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: ++step }))),
        leaves: [],
      };
    }
  }
}

async function runOurs(c: KernelCase, plan: TimingPlan): Promise<{ ms: number | null; runs: number; note?: string }> {
  const name = EXPORTS[c.op];
  if (!has(name)) return { ms: null, runs: 0, note: `skipped: @aunet/tensor does not export ${name} yet` };
  const rt = runtime();
  try {
    return await scope(async () => {
      const bench = build(c);
      try {
        await rt.sync();
        const t = await timeRuns(async () => {
          bench.step();
          await rt.sync();
          freeGrads(bench.leaves);
        }, plan);
        return { ms: t.ms, runs: t.runs };
      } finally {
        freeGrads(bench.leaves);
      }
    });
  } catch (e) {
    try {
      rt.throwIfError();
    } catch {
      /* already reported by the error below */
    }
    return { ms: null, runs: 0, note: `failed: ${errorText(e)}` };
  }
}

const rate = (amount: number | null, ms: number | null, scale: number) => (amount !== null && ms ? amount / (ms * scale) : null);
const ratio = (peerMs: number | null, ms: number | null) => (peerMs && ms ? peerMs / ms : null);

export const suite: Suite = {
  name: 'kernels',
  description: 'AU-Net kernels',
  async run(options: SuiteOptions, log) {
    const rt = await init();
    const adapter = rt.describe();
    log(`adapter: ${adapter}`);
    const algorithm = process.env.AUNET_CONV2D ?? 'auto';
    if (algorithm !== 'auto' && algorithm !== 'direct' && algorithm !== 'winograd' && algorithm !== 'winograd4') throw new Error(`AUNET_CONV2D must be auto, direct, winograd or winograd4, got "${algorithm}"`);
    if (has('setConv2dAlgorithm')) op('setConv2dAlgorithm')(algorithm);
    const sizes = options.full ? [128, 256, 512] : [128, 256];
    const cases = allCases(sizes, options.only);
    if (!cases.length) throw new Error(`--only "${options.only}" matches no case (labels look like "conv2d forward 4x32x128x128 k3 d1 s1 ->32")`);
    const plan = timingPlan(options);
    const notes: string[] = [`adapter: ${adapter}`, `3x3 stride-1 convs: ${algorithm} (AUNET_CONV2D)`];

    const missing = [...new Set(cases.map((c) => EXPORTS[c.op]).filter((n) => !has(n)))];
    if (missing.length) notes.push(`not yet in @aunet/tensor, skipped: ${missing.join(', ')}`);

    log(`ours: ${cases.length} cases (warm-up ${plan.warmup}, up to ${plan.runs} runs or ${plan.budgetMs} ms per case)`);
    const ours = new Map<number, { ms: number | null; runs: number; note?: string }>();
    const t0 = performance.now();
    for (const [i, c] of cases.entries()) {
      const r = await runOurs(c, plan);
      ours.set(c.id, r);
      if (r.ms !== null || !r.note?.startsWith('skipped')) {
        const g = rate(c.flops, r.ms, 1e6);
        log(`  [${i + 1}/${cases.length}] ${caseLabel(c)}: ${r.ms === null ? r.note : `${r.ms.toFixed(2)} ms${g ? `, ${g.toFixed(2)} GFLOP/s` : ''}`}`);
      }
    }
    log(`ours: done in ${((performance.now() - t0) / 1000).toFixed(1)} s; memory in use ${JSON.stringify(rt.memory())}`);
    const failed = cases.filter((c) => ours.get(c.id)!.note?.startsWith('failed'));
    if (failed.length) notes.push(`${failed.length} case(s) failed; the first: ${caseLabel(failed[0])}: ${ours.get(failed[0].id)!.note}`);

    const request = { timing: plan, cases };
    let torch = new Map<number, PeerResult>();
    if (options.peers.has('torch')) {
      const r = await runTorch(request, log);
      torch = r.results;
      notes.push(...r.notes);
    } else notes.push('torch: not run (--no-torch)');
    let tfjs = new Map<number, PeerResult>();
    if (options.peers.has('tfjs')) {
      // TF.js is far slower than the others (seconds per weight gradient): 128x128 only unless --full.
      const tfjsCases = options.full ? cases : cases.filter((c) => c.image <= 128);
      if (!options.full) notes.push('tfjs: run at 128x128 only (--full: every size)');
      const r = await runTfjs({ ...request, cases: tfjsCases }, log);
      tfjs = r.results;
      notes.push(...r.notes);
    } else notes.push('tfjs: not run (--no-tfjs)');

    const records: KernelRecord[] = cases.map((c) => {
      const o = ours.get(c.id)!;
      const tm = torch.get(c.id)?.ms ?? null;
      const fm = tfjs.get(c.id)?.ms ?? null;
      const rec: KernelRecord = {
        op: c.op,
        pass: c.pass,
        shape: c.shape,
        image: c.image,
        ms: sig(o.ms),
        gflops: sig(rate(c.flops, o.ms, 1e6)),
        gbps: sig(rate(c.bytes, o.ms, 1e6)),
        adapter,
        torch_gflops: sig(rate(c.flops, tm, 1e6)),
        tfjs_gflops: sig(rate(c.flops, fm, 1e6)),
        torch_ms: sig(tm),
        tfjs_ms: sig(fm),
        runs: o.runs,
      };
      if (options.peakGflops !== null) rec.peak_share = sig(peakShare(rec.gflops, options), 3);
      const why = [o.note, torch.get(c.id)?.note && `torch: ${torch.get(c.id)!.note}`, tfjs.get(c.id)?.note && `tfjs: ${tfjs.get(c.id)!.note}`].filter(Boolean);
      if (why.length) rec.note = why.join('; ');
      return rec;
    });

    const showTorch = options.peers.has('torch') && torch.size > 0;
    const showTfjs = options.peers.has('tfjs') && tfjs.size > 0;
    const columns: { title: string; align?: 'left' | 'right' }[] = [
      { title: 'op', align: 'left' },
      { title: 'pass', align: 'left' },
      { title: 'shape', align: 'left' },
      { title: 'ms' },
      { title: 'GFLOP/s' },
      ...(options.peakGflops !== null ? [{ title: 'of peak' }] : []),
      { title: 'GB/s' },
    ];
    if (showTorch) columns.push({ title: 'torch ms' }, { title: 'torch GFLOP/s' }, { title: 'ours/torch' });
    if (showTfjs) columns.push({ title: 'tfjs ms' }, { title: 'tfjs GFLOP/s' }, { title: 'ours/tfjs' });
    const rows = records.map((r) => {
      const share = r.peak_share == null ? null : `${(100 * r.peak_share).toFixed(1)}%`;
      const row: (string | number | null)[] = [r.op, r.pass, r.shape, r.ms, r.gflops, ...(options.peakGflops !== null ? [share] : []), r.gbps];
      if (showTorch) row.push(r.torch_ms, r.torch_gflops, ratio(r.torch_ms, r.ms));
      if (showTfjs) row.push(r.tfjs_ms, r.tfjs_gflops, ratio(r.tfjs_ms, r.ms));
      return row;
    });
    notes.push('ours/peer = peer ms / our ms (above 1: we are faster); GB/s counts each tensor read or written once; "-": not run, skipped or undefined');
    return { table: { columns, rows }, records, notes };
  },
};
