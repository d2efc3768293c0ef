// Runs every expected test file (each in its own process, one after another, under a time limit)
// and the type checks, and prints one summary; the last line reads `N passed, N failed`. Exit
// code 1 if anything failed. See runner.ts for what counts as a failure.
// `pnpm test [FILTER...]` runs only the files whose path contains one of the filters.
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { compareWithExpected, failures, runTestFile, testFiles, type FileResult } from './runner';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Every test file the run must find: a file missing or not listed here fails the run. */
const EXPECTED: Record<string, string[]> = {
  'packages/tensor': ['browser.test.ts', 'conv2d.test.ts', 'device.test.ts', 'nnops.test.ts', 'ops.test.ts', 'modules.test.ts', 'profile.test.ts', 'runtime.test.ts', 'torch.test.ts', 'winograd.test.ts'],
  'packages/nn': ['checkpoint.test.ts', 'layers.test.ts', 'losses.test.ts', 'module.test.ts', 'optim.test.ts', 'train.test.ts'],
  'packages/aunet': ['browser.test.ts', 'chaos.test.ts', 'data.test.ts', 'device.test.ts', 'dicom.test.ts', 'dicom-commands.test.ts', 'experiments.test.ts', 'fetch.test.ts', 'hostile.test.ts', 'lungs.test.ts', 'metrics.test.ts', 'model.test.ts', 'modules.test.ts', 'onnx.test.ts', 'predict.test.ts', 'run-folder.test.ts', 'step.test.ts', 'train.test.ts', 'kernels-browser.test.ts', 'web.test.ts', 'web-time.test.ts', 'surface-metrics.test.ts', 'evaluate-pred.test.ts', 'evaluate-checkpoint.test.ts', 'cases.test.ts', 'cases-train.test.ts', 'queue.test.ts', 'package.test.ts', 'lesions.test.ts'],
  benchmarks: ['scan.test.ts'],
  scripts: ['runner.test.ts'],
};
/** Longest a test file may run (the slowest takes about two minutes on 2 cores with lavapipe and an empty shader cache). */
const FILE_TIME_LIMIT_MS = 10 * 60_000;

const filters = process.argv.slice(2);
const selected = (path: string) => !filters.length || filters.some((f) => path.includes(f));

/** `tsc --noEmit` for one project, counted as one test. */
function typecheck(dir: string): Promise<FileResult> {
  return new Promise((resolve) => {
    const start = Date.now();
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const child = spawn(process.execPath, [tsc, '--noEmit', '-p', dir], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('close', (code) => {
      const ok = code === 0;
      console.log(`  tsc --noEmit -p ${dir}: ${ok ? 'ok' : 'FAILED'}`);
      resolve({ name: `tsc ${dir}`, total: 1, passed: ok ? 1 : 0, skipped: 0, code, timedOut: false, seconds: (Date.now() - start) / 1000, problems: [], failureLines: [] });
    });
  });
}

const results: FileResult[] = [];
if (!filters.length) {
  console.log('=== typecheck');
  for (const dir of ['packages/tensor', 'packages/nn', 'packages/aunet', 'benchmarks', 'scripts']) results.push(await typecheck(dir));
}
for (const [pkg, expected] of Object.entries(EXPECTED)) {
  const found = testFiles(join(root, pkg, 'test'));
  const { missing, unexpected } = compareWithExpected(found, expected);
  for (const f of missing) results.push({ name: `${pkg}/test/${f}`, total: 0, passed: 0, skipped: 0, code: null, timedOut: false, seconds: 0, problems: ['expected but missing'], failureLines: [] });
  for (const f of unexpected) results.push({ name: `${pkg}/test/${f}`, total: 0, passed: 0, skipped: 0, code: null, timedOut: false, seconds: 0, problems: ['not in the expected list of scripts/test.ts: add it there'], failureLines: [] });
  for (const file of expected.filter((f) => found.includes(f))) {
    const label = `${pkg}/test/${file}`;
    if (!selected(label)) continue;
    console.log(`\n=== ${label}`);
    results.push(await runTestFile(join(root, pkg), file, { timeoutMs: FILE_TIME_LIMIT_MS, label }));
  }
}

// The failures again, next to the summary: a log cut to its tail still says what failed and how to replay it.
const failedFiles = results.filter((r) => r.failureLines.length);
if (failedFiles.length) {
  console.log('\nFailures');
  for (const r of failedFiles) console.log(`  ${r.name}\n${r.failureLines.map((l) => `    ${l}`).join('\n')}`);
}

let passed = 0;
let failed = 0;
console.log('\nSummary');
for (const r of results) {
  const f = failures(r);
  passed += r.passed;
  failed += f;
  const why = r.problems.length ? `  FAILED: ${r.problems.join('; ')}` : '';
  console.log(`  ${r.name.padEnd(44)} ${String(r.passed).padStart(4)} passed ${String(f).padStart(3)} failed  ${r.seconds.toFixed(1).padStart(6)} s${why}`);
}
if (!results.length) {
  console.log(`no test file matches ${filters.join(', ')}`);
  failed++;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
