// `pnpm --filter aunet submit --redis URL PATH... [--out DIR] [--wait]`: enqueue volumes for the
// workers. Flags only: the work is src/service/submit.ts. Node-only.

import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { oneLine, redisConnection, redisState, requireRedis } from '../service/queue';
import { enqueueJobs, segmentationJobs, waitForBatch } from '../service/submit';
import type { OverlayStyle } from '../overlay';
import { fail, localUsage, numberFlag, trackBar, userPath } from './common';

const usage = `
Put volumes on the batch queue for the workers (see worker): one job per .nii / .nii.gz file,
per NIfTI file of a folder, or per DICOM series (a folder or .zip of one series). Prints the job
ids; with --wait, one progress bar over the batch and a summary (done, failed with the reason of
each, time). Paths must be on storage every worker sees, under the same paths.

Usage: pnpm --filter aunet submit --redis URL [options] PATH...

  --redis URL           the queue's Redis, e.g. redis://10.0.0.5:6379 (required)
  --out DIR             output folder of every job (default: beside each input: NAME_lesions.nii.gz,
                        NAME_lesions.csv, .json and NAME_png/ next to NAME.nii.gz, as predict writes them)
  --wait                wait for the batch: progress, then a summary; exit 1 if any job failed
  --probabilities       also write the probability maps
  --png fill|outline|none   per-slice pictures (default fill)
  --threshold X         probability at or above which a voxel is lesion (default 0.5)
  --tta                 mirroring test-time augmentation (4x slower)
  -h, --help            this help

A job whose outputs already exist for the same input and model (the sha256 of both are in
NAME_lesions.json) completes without recomputing, so submitting a batch again redoes only what
is missing. A file the loader refuses fails once with its one-line reason, unretried.
`;

let parsed;
try {
  parsed = parseArgs({
    options: {
      redis: { type: 'string' },
      out: { type: 'string' },
      wait: { type: 'boolean' },
      probabilities: { type: 'boolean' },
      png: { type: 'string' },
      threshold: { type: 'string' },
      tta: { type: 'boolean' },
      verbose: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  });
} catch (e) {
  console.error(`error: ${(e as Error).message} (see --help)`);
  process.exit(2);
}
const { values: flags, positionals } = parsed;
if (flags.help) {
  process.stdout.write(localUsage(usage).trimEnd() + '\n');
  process.exit(0);
}

try {
  if (!flags.redis) throw new Error('--redis URL is required (see --help)');
  if (!positionals.length) throw new Error('no PATH given: pass the files or folders to segment (see --help)');
  const pictures = (flags.png ?? 'fill') as OverlayStyle | 'none';
  if (!['fill', 'outline', 'none'].includes(pictures)) throw new Error(`--png must be fill, outline or none; got "${flags.png}"`);
  const threshold = numberFlag('threshold', flags.threshold) ?? 0.5;
  if (!(threshold > 0 && threshold < 1)) throw new Error(`--threshold must be between 0 and 1, got ${threshold}`);
  const say = (line: string) => console.error(line);
  const paths = positionals.map((p) => userPath(p));
  const options = { out: userPath(flags.out), threshold, tta: !!flags.tta, probabilities: !!flags.probabilities, pictures };
  // The inputs are read into jobs (checked: they exist, one job each) before Redis is asked for anything.
  const batch = segmentationJobs(paths, options);
  const redis = redisConnection(flags.redis);
  await requireRedis(redis, flags.redis);
  // From here on, an outage is told once and waited through (a restart of Redis mid-batch).
  redisState(redis, say, 'submit');
  const jobs = await enqueueJobs(redis, batch);
  for (const j of jobs) console.log(`${j.id}\t${j.file}`);
  console.log(`submitted ${jobs.length} job${jobs.length === 1 ? '' : 's'}`);
  if (!flags.wait) {
    await redis.quit();
    process.exit(0);
  }
  const bar = trackBar(
    new cliProgress.SingleBar(
      { format: 'batch [{bar}] {value}/{total} jobs ({failed} failed) | slices {slices} | {duration_formatted}', noTTYOutput: true, notTTYSchedule: 15000 },
      cliProgress.Presets.shades_classic,
    ),
  );
  bar.start(jobs.length, 0, { failed: 0, slices: '0' });
  const summary = await waitForBatch(redis, jobs, (s) => bar.update(s.done + s.failed, { failed: s.failed, slices: s.slicesKnown ? `${s.slices}/${s.slicesKnown}` : '0' }));
  bar.stop();
  console.log(`${summary.done.length} done${summary.reused ? ` (${summary.reused} already there, not recomputed)` : ''}, ${summary.failed.length} failed, in ${summary.seconds.toFixed(1)} s`);
  for (const f of summary.failed) console.log(`failed: job ${f.id} ${f.file}: ${oneLine(f.reason)}`);
  await redis.quit();
  process.exit(summary.failed.length ? 1 : 0);
} catch (e) {
  fail(e);
}
