// `pnpm --filter aunet fuzz --count N [--seed S]`: the seeded mutation fuzzer of the NIfTI and
// DICOM loaders (src/attack/fuzz.ts; its cases in src/attack/fuzz-mutations.ts and fuzz-dicom.ts). The last line reads
// `N cases: N ok, N clear errors, N uncaught`; the exit code is 1 when any case is uncaught.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { DEFAULT_CASE_TIMEOUT_MS, runFuzz, type CaseResult } from '../attack/fuzz';
import { describeCase, makeCase } from '../attack/fuzz-mutations';
import { fail, numberFlag, parseFlags, trackBar, userPath } from './common';

const usage = `
Fuzz the NIfTI and DICOM loading paths of train, evaluate and predict: each case is a small
valid volume (NIfTI-1 or -2, either byte order, any of the 8 voxel types, gzipped or not)
damaged at random (byte flips, truncation, header fields set to extreme values, extensions,
gzip damage), or, every fourth case, a small DICOM CT series (a folder of slice files or a zip;
any uncompressed transfer syntax) damaged at random (elements set to extreme values, removed or
given lying lengths, transfer syntaxes changed or misstated, slices dropped, doubled or moved,
a second series mixed in, files truncated or flipped, the zip damaged), then loaded as the
commands load it. Each case ends ok (loaded, values finite, in 0..1 after
normalising), as a clear error (one line naming the file), or uncaught (anything else: another
exception, a message without the file name, non-finite values, a hang or a crash).

Usage: pnpm --filter aunet fuzz [options]

  --count N       cases to run (default 1000)
  --seed S        seed (default 1); case i of seed S is the same everywhere
  --case I        run only case I (of --seed) and say what it is and what happened
  --out DIR       with --case: write the case's file(s) to DIR (a DICOM case: its folder, or
                  its zip), to try them with the commands
  --timeout S     seconds a case may take before it counts as a hang (default ${DEFAULT_CASE_TIMEOUT_MS / 1000})
  --verbose       print every case's outcome (and no progress bar)
  -h, --help      this help

Uncaught cases are listed with their seed and index (replay one with --seed S --case I). The
last line reads "N cases: N ok, N clear errors, N uncaught"; the exit code is 1 when any case
is uncaught.
`;

const flags = parseFlags(usage, {
  count: { type: 'string' },
  seed: { type: 'string' },
  case: { type: 'string' },
  out: { type: 'string' },
  timeout: { type: 'string' },
  verbose: { type: 'boolean' },
});

const KIND = { ok: 'ok', clear: 'clear error', uncaught: 'UNCAUGHT' } as const;

try {
  const seed = numberFlag('seed', flags.seed, true) ?? 1;
  const single = numberFlag('case', flags.case, true);
  const count = single !== undefined ? 1 : numberFlag('count', flags.count, true) ?? 1000;
  const timeout = numberFlag('timeout', flags.timeout) ?? DEFAULT_CASE_TIMEOUT_MS / 1000;
  if (count < 1) throw new Error(`--count must be at least 1, got ${count}`);
  if (single !== undefined && single < 0) throw new Error(`--case must be 0 or more, got ${single}`);
  if (!(timeout > 0)) throw new Error(`--timeout must be a positive number of seconds, got ${timeout}`);
  if (flags.out && single === undefined) throw new Error('--out goes with --case I (it writes that case\'s files)');
  if (single !== undefined && flags.count !== undefined) throw new Error('give --case or --count, not both');

  const verbose = !!flags.verbose || single !== undefined;
  if (single !== undefined) {
    const c = makeCase(seed, single);
    console.log(`case ${single} of seed ${seed}: ${c.name} (${c.bytes.length} bytes)`);
    console.log(`  ${describeCase(c)}`);
    if (flags.out) {
      const dir = userPath(flags.out);
      mkdirSync(dir, { recursive: true });
      const series = c.dicom && !c.dicom.zip ? c.dicom.files.map((f) => ({ name: join(c.name, f.name), bytes: f.bytes })) : [{ name: c.name, bytes: c.bytes }];
      if (c.dicom && !c.dicom.zip) mkdirSync(join(dir, c.name), { recursive: true });
      for (const f of [...series, ...(c.partner ? [c.partner] : [])]) {
        writeFileSync(join(dir, f.name), f.bytes);
        console.log(`  wrote ${join(dir, f.name)}`);
      }
    }
  }

  const bar = verbose
    ? null
    : trackBar(
        new cliProgress.SingleBar(
          { format: 'fuzzing [{bar}] {value}/{total} cases | {uncaught} uncaught | {eta_formatted} left', hideCursor: true, noTTYOutput: true, notTTYSchedule: 15000 },
          cliProgress.Presets.shades_classic,
        ),
      );
  bar?.start(count, 0, { uncaught: 0 });
  let uncaught = 0;
  const show = (r: CaseResult) => {
    console.log(`case ${r.index}: ${KIND[r.kind]} (${r.ms.toFixed(1)} ms): ${r.detail}`);
    if (r.kind === 'uncaught') {
      if (r.description && single === undefined) console.log(`  ${r.description}`);
      if (r.stack && single !== undefined) console.log(r.stack);
    }
  };
  const summary = await runFuzz({
    count,
    seed,
    from: single ?? 0,
    timeoutMs: timeout * 1000,
    onResult: (r) => {
      if (r.kind === 'uncaught') uncaught++;
      if (bar) bar.increment(1, { uncaught });
      else show(r);
    },
  });
  bar?.stop();

  if (bar && summary.uncaughtCases.length) {
    console.log(`uncaught cases (replay one with --seed ${seed} --case I):`);
    for (const r of summary.uncaughtCases) show(r);
  }
  const kinds = Object.entries(summary.errorKinds).sort((a, b) => b[1] - a[1]);
  if (kinds.length && single === undefined) console.log(`clear errors by kind: ${kinds.map(([k, n]) => `${k} ${n}`).join(', ')}`);
  if (single === undefined) {
    console.log(`seed ${seed}: ${summary.seconds.toFixed(1)} s, slowest case ${summary.slowest.index} (${summary.slowest.ms.toFixed(1)} ms)`);
  }
  console.log(`${summary.cases} cases: ${summary.ok} ok, ${summary.clear} clear errors, ${summary.uncaught} uncaught`);
  process.exit(summary.uncaught > 0 ? 1 : 0);
} catch (e) {
  fail(e);
}
