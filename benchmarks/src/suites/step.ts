// `pnpm bench step`: what users wait for. The whole training step (forward, focal Tversky loss,
// backward, Adam) of AU-Net and of the U-Net baseline at batch 4, 128x128 and 256x256 (512x512
// with --full), and inference on one 512x512 slice, each beside PyTorch on the same network in the
// same run. The network is the aunet package's own (`AUNet`, `batchLossAndGradients`,
// `predictProbabilities`), and PyTorch's is built from the same ModelConfig (its parameter count
// is checked against ours), so the two cannot drift apart. The inference rows also time ONNX
// Runtime (onnxruntime-node, CPU) on our model exported to ONNX with the same weights
// (`exportOnnx`), its probabilities checked against ours.
//
// Method: per case the model and data are made once; one warm-up step (pipeline compilation),
// then timed steps until `runs` or the time budget; each step ends when its results are on the
// host (the loss, or the probabilities), as in training. Peak GPU bytes are the pool's peak over
// the timed steps; dispatches are counted over one step.

import { Adam, manualSeed } from '@aunet/nn';
import { Rng, describeConv2dVariant, init, profileSection, runtime, setConv2dAlgorithm, summariseProfile, type Profile } from '@aunet/tensor';
import { AUNet, batchLossAndGradients, batchThatFits, defaultModelConfig, exportOnnx, predictProbabilities, type ModelConfig } from 'aunet';
import { errorText, median, peakShare, sig, timeRuns, timingPlan, type Suite, type SuiteOptions } from '../common';
import { ortNote, timeOrt, type OrtTiming } from '../peers/ort';
import { runTorchScript } from '../peers/torch';

interface StepCase {
  id: number;
  model: 'aunet' | 'unet';
  mode: 'train' | 'infer';
  size: number;
  batch: number;
  config: ModelConfig;
}

export interface StepRecord {
  model: string;
  mode: string;
  size: number;
  batch: number;
  /** Median milliseconds per step (train) or per slice (infer). */
  ms: number | null;
  /** With AUNET_CONV2D=alternate: median ms with the direct conv kernels, timed in turn with ms (conv2d's choice); else null. */
  direct_ms: number | null;
  torch_ms: number | null;
  /** ms / torch_ms: how many times PyTorch's time this project takes (below 1: faster). */
  ratio: number | null;
  /** Inference rows: median ms per slice of ONNX Runtime (onnxruntime-node, CPU, 2 threads) on our model exported to ONNX; null on training rows. */
  ort_ms: number | null;
  /** ms / ort_ms. */
  ort_ratio: number | null;
  /** Worst |ONNX Runtime - ours| over the timed slice's probabilities. */
  ort_max_diff: number | null;
  /** Peak bytes of GPU buffers during the timed steps. */
  peak_bytes: number | null;
  /** PyTorch process's peak resident set after the case. */
  torch_peak_rss: number | null;
  dispatches: number | null;
  params: number | null;
  torch_params: number | null;
  adapter: string;
  runs: number;
  /** With --profile: where one step's time went. */
  profile?: StepProfile;
  note?: string;
}

/** One profiled step: device time by kernel kind and by model section (enc<l>/dec<l>: level l,
 *  at 1/2^l of the input's side; "backward" rows are those sections' gradients), and the host's. */
export interface StepProfile {
  source: Profile['source'];
  wall_ms: number;
  device_ms: number;
  /** Wall time in which the device ran nothing (host encoding, uploads, waits). */
  idle_ms: number;
  encode_ms: number;
  upload_ms: number;
  wait_ms: number;
  dispatches: number;
  by_kind: ProfileRecordRow[];
  by_section: ProfileRecordRow[];
  /** The convolutions alone, by pass and algorithm (Winograd or direct): which conv2d chose, and its cost. */
  by_conv_algorithm: ProfileRecordRow[];
}

interface ProfileRecordRow {
  name: string;
  ms: number;
  dispatches: number;
  share: number;
  /** Declared floating-point work and its rate (the convolutions declare theirs); absent for the rest. */
  gflop?: number;
  gflops?: number;
  /** gflops over --peak, when given. */
  peak_share?: number | null;
}

function summariseStepProfile(p: Profile, o: Pick<SuiteOptions, 'peakGflops'>): StepProfile {
  const s = summariseProfile(p);
  const rows = (r: typeof s.byKind) =>
    r.map((x): ProfileRecordRow => {
      const row: ProfileRecordRow = { name: x.name, ms: sig(x.ms)!, dispatches: x.dispatches, share: sig(x.share, 3)! };
      if (x.flops > 0 && x.ms > 0) {
        const gflops = x.flops / (x.ms * 1e6);
        Object.assign(row, { gflop: sig(x.flops / 1e9), gflops: sig(gflops) }, o.peakGflops !== null ? { peak_share: sig(peakShare(gflops, o), 3) } : {});
      }
      return row;
    });
  return {
    source: p.source,
    wall_ms: sig(p.wallMs)!,
    device_ms: sig(s.deviceMs)!,
    idle_ms: sig(s.idleMs)!,
    encode_ms: sig(p.encodeMs)!,
    upload_ms: sig(p.uploadMs)!,
    wait_ms: sig(p.waitMs)!,
    dispatches: p.dispatches.length,
    by_kind: rows(s.byKind),
    by_section: rows(s.bySection),
    by_conv_algorithm: rows(s.byConvAlgorithm),
  };
}

/** The profile as text lines for the notes under the table. */
function profileLines(title: string, p: StepProfile): string[] {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`.padStart(6);
  const rate = (r: ProfileRecordRow) =>
    r.gflops === undefined ? '' : `  ${r.gflop} GFLOP at ${r.gflops} GFLOP/s${r.peak_share == null ? '' : ` (${(100 * r.peak_share).toFixed(1)}% of peak)`}`;
  const row = (r: ProfileRecordRow) => `  ${r.name.padEnd(28)} ${r.ms.toFixed(1).padStart(9)} ms ${pct(r.share)} ${String(r.dispatches).padStart(5)} dispatches${rate(r)}`;
  return [
    `profile of ${title} (${p.source}): wall ${p.wall_ms} ms, device busy ${p.device_ms} ms, device idle ${p.idle_ms} ms; host encoding ${p.encode_ms} ms, uploads ${p.upload_ms} ms, waiting ${p.wait_ms} ms; ${p.dispatches} dispatches`,
    ' by kernel kind:',
    ...p.by_kind.map(row),
    ' by model section:',
    ...p.by_section.map(row),
    ' convolutions by algorithm (share of the convolutions\' time):',
    ...p.by_conv_algorithm.map(row),
  ];
}

const LOSS = { loss: 'ftl' as const, alpha: 0.7, beta: 0.3, gamma: 4 / 3 };

/**
 * AUNET_CONV2D (environment): how 3x3 stride-1 convs run, as in the kernels suite: auto (conv2d's
 * choice), direct, winograd (F(2x2)), winograd4 (F(4x4)), or alternate: each step timed with the direct kernels and with
 * conv2d's choice in turn (the record's direct_ms beside ms), which is how a gain of Winograd on a
 * whole step is measured on a machine whose speed drifts.
 */
function conv2dAlgorithm(): 'auto' | 'direct' | 'winograd' | 'winograd4' | 'alternate' {
  const a = process.env.AUNET_CONV2D ?? 'auto';
  if (a !== 'auto' && a !== 'direct' && a !== 'winograd' && a !== 'winograd4' && a !== 'alternate') throw new Error(`AUNET_CONV2D must be auto, direct, winograd, winograd4 or alternate, got "${a}"`);
  return a;
}

/** What --only matches: "aunet train 128", "unet infer 512". */
const label = (c: Omit<StepCase, 'id'>) => `${c.model} ${c.mode} ${c.size}`;

function cases(full: boolean, only: string | null): StepCase[] {
  const list: Omit<StepCase, 'id'>[] = [];
  for (const size of full ? [128, 256, 512] : [128, 256]) {
    for (const model of ['aunet', 'unet'] as const) list.push({ model, mode: 'train', size, batch: 4, config: defaultModelConfig({ architecture: model, inputSize: size }) });
  }
  for (const model of ['aunet', 'unet'] as const) list.push({ model, mode: 'infer', size: 512, batch: 1, config: defaultModelConfig({ architecture: model, inputSize: 512 }) });
  return list.filter((c) => !only || label(c).toLowerCase().includes(only.toLowerCase())).map((c, id) => ({ ...c, id }));
}

async function runOurs(c: StepCase, plan: ReturnType<typeof timingPlan>, profileStep: boolean, withOrt: boolean, rates: Pick<SuiteOptions, 'peakGflops'>) {
  const rt = runtime();
  manualSeed(1);
  const model = new AUNet(c.config);
  const params = model.numParameters();
  const rng = new Rng(7);
  const plane = c.size * c.size;
  const x = Float32Array.from({ length: c.batch * plane }, () => rng.uniform());
  const opt = c.mode === 'train' ? new Adam(model, { lr: 5e-5 }) : null;
  // Inference: the last step's probabilities, to check ONNX Runtime's against.
  let probabilities: Float32Array | null = null;
  try {
    let step: () => Promise<void>;
    if (opt) {
      const y = Float32Array.from({ length: c.batch * plane }, () => (rng.uniform() < 0.3 ? 1 : 0));
      const chunk = batchThatFits(c.config, c.batch);
      model.train();
      step = async () => {
        await batchLossAndGradients(model, x, y, c.batch, LOSS, chunk);
        profileSection('adam', () => opt.step());
        opt.zeroGrad();
        await rt.sync();
      };
    } else {
      model.eval();
      const images = [x];
      step = async () => {
        probabilities = (await predictProbabilities(model, images, 1))[0];
      };
    }
    await step(); // compile
    const before = rt.counters.dispatches;
    await step();
    const dispatches = rt.counters.dispatches - before;
    rt.pool.resetPeak();
    let direct: { ms: number; runs: number } | null = null;
    let t: { ms: number; runs: number };
    if (conv2dAlgorithm() === 'alternate') {
      // The direct kernels and conv2d's own choice (Winograd where it pays) step by step in turn,
      // so that the machine's drift falls on both alike; each compiles on its first step.
      const samples = { direct: [] as number[], auto: [] as number[] };
      try {
        for (const a of ['direct', 'auto'] as const) {
          setConv2dAlgorithm(a);
          await step();
        }
        for (let i = 0; i < plan.runs; i++) {
          for (const a of ['direct', 'auto'] as const) {
            setConv2dAlgorithm(a);
            const t0 = performance.now();
            await step();
            samples[a].push(performance.now() - t0);
          }
        }
      } finally {
        setConv2dAlgorithm('auto');
      }
      t = { ms: median(samples.auto), runs: samples.auto.length };
      direct = { ms: median(samples.direct), runs: samples.direct.length };
    } else t = await timeRuns(step, { ...plan, warmup: 0 });
    const peak = rt.memory().peakBytes;
    let profile: StepProfile | null = null;
    if (profileStep) {
      // One more step, every dispatch timed (a pass per dispatch makes it a little slower).
      await rt.startProfile();
      try {
        await step();
      } finally {
        // Always stop, so that a failed step leaves the runtime unprofiled for the next case.
        const p = await rt.stopProfile();
        profile = summariseStepProfile(p, rates);
      }
    }
    // ONNX Runtime on the same weights, after ours (the two never share the CPU).
    let ort: OrtTiming | null = null;
    let ortError: string | undefined;
    if (c.mode === 'infer' && probabilities && withOrt) {
      try {
        const { bytes } = await exportOnnx(model);
        ort = await timeOrt(bytes, x, [c.batch, c.config.inChannels, c.size, c.size], probabilities, plan);
      } catch (e) {
        ortError = `ort failed: ${errorText(e)}`;
      }
    }
    return { ms: t.ms, runs: t.runs, directMs: direct?.ms ?? null, peak, dispatches, params, profile, ort, ortError };
  } finally {
    opt?.dispose();
    model.dispose();
    rt.trim();
  }
}

export const suite: Suite = {
  name: 'step',
  description: 'AU-Net and U-Net training steps and inference',
  async run(options, log) {
    const rt = await init();
    const adapter = rt.describe();
    log(`adapter: ${adapter}`);
    const algorithm = conv2dAlgorithm();
    if (algorithm !== 'auto' && algorithm !== 'alternate') setConv2dAlgorithm(algorithm);
    const list = cases(options.full, options.only);
    if (!list.length) throw new Error(`--only "${options.only}" matches no case (labels look like "aunet train 128", "unet infer 512")`);
    // A step takes seconds: a few runs are enough for a median.
    const plan = options.quick ? { warmup: 1, runs: 2, budgetMs: 1 } : { warmup: 1, runs: 5, budgetMs: 60_000 };
    const notes = [`adapter: ${adapter}`, describeConv2dVariant(), `3x3 stride-1 convs: ${conv2dAlgorithm()} (AUNET_CONV2D)`, `timing: ${plan.runs} steps at most (or ${plan.budgetMs / 1000} s) after a warm-up step`];
    const ours = new Map<number, { ms: number | null; runs: number; directMs?: number | null; peak: number | null; dispatches: number | null; params: number | null; profile?: StepProfile | null; ort?: OrtTiming | null; ortError?: string; note?: string }>();
    for (const c of list) {
      log(`ours: ${c.model} ${c.mode} ${c.size}x${c.size} batch ${c.batch}...`);
      try {
        const r = await runOurs(c, plan, options.profile, options.peers.has('ort'), options);
        ours.set(c.id, r);
        log(`  ${r.ms.toFixed(0)} ms, peak ${(r.peak / 2 ** 30).toFixed(2)} GiB, ${r.dispatches} dispatches`);
        if (r.directMs !== null) {
          const line = `${label(c)}: direct kernels ${r.directMs.toFixed(0)} ms, conv2d's choice ${r.ms.toFixed(0)} ms (${(r.directMs / r.ms).toFixed(2)}x), alternated over ${r.runs} steps each`;
          log(`  ${line}`);
          notes.push(line);
        }
        if (r.ort) log(`  ort: ${r.ort.ms.toFixed(0)} ms, worst |ort - ours| ${r.ort.worstDiff.toExponential(2)}`);
        if (r.ortError) log(`  ${r.ortError}`);
        if (r.profile) notes.push(...profileLines(label(c), r.profile));
      } catch (e) {
        ours.set(c.id, { ms: null, runs: 0, peak: null, dispatches: null, params: null, note: `failed: ${errorText(e)}` });
        log(`  failed: ${errorText(e)}`);
      }
    }
    type TorchResult = { id: number; ms: number | null; note?: string; params?: number; peak_rss?: number };
    let torch = new Map<number, TorchResult>();
    if (options.peers.has('torch')) {
      const r = await runTorchScript<TorchResult>('torch_step.py', { timing: plan, cases: list }, log);
      torch = r.results;
      notes.push(...r.notes);
    } else notes.push('torch: not run (--no-torch)');
    const ortVersion = [...ours.values()].find((o) => o.ort)?.ort?.version;
    if (ortVersion) notes.push(ortNote(ortVersion));
    else if (!options.peers.has('ort')) notes.push('ort: not run (--no-ort)');

    const records: StepRecord[] = list.map((c) => {
      const o = ours.get(c.id)!;
      const t = torch.get(c.id);
      const rec: StepRecord = {
        model: c.model,
        mode: c.mode,
        size: c.size,
        batch: c.batch,
        ms: sig(o.ms),
        direct_ms: sig(o.directMs ?? null),
        torch_ms: sig(t?.ms ?? null),
        ratio: sig(o.ms && t?.ms ? o.ms / t.ms : null, 3),
        ort_ms: sig(o.ort?.ms ?? null),
        ort_ratio: sig(o.ms && o.ort?.ms ? o.ms / o.ort.ms : null, 3),
        ort_max_diff: o.ort ? sig(o.ort.worstDiff, 2) : null,
        peak_bytes: o.peak,
        torch_peak_rss: t?.peak_rss ?? null,
        dispatches: o.dispatches,
        params: o.params,
        torch_params: t?.params ?? null,
        adapter,
        runs: o.runs,
      };
      if (o.profile) rec.profile = o.profile;
      const why = [o.note, o.ortError, t?.note && `torch: ${t.note}`, o.params && t?.params && o.params !== t.params ? `parameter counts differ: ${o.params} vs torch ${t.params}` : null].filter(Boolean);
      if (why.length) rec.note = why.join('; ');
      return rec;
    });
    const gib = (b: number | null) => (b === null ? null : sig(b / 2 ** 30, 3));
    notes.push('ratio = our ms / torch ms (below 1: we are faster); ort ratio = our ms / ort ms; peak = GPU buffers (ours), process RSS (PyTorch)');
    return {
      table: {
        columns: [
          { title: 'model', align: 'left' }, { title: 'mode', align: 'left' }, { title: 'size' }, { title: 'batch' },
          { title: 'ms' }, { title: 'torch ms' }, { title: 'ratio' }, { title: 'ort ms' }, { title: 'ort ratio' }, { title: 'peak GiB' }, { title: 'torch RSS GiB' }, { title: 'dispatches' },
        ],
        rows: records.map((r) => [r.model, r.mode, r.size, r.batch, r.ms, r.torch_ms, r.ratio, r.ort_ms, r.ort_ratio, gib(r.peak_bytes), gib(r.torch_peak_rss), r.dispatches]),
      },
      records,
      notes,
    };
  },
};
