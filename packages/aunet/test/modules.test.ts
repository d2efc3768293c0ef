// The package's module graph keeps its shape: no import cycles; the trainer above evaluation and
// prediction (which never reach into it); the command-line files at the top; the tools that
// attack the product (src/attack) apart, imported by nothing but their commands.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { importCycles, importGraph } from '@aunet/tensor/module-graph';

const src = fileURLToPath(new URL('../src', import.meta.url));
// With type-only imports: they say which module knows about which.
const graph = importGraph(src, { types: true });

/** The edges `from -> to` where `from` matches `importer` and `to` matches `imported`. */
function edges(importer: (f: string) => boolean, imported: (f: string) => boolean): string[] {
  return [...graph].flatMap(([f, deps]) => (importer(f) ? deps.filter(imported).map((d) => `${f} -> ${d}`) : []));
}

const isCli = (f: string) => f.startsWith('cli/');
const isAttack = (f: string) => f.startsWith('attack/');

test('the graph is the package: every module found, every import resolves to one', () => {
  assert.ok(graph.size > 30, `found ${graph.size} modules`);
  for (const f of ['run-folder.ts', 'train.ts', 'evaluate.ts', 'loss.ts', 'checkpoint.ts', 'attack/chaos.ts']) assert.ok(graph.has(f), f);
  assert.equal(edges(() => true, (d) => !graph.has(d)), [], 'imports of files that do not exist');
});

test('no import cycles, counting run-time imports or all', () => {
  assert.equal(importCycles(importGraph(src)), []);
  assert.equal(importCycles(graph), []);
});

test('evaluation, prediction, checkpoints and the run folder do not import the trainer', () => {
  const lower = (f: string) => /^(evaluate|evaluate-file|predict|prediction-[a-z]+|loss|metrics|checkpoint|run-folder|model|config|lesions|overlay)\.ts$/.test(f) || f.startsWith('data/') || f.startsWith('web/');
  const training = (f: string) => ['train.ts', 'step.ts', 'experiments.ts'].includes(f);
  assert.equal(edges(lower, training), []);
  // The trainer is driven by the experiments, the commands and the chaos test only (and exported by aunet/node).
  assert.equal(edges((f) => !['experiments.ts', 'node.ts'].includes(f) && !isCli(f) && !isAttack(f), (d) => d === 'train.ts'), []);
});

test('the commands sit at the top, and the attack tools apart', () => {
  assert.equal(edges((f) => !isCli(f), isCli), [], 'library code importing a command');
  assert.equal(edges((f) => !isCli(f) && !isAttack(f), isAttack), [], 'the product importing an attack tool');
});

test.run();
