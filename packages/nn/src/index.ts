// @aunet/nn: layers, losses, optimisers and checkpoints on @aunet/tensor.
export { Module, Parameter } from './module';
export * as initializers from './init';
export { kaimingNormal, kaimingUniform, glorotUniform, xavier, zerosInit, onesInit, constant, fans, manualSeed, getDefaultRng, type Initializer, type KaimingOptions } from './init';
export {
  Conv2d, InstanceNorm2d, ReLU, Sigmoid, Upsample2x, ChannelAttention, SpatialAttention, DualAttention, ResDilBlock, Sequential, DeepSupervisionHead, release,
  type Conv2dLayerOptions, type InstanceNormOptions, type AttentionOptions, type ResDilBlockOptions,
} from './layers';
// The losses are @aunet/tensor's own functions (one name, one meaning in both packages).
export { diceLoss, tverskyLoss, focalTverskyLoss, bceWithLogits, type DiceOptions, type TverskyOptions, type FocalTverskyOptions } from '@aunet/tensor';
export {
  Adam, ReduceLROnPlateau, EarlyStopping,
  type AdamOptions, type AdamParamState, type HasLearningRate, type Mode, type ReduceLROnPlateauOptions, type EarlyStoppingOptions,
} from './optim';
export {
  encodeSafetensors, decodeSafetensors, SafetensorsError, float32ToF16Bits, f16BitsToFloat32, float32ToBF16Bits, bf16BitsToFloat32, F16_MAX,
  type HostTensor, type SafetensorsContents, type SafetensorsDtype,
} from './safetensors';
export {
  checkpointBytes, loadCheckpointBytes, saveCheckpoint, loadCheckpoint, writeFileAtomic, writeJsonAtomic, CheckpointMismatchError, OPTIM_M, OPTIM_V,
  type CheckpointOptions, type LoadOptions,
} from './checkpoint';
