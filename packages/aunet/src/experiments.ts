// Experiments made of several training runs, each in its own run folder, resumable: the paper's
// Table 1 ablation and K-fold cross-validation. A finished run (its evaluation.json written) is
// read back, not retrained; an interrupted one is resumed. Node-only.

import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '@aunet/nn';
import { paperRow, pct, PAPER_TABLE1, type Scores } from './metrics';
import { splitFor, type LossName, type TrainConfig } from './config';
import type { Architecture } from './model';
import type { EvaluationReport } from './evaluate';
import { DataError } from './data/errors';
import { datasetImage, loadDataset, readLungMask } from './data/files';
import { splitRecord } from './data/split';
import { evaluateCheckpoint } from './evaluate-file';
import { BEST, EVALUATION_FILE, evaluationFileFor, LAST, readEvaluation, runDifferences, runState, SPLIT_FILE, writeEvaluation } from './run-folder';
import { train, type TrainOptions } from './train';

/** What happened to one run of an experiment. */
export interface RunOutcome {
  out: string;
  /** 'done': read from a finished run folder; 'resumed' or 'trained': trained now. */
  status: 'done' | 'resumed' | 'trained';
  /** Epochs the run trained (fewer than asked when early stopping ended it). */
  epochs: number;
  evaluation: EvaluationReport;
  /** The same best checkpoint with predictions kept inside the lungs, when a lung mask was given. */
  lung?: EvaluationReport;
}

/** Options of the runs an experiment trains, and a lung mask to score each best checkpoint within as well. */
export type ExperimentOptions = Omit<TrainOptions, 'out' | 'resume'> & { lungMask?: string };

/**
 * Train `config` in `out` unless it is already finished there (evaluated, and trained to
 * `config.epochs` or stopped early); resume it when it was interrupted or asked for more epochs.
 * Throws when `out` holds a run of other settings, naming them.
 */
export async function runOnce(config: TrainConfig, out: string, hooks: ExperimentOptions = {}): Promise<RunOutcome> {
  // Each run of an experiment is scored on its held-out slices; a run on all slices has none.
  if (config.allSlices) throw new Error(`${resolve(out)}: a run on all slices holds out no test slices to score; experiments need a split (allSlices false)`);
  const { lungMask, ...trainHooks } = hooks;
  const outcome = await trainOnce(config, out, trainHooks);
  if (lungMask !== undefined) outcome.lung = await evaluateInLungs(outcome.out, resolve(lungMask), trainHooks.log ?? console.log);
  return outcome;
}

/**
 * The run's best checkpoint on its test slices within the lungs of `lungMask` (a resolved path), written beside it
 * as `evaluate --lung-mask` would. Recomputed on every call (one inference pass over the test
 * slices), so the experiment's tables always hold the current best checkpoint's scores.
 */
async function evaluateInLungs(dir: string, lungMask: string, log: (line: string) => void): Promise<EvaluationReport> {
  const checkpoint = join(dir, BEST);
  const e = await evaluateCheckpoint(checkpoint, {
    lungMask,
    onStart: ({ warning, testSlices }) => {
      if (warning) log(warning);
      log(`scoring ${checkpoint} within the lungs of ${lungMask} (${testSlices} test slices)`);
    },
  });
  await writeEvaluation(evaluationFileFor(checkpoint, { lung: true }), e);
  return e.report;
}

/** Fails before any training when the lung mask cannot be read or does not fit the data (the
 *  image file's shape, whichever axis its slices run along). */
export async function checkLungMask(base: TrainConfig, lungMask: string | undefined): Promise<void> {
  if (lungMask === undefined) return;
  const ds = await loadDataset(base.data);
  readLungMask(resolve(lungMask), datasetImage(ds));
}

async function trainOnce(config: TrainConfig, out: string, hooks: Omit<TrainOptions, 'out' | 'resume'>): Promise<RunOutcome> {
  const dir = resolve(out);
  const evaluationFile = join(dir, EVALUATION_FILE);
  const started = existsSync(join(dir, LAST));
  if (started) {
    const run = await runState(dir);
    const differences = runDifferences(run.config, config);
    if (differences.length) {
      throw new Error(`${dir} holds a run of other settings (${differences.join('; ')}); move it away or choose another --out`);
    }
    if (existsSync(evaluationFile) && (run.epoch >= config.epochs || run.stoppedEarly)) {
      return { out: dir, status: 'done', epochs: run.epoch, evaluation: await readEvaluation(evaluationFile) };
    }
  }
  const result = await train(config, { ...hooks, out: dir, resume: started });
  if (!result.evaluation) throw new Error(`${dir}: the run ended without a best checkpoint to evaluate`);
  return { out: dir, status: started ? 'resumed' : 'trained', epochs: result.epochs, evaluation: result.evaluation };
}

// ---------------------------------------------------------------------------------------------
// Table 1: U-Net and AU-Net, each with soft Dice and focal Tversky loss.

/** Pooled test scores at the model's resolution and at the original one (fractions). */
export interface PooledScores {
  model_resolution: Scores;
  original_resolution: Scores;
}

const pooledOf = (r: EvaluationReport): PooledScores => ({ model_resolution: r.model.pooled, original_resolution: r.original.pooled });

/** The outcome's pooled scores, and within the lungs when it was scored there too. */
function pooledScores(r: RunOutcome): PooledScores & { lung?: PooledScores } {
  return { ...pooledOf(r.evaluation), ...(r.lung ? { lung: pooledOf(r.lung) } : {}) };
}

const LUNG_HEADING = 'Within the lungs (predictions outside the lung mask count as background):';

export interface AblationRow extends PooledScores {
  /** The paper's name of the row, e.g. "AU-Net + FTL". */
  row: string;
  model: Architecture;
  loss: LossName;
  out: string;
  status: RunOutcome['status'];
  /** Epochs trained (fewer than the budget when early stopping ended the run). */
  epochs: number;
  /** The same scores within the lungs, when the ablation was given a lung mask. */
  lung?: PooledScores;
  /** The paper's figures, in percent. */
  paper_percent: Scores;
}

export const ABLATION_ROWS: readonly { model: Architecture; loss: LossName }[] = [
  { model: 'unet', loss: 'dice' },
  { model: 'unet', loss: 'ftl' },
  { model: 'aunet', loss: 'dice' },
  { model: 'aunet', loss: 'ftl' },
];

/**
 * The four rows of the paper's Table 1 on the same split, seed and preset (`base` fixes all
 * but the model and the loss), each in `out/<model>-<loss>`. `onRow` hears of each row as it
 * starts (for progress). Writes `out/ablation.json` and `out/ablation.md`.
 */
export async function ablation(
  base: TrainConfig,
  out: string,
  hooks: ExperimentOptions & { onRow?: (index: number, row: string, out: string) => void } = {},
): Promise<AblationRow[]> {
  if (base.splitFile?.perFold && !base.fold) {
    throw new DataError(`${base.splitFile.file} holds one split per fold (as nnU-Net's splits_final.json): the ablation runs its rows on one split; give it a file of one split ({"train", "val", "test"}).`, base.splitFile.file);
  }
  await checkLungMask(base, hooks.lungMask);
  const rows: AblationRow[] = [];
  for (const [index, { model, loss }] of ABLATION_ROWS.entries()) {
    const config: TrainConfig = { ...base, loss, model: { ...base.model, architecture: model } };
    const row = paperRow(model, loss);
    const dir = join(resolve(out), `${model}-${loss}`);
    hooks.onRow?.(index, row, dir);
    const r = await runOnce(config, dir, hooks);
    rows.push({ row, model, loss, out: r.out, status: r.status, epochs: r.epochs, ...pooledScores(r), paper_percent: PAPER_TABLE1[row] });
    await writeAblation(out, base, rows);
  }
  return rows;
}

/** The ablation as a Markdown table beside the paper's figures; a second one within the lungs when the rows were scored there. */
export function ablationMarkdown(rows: AblationRow[], resolution: string, original: string): string {
  const table = (scoresOf: (r: AblationRow) => PooledScores) => {
    const lines = [
      `| | epochs | Dice ${resolution} | Sens | Spec | Dice ${original} | Sens | Spec | paper Dice | Sens | Spec |`,
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ];
    for (const r of rows) {
      const { model_resolution: m, original_resolution: o } = scoresOf(r);
      const p = r.paper_percent;
      lines.push(`| ${r.row} | ${r.epochs} | ${pct(m.dice)} | ${pct(m.sensitivity)} | ${pct(m.specificity)} | ${pct(o.dice)} | ${pct(o.sensitivity)} | ${pct(o.specificity)} | ${p.dice.toFixed(1)} | ${p.sensitivity.toFixed(1)} | ${p.specificity.toFixed(1)} |`);
    }
    return lines.join('\n') + '\n';
  };
  const lung = rows.length > 0 && rows.every((r) => r.lung);
  return table((r) => r) + (lung ? `\n${LUNG_HEADING}\n\n${table((r) => r.lung!)}` : '');
}

async function writeAblation(out: string, base: TrainConfig, rows: AblationRow[]): Promise<void> {
  const s = base.model.inputSize;
  const json = { preset: base.preset, seed: base.seed, epochs: base.epochs, inputSize: s, rows };
  await writeJsonAtomic(join(out, 'ablation.json'), json);
  await writeFileAtomic(join(out, 'ablation.md'), ablationMarkdown(rows, `${s}x${s}`, 'original'));
}

// ---------------------------------------------------------------------------------------------
// K-fold cross-validation.

export interface FoldResult extends PooledScores {
  fold: number;
  out: string;
  status: RunOutcome['status'];
  epochs: number;
  testSlices: number;
  /** The same scores within the lungs, when the cross-validation was given a lung mask. */
  lung?: PooledScores;
}

export interface Summary {
  mean: Scores;
  /** Sample standard deviation over the folds (n - 1). */
  sd: Scores;
}

export interface SummaryPair {
  model_resolution: Summary;
  original_resolution: Summary;
}

export interface CrossValidation extends SummaryPair {
  folds: FoldResult[];
  /** The summary within the lungs, when every fold was scored there. */
  lung?: SummaryPair;
}

/** Mean and sample standard deviation of each score over `list`. */
export function summarise(list: Scores[]): Summary {
  const keys = ['dice', 'sensitivity', 'specificity'] as const;
  const mean = {} as Scores;
  const sd = {} as Scores;
  for (const k of keys) {
    const v = list.map((s) => s[k]);
    const m = v.reduce((a, b) => a + b, 0) / v.length;
    mean[k] = m;
    sd[k] = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1)) : NaN;
  }
  return { mean, sd };
}

const summarisePair = (list: PooledScores[]): SummaryPair => ({
  model_resolution: summarise(list.map((f) => f.model_resolution)),
  original_resolution: summarise(list.map((f) => f.original_resolution)),
});

/**
 * Checks the folds before any training (K against the data's slices or cases, and against a
 * split file, which must hold one split per fold) and writes `out/split.json`: a list of each
 * fold's {train, val, test} (case names, or slice indices for one volume), the shape `--split`
 * reads back. Also checks the lung mask, on the same reading of the data.
 */
async function writeFoldSplits(base: TrainConfig, folds: number, out: string, lungMask: string | undefined): Promise<void> {
  const given = base.splitFile;
  if (given && !given.perFold) {
    throw new DataError(`${given.file} holds one split (train, val, test): cross-validation needs one per fold, a list of {"train", "val"} as nnU-Net's splits_final.json.`, given.file);
  }
  if (given && given.entries.length !== folds) throw new DataError(`${given.file} holds ${given.entries.length} folds, not ${folds}: give --folds ${given.entries.length} or leave --folds out.`, given.file);
  const ds = await loadDataset(base.data);
  if (lungMask !== undefined) readLungMask(resolve(lungMask), datasetImage(ds));
  const splits = Array.from({ length: folds }, (_, i) => splitRecord(splitFor({ ...base, fold: { k: i + 1, K: folds } }, ds.count, ds.cases), ds.cases));
  await mkdir(out, { recursive: true });
  await writeJsonAtomic(join(out, SPLIT_FILE), splits);
}

/**
 * K-fold cross-validation of `base`: fold k (1..K) holds out its slices (or, for a dataset of
 * several cases, its cases) for testing and trains in `out/fold-k`; with a split file of one
 * split per fold (nnU-Net's splits_final.json), fold k is its entry k. `onlyFolds` runs some of
 * the K folds (a screen of recipes on fewer folds), the summary then over those. Writes `out/split.json`
 * (every fold's split) first, then `out/cv.json` and `out/cv.md` after each fold.
 */
export async function crossValidate(
  base: TrainConfig,
  folds: number,
  out: string,
  hooks: ExperimentOptions & { onFold?: (k: number, K: number, out: string) => void; onlyFolds?: number[] } = {},
): Promise<CrossValidation> {
  if (!Number.isInteger(folds) || folds < 2) throw new Error(`cross-validation needs at least 2 folds, got ${folds}`);
  const run = hooks.onlyFolds ?? Array.from({ length: folds }, (_, i) => i + 1);
  const outside = run.filter((k) => !Number.isInteger(k) || k < 1 || k > folds);
  if (!run.length || outside.length || new Set(run).size !== run.length) {
    throw new Error(`the folds to run must be distinct integers from 1 to ${folds}, got ${run.join(',') || 'none'}`);
  }
  await writeFoldSplits(base, folds, out, hooks.lungMask);
  const results: FoldResult[] = [];
  let cv: CrossValidation | null = null;
  for (const k of [...run].sort((a, b) => a - b)) {
    const dir = join(resolve(out), `fold-${k}`);
    hooks.onFold?.(k, folds, dir);
    const r = await runOnce({ ...base, fold: { k, K: folds } }, dir, hooks);
    results.push({ fold: k, out: r.out, status: r.status, epochs: r.epochs, testSlices: r.evaluation.slices.length, ...pooledScores(r) });
    const lung = results.every((f) => f.lung) ? { lung: summarisePair(results.map((f) => f.lung!)) } : {};
    cv = { folds: results, ...summarisePair(results), ...lung };
    const json = {
      model: base.model.architecture, loss: base.loss, preset: base.preset, seed: base.seed, epochs: base.epochs, inputSize: base.model.inputSize,
      augment: base.augment, deepSupervisionLoss: base.deepSupervisionLoss, K: folds, ...cv,
    };
    await writeJsonAtomic(join(out, 'cv.json'), json);
    await writeFileAtomic(join(out, 'cv.md'), crossValidationMarkdown(cv, base));
  }
  return cv!;
}

/** Each fold and the mean +- standard deviation, as Markdown; a second table within the lungs when the folds were scored there. */
export function crossValidationMarkdown(cv: CrossValidation, base: TrainConfig): string {
  const s = base.model.inputSize;
  const pm = (x: Summary, k: keyof Scores) => `${pct(x.mean[k])} ± ${pct(x.sd[k])}`;
  const table = (scoresOf: (f: FoldResult) => PooledScores, summary: SummaryPair) => {
    const lines = [
      `| fold | epochs | test slices | Dice ${s}x${s} | Sens | Spec | Dice original | Sens | Spec |`,
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ];
    for (const f of cv.folds) {
      const { model_resolution: m, original_resolution: o } = scoresOf(f);
      lines.push(`| ${f.fold} | ${f.epochs} | ${f.testSlices} | ${pct(m.dice)} | ${pct(m.sensitivity)} | ${pct(m.specificity)} | ${pct(o.dice)} | ${pct(o.sensitivity)} | ${pct(o.specificity)} |`);
    }
    const { model_resolution: m, original_resolution: o } = summary;
    lines.push(`| mean ± sd | | | ${pm(m, 'dice')} | ${pm(m, 'sensitivity')} | ${pm(m, 'specificity')} | ${pm(o, 'dice')} | ${pm(o, 'sensitivity')} | ${pm(o, 'specificity')} |`);
    return lines.join('\n') + '\n';
  };
  return table((f) => f, cv) + (cv.lung ? `\n${LUNG_HEADING}\n\n${table((f) => f.lung!, cv.lung)}` : '');
}
