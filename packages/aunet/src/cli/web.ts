// `pnpm --filter aunet web [--checkpoint FILE] [--port N]`: the web page that segments a CT scan
// in the browser, served from this machine, with the shipped model unless another is named.

import { latestBestCheckpoint } from '../run-folder';
import { defaultModel, defaultModelLine, missingModelMessage } from '../shipped-model';
import { FROM_SOURCE } from '../package-dir';
import { startWebServer } from '../web/server';
import { fail, invocationDir, numberFlag, parseFlags, userPath } from './common';

const usage = `
Serve the web page that segments COVID-19 lesions in a CT scan in the browser: the network runs
on the browser's WebGPU with this project's own kernels, and the scan never leaves the machine
(the page asks nothing of any server but this one). Open the printed URL in a browser with
WebGPU (Chrome or Edge 113+, Safari 26, Firefox 141+ on Windows; on Linux, Chrome or Chromium
with --enable-unsafe-webgpu --enable-features=Vulkan), drop a .nii / .nii.gz volume or a PNG or
JPEG slice on it, and read the lesions, their area and burden; download the mask as NIfTI.

Usage: pnpm --filter aunet web [options]

  --checkpoint FILE   the model to serve (default: the shipped model,
                      packages/aunet/models/aunet-medseg.safetensors, described in
                      packages/aunet/MODEL.md; $AUNET_MODEL names another file). Whatever the
                      server serves, a .safetensors dropped on the page replaces it there
  --runs DIR          serve best.safetensors of the latest training run under DIR instead
                      (e.g. packages/aunet/runs, where train writes its runs)
  --port N            port to listen on (default 8750; 0: any free port)
  --host ADDR         address to listen on (default 127.0.0.1, this machine only). Another
                      address exposes the page (and the checkpoint) to the network, and
                      browsers give WebGPU only to pages on localhost or https
  --verbose           also show Dawn's (the WebGPU library's) own notices on stderr
  -h, --help          this help

The page logs one line per slice to the browser console ("aunet-timing slice=k/n ms=..."), and
\`pnpm --filter aunet web-time\` prints the per-slice time in headless Chromium.
`;

const flags = parseFlags(usage, { checkpoint: { type: 'string' }, runs: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' } });

try {
  const port = numberFlag('port', flags.port, true) ?? 8750;
  if (port < 0 || port > 65535) throw new Error(`--port must be 0 to 65535, got ${port}`);
  const host = flags.host ?? '127.0.0.1';
  if (flags.checkpoint && flags.runs) throw new Error('give --checkpoint FILE or --runs DIR, not both');
  let checkpoint: string | null = null;
  let note: string | undefined;
  let shipped = false;
  if (flags.checkpoint) checkpoint = userPath(flags.checkpoint);
  else if (flags.runs) {
    const runs = userPath(flags.runs);
    checkpoint = latestBestCheckpoint(runs);
    if (!checkpoint) note = `No training run under ${runs} has a best.safetensors.`;
  } else {
    // The shipped model; where it is missing the page still serves, for a dropped checkpoint.
    const m = defaultModel({ base: invocationDir() });
    if (m.exists) {
      console.log(defaultModelLine(m, invocationDir()));
      checkpoint = m.file;
      shipped = true;
    } else {
      const missing = missingModelMessage(m, invocationDir());
      note = `${missing[0].toUpperCase()}${missing.slice(1)}.`;
    }
  }
  // From source the page is bundled now (seconds); the build serves the bundle it made.
  if (FROM_SOURCE) console.log('bundling the page…');
  const server = await startWebServer({ checkpoint, shipped, note, port, host });
  const i = server.info;
  console.log(
    i.available
      ? `model: ${checkpoint} (${i.model!.architecture}, ${i.model!.inputSize}x${i.model!.inputSize}, filters ${i.model!.filters.join('-')}, epoch ${i.epoch})`
      : `model: none. ${note ?? 'No checkpoint.'} The page asks for a .safetensors checkpoint to be dropped on it.`,
  );
  if (!/^(127\.|localhost$|::1$)/.test(host)) console.log(`warning: listening on ${host}: anyone who can reach it gets the page and the checkpoint; browsers elsewhere give WebGPU only to https pages`);
  console.log(`open ${server.url} in a browser with WebGPU (Ctrl-C stops the server)`);
  const stop = () => void server.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
} catch (e) {
  fail(e);
}
