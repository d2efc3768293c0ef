// Submitting a batch to the segmentation queue (one job per volume or DICOM series), waiting for
// it, and the state of the queue. Node-only.

import { dirname, join, resolve } from 'node:path';
import { Job, QueueEvents, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { DataError } from '../data/errors';
import type { OverlayStyle } from '../overlay';
import { outputStem, predictionInputs } from '../prediction-files';
import { QUEUE_NAME, segmentationQueue, type SegmentationJob, type SegmentationProgress, type SegmentationResult } from './queue';

export interface SubmitOptions {
  /** Output folder for every job (absolute, on storage every worker sees); default: beside each input. */
  out?: string;
  threshold?: number;
  tta?: boolean;
  probabilities?: boolean;
  pictures?: OverlayStyle | 'none';
  /** Tries per job before it fails (default JOB_OPTIONS': 4); a file the loader refuses is tried once whatever this says. */
  attempts?: number;
  /** The first wait before a retry, doubling after each (default JOB_OPTIONS': 5 s). */
  backoffMs?: number;
}

/** A job as submitted. */
export interface SubmittedJob {
  id: string;
  file: string;
  /** The outputs' path prefix (out/NAME). */
  stem: string;
}

/**
 * The jobs for `paths` (files, folders of NIfTI volumes, DICOM series' folders or zips; taken
 * as absolute): one per volume or series, as `predict --input` reads each path. DataError when
 * a path holds nothing to read, or when two inputs would write the same outputs.
 */
export function segmentationJobs(paths: string[], o: SubmitOptions = {}): SegmentationJob[] {
  if (!paths.length) throw new DataError('no input given: pass one or more files or folders');
  const jobs: SegmentationJob[] = [];
  const byStem = new Map<string, string>();
  for (const path of paths) {
    for (const input of predictionInputs(resolve(path))) {
      const out = o.out ? resolve(o.out) : dirname(input.file);
      const stem = join(out, outputStem(input.file));
      const other = byStem.get(stem);
      if (other) throw new DataError(`${other} and ${input.file} would both write ${stem}_lesions.*: give them different names, or submit them with different --out folders`, input.file);
      byStem.set(stem, input.file);
      jobs.push({
        file: input.file,
        out,
        threshold: o.threshold ?? 0.5,
        tta: o.tta ?? false,
        probabilities: o.probabilities ?? false,
        pictures: o.pictures ?? 'fill',
      });
    }
  }
  return jobs;
}

/** Enqueues one job per volume or series of `paths` (see {@link segmentationJobs}); returns them with their ids. */
export async function submitSegmentation(connection: Redis, paths: string[], o: SubmitOptions = {}): Promise<SubmittedJob[]> {
  return enqueueJobs(connection, segmentationJobs(paths, o), o);
}

/** Enqueues `jobs` (made by {@link segmentationJobs}) with `o`'s tries and backoff; returns them with their ids. */
export async function enqueueJobs(connection: Redis, jobs: SegmentationJob[], o: Pick<SubmitOptions, 'attempts' | 'backoffMs'> = {}): Promise<SubmittedJob[]> {
  const queue = segmentationQueue(connection);
  try {
    const opts = {
      ...(o.attempts !== undefined && { attempts: o.attempts }),
      ...(o.backoffMs !== undefined && { backoff: { type: 'exponential', delay: o.backoffMs } }),
    };
    const added = await queue.addBulk(jobs.map((data) => ({ name: 'segment', data, opts })));
    return added.map((job, i) => ({ id: job.id!, file: jobs[i].file, stem: join(jobs[i].out, outputStem(jobs[i].file)) }));
  } finally {
    await queue.close();
  }
}

/** Where the jobs of a batch stand. */
export interface BatchState {
  done: number;
  failed: number;
  total: number;
  /** Slices done over slices known, over the jobs running or done (a job's slices are known once it starts). */
  slices: number;
  slicesKnown: number;
}

/** A batch's outcome. */
export interface BatchSummary {
  done: SubmittedJob[];
  /** Reused: done without recomputing (outputs there already for the same input and model). */
  reused: number;
  failed: (SubmittedJob & { reason: string })[];
  /** Jobs neither done nor failed when the wait was given up (`signal`). */
  pending: SubmittedJob[];
  seconds: number;
}

/**
 * Waits until every job of `jobs` is completed or has failed for good, calling `onChange` as they
 * progress. Events (QueueEvents) give the news at once; a poll of the jobs every `pollMs` is what
 * counts, so that an event missed while Redis restarted delays nothing past the next poll.
 * `signal` gives up the wait (the summary lists the jobs still pending).
 */
export async function waitForBatch(
  connection: Redis,
  jobs: SubmittedJob[],
  onChange: (s: BatchState) => void = () => {},
  o: { pollMs?: number; signal?: AbortSignal } = {},
): Promise<BatchSummary> {
  const pollMs = o.pollMs ?? 2000;
  const t0 = performance.now();
  const queue = segmentationQueue(connection);
  // QueueEvents blocks on its connection: a duplicate of its own, closed at the end (BullMQ
  // leaves a connection it was given open). Its errors while Redis is down: the caller's connection says them.
  const eventsConnection = connection.duplicate();
  eventsConnection.on('error', () => {});
  const events = new QueueEvents(QUEUE_NAME, { connection: eventsConnection });
  events.on('error', () => {});
  const pending = new Map(jobs.map((j) => [j.id, j]));
  const progress = new Map<string, SegmentationProgress>();
  const done: SubmittedJob[] = [];
  const failed: (SubmittedJob & { reason: string })[] = [];
  let reused = 0;
  const state = (): BatchState => {
    let slices = 0;
    let slicesKnown = 0;
    for (const p of progress.values()) {
      slices += p.slices;
      slicesKnown += p.of;
    }
    return { done: done.length, failed: failed.length, total: jobs.length, slices, slicesKnown };
  };
  let wake = () => {};
  const settle = (id: string, outcome: { result?: SegmentationResult; reason?: string }) => {
    const job = pending.get(id);
    if (!job) return;
    pending.delete(id);
    if (outcome.reason !== undefined) failed.push({ ...job, reason: outcome.reason });
    else {
      done.push(job);
      if (outcome.result?.reused) reused++;
      const p = progress.get(id);
      if (p) progress.set(id, { slices: p.of, of: p.of });
    }
    onChange(state());
    if (!pending.size) wake();
  };
  events.on('progress', ({ jobId, data }) => {
    if (!pending.has(jobId) || typeof data !== 'object') return;
    progress.set(jobId, data as unknown as SegmentationProgress);
    onChange(state());
  });
  // The final outcome is read from the job itself (a retried attempt's 'failed' event is not final).
  // A poll that fails (Redis going away, the wait ending) is made again by the timer below.
  events.on('completed', ({ jobId }) => void poll([jobId]).catch(() => {}));
  events.on('failed', ({ jobId }) => void poll([jobId]).catch(() => {}));

  async function poll(ids = [...pending.keys()]) {
    for (const id of ids) {
      if (!pending.has(id)) continue;
      const job = await Job.fromId<SegmentationJob, SegmentationResult>(queue, id);
      if (!job) {
        settle(id, { reason: 'the job is no longer in the queue (removed, or Redis lost its data: run Redis with appendonly yes)' });
        continue;
      }
      // finishedOn is set once a job is completed or has failed for good (not by a failed attempt that is retried).
      const final = job.finishedOn ? await job.getState() : null;
      if (final === 'completed') settle(id, { result: job.returnvalue });
      else if (final === 'failed') settle(id, { reason: job.failedReason || 'failed (no reason given)' });
      else if (typeof job.progress === 'object' && job.progress && 'of' in job.progress) progress.set(id, job.progress as unknown as SegmentationProgress);
    }
  }

  try {
    await poll();
    onChange(state());
    o.signal?.addEventListener('abort', () => wake());
    while (pending.size && !o.signal?.aborted) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, pollMs);
      });
      if (o.signal?.aborted) break;
      await poll();
      onChange(state());
    }
  } finally {
    await events.close().catch(() => {});
    eventsConnection.disconnect();
    await queue.close().catch(() => {});
  }
  return { done, reused, failed, pending: [...pending.values()], seconds: (performance.now() - t0) / 1000 };
}

/** What `queue` shows. */
export interface QueueStatus {
  waiting: number;
  active: number;
  delayed: number;
  done: number;
  failed: number;
  /** The slowest of the last `scanned` completed jobs, slowest first. */
  slowest: { id: string; file: string; seconds: number; worker: string; reused: boolean }[];
  scanned: number;
  /** The latest failures, newest first. */
  failures: { id: string; file: string; reason: string }[];
}

/** The queue's counts, its slowest recent jobs and its latest failures. */
export async function queueStatus(connection: Redis, o: { slowest?: number; scan?: number } = {}): Promise<QueueStatus> {
  const queue: Queue<SegmentationJob, SegmentationResult> = segmentationQueue(connection);
  try {
    const c = await queue.getJobCounts('waiting', 'prioritized', 'waiting-children', 'active', 'delayed', 'completed', 'failed');
    const completed = await queue.getJobs(['completed'], 0, (o.scan ?? 1000) - 1, false);
    const slowest = completed
      .filter((j) => j.finishedOn && j.processedOn && j.returnvalue)
      .map((j) => ({ id: j.id!, file: j.data.file, seconds: (j.finishedOn! - j.processedOn!) / 1000, worker: j.returnvalue.worker, reused: j.returnvalue.reused }))
      .sort((a, b) => b.seconds - a.seconds)
      .slice(0, o.slowest ?? 5);
    const failures = (await queue.getJobs(['failed'], 0, 4, false)).map((j) => ({ id: j.id!, file: j.data.file, reason: j.failedReason }));
    return {
      waiting: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c['waiting-children'] ?? 0),
      active: c.active ?? 0,
      delayed: c.delayed ?? 0,
      done: c.completed ?? 0,
      failed: c.failed ?? 0,
      slowest,
      scanned: completed.length,
      failures,
    };
  } finally {
    await queue.close();
  }
}
