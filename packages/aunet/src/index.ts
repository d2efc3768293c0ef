// aunet: the browser-safe part (model, config, data transforms, metrics, prediction, evaluation).
// Node-only parts (files, checkpoints on disk, the trainer) are `aunet/node`.
export { AUNet, ConvBlock, EncoderLevel, DecoderLevel, defaultModelConfig, validateModelConfig, PAPER_FILTERS, type ModelConfig } from './model';
export { defaultTrainConfig, validateTrainConfig, parseFilters, splitFor, PRESETS, type TrainConfig, type LossName, type PresetName } from './config';
export { confusion, scores, SegmentationMetrics, PAPER_TABLE1, paperRow, type Confusion, type Scores } from './metrics';
export { predictProbabilities, batchThatFits } from './predict';
export { batchLossAndGradients, lossFromSums, type LossSpec } from './step';
export { evaluateSlices, scoreSlices, resolutionReport, checkFinite, pooledLoss, type EvaluationReport, type ResolutionReport } from './evaluate';
export * from './data/index';
