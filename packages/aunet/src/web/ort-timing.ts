// ONNX Runtime Web beside the web page, for `web-time` (Node only, development: onnxruntime-web
// and playwright-core are devDependencies). Bundles ort-page.ts and serves it with
// onnxruntime-web's dist files as the package ships them, the model exported to ONNX and the scan,
// from a server of its own on 127.0.0.1, so that the web page's server carries no benchmark
// routes. Every response is cross-origin isolated (COOP same-origin, COEP require-corp): without
// it the browser gives no SharedArrayBuffer and ONNX Runtime's wasm runs on one thread.

import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { BrowserContext } from 'playwright-core';
import type { OrtPageConfig, OrtPageResult } from './ort-page';
import { browserBundle } from './server';

/**
 * The ONNX Runtime Web peers: the build of onnxruntime-web each loads (a file of its dist/) and
 * the execution provider it asks for, alone (no fallback to another provider), and the name
 * ONNX Runtime's log gives that provider when it places the graph's nodes.
 * - `ort-wasm`: the CPU provider compiled to WebAssembly (SIMD, threads), the plain build.
 * - `ort-webgpu`: the WebGPU provider, in the build the package exports as onnxruntime-web/webgpu.
 */
export const ORT_PEERS = {
  'ort-wasm': { ep: 'wasm', script: 'ort.wasm.min.mjs', provider: 'CPUExecutionProvider' },
  'ort-webgpu': { ep: 'webgpu', script: 'ort.webgpu.min.mjs', provider: 'WebGpuExecutionProvider' },
} as const;
export type OrtPeer = keyof typeof ORT_PEERS;

/** onnxruntime-web's dist/ folder (its exports map has no package.json entry: found through a file it does export). */
export function ortDistDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('onnxruntime-web/wasm'));
}

/** onnxruntime-web's version, from its package.json. */
export function ortWebVersion(): string {
  return (JSON.parse(readFileSync(join(ortDistDir(), '..', 'package.json'), 'utf8')) as { version: string }).version;
}

/** ort-page.ts bundled for the browser (see browserBundle). */
export async function buildOrtPage(): Promise<string> {
  return (await browserBundle('ort-page')).js;
}

export interface OrtPageServer {
  url: string;
  close(): Promise<void>;
}

const HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>ONNX Runtime Web timing (web-time)</title></head>
<body data-state="starting"><script type="module" src="ort-page.js"></script></body></html>
`;

const TYPES: Record<string, string> = { mjs: 'text/javascript; charset=utf-8', js: 'text/javascript; charset=utf-8', wasm: 'application/wasm' };
const LOOPBACK_HOSTS = /^(127\.\d+\.\d+\.\d+|localhost)(:\d+)?$/i;

/**
 * Serve the ONNX Runtime page on 127.0.0.1 (any free port): `/` and `/ort-page.js` (the page),
 * `/config.json`, `/model.onnx` (the exported model), `/scan.nii` (the scan web-time drops on the
 * web page) and `/ort/NAME` (onnxruntime-web's dist files: ort*.mjs and ort*.wasm only).
 */
export async function startOrtPageServer(o: { script: string; config: OrtPageConfig; onnx: Uint8Array; scan: Uint8Array }): Promise<OrtPageServer> {
  const distDir = ortDistDir();
  const files = new Map<string, { type: string; body: string | Uint8Array }>([
    ['/', { type: 'text/html; charset=utf-8', body: HTML }],
    ['/ort-page.js', { type: 'text/javascript; charset=utf-8', body: o.script }],
    ['/config.json', { type: 'application/json', body: JSON.stringify(o.config) }],
    ['/model.onnx', { type: 'application/octet-stream', body: o.onnx }],
    ['/scan.nii', { type: 'application/octet-stream', body: o.scan }],
  ]);
  const headers = {
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-embedder-policy': 'require-corp',
    'cross-origin-resource-policy': 'same-origin',
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-store',
  };
  const send = (res: ServerResponse, status: number, type: string, body: string | Uint8Array) => {
    res.writeHead(status, { ...headers, 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (!LOOPBACK_HOSTS.test(req.headers.host ?? '')) return send(res, 403, 'text/plain', 'forbidden host\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'only GET\n');
    const path = (req.url ?? '/').split('?')[0];
    let file = files.get(path);
    const asked = /^\/ort\/(ort[\w.-]*\.(mjs|wasm))$/.exec(path);
    if (!file && asked && existsSync(join(distDir, asked[1]))) {
      file = { type: TYPES[asked[2]], body: readFileSync(join(distDir, asked[1])) };
      files.set(path, file);
    }
    if (!file) return send(res, 404, 'text/plain', 'not found\n');
    send(res, 200, file.type, file.body);
  };
  const server: Server = createServer(handle);
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** Where ONNX Runtime placed the graph's nodes: per provider, how many and which operators. */
export type NodePlacement = Record<string, { nodes: number; operators: Record<string, number> }>;

/** One peer's run on the page: its result, or why it failed; ONNX Runtime's warnings and node placement either way. */
export type OrtPeerRun =
  | ({ ok: true; warnings: string[]; placement: NodePlacement } & Omit<OrtPageResult, 'probabilities'> & { probabilities: Float32Array })
  | { ok: false; error: string; warnings: string[]; placement: NodePlacement };

// ONNX Runtime's log lines ("[V:onnxruntime:, file.cc:N Function] text"); its native log reaches the console as errors.
const ORT_LOG_LINE = /\[([VIWEF]):onnxruntime:[^\]]*\] ?(.*)$/;
// Session start, verbose: "Node(s) placed on [P]. Number of nodes: N" then a line per node
// ("  OpType (name)"), or "All nodes placed on [P]. Number of nodes: N" alone.
const PLACED = /(?:Node\(s\)|All nodes) placed on \[(\w+)\]\. Number of nodes: (\d+)/;
const PLACED_NODE = /^\s+(\w+) \(.*\)\s*$/;

/** "all 82 nodes on WebGpuExecutionProvider", or each provider's share with the operators it took. */
export function describePlacement(p: NodePlacement): string {
  const providers = Object.entries(p);
  if (!providers.length) return 'node placement not logged';
  if (providers.length === 1) return `all ${providers[0][1].nodes} nodes on ${providers[0][0]}`;
  return providers
    .map(([name, q]) => `${q.nodes} nodes on ${name} (${Object.entries(q.operators).map(([op, n]) => `${op} ${n}`).join(', ')})`)
    .join('; ');
}

/**
 * Time `peer` on the ONNX Runtime page of `server` in a new tab of `context` (the browser of a
 * web-time route), closing the tab after. `onSlice` gets each slice's milliseconds as the page
 * logs them. A peer that fails (its provider does not start on this route, a run throws) is
 * returned as such, with the page's message, not thrown: the other peers still run.
 */
export async function timeOrtPeer(context: BrowserContext, server: OrtPageServer, peer: OrtPeer, onSlice: (k: number, n: number, ms: number) => void, timeoutMs = 3_600_000): Promise<OrtPeerRun> {
  const page = await context.newPage();
  const warnings: string[] = [];
  const placement: NodePlacement = {};
  let placing: string | null = null;
  try {
    page.on('console', (m) => {
      const text = m.text();
      if (process.env.AUNET_DEBUG) console.log(`  [${peer} console ${m.type()}] ${text.slice(0, 300)}`);
      const hit = /^ort-timing slice=(\d+)\/(\d+) ms=([\d.]+)/.exec(text);
      if (hit) return onSlice(Number(hit[1]), Number(hit[2]), Number(hit[3]));
      const log = ORT_LOG_LINE.exec(text);
      if (log && (log[1] === 'V' || log[1] === 'I')) {
        const placed = PLACED.exec(log[2]);
        const node = PLACED_NODE.exec(log[2]);
        if (placed) {
          placing = placed[1];
          placement[placing] = { nodes: Number(placed[2]), operators: {} };
        } else if (node && placing) {
          const ops = placement[placing].operators;
          ops[node[1]] = (ops[node[1]] ?? 0) + 1;
        } else placing = null;
        return;
      }
      // ONNX Runtime's warnings and errors (among them "Some nodes were not assigned to the
      // preferred execution providers"), and the browser's.
      if ((m.type() === 'warning' || m.type() === 'error') && !text.startsWith('ort-timing failed')) warnings.push((log ? `${log[1]}: ${log[2]}` : text).split('\n')[0].slice(0, 400));
    });
    const { ep, script } = ORT_PEERS[peer];
    try {
      await page.goto(`${server.url}?ep=${ep}&script=${script}`);
      await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), null, { timeout: timeoutMs, polling: 250 });
    } catch (e) {
      // The tab crashed (out of memory) or the page never finished: this peer's failure, not the run's.
      return { ok: false, error: (e instanceof Error ? e.message : String(e)).split('\n')[0], warnings, placement };
    }
    const got = await page.evaluate(() => {
      const api = (window as unknown as { ortPage: { result(): OrtPageResult | null; error(): string | null } }).ortPage;
      return { result: api.result(), error: api.error() };
    });
    if (!got.result) return { ok: false, error: got.error ?? 'the page ended without a result', warnings, placement };
    const bytes = Buffer.from(got.result.probabilities, 'base64');
    const probabilities = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    return { ...got.result, ok: true, probabilities, warnings, placement };
  } finally {
    await page.close().catch(() => {});
  }
}

/** Worst |a - b| over two probability volumes; Infinity where either has a NaN or the lengths differ. */
export function worstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}
