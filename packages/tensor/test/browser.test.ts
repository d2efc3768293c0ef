import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

// The library must bundle for a browser unchanged: no Node built-ins, and Dawn's `webgpu`
// module only behind the dynamic import that runs when `navigator.gpu` is absent.
test('the library bundles for the browser without Node modules', async () => {
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
  assert.ok(inputs.every((p) => !p.includes('node_modules')), `no npm package is bundled: ${inputs.filter((p) => p.includes('node_modules'))}`);
  const code = result.outputFiles![0].text;
  assert.not.match(code, /from\s+["']node:/);
  assert.not.match(code, /require\(["'](fs|path|child_process)["']\)/);
  assert.match(code, /navigator/);
});

test.run();
