// `pnpm --filter aunet chaos --kills N`: kill a small training run at random moments, resume it,
// and check that nothing was lost.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chaos } from '../attack/chaos';
import { fail, numberFlag, parseFlags, userPath } from './common';

const usage = `
Kill a small training run (32x32, filters 4-8, on the shipped data) with SIGKILL at random
moments (in start-up, mid-epoch, or while a checkpoint is being written), resuming it after each
kill, then let
it finish and check the run folder: the last checkpoint loads and holds the last epoch, the log
lists every epoch exactly once, the evaluation is written, no lock or temporary file is left.

Usage: pnpm --filter aunet chaos [--kills N] [--seed S] [--epochs E] [--out DIR]

  --kills N     kills before the run is let finish (default 10)
  --seed S      seeds the kill times and the run (default 1)
  --epochs E    epochs of the run (default: the kills plus 4)
  --out DIR     run folder (default: a temporary folder, removed when all is well)
  --verbose     also show Dawn's (the WebGPU library's) own notices on stderr
  -h, --help    this help
`;

const flags = parseFlags(usage, { kills: { type: 'string' }, seed: { type: 'string' }, epochs: { type: 'string' }, out: { type: 'string' } });

try {
  const kills = numberFlag('kills', flags.kills, true) ?? 10;
  const seed = numberFlag('seed', flags.seed, true) ?? 1;
  const epochs = numberFlag('epochs', flags.epochs, true) ?? kills + 4;
  if (kills < 0 || epochs < 1) throw new Error('--kills must be 0 or more and --epochs at least 1');
  const temporary = !flags.out;
  const out = flags.out ? userPath(flags.out) : join(mkdtempSync(join(tmpdir(), 'aunet-chaos-')), 'run');
  const t0 = performance.now();
  const r = await chaos({ out, kills, seed, epochs, log: (l) => console.log(l) });
  const secs = ((performance.now() - t0) / 1000).toFixed(0);
  if (r.problems.length) {
    for (const p of r.problems) console.log(`problem: ${p}`);
    throw new Error(`${r.kills} kills (${r.killsDuringWrite} during a checkpoint write): ${r.problems.length} problem(s); the run folder is kept at ${out}`);
  }
  if (temporary) rmSync(join(out, '..'), { recursive: true, force: true });
  console.log(`${r.kills} kills (${r.killsDuringWrite} during a checkpoint write), ${r.starts} starts, ${secs} s: the run finished ${r.stoppedEarly ? `at epoch ${r.lastEpoch} of ${r.epochs} (early stopping)` : `all ${r.epochs} epochs`}, nothing lost`);
  process.exit(0);
} catch (e) {
  fail(e);
}
