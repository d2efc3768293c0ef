// The module graph: no import cycles among the library's modules, and every module (and every
// public entry point) loads and works when imported alone in a fresh process; in particular
// autograd needs nothing filled in by another module before backward() works.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { importCycles, importGraph, sourceModules } from '@aunet/tensor/module-graph';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const src = join(pkg, 'src');

test('no import cycles among the modules of src', () => {
  const graph = importGraph(src);
  assert.equal(importCycles(graph), [], `import cycles:\n${importCycles(graph).join('\n')}`);
  assert.ok(graph.size > 20, `found ${graph.size} modules`);
});

/** Run an ES module script in a fresh Node process (with tsx), from this package. */
function fresh(script: string) {
  return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: pkg, encoding: 'utf8', timeout: 120_000 });
}

test('every module of src loads alone in a fresh process', () => {
  const files = sourceModules(src).filter((f) => !f.includes(`${join('src', 'cli')}`));
  // One process imports each module in turn, each through a fresh module cache key (a query), so
  // that no module gets its dependencies loaded by an earlier one.
  const script = `
const files = ${JSON.stringify(files)};
const failed = [];
for (const f of files) {
  const r = await import('node:child_process').then((cp) => cp.spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', 'await import(' + JSON.stringify('file://' + f) + ')'], { encoding: 'utf8' }));
  if (r.status !== 0) failed.push(f + ': ' + r.stderr.split('\\n').find((l) => /Error/.test(l)));
}
console.log(JSON.stringify(failed));`;
  const r = fresh(script);
  assert.is(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout.trim().split('\n').pop()!), []);
});

test('the testing entry alone: backward() accumulates and copies gradients with nothing else imported', () => {
  // A tensor used twice (accumulation) and an op whose rule passes its gradient through twice (copies).
  const r = fresh(`
import { setupGPU } from '@aunet/tensor/testing';
import { backward } from '${join(src, 'autograd.ts')}';
import { tensor } from '${join(src, 'ops', 'creation.ts')}';
import { add } from '${join(src, 'ops', 'elementwise.ts')}';
await setupGPU();
const x = tensor([1, 2, 3, 4], [4], { requiresGrad: true });
const y = add(add(x, x), x);
backward(y, { grad: tensor([1, 1, 1, 1], [4]) });
console.log(JSON.stringify(Array.from(await x.grad.data())));
process.exit(0);`);
  assert.is(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout.trim().split('\n').pop()!), [3, 3, 3, 3]);
});

test('each public entry point loads alone and exposes what its README lists', () => {
  for (const [entry, names] of [
    ['@aunet/tensor', ['init', 'tensor', 'conv2d', 'backward', 'launch', 'uniformStruct']],
    ['@aunet/tensor/testing', ['setupGPU', 'testRng']],
    ['@aunet/tensor/reference', ['conv2d', 'finiteDifference']],
  ] as const) {
    const r = fresh(`const m = await import('${entry}'); console.log(JSON.stringify(${JSON.stringify(names)}.filter((n) => typeof m[n] !== 'function')));`);
    assert.is(r.status, 0, `${entry}: ${r.stderr}`);
    assert.equal(JSON.parse(r.stdout.trim().split('\n').pop()!), [], `${entry} lacks these`);
  }
});

test.run();
