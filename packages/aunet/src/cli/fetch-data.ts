// `pnpm --filter aunet fetch-data`: downloads the official MedSeg COVID-19 files and checks their MD5 sums.

import { relative } from 'node:path';
import cliProgress from 'cli-progress';
import { DEFAULT_FETCH_DIR, fetchDataset, MEDSEG_DOI_URL, MEDSEG_FILES, type FetchProgress } from '../fetch';
import { fail, invocationDir, numberFlag, parseFlags, programName, userPath } from './common';

const names = MEDSEG_FILES.map((f) => f.name);

const usage = `
Download the official MedSeg COVID-19 CT segmentation files (CC0, ${MEDSEG_DOI_URL}):
${MEDSEG_FILES.map((f) => `  ${f.name.padEnd(16)} MD5 ${f.md5}  ${f.url}`).join('\n')}

Each file is written to NAME.part, checked against its MD5 sum and only then renamed; a file
already there with the right sum is skipped; an interrupted download is resumed (HTTP Range) by
the next run. Afterwards train on them with --data DIR (or AUNET_DATA=DIR).

Usage: pnpm --filter aunet fetch-data [options]

  --out DIR          where to put the files (default: packages/aunet/data/medseg-official)
  --files LIST       comma-separated names (default: all: ${names.join(',')})
  --base-url URL     fetch each file from URL/NAME instead (a mirror); default: $AUNET_DATA_URL,
                     else the figshare addresses above
  --retries N        further tries after a dropped connection, each resuming (default 3)
  --timeout S        give up on a connection silent for S seconds (default 30)
  --verbose          also show Dawn's (the WebGPU library's) own notices on stderr
  -h, --help         this help

No network? Download the files elsewhere and copy them into the folder; a run then only checks them.
`;

const flags = parseFlags(usage, {
  out: { type: 'string' },
  files: { type: 'string' },
  'base-url': { type: 'string' },
  retries: { type: 'string' },
  timeout: { type: 'string' },
});

const bar = new cliProgress.SingleBar(
  {
    format: '{name} [{bar}] {percentage}% | {got} of {size} | {eta_formatted} left',
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 15000,
    emptyOnZero: true,
    etaBuffer: 50,
  },
  cliProgress.Presets.shades_classic,
);
let barFor: string | undefined;
const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

function progress(p: FetchProgress): void {
  const payload = { name: p.name, got: mb(p.received), size: p.total === undefined ? '? MB' : mb(p.total) };
  if (barFor !== p.name) {
    bar.start(p.total ?? 0, p.received, payload);
    barFor = p.name;
  } else bar.update(p.received, payload);
}

function endBar(): void {
  if (barFor === undefined) return;
  bar.stop();
  barFor = undefined;
}

/** A message line: the bar, if running, ends first so the two do not mix. */
function log(message: string): void {
  endBar();
  console.log(message);
}

try {
  const retries = numberFlag('retries', flags.retries, true);
  if (retries !== undefined && retries < 0) throw new Error(`--retries takes a count of 0 or more, got ${retries}`);
  const timeout = numberFlag('timeout', flags.timeout);
  if (timeout !== undefined && timeout <= 0) throw new Error(`--timeout takes seconds above 0, got ${timeout}`);
  const files = flags.files?.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (files && files.length === 0) throw new Error(`--files takes a comma-separated list of ${names.join(', ')}`);
  const baseUrl = flags['base-url'] ?? (process.env.AUNET_DATA_URL || undefined);
  const out = userPath(flags.out) ?? DEFAULT_FETCH_DIR;

  console.log(`folder: ${out}${baseUrl ? `; from ${baseUrl}` : ''}`);
  const results = await fetchDataset({
    out,
    files,
    baseUrl,
    retries,
    timeoutMs: timeout === undefined ? undefined : timeout * 1000,
    onProgress: progress,
    log,
  });
  endBar();
  const fetched = results.filter((r) => r.status === 'downloaded').length;
  console.log(`done: ${fetched} downloaded, ${results.length - fetched} already present; all MD5 sums match.`);
  if (results.some((r) => r.name === 'tr_im.nii.gz')) {
    const rel = relative(invocationDir(), out) || '.';
    console.log(`train on them: ${programName()} train --data ${rel.startsWith('..') ? out : rel}`);
  }
  process.exit(0);
} catch (e) {
  endBar();
  fail(e);
}
