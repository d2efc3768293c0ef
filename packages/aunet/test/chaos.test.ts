// Kill at any moment (short version of `pnpm --filter aunet chaos`): a tiny training run killed
// with SIGKILL a few times and resumed each time ends with every epoch once, a loadable last
// checkpoint and nothing left behind; and the check itself catches a damaged folder.
import './conv-variant';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chaos } from '../src/attack/chaos';
import { defaultTrainConfig } from '../src/config';
import { DEFAULT_DATA_DIR } from '../src/data/files';
import { checkRunFolder, LAST, LOG } from '../src/run-folder';
import { train } from '../src/train';
import { setupGPU } from '@aunet/tensor/testing';

const tmp = mkdtempSync(join(tmpdir(), 'aunet-chaos-'));

test('a run killed 3 times (SIGKILL) and resumed finishes with nothing lost', async () => {
  const out = join(tmp, 'run');
  // No kill lets a start gain more than about an epoch: 10 epochs outlast 3 kills.
  const r = await chaos({ out, kills: 3, seed: 2, epochs: 10 });
  assert.equal(r.problems, []);
  assert.is(r.kills, 3);
  assert.is(r.starts, 4);
  // The check catches what a lost or repeated epoch, or a damaged checkpoint, would look like.
  const log = readFileSync(join(out, LOG), 'utf8');
  appendFileSync(join(out, LOG), log.trim().split('\n').pop() + '\n');
  assert.match((await checkRunFolder(out, 10)).join(), /lists epochs \[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10\]/);
  writeFileSync(join(out, LOG), log);
  writeFileSync(join(out, LAST), readFileSync(join(out, LAST)).subarray(0, 1000));
  assert.match((await checkRunFolder(out, 10)).join(), /last\.safetensors does not load/);
  assert.match((await checkRunFolder(out, 11)).join(), /expected 1\.\.11/);
});

test('a run that early stopping ended is finished at its last epoch', async () => {
  await setupGPU();
  const out = join(tmp, 'early');
  const config = defaultTrainConfig('cpu', DEFAULT_DATA_DIR, { epochs: 10, earlyStopping: 1, lr: 1e-6, seed: 3, model: { inputSize: 32, filters: [4, 8] } });
  const r = await train(config, { out, log: () => {} });
  assert.ok(r.stoppedEarly && r.epochs < 10, `stopped early at epoch ${r.epochs}`);
  assert.equal(await checkRunFolder(out, 10), []);
  // Still, a run that holds more epochs than asked for is wrong.
  assert.match((await checkRunFolder(out, r.epochs - 1)).join(), new RegExp(`holds epoch ${r.epochs}, expected ${r.epochs - 1}`));
});

test.run();
