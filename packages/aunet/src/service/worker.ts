// A segmentation worker: takes jobs from the queue and runs `predict`'s library code on each
// (predictFile, the same outputs), reporting slices done as the job's progress. What makes a
// batch lose nothing and do nothing twice:
// - outputs are written atomically, the JSON last, naming the input's and the model's sha256, so
//   a job whose outputs are complete for the same input and model is completed without
//   recomputing (a retry after a kill between writing and completing, a batch submitted again);
// - a file the loader refuses (DataError) fails its job at once, unretried (UnrecoverableError),
//   with the loader's one line; anything else (a lost device, memory exhausted) is retried with
//   backoff (JOB_OPTIONS), then failed with its reason;
// - the job's lock is renewed by a timer while the job runs; a worker that dies stops renewing it,
//   and once it expires BullMQ's stalled-job check gives the job to another worker;
// - network calls run one at a time in a process: @aunet/tensor's `scope` keeps one stack of
//   scopes per process, which two interleaved forward passes would corrupt.
// Node-only.

import { hostname } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { init } from '@aunet/tensor';
import { DataError } from '../data/errors';
import { batchThatFits, mirroredTTA, modelPredictor, type SlicePredictor } from '../predict';
import { fileSha256, outputStem, predictFile, predictionDone, predictionInputHash, removeStaleTemporaries } from '../prediction-files';
import { loadRunCheckpoint } from '../run-folder';
import { COMPUTED_LOG, QUEUE_NAME, REUSED_LOG, oneLine, redisConnection, redisState, requireRedis, type SegmentationJob, type SegmentationProgress, type SegmentationResult } from './queue';

export interface SegmentationWorkerOptions {
  /** redis://host:port of the queue's Redis. */
  redis: string;
  /** The model's checkpoint file (a run's, an exported one, the shipped model). */
  checkpoint: string;
  /** Jobs held at once (default 1): reading, normalising and writing one overlap another's network calls, which run one at a time. */
  concurrency?: number;
  /** Slices per network call (default 4, fewer where they would not fit). */
  batch?: number;
  /**
   * How long a job's lock lasts without renewal (default 60 s): it must outlast the longest step
   * that blocks the process (normalising a large volume, encoding its PNGs and gzip), and is how
   * long a killed worker's job waits before another worker takes it.
   */
  lockSeconds?: number;
  /** Lines on what the worker does (jobs taken, done, failed; Redis lost and back). */
  log?: (line: string) => void;
}

/** A running worker. */
export interface SegmentationWorker {
  /** host:pid, as the jobs' logs and results name it. */
  name: string;
  /** The adapter, in one line. */
  adapter: string;
  /** What the checkpoint is: architecture, size, epoch. */
  model: string;
  /** Stops taking jobs, lets the current ones finish, then closes; resolves when it has. */
  stop(): Promise<void>;
  /** Resolves when the worker has closed: null after stop(), else why it closed itself (the device was lost). */
  closed: Promise<string | null>;
}

/** Whether an error means this process's WebGPU device is gone (every later job would fail here too). */
const deviceLost = (e: unknown) => /device was lost/i.test(oneLine(e));

/** `predictor` with its calls run one after another, whoever makes them. */
function oneAtATime(predictor: SlicePredictor): SlicePredictor {
  let tail: Promise<unknown> = Promise.resolve();
  return {
    size: predictor.size,
    predict(images) {
      const run = tail.then(() => predictor.predict(images));
      tail = run.catch(() => {});
      return run;
    },
  };
}

/**
 * Starts a worker: the device, the model (run on blank slices at every batch size, so that its shaders are
 * compiled before the first job's lock is taken), then the queue. Resolves once it takes jobs.
 */
export async function startSegmentationWorker(o: SegmentationWorkerOptions): Promise<SegmentationWorker> {
  const log = o.log ?? (() => {});
  const name = `${hostname()}:${process.pid}`;
  const concurrency = o.concurrency ?? 1;
  const batch = o.batch ?? 4;
  const lockMs = Math.round((o.lockSeconds ?? 60) * 1000);
  if (!(concurrency >= 1 && Number.isInteger(concurrency))) throw new Error(`concurrency must be a whole number of at least 1, got ${concurrency}`);
  if (!(lockMs >= 1000)) throw new Error(`the lock must last at least 1 s, got ${o.lockSeconds} s`);

  const redis = redisConnection(o.redis);
  await requireRedis(redis, o.redis);
  const connection = redisState(redis, log, 'worker');
  const rt = await init();
  const { config, model, epoch } = await loadRunCheckpoint(o.checkpoint);
  const modelSha256 = fileSha256(o.checkpoint);
  const s = config.model.inputSize;
  const plain = oneAtATime(modelPredictor(model, batch));
  const tta = mirroredTTA(plain);
  // Every batch size a volume can need (full batches and the remainder), so that no shader is
  // compiled while a job's lock is held (on lavapipe a cold compile takes seconds a kernel).
  const blank = new Float32Array(s * s);
  for (let k = 1; k <= batchThatFits(config.model, batch); k++) await plain.predict(Array.from({ length: k }, () => blank));

  let closedBy: string | null = null;
  const processor = async (job: Job<SegmentationJob, SegmentationResult>): Promise<SegmentationResult> => {
    const d = job.data;
    const input = { file: d.file, lungMask: d.lungMask, series: d.series };
    const stemName = outputStem(d.file);
    const stem = join(d.out, stemName);
    try {
      // Not a DataError: the file may exist on the other workers (a mount missing here), so the job is retried, maybe elsewhere.
      for (const f of [d.file, d.lungMask]) if (f && !existsSync(f)) throw new Error(`${f} does not exist on worker ${name}: the input must be on storage every worker sees, under the same path`);
      const inputSha256 = predictionInputHash(input);
      const identity = { inputSha256, modelSha256, threshold: d.threshold, tta: d.tta, probabilities: d.probabilities, pictures: d.pictures };
      if (predictionDone(d.out, stemName, identity)) {
        await job.log(`${REUSED_LOG} by ${name}: ${stem}_lesions.json names this input and model`);
        return { stem, reused: true, slices: 0, seconds: 0, worker: name };
      }
      // Temporaries for these outputs untouched for a quarter of a lock are a killed worker's: its
      // job comes back at least half a lock after its last renewal. A live writer's (another job
      // for the same outputs: a batch submitted again while it runs) are fresher, and stay.
      await removeStaleTemporaries(d.out, stemName, lockMs / 4);
      const t0 = performance.now();
      const r = await predictFile(d.tta ? tta : plain, input, {
        out: d.out,
        threshold: d.threshold,
        batch,
        checkpoint: o.checkpoint,
        epoch,
        model: config.model,
        tta: d.tta,
        probabilities: d.probabilities,
        pictures: d.pictures,
        inputSha256,
        modelSha256,
        onProgress: (done, total) => {
          const progress: SegmentationProgress = { slices: done, of: total };
          job.updateProgress(progress).catch(() => {});
        },
      });
      const seconds = (performance.now() - t0) / 1000;
      await job.log(`${COMPUTED_LOG} by ${name}: ${r.slices} slices in ${seconds.toFixed(1)} s`);
      return { stem, reused: false, slices: r.slices, seconds, worker: name };
    } catch (e) {
      if (e instanceof DataError) throw new UnrecoverableError(oneLine(e));
      if (deviceLost(e) && !closedBy) {
        closedBy = `the WebGPU device was lost (${oneLine(e)}): this worker takes no more jobs; its job is retried by another`;
        void worker.close();
      }
      throw new Error(oneLine(e));
    }
  };

  const worker = new Worker<SegmentationJob, SegmentationResult>(QUEUE_NAME, processor, {
    connection: connection.redis,
    concurrency,
    lockDuration: lockMs,
    // How often workers look for jobs whose lock expired: a killed worker's job waits between
    // lockDuration and lockDuration + stalledInterval before it is taken again.
    stalledInterval: Math.min(30_000, Math.max(1000, Math.round(lockMs / 2))),
    // A job interrupted this many times (workers killed, Redis restarted) fails as stalled; one
    // (BullMQ's default) would fail a job that two random kills happen to hit.
    maxStalledCount: 5,
    autorun: false,
  });
  // Connection trouble is told by redisState; anything else the worker reports, once per error.
  worker.on('error', (e) => {
    if (connection.redis.status !== 'ready') connection.onError(e);
    else log(`worker: ${oneLine(e)}`);
  });
  worker.on('active', (job) => log(`job ${job.id}: ${job.data.file} (attempt ${job.attemptsMade + 1})`));
  worker.on('completed', (job, r) => log(`job ${job.id}: ${r.reused ? 'outputs already there, not recomputed' : `${r.slices} slices in ${r.seconds.toFixed(1)} s`} -> ${r.stem}_lesions.*`));
  worker.on('failed', (job, e) => {
    if (!job) return;
    const final = e instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
    log(`job ${job.id}: ${final ? 'failed' : `attempt ${job.attemptsMade} failed, retried later`}: ${oneLine(e)}`);
  });
  const running = worker.run();
  const closed = running.then(
    async () => {
      model.dispose();
      await connection.redis.quit().catch(() => connection.redis.disconnect());
      return closedBy;
    },
  );
  return {
    name,
    adapter: rt.describe(),
    model: `${o.checkpoint}: ${config.model.architecture}, ${config.model.inputSize}x${config.model.inputSize}, epoch ${epoch}`,
    async stop() {
      await worker.close();
      await closed;
    },
    closed,
  };
}
