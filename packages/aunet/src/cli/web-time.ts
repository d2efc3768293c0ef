// `pnpm --filter aunet web-time [--route swiftshader|lavapipe|both] [--size 512] [--slices 3] [--peers ...]`:
// the web page's time per slice in headless Chromium, as a user's browser would run it, beside
// ONNX Runtime Web (wasm and WebGPU providers) on the same model, slices and browser.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { init } from '@aunet/tensor';
import { checkpointBytes } from '@aunet/nn';
import { checkpointMetadata } from '../checkpoint';
import { defaultTrainConfig } from '../config';
import { DEFAULT_DATA_DIR, readVolume } from '../data/files';
import { encodeNifti } from '../data/nifti';
import { resizeBilinear } from '../data/transforms';
import { AUNet } from '../model';
import { exportOnnx, ONNX_INPUT, ONNX_OUTPUT } from '../onnx-export';
import { loadRunCheckpoint } from '../run-folder';
import { CHROMIUM_ROUTES, launchChromiumWithProfile, type ChromiumRoute } from '../web/chromium';
import { buildOrtPage, describePlacement, ORT_PEERS, ortWebVersion, startOrtPageServer, timeOrtPeer, worstDifference, type OrtPageServer, type OrtPeer } from '../web/ort-timing';
import { startWebServer } from '../web/server';
import { fail, numberFlag, parseFlags, userPath } from './common';

const PEERS = ['ours', 'ort-wasm', 'ort-webgpu'] as const;
type Peer = (typeof PEERS)[number];

/**
 * Worst |ORT - ours| of the probabilities beyond which the two are not the same network (an
 * export or runtime bug), and the command fails: ONNX Runtime on the CPU agrees with ours to
 * about 6e-3 on the random-weight 512x512 AU-Net, from float32 rounding in another order.
 */
const SAME_NETWORK = 0.05;

const usage = `
Time the web page's segmentation per slice in headless Chromium (no GPU needed): serves the page,
drops a scan on it, and prints the milliseconds the page logs per slice (the first slice
includes compiling the kernels, so the figure to quote is the mean of the others). Beside it, in
the same browser, ONNX Runtime Web runs the same model (exported to ONNX in-process) on the same
slices through the same pipeline, with its wasm and its WebGPU execution providers, and the
worst difference of its probabilities from the page's is printed.

Usage: pnpm --filter aunet web-time [options]

  --route R          swiftshader, lavapipe or both (default both): how Chromium gets WebGPU
                     without a GPU (swiftshader: --enable-unsafe-webgpu; lavapipe: WebGPU on
                     OpenGL ES over Mesa's lavapipe, a compatibility-mode adapter)
  --peers LIST       what to time, comma-separated (default ours,ort-wasm,ort-webgpu):
                       ours        the web page, on this project's WebGPU kernels
                       ort-wasm    onnxruntime-web's wasm (CPU) provider, SIMD, one thread per
                                   core the browser reports (its page is cross-origin isolated)
                       ort-webgpu  onnxruntime-web's WebGPU provider on the route's adapter, alone:
                                   where it cannot start, its row says why (no fallback to wasm)
  --checkpoint FILE  the model (default: random weights of the paper's AU-Net, filters
                     32-512, at --size: the time does not depend on the weights)
  --size N           the model's input size without --checkpoint (default 512)
  --slices N         slices of the shipped CT to segment, at the model's size (default 3)
  --tta              with mirroring test-time augmentation (4 network passes per slice), for
                     every peer
  --conv2d-variant V fallback, gpu or auto (default auto): force conv2d's kernel variant on the
                     page (the page's ?conv2d=V), to compare them on one route
  --visits N         load the pages N times per route on one browser profile (default 1): the
                     first slice of a later visit shows what Chromium kept of the compiled
                     kernels, as a returning user sees it
  --verbose          also show Dawn's (the WebGPU library's) own notices on stderr
  -h, --help         this help

Fails (exit 1) when a page does not start or ends in an error, or when ONNX Runtime's
probabilities differ from ours by more than ${SAME_NETWORK} (not the same network); an ONNX Runtime
provider that cannot start on a route is reported in its row, and the others still run.
Run it on an otherwise idle machine: other lavapipe work slows both 10-100x.
`;

const flags = parseFlags(usage, { route: { type: 'string' }, peers: { type: 'string' }, checkpoint: { type: 'string' }, size: { type: 'string' }, slices: { type: 'string' }, tta: { type: 'boolean' }, 'conv2d-variant': { type: 'string' }, visits: { type: 'string' } });

/** One row of the table: a peer's times on a route and visit, or why it has none. */
interface Row {
  route: ChromiumRoute;
  peer: Peer;
  visit: number;
  times: number[];
  failed?: string;
  /** The adapter (ours), or the provider, threads and adapter (ONNX Runtime). */
  detail: string;
  /** Worst |theirs - ours| of the probabilities and mask voxels that differ at 0.5 (ONNX Runtime rows, where ours ran). */
  agreement?: { worst: number; maskDiffers: number; voxels: number };
  /** Lines under the table: the ONNX Runtime build, session start, where its nodes ran. */
  notes?: string[];
  warnings?: string[];
}

const cell = (v: number, width: number) => (Number.isFinite(v) ? v.toFixed(0) : '–').padStart(width);

function formatRow(r: Row, size: number): string {
  const head = `${r.route.padEnd(12)} ${r.peer.padEnd(11)} ${String(r.visit).padStart(5)} ${String(size).padStart(5)}`;
  if (r.failed) return `${head}   FAILED: ${r.failed}`;
  const rest = r.times.slice(1).sort((a, b) => a - b);
  const mean = rest.length ? rest.reduce((a, b) => a + b, 0) / rest.length : NaN;
  const median = rest.length ? rest[Math.floor(rest.length / 2)] : NaN;
  return `${head} ${cell(r.times[0], 10)} ${cell(mean, 11)} ${cell(median, 12)}   ${r.detail}`;
}

try {
  const route = flags.route ?? 'both';
  const routes: ChromiumRoute[] = route === 'both' ? ['swiftshader', 'lavapipe'] : [route as ChromiumRoute];
  if (!['swiftshader', 'lavapipe'].includes(routes[0])) throw new Error(`--route must be swiftshader, lavapipe or both, got "${route}"`);
  const peers = [...new Set((flags.peers ?? PEERS.join(',')).split(',').map((p) => p.trim()))] as Peer[];
  const unknown = peers.filter((p) => !PEERS.includes(p));
  if (unknown.length || !peers.length) throw new Error(`--peers takes a comma-separated list of ${PEERS.join(', ')}, got "${flags.peers}"`);
  const ortPeers = peers.filter((p): p is OrtPeer => p in ORT_PEERS);
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
    // The model as ONNX for ONNX Runtime, exported here from the weights the page gets.
    let onnx: Uint8Array | null = null;
    if (flags.checkpoint) {
      checkpoint = userPath(flags.checkpoint);
      size = 0; // from the checkpoint, below
      if (ortPeers.length) {
        await init();
        const { model, epoch } = await loadRunCheckpoint(checkpoint);
        onnx = (await exportOnnx(model, { description: `weights of ${basename(checkpoint)}, epoch ${epoch}` })).bytes;
        model.dispose();
      }
    } else {
      size = numberFlag('size', flags.size, true) ?? 512;
      if (size < 16 || size % 16 !== 0) throw new Error(`--size must be a multiple of 16, got ${size}`);
      console.log(`making a random-weight AU-Net (filters 32-512) at ${size}x${size}…`);
      await init();
      const config = defaultTrainConfig('paper', DEFAULT_DATA_DIR, { model: { inputSize: size } });
      const model = new AUNet(config.model);
      checkpoint = join(tmp, `aunet-${size}.safetensors`);
      writeFileSync(checkpoint, await checkpointBytes(model, { metadata: checkpointMetadata({ config, epoch: 0 }) }));
      if (ortPeers.length) onnx = (await exportOnnx(model, { description: 'random weights (web-time)' })).bytes;
      model.dispose();
    }
    const server = await startWebServer({ checkpoint });
    const modelConfig = server.info.model!;
    size ||= modelConfig.inputSize;
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
    let ortServer: OrtPageServer | null = null;
    if (onnx) {
      console.log(`onnxruntime-web ${ortWebVersion()}: the model exported to ONNX (${(onnx.byteLength / 2 ** 20).toFixed(1)} MiB)`);
      ortServer = await startOrtPageServer({
        script: await buildOrtPage(),
        config: { size, channels: modelConfig.inChannels, inputName: ONNX_INPUT, outputName: ONNX_OUTPUT, tta: !!flags.tta },
        onnx,
        scan,
      });
    }
    const rows: Row[] = [];
    try {
      for (const r of routes) {
        console.log(`${r}: chromium ${CHROMIUM_ROUTES[r].join(' ')}`);
        // One browser profile per route, kept across its visits as a user's browser keeps it.
        const profile = join(tmp, `profile-${r}`);
        for (let visit = 1; visit <= visits; visit++) {
          const browser = await launchChromiumWithProfile(r, profile);
          const label = (peer: Peer) => `  ${visits > 1 ? `visit ${visit}, ` : ''}${peer} `;
          try {
            let ours: Float32Array | null = null;
            if (peers.includes('ours')) {
              const page = await browser.newPage();
              const times: number[] = [];
              page.on('console', (m) => {
                const hit = /^aunet-timing slice=(\d+)\/(\d+) ms=([\d.]+)/.exec(m.text());
                if (hit) {
                  times.push(Number(hit[3]));
                  console.log(`${label('ours')}slice ${hit[1]}/${hit[2]}: ${hit[3]} ms`);
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
              if (ortPeers.length) {
                const probabilities = await page.evaluate(() => (window as unknown as { aunetPage: { result(): { probabilities: number[] } } }).aunetPage.result().probabilities);
                ours = Float32Array.from(probabilities);
              }
              rows.push({ route: r, peer: 'ours', visit, times, detail: adapter.replace(/^WebGPU: /, '') });
              // Closed before ONNX Runtime runs: the page's buffers are freed, not idle beside it.
              await page.close();
            }
            for (const peer of ortPeers) {
              const times: number[] = [];
              const run = await timeOrtPeer(browser, ortServer!, peer, (k, n, ms) => {
                times.push(ms);
                console.log(`${label(peer)}slice ${k}/${n}: ${ms.toFixed(1)} ms`);
              });
              const placed = describePlacement(run.placement);
              if (!run.ok) {
                console.log(`${label(peer)}failed: ${run.error}`);
                rows.push({ route: r, peer, visit, times, failed: run.error, detail: '', notes: [placed], warnings: run.warnings });
                continue;
              }
              // Nodes ONNX Runtime ran on another provider than the one asked for (its CPU provider, for WebGPU).
              const elsewhere = Object.keys(run.placement).filter((p) => p !== ORT_PEERS[peer].provider);
              const threads = `${run.threads} thread${run.threads === 1 ? '' : 's'} of ${run.hardwareConcurrency} cores${run.crossOriginIsolated ? '' : ' (not cross-origin isolated)'}`;
              const detail = `${run.ep}${run.adapter ? ` on ${run.adapter}` : ''}, ${threads}${elsewhere.length ? `, PARTLY ON ${elsewhere.join(', ')}` : ''}`;
              const notes = [`onnxruntime-web ${run.ortVersion} (${run.script}), session started in ${run.sessionMs.toFixed(0)} ms; ${placed}`];
              const row: Row = { route: r, peer, visit, times: run.msPerSlice, detail, notes, warnings: run.warnings };
              if (ours) {
                let maskDiffers = 0;
                for (let i = 0; i < ours.length; i++) maskDiffers += (ours[i] >= 0.5) !== (run.probabilities[i] >= 0.5) ? 1 : 0;
                row.agreement = { worst: worstDifference(run.probabilities, ours), maskDiffers, voxels: ours.length };
              }
              rows.push(row);
            }
          } finally {
            await browser.close();
          }
        }
      }
    } finally {
      await server.close();
      await ortServer?.close();
    }
    console.log(`\nroute        peer        visit  size  first (ms)  mean (ms)*  median (ms)*   adapter / provider${flags.tta ? '   (with TTA)' : ''}`);
    for (const row of rows) console.log(formatRow(row, size));
    console.log('* per slice, slices 2 and later (the first includes compiling the kernels, or ONNX Runtime\'s first run)');
    const compared = rows.filter((r) => r.agreement);
    if (compared.length) {
      console.log(`\nONNX Runtime Web against ours, the same ${slices} slice${slices === 1 ? '' : 's'} (${compared[0].agreement!.voxels} voxels):`);
      for (const r of compared) {
        const a = r.agreement!;
        console.log(`  ${r.route} ${r.peer}${visits > 1 ? ` visit ${r.visit}` : ''}: worst |difference| of the probabilities ${a.worst.toExponential(2)}; ${a.maskDiffers} mask voxel${a.maskDiffers === 1 ? '' : 's'} differ at 0.5`);
      }
    } else if (ortPeers.length) console.log('\nno agreement figure: ONNX Runtime is compared with ours, which --peers left out');
    for (const r of rows.filter((x) => x.notes?.length || x.warnings?.length)) {
      const unique = [...new Set(r.warnings)];
      console.log(`\n${r.route} ${r.peer}${visits > 1 ? ` visit ${r.visit}` : ''}:`);
      for (const n of r.notes ?? []) console.log(`  ${n}`);
      for (const w of unique.slice(0, 8)) console.log(`  console: ${w}`);
      if (unique.length > 8) console.log(`  console: ${unique.length - 8} more warnings`);
    }
    const apart = compared.filter((r) => !(r.agreement!.worst <= SAME_NETWORK));
    if (apart.length) throw new Error(`${apart.map((r) => `${r.route} ${r.peer}`).join(', ')}: probabilities differ from ours by more than ${SAME_NETWORK} (${apart.map((r) => r.agreement!.worst.toExponential(2)).join(', ')}): not the same network`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  process.exit(0);
} catch (e) {
  fail(e);
}
