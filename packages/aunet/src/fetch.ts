// Node-only: downloading the official MedSeg COVID-19 files, checked against their MD5 sums.
//
// Each file goes to NAME.part first and takes its final name only once its MD5 matches, so a
// kill, a dropped connection or a bad download never leaves a wrong file under the name the
// loader looks for. A .part left by an earlier attempt (or run) is resumed with an HTTP Range
// request; a server that answers the range with the whole file restarts it from zero.

import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, stat, truncate, unlink } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage, type ClientRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { defaultOutputDir } from './package-dir';

/** One file to fetch: its name in the folder, its MD5 (hex) and, unless a base URL is given, where it lives. */
export interface DataFile {
  name: string;
  md5: string;
  url?: string;
}

/** Where the dataset is published: figshare, "MedSeg Covid Dataset 1" (CC0). */
export const MEDSEG_DOI_URL = 'https://doi.org/10.6084/m9.figshare.13521488';

/**
 * The official files (packages/aunet/data/medseg-covid/SOURCE.md lists the same sums), each at
 * its figshare download address, which redirects to figshare's storage.
 */
export const MEDSEG_FILES: readonly Required<DataFile>[] = [
  { name: 'tr_im.nii.gz', md5: '54f82e3a9ac01bf6cc2300ca53d820ae', url: 'https://ndownloader.figshare.com/files/25953977' },
  { name: 'tr_mask.nii.gz', md5: 'd11996de45d06d332658115d8b3cf6fc', url: 'https://ndownloader.figshare.com/files/25953980' },
  { name: 'val_im.nii.gz', md5: '098e8ab8b2e85f7c66abf8a92721ee95', url: 'https://ndownloader.figshare.com/files/25953983' },
];

/** Where `fetch-data` puts the files by default: packages/aunet/data/medseg-official in the repository, ./data/medseg-official when installed (see package-dir.ts). */
export const DEFAULT_FETCH_DIR = defaultOutputDir('data/medseg-official');

/** Why fetching failed, in one line meant for the user. `partial` is the .part file kept for a resume, if any. */
export class FetchError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    readonly partial?: string,
  ) {
    super(message);
    this.name = 'FetchError';
  }
}

/** Bytes of one file so far (counting what an earlier attempt left), and its size when the server says. */
export interface FetchProgress {
  name: string;
  received: number;
  total?: number;
}

export interface FetchResult {
  name: string;
  path: string;
  /** present: already there with the right sum, nothing requested; downloaded: fetched (and verified) now. */
  status: 'present' | 'downloaded';
  bytes: number;
  md5: string;
  /** Bytes taken from a .part already on disk when the download started (0: from scratch). */
  resumedFrom: number;
  /** Requests made for the file (0 when present). */
  attempts: number;
}

export interface FetchOptions {
  /** The folder to write to; created when missing. */
  out: string;
  /** Names from {@link MEDSEG_FILES}, or files with their own sums (default: all of MEDSEG_FILES). */
  files?: (string | DataFile)[];
  /** Fetch every file from BASE/NAME instead of its own URL (a mirror, a test server). */
  baseUrl?: string;
  /** Further tries after a dropped connection or a 5xx answer, each resuming (default 3). */
  retries?: number;
  /** Wait before try k+1 is k times this (default 1000 ms). */
  retryDelayMs?: number;
  /** Give up on a connection silent for this long (default 30000 ms). */
  timeoutMs?: number;
  onProgress?: (p: FetchProgress) => void;
  /** What happened, a line at a time (skipped, resuming, retrying, verified...). */
  log?: (message: string) => void;
}

const MAX_REDIRECTS = 10;
/** Errors before any answer that mean the host cannot be reached at all (not worth retrying at once). */
const UNREACHABLE = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ETIMEDOUT', 'ENETUNREACH', 'EHOSTUNREACH', 'EADDRNOTAVAIL']);
const USER_AGENT = 'aunet-fetch-data (node)';

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** The way round when this machine cannot download them. */
function byHand(out: string): string {
  return `Download the files by hand from ${MEDSEG_DOI_URL} (a browser, another machine) and copy them into ${out}; a rerun then only checks their sums.`;
}

/** MD5 (hex) of a file on disk. */
export async function md5File(file: string): Promise<string> {
  const hash = createHash('md5');
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), hash);
  return hash.digest('hex');
}

async function sizeOf(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function removeIfThere(file: string): Promise<void> {
  await unlink(file).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
}

/** The files asked for, each with a URL. */
function resolveFiles(files: (string | DataFile)[] | undefined, baseUrl: string | undefined): Required<DataFile>[] {
  const base = baseUrl?.replace(/\/+$/, '');
  if (base !== undefined) {
    let u: URL;
    try {
      u = new URL(base);
    } catch {
      throw new FetchError(`the base URL "${baseUrl}" is not a URL (want e.g. https://host/path)`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new FetchError(`the base URL ${baseUrl} is not http or https`);
  }
  const list = files ?? MEDSEG_FILES.map((f) => f.name);
  if (list.length === 0) throw new FetchError('no files to fetch');
  return list.map((f) => {
    const entry = typeof f === 'string' ? MEDSEG_FILES.find((m) => m.name === f) : f;
    if (!entry) throw new FetchError(`unknown file "${String(f)}"; the files are ${MEDSEG_FILES.map((m) => m.name).join(', ')}`);
    if (!/^[0-9a-f]{32}$/i.test(entry.md5)) throw new FetchError(`${entry.name}: "${entry.md5}" is not an MD5 sum (32 hex digits)`);
    if (!entry.name || /[\\/]/.test(entry.name) || entry.name === '.' || entry.name === '..') throw new FetchError(`"${entry.name}" is not a plain file name`);
    const url = base !== undefined ? `${base}/${encodeURIComponent(entry.name)}` : entry.url;
    if (!url) throw new FetchError(`${entry.name}: no URL; give one, or a base URL`);
    return { name: entry.name, md5: entry.md5.toLowerCase(), url };
  });
}

/** A failure of one try that another try may cure. */
class Retryable extends Error {
  constructor(
    message: string,
    /** No answer at all came from the server (it cannot be reached). */
    readonly unreachable = false,
  ) {
    super(message);
  }
}

function describeNetError(e: NodeJS.ErrnoException, timeoutMs: number): string {
  // Node's happy-eyeballs connect may report an AggregateError: the first attempt's error says it.
  const inner = (e as NodeJS.ErrnoException & { errors?: NodeJS.ErrnoException[] }).errors?.[0];
  if (!e.code && inner) return describeNetError(inner, timeoutMs);
  switch (e.code) {
    case 'ENOTFOUND':
      return 'the name does not resolve (no DNS, or no network)';
    case 'EAI_AGAIN':
      return 'DNS lookup failed (no network?)';
    case 'ECONNREFUSED':
      return 'connection refused (nothing listens there)';
    case 'ETIMEDOUT':
      return `no answer within ${timeoutMs / 1000} s`;
    case 'ENETUNREACH':
      return 'network unreachable';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'ECONNRESET':
      return 'connection reset';
    default:
      return e.code ? `${e.code}: ${e.message}` : e.message || String(e);
  }
}

interface Answer {
  res: IncomingMessage;
  req: ClientRequest;
  url: URL;
  timedOut: () => boolean;
}

/** GET `url`, following redirects (the Range header goes along), up to the response of the last. */
async function get(start: string, headers: Record<string, string>, timeoutMs: number): Promise<Answer> {
  let url = new URL(start);
  for (let hop = 0; ; hop++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new FetchError(`cannot fetch ${url.href}: only http and https are supported`);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    let timedOut = false;
    const answer = await new Promise<Answer>((ok, fail) => {
      const req = send(url, { method: 'GET', headers: { 'user-agent': USER_AGENT, 'accept-encoding': 'identity', ...headers }, timeout: timeoutMs });
      req.on('timeout', () => {
        timedOut = true;
        req.destroy(Object.assign(new Error(`no data for ${timeoutMs / 1000} s`), { code: 'ETIMEDOUT' }));
      });
      req.on('error', (e: NodeJS.ErrnoException) => {
        const code = timedOut ? 'ETIMEDOUT' : e.code;
        fail(new Retryable(`cannot reach ${url.host}: ${describeNetError(e, timeoutMs)}`, code !== undefined && UNREACHABLE.has(code)));
      });
      req.on('response', (res) => ok({ res, req, url, timedOut: () => timedOut }));
      req.end();
    });
    const { res } = answer;
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if ([301, 302, 303, 307, 308].includes(status) && location) {
      discard(answer);
      if (hop >= MAX_REDIRECTS) throw new FetchError(`GET ${start}: more than ${MAX_REDIRECTS} redirects`);
      url = new URL(location, url);
      continue;
    }
    return answer;
  }
}

/** Lets go of a response we do not read (a redirect, an error page). */
function discard(a: Answer): void {
  a.res.resume();
  a.res.on('error', () => {});
  a.req.on('error', () => {});
}

/** One try: append to (or restart) the .part from where it ends; resolves when the server has sent it all. */
async function attempt(file: Required<DataFile>, part: string, opts: Required<Pick<FetchOptions, 'timeoutMs'>> & FetchOptions, firstTry: boolean): Promise<void> {
  const log = opts.log ?? (() => {});
  let offset = (await sizeOf(part)) ?? 0;
  const answer = await get(file.url, offset > 0 ? { range: `bytes=${offset}-` } : {}, opts.timeoutMs);
  const { res, url } = answer;
  const status = res.statusCode ?? 0;
  const where = `GET ${url.href}`;

  if (status === 416 && offset > 0) {
    // The range starts at or past the end: the .part may already be whole; the sum will tell.
    discard(answer);
    const total = /\/(\d+)\s*$/.exec(String(res.headers['content-range'] ?? ''))?.[1];
    if (total !== undefined && Number(total) === offset) return;
    log(`${file.name}: the server refused to resume at ${mb(offset)}; starting again from zero`);
    await truncate(part, 0);
    throw new Retryable(`${where}: HTTP 416 for a resume at byte ${offset}`);
  }
  if (status !== 200 && status !== 206) {
    discard(answer);
    const line = `${where}: HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}`;
    if (status >= 500 || status === 408 || status === 429) throw new Retryable(line);
    throw new FetchError(`${line}. ${byHand(resolve(opts.out))}`, file.name);
  }

  let total: number | undefined;
  if (status === 206) {
    const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)/.exec(String(res.headers['content-range'] ?? ''));
    if (!m || Number(m[1]) !== offset) {
      // A range we did not ask for: start over rather than splice wrong bytes.
      discard(answer);
      log(`${file.name}: the server answered the resume with an unexpected range (${res.headers['content-range'] ?? 'none'}); starting again from zero`);
      await truncate(part, 0);
      throw new Retryable(`${where}: unexpected Content-Range "${res.headers['content-range'] ?? ''}"`);
    }
    total = m[3] === '*' ? undefined : Number(m[3]);
    if (firstTry && offset > 0) log(`${file.name}: resuming ${file.name}.part from ${mb(offset)}${total ? ` of ${mb(total)}` : ''}`);
  } else {
    if (offset > 0) log(`${file.name}: the server sent the whole file instead of the rest from ${mb(offset)}; starting again from zero`);
    offset = 0;
    const length = res.headers['content-length'];
    total = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
  }

  let received = offset;
  opts.onProgress?.({ name: file.name, received, total });
  const sink = createWriteStream(part, { flags: offset > 0 ? 'a' : 'w' });
  try {
    await pipeline(
      res,
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          received += chunk.length;
          opts.onProgress?.({ name: file.name, received, total });
          yield chunk;
        }
      },
      sink,
    );
  } catch (e) {
    if (!sink.closed) await new Promise<void>((ok) => sink.once('close', () => ok()));
    const err = e as NodeJS.ErrnoException;
    if (err.syscall === 'write' || err.syscall === 'open' || err.code === 'ENOSPC' || err.code === 'EACCES' || err.code === 'EROFS') {
      throw new FetchError(`cannot write ${part}: ${err.message}`, file.name, part);
    }
    const why = answer.timedOut() ? `no data for ${opts.timeoutMs / 1000} s` : describeNetError(err, opts.timeoutMs);
    throw new Retryable(`connection to ${url.host} lost at ${mb(received)}${total ? ` of ${mb(total)}` : ''} (${why})`);
  }
  if (total !== undefined && received < total) {
    throw new Retryable(`connection to ${url.host} closed at ${mb(received)} of ${mb(total)}`);
  }
}

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/** Fetch one file into `out` (see {@link fetchDataset}). */
async function fetchOne(file: Required<DataFile>, out: string, opts: FetchOptions): Promise<FetchResult> {
  const log = opts.log ?? (() => {});
  const retries = opts.retries ?? 3;
  const delay = opts.retryDelayMs ?? 1000;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const path = join(out, file.name);
  const part = `${path}.part`;

  if ((await sizeOf(path)) !== undefined) {
    const sum = await md5File(path);
    if (sum === file.md5) {
      log(`${file.name}: already present, MD5 matches; skipped`);
      return { name: file.name, path, status: 'present', bytes: (await stat(path)).size, md5: sum, resumedFrom: 0, attempts: 0 };
    }
    log(`${file.name}: present but its MD5 is ${sum}, not ${file.md5}; downloading it again (it is replaced only by a verified copy)`);
  }

  const resumedFrom = (await sizeOf(part)) ?? 0;
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      await attempt(file, part, { ...opts, timeoutMs }, attempts === 1);
      break;
    } catch (e) {
      if (!(e instanceof Retryable)) throw e;
      const kept = (await sizeOf(part)) ?? 0;
      // Nothing answered and nothing is under way: the host cannot be reached; say so now.
      if (e.unreachable && attempts === 1) {
        throw new FetchError(`${e.message}. ${kept > 0 ? `${part} (${mb(kept)}) is kept; a rerun resumes it. ` : ''}${byHand(out)}`, file.name, kept > 0 ? part : undefined);
      }
      if (attempts > retries) {
        const keep = kept > 0 ? ` The partial file ${part} (${mb(kept)}) is kept; run the command again to resume it.` : '';
        throw new FetchError(`${file.name}: ${e.message}; gave up after ${attempts} tries.${keep}`, file.name, kept > 0 ? part : undefined);
      }
      const wait = delay * attempts;
      log(`${file.name}: ${e.message}; trying again${wait ? ` in ${wait < 1000 ? `${wait} ms` : `${Math.round(wait / 1000)} s`}` : ''} (try ${attempts + 1} of ${retries + 1})${kept > 0 ? `, resuming from ${mb(kept)}` : ''}`);
      if (wait) await sleep(wait);
    }
  }

  const sum = await md5File(part);
  const bytes = (await stat(part)).size;
  if (sum !== file.md5) {
    await removeIfThere(part);
    throw new FetchError(
      `${file.name}: MD5 mismatch after download from ${file.url}: expected ${file.md5}, got ${sum} (${mb(bytes)}); the downloaded file was removed. Run again to download it afresh; if it happens again, that URL serves a different file.`,
      file.name,
    );
  }
  await rename(part, path);
  log(`${file.name}: ${mb(bytes)}, MD5 ${sum} verified`);
  return { name: file.name, path, status: 'downloaded', bytes, md5: sum, resumedFrom, attempts };
}

/**
 * Download the MedSeg COVID-19 files (default: all of {@link MEDSEG_FILES}) into `opts.out`, one
 * after another. A file already there with the right MD5 is skipped without a request; a
 * NAME.part is resumed with a Range request (restarted when the server ignores the range);
 * a dropped connection is retried `retries` times, resuming each time. A file gets its final name
 * only after its MD5 matched. Throws {@link FetchError} with a one-line message on failure: the
 * host cannot be reached, an HTTP error (naming the URL and status), a sum mismatch (the .part is
 * removed), or the retries spent (the .part is kept for the next call).
 */
export async function fetchDataset(opts: FetchOptions): Promise<FetchResult[]> {
  const out = resolve(opts.out);
  const files = resolveFiles(opts.files, opts.baseUrl);
  try {
    await mkdir(out, { recursive: true });
  } catch (e) {
    throw new FetchError(`cannot create the folder ${out}: ${(e as Error).message}`);
  }
  const results: FetchResult[] = [];
  for (const file of files) {
    try {
      results.push(await fetchOne(file, out, opts));
    } catch (e) {
      if (e instanceof FetchError) throw e;
      const err = e as NodeJS.ErrnoException;
      throw new FetchError(`${file.name}: ${err.syscall && err.path ? `cannot ${err.syscall} ${err.path}: ${err.code ?? err.message}` : err.message}`, file.name);
    }
  }
  return results;
}
