// Runs every package's uvu suite (each in its own process, one after another) and prints one
// summary; the last line reads `N passed, N failed`. Exit code 1 if anything failed.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const uvu = join(root, 'node_modules', 'uvu', 'bin.js');
const packages = ['packages/tensor', 'packages/nn', 'packages/aunet'];
const only = process.argv.slice(2);

interface Result { name: string; total: number; passed: number; skipped: number; code: number | null; seconds: number }

function run(dir: string): Promise<Result> {
  return new Promise((resolve) => {
    const start = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', uvu, 'test'], { cwd: join(root, dir), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      process.stdout.write(d);
      out += d.toString();
    });
    // Dawn's adapter warnings are noise; everything else on stderr is shown.
    child.stderr.on('data', (d: Buffer) => {
      const text = d.toString().split('\n').filter((l) => !/artificially reduced/.test(l)).join('\n');
      if (text.trim()) process.stderr.write(text.endsWith('\n') ? text : text + '\n');
    });
    child.on('close', (code) => {
      const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
      const num = (label: string) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(plain)?.[1] ?? 0);
      resolve({ name: dir, total: num('Total'), passed: num('Passed'), skipped: num('Skipped'), code, seconds: (Date.now() - start) / 1000 });
    });
  });
}

/** `tsc --noEmit` for one project, counted as one test. */
function typecheck(dir: string): Promise<Result> {
  return new Promise((resolve) => {
    const start = Date.now();
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const child = spawn(process.execPath, [tsc, '--noEmit', '-p', dir], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('close', (code) => {
      const ok = code === 0;
      console.log(`  tsc --noEmit -p ${dir}: ${ok ? 'ok' : 'FAILED'}`);
      resolve({ name: `tsc ${dir}`, total: 1, passed: ok ? 1 : 0, skipped: 0, code, seconds: (Date.now() - start) / 1000 });
    });
  });
}

const results: Result[] = [];
if (!only.length) {
  console.log('=== typecheck');
  for (const dir of [...packages, 'benchmarks']) results.push(await typecheck(dir));
}
for (const dir of packages) {
  if (only.length && !only.some((o) => dir.includes(o))) continue;
  const testDir = join(root, dir, 'test');
  if (!existsSync(testDir) || readdirSync(testDir).filter((f) => f.endsWith('.test.ts')).length === 0) continue;
  console.log(`\n=== ${dir}`);
  results.push(await run(dir));
}

let passed = 0;
let failed = 0;
let skipped = 0;
console.log('\nSummary');
for (const r of results) {
  // A suite that crashed before reporting counts as one failure at least.
  const f = Math.max(r.total - r.passed - r.skipped, r.code === 0 ? 0 : 1);
  passed += r.passed;
  failed += f;
  skipped += r.skipped;
  console.log(`  ${r.name.padEnd(24)} ${String(r.passed).padStart(4)} passed ${String(f).padStart(3)} failed ${String(r.skipped).padStart(3)} skipped  ${r.seconds.toFixed(1)} s${r.code !== 0 && r.total === r.passed ? ` (exit code ${r.code})` : ''}`);
}
console.log(skipped ? `${passed} passed, ${failed} failed, ${skipped} skipped` : `${passed} passed, ${failed} failed`);
process.exit(failed === 0 && results.length > 0 ? 0 : 1);
