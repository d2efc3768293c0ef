// Filling benchmark inputs on the device: a counter-based hash, so that no 8-million-element
// array is generated on the host per case.

import { ENTRY_1D, empty, grid1d, launch, linearIndex, uniformStruct, type Shape, type Tensor } from '@aunet/tensor';

const FILL_UNIFORMS = uniformStruct('bench-fill-random', { n: 'u32', seed: 'u32', lo: 'f32', hi: 'f32', binary: 'u32' });

const FILL_RANDOM = `
${FILL_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i >= p.n) { return; }
  let u = f32(pcg(i ^ pcg(p.seed)) >> 8u) / 16777216.0;
  if (p.binary != 0u) { out[i] = select(0.0, 1.0, u < p.lo); } else { out[i] = p.lo + (p.hi - p.lo) * u; }
}`;

let seedCounter = 1;

/** A tensor of uniform values in [lo, hi). */
export function uniform(shape: Shape, lo = -1, hi = 1): Tensor {
  const t = empty(shape);
  launch({ kernel: 'bench-fill-random', code: FILL_RANDOM, grid: grid1d(t.size, 256), bind: [t], uniforms: FILL_UNIFORMS.pack({ n: t.size, seed: seedCounter++, lo, hi, binary: 0 }) });
  return t;
}

/** A tensor of 0/1 values, 1 with probability `p1`. */
export function binary(shape: Shape, p1 = 0.3): Tensor {
  const t = empty(shape);
  launch({ kernel: 'bench-fill-random', code: FILL_RANDOM, grid: grid1d(t.size, 256), bind: [t], uniforms: FILL_UNIFORMS.pack({ n: t.size, seed: seedCounter++, lo: p1, hi: 0, binary: 1 }) });
  return t;
}
