// Kill at any moment: a small training run in a child process is killed with SIGKILL again and
// again (at random moments, and half of the times while a checkpoint is being written), resumed
// each time, and finally let finish; then the run folder is checked (run-folder.ts's checkRunFolder): a
// loadable checkpoint of the last epoch, a log with every epoch exactly once, the evaluation
// written, no stale lock or temporary file. Node-only.

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '@aunet/tensor';
import { checkRunFolder, EVALUATION_FILE, isTemporary, LAST, runState } from '../run-folder';
import { moduleFile, moduleLoaderArgs } from '../package-dir';

export interface ChaosOptions {
  out: string;
  kills: number;
  seed: number;
  /** Epochs of the run (default: the kills plus 4, so that the run outlasts them). */
  epochs?: number;
  /** Extra flags for the trainer (the run's settings; default a tiny network at 32x32). */
  trainFlags?: string[];
  log?: (line: string) => void;
}

export interface ChaosReport {
  kills: number;
  /** Kills that landed while a checkpoint's temporary file existed. */
  killsDuringWrite: number;
  /** Child runs started (kills + the final one). */
  starts: number;
  epochs: number;
  /** The epoch the run ended at: `epochs`, or earlier when early stopping ended it. */
  lastEpoch: number;
  stoppedEarly: boolean;
  problems: string[];
}

const TRAIN_CLI = moduleFile('cli/train');
const TINY = ['--preset', 'cpu', '--size', '32', '--filters', '4,8', '--lr', '1e-3'];

/** Start the trainer on `out` (a new run, or --resume once a checkpoint exists). */
function startTrainer(o: ChaosOptions, epochs: number) {
  const resume = existsSync(join(o.out, LAST));
  const args = resume ? ['--resume', o.out, '--epochs', String(epochs)] : [...(o.trainFlags ?? TINY), '--seed', String(o.seed), '--epochs', String(epochs), '--out', o.out];
  const child = spawn(process.execPath, [...moduleLoaderArgs(), TRAIN_CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited, stderr: () => stderr, resume };
}

/** Milliseconds since the epoch of last.safetensors' last write, or 0 when there is none. */
function lastWritten(out: string): number {
  try {
    return statSync(join(out, LAST)).mtimeMs;
  } catch {
    return 0;
  }
}

type KillPlan = { kind: 'measure' } | { kind: 'startup'; ms: number } | { kind: 'mid-epoch'; fraction: number } | { kind: 'write' };

/**
 * Watch a started trainer and kill it as planned: `measure` (the first start) at its second
 * checkpoint, timing an epoch; `startup` `ms` after the start; `mid-epoch` a `fraction` of an
 * epoch after its first checkpoint; `write` as soon as a checkpoint's temporary file appears.
 * No plan lets a start gain more than about one epoch, so a run of E epochs outlasts E kills.
 */
async function killAsPlanned(o: ChaosOptions, child: ReturnType<typeof spawn>, exited: Promise<unknown>, plan: KillPlan, epochMs: number) {
  const started = Date.now();
  const written0 = lastWritten(o.out);
  // Temporary files a killed writer left are not writes of this start (it removes them itself).
  const stale = new Set(existsSync(o.out) ? readdirSync(o.out).filter(isTemporary) : []);
  let first = 0; // when this start's first checkpoint appeared
  let firstWrite = 0; // its mtime
  let done = false;
  void exited.then(() => (done = true));
  while (!done) {
    const now = Date.now();
    const written = lastWritten(o.out);
    if (!first && written !== written0) {
      first = now;
      firstWrite = written;
    }
    const writing = existsSync(o.out) && readdirSync(o.out).some((n) => isTemporary(n) && !stale.has(n));
    const kill =
      plan.kind === 'measure' ? first > 0 && written !== firstWrite
      : plan.kind === 'startup' ? now - started >= plan.ms
      : plan.kind === 'mid-epoch' ? first > 0 && now - first >= plan.fraction * epochMs
      : writing;
    if (kill) {
      child.kill('SIGKILL');
      await exited;
      return { killed: true, duringWrite: writing, started, first, now };
    }
    await new Promise((r) => setTimeout(r, plan.kind === 'write' ? 2 : 10));
  }
  return { killed: false, duringWrite: false, started, first, now: Date.now() };
}

/** Run the kill-resume loop and check the result; `problems` is empty when all is well. */
export async function chaos(o: ChaosOptions): Promise<ChaosReport> {
  const log = o.log ?? (() => {});
  const epochs = o.epochs ?? o.kills + 4;
  const rng = new Rng(o.seed);
  const report: ChaosReport = { kills: 0, killsDuringWrite: 0, starts: 0, epochs, lastEpoch: 0, stoppedEarly: false, problems: [] };
  // The first start is killed at its second checkpoint, timing start-up and one epoch; later
  // kills land in start-up, mid-epoch or in a checkpoint write, chosen at random.
  let epochMs = 0;
  let startupMs = 0;
  while (report.kills < o.kills) {
    const t = startTrainer(o, epochs);
    report.starts++;
    const u = rng.uniform();
    const plan: KillPlan =
      epochMs === 0 ? { kind: 'measure' }
      : u < 0.2 ? { kind: 'startup', ms: 300 + rng.uniform() * startupMs }
      : u < 0.6 ? { kind: 'mid-epoch', fraction: rng.uniform() }
      : { kind: 'write' };
    const r = await killAsPlanned(o, t.child, t.exited, plan, epochMs);
    if (!r.killed) {
      const { code } = await t.exited;
      if (code !== 0) report.problems.push(`start ${report.starts}: the trainer exited with code ${code}: ${t.stderr().trim().split('\n').pop()}`);
      log(`the run finished after ${report.kills} kills (give more --epochs for more kills)`);
      break;
    }
    if (plan.kind === 'measure') {
      epochMs = Math.max(200, r.now - r.first);
      startupMs = Math.max(500, r.first - r.started - epochMs);
    }
    report.kills++;
    if (r.duringWrite) report.killsDuringWrite++;
    log(`kill ${report.kills}/${o.kills} (${plan.kind}${r.duringWrite ? ', during a checkpoint write' : ''}) after ${((r.now - r.started) / 1000).toFixed(1)} s${t.resume ? ' of a resumed run' : ''}`);
  }
  // Let the run finish.
  for (let attempt = 0; attempt < 3 && !existsSync(join(o.out, EVALUATION_FILE)); attempt++) {
    const t = startTrainer(o, epochs);
    report.starts++;
    const { code } = await t.exited;
    if (code !== 0) report.problems.push(`final run exited with code ${code}: ${t.stderr().trim().split('\n').pop()}`);
  }
  report.problems.push(...(await checkRunFolder(o.out, epochs)));
  await runState(o.out).then(
    (s) => Object.assign(report, { lastEpoch: s.epoch, stoppedEarly: s.stoppedEarly }),
    () => {}, // a checkpoint that does not load is already a problem above
  );
  return report;
}
