// A redis-server of one's own on a free loopback port with its own data folder: what the queue's
// test and benchmark run against (a real Redis, no mock), and a quick way to try the service on
// one machine. Append-only file fsynced on every write, so that a restart (or a kill) of Redis
// loses no job. Node-only.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LocalRedis {
  url: string;
  port: number;
  /** Its data folder (the append-only file). */
  dir: string;
  /** Stops it (SIGTERM: it flushes its data) and starts it again on the same port and data. */
  restart(): Promise<void>;
  /** Stops it; with `remove`, deletes its data folder too. */
  stop(remove?: boolean): Promise<void>;
}

/** A loopback port no one listens on now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The redis-server to run: $AUNET_REDIS_SERVER, else the one on PATH (Debian's is /usr/bin/redis-server). */
const redisServerBinary = () => process.env.AUNET_REDIS_SERVER || 'redis-server';

/** Starts redis-server on a free loopback port; resolves once it accepts connections. */
export async function startLocalRedis(o: { dir?: string } = {}): Promise<LocalRedis> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'aunet-redis-'));
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  let child = await launch(port, dir);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async restart() {
      await terminate(child);
      child = await launch(port, dir);
    },
    async stop(remove = false) {
      await terminate(child);
      if (remove) rmSync(dir, { recursive: true, force: true });
    },
  };
}

function launch(port: number, dir: string): Promise<ChildProcess> {
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always',
    // BullMQ needs keys never evicted.
    '--maxmemory-policy', 'noeviction', '--daemonize', 'no', '--loglevel', 'warning',
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(redisServerBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => fail(new Error(`redis-server did not start within 10 s: ${output.trim().slice(-300)}`)), 10_000);
    const fail = (e: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(e);
    };
    child.once('error', (e) => fail(new Error(`cannot start ${redisServerBinary()} (${e.message}): install it (Debian: apt-get install redis-server; scripts/setup.sh does) or set AUNET_REDIS_SERVER`)));
    child.once('exit', (code) => fail(new Error(`redis-server exited (code ${code}) before accepting connections: ${output.trim().slice(-300)}`)));
    // Ready once the port answers: poll it, as the log's wording differs between versions.
    const probe = async () => {
      for (;;) {
        if (child.exitCode !== null) return;
        if (await answers(port)) {
          clearTimeout(timer);
          child.removeAllListeners('exit');
          resolve(child);
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    for (const stream of [child.stdout!, child.stderr!]) stream.on('data', (b: Buffer) => (output = (output + b.toString()).slice(-2000)));
    void probe();
  });
}

/** Whether a Redis on `port` answers PING with PONG. */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (b) => {
      reply += b.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}
