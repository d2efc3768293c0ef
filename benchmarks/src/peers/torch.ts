// PyTorch side by side: python/torch_kernels.py, run once per invocation with Debian's
// python3-torch (CPU, 2 threads, float32). Set BENCH_PYTHON to use another interpreter.

import { fileURLToPath } from 'node:url';
import type { PeerRequest, PeerResult } from '../cases';
import { runChild, type PeerRun } from './spawn';

/** The interpreter the PyTorch sides run with: Debian's, unless BENCH_PYTHON names another. */
export const torchPython = (): string => process.env.BENCH_PYTHON ?? '/usr/bin/python3';

/** The path of python/<script>. */
export const pythonScript = (script: string): string => fileURLToPath(new URL(`../../python/${script}`, import.meta.url));

export function runTorch(request: PeerRequest, log: (line: string) => void): Promise<PeerRun> {
  return runTorchScript('torch_kernels.py', request, log);
}

/** Run one of python/*.py with `request` (which has `cases`) on stdin. */
export function runTorchScript<R extends PeerResult = PeerResult>(script: string, request: { cases: readonly unknown[]; timing: PeerRequest['timing'] }, log: (line: string) => void): Promise<PeerRun<R>> {
  const python = torchPython();
  const path = pythonScript(script);
  log(`torch: ${python} ${path} (${request.cases.length} cases)`);
  return runChild<R>('torch', python, [path], request, log);
}
