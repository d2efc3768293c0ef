// A checkpoint file scored on the test slices of its own split (or, for a model trained on all
// slices, on every slice of the data given): what `evaluate` prints and what the ablation and
// cross-validation add within the lungs. Node-only.

import { allSlicesDataWarning, checkSameData, DATA_KEY } from './checkpoint';
import { splitFor, type TrainConfig } from './config';
import { resizeDataset } from './data/dataset';
import { datasetImage, loadDataset, readLungMask } from './data/files';
import { evaluateSlices, type EvaluationReport, type Region } from './evaluate';
import { COMPUTED_LUNGS_SOURCE, sliceLungMasks } from './lungs';
import { loadRunCheckpoint } from './run-folder';

export interface CheckpointEvaluationOptions {
  /** The data folder (default: the one the run was trained on). */
  data?: string;
  /** The mean over the four mirrorings (see mirroredTTA). */
  tta?: boolean;
  /** A lung mask volume of the data's shape: predictions outside it count as background. */
  lungMask?: string;
  /** Without `lungMask`: predictions outside the lungs found in each image slice (lungs.ts)
   *  count as background. */
  computedLungs?: boolean;
  /** Hears what is about to be scored, once the checkpoint and the data are read. */
  onStart?: (e: Omit<CheckpointEvaluation, 'report'> & { testSlices: number }) => void;
  onProgress?: (done: number, total: number) => void;
}

export interface CheckpointEvaluation {
  checkpoint: string;
  epoch: number;
  config: TrainConfig;
  data: string;
  /** Set when the data are not those the run was trained on, or (a model trained on all slices)
   *  may be the very slices it was trained on. */
  warning: string | null;
  report: EvaluationReport;
}

/**
 * The model of the checkpoint `file` on the test slices of its split (the seed, fraction and
 * fold stored in it), at the model's and the original resolution. A model trained on all slices
 * (`allSlices`, as the shipped one) held none out: it is scored on every slice of the data, any
 * number of them, with a warning when they have the shape of those it was trained on.
 */
export async function evaluateCheckpoint(file: string, o: CheckpointEvaluationOptions = {}): Promise<CheckpointEvaluation> {
  const { config, model, epoch, metadata } = await loadRunCheckpoint(file);
  try {
    const data = o.data ?? config.data;
    const ds = await loadDataset(data);
    const warning = config.allSlices ? allSlicesDataWarning(metadata[DATA_KEY], ds, file) : checkSameData(metadata[DATA_KEY], ds, file);
    let region: Region | undefined;
    if (o.lungMask !== undefined) region = { source: o.lungMask, masks: readLungMask(o.lungMask, datasetImage(ds)).slices };
    else if (o.computedLungs) region = { source: COMPUTED_LUNGS_SOURCE, masks: sliceLungMasks(ds.images, ds.width, ds.height) };
    const test = config.allSlices ? Array.from({ length: ds.count }, (_, i) => i) : splitFor(config, ds.count).test;
    o.onStart?.({ checkpoint: file, epoch, config, data, warning, testSlices: test.length });
    o.onProgress?.(0, test.length);
    const report = await evaluateSlices(model, ds, resizeDataset(ds, config.model.inputSize), test, {
      batch: config.batch,
      tta: o.tta,
      region,
      onProgress: (n) => o.onProgress?.(n, test.length),
    });
    return { checkpoint: file, epoch, config, data, warning, report };
  } finally {
    model.dispose();
  }
}
