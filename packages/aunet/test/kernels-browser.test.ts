// @aunet/tensor's claim to run unchanged in a browser, tested: a smoke set of its kernel tests
// (test/browser/kernels.ts: conv2d forward and backward, instance norm, attention, against the
// float64 reference in @aunet/tensor/reference) bundled for the browser and run in headless
// Chromium, on both routes without a GPU: SwiftShader, and lavapipe through OpenGL ES
// (a compatibility-mode adapter without f16, subgroups or timestamps). It lives here rather than
// in packages/tensor because the browser driver (playwright-core) is this package's dependency.
// Without Chromium every test fails with a message saying so.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser } from 'playwright-core';
import { launchChromium, type ChromiumRoute } from '../src/web/chromium';
import { CONTENT_SECURITY_POLICY } from '../src/web/server';
import type { SmokeResult } from './browser/kernels';

const seed = process.env.SEED !== undefined ? Number(process.env.SEED) >>> 0 : Math.floor(Math.random() * 2 ** 31);
console.log(`  seed ${seed} (replay with SEED=${seed})`);

let server: Server | null = null;
let url = '';
const browsers: Browser[] = [];

async function serve(): Promise<string> {
  if (server) return url;
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL('./browser/kernels.ts', import.meta.url))],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
    metafile: true,
  });
  const inputs = Object.keys(bundle.metafile.inputs);
  assert.ok(inputs.some((p) => p.endsWith('tensor/src/runtime.ts')), 'the library is in the bundle');
  assert.ok(!inputs.some((p) => p.includes('node_modules/webgpu')), 'Dawn\'s node bindings are not');
  const js = bundle.outputFiles[0].text;
  const html = '<!doctype html><meta charset="utf-8"><title>@aunet/tensor kernels</title><script type="module" src="/kernels.js"></script>';
  server = createServer((req, res) => {
    const body = req.url === '/' ? html : req.url === '/kernels.js' ? js : null;
    if (body === null) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': req.url === '/' ? 'text/html' : 'text/javascript', 'content-security-policy': CONTENT_SECURITY_POLICY });
    res.end(body);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  return url;
}

async function smoke(route: ChromiumRoute): Promise<SmokeResult> {
  const at = await serve();
  const browser = await launchChromium(route);
  browsers.push(browser);
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.log(`  [${route}] page error: ${e.message}`));
    await page.goto(at);
    await page.waitForFunction(() => typeof (globalThis as { runSmoke?: unknown }).runSmoke === 'function', null, { timeout: 60_000 });
    page.setDefaultTimeout(480_000);
    return (await page.evaluate((s) => (globalThis as unknown as { runSmoke(seed: number): Promise<SmokeResult> }).runSmoke(s), seed)) as SmokeResult;
  } finally {
    await browser.close();
    browsers.splice(browsers.indexOf(browser), 1);
  }
}

function check(r: SmokeResult, route: string): void {
  for (const g of r.groups) console.log(`  [${route}] ${g.ok ? 'ok ' : 'FAILED'} ${g.name} (${(g.ms / 1000).toFixed(1)} s)${g.ok ? '' : `\n${g.error}`}`);
  const failed = r.groups.filter((g) => !g.ok);
  assert.equal(failed.map((g) => `${g.name}: ${g.error}`), [], `kernels failing in the browser (${route})`);
  assert.is(r.groups.length, 4);
  assert.is(r.bytesInUse, 0, 'every tensor freed');
}

const kernels = suite('@aunet/tensor kernels in Chromium');

kernels.after(async () => {
  for (const b of browsers.splice(0)) await b.close().catch(() => {});
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

kernels('SwiftShader (fallback adapter, subgroups): every smoke group matches the float64 reference', async () => {
  const r = await smoke('swiftshader');
  assert.match(r.adapter, /swiftshader/i);
  check(r, 'swiftshader');
});

kernels('lavapipe through OpenGL ES (compatibility mode: no f16, subgroups or timestamps): every smoke group matches', async () => {
  const r = await smoke('lavapipe');
  for (const f of ['shader-f16', 'subgroups', 'timestamp-query']) assert.not.ok(r.features.includes(f), f);
  check(r, 'lavapipe');
});

kernels.run();
