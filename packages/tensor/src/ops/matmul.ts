// Matrix product of 2-D tensors, for users' own layers. A plain kernel, one invocation per output:
// nothing in the AU-Net uses it (the attention op has its own fused FC kernels).

import { record } from '../autograd';
import { assertFloat, empty, launch, uniformStruct } from '../kernel';
import { Tensor } from '../tensor';

// out[M,N] = op(A) op(B); op(A)[m,k] = A[m*sam + k*sak], op(B)[k,n] = B[k*sbk + n*sbn].
const MATMUL_UNIFORMS = uniformStruct('matmul', { m: 'u32', n: 'u32', k: 'u32', sam: 'u32', sak: 'u32', sbk: 'u32', sbn: 'u32' });
const MATMUL = `
${MATMUL_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(8, 8) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let col = gid.x; let row = gid.y;
  if (row >= p.m || col >= p.n) { return; }
  var acc = 0.0;
  for (var k = 0u; k < p.k; k++) { acc += a[row * p.sam + k * p.sak] * b[k * p.sbk + col * p.sbn]; }
  out[row * p.n + col] = acc;
}`;

function matmulRaw(a: Tensor, b: Tensor, transA: boolean, transB: boolean, op = 'matmul'): Tensor {
  const [ar, ac] = a.shape;
  const [br, bc] = b.shape;
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const kb = transB ? bc : br;
  const n = transB ? br : bc;
  if (k !== kb) throw new Error(`matmul: inner dimensions differ: [${a.shape}]${transA ? 'ᵀ' : ''} x [${b.shape}]${transB ? 'ᵀ' : ''}`);
  const out = empty([m, n], 'float32', op);
  launch({
    kernel: 'matmul',
    code: MATMUL,
    grid: [Math.ceil(n / 8), Math.ceil(m / 8)],
    bind: [a, b, out],
    uniforms: MATMUL_UNIFORMS.pack({ m, n, k, sam: transA ? 1 : ac, sak: transA ? ac : 1, sbk: transB ? 1 : bc, sbn: transB ? bc : 1 }),
  });
  return out;
}

/** a [M,K] x b [K,N] -> [M,N]. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  assertFloat(a, 'matmul');
  assertFloat(b, 'matmul');
  if (a.rank !== 2 || b.rank !== 2) throw new Error(`matmul: expects 2-D tensors, got [${a.shape}] and [${b.shape}]`);
  const out = matmulRaw(a, b, false, false);
  return record(out, 'matmul', [a, b], (g) => [
    a.requiresGrad ? matmulRaw(g, b, false, true, 'matmul backward') : null, // dA = G Bᵀ
    b.requiresGrad ? matmulRaw(a, g, true, false, 'matmul backward') : null, // dB = Aᵀ G
  ]);
}
