// A lost device (here: destroyed in the middle of work) gives one clear error at the next point
// that waits on the device, and at every call after it; never a hang or an anonymous AbortError.
// In a file of its own: the device does not come back in this process.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setupGPU } from '../src/testing';
import * as T from '../src/index';

test.before(setupGPU);

test('device destroyed between encoding and readback: WebGPUError saying the device was lost, then on every call', async () => {
  const a = T.tensor([1, 2, 3, 4], [4]);
  assert.is(await T.sum(T.add(a, a)).item(), 20);
  const b = T.add(a, a); // encoded, not yet submitted
  T.runtime().device.destroy();
  const t0 = performance.now();
  try {
    await b.data();
    assert.unreachable('read from a destroyed device');
  } catch (e) {
    assert.instance(e, T.WebGPUError);
    assert.match((e as Error).message, /device was lost \(destroyed/);
    assert.match((e as Error).message, /Restart the process/);
  }
  assert.ok(performance.now() - t0 < 5000, 'no hang');
  assert.throws(() => T.add(a, a), /device was lost/);
  await T.runtime().sync().then(
    () => assert.unreachable('sync on a lost device'),
    (e: Error) => assert.match(e.message, /device was lost/),
  );
});

test.run();
