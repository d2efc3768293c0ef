// The rows of the recipe table (README, "Choosing the recipe") from training runs: for each
// recipe, its folds' best validation Dice (the figure the recipe is chosen by), and the test
// figures of each fold's best checkpoint at the original resolution (512x512), within the lungs
// too when the folds were scored there, beside the last epoch's test Dice at the model's size.
//
//   cd packages/aunet && node --import tsx scripts/recipe-table.ts [--epochs N] NAME=DIR[,DIR...] ...
//
// DIR is a cv folder (its fold-k folders are read) or one run folder. --epochs N reads only the
// first N epochs of each run: a longer run then stands in for a run of N epochs when its lr
// schedule depends on nothing after epoch N (the plateau schedule does not) and its best
// checkpoint is within them (checked: the row is refused otherwise).

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { TrainConfig } from '../src/config';
import type { EvaluationReport } from '../src/evaluate';
import type { EpochRecord } from '../src/run-folder';

interface FoldRow {
  dir: string;
  fold: number;
  epochs: number;
  bestEpoch: number;
  bestVal: number;
  test: EvaluationReport['original']['pooled'];
  lungDice: number | null;
  lastTest128: number;
  minutes: number;
}

const args = process.argv.slice(2);
const capAt = args.indexOf('--epochs');
const cap = capAt >= 0 ? Number(args.splice(capAt, 2)[1]) : Infinity;
if (!args.length || args.some((a) => !a.includes('='))) {
  console.error('usage: node --import tsx scripts/recipe-table.ts [--epochs N] NAME=DIR[,DIR...] ...');
  process.exit(2);
}

/** The run folders of a cv folder (fold-k), or the folder itself. */
function runFolders(dir: string): string[] {
  const folds = readdirSync(dir).filter((n) => /^fold-\d+$/.test(n)).sort();
  return folds.length ? folds.map((n) => join(dir, n)) : [dir];
}

function foldRow(dir: string): FoldRow | null {
  if (!existsSync(join(dir, 'evaluation.json'))) return null; // not finished
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as TrainConfig;
  const records = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as EpochRecord).filter((r) => r.epoch <= cap);
  let best = records[0];
  for (const r of records) if (r.val!.dice > best.val!.dice) best = r;
  const evaluation = JSON.parse(readFileSync(join(dir, 'evaluation.json'), 'utf8')) as EvaluationReport & { epoch: number };
  if (evaluation.epoch !== best.epoch) {
    throw new Error(`${dir}: its best checkpoint is epoch ${evaluation.epoch}, but the best validation Dice within ${cap} epochs is epoch ${best.epoch}'s`);
  }
  const lungFile = join(dir, 'evaluation-best-lung.json');
  const lung = existsSync(lungFile) ? (JSON.parse(readFileSync(lungFile, 'utf8')) as EvaluationReport) : null;
  const last = records[records.length - 1];
  return {
    dir,
    fold: config.fold?.k ?? 0,
    epochs: last.epoch,
    bestEpoch: best.epoch,
    bestVal: best.val!.dice,
    test: evaluation.original.pooled,
    lungDice: lung ? lung.original.pooled.dice : null,
    lastTest128: last.test!.dice,
    minutes: records.reduce((s, r) => s + r.seconds, 0) / 60,
  };
}

const pct = (v: number) => (100 * v).toFixed(1);
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const sd = (v: number[]) => (v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean(v)) ** 2, 0) / (v.length - 1)) : NaN);
const pm = (v: number[]) => `${pct(mean(v))}${v.length > 1 ? ` ± ${pct(sd(v))}` : ''}`;

console.log('| recipe | folds | epochs (best) | val Dice | test Dice / Sens / Spec 512 | in lungs | last epoch test Dice 128 | min a fold |');
console.log('| --- | --- | --- | ---: | --- | ---: | ---: | ---: |');
for (const arg of args) {
  const [name, dirs] = arg.split('=');
  const rows = dirs.split(',').flatMap((d) => runFolders(resolve(d))).map(foldRow).filter((r): r is FoldRow => r !== null).sort((a, b) => a.fold - b.fold);
  if (!rows.length) {
    console.log(`| ${name} | none finished | | | | | | |`);
    continue;
  }
  const lung = rows.every((r) => r.lungDice !== null) ? pm(rows.map((r) => r.lungDice!)) : '-';
  console.log(
    `| ${name} | ${rows.map((r) => r.fold).join(', ')} | ${rows.map((r) => `${r.epochs} (${r.bestEpoch})`).join(', ')} | ${pm(rows.map((r) => r.bestVal))} | ` +
      `${pm(rows.map((r) => r.test.dice))} / ${pct(mean(rows.map((r) => r.test.sensitivity)))} / ${pct(mean(rows.map((r) => r.test.specificity)))} | ${lung} | ` +
      `${pm(rows.map((r) => r.lastTest128))} | ${mean(rows.map((r) => r.minutes)).toFixed(0)} |`,
  );
  for (const r of rows) {
    console.log(`|   fold ${r.fold} | | ${r.epochs} (${r.bestEpoch}) | ${pct(r.bestVal)} | ${pct(r.test.dice)} / ${pct(r.test.sensitivity)} / ${pct(r.test.specificity)} | ${r.lungDice === null ? '-' : pct(r.lungDice)} | ${pct(r.lastTest128)} | ${r.minutes.toFixed(0)} |`);
  }
}
