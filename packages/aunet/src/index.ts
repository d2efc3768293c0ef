// aunet: the browser-safe part (model, config, data transforms, metrics, prediction, evaluation).
// Node-only parts (files, checkpoints on disk, the trainer) are `aunet/node`.
export { AUNet, ConvBlock, EncoderLevel, DecoderLevel, defaultModelConfig, validateModelConfig, PAPER_FILTERS, type ModelConfig } from './model';
export { defaultTrainConfig, validateTrainConfig, parseFilters, splitFor, PRESETS, AUGMENT_NAMES, type AugmentName, type TrainConfig, type LossName, type PresetName } from './config';
export { confusion, scores, SegmentationMetrics, PAPER_TABLE1, paperRow, type Confusion, type Scores } from './metrics';
export { predictProbabilities, batchThatFits, modelPredictor, mirroredTTA, mirror, predictVolume, thresholdMask, lesionMaskImage, type SlicePredictor, type VolumePrediction } from './predict';
export { loadModel, configFromMetadata, CheckpointError, CONFIG_KEY, EPOCH_KEY, STATE_KEY, type LoadedCheckpoint } from './checkpoint';
export { bodyMask, lesionReport, lesionCsv, voxelSizeMm, type LesionReport, type SliceLesions, type BurdenReference } from './lesions';
export { overlayRgb, overlayPng, displayFlips, type DisplayFlips, type OverlayStyle } from './overlay';
export { batchLossAndGradients, lossFromSums, type LossSpec } from './step';
export { evaluate, evaluateSlices, scoreSlices, resolutionReport, checkFinite, pooledLoss, type EvaluationReport, type ResolutionReport } from './evaluate';
export * from './data/index';
