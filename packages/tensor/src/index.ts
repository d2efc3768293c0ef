// @aunet/tensor: WebGPU tensors, reverse-mode autodiff, WGSL kernels.
export { profileSection, currentSection, kernelKind, convAlgorithm, groupProfile, summariseProfile, type Profile, type DispatchTiming, type ProfileRow } from './profile';
export { init } from './init';
// Not re-exported by ops/conv2d: the probe imports conv2d.
export { measureConv2dVariant } from './ops/conv2d/variant-probe';
export { runtime, grid1d, WebGPUError, Runtime, type AdapterReport, type InitOptions, type Dispatch, type StorageBinding } from './runtime';
export { dawnStderrFilter, dawnVerbose, DAWN_LIMIT_NOTICE, type StderrFilter } from './dawn-stderr';
export { Tensor, tidy, scope, keep, dispose, shapeSize, type DType, type Shape, type GradFn } from './tensor';
export { backward, noGrad, isGradEnabled, record, type BackwardOptions } from './autograd';
export { TensorSizeError, OutOfMemoryError } from './errors';
export { Rng } from './random';
export { sizeClass, type MemoryStats } from './pool';
export { ENTRY_1D, empty, launch, linearIndex, stridesOf, uniformStruct, fields4, values4, wgslCoords4, UniformStruct, type UniformScalar, type Launch } from './kernel';
export * from './ops/index';
