// Filling benchmark inputs on the device: a counter-based hash, so that no 8-million-element
// array is generated on the host per case.

import { Uniforms, empty, launch1d, type Shape, type Tensor } from '@aunet/tensor';

const FILL_RANDOM = `
struct P { n: u32, seed: u32, lo: f32, hi: f32, binary: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  if (i >= p.n) { return; }
  let u = f32(pcg(i ^ pcg(p.seed)) >> 8u) / 16777216.0;
  if (p.binary != 0u) { out[i] = select(0.0, 1.0, u < p.lo); } else { out[i] = p.lo + (p.hi - p.lo) * u; }
}`;

let seedCounter = 1;

/** A tensor of uniform values in [lo, hi). */
export function uniform(shape: Shape, lo = -1, hi = 1): Tensor {
  const t = empty(shape);
  launch1d('bench-fill-random', FILL_RANDOM, t.size, 256, [t], new Uniforms().u32(t.size, seedCounter++).f32(lo, hi).u32(0));
  return t;
}

/** A tensor of 0/1 values, 1 with probability `p1`. */
export function binary(shape: Shape, p1 = 0.3): Tensor {
  const t = empty(shape);
  launch1d('bench-fill-random', FILL_RANDOM, t.size, 256, [t], new Uniforms().u32(t.size, seedCounter++).f32(p1, 0).u32(1));
  return t;
}
