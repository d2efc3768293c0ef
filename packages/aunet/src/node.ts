// aunet/node: files, checkpoints on disk and the trainer (Node only).
export * from './index';
export { DEFAULT_DATA_DIR, IMAGE_FILE_NAMES, MASK_FILE_NAMES, resolveDataDir, findDataFiles, readVolume, loadDataset, writeNifti } from './data/files';
export { loadRunCheckpoint } from './checkpoint-file';
export { evaluateCheckpoint, evaluationFileFor, type CheckpointEvaluation, type CheckpointEvaluationOptions } from './evaluate-file';
export { train, runConfig, runState, writeEvaluation, checkSameData, dataInfo, DATA_KEY, DivergedError, LAST, BEST, LOG, CONFIG_FILE, EVALUATION_FILE, type TrainOptions, type TrainResult, type EpochRecord, type StepProgress, type DataInfo } from './train';
export { fetchDataset, md5File, FetchError, MEDSEG_FILES, MEDSEG_DOI_URL, DEFAULT_FETCH_DIR, type DataFile, type FetchOptions, type FetchProgress, type FetchResult } from './fetch';
export { runOnce, ablation, ablationMarkdown, crossValidate, crossValidationMarkdown, summarise, ABLATION_ROWS, type RunOutcome, type ExperimentOptions, type PooledScores, type AblationRow, type FoldResult, type CrossValidation, type Summary, type SummaryPair } from './experiments';
export { lockRun, RunLockedError, LOCK_FILE } from './lock';
