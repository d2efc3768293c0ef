// TensorFlow.js (tfjs-backend-webgpu) side by side on the same Dawn adapter, in a child process
// with its own device: conv2d cases only (forward, input gradient, weight gradient).

import { fileURLToPath } from 'node:url';
import type { PeerRequest } from '../cases';
import { runChild, type PeerRun } from './spawn';

export function runTfjs(request: PeerRequest, log: (line: string) => void): Promise<PeerRun> {
  const cases = request.cases.filter((c) => c.op === 'conv2d');
  if (!cases.length) return Promise.resolve({ results: new Map(), notes: ['tfjs: no conv2d case selected (only conv2d is compared)'] });
  const child = fileURLToPath(new URL('./tfjs-child.ts', import.meta.url));
  log(`tfjs: child process (${cases.length} conv2d cases)`);
  // process.execArgv carries tsx's loader flags, so the child runs TypeScript as this process does.
  return runChild('tfjs', process.execPath, [...process.execArgv, child], { ...request, cases }, log);
}
