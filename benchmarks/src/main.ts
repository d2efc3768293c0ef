// `pnpm bench <suite> [--json FILE] [--full] [--quick] [--only SUBSTRING] [--no-torch] [--no-tfjs] [--no-ort] ...`
// Runs one benchmark suite, prints its table and, with --json, writes its records as a JSON array.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { SuiteOptions } from './common';
import { renderTable } from './table';
import { SUITES } from './suites/index';

function usage(): string {
  const names = Object.entries(SUITES).map(([n, s]) => `  ${n.padEnd(10)} ${s.description}`);
  return [
    'usage: pnpm bench <suite> [options]',
    '',
    'suites:',
    ...names,
    '',
    'options:',
    '  --json FILE       also write the results as a JSON array of records to FILE',
    '  --quick           fewer repetitions and a shorter time budget per case',
    '  --full            larger sizes as well (kernels: 512x512)',
    '  --only SUBSTRING  run only the cases whose label (op, pass, shape) contains SUBSTRING',
    '  --no-torch        do not run the PyTorch side-by-side (kernels)',
    '  --no-tfjs         do not run the TensorFlow.js side-by-side (kernels)',
    '  --no-ort          do not run the ONNX Runtime side-by-side (step, scan)',
    '  --steps N         training steps (soak; default 10000)',
    '  --profile         step: time every dispatch of one more step per case, by kernel kind and model level',
    '  --peak GFLOPS     the adapter\'s peak fp32 rate: kernels and step --profile give each rate as a share of it',
    '                    (e.g. 67000 for an H100 SXM, 51000 for an H100 PCIe)',
    '  --slices N        scan: segment only the volume\'s first N slices (default all)',
    '  --batch N         scan: slices per network call, for every side (default 1)',
    '  --checkpoint FILE scan: the weights of a training run\'s checkpoint (default the seeded initial weights)',
    '  --jobs N          queue: volumes submitted (default 200; --slices N slices of 64x64 each, default 1)',
    '  --workers W       queue: worker processes (default 2)',
    '  --kills K         queue: workers SIGKILLed at random moments, each replaced (default 3; Redis is restarted once too)',
    '  --help            this message',
    '',
    'examples: pnpm bench dispatch; pnpm bench kernels --quick; pnpm bench kernels --only conv2d --json out.json; pnpm bench scan --slices 4',
  ].join('\n');
}

function fail(message: string): never {
  console.error(`bench: ${message}\n\n${usage()}`);
  process.exit(2);
}

interface Args {
  suite: string;
  json: string | null;
  options: SuiteOptions;
}

function parseArgs(argv: string[]): Args {
  let suite: string | null = null;
  let json: string | null = null;
  const options: SuiteOptions = { quick: false, full: false, only: null, peers: new Set(['torch', 'tfjs', 'ort']), steps: null, profile: false, peakGflops: null, slices: null, batch: null, checkpoint: null, jobs: null, workers: null, kills: null };
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i];
    if (raw === '--') continue; // `pnpm bench -- kernels` passes the separator through
    const eq = raw.startsWith('--') ? raw.indexOf('=') : -1;
    const flag = eq > 0 ? raw.slice(0, eq) : raw;
    const inline = eq > 0 ? raw.slice(eq + 1) : null;
    const value = (): string => {
      if (inline !== null) return inline;
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) fail(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--help':
      case '-h':
        console.log(usage());
        process.exit(0);
      case '--json':
        json = value();
        break;
      case '--only':
        options.only = value();
        break;
      case '--quick':
        options.quick = true;
        break;
      case '--profile':
        options.profile = true;
        break;
      case '--full':
        options.full = true;
        break;
      case '--no-torch':
        options.peers.delete('torch');
        break;
      case '--no-tfjs':
        options.peers.delete('tfjs');
        break;
      case '--no-ort':
        options.peers.delete('ort');
        break;
      case '--checkpoint':
        // Relative to where the user ran the command, as --json.
        options.checkpoint = resolve(process.env.INIT_CWD ?? process.cwd(), value());
        break;
      case '--slices':
      case '--batch':
      case '--jobs':
      case '--workers': {
        const v = Number(value());
        if (!Number.isInteger(v) || v < 1) fail(`${flag} takes a positive integer`);
        if (flag === '--slices') options.slices = v;
        else if (flag === '--batch') options.batch = v;
        else if (flag === '--jobs') options.jobs = v;
        else options.workers = v;
        break;
      }
      case '--kills': {
        const v = Number(value());
        if (!Number.isInteger(v) || v < 0) fail('--kills takes a whole number');
        options.kills = v;
        break;
      }
      case '--peak': {
        const v = Number(value());
        if (!(v > 0 && Number.isFinite(v))) fail(`--peak takes a positive number of GFLOP/s`);
        options.peakGflops = v;
        break;
      }
      case '--steps': {
        const v = Number(value());
        if (!Number.isInteger(v) || v < 1) fail(`--steps takes a positive integer`);
        options.steps = v;
        break;
      }
      default:
        if (raw.startsWith('-')) fail(`unknown option "${raw}"`);
        if (suite !== null) fail(`one suite at a time (got "${suite}" and "${raw}")`);
        suite = raw;
    }
  }
  if (suite === null) fail('no suite given');
  if (!(suite in SUITES)) fail(`unknown suite "${suite}"`);
  return { suite, json, options };
}

const args = parseArgs(process.argv.slice(2));
// Under `pnpm bench`, the working directory is benchmarks/; a relative --json path is taken
// relative to where the user ran the command (INIT_CWD), as they would expect.
const jsonPath = args.json ? resolve(process.env.INIT_CWD ?? process.cwd(), args.json) : null;

try {
  const suite = await SUITES[args.suite].load();
  const started = performance.now();
  const stamp = () => `[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s]`;
  const result = await suite.run(args.options, (line) => console.error(`${stamp()} ${line}`));
  console.log(renderTable(result.table));
  if (result.notes.length) console.log(`\nnotes:\n${result.notes.map((n) => `  - ${n}`).join('\n')}`);
  console.log(`\n${args.suite}: ${result.records.length} records in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  if (jsonPath) {
    mkdirSync(dirname(jsonPath), { recursive: true });
    writeFileSync(jsonPath, `${JSON.stringify(result.records, null, 1)}\n`);
    console.log(`wrote ${jsonPath}`);
  }
  if (result.finalLine) console.log(result.finalLine);
  process.exit(0);
} catch (e) {
  const detail = e instanceof Error ? (process.env.BENCH_DEBUG ? (e.stack ?? e.message) : `${e.message}\n(set BENCH_DEBUG=1 for the stack)`) : String(e);
  console.error(`bench ${args.suite} failed: ${detail}`);
  process.exit(1);
}
