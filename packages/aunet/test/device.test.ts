// A device failure in the middle of training (an allocation that runs out of memory, then a lost
// device: destroyed during epoch 2) stops the run with a clear error, keeps the checkpoint of the
// last good epoch and releases the folder; --resume in a new process finishes the run. In a file
// of its own: the device does not come back here, so the lost device comes last.
import './conv-variant';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OutOfMemoryError, runtime, WebGPUError } from '@aunet/tensor';
import { setupGPU } from '@aunet/tensor/testing';
import { defaultTrainConfig } from '../src/config';
import { DEFAULT_DATA_DIR } from '../src/data/files';
import { LOCK_FILE, LOG, runState, type EpochRecord } from '../src/run-folder';
import { train } from '../src/train';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'aunet-device-'));

test.before(setupGPU);

/** Check the run folder after a failure in epoch 2, then finish the run with --resume in a new process. */
async function checkKeptAndResume(out: string): Promise<void> {
  const state = await runState(out);
  assert.is(state.epoch, 1, 'the last good checkpoint is epoch 1');
  const epochs = () => readFileSync(join(out, LOG), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as EpochRecord).epoch);
  assert.equal(epochs(), [1]);
  assert.not.ok(existsSync(join(out, LOCK_FILE)), 'the folder is released');
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'src/cli/train.ts'), '--resume', out], { cwd: pkg, encoding: 'utf8', timeout: 300_000 });
  assert.is(r.status, 0, r.stderr);
  assert.equal(epochs(), [1, 2, 3]);
}

test('out of GPU memory in epoch 2: one clear error naming the op, epoch 1 kept, --resume finishes', async () => {
  const out = join(tmp, 'oom');
  const config = defaultTrainConfig('cpu', DEFAULT_DATA_DIR, { epochs: 3, lr: 1e-3, seed: 5, model: { inputSize: 32, filters: [4, 8, 16] } });
  const rt = runtime();
  const holder = rt.pool as unknown as { device: GPUDevice };
  const real = holder.device;
  let steps = 0;
  try {
    await train(config, {
      out,
      log: () => {},
      onStep: (p) => {
        if (p.epoch !== 2 || ++steps !== 3) return;
        // From here on every new buffer's out-of-memory scope reports an error, as on a device
        // whose memory is exhausted; trim() so that the next step needs new buffers.
        rt.trim();
        holder.device = {
          createBuffer: (d: GPUBufferDescriptor) => real.createBuffer(d),
          pushErrorScope: (f: GPUErrorFilter) => real.pushErrorScope(f),
          popErrorScope: () => real.popErrorScope().then(() => ({ message: 'Out of memory (simulated)' }) as GPUError),
        } as unknown as GPUDevice;
      },
    }).then(
      () => assert.unreachable('trained without memory'),
      (e: Error) => {
        assert.instance(e, OutOfMemoryError);
        assert.match(e.message, /^[\w ()]+: out of GPU memory allocating a tensor buffer of .* use a smaller batch or smaller slices/);
      },
    );
  } finally {
    holder.device = real;
  }
  await checkKeptAndResume(out);
});

test('device lost in epoch 2: one clear error, epoch 1 kept, folder released, --resume finishes', async () => {
  const out = join(tmp, 'run');
  const config = defaultTrainConfig('cpu', DEFAULT_DATA_DIR, { epochs: 3, lr: 1e-3, seed: 5, model: { inputSize: 32, filters: [4, 8, 16] } });
  let steps = 0;
  await train(config, {
    out,
    log: () => {},
    onStep: (p) => {
      if (p.epoch === 2 && ++steps === 3) runtime().device.destroy();
    },
  }).then(
    () => assert.unreachable('trained on a destroyed device'),
    (e: Error) => {
      assert.instance(e, WebGPUError);
      assert.match(e.message, /device was lost/);
    },
  );
  await checkKeptAndResume(out);
});

test.run();
