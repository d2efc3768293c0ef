// aunet: the browser-safe part (model, config, data transforms, metrics, prediction, evaluation).
// Node-only parts (files, checkpoints on disk, the trainer) are `aunet/node`.
export { AUNet, ConvBlock, EncoderLevel, DecoderLevel, defaultModelConfig, validateModelConfig, PAPER_FILTERS, ARCHITECTURES, type Architecture, type ModelConfig } from './model';
export { defaultTrainConfig, validateTrainConfig, parseFilters, splitFor, PRESETS, AUGMENT_NAMES, type AugmentName, type TrainConfig, type LossName, type PresetName } from './config';
export { confusion, scores, overlapScores, SegmentationMetrics, PAPER_TABLE1, paperRow, pct, type Confusion, type Scores, type OverlapScores } from './metrics';
export { squaredDistanceTransform, distanceTransform, surfaceVoxels, surfaceDistances, surfaceScores, scoresOfDistances, percentile, type SurfaceScores, type SurfaceDistances } from './surface-metrics';
export {
  scoreCase, poolCases, meanScores, surfaceCounts, lesionOfLabels, LESION_CLASSES, LABELS_AS, DEFAULT_TOLERANCE_MM,
  type LabelsAs, type CaseSlices, type CaseReport, type PooledReport, type SliceScores, type ClassFound, type MeanScores, type SurfaceCounts,
} from './mask-scores';
export { maskEvaluationCsv, maskEvaluationJson, maskEvaluationMarkdown, maskEvaluationText, jsonSafe, evaluationDefinitions, type MaskEvaluation } from './mask-report';
export { predictProbabilities, batchThatFits, modelPredictor, mirroredTTA, mirror, predictVolume, thresholdMask, type SlicePredictor, type VolumePrediction } from './predict';
export { predictionReport, withThreshold, storedDims, lesionMaskImage, maskImage, maskNifti, probabilitiesImage, reportCsv, reportJson, slicePictures, segmentedSlices, predictionFileNames, type PredictionReport, type PredictionRun, type LungRegion } from './prediction-report';
export {
  loadModel, configFromMetadata, epochFromMetadata, readCheckpointMetadata, checkpointMetadata, checkSameData, allSlicesDataWarning, dataInfo, CheckpointError,
  CONFIG_KEY, EPOCH_KEY, STATE_KEY, DATA_KEY, VAL_KEY, type LoadedCheckpoint, type CheckpointRecord, type DataInfo,
} from './checkpoint';
export { bodyMask, lesionReport, lesionCsv, voxelSizeMm, BURDEN_REFERENCE_TEXT, type LesionReport, type SliceLesions, type BurdenReference } from './lesions';
export { lungSlice, lungMask, volumeLungMask, sliceLungMasks, airLevel, maskDice, LungWork, COMPUTED_LUNGS_SOURCE, type LungOptions } from './lungs';
export { overlayRgb, overlayPng, displayFlips, type DisplayFlips, type OverlayStyle } from './overlay';
export { batchLossAndGradients } from './step';
export { lossFromSums, pooledLoss, type LossSpec } from './loss';
export { exportOnnx, onnxMetadata, ONNX_OPSET, ONNX_IR_VERSION, ONNX_INPUT, ONNX_OUTPUT, type OnnxExport, type OnnxExportOptions } from './onnx-export';
export { evaluate, evaluateSlices, scoreSlices, resolutionReport, checkFinite, type EvaluationReport, type ResolutionReport } from './evaluate';
export * from './data/index';
