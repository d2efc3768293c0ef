// The suites, by name. A suite is one module in this folder exporting `suite: Suite`; add it here.

import type { Suite } from '../common';

export const SUITES: Record<string, { description: string; load: () => Promise<Suite> }> = {
  dispatch: {
    description: 'dispatch, submit, sync and readback overheads of the runtime (µs)',
    load: async () => (await import('./dispatch')).suite,
  },
  ceiling: {
    description: 'multiply-add rate of a WGSL kernel with no loads and with a convolution\'s loads (GFLOP/s)',
    load: async () => (await import('./ceiling')).suite,
  },
  step: {
    description: 'AU-Net and U-Net training steps (batch 4, 128x128, 256x256; 512x512 with --full) and 512x512 inference, vs PyTorch',
    load: async () => (await import('./step')).suite,
  },
  scan: {
    description: 'predict on the shipped 100-slice 512x512 volume at the paper preset: s/slice vs PyTorch, ONNX Runtime and the paper (--slices N)',
    load: async () => (await import('./scan')).suite,
  },
  soak: {
    description: 'a small AU-Net trained for --steps N steps (default 10000): GPU, pool and process memory sampled for leaks',
    load: async () => (await import('./soak')).suite,
  },
  queue: {
    description: 'the batch service: --jobs N small volumes to --workers W processes, --kills K of them SIGKILLed and Redis restarted once; every job done once?',
    load: async () => (await import('./queue')).suite,
  },
  kernels: {
    description: 'every AU-Net kernel on its shapes at 128x128 and 256x256 (512x512 with --full), vs PyTorch and TF.js',
    load: async () => (await import('./kernels')).suite,
  },
};
