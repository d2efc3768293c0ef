// Node-only: the batch service attacked. Worker processes are SIGKILLed at random moments and
// Redis is restarted in the middle of a batch; then every job is accounted for: done once (its
// outputs complete, for its input and the model), lost (not done), duplicated (computed more than
// once: counted from the line a worker logs on the job once its outputs are written), stuck
// (still waiting or running). The queue's test runs it small; `pnpm bench queue` at scale.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Job } from 'bullmq';
import { DEFAULT_DATA_DIR, readVolume, writeNifti } from '../data/files';
import { moduleFile, moduleLoaderArgs, PACKAGE_DIR } from '../package-dir';
import { fileSha256, predictionDone, predictionInputHash } from '../prediction-files';
import type { LocalRedis } from '../service/local-redis';
import { COMPUTED_LOG, redisConnection, segmentationQueue, type SegmentationJob, type SegmentationResult } from '../service/queue';
import { submitSegmentation, waitForBatch, type SubmitOptions, type SubmittedJob } from '../service/submit';
import { SHIPPED_MODEL_FILE } from '../shipped-model';

/**
 * Writes `count` small volumes (vol-000.nii.gz, ...) into `dir`: `slices` consecutive slices of
 * the shipped CT volume, box-averaged from 512x512 to `size` x `size` (uint8, as the shipped
 * file), each volume from another place in it. Returns their paths.
 */
export async function writeSmallVolumes(dir: string, count: number, o: { size?: number; slices?: number } = {}): Promise<string[]> {
  const size = o.size ?? 64;
  const slices = o.slices ?? 1;
  const source = readVolume(join(DEFAULT_DATA_DIR, 'tr_im_lungwindow.nii.gz'));
  const [nx, ny, nz] = source.dims;
  if (slices > nz) throw new RangeError(`writeSmallVolumes: the shipped volume has ${nz} slices, ${slices} asked`);
  const fx = nx / size;
  const fy = ny / size;
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const first = (i * 37 + 11) % (nz - slices + 1);
    const data = new Uint8Array(size * size * slices);
    for (let k = 0; k < slices; k++) {
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          let sum = 0;
          let n = 0;
          for (let yy = Math.floor(y * fy); yy < Math.floor((y + 1) * fy); yy++) {
            for (let xx = Math.floor(x * fx); xx < Math.floor((x + 1) * fx); xx++, n++) sum += source.data[xx + nx * (yy + ny * (first + k))];
          }
          data[x + size * (y + size * k)] = Math.round(sum / n);
        }
      }
    }
    const file = join(dir, `vol-${String(i).padStart(3, '0')}.nii.gz`);
    const pixdim = [...source.space.pixdim];
    pixdim[1] *= fx;
    pixdim[2] *= fy;
    await writeNifti(file, { dims: [size, size, slices], data, datatype: 'uint8', space: { ...source.space, pixdim, qformCode: 0, sformCode: 0 } });
    files.push(file);
  }
  return files;
}

/** A worker in a process of its own, as `pnpm --filter aunet worker` starts it. */
export interface WorkerProcess {
  child: ChildProcess;
  /** Resolves once it takes jobs (its model loaded and warmed up); rejects if it exits first. */
  ready: Promise<void>;
  /** Resolves with its exit code (null when killed by a signal) and signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything it printed. */
  output: () => string;
  /** The ids of the jobs it works on now, by what it printed. */
  holding: () => string[];
}

/** Starts `worker --redis URL` in a process of its own. */
export function spawnWorker(redisUrl: string, o: { lockSeconds?: number; checkpoint?: string; concurrency?: number; env?: NodeJS.ProcessEnv } = {}): WorkerProcess {
  const args = ['--redis', redisUrl, '--lock-seconds', String(o.lockSeconds ?? 60), '--concurrency', String(o.concurrency ?? 1)];
  if (o.checkpoint) args.push('--checkpoint', o.checkpoint);
  const child = spawn(process.execPath, [...moduleLoaderArgs(), moduleFile('cli/worker'), ...args], { cwd: PACKAGE_DIR, stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env });
  let output = '';
  const held = new Set<string>();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise<void>((resolve, reject) => {
    const seen = (b: Buffer) => {
      output += b.toString();
      for (const m of b.toString().matchAll(/job (\S+): .*$/gm)) {
        if (/\(attempt \d+\)$/.test(m[0])) held.add(m[1]);
        else held.delete(m[1]);
      }
      if (/waiting for jobs/.test(output)) resolve();
    };
    child.stdout!.on('data', seen);
    child.stderr!.on('data', seen);
    void exited.then(({ code, signal }) => reject(new Error(`worker exited (${signal ?? `code ${code}`}) before taking jobs: ${output.trim().split('\n').slice(-3).join(' | ')}`)));
  });
  ready.catch(() => {});
  return { child, ready, exited, output: () => output, holding: () => [...held] };
}

export interface QueueChaosOptions {
  redis: LocalRedis;
  /** Inputs, one job each. */
  files: string[];
  /** Output folder of every job. */
  out: string;
  workers: number;
  /** Workers SIGKILLed, each at a random moment of the batch, each replaced by a fresh one. */
  kills: number;
  /** Restart Redis once half-way through the batch. */
  restartRedis: boolean;
  /** The workers' --lock-seconds: how long a killed worker's job waits before it is taken again. */
  lockSeconds: number;
  checkpoint?: string;
  submit?: SubmitOptions;
  /** Give up waiting when no job settles for this long (default: 3 locks + 120 s); the jobs left count as stuck. */
  stallSeconds?: number;
  /** Seed of the kill moments. */
  seed?: number;
  log?: (line: string) => void;
}

/** How a batch under attack came out. */
export interface QueueChaosReport {
  jobs: number;
  doneOnce: number;
  lost: number;
  duplicated: number;
  stuck: number;
  /** Jobs failed for good, with their reasons (each also counted as lost). */
  failed: { file: string; reason: string }[];
  /** Jobs completed without recomputing (their outputs were there: a retry after a kill between writing and completing). */
  reused: number;
  kills: number;
  /** Of the kills, those of a worker in the middle of a job (the kills that must lose nothing). */
  killsHoldingJob: number;
  redisRestarts: number;
  /** From submitting to the last job settled; the workers' start-up before it not counted. */
  seconds: number;
  jobsPerSecond: number;
  /** Seconds the first workers took to start (device, model, warm-up), in parallel. */
  startSeconds: number;
  submitted: SubmittedJob[];
}

/** A seeded uniform random number generator (mulberry32). */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Submits `files` to workers that are killed at random and to a Redis restarted once, then accounts for every job. */
export async function queueChaos(o: QueueChaosOptions): Promise<QueueChaosReport> {
  const log = o.log ?? (() => {});
  const rand = random(o.seed ?? 1);
  const workers = new Set<WorkerProcess>();
  const start = () => {
    const w = spawnWorker(o.redis.url, { lockSeconds: o.lockSeconds, checkpoint: o.checkpoint });
    workers.add(w);
    void w.exited.then(() => workers.delete(w));
    return w;
  };
  try {
    return await attackBatch(o, log, rand, workers, start);
  } finally {
    // On any way out, no worker is left behind (a failed check would otherwise leave them reconnecting for ever).
    for (const w of workers) w.child.kill('SIGKILL');
  }
}

async function attackBatch(o: QueueChaosOptions, log: (line: string) => void, rand: () => number, workers: Set<WorkerProcess>, start: () => WorkerProcess): Promise<QueueChaosReport> {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: o.workers }, () => start().ready));
  const startSeconds = (performance.now() - t0) / 1000;
  log(`${o.workers} worker${o.workers > 1 ? 's' : ''} ready in ${startSeconds.toFixed(1)} s`);

  const redis = redisConnection(o.redis.url);
  const n = o.files.length;
  // Kill moments as fractions of the batch settled (random, apart), and Redis's restart half-way.
  const killAt = Array.from({ length: o.kills }, () => 0.05 + 0.85 * rand()).sort((a, b) => a - b);
  let kills = 0;
  let killsHoldingJob = 0;
  let redisRestarts = 0;
  let busy = Promise.resolve();
  const attack = (settled: number) => {
    while (killAt.length && settled >= killAt[0] * n) {
      killAt.shift();
      const delay = Math.round(rand() * 500);
      busy = busy.then(async () => {
        await new Promise((r) => setTimeout(r, delay));
        const alive = [...workers].filter((w) => w.child.exitCode === null && w.child.signalCode === null);
        // A worker in the middle of a job, where there is one: that is the kill that must lose nothing.
        const working = alive.filter((w) => w.holding().length);
        const pool = working.length ? working : alive;
        if (!pool.length) return;
        const victim = pool[Math.floor(rand() * pool.length)];
        victim.child.kill('SIGKILL');
        kills++;
        if (victim.holding().length) killsHoldingJob++;
        log(`SIGKILL worker ${victim.child.pid}${victim.holding().length ? ` holding job ${victim.holding().join(', ')}` : ' (idle)'} (${kills}/${o.kills}) at ${settled}/${n} settled; starting another`);
        start().ready.catch((e) => log(`a replacement worker did not start: ${(e as Error).message}`));
      });
    }
    if (o.restartRedis && !redisRestarts && settled >= n / 2) {
      redisRestarts++;
      busy = busy.then(async () => {
        log(`restarting Redis at ${settled}/${n} settled`);
        await o.redis.restart();
        log('Redis is back');
      });
    }
  };

  const tSubmit = performance.now();
  const submitted = await submitSegmentation(redis, o.files, { ...o.submit, out: o.out });
  log(`submitted ${submitted.length} jobs`);
  const stallMs = (o.stallSeconds ?? 3 * o.lockSeconds + 120) * 1000;
  let lastSettled = 0;
  let lastChange = performance.now();
  const abort = new AbortController();
  const watchdog = setInterval(() => {
    if (performance.now() - lastChange > stallMs) abort.abort();
  }, 1000);
  const summary = await waitForBatch(
    redis,
    submitted,
    (s) => {
      const settled = s.done + s.failed;
      if (settled !== lastSettled) {
        lastSettled = settled;
        lastChange = performance.now();
        if (settled % Math.max(1, Math.round(n / 10)) === 0) log(`${settled}/${n} settled`);
      }
      attack(settled);
    },
    { pollMs: 1000, signal: abort.signal },
  );
  clearInterval(watchdog);
  const seconds = (performance.now() - tSubmit) / 1000;
  await busy;

  // Account for every job from Redis and the disk.
  const queue = segmentationQueue(redis);
  const modelSha256 = fileSha256(o.checkpoint ?? SHIPPED_MODEL_FILE);
  let doneOnce = 0;
  let lost = 0;
  let duplicated = 0;
  let stuck = 0;
  let reused = 0;
  const failed: { file: string; reason: string }[] = [];
  for (const j of submitted) {
    const job = await Job.fromId<SegmentationJob, SegmentationResult>(queue, j.id);
    const { logs } = await queue.getJobLogs(j.id, 0, -1);
    const computed = logs.filter((l) => l.startsWith(COMPUTED_LOG)).length;
    if (computed > 1) duplicated++;
    const state = job ? await job.getState() : 'missing';
    if (['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'].includes(state)) {
      stuck++;
      continue;
    }
    const d = job?.data;
    const complete = state === 'completed' && d && predictionDone(d.out, j.stem.slice(d.out.length + 1), {
      inputSha256: predictionInputHash({ file: d.file }), modelSha256, threshold: d.threshold, tta: d.tta, probabilities: d.probabilities, pictures: d.pictures,
    });
    if (complete && computed <= 1) doneOnce++;
    else if (!complete) lost++;
    if (complete && job?.returnvalue?.reused) reused++;
    if (state === 'failed') failed.push({ file: j.file, reason: job?.failedReason ?? '' });
  }
  await queue.close();
  await redis.quit();
  await Promise.all([...workers].map((w) => (w.child.kill('SIGTERM'), w.exited)));
  return {
    jobs: n, doneOnce, lost, duplicated, stuck, failed, reused, kills, killsHoldingJob, redisRestarts, seconds,
    jobsPerSecond: summary.done.length / seconds, startSeconds, submitted,
  };
}

/** The report's last line: `N jobs: N done once, N lost, N duplicated, N stuck`. */
export function queueChaosLine(r: QueueChaosReport): string {
  return `${r.jobs} jobs: ${r.doneOnce} done once, ${r.lost} lost, ${r.duplicated} duplicated, ${r.stuck} stuck`;
}
