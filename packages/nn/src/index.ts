// @aunet/nn: layers, losses, optimisers and checkpoints on @aunet/tensor.
export { Module, Parameter } from './module';
export * as initializers from './init';
export { kaimingNormal, kaimingUniform, glorotUniform, xavier, zeros, ones, constant, fans, manualSeed, getDefaultRng, type Initializer, type KaimingOptions } from './init';
export {
  Conv2d, InstanceNorm2d, ReLU, Sigmoid, Upsample2x, ChannelAttention, SpatialAttention, DualAttention, ResDilBlock, Sequential, DeepSupervisionHead, release,
  type Conv2dOptions, type InstanceNormOptions, type AttentionOptions, type ResDilBlockOptions,
} from './layers';
export { diceLoss, tverskyLoss, focalTverskyLoss, bceWithLogits, type DiceOptions, type TverskyOptions, type FocalTverskyOptions } from './losses';
export {
  Adam, ReduceLROnPlateau, EarlyStopping,
  type AdamOptions, type AdamParamState, type HasLearningRate, type Mode, type ReduceLROnPlateauOptions, type EarlyStoppingOptions,
} from './optim';
export { encodeSafetensors, decodeSafetensors, SafetensorsError, type HostTensor, type SafetensorsContents } from './safetensors';
export {
  checkpointBytes, loadCheckpointBytes, saveCheckpoint, loadCheckpoint, writeFileAtomic, CheckpointMismatchError, OPTIM_M, OPTIM_V,
  type CheckpointOptions, type LoadOptions,
} from './checkpoint';
