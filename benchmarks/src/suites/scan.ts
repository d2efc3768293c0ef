// `pnpm bench scan`: what a user of `predict` waits for on a whole CT volume. The shipped
// 100-slice volume (medseg-covid tr_im_lungwindow.nii.gz, 512x512x100) segmented at the `paper`
// preset (512x512 input), beside PyTorch and ONNX Runtime on the same weights and the same slices,
// and beside the journal version of the paper (0.29 s a slice on its GPU).
//
// Every side runs the aunet package's own `predictVolume` (the code `predict` runs for each input:
// normalising, resizing to the model's size, the network `batch` slices at a time, resizing the
// probabilities back and thresholding them into the mask) on a volume read from the file by
// `readVolume`; only the network differs: ours (`modelPredictor`, as `predict` builds it), ONNX
// Runtime on our model exported by `exportOnnx`, and PyTorch with our weights loaded by name
// (python/torch_scan.py, a slice server in a child process). A side's total runs from reading the
// file to the mask; writing the outputs (NIfTI, CSV, pictures) is left out, as it is the same for
// all. Building the model (or loading the checkpoint), the export and starting a session are
// timed apart, as setup. The three sides' probabilities are compared voxel by voxel over every
// slice segmented, so that no side is timed on a different network.

import { manualSeed } from '@aunet/nn';
import { describeConv2dVariant, init } from '@aunet/tensor';
import {
  AUNet, DEFAULT_DATA_DIR, PRESETS, defaultModelConfig, exportOnnx, fromSliceStack, loadRunCheckpoint, modelPredictor, predictVolume, readVolume, toSliceStack,
  type ModelConfig, type SlicePredictor, type Volume, type VolumePrediction,
} from 'aunet/node';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { errorText, median, sig, type Suite } from '../common';
import { createOrtSession, ortNote, runOrtSlices } from '../peers/ort';
import { TorchSliceServer, TorchUnavailable } from '../peers/torch-server';

/** The volume `predict` is timed on: the one the repository ships. */
export const SCAN_FILE = join(DEFAULT_DATA_DIR, 'tr_im_lungwindow.nii.gz');

/**
 * Seconds a slice in the journal version of the paper (Zhou, Canu and Ruan, Int J Imaging Syst
 * Technol 2021;31(1):16-27, doi:10.1002/ima.22527), on its GPU: the figure the issue compares with.
 */
export const PAPER_SECONDS_PER_SLICE = 0.29;

/** Slices per network call unless --batch says otherwise: one, so that the first call is the first slice alone. */
const DEFAULT_BATCH = 1;

/** One network call of a side: how many slices, and how long the network took (ms). */
interface NetworkCall {
  slices: number;
  ms: number;
}

/** A network that turns square slices into probabilities and says how long it took. */
export type Network = (images: Float32Array[]) => Promise<{ probabilities: Float32Array[]; ms: number }>;

/** Our network as `predict` builds it (`modelPredictor`), timed from the slices' upload to the probabilities on the host. */
export function ourNetwork(model: AUNet, batch: number): Network {
  const predictor = modelPredictor(model, batch);
  return async (images) => {
    const start = performance.now();
    const probabilities = await predictor.predict(images);
    return { probabilities, ms: performance.now() - start };
  };
}

/** The first `count` slices (along the header's slice axis) of `v`, as a volume of their own. */
export function firstSlices(v: Volume, count: number): Volume {
  const axis = v.sliceAxis;
  if (count >= v.dims[axis]) return v;
  const stack = toSliceStack(v.data, v.dims, axis);
  const plane = stack.dims[0] * stack.dims[1];
  const dims = [...v.dims] as [number, number, number];
  dims[axis] = count;
  return { ...v, dims, data: fromSliceStack(stack.data.slice(0, count * plane), dims, axis) };
}

/** What one side's whole scan took. */
export interface ScanRun {
  slices: number;
  totalS: number;
  calls: NetworkCall[];
  prediction: VolumePrediction;
}

/**
 * A whole scan as `predict` does it, with `network` in place of the model: `read` the volume
 * (`readVolume` of the file), take its first `slices` slices, `predictVolume`. Every network call
 * is recorded.
 */
export async function scanWith(name: string, network: Network, size: number, read: () => Volume, slices: number | null, batch: number, log: (line: string) => void): Promise<ScanRun> {
  const calls: NetworkCall[] = [];
  const predictor: SlicePredictor = {
    size,
    async predict(images) {
      const r = await network(images);
      calls.push({ slices: images.length, ms: r.ms });
      return r.probabilities;
    },
  };
  const t0 = performance.now();
  const full = read();
  const volume = slices === null ? full : firstSlices(full, slices);
  let lastLogged = 0;
  const prediction = await predictVolume(predictor, volume, {
    batch,
    onProgress: (done, total) => {
      // The first call (compilation), then about every tenth of the scan.
      if (done === calls[0].slices || done === total || done - lastLogged >= Math.max(1, Math.round(total / 10))) {
        lastLogged = done;
        const steady = calls.slice(1);
        const rate = steady.length ? `, ${(steadyMs(steady) / 1000).toFixed(2)} s/slice since the first call` : '';
        log(`  ${name}: ${done}/${total} slices, ${((performance.now() - t0) / 1000).toFixed(1)} s${rate}`);
      }
    },
  });
  const totalS = (performance.now() - t0) / 1000;
  return { slices: prediction.dims[volume.sliceAxis], totalS, calls, prediction };
}

/** Milliseconds a slice over `calls`. */
const steadyMs = (calls: NetworkCall[]) => calls.reduce((s, c) => s + c.ms, 0) / calls.reduce((s, c) => s + c.slices, 0);

/** How far a side's probabilities and mask are from ours, over every voxel segmented. */
export interface Agreement {
  /** Worst and mean |theirs - ours| of the probabilities. */
  maxDiff: number;
  meanDiff: number;
  /** Share of voxels whose mask (probability >= threshold) differs from ours. */
  maskDiffers: number;
  /** Voxels in their mask, and in ours. */
  lesionVoxels: number;
  oursLesionVoxels: number;
}

export function agreement(theirs: VolumePrediction, ours: VolumePrediction): Agreement {
  const n = ours.probabilities.length;
  if (theirs.probabilities.length !== n) throw new Error(`scan: ${theirs.probabilities.length} voxels against our ${n}`);
  let maxDiff = 0;
  let sum = 0;
  let differ = 0;
  let lesion = 0;
  let oursLesion = 0;
  for (let i = 0; i < n; i++) {
    const d = Math.abs(theirs.probabilities[i] - ours.probabilities[i]);
    // NaN counts as the worst: a side that produced NaN must not look close.
    if (!(d <= maxDiff)) maxDiff = Number.isNaN(d) ? Infinity : d;
    sum += d;
    differ += theirs.mask[i] !== ours.mask[i] ? 1 : 0;
    lesion += theirs.mask[i];
    oursLesion += ours.mask[i];
  }
  return { maxDiff, meanDiff: sum / n, maskDiffers: differ / n, lesionVoxels: lesion, oursLesionVoxels: oursLesion };
}

export interface ScanRecord {
  /** ours | torch | ort | paper (the journal's figure, not measured here). */
  side: string;
  what: string;
  slices: number | null;
  batch: number | null;
  size: number;
  /** Seconds before the scan: building the model or loading the checkpoint (ours), exporting and starting a session (ort), starting PyTorch and loading the weights (torch). */
  setup_s: number | null;
  /** Reading the file to the mask, every slice. */
  total_s: number | null;
  /** total_s / slices. */
  total_s_per_slice: number | null;
  /** The network's seconds a slice after the first call (so without compilation and first-use costs). */
  net_s_per_slice: number | null;
  /** The median over those calls of a call's seconds a slice: less moved than the mean by a busy neighbour on a shared machine. */
  net_median_s: number | null;
  /** The first network call (batch slices; with batch 1 the first slice): compilation and first-use costs. */
  first_call_s: number | null;
  /** total_s minus every network call: reading, normalising, resizing, thresholding (and, for torch, the pipe). */
  other_s: number | null;
  /** Our net_s_per_slice / this side's (above 1: this side is faster). */
  ours_over_this: number | null;
  /** This side's net_s_per_slice / the paper's 0.29 s. */
  over_paper: number | null;
  /** Against ours, over every voxel segmented. */
  max_prob_diff: number | null;
  mean_prob_diff: number | null;
  mask_differs: number | null;
  lesion_voxels: number | null;
  adapter: string;
  weights: string;
  /** Every network call's milliseconds, in order (calls of `batch` slices). */
  call_ms?: number[];
  note?: string;
}

/** The model the scan is timed with: a checkpoint's, or the paper preset's with its seeded initial weights. */
async function loadModel(checkpoint: string | null): Promise<{ model: AUNet; weights: string }> {
  if (checkpoint) {
    const { model, epoch } = await loadRunCheckpoint(checkpoint);
    return { model, weights: `${checkpoint} (epoch ${epoch})` };
  }
  manualSeed(1);
  const config: ModelConfig = defaultModelConfig({ inputSize: PRESETS.paper.size });
  return { model: new AUNet(config), weights: 'seeded initial weights (manualSeed 1): the timing does not depend on them' };
}

export const suite: Suite = {
  name: 'scan',
  description: 'predict on the shipped 100-slice volume at the paper preset',
  async run(options, log) {
    const rt = await init();
    const adapter = rt.describe();
    log(`adapter: ${adapter}`);
    const batch = options.batch ?? DEFAULT_BATCH;
    const notes: string[] = [`adapter: ${adapter}`, describeConv2dVariant()];

    let t0 = performance.now();
    const { model, weights } = await loadModel(options.checkpoint);
    model.eval();
    const config = model.config;
    const size = config.inputSize;
    const ourSetupS = (performance.now() - t0) / 1000;
    if (size !== PRESETS.paper.size) notes.push(`the checkpoint's model takes ${size}x${size} slices, not the paper preset's ${PRESETS.paper.size}x${PRESETS.paper.size}`);
    log(`model: ${config.architecture}, filters ${config.filters.join('-')}, ${size}x${size}, ${model.numParameters()} parameters; ${weights}`);
    log(`volume: ${SCAN_FILE}${options.slices ? `, first ${options.slices} slices` : ''}, batch ${batch}`);

    const read = () => readVolume(SCAN_FILE);
    // The machine is shared: the load average around each side says how alone it ran.
    const load = () => loadavg()[0].toFixed(2);
    const loads: string[] = [];
    let loadBefore = load();

    const ours = await scanWith('ours', ourNetwork(model, batch), size, read, options.slices, batch, log);
    loads.push(`ours ${loadBefore} -> ${load()}`);
    log(`ours: ${ours.slices} slices in ${ours.totalS.toFixed(1)} s`);

    // What the peers need from our model, then free the device for them.
    let onnx: Uint8Array | null = null;
    let onnxError: string | null = null;
    if (options.peers.has('ort')) {
      try {
        t0 = performance.now();
        onnx = (await exportOnnx(model)).bytes;
      } catch (e) {
        onnxError = `export failed: ${errorText(e)}`;
      }
    }
    const exportS = (performance.now() - t0) / 1000;
    const state = options.peers.has('torch') ? await model.stateDict() : null;
    model.dispose();
    rt.trim();

    const side = (name: string, what: string, setupS: number | null, run: ScanRun | null, note?: string): ScanRecord => {
      const steady = run && run.calls.length > 1 ? run.calls.slice(1) : run?.calls ?? [];
      const net = run ? steadyMs(steady) / 1000 : null;
      const oursNet = steadyMs(ours.calls.length > 1 ? ours.calls.slice(1) : ours.calls) / 1000;
      const a = run && name !== 'ours' ? agreement(run.prediction, ours.prediction) : null;
      const rec: ScanRecord = {
        side: name,
        what,
        slices: run?.slices ?? null,
        batch: run ? batch : null,
        size,
        setup_s: sig(setupS),
        total_s: sig(run?.totalS ?? null),
        total_s_per_slice: sig(run ? run.totalS / run.slices : null),
        net_s_per_slice: sig(net),
        net_median_s: sig(steady.length ? median(steady.map((c) => c.ms / c.slices)) / 1000 : null),
        first_call_s: sig(run ? run.calls[0].ms / 1000 : null),
        other_s: sig(run ? run.totalS - run.calls.reduce((s, c) => s + c.ms, 0) / 1000 : null),
        ours_over_this: sig(net ? oursNet / net : null, 3),
        over_paper: sig(net !== null ? net / PAPER_SECONDS_PER_SLICE : null, 3),
        max_prob_diff: a ? sig(a.maxDiff, 2) : null,
        mean_prob_diff: a ? sig(a.meanDiff, 2) : null,
        mask_differs: a ? sig(a.maskDiffers, 2) : null,
        lesion_voxels: run ? (a ? a.lesionVoxels : ours.prediction.mask.reduce((s, m) => s + m, 0)) : null,
        adapter,
        weights,
      };
      if (run) rec.call_ms = run.calls.map((c) => Math.round(c.ms));
      if (note) rec.note = note;
      return rec;
    };
    const records: ScanRecord[] = [side('ours', `this stack (WebGPU, ${adapter.split(' (')[0]})`, ourSetupS, ours)];

    // ONNX Runtime, in this process, after ours (the two never share the CPU).
    let ortRun: ScanRun | null = null;
    if (options.peers.has('ort')) {
      let run: ScanRun | null = null;
      let note = onnxError ?? undefined;
      let setupS: number | null = null;
      if (onnx) {
        try {
          log('ort: onnxruntime-node on our model exported to ONNX...');
          t0 = performance.now();
          const session = await createOrtSession(onnx);
          setupS = exportS + (performance.now() - t0) / 1000;
          try {
            loadBefore = load();
            run = await scanWith('ort', (images) => runOrtSlices(session, images, config.inChannels, size), size, read, options.slices, batch, log);
            loads.push(`ort ${loadBefore} -> ${load()}`);
            ortRun = run;
          } finally {
            await session.session.release();
          }
          notes.push(ortNote(session.version));
          log(`ort: ${run.slices} slices in ${run.totalS.toFixed(1)} s`);
        } catch (e) {
          note = `ort failed: ${errorText(e)}`;
          log(`  ${note}`);
        }
      }
      records.push(side('ort', 'ONNX Runtime (CPU)', setupS, run, note));
    } else notes.push('ort: not run (--no-ort)');

    // PyTorch, a child process with our weights.
    if (state) {
      let run: ScanRun | null = null;
      let note: string | undefined;
      let setupS: number | null = null;
      let server: TorchSliceServer | null = null;
      try {
        t0 = performance.now();
        server = await TorchSliceServer.start(config, state, log);
        setupS = (performance.now() - t0) / 1000;
        const s = server;
        loadBefore = load();
        run = await scanWith('torch', (images) => s.predict(images), size, read, options.slices, batch, log);
        loads.push(`torch ${loadBefore} -> ${load()}`);
        if (ortRun) {
          // Which peer is the outlier, where both differ from ours.
          const a = agreement(ortRun.prediction, run.prediction);
          notes.push(`ort against torch: max |dp| ${a.maxDiff.toExponential(2)}, mean ${a.meanDiff.toExponential(2)}, mask differs on ${(100 * a.maskDiffers).toPrecision(2)}% of voxels`);
        }
        log(`torch: ${run.slices} slices in ${run.totalS.toFixed(1)} s`);
        const peak = await server.close();
        server = null;
        notes.push(`torch: PyTorch ${s.info.torch} on the CPU, ${s.info.threads} threads, float32, our weights loaded by name (${s.info.params} parameters)${peak ? `; peak RSS ${(peak / 2 ** 30).toFixed(2)} GiB` : ''}`);
      } catch (e) {
        note = e instanceof TorchUnavailable ? `not run: ${e.message}` : `failed: ${errorText(e)}`;
        log(`  torch: ${note}`);
        notes.push(`torch: ${note}`);
      } finally {
        server?.kill();
      }
      records.push(side('torch', 'PyTorch (CPU)', setupS, run, note));
    } else notes.push('torch: not run (--no-torch)');

    records.push({
      side: 'paper',
      what: 'journal version, its GPU (reported)',
      slices: null,
      batch: null,
      size: PRESETS.paper.size,
      setup_s: null,
      total_s: null,
      total_s_per_slice: null,
      net_s_per_slice: PAPER_SECONDS_PER_SLICE,
      net_median_s: null,
      first_call_s: null,
      other_s: null,
      ours_over_this: sig(records[0].net_s_per_slice! / PAPER_SECONDS_PER_SLICE, 3),
      over_paper: 1,
      max_prob_diff: null,
      mean_prob_diff: null,
      mask_differs: null,
      lesion_voxels: null,
      adapter: 'the paper\'s GPU',
      weights: 'the paper\'s',
    });

    notes.push(
      `every side: the aunet package's predictVolume on ${SCAN_FILE} (read, normalise, resize to ${size}x${size}, network, resize back, threshold 0.5), ${batch} slice(s) a network call; weights: ${weights}`,
      'net s/slice: the network\'s seconds a slice after the first call, and their median over those calls (ours: upload, forward, sigmoid, read back; ort: session.run; torch: its forward and sigmoid, timed in Python, not the pipe); first s: the first call, which compiles our shaders (cached by Mesa between runs) and allocates',
      'total: reading the file to the mask, every slice; other s: total minus the network calls; setup (not in total): ours building the model, ort the export and session, torch starting Python and loading our weights',
      `ours/this: our net s/slice over this side's (above 1: this side is faster); x paper: this side's net s/slice over the journal's ${PAPER_SECONDS_PER_SLICE} s a slice on its GPU (the paper does not say what its figure includes)`,
      'max |dp|, mask diff: against our probabilities and mask over every voxel segmented',
      `1-minute load average before -> after each side (this process counts for about 2 while it computes): ${loads.join('; ')}`,
    );
    return {
      table: {
        columns: [
          { title: 'side', align: 'left' }, { title: 'slices' }, { title: 'batch' }, { title: 'setup s' }, { title: 'total s' }, { title: 'total s/slice' },
          { title: 'net s/slice' }, { title: 'median' }, { title: 'first s' }, { title: 'other s' }, { title: 'ours/this' }, { title: 'x paper' }, { title: 'max |dp|' }, { title: 'mask diff' },
        ],
        rows: records.map((r) => [
          r.side, r.slices, r.batch, r.setup_s, r.total_s, r.total_s_per_slice, r.net_s_per_slice, r.net_median_s, r.first_call_s, r.other_s, r.ours_over_this, r.over_paper, r.max_prob_diff, r.mask_differs,
        ]),
      },
      records,
      notes,
    };
  },
};

