// `pnpm --filter aunet queue --redis URL`: the batch queue at a glance. Flags only: the reading
// is queueStatus in src/service/submit.ts. Node-only.

import { oneLine, redisConnection, requireRedis } from '../service/queue';
import { queueStatus } from '../service/submit';
import { fail, numberFlag, parseFlags } from './common';

const usage = `
Show the batch queue (see submit, worker): jobs waiting, running, delayed (waiting to be retried),
done and failed; the slowest recent jobs; the latest failures with their reasons.

Usage: pnpm --filter aunet queue --redis URL [--slowest N]

  --redis URL           the queue's Redis, e.g. redis://10.0.0.5:6379 (required)
  --slowest N           how many of the slowest jobs to list (default 5), among the last 1000 done
  -h, --help            this help
`;

const flags = parseFlags(usage, { redis: { type: 'string' }, slowest: { type: 'string' } });

try {
  if (!flags.redis) throw new Error('--redis URL is required (see --help)');
  const slowest = numberFlag('slowest', flags.slowest, true) ?? 5;
  const redis = redisConnection(flags.redis);
  await requireRedis(redis, flags.redis);
  const s = await queueStatus(redis, { slowest });
  console.log(`waiting ${s.waiting}, active ${s.active}, delayed (to be retried) ${s.delayed}, done ${s.done}, failed ${s.failed}`);
  if (s.slowest.length) {
    console.log(`slowest of the last ${s.scanned} done:`);
    for (const j of s.slowest) console.log(`  ${j.seconds.toFixed(1).padStart(7)} s  job ${j.id}  ${j.file}  (${j.reused ? 'outputs already there' : `worker ${j.worker}`})`);
  }
  if (s.failures.length) {
    console.log('latest failures:');
    for (const f of s.failures) console.log(`  job ${f.id}  ${f.file}: ${oneLine(f.reason)}`);
  }
  await redis.quit();
  process.exit(0);
} catch (e) {
  fail(e);
}
