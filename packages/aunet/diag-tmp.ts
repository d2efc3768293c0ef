import { backward, mean, mul, scope, sigmoid, tensor } from '@aunet/tensor';
import { setupGPU, testRng } from '@aunet/tensor/testing';
import { ref, type Ref } from '@aunet/tensor/reference';
import { manualSeed } from '@aunet/nn';
import { referenceForward } from './test/reference';
import { AUNet, defaultModelConfig } from './src/model';

await setupGPU();
const TINY = { filters: [4, 8, 16], inputSize: 16, deepSupervision: 2 };
manualSeed(7);
const config = defaultModelConfig(TINY);
const net = new AUNet(config);
const rng = testRng('fd');
const shape = [2, 1, 16, 16];
const r2 = testRng('fd-x');
const xData = Float32Array.from({ length: 512 }, () => r2.uniform());
const wData = Float32Array.from({ length: 2 * 256 }, () => rng.range(-1, 1));
const x = tensor(xData, shape, { requiresGrad: true });
const weights = tensor(wData, shape);
await scope(async () => { backward(mean(mul(sigmoid(net.forward(x)), weights))); });
const params = new Map<string, Ref>();
const grads = new Map<string, Float32Array>();
for (const [name, p] of net.namedParameters()) { params.set(name, ref(await p.value.data(), [...p.shape])); grads.set(name, (await p.grad!.data()) as Float32Array); }
const loss = (ps: Map<string, Ref>) => { const y = referenceForward(config, ps, ref(xData, shape)); let s = 0; for (let i = 0; i < y.data.length; i++) s += wData[i] / (1 + Math.exp(-y.data[i])); return s / y.data.length; };
for (const name of ['encoder.0.block.norm.weight', 'encoder.0.block.norm.bias', 'encoder.0.block.conv.weight']) {
  const p = params.get(name)!;
  const g = grads.get(name)!;
  for (let j = 0; j < Math.min(4, p.data.length); j++) {
    const fd: number[] = [];
    for (const h of [1e-5, 1e-6, 1e-7]) {
      const mv = (t: number) => { const m = new Map(params); const d = Float64Array.from(p.data); d[j] += t; m.set(name, { shape: p.shape, data: d }); return loss(m); };
      fd.push((mv(h) - mv(-h)) / (2 * h));
    }
    console.log(name, j, 'gpu', g[j].toExponential(6), 'fd', fd.map((v) => v.toExponential(6)).join(' '));
  }
}
process.exit(0);
