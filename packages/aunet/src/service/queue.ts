// The batch segmentation service's queue: its name, what a job carries and returns, the Redis
// connection, and how jobs are retried. The engine is BullMQ on Redis (the job queue Node users
// of this field put between scans and workers: locks renewed while a job runs, stalled jobs
// handed to another worker, retries with backoff, progress and logs per job), rather than a
// scheduler of our own. Node-only.

import { Queue, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import type { OverlayStyle } from '../overlay';

/** The queue every worker and `submit` share (a Redis server may hold other queues beside it). */
export const QUEUE_NAME = 'aunet-segment';

/** One job: one volume or DICOM series, by a path every worker sees, and where its outputs go. */
export interface SegmentationJob {
  /** The input: a .nii / .nii.gz file, a DICOM series' folder or zip (absolute). */
  file: string;
  lungMask?: string;
  series?: string;
  /** The folder the outputs go to (absolute, on storage every worker sees). */
  out: string;
  threshold: number;
  tta: boolean;
  probabilities: boolean;
  pictures: OverlayStyle | 'none';
}

/** What a completed job returns. */
export interface SegmentationResult {
  /** The outputs' path prefix (out/NAME): NAME_lesions.nii.gz, .csv, .json, NAME_png/. */
  stem: string;
  /** True when the outputs were there already for the same input and model, and nothing was computed. */
  reused: boolean;
  slices: number;
  /** Seconds the network and the writing took (0 when reused). */
  seconds: number;
  /** The worker that completed it (host:pid). */
  worker: string;
}

/** Progress a job reports while it runs. */
export interface SegmentationProgress {
  slices: number;
  of: number;
}

/** The line a worker logs on the job once its outputs are written (read back by the benchmark to count jobs computed twice). */
export const COMPUTED_LOG = 'computed';
/** The line a worker logs when the outputs were there already. */
export const REUSED_LOG = 'reused';

/**
 * Tries per job and the wait between them: a transient failure (a lost device, memory
 * exhausted, a worker that crashed) is tried again after 5 s, 10 s, 20 s, then the job fails with
 * the last reason. A file the loader refuses fails at once (see worker.ts).
 */
export const JOB_OPTIONS: JobsOptions = {
  attempts: 4,
  backoff: { type: 'exponential', delay: 5000 },
  // Kept so that `queue` can show them and `submit --wait` read their outcome; old ones go.
  removeOnComplete: { age: 7 * 24 * 3600 },
  removeOnFail: { age: 30 * 24 * 3600 },
};

/**
 * A Redis connection for BullMQ: maxRetriesPerRequest null, so that commands wait through a
 * restart of Redis instead of failing (BullMQ requires it of workers), and reconnecting for ever
 * at most 2 s apart (ioredis's default strategy). Errors while Redis is down go to `onError`
 * (else an unhandled 'error' event would end the process).
 */
export function redisConnection(url: string, onError: (e: Error) => void = () => {}): Redis {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`--redis takes a URL such as redis://host:6379, got "${url}"`);
  }
  if (!['redis:', 'rediss:'].includes(parsed.protocol)) throw new Error(`--redis takes a redis:// or rediss:// URL, got "${url}"`);
  const redis = new Redis(url, { maxRetriesPerRequest: null, retryStrategy: (times) => Math.min(times * 100, 2000) });
  redis.on('error', onError);
  return redis;
}

/** The segmentation queue on `connection`. */
export function segmentationQueue(connection: Redis): Queue<SegmentationJob, SegmentationResult> {
  return new Queue<SegmentationJob, SegmentationResult>(QUEUE_NAME, { connection, defaultJobOptions: JOB_OPTIONS });
}

/** The text of an error on one line (a job's failure reason, a command's failure). */
export function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
}

/**
 * Waits for Redis to answer (at most `ms`), so that a command pointed at a wrong URL says so in
 * one line instead of retrying silently for ever.
 */
export async function requireRedis(redis: Redis, url: string, ms = 10_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no Redis answers at ${url} (waited ${ms / 1000} s): start redis-server there, or pass the right --redis URL`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `redis` with its errors told once per outage: while Redis is down ioredis and BullMQ report
 * every reconnection attempt, which would flood the log; the first says Redis is gone, 'ready'
 * says it is back.
 */
export function redisState(redis: Redis, log: (line: string) => void, who: string) {
  let down = false;
  const onError = (e: Error) => {
    if (down) return;
    down = true;
    log(`${who}: lost Redis (${oneLine(e)}); reconnecting`);
  };
  redis.on('error', onError);
  redis.on('ready', () => {
    if (!down) return;
    down = false;
    log(`${who}: Redis is back`);
  });
  return { redis, onError };
}
