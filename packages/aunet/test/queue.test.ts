// The batch segmentation service on a real Redis (a redis-server of the test's own, on a free
// loopback port with its own data folder, stopped at the end; no mock): a batch of small volumes
// cut from the shipped scan, worker processes SIGKILLed at random moments and Redis restarted in
// the middle, then every job's outputs there once and identical to `predict`'s for the same file;
// a hostile file failing once, unretried, with the loader's line; a batch submitted again
// completed without recomputing; a worker stopped by SIGTERM finishing its job first.
// The small conv2d variant, for the workers and commands it starts too (inherited): on an empty
// shader cache the default variant's kernels made each worker's start-up take minutes. Not
// quick-compile: the network runs here more than it compiles, and unoptimised it runs slower.
import './conv-variant';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Job, QueueEvents } from 'bullmq';
import { queueChaos, spawnWorker, writeSmallVolumes, type QueueChaosReport } from '../src/attack/queue-chaos';
import { hostileCorpus } from '../src/attack/hostile';
import { readScan } from '../src/data/files';
import { fileSha256, predictionDone, predictionInputHash } from '../src/prediction-files';
import { startLocalRedis, type LocalRedis } from '../src/service/local-redis';
import { COMPUTED_LOG, QUEUE_NAME, oneLine, redisConnection, segmentationQueue } from '../src/service/queue';
import { queueStatus, submitSegmentation, waitForBatch } from '../src/service/submit';
import { SHIPPED_MODEL_FILE } from '../src/shipped-model';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'aunet-queue-'));
const cli = (name: string, args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'src/cli', `${name}.ts`), ...args], { cwd: pkg, encoding: 'utf8', timeout: 300_000 });

let redis: LocalRedis;
let files: string[];
let chaos: QueueChaosReport;
const out = join(tmp, 'out');
const reference = join(tmp, 'predict');

const q = suite('queue');

q.before(async () => {
  files = await writeSmallVolumes(join(tmp, 'in'), 10, { size: 64, slices: 3 });
  redis = await startLocalRedis({ dir: join(tmp, 'redis') });
});

const spawned: ReturnType<typeof spawnWorker>[] = [];

q.after(async () => {
  // Workers a failed check left running go too (they would keep the test process alive).
  for (const w of spawned) w.child.kill('SIGKILL');
  await redis?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

q('a batch survives workers SIGKILLed at random and a Redis restart: every job done once, as predict does it', async () => {
  // predict's outputs for the same files, in one process.
  const r = cli('predict', ['--input', join(tmp, 'in'), '--out', reference]);
  assert.is(r.status, 0, r.stderr);

  const t0 = performance.now();
  const stamp = (l: string) => console.log(`  [${((performance.now() - t0) / 1000).toFixed(1)} s] ${l}`);
  const seed = Number(process.env.SEED ?? Date.now() % 1000);
  stamp(`kill moments seeded ${seed} (replay with SEED=${seed})`);
  chaos = await queueChaos({ redis, files, out, workers: 3, kills: 2, restartRedis: true, lockSeconds: 3, seed, log: stamp });
  const summary = `${chaos.jobs} jobs: ${chaos.doneOnce} done once, ${chaos.lost} lost, ${chaos.duplicated} duplicated, ${chaos.stuck} stuck`;
  stamp(`${summary}; ${chaos.kills} kills, ${chaos.redisRestarts} Redis restart, ${chaos.reused} reused, batch ${chaos.seconds.toFixed(1)} s`);
  assert.is(chaos.kills, 2);
  assert.ok(chaos.killsHoldingJob >= 1, 'a worker was killed in the middle of a job');
  assert.is(chaos.redisRestarts, 1);
  assert.equal(chaos.failed, []);
  assert.is(summary, `${files.length} jobs: ${files.length} done once, 0 lost, 0 duplicated, 0 stuck`);

  // Each output exactly once, byte for byte predict's (the JSON but for the seconds it took).
  const names = readdirSync(out).sort();
  assert.equal(names, readdirSync(reference).sort(), 'the same files as predict, and no temporaries left');
  for (const name of names) {
    if (name.endsWith('_png')) {
      const pngs = readdirSync(join(out, name)).sort();
      assert.equal(pngs, readdirSync(join(reference, name)).sort());
      for (const p of pngs) assert.ok(readFileSync(join(out, name, p)).equals(readFileSync(join(reference, name, p))), `${name}/${p}`);
    } else if (name.endsWith('.json')) {
      const [a, b] = [out, reference].map((d) => {
        const { seconds, secondsPerSlice, ...rest } = JSON.parse(readFileSync(join(d, name), 'utf8'));
        assert.ok(seconds > 0 && secondsPerSlice > 0);
        return rest;
      });
      assert.equal(a, b, name);
      assert.is(a.inputSha256, predictionInputHash({ file: a.input }));
      assert.is(a.modelSha256, fileSha256(SHIPPED_MODEL_FILE));
    } else assert.ok(readFileSync(join(out, name)).equals(readFileSync(join(reference, name))), name);
  }
  const status = await withRedis((c) => queueStatus(c));
  assert.equal([status.waiting, status.active, status.delayed, status.failed, status.done], [0, 0, 0, 0, files.length]);
});

q('a hostile file fails once, unretried, with the loader\'s one line; the batch submitted again is not recomputed; SIGTERM finishes the job', async () => {
  const bad = join(tmp, 'bad');
  mkdirSync(bad);
  const hostile = hostileCorpus().filter((c) => ['truncated-data.nii', 'wrong-magic.nii'].includes(c.name));
  for (const c of hostile) writeFileSync(join(bad, c.name), c.bytes);
  const expected = hostile.map((c) => {
    try {
      readScan(join(bad, c.name));
    } catch (e) {
      return oneLine(e);
    }
    throw new Error(`${c.name} loads`);
  });

  const worker = spawnWorker(redis.url, { lockSeconds: 3 });
  spawned.push(worker);
  await worker.ready;

  // Hostile files, through the command a user runs.
  const failed = cli('submit', ['--redis', redis.url, '--out', join(tmp, 'bad-out'), '--wait', bad]);
  assert.is(failed.status, 1, failed.stdout + failed.stderr);
  assert.match(failed.stdout, /0 done, 2 failed/);
  for (const [i, c] of hostile.entries()) assert.ok(failed.stdout.includes(`${join(bad, c.name)}: ${expected[i]}`), `${c.name}: ${failed.stdout}`);
  const ids = [...failed.stdout.matchAll(/^(\d+)\t/gm)].map((m) => m[1]);
  assert.is(ids.length, 2);
  await withRedis(async (c) => {
    const queue = segmentationQueue(c);
    for (const [i, id] of ids.entries()) {
      const job = (await Job.fromId(queue, id))!;
      assert.is(job.attemptsMade, 1, 'not retried');
      assert.is(job.failedReason, expected[i]);
    }
    await queue.close();
  });

  // The same batch again: completed from the outputs there, nothing recomputed or rewritten.
  const mtimes = files.map((f) => statSync(join(out, f.split('/').pop()!.replace('.nii.gz', '_lesions.nii.gz'))).mtimeMs);
  const again = cli('submit', ['--redis', redis.url, '--out', out, '--wait', ...files]);
  assert.is(again.status, 0, again.stdout + again.stderr);
  assert.match(again.stdout, new RegExp(`${files.length} done \\(${files.length} already there, not recomputed\\), 0 failed`));
  assert.equal(files.map((f) => statSync(join(out, f.split('/').pop()!.replace('.nii.gz', '_lesions.nii.gz'))).mtimeMs), mtimes);

  // SIGTERM while a job runs: the worker finishes it, then exits 0.
  const [big] = await writeSmallVolumes(join(tmp, 'big'), 1, { size: 128, slices: 12 });
  await withRedis(async (c) => {
    const eventsConnection = c.duplicate();
    const events = new QueueEvents(QUEUE_NAME, { connection: eventsConnection });
    await events.waitUntilReady();
    const [job] = await submitSegmentation(c, [big], { out: join(tmp, 'big-out') });
    await new Promise<void>((resolve) => events.on('progress', ({ jobId }) => jobId === job.id && resolve()));
    worker.child.kill('SIGTERM');
    const summary = await waitForBatch(c, [job], undefined, { pollMs: 500 });
    assert.is(summary.done.length, 1);
    const exit = await worker.exited;
    assert.equal(exit, { code: 0, signal: null }, worker.output());
    assert.match(worker.output(), /SIGTERM: taking no new job/);
    const queue = segmentationQueue(c);
    const { logs } = await queue.getJobLogs(job.id);
    assert.is(logs.filter((l) => l.startsWith(COMPUTED_LOG)).length, 1);
    await queue.close();
    await events.close();
    eventsConnection.disconnect();
    const d = { inputSha256: predictionInputHash({ file: big }), modelSha256: fileSha256(SHIPPED_MODEL_FILE), threshold: 0.5, tta: false };
    assert.ok(predictionDone(join(tmp, 'big-out'), 'vol-000', d));
    // Outputs of other options are not these: another picture style, a probability map not written.
    assert.not.ok(predictionDone(join(tmp, 'big-out'), 'vol-000', { ...d, pictures: 'outline' }));
    assert.not.ok(predictionDone(join(tmp, 'big-out'), 'vol-000', { ...d, probabilities: true }));
  });

  const shown = cli('queue', ['--redis', redis.url]);
  assert.is(shown.status, 0, shown.stderr);
  assert.match(shown.stdout, new RegExp(`^waiting 0, active 0, delayed \\(to be retried\\) 0, done ${2 * files.length + 1}, failed 2`));
  assert.match(shown.stdout, /slowest of the last/);
  assert.match(shown.stdout, /latest failures:/);
});

q('a failure that is not the input\'s (the output folder is a file) is retried with backoff, then failed with its reason; the worker goes on', async () => {
  const worker = spawnWorker(redis.url, { lockSeconds: 3 });
  spawned.push(worker);
  await worker.ready;
  const notAFolder = join(tmp, 'not-a-folder');
  writeFileSync(notAFolder, 'a file where the outputs would go');
  await withRedis(async (c) => {
    const [job] = await submitSegmentation(c, [files[0]], { out: notAFolder, attempts: 3, backoffMs: 200 });
    const t0 = performance.now();
    const summary = await waitForBatch(c, [job], undefined, { pollMs: 200 });
    const waited = performance.now() - t0;
    assert.is(summary.failed.length, 1);
    const queue = segmentationQueue(c);
    const failed = (await Job.fromId(queue, job.id))!;
    assert.is(failed.attemptsMade, 3, 'tried 3 times');
    assert.match(failed.failedReason, /not-a-folder/);
    assert.not.match(failed.failedReason, /\n/);
    // Backoff 200 ms, then 400 ms: the retries waited at least that long.
    assert.ok(waited >= 600, `the batch took ${waited.toFixed(0)} ms`);
    assert.match(worker.output(), new RegExp(`job ${job.id}: attempt 1 failed, retried later`));
    // The worker is still taking jobs.
    const [good] = await submitSegmentation(c, [files[1]], { out: join(tmp, 'after-failure') });
    assert.is((await waitForBatch(c, [good], undefined, { pollMs: 200 })).done.length, 1);
    await queue.close();
  });
  worker.child.kill('SIGTERM');
  assert.equal(await worker.exited, { code: 0, signal: null }, worker.output());
});

async function withRedis<T>(f: (c: ReturnType<typeof redisConnection>) => Promise<T>): Promise<T> {
  const c = redisConnection(redis.url);
  try {
    return await f(c);
  } finally {
    await c.quit();
  }
}

q.run();
