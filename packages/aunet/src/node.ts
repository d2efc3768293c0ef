// aunet/node: files, checkpoints on disk and the trainer (Node only).
export * from './index';
export { DEFAULT_DATA_DIR, IMAGE_FILE_NAMES, MASK_FILE_NAMES, resolveDataDir, findDataFiles, readVolume, loadDataset, writeNifti } from './data/files';
export { loadRunCheckpoint, configFromMetadata, CheckpointError, CONFIG_KEY, EPOCH_KEY, STATE_KEY, type LoadedCheckpoint } from './checkpoint';
export { train, runConfig, writeEvaluation, checkSameData, dataInfo, DATA_KEY, DivergedError, LAST, BEST, LOG, CONFIG_FILE, EVALUATION_FILE, type TrainOptions, type TrainResult, type EpochRecord, type StepProgress, type DataInfo } from './train';
