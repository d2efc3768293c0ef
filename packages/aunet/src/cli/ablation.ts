// `pnpm --filter aunet ablation`: the four rows of the paper's Table 1 on one split.

import { join } from 'node:path';
import { init } from '@aunet/tensor';
import { ablation, ablationMarkdown } from '../experiments';
import { DEFAULT_RUNS_DIR } from '../run-folder';
import { adapterIsCpu, fail, parseFlags, userPath } from './common';
import { CONFIG_FLAGS, CONFIG_HELP, configFromFlags, progressHooks } from './training';

const usage = `
Reproduce the paper's Table 1: train and evaluate U-Net and AU-Net, each with soft Dice (DL) and
focal Tversky loss (FTL), on the same split, seed and preset, each in its own run folder, and
print the test scores beside the paper's. Resumable: run it again with the same flags and a
finished row is read back, an interrupted one resumed.

Usage: pnpm --filter aunet ablation [options]

${CONFIG_HELP}
  --out DIR             the experiment folder (default packages/aunet/runs/ablation-<preset>-seed<seed>);
                        rows go to DIR/<model>-<loss>, the table to DIR/ablation.{md,json}
  --lung-mask FILE      also score each best checkpoint with predictions kept inside this lung
                        mask (the shipped data has tr_lungmask.nii.gz), in a second table
  -h, --help            this help
`;

const flags = parseFlags(usage, { ...CONFIG_FLAGS, out: { type: 'string' }, 'lung-mask': { type: 'string' } });

try {
  const rt = await init();
  console.log(`adapter: ${rt.describe()}`);
  const base = configFromFlags(flags, adapterIsCpu(rt.adapter), { architecture: 'aunet', loss: 'ftl' });
  const out = userPath(flags.out) ?? join(DEFAULT_RUNS_DIR, `ablation-${base.preset}-seed${base.seed}`);
  console.log(`experiment folder: ${out}`);
  const progress = progressHooks();
  const rows = await ablation(base, out, {
    ...progress,
    lungMask: userPath(flags['lung-mask']),
    onRow: (i, row, dir) => console.log(`\n== row ${i + 1}/4: ${row} (${dir})`),
  });
  progress.stop();
  const s = base.model.inputSize;
  console.log(`\nTable 1, pooled over the test slices (%), ${base.epochs} epochs at most (each row's own count in its column):\n`);
  console.log(ablationMarkdown(rows, `${s}x${s}`, 'original'));
  console.log(`tables: ${join(out, 'ablation.md')}, ${join(out, 'ablation.json')}`);
  process.exit(0);
} catch (e) {
  fail(e);
}
