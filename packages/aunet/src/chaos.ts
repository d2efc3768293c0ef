// Kill at any moment: a small training run in a child process is killed with SIGKILL again and
// again (at random moments, and half of the times while a checkpoint is being written), resumed
// each time, and finally let finish; then the run folder is checked: a loadable checkpoint of the
// last epoch, a log with every epoch exactly once, the evaluation written, no stale lock or
// temporary file. Node-only.

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '@aunet/tensor';
import { LOCK_FILE } from './lock';
import { EVALUATION_FILE, LAST, LOG, runState } from './train';

export interface ChaosOptions {
  out: string;
  kills: number;
  seed: number;
  /** Epochs of the run (default: the kills, at least 6, so that the run outlasts them). */
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
  problems: string[];
}

const TRAIN_CLI = fileURLToPath(new URL('./cli/train.ts', import.meta.url));
const TINY = ['--preset', 'cpu', '--size', '32', '--filters', '4,8', '--lr', '1e-3'];

const isTemp = (name: string) => name.endsWith('.tmp') || name.includes('.partial-');

/** Start the trainer on `out` (a new run, or --resume once a checkpoint exists). */
function startTrainer(o: ChaosOptions, epochs: number) {
  const resume = existsSync(join(o.out, LAST));
  const args = resume ? ['--resume', o.out, '--epochs', String(epochs)] : [...(o.trainFlags ?? TINY), '--seed', String(o.seed), '--epochs', String(epochs), '--out', o.out];
  const child = spawn(process.execPath, ['--import', 'tsx', TRAIN_CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited, stderr: () => stderr, resume };
}

/** Kill `child` after `ms`, or as soon as a checkpoint is being written (when `duringWrite`). */
async function killLater(o: ChaosOptions, child: ReturnType<typeof spawn>, exited: Promise<unknown>, ms: number, duringWrite: boolean): Promise<{ killed: boolean; duringWrite: boolean }> {
  const start = Date.now();
  let done = false;
  void exited.then(() => (done = true));
  while (!done) {
    const writing = existsSync(o.out) && readdirSync(o.out).some(isTemp);
    if ((duringWrite && writing) || (!duringWrite && Date.now() - start >= ms) || Date.now() - start >= 4 * ms) {
      child.kill('SIGKILL');
      await exited;
      return { killed: true, duringWrite: writing };
    }
    await new Promise((r) => setTimeout(r, duringWrite ? 2 : 20));
  }
  return { killed: false, duringWrite: false };
}

/** Kill `child` right after its first checkpoint appears (the first start measures the pace). */
async function killAfterFirstCheckpoint(o: ChaosOptions, child: ReturnType<typeof spawn>, exited: Promise<unknown>): Promise<{ killed: boolean; duringWrite: boolean }> {
  let done = false;
  void exited.then(() => (done = true));
  while (!done) {
    if (existsSync(join(o.out, LAST))) {
      child.kill('SIGKILL');
      await exited;
      return { killed: true, duringWrite: false };
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { killed: false, duringWrite: false };
}

/** Run the kill-resume loop and check the result; `problems` is empty when all is well. */
export async function chaos(o: ChaosOptions): Promise<ChaosReport> {
  const log = o.log ?? (() => {});
  const epochs = o.epochs ?? Math.max(6, o.kills);
  const rng = new Rng(o.seed);
  const report: ChaosReport = { kills: 0, killsDuringWrite: 0, starts: 0, epochs, problems: [] };
  // Kill times are uniform in [0.3 s, 2 T], T the time from a start to its first checkpoint
  // (start-up plus one epoch), measured on the first start: so kills land in start-up, in the
  // middle of epochs and in writes alike, and each start still makes progress on average.
  let span = 0;
  while (report.kills < o.kills) {
    const t = startTrainer(o, epochs);
    report.starts++;
    const before = Date.now();
    let r: { killed: boolean; duringWrite: boolean };
    if (span === 0) {
      r = await killAfterFirstCheckpoint(o, t.child, t.exited);
      span = Math.max(1000, Date.now() - before);
    } else {
      r = await killLater(o, t.child, t.exited, 300 + rng.uniform() * 2 * span, rng.uniform() < 0.5);
    }
    if (!r.killed) {
      const { code } = await t.exited;
      if (code !== 0) report.problems.push(`start ${report.starts}: the trainer exited with code ${code}: ${t.stderr().trim().split('\n').pop()}`);
      log(`the run finished after ${report.kills} kills (give more --epochs for more kills)`);
      break;
    }
    report.kills++;
    if (r.duringWrite) report.killsDuringWrite++;
    log(`kill ${report.kills}/${o.kills}${r.duringWrite ? ' (during a checkpoint write)' : ''} after ${((Date.now() - before) / 1000).toFixed(1)} s${t.resume ? ' of a resumed run' : ''}`);
  }
  // Let the run finish.
  for (let attempt = 0; attempt < 3 && !existsSync(join(o.out, EVALUATION_FILE)); attempt++) {
    const t = startTrainer(o, epochs);
    report.starts++;
    const { code } = await t.exited;
    if (code !== 0) report.problems.push(`final run exited with code ${code}: ${t.stderr().trim().split('\n').pop()}`);
  }
  report.problems.push(...(await checkRunFolder(o.out, epochs)));
  return report;
}

/** What is wrong with a finished run folder of `epochs` epochs (empty when nothing is). */
export async function checkRunFolder(out: string, epochs: number): Promise<string[]> {
  const problems: string[] = [];
  try {
    // Decodes the whole file (every tensor's bytes and the header) and its config and state.
    const run = await runState(out);
    if (run.epoch !== epochs) problems.push(`${LAST} holds epoch ${run.epoch}, expected ${epochs}`);
  } catch (e) {
    problems.push(`${LAST} does not load: ${(e as Error).message}`);
  }
  const log = existsSync(join(out, LOG)) ? readFileSync(join(out, LOG), 'utf8').trim().split('\n') : [];
  const seen = log.map((l) => {
    try {
      return (JSON.parse(l) as { epoch: number }).epoch;
    } catch {
      problems.push(`${LOG} has a line that is not JSON: ${l.slice(0, 80)}`);
      return -1;
    }
  });
  const expected = Array.from({ length: epochs }, (_, i) => i + 1);
  if (seen.join() !== expected.join()) problems.push(`${LOG} lists epochs [${seen.join(', ')}], expected 1..${epochs} once each`);
  if (!existsSync(join(out, EVALUATION_FILE))) problems.push(`${EVALUATION_FILE} was not written`);
  const left = existsSync(out) ? readdirSync(out).filter((n) => isTemp(n) || n === LOCK_FILE) : [];
  if (left.length) problems.push(`left behind: ${left.join(', ')}`);
  return problems;
}
