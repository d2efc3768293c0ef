#!/usr/bin/env node
// `aunet COMMAND [flags]`: the package's command (its `bin`), so that an installed copy runs
// `npx aunet predict --input scan.nii.gz` in any folder. Each command is the file that
// `pnpm --filter aunet COMMAND` runs in the repository, with the same flags and --help (its usage
// then names the program `aunet`); adding one is a line of COMMANDS. Node-only.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultOutputDir, PACKAGE_DIR } from '../package-dir';
import { shownPath } from '../shipped-model';
import { fail, setProgram } from './common';

/** Each command: what it does, for --help, and its file, which runs when loaded. */
const COMMANDS: Record<string, { summary: string; load: () => Promise<unknown> }> = {
  predict: { summary: 'segment CT scans (NIfTI, DICOM series), with the shipped model unless --checkpoint names one', load: () => import('./predict') },
  evaluate: { summary: 'score a checkpoint on its test slices, or saved predictions against labels', load: () => import('./evaluate') },
  web: { summary: 'serve the web page that segments a CT scan in the browser, on its WebGPU', load: () => import('./web') },
  train: { summary: 'train AU-Net or the U-Net (presets, resumable run folders)', load: () => import('./train') },
  export: { summary: 'a checkpoint as an ONNX model, or as half-precision safetensors', load: () => import('./export') },
  'fetch-data': { summary: 'download the official MedSeg COVID-19 files, MD5-checked and resumable', load: () => import('./fetch-data') },
  ablation: { summary: "the paper's Table 1: four training runs on one split, resumable", load: () => import('./ablation') },
  cv: { summary: 'K-fold cross-validation of one configuration, resumable', load: () => import('./cv') },
  'web-time': { summary: "the web page's time per slice in headless Chromium, beside ONNX Runtime Web (needs playwright-core and onnxruntime-web)", load: () => import('./web-time') },
  chaos: { summary: 'kill a small training run at random moments, resume it, check that nothing was lost', load: () => import('./chaos') },
  fuzz: { summary: 'the seeded mutation fuzzer of the NIfTI and DICOM readers', load: () => import('./fuzz') },
  worker: { summary: 'segment the jobs of a BullMQ queue on Redis (the batch service), one of many workers', load: () => import('./worker') },
  submit: { summary: "put scans on the batch service's queue, one job each; --wait shows their progress", load: () => import('./submit') },
  queue: { summary: "the batch service's queue: waiting, active, done, failed, the slowest jobs", load: () => import('./queue') },
};

function version(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')) as { version: string }).version;
}

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return `AU-Net COVID-19 lesion segmentation in CT, on WebGPU (aunet ${version()}).

Usage: aunet COMMAND [flags]       aunet COMMAND --help (or aunet help COMMAND): the command's flags

${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`).join('\n')}

Paths are taken from the current folder. Without --out, train writes its runs into
${shownPath(defaultOutputDir('runs'))}/ and predict its outputs into ${shownPath(defaultOutputDir('predictions'))}/.
--verbose on any command shows the WebGPU library's own notices.
`;
}

const [name, ...rest] = process.argv.slice(2);
const usageError = (message: string): never => {
  console.error(`error: ${message}`);
  process.exit(2);
};

// `help` as well as --help (`aunet help predict` is `aunet predict --help`).
if (name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) {
  process.stdout.write(help());
  process.exit(0);
}
if (name === '--version') {
  console.log(version());
  process.exit(0);
}
if (name === undefined) usageError(`name a command: ${Object.keys(COMMANDS).join(', ')} (aunet help says what each does)`);
// `aunet help predict` is `aunet predict --help`.
const [commandName, args] = name === 'help' ? [rest[0], ['--help']] : [name, rest];
const command = COMMANDS[commandName];
if (!command) usageError(`unknown command "${commandName}": the commands are ${Object.keys(COMMANDS).join(', ')} (aunet help says what each does)`);

// The command reads its flags from process.argv as it does when started on its own.
process.argv.splice(2, process.argv.length - 2, ...args);
setProgram('aunet');
try {
  await command.load();
} catch (e) {
  fail(e);
}
