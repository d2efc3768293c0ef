// The test runner itself, on throwaway suites broken on purpose: each way a file can fail to
// test what it should must count as a failure.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compareWithExpected, failures, runTestFile, usesOnly } from '../runner';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'runner-'));
mkdirSync(join(dir, 'test'));
const UVU = JSON.stringify(join(root, 'node_modules/uvu/dist/index.mjs'));
const ASSERT = JSON.stringify(join(root, 'node_modules/uvu/assert/index.mjs'));
const TESTING = JSON.stringify(join(root, 'packages/tensor/src/testing.ts'));

/** Write a throwaway suite and run it through the runner. */
async function run(name: string, body: string, o: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}) {
  const file = `${name}.test.ts`;
  writeFileSync(join(dir, 'test', file), `import { test } from ${UVU};\nimport * as assert from ${ASSERT};\n${body}\ntest.run();\n`);
  const r = await runTestFile(dir, file, { timeoutMs: o.timeoutMs ?? 60_000, quiet: true, env: o.env });
  return { ...r, failed: failures(r) };
}

test('a passing suite passes', async () => {
  const r = await run('good', `test('one', () => assert.ok(true));\ntest('two', () => {});`);
  assert.equal([r.passed, r.failed, r.problems], [2, 0, []]);
});

test('a failing test fails', async () => {
  const r = await run('failing', `test('one', () => {});\ntest('two', () => assert.is(1, 2));`);
  assert.equal([r.passed, r.failed], [1, 1]);
});

test("a failure's message and the run's seed are kept for the summary", async () => {
  const r = await run('seeded', `console.log('  seed 42 (replay with SEED=42)');\ntest('fine', () => {});\ntest('off by one', () => assert.ok(1 + 1 === 3, 'two is not three'));`);
  assert.equal([r.passed, r.failed], [1, 1]);
  assert.match(r.failureLines[0], /FAIL\s+"off by one"/);
  assert.ok(r.failureLines.some((l) => l.includes('two is not three')), r.failureLines.join('\n'));
  assert.ok(!r.failureLines.some((l) => /^\s*at /.test(l)), 'no stack lines');
  assert.is(r.failureLines.at(-1), 'seed 42 (replay with SEED=42)');
  const good = await run('seeded-good', `console.log('  seed 7 (replay with SEED=7)');\ntest('fine', () => {});`);
  assert.equal(good.failureLines, []);
});

test('a before hook that throws: uvu exits 0 with "(0 / N)"; the runner counts every test as failed', async () => {
  const r = await run('hook', `test.before(() => { throw new Error('boom'); });\ntest('one', () => {});\ntest('two', () => {});`);
  assert.is(r.code, 0, 'uvu itself reports success');
  assert.equal([r.passed, r.failed], [0, 2]);
  assert.match(r.problems.join(), /did not run/);
});

test('setupGPU without WebGPU prints why and exits non-zero', async () => {
  const r = await run('nogpu', `import { setupGPU } from ${TESTING};\ntest.before(setupGPU);\ntest('one', () => {});`, {
    env: { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' },
  });
  assert.is(r.code, 1);
  assert.ok(r.failed >= 1);
  assert.match(r.problems.join(), /exit code 1/);
});

test('skipped tests count as failures', async () => {
  const r = await run('skip', `test('one', () => {});\ntest.skip('two', () => {});`);
  assert.equal([r.passed, r.failed], [1, 1]);
  assert.match(r.problems.join(), /1 skipped/);
});

test('.only counts as a failure, even with nothing else to skip', async () => {
  const many = await run('only', `test('one', () => {});\ntest.only('two', () => {});\ntest('three', () => {});`);
  assert.ok(many.failed >= 2, `${many.failed}`);
  assert.match(many.problems.join(), /\.only/);
  const single = await run('onlysingle', `test.only('one', () => {});`);
  assert.equal([single.passed, single.failed], [1, 1]);
  assert.ok(usesOnly(`s.only('x', f)`) && usesOnly(`test . only ('x')`));
  assert.not.ok(usesOnly(`// test.only('x')\nconst only = 1;\nconst s = 'test.only(';\n/* t.only( */`));
});

test('a non-zero exit after passing tests fails', async () => {
  // The exit listener runs after uvu's summary, as a crash in teardown or a leaked error would.
  const r = await run('exit', `test('one', () => {});\nprocess.on('exit', () => { process.exitCode = 3; });`);
  assert.is(r.passed, 1);
  assert.is(r.failed, 1);
  assert.match(r.problems.join(), /exit code 3/);
});

test('a hung file is killed at the time limit and fails', async () => {
  const t0 = Date.now();
  const r = await run('hang', `test('waits for ever', () => new Promise(() => setInterval(() => {}, 1000)));`, { timeoutMs: 3000 });
  assert.ok(Date.now() - t0 < 20_000, 'killed near the limit');
  assert.ok(r.timedOut);
  assert.is(r.failed, 1);
  assert.match(r.problems.join(), /timed out/);
});

test('files missing from, or not in, the expected list', () => {
  assert.equal(compareWithExpected(['a.test.ts', 'c.test.ts'], ['a.test.ts', 'b.test.ts']), { missing: ['b.test.ts'], unexpected: ['c.test.ts'] });
});

test.run();
