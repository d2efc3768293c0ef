// The fused kernels of @aunet/tensor that nn builds on, in one place.

import * as T from '@aunet/tensor';

export {
  conv2d, upsample2x, instanceNorm, channelAttention, spatialAttention, dualAttention, adamStep,
  diceLoss as diceLossOp, tverskyLoss as tverskyLossOp, focalTverskyLoss as focalTverskyLossOp, bceWithLogits as bceWithLogitsOp,
} from '@aunet/tensor';

export type KernelName =
  | 'conv2d' | 'upsample2x' | 'instanceNorm' | 'channelAttention' | 'spatialAttention' | 'dualAttention'
  | 'diceLoss' | 'tverskyLoss' | 'focalTverskyLoss' | 'bceWithLogits' | 'adamStep';

/** Whether @aunet/tensor exports a kernel of this name. */
export function hasKernel(name: KernelName): boolean {
  return typeof (T as unknown as Record<string, unknown>)[name] === 'function';
}
