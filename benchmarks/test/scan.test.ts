// The scan suite's pieces: the first slices of a volume along its slice axis, the agreement
// figures, and, on two slices of the shipped volume with a small model at 32x32, the three
// networks (ours, ONNX Runtime on the export, PyTorch with our weights over the slice server's
// pipe) giving the same probabilities through the same predictVolume path.
import './conv-variant';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { setupGPU } from '@aunet/tensor/testing';
import { manualSeed } from '@aunet/nn';
import { AUNet, defaultModelConfig, defaultSpace, exportOnnx, readVolume, type Volume, type VolumePrediction } from 'aunet/node';
import { createOrtSession, runOrtSlices } from '../src/peers/ort';
import { TorchSliceServer, TorchUnavailable } from '../src/peers/torch-server';
import { SCAN_FILE, agreement, firstSlices, ourNetwork, scanWith } from '../src/suites/scan';

function volume(dims: [number, number, number], sliceAxis: 0 | 1 | 2): Volume {
  const data = Float32Array.from({ length: dims[0] * dims[1] * dims[2] }, (_, i) => i);
  return { source: 'test.nii', dims, data, sliceAxis, datatype: 'float32', niftiVersion: 1, scaling: null, space: defaultSpace(), description: '' };
}

const pieces = suite('scan suite: pieces');

pieces('firstSlices keeps the first slices along the slice axis, in the file layout', () => {
  const z = firstSlices(volume([3, 2, 4], 2), 2);
  assert.equal(z.dims, [3, 2, 2]);
  assert.equal([...z.data], [...Array(12).keys()]);
  // Slice axis x: voxel (x, y, z) at x + 3 (y + 2 z) of the original; keep x = 0, 1.
  const x = firstSlices(volume([3, 2, 4], 0), 2);
  assert.equal(x.dims, [2, 2, 4]);
  const expected: number[] = [];
  for (let k = 0; k < 4; k++) for (let y = 0; y < 2; y++) for (let i = 0; i < 2; i++) expected.push(i + 3 * (y + 2 * k));
  assert.equal([...x.data], expected);
  const all = volume([3, 2, 4], 2);
  assert.is(firstSlices(all, 9), all, 'more slices than the volume has: the volume itself');
});

pieces('agreement: differences, mask and NaN', () => {
  const pred = (p: number[]): VolumePrediction => ({
    dims: [p.length, 1, 1], probabilities: Float32Array.from(p), mask: Uint8Array.from(p.map((v) => (v >= 0.5 ? 1 : 0))),
    image: new Float32Array(p.length), intensity: 'hu', threshold: 0.5,
  });
  const a = agreement(pred([0.1, 0.6, 0.49, 0.9]), pred([0.1, 0.4, 0.5, 0.9]));
  assert.ok(Math.abs(a.maxDiff - 0.2) < 1e-6);
  assert.ok(Math.abs(a.meanDiff - 0.21 / 4) < 1e-6);
  assert.is(a.maskDiffers, 0.5);
  assert.is(a.lesionVoxels, 2);
  assert.is(a.oursLesionVoxels, 2);
  assert.is(agreement(pred([NaN, 0.5]), pred([0.1, 0.5])).maxDiff, Infinity, 'NaN is the worst difference');
});

pieces.run();

const sides = suite('scan suite: the three networks');
sides.before(setupGPU);

/**
 * Worst |theirs - ours| allowed: as the aunet package's ONNX test (1e-4; 2e-6 measured on small
 * models), both float32 with different summation orders.
 */
const TOLERANCE = 1e-4;

sides('ours, ONNX Runtime and PyTorch give the same probabilities on two slices of the shipped volume at 32x32', async () => {
  manualSeed(3);
  const model = new AUNet(defaultModelConfig({ filters: [4, 8, 16], deepSupervision: 2, inputSize: 32 }));
  model.eval();
  const read = () => readVolume(SCAN_FILE);
  const quiet = () => {};
  try {
    const ours = await scanWith('ours', ourNetwork(model, 1), 32, read, 2, 1, quiet);
    assert.is(ours.slices, 2);
    assert.equal(ours.calls.map((c) => c.slices), [1, 1], 'batch 1: one call a slice');
    assert.equal(ours.prediction.dims, [512, 512, 2]);

    const session = await createOrtSession((await exportOnnx(model)).bytes);
    try {
      // Batch 2: both slices in one call, the same probabilities.
      const ort = await scanWith('ort', (im) => runOrtSlices(session, im, 1, 32), 32, read, 2, 2, quiet);
      assert.equal(ort.calls.map((c) => c.slices), [2]);
      const a = agreement(ort.prediction, ours.prediction);
      console.log(`  ort against ours: max |dp| ${a.maxDiff.toExponential(2)}`);
      assert.ok(a.maxDiff < TOLERANCE, `ort: ${a.maxDiff}`);
    } finally {
      await session.session.release();
    }

    let server: TorchSliceServer;
    try {
      server = await TorchSliceServer.start(model.config, await model.stateDict(), quiet);
    } catch (e) {
      if (e instanceof TorchUnavailable) {
        console.log(`  PyTorch side skipped: ${e.message}`);
        return;
      }
      throw e;
    }
    try {
      const torch = await scanWith('torch', (im) => server.predict(im), 32, read, 2, 1, quiet);
      const a = agreement(torch.prediction, ours.prediction);
      console.log(`  torch against ours: max |dp| ${a.maxDiff.toExponential(2)}`);
      assert.ok(a.maxDiff < TOLERANCE, `torch: ${a.maxDiff}`);
      assert.ok(torch.calls.every((c) => c.ms > 0), 'PyTorch reports its own time');
      assert.is(server.info.params, model.numParameters());
    } finally {
      assert.ok((await server.close()) !== null, 'the server ends with its peak RSS');
    }
  } finally {
    model.dispose();
  }
});

sides('PyTorch refuses weights that are not its network\'s, naming the tensor', async () => {
  const config = defaultModelConfig({ filters: [4, 8, 16], deepSupervision: 2, inputSize: 32 });
  const state = new Map([['encoder.0.block.conv.weight', { shape: [4, 2, 3, 3], data: new Float32Array(72) }]]);
  try {
    const server = await TorchSliceServer.start(config, state, () => {});
    server.kill();
    assert.unreachable('started with wrong weights');
  } catch (e) {
    if (e instanceof TorchUnavailable) return;
    assert.match((e as Error).message, /encoder\.0\.block\.conv\.weight/);
  }
});

sides.run();
