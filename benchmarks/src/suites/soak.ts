// `pnpm bench soak --steps N`: a long run looking for leaks. A small AU-Net (filters 4-8-16, 32x32,
// batch 4, the aunet package's model and step) is trained for N steps (default 10,000) on fixed
// random data; every 100 steps the GPU bytes in use, the pooled bytes, the pipelines compiled and
// the process's resident set are sampled. After warm-up (the first 10% of the steps) each must
// stay flat: the suite reports the least-squares slope of each per 1,000 steps and the change from
// the end of warm-up to the end. Host-side leaks (objects kept by Dawn's bindings, bind groups,
// staging buffers) show in the resident set.

import { Adam, manualSeed } from '@aunet/nn';
import { Rng, init, runtime } from '@aunet/tensor';
import { AUNet, batchLossAndGradients, defaultModelConfig } from 'aunet';
import { sig, type Suite } from '../common';

interface Sample {
  step: number;
  bytes_in_use: number;
  pooled_bytes: number;
  pipelines: number;
  rss: number;
  ms_per_step: number;
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den ? num / den : 0;
}

export const suite: Suite = {
  name: 'soak',
  description: 'leak check over a long training run',
  async run(options, log) {
    const rt = await init();
    const steps = options.steps ?? 10_000;
    const every = 100;
    manualSeed(1);
    const config = defaultModelConfig({ filters: [4, 8, 16], inputSize: 32 });
    const model = new AUNet(config);
    const opt = new Adam(model, { lr: 1e-3 });
    const rng = new Rng(3);
    const n = 4;
    const plane = 32 * 32;
    const x = Float32Array.from({ length: n * plane }, () => rng.uniform());
    const y = Float32Array.from({ length: n * plane }, () => (rng.uniform() < 0.3 ? 1 : 0));
    const spec = { loss: 'ftl' as const, alpha: 0.7, beta: 0.3, gamma: 4 / 3 };
    const samples: Sample[] = [];
    let t0 = performance.now();
    let lastLoss = NaN;
    for (let step = 1; step <= steps; step++) {
      lastLoss = await batchLossAndGradients(model, x, y, n, spec, n);
      opt.step();
      opt.zeroGrad();
      if (step % every === 0 || step === steps) {
        await rt.sync();
        const m = rt.memory();
        const now = performance.now();
        samples.push({
          step,
          bytes_in_use: m.bytesInUse,
          pooled_bytes: m.pooledBytes,
          pipelines: rt.counters.pipelinesCompiled,
          rss: process.memoryUsage().rss,
          ms_per_step: (now - t0) / every,
        });
        t0 = now;
        if (step % (10 * every) === 0) log(`step ${step}/${steps}: loss ${lastLoss.toFixed(4)}, GPU ${(m.bytesInUse / 2 ** 20).toFixed(1)} MiB in use, ${(m.pooledBytes / 2 ** 20).toFixed(1)} MiB pooled, RSS ${(samples[samples.length - 1].rss / 2 ** 20).toFixed(0)} MiB`);
      }
    }
    opt.dispose();
    model.dispose();

    const after = samples.filter((s) => s.step > steps / 10);
    const xs = after.map((s) => s.step / 1000);
    const metrics = ['bytes_in_use', 'pooled_bytes', 'pipelines', 'rss'] as const;
    const summary = metrics.map((k) => {
      const ys = after.map((s) => s[k]);
      return { metric: k, slope_per_1000_steps: after.length > 1 ? slope(xs, ys) : 0, from: ys[0] ?? null, to: ys[ys.length - 1] ?? null };
    });
    const notes = [
      `adapter: ${rt.describe()}`,
      `${steps} steps of AU-Net 4-8-16 at 32x32, batch 4, focal Tversky, Adam; final loss ${lastLoss.toFixed(4)}`,
      ...summary.map((s) => `${s.metric}: slope ${sig(s.slope_per_1000_steps, 3)} per 1000 steps after warm-up (${s.from} -> ${s.to})`),
    ];
    const shown = samples.filter((s) => s.step % 1000 === 0 || s.step === steps);
    return {
      table: {
        columns: [{ title: 'step' }, { title: 'GPU MiB in use' }, { title: 'pooled MiB' }, { title: 'pipelines' }, { title: 'RSS MiB' }, { title: 'ms/step' }],
        rows: shown.map((s) => [s.step, sig(s.bytes_in_use / 2 ** 20, 4), sig(s.pooled_bytes / 2 ** 20, 4), s.pipelines, sig(s.rss / 2 ** 20, 4), sig(s.ms_per_step, 3)]),
      },
      records: [{ suite: 'soak', steps, adapter: rt.describe(), summary, samples }],
      notes,
    };
  },
};
