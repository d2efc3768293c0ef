// Which conv2d variant an adapter that does not say it is a CPU should run, by measurement.
//
// A browser hides what is under WebGPU: Chromium's lavapipe route (WebGPU on OpenGL ES over
// Mesa's CPU driver) reports no vendor, no device and no fallback flag, so by its report it is a
// GPU, and the 'gpu' kernels ran there at 0.7x the speed of the 'fallback' ones (web-time, 256x256).
// A real GPU may equally favour either. So init() times one convolution of the network's middle
// level in both variants and keeps the faster; known CPU adapters skip it (see measureConv2dVariant).

import { noGrad } from '../../autograd';
import { runtime } from '../../runtime';
import { Rng } from '../../random';
import { tensor } from '../creation';
import { conv2d } from './index';
import { conv2dVariantChoice, setMeasuredConv2dVariant, type Conv2dVariantChoice } from './tuning';

/** The probe: a 3x3 convolution, 64 to 64 channels on a 64x64 plane (about 0.3 GFLOP). */
const PROBE = { channels: 64, plane: 64 };
/** Timed runs per variant after one that compiles; the fastest counts. */
const PROBE_RUNS = 3;
/** 'fallback' must be this much faster to be chosen: the 'gpu' variant is the default for a GPU. */
const FALLBACK_MARGIN = 0.8;

/**
 * Time the probe convolution with each variant and make the faster one conv2d's 'auto' choice
 * (fallback only when it takes under 0.8x the gpu variant's time). Skipped, returning the current
 * choice, when it was measured already, when the variant is forced (setConv2dVariant, AUNET_CONV2D_VARIANT) or the adapter says
 * it is a CPU (its fallback flag, or a known software driver: llvmpipe/lavapipe, SwiftShader),
 * where the fallback variant is known to win and the probe would only cost start-up time
 * (`evenOnCpu` measures there too, and again if measured already: tests, benchmarks).
 */
export async function measureConv2dVariant(options: { evenOnCpu?: boolean } = {}): Promise<Conv2dVariantChoice> {
  const current = conv2dVariantChoice();
  if (current.how === 'forced' || (!options.evenOnCpu && (current.how === 'measured' || runtime().adapter.isFallback))) return current;
  const rng = new Rng(1);
  const { channels: c, plane: s } = PROBE;
  const x = tensor(Float32Array.from({ length: c * s * s }, () => rng.normal()), [1, c, s, s]);
  const w = tensor(Float32Array.from({ length: c * c * 9 }, () => rng.normal() * 0.05), [c, c, 3, 3]);
  const ms: Record<'fallback' | 'gpu', number> = { fallback: Infinity, gpu: Infinity };
  try {
    for (const variant of ['gpu', 'fallback'] as const) {
      setMeasuredConv2dVariant(variant);
      for (let run = 0; run <= PROBE_RUNS; run++) {
        const start = performance.now();
        const y = noGrad(() => conv2d(x, w, null, { padding: 1 }));
        await y.data();
        y.dispose();
        if (run > 0) ms[variant] = Math.min(ms[variant], performance.now() - start);
      }
    }
  } catch (e) {
    setMeasuredConv2dVariant(null); // back to the adapter's default, not the variant last probed
    throw e;
  } finally {
    x.dispose();
    w.dispose();
  }
  const chosen = ms.fallback < ms.gpu * FALLBACK_MARGIN ? 'fallback' : 'gpu';
  setMeasuredConv2dVariant(chosen, { fallbackMs: ms.fallback, gpuMs: ms.gpu });
  return conv2dVariantChoice();
}
