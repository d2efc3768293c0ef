// The fused kernels of @aunet/tensor that nn builds on, in one place.

export {
  conv2d, upsample2x, instanceNorm, channelAttention, spatialAttention, dualAttention, adamStep,
  diceLoss as diceLossOp, tverskyLoss as tverskyLossOp, focalTverskyLoss as focalTverskyLossOp, bceWithLogits as bceWithLogitsOp,
} from '@aunet/tensor';
