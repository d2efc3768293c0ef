// `pnpm --filter aunet train`. The AU-Net trainer is a later issue; until it lands this command
// runs an end-to-end check of the runtime instead: WebGPU adapter, kernels, autodiff, memory.
import { Rng, add, backward, init, matmul, mean, mul, noGrad, randn, scope, sigmoid, sub, zeros } from '@aunet/tensor';

const rt = await init().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
console.log(`adapter: ${rt.describe()}`);
console.log('The AU-Net trainer is not built yet; running the runtime end-to-end check instead.');

// Logistic regression on a random linearly separable problem, trained with plain SGD.
const rng = new Rng(1);
const x = randn([256, 32], { rng });
const truth = randn([32, 1], { rng });
const labels = noGrad(() => sigmoid(mul(matmul(x, truth), 4)));
const w = zeros([32, 1], { requiresGrad: true });
const b = zeros([1], { requiresGrad: true });
const start = rt.memory().bytesInUse;
const t0 = performance.now();
let firstLoss = 0;
let loss = 0;
for (let step = 1; step <= 200; step++) {
  loss = await scope(async () => {
    const p = sigmoid(add(matmul(x, w), b));
    const d = sub(p, labels);
    const l = mean(mul(d, d));
    backward(l);
    noGrad(() => {
      for (const param of [w, b]) {
        const next = sub(param, mul(param.grad!, 2));
        rt.copy(next.buffer, 0, param.buffer, 0, param.size * 4);
        param.grad!.dispose();
        param.grad = null;
      }
    });
    return step % 50 === 0 || step === 1 ? l.item() : 0;
  });
  if (step === 1) firstLoss = loss;
  if (step % 50 === 0) console.log(`step ${step}: loss ${loss.toFixed(5)}`);
}
await rt.sync();
const ms = performance.now() - t0;
const leaked = rt.memory().bytesInUse - start;
console.log(`200 steps in ${ms.toFixed(0)} ms (${(ms / 200).toFixed(2)} ms/step); loss ${firstLoss.toFixed(4)} -> ${loss.toFixed(4)}; bytes leaked: ${leaked}`);
if (!(loss < firstLoss / 2) || leaked !== 0) {
  console.error('runtime check FAILED: the loss did not fall by half or memory leaked');
  process.exit(1);
}
console.log('runtime check passed');
process.exit(0);
