// `pnpm bench queue --jobs N --workers W --kills K`: the batch segmentation service under attack,
// at a size. N small volumes (cut from the shipped scan: --slices N slices of 64x64, default 1)
// are submitted to W worker processes on a Redis of the benchmark's own; K workers are SIGKILLed
// at random moments (each replaced by a fresh one, as a supervisor would) and Redis is restarted
// once half-way. Then every job is accounted for from Redis and the disk (aunet's queueChaos, the
// scenario the queue test runs small): the last line reads `N jobs: N done once, N lost, N
// duplicated, N stuck`. Throughput counts from submitting to the last job settled; the workers'
// start-up (device, model, warm-up) is given apart.

import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalRedis } from 'aunet/node';
// The attack tools are not part of the package's entries (test/modules.test.ts keeps them apart).
import { queueChaos, queueChaosLine, writeSmallVolumes } from '../../../packages/aunet/src/attack/queue-chaos';
import { sig, type Suite } from '../common';

/** Seconds a job's lock lasts: how long a killed worker's job waits before another worker takes it. */
const LOCK_SECONDS = 5;

export const suite: Suite = {
  name: 'queue',
  description: 'the batch service: --jobs N small volumes, --workers W processes, --kills K SIGKILLs and one Redis restart; jobs done once, lost, duplicated, stuck',
  async run(options, log) {
    const jobs = options.jobs ?? 200;
    const workers = options.workers ?? 2;
    const kills = options.kills ?? 3;
    const slices = options.slices ?? 1;
    const tmp = mkdtempSync(join(tmpdir(), 'aunet-bench-queue-'));
    const redis = await startLocalRedis({ dir: join(tmp, 'redis') });
    try {
      const files = await writeSmallVolumes(join(tmp, 'in'), jobs, { size: 64, slices });
      log(`${jobs} volumes of ${slices} slice${slices > 1 ? 's' : ''} of 64x64 in ${tmp}; Redis on ${redis.url}`);
      const r = await queueChaos({ redis, files, out: join(tmp, 'out'), workers, kills, restartRedis: true, lockSeconds: LOCK_SECONDS, seed: Date.now() % 100_000, log });
      const record = {
        jobs, workers, kills: r.kills, kills_holding_job: r.killsHoldingJob, redis_restarts: r.redisRestarts, slices_per_job: slices,
        seconds: sig(r.seconds), jobs_per_s: sig(r.jobsPerSecond), worker_start_s: sig(r.startSeconds),
        done_once: r.doneOnce, lost: r.lost, duplicated: r.duplicated, stuck: r.stuck, reused: r.reused, failed: r.failed.length,
      };
      return {
        table: {
          columns: [
            { title: 'jobs' }, { title: 'workers' }, { title: 'kills' }, { title: 'Redis restarts' }, { title: 's' }, { title: 'jobs/s' }, { title: 'worker start s' },
            { title: 'done once' }, { title: 'lost' }, { title: 'duplicated' }, { title: 'stuck' }, { title: 'reused' },
          ].map((c) => ({ ...c, align: 'right' as const })),
          rows: [[jobs, workers, r.kills, r.redisRestarts, r.seconds.toFixed(1), r.jobsPerSecond.toFixed(2), r.startSeconds.toFixed(1), r.doneOnce, r.lost, r.duplicated, r.stuck, r.reused]],
        },
        records: [record],
        notes: [
          `${cpus().length} CPU cores shared by every worker process (each with a lavapipe device of its own): a job is the network (CPU-bound on lavapipe) and then writing and fsyncing its outputs and Redis round trips, which another worker's network overlaps; past that the shared cores are the limit. On machines with their own cores or GPUs each worker adds its own throughput`,
          `a killed worker's job is taken again ${LOCK_SECONDS}-${LOCK_SECONDS * 1.5} s later (lock expiry and stalled check), and its replacement spends the start-up time above before taking jobs: both count in the time`,
          `reused: jobs completed from outputs already written (a worker killed between writing them and completing the job)`,
          ...r.failed.map((f) => `failed: ${f.file}: ${f.reason}`),
        ],
        finalLine: queueChaosLine(r),
      };
    } finally {
      await redis.stop();
      rmSync(tmp, { recursive: true, force: true });
    }
  },
};
