// The test runner's parts: each test file runs in its own process under a time limit, and every
// way a file can fail to test what it should counts as a failure: a failed test, a test not run
// (a throwing `before` hook leaves uvu at "(0 / N)" with exit code 0), a skipped test, a `.only`
// (which makes uvu skip the rest), a non-zero exit, a timeout, and a file that is missing from,
// or not in, the expected list.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const uvu = join(root, 'node_modules', 'uvu', 'bin.js');
// By URL, so that test folders outside the repository (the runner's own tests) load it too.
const tsx = import.meta.resolve('tsx');

export interface FileResult {
  /** Package folder and file, e.g. "packages/nn/test/optim.test.ts". */
  name: string;
  total: number;
  passed: number;
  skipped: number;
  code: number | null;
  timedOut: boolean;
  seconds: number;
  /** Why the file counts as failed beyond its failed tests (empty when it does not). */
  problems: string[];
  /** Each failed test's name and first lines of its message, and the seed to replay it with. */
  failureLines: string[];
}

/**
 * Failures of a file: tests that failed or never ran (uvu's Total excludes skipped tests, and a
 * test cut off by a throwing hook is in Total but not in Passed), plus skipped tests; a file with
 * none of those but another problem (exit code, timeout, `.only`) counts as one.
 */
export function failures(r: FileResult): number {
  const counted = Math.max(0, r.total - r.passed) + r.skipped;
  return counted > 0 ? counted : r.problems.length > 0 ? 1 : 0;
}

/**
 * From a suite's plain output: each uvu FAIL heading with the first lines of its message (no
 * stack), then the seed line, so that a failure seen only in a summary can be replayed.
 */
export function failureExcerpt(plain: string): string[] {
  const lines = plain.split('\n');
  const excerpt: string[] = [];
  lines.forEach((line, i) => {
    if (!/^\s*FAIL\s/.test(line)) return;
    excerpt.push(line.trim());
    const message = lines.slice(i + 1).filter((l) => l.trim()).slice(0, 4).filter((l) => !/^\s*at /.test(l));
    excerpt.push(...message.map((l) => `  ${l.trim()}`));
  });
  const seed = /seed \d+ \(replay with SEED=\d+\)/.exec(plain);
  if (excerpt.length && seed) excerpt.push(seed[0]);
  return excerpt;
}

/** The test files (*.test.ts) in `dir`, sorted; [] when the folder is missing. */
export function testFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.test.ts')).sort() : [];
}

/** Files expected but absent, and present but not expected. */
export function compareWithExpected(found: string[], expected: string[]): { missing: string[]; unexpected: string[] } {
  return { missing: expected.filter((f) => !found.includes(f)), unexpected: found.filter((f) => !expected.includes(f)) };
}

/** `.only(` in a test file's code (not in its comments or strings): uvu would then skip every other test of the suite. */
export function usesOnly(source: string): boolean {
  const code = source
    .replace(/`(?:\\.|[^`\\])*`|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"/g, '""')
    .replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
  return /\.\s*only\s*\(/.test(code);
}

/**
 * Run one uvu test file in its own process (cwd `dir`), echoing its output, and read uvu's
 * counts. Killed (with its process group) after `timeoutMs`.
 */
export function runTestFile(dir: string, file: string, o: { timeoutMs: number; quiet?: boolean; label?: string; env?: NodeJS.ProcessEnv }): Promise<FileResult> {
  return new Promise((resolve) => {
    const start = Date.now();
    const child = spawn(process.execPath, ['--import', tsx, uvu, 'test', `^${file.replace(/\./g, '\\.')}$`], {
      cwd: dir,
      env: o.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, so a timeout kills what it started too
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      if (!o.quiet) process.stdout.write(d);
      out += d.toString();
    });
    // Dawn's adapter warnings are noise; everything else on stderr is shown.
    child.stderr.on('data', (d: Buffer) => {
      const text = d.toString().split('\n').filter((l) => !/artificially reduced/.test(l)).join('\n');
      if (text.trim() && !o.quiet) process.stderr.write(text.endsWith('\n') ? text : text + '\n');
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, o.timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
      const num = (label: string) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(plain)?.[1] ?? 0);
      const r: FileResult = {
        name: o.label ?? join(dir, 'test', file),
        total: num('Total'),
        passed: num('Passed'),
        skipped: num('Skipped'),
        code,
        timedOut,
        seconds: (Date.now() - start) / 1000,
        problems: [],
        failureLines: failureExcerpt(plain),
      };
      if (timedOut) r.problems.push(`timed out after ${(o.timeoutMs / 1000).toFixed(0)} s`);
      else if (code !== 0) r.problems.push(`exit code ${code}`);
      if (!timedOut && !/Total:\s+\d+/.test(plain)) r.problems.push('no uvu summary (crashed before reporting)');
      if (r.total > r.passed && !/FAIL/.test(plain)) r.problems.push(`${r.total - r.passed} of ${r.total} tests did not run and uvu reported no failure: a before or after hook threw`);
      if (r.skipped > 0) r.problems.push(`${r.skipped} skipped`);
      const source = join(dir, 'test', file);
      if (existsSync(source) && usesOnly(readFileSync(source, 'utf8'))) r.problems.push('.only in the file');
      resolve(r);
    });
  });
}
