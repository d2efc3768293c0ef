// One training run per run folder: a lock file holding the owner's pid and host, created
// exclusively. A run killed with SIGKILL leaves it behind; the next run sees that the pid is gone
// (same host) and takes the folder over, so a kill never leaves a folder stuck. Node-only.

import { mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

export const LOCK_FILE = '.lock';

/** The run folder is in use by another live training run. */
export class RunLockedError extends Error {
  override name = 'RunLockedError';
}

interface LockInfo {
  pid: number;
  host: string;
  started: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

function readLock(file: string): LockInfo | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as LockInfo;
  } catch {
    return null; // gone, or cut short by a kill while being written
  }
}

/**
 * Take the lock of run folder `dir` (created when missing); returns the function that releases
 * it (also released when the process exits). Throws RunLockedError when a live process holds it.
 */
export function lockRun(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, LOCK_FILE);
  const mine: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(file, JSON.stringify(mine), { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
      const held = readLock(file);
      if (held && held.host !== mine.host) {
        throw new RunLockedError(`${dir} is locked by a training run on host ${held.host} (pid ${held.pid}, since ${held.started}); if that run is over, delete ${file}`);
      }
      if (held && held.pid !== process.pid && alive(held.pid)) {
        throw new RunLockedError(`${dir} is in use by another training run (pid ${held.pid}, since ${held.started}); wait for it to end, or use another --out`);
      }
      unlinkSync(file); // left by a run that was killed: take the folder over
    }
  }
  removeStaleTemporaries(dir);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    if (readLock(file)?.pid === process.pid) {
      try {
        unlinkSync(file);
      } catch {
        /* already gone */
      }
    }
  };
  process.on('exit', release);
  return release;
}

/** Temporary files of atomic writes (`.NAME.PID.RANDOM.tmp`, see @aunet/nn's writeFileAtomic) that a
 *  killed process left in `dir`: removed once the folder is ours, so kills do not pile them up. */
function removeStaleTemporaries(dir: string): void {
  for (const name of readdirSync(dir)) {
    const m = /^\..+\.(\d+)\.[0-9a-z]+\.tmp$/.exec(name);
    if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    try {
      unlinkSync(join(dir, name));
    } catch {
      /* already gone */
    }
  }
}
