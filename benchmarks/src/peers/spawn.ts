// Running a peer benchmark (the PyTorch script, the TF.js child) as a child process: the request
// goes in as JSON on stdin, progress comes out on stderr (passed through), and the answer is the
// last stdout line that starts with RESULT_MARKER, so stray prints of a library cannot spoil it.

import { spawn } from 'node:child_process';
import type { PeerResult } from '../cases';

export const RESULT_MARKER = '@@bench-result ';

export interface PeerAnswer<R extends PeerResult = PeerResult> {
  /** Set when the peer could not run at all (not installed, no device), with the reason. */
  unavailable?: string;
  /** Informational lines, e.g. versions and what was left out. */
  notes?: string[];
  results?: R[];
}

export interface PeerRun<R extends PeerResult = PeerResult> {
  results: Map<number, R>;
  notes: string[];
}

/**
 * Passes a child's stderr to `log` line by line, prefixed with its name. `flush()` logs a last
 * unterminated line and returns the last 2,000 characters, for a failure message.
 */
export function forwardStderr(stream: NodeJS.ReadableStream, name: string, log: (line: string) => void): { flush(): string } {
  let partial = '';
  let tail = '';
  stream.on('data', (d: Buffer) => {
    const text = partial + d.toString();
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) log(`  ${name}| ${l}`);
    tail = (tail + d.toString()).slice(-2000);
  });
  return {
    flush() {
      if (partial) log(`  ${name}| ${partial}`);
      partial = '';
      return tail;
    },
  };
}

/** `request` is written as JSON to the child's stdin (a PeerRequest for the kernel peers). */
export function runChild<R extends PeerResult = PeerResult>(name: string, command: string, args: string[], request: object, log: (line: string) => void): Promise<PeerRun<R>> {
  return new Promise((resolve) => {
    const done = (results: R[], notes: string[]) => resolve({ results: new Map(results.map((r) => [r.id, r])), notes });
    let child;
    try {
      child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      done([], [`${name}: not run: could not start ${command}: ${e instanceof Error ? e.message : e}`]);
      return;
    }
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const stderr = forwardStderr(child.stderr, name, log);
    child.on('error', (e) => done([], [`${name}: not run: could not start ${command}: ${e.message}`]));
    child.on('close', (code, signal) => {
      const stderrTail = stderr.flush();
      const line = stdout.split('\n').reverse().find((l) => l.startsWith(RESULT_MARKER));
      if (!line) {
        const why = signal ? `killed by ${signal}` : `exit code ${code}`;
        const tail = stderrTail.trim().split('\n').slice(-3).join(' | ');
        done([], [`${name}: failed (${why}) without an answer${tail ? `: ${tail}` : ''}`]);
        return;
      }
      let answer: PeerAnswer<R>;
      try {
        answer = JSON.parse(line.slice(RESULT_MARKER.length)) as PeerAnswer<R>;
      } catch (e) {
        done([], [`${name}: failed: unreadable answer (${e instanceof Error ? e.message : e})`]);
        return;
      }
      if (answer.unavailable) {
        done([], [`${name}: skipped: ${answer.unavailable}`]);
        return;
      }
      done(answer.results ?? [], (answer.notes ?? []).map((n) => `${name}: ${n}`));
    });
    child.stdin.on('error', () => {
      /* the child exited early; reported on close */
    });
    child.stdin.end(JSON.stringify(request));
  });
}
