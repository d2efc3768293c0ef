// The package's init(): the runtime, then the choices that need a device to measure.

import { measureConv2dVariant } from './ops/conv2d/variant-probe';
import { init as initRuntime, type InitOptions, type Runtime } from './runtime';

let measuring: Promise<unknown> | null = null;

/**
 * Start WebGPU (once; later calls return the same runtime). On an adapter that does not say it
 * is a CPU, this also times conv2d's two kernel variants once and keeps the faster (see
 * measureConv2dVariant): a fraction of a second, plus compiling two kernels.
 */
export async function init(options: InitOptions = {}): Promise<Runtime> {
  const rt = await initRuntime(options);
  // A failed measurement is thrown to this caller and tried again by the next.
  measuring ??= measureConv2dVariant().catch((e: unknown) => {
    measuring = null;
    throw e;
  });
  await measuring;
  return rt;
}
