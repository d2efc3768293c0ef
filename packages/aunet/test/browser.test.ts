import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

// The package's main entry (model, data transforms on typed arrays, NIfTI parsing, metrics,
// prediction, evaluation) must bundle for a web page: no Node built-ins; files, checkpoints on
// disk and the trainer live in `aunet/node`.
test('aunet bundles for the browser without Node modules', async () => {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('../src/index.ts', import.meta.url))],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    logLevel: 'silent',
    metafile: true,
  });
  assert.is(result.errors.length, 0);
  const inputs = Object.keys(result.metafile!.inputs);
  const nodeOnly = /^src\/(train|run-folder|experiments|fetch|data\/files|cli\/|attack\/)/;
  assert.ok(!inputs.some((p) => nodeOnly.test(p)), `no Node-only module is bundled: ${inputs.filter((p) => nodeOnly.test(p))}`);
  // The browser-safe parts that a web page needs are there.
  for (const file of ['src/checkpoint.ts', 'src/predict.ts', 'src/lesions.ts', 'src/overlay.ts']) assert.ok(inputs.includes(file), file);
  const code = result.outputFiles![0].text;
  assert.not.match(code, /from\s+["']node:/);
  assert.not.match(code, /require\(["'](fs|path|zlib|child_process)["']\)/);
  assert.match(code, /\bAUNet\b/);
});

test.run();
