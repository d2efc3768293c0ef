// `pnpm --filter @aunet/tensor probe`: initialise WebGPU, print the adapter, run one kernel and
// check its result. Exit code 1, with the cause and the fix, when no adapter is available.
import { add, init, tensor } from '../index';

try {
  const rt = await init();
  const a = tensor([1, 2, 3], [3]);
  const b = add(a, a);
  const got = Array.from(await b.data());
  if (got.join() !== '2,4,6') throw new Error(`WebGPU computed [${got}] for [1,2,3]+[1,2,3]; the driver is broken`);
  const { limits } = rt.adapter;
  console.log(`WebGPU OK: ${rt.describe()}`);
  console.log(`  features: ${rt.adapter.features.join(', ')}`);
  console.log(`  maxStorageBufferBindingSize: ${limits.maxStorageBufferBindingSize / 2 ** 20} MiB, maxComputeWorkgroupStorageSize: ${limits.maxComputeWorkgroupStorageSize / 1024} KiB`);
  process.exit(0);
} catch (e) {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
}
