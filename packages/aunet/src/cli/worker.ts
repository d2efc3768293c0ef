// `pnpm --filter aunet worker --redis URL [--concurrency N] [--checkpoint FILE]`: segment the jobs
// of the batch queue until stopped. Flags only: the worker is src/service/worker.ts. Node-only.

import { startSegmentationWorker } from '../service/worker';
import { requireDefaultModel } from '../shipped-model';
import { fail, invocationDir, numberFlag, parseFlags, userPath } from './common';

const usage = `
Segment the jobs of the batch queue (see submit) until stopped: each job is one volume or DICOM
series, segmented by predict's code into the job's output folder, its progress (slices done)
reported through the job. Start one on every machine that should work on the queue, with the
same Redis URL; inputs and outputs must be on storage every machine sees under the same paths.

Usage: pnpm --filter aunet worker --redis URL [options]

  --redis URL           the queue's Redis, e.g. redis://10.0.0.5:6379 (required)
  --checkpoint FILE     the model (default: the shipped model, packages/aunet/models/aunet-medseg.safetensors;
                        $AUNET_MODEL names another file). Workers of one queue should share one model:
                        outputs name the model's sha256, and a job is done again for another model
  --concurrency N       jobs this worker holds at once (default 1). Their network calls run one at a
                        time (the tensor library keeps one scope stack a process), so N > 1 only overlaps
                        one job's reading and writing with another's network: 2 helps on a GPU, not on
                        lavapipe; for more throughput start more workers on machines with their own cores
  --batch N             slices per network call (default 4; fewer where memory needs)
  --lock-seconds S      how long a job's lock lasts unrenewed (default 60): must outlast the longest step
                        that blocks the process (reading and encoding a large volume), and is how long a
                        killed worker's job waits before another worker takes it
  --verbose             also show Dawn's (the WebGPU library's) own notices on stderr
  -h, --help            this help

A file the loader refuses fails its job at once with the loader's one-line message; other failures
(a lost device, memory exhausted) are retried after 5, 10 and 20 s, then fail with their reason.
SIGTERM or Ctrl-C: the worker takes no new job, finishes the ones it holds, and exits; a second
one exits at once, and the jobs it held are taken by another worker once their lock expires.
`;

const flags = parseFlags(usage, {
  redis: { type: 'string' },
  checkpoint: { type: 'string' },
  concurrency: { type: 'string' },
  batch: { type: 'string' },
  'lock-seconds': { type: 'string' },
});

try {
  if (!flags.redis) throw new Error('--redis URL is required (see --help)');
  const concurrency = numberFlag('concurrency', flags.concurrency, true) ?? 1;
  if (concurrency < 1) throw new Error(`--concurrency must be at least 1, got ${concurrency}`);
  const batch = numberFlag('batch', flags.batch, true) ?? 4;
  if (batch < 1) throw new Error(`--batch must be at least 1, got ${batch}`);
  const lockSeconds = numberFlag('lock-seconds', flags['lock-seconds']) ?? 60;
  if (!(lockSeconds >= 1)) throw new Error(`--lock-seconds must be at least 1, got ${lockSeconds}`);
  let checkpoint = flags.checkpoint ? userPath(flags.checkpoint) : undefined;
  if (!checkpoint) {
    const shipped = requireDefaultModel({ base: invocationDir() });
    console.log(shipped.line);
    checkpoint = shipped.model.file;
  }
  const say = (line: string) => console.log(`${new Date().toISOString()} ${line}`);
  const worker = await startSegmentationWorker({ redis: flags.redis, checkpoint, concurrency, batch, lockSeconds, log: say });
  console.log(`adapter: ${worker.adapter}`);
  console.log(worker.model);
  say(`worker ${worker.name} waiting for jobs on ${flags.redis} (concurrency ${concurrency})`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      say(`${signal} again: exiting now; the jobs held are taken by another worker once their lock expires`);
      process.exit(1);
    }
    stopping = true;
    say(`${signal}: taking no new job, finishing the current one (${signal} again to exit at once)`);
    void worker.stop();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  const why = await worker.closed;
  if (why) fail(new Error(why));
  say('stopped');
  process.exit(0);
} catch (e) {
  fail(e);
}
