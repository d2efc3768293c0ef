// `web-time` with ONNX Runtime Web beside the web page: a tiny AU-Net (32x32, filters 4-8, random
// weights) on two slices in headless Chromium's SwiftShader route, timed for the page and for
// onnxruntime-web's wasm and WebGPU providers, whose probabilities must agree with the page's.
// The ONNX Runtime page's server: cross-origin isolated, and onnxruntime-web's dist files only.
// Without Chromium the command test fails with a message saying so.
import './conv-variant';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setupGPU } from '@aunet/tensor/testing';
import { checkpointBytes, manualSeed } from '@aunet/nn';
import { checkpointMetadata } from '../src/checkpoint';
import { defaultTrainConfig } from '../src/config';
import { DEFAULT_DATA_DIR } from '../src/data/files';
import { AUNet } from '../src/model';
import { findChromium, NO_CHROMIUM } from '../src/web/chromium';
import { describePlacement, ortWebVersion, startOrtPageServer, worstDifference } from '../src/web/ort-timing';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'aunet-web-time-'));
const cli = join(pkg, 'src/cli/web-time.ts');
const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { cwd: pkg, encoding: 'utf8', timeout: 240_000 });

const offline = suite('web-time, no browser');

offline('the ONNX Runtime page server: cross-origin isolated, onnxruntime-web dist files and its own files only', async () => {
  const onnx = Uint8Array.of(1, 2, 3);
  const scan = Uint8Array.of(4, 5);
  const server = await startOrtPageServer({ script: 'console.log(1)', config: { size: 32, channels: 1, inputName: 'image', outputName: 'probabilities', tta: false }, onnx, scan });
  try {
    const get = (path: string) => fetch(new URL(path, server.url));
    const page = await get('/');
    assert.is(page.status, 200);
    // Both headers: without them the browser gives no SharedArrayBuffer, and ONNX Runtime's wasm one thread.
    assert.is(page.headers.get('cross-origin-opener-policy'), 'same-origin');
    assert.is(page.headers.get('cross-origin-embedder-policy'), 'require-corp');
    assert.match(await page.text(), /src="ort-page\.js"/);
    const wasm = await get('/ort/ort-wasm-simd-threaded.wasm');
    assert.is(wasm.status, 200);
    assert.is(wasm.headers.get('content-type'), 'application/wasm');
    assert.is(wasm.headers.get('cross-origin-embedder-policy'), 'require-corp');
    assert.equal(new Uint8Array(await wasm.arrayBuffer()).subarray(0, 4), Uint8Array.of(0, 0x61, 0x73, 0x6d));
    assert.is((await get('/ort/ort.wasm.min.mjs')).status, 200);
    assert.equal(new Uint8Array(await (await get('/model.onnx')).arrayBuffer()), onnx);
    assert.equal(new Uint8Array(await (await get('/scan.nii')).arrayBuffer()), scan);
    for (const path of ['/ort/../package.json', '/ort/package.json', '/ort/ort.wasm.min.js.map', '/ort/', '/src/web/ort-page.ts']) assert.is((await get(path)).status, 404, path);
  } finally {
    await server.close();
  }
  assert.match(ortWebVersion(), /^\d+\.\d+\.\d+$/);
});

offline('worst difference and node placement as the table prints them', () => {
  assert.is(worstDifference([0.5, 0.25], [0.5, 0.5]), 0.25);
  assert.is(worstDifference([0.5, NaN], [0.5, 0.5]), Infinity);
  assert.is(worstDifference([0.5], [0.5, 0.5]), Infinity);
  assert.is(describePlacement({ WebGpuExecutionProvider: { nodes: 82, operators: {} } }), 'all 82 nodes on WebGpuExecutionProvider');
  assert.is(
    describePlacement({ WebGpuExecutionProvider: { nodes: 80, operators: { Conv: 79, MemcpyFromHost: 1 } }, CPUExecutionProvider: { nodes: 2, operators: { Resize: 2 } } }),
    '80 nodes on WebGpuExecutionProvider (Conv 79, MemcpyFromHost 1); 2 nodes on CPUExecutionProvider (Resize 2)',
  );
  assert.is(describePlacement({}), 'node placement not logged');
});

offline('--help names the peers; a bad --peers is one line and exit 1', () => {
  const help = run('--help');
  assert.is(help.status, 0);
  assert.match(help.stdout, /--peers LIST/);
  assert.match(help.stdout, /ort-webgpu/);
  const bad = run('--peers', 'ours,ort-webgl');
  assert.is(bad.status, 1);
  assert.match(bad.stderr, /^error: --peers takes a comma-separated list of ours, ort-wasm, ort-webgpu, got "ours,ort-webgl"\n$/);
});

offline.run();

const browser = suite('web-time in Chromium');

browser('SwiftShader route: the page, ORT wasm and ORT WebGPU on the same tiny model and slices; their probabilities agree', async () => {
  if (!findChromium()) throw new Error(NO_CHROMIUM);
  await setupGPU();
  manualSeed(11);
  const config = defaultTrainConfig('cpu', DEFAULT_DATA_DIR, { model: { inputSize: 32, filters: [4, 8] } });
  const model = new AUNet(config.model);
  const checkpoint = join(tmp, 'tiny.safetensors');
  writeFileSync(checkpoint, await checkpointBytes(model, { metadata: checkpointMetadata({ config, epoch: 0 }) }));
  model.dispose();

  const r = run('--checkpoint', checkpoint, '--route', 'swiftshader', '--slices', '2');
  assert.is(r.status, 0, r.stderr + r.stdout);
  const out = r.stdout;
  const ms = String.raw`(\d+)`;
  const row = (peer: string) => new RegExp(String.raw`^swiftshader +${peer} +1 +32 +${ms} +${ms} +${ms} +(.*)$`, 'm').exec(out);
  for (const peer of ['ours', 'ort-wasm', 'ort-webgpu']) assert.ok(row(peer), `${peer} row in:\n${out}`);
  // Every core the browser reports, as threads: the page is cross-origin isolated.
  const wasm = /^wasm, (\d+) threads? of (\d+) cores$/.exec(row('ort-wasm')![4]);
  assert.ok(wasm, row('ort-wasm')![4]);
  assert.is(wasm![1], wasm![2]);
  assert.match(row('ort-webgpu')![4], /^webgpu on .*swiftshader/i);
  assert.not.match(row('ort-webgpu')![4], /PARTLY ON/);
  assert.match(out, /session started in \d+ ms; all \d+ nodes on CPUExecutionProvider/);
  assert.match(out, /session started in \d+ ms; all \d+ nodes on WebGpuExecutionProvider/);
  assert.match(out, /the same 2 slices \(2048 voxels\)/);
  for (const peer of ['ort-wasm', 'ort-webgpu']) {
    const agree = new RegExp(String.raw`swiftshader ${peer}: worst \|difference\| of the probabilities (\S+); (\d+) mask voxels? differ`).exec(out);
    assert.ok(agree, `${peer} agreement in:\n${out}`);
    console.log(`  ${peer}: worst |ORT - ours| ${agree![1]}`);
    assert.ok(Number(agree![1]) < 1e-4, `${peer}: ${agree![1]}`);
  }
});

browser.run();
