// Kill at any moment (short version of `pnpm --filter aunet chaos`): a tiny training run killed
// with SIGKILL a few times and resumed each time ends with every epoch once, a loadable last
// checkpoint and nothing left behind; and the check itself catches a damaged folder.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chaos, checkRunFolder } from '../src/chaos';
import { LAST, LOG } from '../src/train';

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

test.run();
