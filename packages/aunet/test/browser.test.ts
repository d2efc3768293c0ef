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
  assert.ok(!inputs.some((p) => /^src\/(train|checkpoint|data\/files|cli\/)/.test(p)), `no Node-only module is bundled: ${inputs.filter((p) => /^src\/(train|checkpoint|data\/files|cli\/)/.test(p))}`);
  const code = result.outputFiles![0].text;
  assert.not.match(code, /from\s+["']node:/);
  assert.not.match(code, /require\(["'](fs|path|zlib|child_process)["']\)/);
  assert.match(code, /\bAUNet\b/);
});

test.run();
