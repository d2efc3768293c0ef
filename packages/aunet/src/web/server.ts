// The web page's server (Node only): bundles src/web/page.ts with esbuild (the build reads the
// bundle scripts/build.ts made instead), and serves the page, the bundle and the checkpoint's
// bytes from 127.0.0.1. Nothing else: the page asks nothing of any other host, and its
// Content-Security-Policy forbids it to.

import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configFromMetadata, epochFromMetadata, readCheckpointMetadata } from '../checkpoint';
import { readCheckpointBytes } from '../run-folder';
import type { TrainConfig } from '../config';
import { FROM_SOURCE } from '../package-dir';

/** The page's HTML (scripts/build.ts copies it beside the built server). */
const PAGE_HTML = fileURLToPath(new URL('./index.html', import.meta.url));

/** The package's scripts for the browser, src/web/NAME.ts: the web page, and web-time's ONNX Runtime page. */
export const BROWSER_ENTRIES = ['page', 'ort-page'] as const;
export type BrowserEntry = (typeof BROWSER_ENTRIES)[number];

/** What the page learns about the server's checkpoint (GET /model/info.json). */
export interface ServedModelInfo {
  available: boolean;
  /** File name (not the path: the page has no use for the server's folders). */
  name?: string;
  bytes?: number;
  epoch?: number;
  model?: TrainConfig['model'];
  /** The model is the one that ships with the package (or $AUNET_MODEL's, in its place): used because no checkpoint was given. */
  shipped?: boolean;
  /** Why none is served, for the page to say. */
  note?: string;
}

/** A checkpoint file's bytes and what its metadata says; CheckpointError naming the file when it is unusable. */
export function readServedCheckpoint(file: string): { bytes: Uint8Array; info: ServedModelInfo } {
  const bytes = readCheckpointBytes(file);
  const metadata = readCheckpointMetadata(bytes, file);
  const config = configFromMetadata(metadata, file);
  return { bytes, info: { available: true, name: basename(file), bytes: bytes.length, epoch: epochFromMetadata(metadata), model: config.model } };
}

export interface PageBundle {
  html: string;
  js: string;
  /** Source files in the bundle (relative to packages/aunet), for the test that keeps Node out. */
  inputs: string[];
}

/** The page's HTML and its script, bundled for the browser. */
export async function buildPage(): Promise<PageBundle> {
  const { js, inputs } = await browserBundle('page');
  return { html: readFileSync(PAGE_HTML, 'utf8'), js, inputs };
}

/**
 * One of the package's browser scripts: from source, bundled by esbuild now (in memory); in the
 * build, as scripts/build.ts bundled it (dist/web/NAME.bundle.js, its inputs in NAME.bundle.json),
 * since an installed package has neither esbuild nor the sources.
 */
export async function browserBundle(entry: BrowserEntry): Promise<{ js: string; inputs: string[] }> {
  if (FROM_SOURCE) return bundleForBrowser(fileURLToPath(new URL(`./${entry}.ts`, import.meta.url)));
  const built = (ext: string) => readFileSync(fileURLToPath(new URL(`./${entry}.bundle.${ext}`, import.meta.url)), 'utf8');
  return { js: built('js'), inputs: (JSON.parse(built('json')) as { inputs: string[] }).inputs };
}

/** One browser script (ES module, ES2022) bundled in memory by esbuild from `entry`, with the source files it took in (relative to packages/aunet). */
export async function bundleForBrowser(entry: string): Promise<{ js: string; inputs: string[] }> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    write: false,
    metafile: true,
    logLevel: 'silent',
    absWorkingDir: fileURLToPath(new URL('../..', import.meta.url)),
  });
  return { js: result.outputFiles[0].text, inputs: Object.keys(result.metafile.inputs) };
}

export interface WebServerOptions {
  /** Checkpoint file to serve; null: none (the page then asks for one to be dropped). */
  checkpoint: string | null;
  /** `checkpoint` is the shipped model (see shipped-model.ts), served because none was given: the page says so. */
  shipped?: boolean;
  /** Why there is no checkpoint, shown on the page. */
  note?: string;
  port?: number;
  host?: string;
  /** Prebuilt bundle (tests build it once for several servers). */
  bundle?: PageBundle;
}

export interface WebServer {
  url: string;
  port: number;
  info: ServedModelInfo;
  close(): Promise<void>;
}

/**
 * The page's policy: scripts, styles, pictures, connections and workers only from this server
 * (and data:/blob: URLs made in the page), no frames, no forms posted anywhere. A browser that
 * honours it sends no request to any other host, whatever a library in the bundle attempts.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self' data: blob:",
  "worker-src 'self' blob:",
  "font-src 'self' data:",
  "object-src 'none'",
  "frame-src 'none'",
  "form-action 'none'",
  "base-uri 'none'",
].join('; ');

const LOOPBACK_HOSTS = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/i;

/** Serve the page. Resolves once listening; rejects with a one-line Error when the port is taken. */
export async function startWebServer(o: WebServerOptions): Promise<WebServer> {
  const bundle = o.bundle ?? (await buildPage());
  const host = o.host ?? '127.0.0.1';
  let checkpoint: Uint8Array | null = null;
  let info: ServedModelInfo = { available: false, note: o.note ?? 'The server was started without a checkpoint.' };
  if (o.checkpoint) {
    ({ bytes: checkpoint, info } = readServedCheckpoint(o.checkpoint));
    if (o.shipped) info.shipped = true;
  }

  const headers = {
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
    'cross-origin-opener-policy': 'same-origin',
  };
  const send = (res: ServerResponse, status: number, type: string, body: string | Uint8Array) => {
    res.writeHead(status, { ...headers, 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const loopbackOnly = LOOPBACK_HOSTS.test(host);
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    // Bound to the loopback, the page answers only to loopback names: a web site that rebinds
    // its own name to 127.0.0.1 (DNS rebinding) gets nothing from it.
    if (loopbackOnly && !LOOPBACK_HOSTS.test(req.headers.host ?? '')) return send(res, 403, 'text/plain', 'forbidden host\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'only GET\n');
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/':
      case '/index.html':
        return send(res, 200, 'text/html; charset=utf-8', bundle.html);
      case '/app.js':
        return send(res, 200, 'text/javascript; charset=utf-8', bundle.js);
      case '/model/info.json':
        return send(res, 200, 'application/json', JSON.stringify(info));
      case '/model/checkpoint.safetensors':
        if (!checkpoint) return send(res, 404, 'text/plain', 'no checkpoint on this server\n');
        return send(res, 200, 'application/octet-stream', checkpoint);
      default:
        return send(res, 404, 'text/plain', 'not found\n');
    }
  };
  const server: Server = createServer(handle);
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') reject(new Error(`port ${o.port} on ${host} is in use (another server, or this one already running?): pass --port with another number, or --port 0 for any free one`));
      else if (e.code === 'EACCES') reject(new Error(`not allowed to listen on port ${o.port} of ${host}: ports below 1024 need root; pass --port with a number above 1024`));
      else if (e.code === 'EADDRNOTAVAIL') reject(new Error(`${host} is not an address of this machine: leave --host out for 127.0.0.1`));
      else reject(e);
    });
    server.listen(o.port ?? 0, host, () => resolve((server.address() as { port: number }).port));
  });
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/`,
    port,
    info,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
