// `pnpm bench dispatch`: what it costs to talk to the device, in microseconds.
//   roundtrip          one tiny dispatch + submit + readback of 4 bytes (t.data())
//   batched            200 tiny dispatches encoded into one batch, one submit, one sync: time / 200
//   batched-encode     the CPU part of the above (encoding only, before the sync): time / 200
//   submit-each        200 tiny dispatches, each submitted on its own (flush), one sync: time / 200
//   sync-empty         runtime().sync() with nothing pending (submit + onSubmittedWorkDone)
//   readback-16MiB     t.data() of a 16 MiB tensor
//   write-16MiB        tensor() from 16 MiB of host data + sync
//   wait-cpu           main-thread CPU time while sync() waits on one long kernel (Linux: from
//                      /proc; dawn.node's own polling would keep the thread busy the whole wait)

import { readFileSync } from 'node:fs';
import { ENTRY_1D, dispose, grid1d, init, launch, linearIndex, runtime, tensor, uniformStruct, zeros, type Tensor } from '@aunet/tensor';

const ADD_ONE_UNIFORMS = uniformStruct('bench-add-one', { n: 'u32' });
const SPIN_UNIFORMS = uniformStruct('bench-spin', { n: 'u32', iters: 'u32' });
import { median, now, sig, type Suite, type SuiteOptions } from '../common';

// One invocation per element, adds 1; index recovered as grid1d lays out workgroups.
const ADD_ONE = `
${ADD_ONE_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
${ENTRY_1D(64)} {
  ${linearIndex(64)}
  if (i < p.n) { x[i] = x[i] + 1.0; }
}`;

// A long compute-bound kernel: each invocation iterates a multiply-add p.iters times.
const SPIN_KERNEL = `
${SPIN_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
${ENTRY_1D(64)} {
  ${linearIndex(64)}
  if (i >= p.n) { return; }
  var v = x[i];
  for (var k = 0u; k < p.iters; k++) { v = v * 0.999 + 0.001; }
  x[i] = v;
}`;

/** CPU seconds used so far by this process's main thread (Linux: /proc schedstat, in ns), or null. */
function mainThreadCpu(): number | null {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
  } catch {
    return null;
  }
}

const BATCH = 200;
const MIB16 = 16 * 2 ** 20;

interface Row {
  metric: string;
  what: string;
  samples: number[]; // µs
  gbps?: number;
}

async function sample(n: number, warmup: number, fn: () => Promise<number>): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await fn());
  return out;
}

export const suite: Suite = {
  name: 'dispatch',
  description: 'runtime overheads',
  async run(options: SuiteOptions, log) {
    const rt = await init();
    const adapter = rt.describe();
    log(`adapter: ${adapter}`);
    const q = options.quick;
    const n = q ? 50 : 200;
    const tiny = tensor([0], [1]);
    const uniforms = ADD_ONE_UNIFORMS.pack({ n: 1 });
    const kick = () => launch({ kernel: 'bench-add-one', code: ADD_ONE, grid: grid1d(1, 64), bind: [tiny], uniforms });
    const rows: Row[] = [];
    const want = (metric: string) => !options.only || metric.toLowerCase().includes(options.only.toLowerCase());

    if (want('roundtrip')) {
      log('roundtrip...');
      rows.push({
        metric: 'roundtrip',
        what: '1 tiny dispatch + submit + 4 B readback',
        samples: await sample(n, 20, async () => {
          const t0 = now();
          kick();
          await tiny.data();
          return (now() - t0) * 1000;
        }),
      });
    }
    if (want('batched') || want('batched-encode')) {
      log('batched...');
      const encode: number[] = [];
      const total = await sample(q ? 10 : 30, 3, async () => {
        await rt.sync();
        const t0 = now();
        for (let i = 0; i < BATCH; i++) kick();
        const t1 = now();
        await rt.sync();
        encode.push(((t1 - t0) * 1000) / BATCH);
        return ((now() - t0) * 1000) / BATCH;
      });
      rows.push({ metric: 'batched', what: `per dispatch, ${BATCH} in one submit + 1 sync`, samples: total });
      rows.push({ metric: 'batched-encode', what: `per dispatch, CPU encoding only (of the above)`, samples: encode.slice(-total.length) });
    }
    if (want('submit-each')) {
      log('submit-each...');
      rows.push({
        metric: 'submit-each',
        what: `per dispatch, ${BATCH} submits of 1 + 1 sync`,
        samples: await sample(q ? 10 : 30, 3, async () => {
          await rt.sync();
          const t0 = now();
          for (let i = 0; i < BATCH; i++) {
            kick();
            rt.flush();
          }
          await rt.sync();
          return ((now() - t0) * 1000) / BATCH;
        }),
      });
    }
    if (want('sync-empty')) {
      log('sync-empty...');
      await rt.sync();
      rows.push({
        metric: 'sync-empty',
        what: 'runtime().sync() with nothing pending',
        samples: await sample(n, 20, async () => {
          const t0 = now();
          await rt.sync();
          return (now() - t0) * 1000;
        }),
      });
    }
    if (want('readback-16MiB') || want('write-16MiB')) {
      const elems = MIB16 / 4;
      const big: Tensor = zeros([elems]);
      await rt.sync();
      if (want('readback-16MiB')) {
        log('readback-16MiB...');
        const s = await sample(q ? 5 : 20, 2, async () => {
          const t0 = now();
          await big.data();
          return (now() - t0) * 1000;
        });
        rows.push({ metric: 'readback-16MiB', what: 't.data() of 16 MiB', samples: s, gbps: MIB16 / (median(s) * 1e3) });
      }
      if (want('write-16MiB')) {
        log('write-16MiB...');
        const host = new Float32Array(elems);
        const s = await sample(q ? 5 : 20, 2, async () => {
          const t0 = now();
          const t = tensor(host, [elems]);
          await rt.sync();
          const dt = (now() - t0) * 1000;
          t.dispose();
          return dt;
        });
        rows.push({ metric: 'write-16MiB', what: 'tensor(16 MiB of host data) + sync', samples: s, gbps: MIB16 / (median(s) * 1e3) });
      }
      big.dispose();
    }
    if (want('wait-cpu') && mainThreadCpu() !== null) {
      log('wait-cpu...');
      const elems = 16384;
      const buf = zeros([elems]);
      const run = (iters: number) => launch({ kernel: 'bench-spin', code: SPIN_KERNEL, grid: grid1d(elems, 64), bind: [buf], uniforms: SPIN_UNIFORMS.pack({ n: elems, iters }) });
      run(1); // compile first
      await rt.sync();
      // Calibrate the loop to about 300 ms of device time.
      let iters = 1000;
      for (;;) {
        const t0 = now();
        run(iters);
        await rt.sync();
        const ms = now() - t0;
        if (ms > 100 || iters > 1e8) {
          iters = Math.min(0xffffffff, Math.max(1, Math.round((iters * 300) / ms)));
          break;
        }
        iters *= 8;
      }
      const wall: number[] = [];
      const cpu: number[] = [];
      for (let i = 0; i < (q ? 3 : 8); i++) {
        const t0 = now();
        const c0 = mainThreadCpu()!;
        run(iters);
        await rt.sync();
        cpu.push((mainThreadCpu()! - c0) * 1e6);
        wall.push((now() - t0) * 1000);
      }
      const share = cpu.reduce((a, b) => a + b, 0) / wall.reduce((a, b) => a + b, 0);
      rows.push({ metric: 'wait-cpu', what: `main-thread CPU in a sync() on a ${Math.round(median(wall) / 1000)} ms kernel (${(100 * share).toFixed(0)}% of the wait)`, samples: cpu });
      buf.dispose();
    }
    dispose(tiny);
    await rt.sync();

    const records = rows.map((r) => ({
      suite: 'dispatch',
      metric: r.metric,
      what: r.what,
      us: sig(median(r.samples))!,
      min_us: sig(Math.min(...r.samples))!,
      runs: r.samples.length,
      gbps: sig(r.gbps ?? null),
      adapter,
    }));
    return {
      table: {
        columns: [
          { title: 'metric', align: 'left' },
          { title: 'what', align: 'left' },
          { title: 'median µs' },
          { title: 'min µs' },
          { title: 'runs' },
          { title: 'GB/s' },
        ],
        rows: records.map((r) => [r.metric, r.what, r.us, r.min_us, r.runs, r.gbps]),
      },
      records,
      notes: [`adapter: ${adapter}`, `memory after: ${JSON.stringify(rt.memory())}`],
    };
  },
};
