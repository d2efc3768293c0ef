// aunet/node: files, checkpoints on disk and the trainer (Node only).
export * from './index';
export {
  DEFAULT_DATA_DIR, IMAGE_FILE_NAMES, MASK_FILE_NAMES, resolveDataDir, findDataFiles, readVolume, readScan, findDicomFiles, maskOnImageGrid, maskOnSeriesGrid, scanStem, loadDataset, writeNifti, niftiFileBytes,
  readLungMask, datasetImage, findCases, readSplitFile, IMAGES_DIR, LABELS_DIR, DATASET_JSON, type LungMask, type LungMaskImage, type Scan, type CaseFiles,
} from './data/files';
export { predictionInputs, predictFile, writePredictionFiles, outputStem, type PredictionInput, type PredictionFileOptions, type PredictFileOptions, type PredictedFile } from './prediction-files';
export { exportCheckpointOnnx, exportCheckpointSafetensors, type OnnxFileExport, type SafetensorsFileExport } from './onnx-file';
export {
  evaluateCheckpoint, evaluatePredictions, pairPredictions, scorePredictionFile, writeMaskEvaluation, MASK_REPORT_FILES, PREDICTION_THRESHOLD,
  type CheckpointEvaluation, type CheckpointEvaluationOptions, type PredictionEvaluationOptions, type PredictionPair, type ScoringOptions,
} from './evaluate-file';
export {
  LAST, BEST, LOG, CONFIG_FILE, SPLIT_FILE, EVALUATION_FILE, LOCK_FILE, DEFAULT_RUNS_DIR, ALL_SLICES_SCOPE, lockRun, RunLockedError, readCheckpointBytes, loadRunCheckpoint, saveRunCheckpoint, runState, runConfig,
  startRunFolder, keepRunSplit, appendEpochRecord, truncateLog, writeEvaluation, readEvaluation, evaluationFileFor, runDifferences, latestBestCheckpoint, checkRunFolder,
  type EpochRecord, type RunState, type EvaluationRecord,
} from './run-folder';
export { train, DivergedError, type TrainOptions, type TrainResult, type StepProgress } from './train';
export { fetchDataset, md5File, FetchError, MEDSEG_FILES, MEDSEG_DOI_URL, DEFAULT_FETCH_DIR, type DataFile, type FetchOptions, type FetchProgress, type FetchResult } from './fetch';
export { runOnce, checkLungMask, ablation, ablationMarkdown, crossValidate, crossValidationMarkdown, summarise, ABLATION_ROWS, type RunOutcome, type ExperimentOptions, type PooledScores, type AblationRow, type FoldResult, type CrossValidation, type Summary, type SummaryPair } from './experiments';
export { SHIPPED_MODEL_FILE, MODEL_CARD_FILE, MODEL_ENV, defaultModel, defaultModelLine, missingModelMessage, requireDefaultModel, shownPath, type DefaultModel } from './shipped-model';
export { predictionInputHash, fileSha256, predictionDone, removeStaleTemporaries, type PredictionIdentity } from './prediction-files';
export {
  QUEUE_NAME, JOB_OPTIONS, COMPUTED_LOG, REUSED_LOG, redisConnection, redisState, requireRedis, segmentationQueue,
  type SegmentationJob, type SegmentationResult, type SegmentationProgress,
} from './service/queue';
export { segmentationJobs, submitSegmentation, waitForBatch, queueStatus, type SubmitOptions, type SubmittedJob, type BatchState, type BatchSummary, type QueueStatus } from './service/submit';
export { startSegmentationWorker, type SegmentationWorker, type SegmentationWorkerOptions } from './service/worker';
export { startLocalRedis, freePort, type LocalRedis } from './service/local-redis';
