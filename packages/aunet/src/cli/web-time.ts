// `pnpm --filter aunet web-time [--route swiftshader|lavapipe|both] [--size 512] [--slices 3]`:
// the web page's time per slice in headless Chromium, as a user's browser would run it.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init } from '@aunet/tensor';
import { checkpointBytes } from '@aunet/nn';
import { checkpointMetadata } from '../checkpoint';
import { defaultTrainConfig } from '../config';
import { DEFAULT_DATA_DIR, readVolume } from '../data/files';
import { encodeNifti } from '../data/nifti';
import { resizeBilinear } from '../data/transforms';
import { AUNet } from '../model';
import { CHROMIUM_ROUTES, launchChromiumWithProfile, type ChromiumRoute } from '../web/chromium';
import { startWebServer } from '../web/server';
import { fail, numberFlag, parseFlags, userPath } from './common';

const usage = `
Time the web page's segmentation per slice in headless Chromium (no GPU needed): serves the page,
drops a scan on it, and prints the milliseconds the page logs per slice (the first slice
includes compiling the kernels, so the figure to quote is the mean of the others).

Usage: pnpm --filter aunet web-time [options]

  --route R          swiftshader, lavapipe or both (default both): how Chromium gets WebGPU
                     without a GPU (swiftshader: --enable-unsafe-webgpu; lavapipe: WebGPU on
                     OpenGL ES over Mesa's lavapipe, a compatibility-mode adapter)
  --checkpoint FILE  the model (default: random weights of the paper's AU-Net, filters
                     32-512, at --size: the time does not depend on the weights)
  --size N           the model's input size without --checkpoint (default 512)
  --slices N         slices of the shipped CT to segment, at the model's size (default 3)
  --tta              with mirroring test-time augmentation (4 network passes per slice)
  --conv2d-variant V fallback, gpu or auto (default auto): force conv2d's kernel variant on the
                     page (the page's ?conv2d=V), to compare them on one route
  --visits N         load the page N times per route on one browser profile (default 1): the
                     first slice of a later visit shows what Chromium kept of the compiled
                     kernels, as a returning user sees it
  --verbose          also show Dawn's (the WebGPU library's) own notices on stderr
  -h, --help         this help

Run it on an otherwise idle machine: other lavapipe work slows both 10-100x.
`;

const flags = parseFlags(usage, { route: { type: 'string' }, checkpoint: { type: 'string' }, size: { type: 'string' }, slices: { type: 'string' }, tta: { type: 'boolean' }, 'conv2d-variant': { type: 'string' }, visits: { type: 'string' } });

try {
  const route = flags.route ?? 'both';
  const routes: ChromiumRoute[] = route === 'both' ? ['swiftshader', 'lavapipe'] : [route as ChromiumRoute];
  if (!['swiftshader', 'lavapipe'].includes(routes[0])) throw new Error(`--route must be swiftshader, lavapipe or both, got "${route}"`);
  const variant = flags['conv2d-variant'] ?? 'auto';
  if (!['fallback', 'gpu', 'auto'].includes(variant)) throw new Error(`--conv2d-variant must be fallback, gpu or auto, got "${variant}"`);
  const visits = numberFlag('visits', flags.visits, true) ?? 1;
  if (visits < 1 || visits > 5) throw new Error(`--visits must be 1 to 5, got ${visits}`);
  const slices = numberFlag('slices', flags.slices, true) ?? 3;
  if (slices < 1 || slices > 100) throw new Error(`--slices must be 1 to 100, got ${slices}`);
  const tmp = mkdtempSync(join(tmpdir(), 'aunet-web-time-'));
  try {
    let checkpoint: string;
    let size: number;
    if (flags.checkpoint) {
      checkpoint = userPath(flags.checkpoint);
      size = 0; // from the checkpoint, below
    } else {
      size = numberFlag('size', flags.size, true) ?? 512;
      if (size < 16 || size % 16 !== 0) throw new Error(`--size must be a multiple of 16, got ${size}`);
      console.log(`making a random-weight AU-Net (filters 32-512) at ${size}x${size}…`);
      await init();
      const config = defaultTrainConfig('paper', DEFAULT_DATA_DIR, { model: { inputSize: size } });
      const model = new AUNet(config.model);
      checkpoint = join(tmp, `aunet-${size}.safetensors`);
      writeFileSync(checkpoint, await checkpointBytes(model, { metadata: checkpointMetadata({ config, epoch: 0 }) }));
      model.dispose();
    }
    const server = await startWebServer({ checkpoint });
    size ||= server.info.model!.inputSize;
    // The shipped 8-bit slices (512x512), resized to the model's size so that no slice is resized on the page.
    const ct = readVolume(join(DEFAULT_DATA_DIR, 'tr_im_lungwindow.nii.gz'));
    const plane = 512 * 512;
    const data = new Uint8Array(size * size * slices);
    for (let k = 0; k < slices; k++) {
      const src = ct.data.subarray((40 + k) * plane, (41 + k) * plane);
      const s = size === 512 ? src : resizeBilinear(src, 512, 512, size, size);
      for (let i = 0; i < s.length; i++) data[k * size * size + i] = Math.round(s[i]);
    }
    const scan = encodeNifti({ dims: [size, size, slices], data, datatype: 'uint8' });
    const rows: string[] = [];
    try {
      for (const r of routes) {
        console.log(`${r}: chromium ${CHROMIUM_ROUTES[r].join(' ')}`);
        // One browser profile per route, kept across its visits as a user's browser keeps it.
        const profile = join(tmp, `profile-${r}`);
        for (let visit = 1; visit <= visits; visit++) {
          const browser = await launchChromiumWithProfile(r, profile);
          try {
            const page = await browser.newPage();
            const times: number[] = [];
            page.on('console', (m) => {
              const hit = /^aunet-timing slice=(\d+)\/(\d+) ms=([\d.]+)/.exec(m.text());
              if (hit) {
                times.push(Number(hit[3]));
                console.log(`  ${visits > 1 ? `visit ${visit}, ` : ''}slice ${hit[1]}/${hit[2]}: ${hit[3]} ms`);
              }
            });
            await page.goto(variant === 'auto' ? server.url : `${server.url}?conv2d=${variant}`);
            await page.waitForFunction(() => !['starting', 'loading'].includes(document.body.dataset.state ?? ''), null, { timeout: 600_000 });
            const adapter = (await page.textContent('#adapter')) ?? '';
            if ((await page.evaluate(() => document.body.dataset.state)) !== 'ready') throw new Error(`${r}: the page did not start: ${await page.textContent('#messages')}`);
            if (flags.tta) await page.check('#tta');
            await page.setInputFiles('#files', { name: `ct-${size}.nii`, mimeType: 'application/octet-stream', buffer: Buffer.from(scan) });
            await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), null, { timeout: 3_600_000 });
            if ((await page.evaluate(() => document.body.dataset.state)) !== 'done') throw new Error(`${r}: ${await page.textContent('#messages')}`);
            const rest = times.slice(1).sort((a, b) => a - b);
            const mean = rest.length ? rest.reduce((a, b) => a + b, 0) / rest.length : NaN;
            const median = rest.length ? rest[Math.floor(rest.length / 2)] : NaN;
            rows.push(`${r.padEnd(12)} ${String(visit).padStart(5)} ${String(size).padStart(5)} ${times[0].toFixed(0).padStart(10)} ${mean.toFixed(0).padStart(12)} ${median.toFixed(0).padStart(10)}   ${adapter.replace(/^WebGPU: /, '')}`);
          } finally {
            await browser.close();
          }
        }
      }
    } finally {
      await server.close();
    }
    console.log(`\nroute        visit  size  first (ms)  mean (ms)*  median (ms)*   adapter${flags.tta ? '   (with TTA)' : ''}`);
    for (const row of rows) console.log(row);
    console.log('* per slice, slices 2 and later (the first includes compiling the kernels)');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  process.exit(0);
} catch (e) {
  fail(e);
}
