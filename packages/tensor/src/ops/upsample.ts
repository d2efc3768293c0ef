// Nearest-neighbour x2 up-sampling of NCHW activations (the AU-Net decoder), and its backward:
// the sum of each 2x2 block of the output gradient. When W is a multiple of 4 (every AU-Net
// level) one invocation moves a vec4 of input: forward 1 vec4 load and 4 vec4 stores, backward
// 4 vec4 loads and 1 vec4 store. Other widths take a scalar kernel (one element per invocation).

import { record } from '../autograd';
import { ENTRY_1D, assertFloat, empty, grid1d, launch, linearIndex, uniformStruct } from '../kernel';

const VEC_UNIFORMS = uniformStruct('upsample2x', { n4: 'u32', w4: 'u32' });
const SCALAR_UNIFORMS = uniformStruct('upsample2x.scalar', { n: 'u32', w: 'u32' });
import { Tensor } from '../tensor';

// rows = N*C*H input rows of w4 = W/4 vec4s each.
const FORWARD_VEC = `
${VEC_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i >= p.n4) { return; }
  let row = i / p.w4; let j = i % p.w4;
  let v = x[i];
  let lo = v.xxyy; let hi = v.zzww;
  let o = (2u * row) * (2u * p.w4) + 2u * j; // output row 2*row, vec4 2*j
  y[o] = lo; y[o + 1u] = hi;
  let o2 = o + 2u * p.w4;
  y[o2] = lo; y[o2 + 1u] = hi;
}`;

const FORWARD_SCALAR = `
${SCALAR_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i >= p.n) { return; }
  let ow = 2u * p.w;
  let orow = i / ow; let ox = i % ow;
  y[i] = x[(orow >> 1u) * p.w + (ox >> 1u)];
}`;

const BACKWARD_VEC = `
${VEC_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dx: array<vec4<f32>>;
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i >= p.n4) { return; }
  let row = i / p.w4; let j = i % p.w4;
  let o = (2u * row) * (2u * p.w4) + 2u * j;
  let o2 = o + 2u * p.w4;
  let a = g[o] + g[o2];           // columns 8j..8j+3 of the two output rows, summed over rows
  let b = g[o + 1u] + g[o2 + 1u]; // columns 8j+4..8j+7
  dx[i] = vec4<f32>(a.x + a.y, a.z + a.w, b.x + b.y, b.z + b.w);
}`;

const BACKWARD_SCALAR = `
${SCALAR_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i >= p.n) { return; }
  let row = i / p.w; let c = i % p.w;
  let ow = 2u * p.w;
  let o = (2u * row) * ow + 2u * c;
  dx[i] = (g[o] + g[o + 1u]) + (g[o + ow] + g[o + ow + 1u]);
}`;

/** Nearest-neighbour up-sampling by 2 in H and W of an NCHW tensor: [N,C,H,W] -> [N,C,2H,2W]. */
export function upsample2x(x: Tensor): Tensor {
  assertFloat(x, 'upsample2x');
  if (x.rank !== 4) throw new Error(`upsample2x: expects an NCHW tensor of rank 4, got shape [${x.shape}]`);
  const [n, c, h, w] = x.shape;
  const y = empty([n, c, 2 * h, 2 * w], 'float32', 'upsample2x');
  const vec = w % 4 === 0;
  if (vec) {
    const n4 = x.size / 4;
    launch({ kernel: 'upsample2x', code: FORWARD_VEC, grid: grid1d(n4, 256), bind: [x, y], uniforms: VEC_UNIFORMS.pack({ n4, w4: w / 4 }) });
  } else {
    launch({ kernel: 'upsample2x.scalar', code: FORWARD_SCALAR, grid: grid1d(y.size, 256), bind: [x, y], uniforms: SCALAR_UNIFORMS.pack({ n: y.size, w }) });
  }
  return record(y, 'upsample2x', [x], (g) => {
    const dx = empty(x.shape, 'float32', 'upsample2x backward');
    if (vec) {
      const n4 = x.size / 4;
      launch({ kernel: 'upsample2x.backward', code: BACKWARD_VEC, grid: grid1d(n4, 256), bind: [g, dx], uniforms: VEC_UNIFORMS.pack({ n4, w4: w / 4 }) });
    } else {
      launch({ kernel: 'upsample2x.backward.scalar', code: BACKWARD_SCALAR, grid: grid1d(x.size, 256), bind: [g, dx], uniforms: SCALAR_UNIFORMS.pack({ n: x.size, w }) });
    }
    return [dx];
  });
}
