// PyTorch side by side: python/torch_kernels.py, run once per invocation with Debian's
// python3-torch (CPU, 2 threads, float32). Set BENCH_PYTHON to use another interpreter.

import { fileURLToPath } from 'node:url';
import type { PeerRequest } from '../cases';
import { runChild, type PeerRun } from './spawn';

export function runTorch(request: PeerRequest, log: (line: string) => void): Promise<PeerRun> {
  const python = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
  const script = fileURLToPath(new URL('../../python/torch_kernels.py', import.meta.url));
  log(`torch: ${python} ${script} (${request.cases.length} cases)`);
  return runChild('torch', python, [script], request, log);
}
