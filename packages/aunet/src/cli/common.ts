// What every command shares: flag parsing (with --help and --verbose), paths resolved from the
// folder the user ran the command in, the CPU-adapter check that picks a preset, one-line
// failures that stop the progress bars first, and the results table.

import { resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { AdapterReport } from '@aunet/tensor';
import { resolveDataDir } from '../data/files';
import type { EvaluationReport } from '../evaluate';
import { PAPER_TABLE1, pct, type Scores } from '../metrics';
import { defaultOutputDir, INSTALLED, OUTPUT_FOLDERS, PACKAGE_DIR } from '../package-dir';
import { shownPath } from '../shipped-model';

type Options = NonNullable<ParseArgsConfig['options']>;

/** How the user starts a command: `pnpm --filter aunet` in the repository; `aunet` through the package's bin (cli/aunet.ts sets it). */
let program = 'pnpm --filter aunet';

/** Name the program the usage texts show (the `aunet` command's dispatcher calls it). */
export function setProgram(name: string): void {
  program = name;
}

/** The program as the usage texts show it: `pnpm --filter aunet`, or `aunet`. */
export function programName(): string {
  return program;
}

/**
 * A usage text as this invocation reads it. The texts are written for the repository
 * (`pnpm --filter aunet predict`, `packages/aunet/models/...`): through the `aunet` command the
 * program is `aunet`, and in an installed copy the package's files are where it is installed
 * and the default output folders are in the current folder (see package-dir.ts).
 */
export function localUsage(text: string): string {
  let out = text.replaceAll('pnpm --filter aunet ', `${program} `);
  if (INSTALLED) {
    for (const folder of OUTPUT_FOLDERS) out = out.replaceAll(`packages/aunet/${folder}`, folder);
    out = out.replaceAll('packages/aunet/', `${shownPath(PACKAGE_DIR.replace(/[\\/]+$/, ''))}/`);
  }
  return out;
}

/**
 * Parse `argv` against `options`; print `usage` and exit 0 on --help, or exit 2 on a bad flag.
 * Every command also takes --verbose: it sets AUNET_VERBOSE=1 (for this process and the ones it
 * starts), which lets Dawn's own notices through to stderr (see `init` in @aunet/tensor).
 */
export function parseFlags<O extends Options>(usage: string, options: O, argv = process.argv.slice(2)) {
  try {
    const { values } = parseArgs({ args: argv, options: { verbose: { type: 'boolean' }, ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
    const v = values as Record<string, unknown>;
    if (v.help) {
      process.stdout.write(localUsage(usage).trimEnd() + '\n');
      process.exit(0);
    }
    if (v.verbose) process.env.AUNET_VERBOSE = '1';
    return values as { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string };
  } catch (e) {
    console.error(`error: ${(e as Error).message} (see --help)`);
    process.exit(2);
  }
}

/**
 * The folder the user ran the command in. `pnpm --filter aunet <command>` runs the command in
 * packages/aunet and says where it was called from in INIT_CWD; a process started below such a
 * script (a test spawning a command under `pnpm test`, `chaos` spawning `train`) inherits
 * INIT_CWD but means its own working directory, so INIT_CWD counts only in the process whose
 * entry file is the script's own.
 */
export function invocationDir(env: NodeJS.ProcessEnv = process.env, entry = process.argv[1]): string {
  const script = env.npm_lifecycle_script;
  if (env.INIT_CWD && script && entry) {
    const words = script.split(/\s+/).filter(Boolean);
    if (words.some((w) => resolve(w) === resolve(entry))) return env.INIT_CWD;
  }
  return process.cwd();
}

/** Where `predict` writes without --out: beside the package's runs/ in the repository (wherever the command was run from), ./predictions when installed (see package-dir.ts). */
export const DEFAULT_PREDICTIONS_DIR = defaultOutputDir('predictions');

/** A path given on the command line, absolute: relative ones from the folder the user ran the command in. */
export function userPath(path: string): string;
export function userPath(path: string | undefined): string | undefined;
export function userPath(path: string | undefined): string | undefined {
  return path === undefined ? undefined : resolve(invocationDir(), path);
}

/** The data folder of --data, else of $AUNET_DATA (both from the folder the user ran the command in), else the shipped copy. */
export function userDataDir(flag: string | undefined): string {
  // An empty flag or variable counts as not given, as resolveDataDir takes it.
  return resolveDataDir(userPath(flag || process.env.AUNET_DATA || undefined));
}

/** Whether the adapter is a CPU (lavapipe, SwiftShader: a fallback adapter; its `type` is "cpu" then): what picks the `cpu` preset. */
export function adapterIsCpu(adapter: AdapterReport): boolean {
  return adapter.isFallback;
}

/** A number flag, or a clear error. */
export function numberFlag(name: string, text: string | undefined, integer = false): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) throw new Error(`--${name} takes ${integer ? 'an integer' : 'a number'}, got "${text}"`);
  return v;
}

/** Progress bars to stop before an error is printed (so it gets a line of its own and the cursor comes back). */
const activeBars = new Set<{ stop(): void }>();

/** Register a progress bar for {@link fail} to stop. */
export function trackBar<T extends { stop(): void }>(bar: T): T {
  activeBars.add(bar);
  return bar;
}

/** Print one line saying what failed and exit 1. */
export function fail(e: unknown): never {
  for (const bar of activeBars) bar.stop();
  // Messages that explain themselves over several lines are joined: one line, as the commands promise.
  const message = (e instanceof Error ? e.message : String(e)).split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
  console.error(`error: ${message}`);
  if (process.env.AUNET_DEBUG && e instanceof Error) console.error(e.stack);
  process.exit(1);
}

/** The test scores beside the paper's Table 1 row; `scored` names the slices (a model trained on all slices has no test slices). */
export function resultsTable(r: EvaluationReport, paperRow: string, scored = 'test slices'): string {
  const cell = (v: number) => pct(v).padStart(5);
  const row = (name: string, s: Scores) => `${name.padEnd(34)} ${cell(s.dice)}  ${cell(s.sensitivity)}  ${cell(s.specificity)}`;
  const paper = PAPER_TABLE1[paperRow];
  return [
    `${''.padEnd(34)}  Dice   Sens   Spec  (%, ${r.slices.length} ${scored})`,
    row(`pooled, ${r.model.resolution}`, r.model.pooled),
    row(`per-slice mean, ${r.model.resolution}`, r.model.perSliceMean),
    row(`pooled, ${r.original.resolution}`, r.original.pooled),
    row(`per-slice mean, ${r.original.resolution}`, r.original.perSliceMean),
    `${`paper, ${paperRow}`.padEnd(34)} ${paper.dice.toFixed(1).padStart(5)}  ${paper.sensitivity.toFixed(1).padStart(5)}  ${paper.specificity.toFixed(1).padStart(5)}`,
  ].join('\n');
}
