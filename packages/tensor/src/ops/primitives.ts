// The unrecorded kernels that autograd and the recorded ops are built from: fill, copy (of a
// whole tensor or a strided block), the binary element-wise kernels with broadcasting, expand, and
// sums over axes. Nothing here records for autodiff, so autograd imports it without a cycle.

import { ENTRY_1D, assertFloat, empty, fields4, grid1d, launch, linearIndex, sameShape, stridesOf, uniformStruct, values4, wgslCoords4 } from '../kernel';
import { runtime } from '../runtime';
import { Tensor, type Shape } from '../tensor';
import { MAX_RANK, broadcastShapes, broadcastStrides, pad4 } from './broadcast';

// ---- fill and copy -----------------------------------------------------------------------------

/** Fill `t` in place with `value` (interpreted in t's dtype). */
export function fill_(t: Tensor, value: number): Tensor {
  const bits = new DataView(new ArrayBuffer(4));
  if (t.dtype === 'float32') bits.setFloat32(0, value, true);
  else if (t.dtype === 'int32') bits.setInt32(0, value, true);
  else bits.setUint32(0, value, true);
  if (t.size > 0) runtime().fillWords(t.buffer, bits.getUint32(0, true), t.size);
  return t;
}

const COPY_BLOCK_UNIFORMS = uniformStruct('copyBlock', { n: 'u32', cols: 'u32', srcRow: 'u32', srcOff: 'u32', dstRow: 'u32', dstOff: 'u32' });

// dst[r * dstRow + dstOff + c] = src[r * srcRow + srcOff + c] for r < rows, c < cols, as 32-bit
// words, so one kernel copies every dtype.
const COPY_BLOCK = `
${COPY_BLOCK_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i >= p.n) { return; }
  let r = i / p.cols; let c = i % p.cols;
  dst[r * p.dstRow + p.dstOff + c] = src[r * p.srcRow + p.srcOff + c];
}`;

/** Copy a [rows, cols] block between row-major buffers with given row lengths and offsets (in elements). */
export function copyBlock(src: Tensor, dst: Tensor, rows: number, cols: number, srcRow: number, srcOff: number, dstRow: number, dstOff: number): void {
  const n = rows * cols;
  launch({
    kernel: 'copyBlock',
    code: COPY_BLOCK,
    grid: grid1d(n, 256),
    bind: [src, dst],
    uniforms: COPY_BLOCK_UNIFORMS.pack({ n, cols, srcRow, srcOff, dstRow, dstOff }),
  });
}

/** A new tensor with the same values. */
export function copy(t: Tensor): Tensor {
  return copyAs(t, 'copy');
}

/** `copy`, naming the operation `op` in errors. */
function copyAs(t: Tensor, op: string): Tensor {
  const out = empty(t.shape, t.dtype, op);
  copyBlock(t, out, 1, t.size, t.size, 0, t.size, 0);
  return out;
}

// ---- binary element-wise kernels, broadcasting -----------------------------------------------

const BINARY = { add: 'a + b', sub: 'a - b', mul: 'a * b', div: 'a / b' } as const;
export type BinaryOp = keyof typeof BINARY;

const SAME_SHAPE_UNIFORMS = uniformStruct('binary', { n4: 'u32' });
const BROADCAST_UNIFORMS = uniformStruct('binary.broadcast', { n: 'u32', ...fields4('d', 'u32'), ...fields4('a', 'u32'), ...fields4('b', 'u32') });

function binarySameShapeCode(op: BinaryOp): string {
  return `
${SAME_SHAPE_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> as_: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bs: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i >= p.n4) { return; }
  let a = as_[i]; let b = bs[i];
  out[i] = ${BINARY[op]};
}`;
}

function binaryBroadcastCode(op: BinaryOp): string {
  return `
${BROADCAST_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> as_: array<f32>;
@group(0) @binding(2) var<storage, read> bs: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i >= p.n) { return; }
  ${wgslCoords4('i', 'd')}
  let a = as_[c0 * p.a0 + c1 * p.a1 + c2 * p.a2 + c3 * p.a3];
  let b = bs[c0 * p.b0 + c1 * p.b1 + c2 * p.b2 + c3 * p.b3];
  out[i] = ${BINARY[op]};
}`;
}

/** a (op) b with broadcasting, as a new tensor; not recorded. `name` is the operation named in errors. */
export function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor, name: string = op): Tensor {
  assertFloat(a, op);
  assertFloat(b, op);
  const shape = broadcastShapes(a.shape, b.shape, op);
  const out = empty(shape, 'float32', name);
  if (sameShape(a.shape, b.shape)) {
    const n4 = Math.ceil(out.size / 4);
    launch({ kernel: op, code: binarySameShapeCode(op), grid: grid1d(n4, 256), bind: [a, b, out], uniforms: SAME_SHAPE_UNIFORMS.pack({ n4 }) });
  } else {
    launch({
      kernel: `${op}.broadcast`,
      code: binaryBroadcastCode(op),
      grid: grid1d(out.size, 256),
      bind: [a, b, out],
      uniforms: BROADCAST_UNIFORMS.pack({
        n: out.size,
        ...values4('d', pad4(shape)),
        ...values4('a', broadcastStrides(a.shape, shape, op)),
        ...values4('b', broadcastStrides(b.shape, shape, op)),
      }),
    });
  }
  return out;
}

// ---- expand ------------------------------------------------------------------------------------

const EXPAND_UNIFORMS = uniformStruct('expand', { n: 'u32', ...fields4('d', 'u32'), ...fields4('s', 'u32') });

const EXPAND = `
${EXPAND_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i >= p.n) { return; }
  ${wgslCoords4('i', 'd')}
  out[i] = x[c0 * p.s0 + c1 * p.s1 + c2 * p.s2 + c3 * p.s3];
}`;

/** Broadcast `x` to `shape`, as a new tensor (a copy when the shapes are equal); not recorded. */
export function expandRaw(x: Tensor, shape: Shape, op = 'expand'): Tensor {
  broadcastShapes(x.shape, shape, 'expand');
  if (sameShape(x.shape, shape)) return copyAs(x, op);
  const out = empty(shape, 'float32', op);
  launch({
    kernel: 'expand',
    code: EXPAND,
    grid: grid1d(out.size, 256),
    bind: [x, out],
    uniforms: EXPAND_UNIFORMS.pack({ n: out.size, ...values4('d', pad4(shape)), ...values4('s', broadcastStrides(x.shape, shape, 'expand')) }),
  });
  return out;
}

// ---- sums over axes ----------------------------------------------------------------------------
// Two kernels: one invocation per output when there are many outputs, and a workgroup tree
// reduction (optionally split into parts, then a second pass) when few outputs each reduce many
// elements, so that all cores take part. Both accumulate in three levels (blocks of 32 terms,
// blocks of 32 blocks, total): a plain float32 running sum of thousands of terms drifts by 1e-4
// relative. (Kahan compensation would be better, but lavapipe's compiler reassociates it away:
// measured, it gives exactly the naive sum.)

const ACCUMULATE = `
  part += v; k++;
  if ((k & 31u) == 0u) { mid += part; part = 0.0; if ((k & 1023u) == 0u) { acc += mid; mid = 0.0; } }`;

const PER_OUTPUT_UNIFORMS = uniformStruct('sum', {
  nOut: 'u32', ...fields4('k', 'u32'), ...fields4('ks', 'u32'), ...fields4('r', 'u32'), ...fields4('rs', 'u32'), scale: 'f32',
});

const PER_OUTPUT = `
${PER_OUTPUT_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${ENTRY_1D(64)} {
  ${linearIndex(64, 'o')}
  if (o >= p.nOut) { return; }
  ${wgslCoords4('o', 'k')}
  let base = c0 * p.ks0 + c1 * p.ks1 + c2 * p.ks2 + c3 * p.ks3;
  var acc = 0.0; var mid = 0.0; var part = 0.0; var k = 0u;
  for (var a = 0u; a < p.r0; a++) {
    for (var b = 0u; b < p.r1; b++) {
      for (var c = 0u; c < p.r2; c++) {
        let row = base + a * p.rs0 + b * p.rs1 + c * p.rs2;
        for (var d = 0u; d < p.r3; d++) {
          let v = x[row + d * p.rs3];${ACCUMULATE}
        }
      }
    }
  }
  out[o] = (acc + mid + part) * p.scale;
}`;

const WG = 64;
const PER_WORKGROUP_UNIFORMS = uniformStruct('sum.workgroup', {
  nOut: 'u32', ...fields4('k', 'u32'), ...fields4('ks', 'u32'), ...fields4('r', 'u32'), ...fields4('rs', 'u32'),
  nRed: 'u32', scale: 'f32', parts: 'u32', chunk: 'u32',
});

/**
 * WGSL: sum each of the `k` segments of `wg` values of `var<workgroup> name: array<f32, wg * k>`
 * into its first element (name[j * wg]), as one tree over the workgroup's lanes. The library's one
 * workgroup reduction: the sums over axes here and the plane reductions (planes.ts) use it.
 */
export function workgroupTreeSum(name: string, wg: number, k = 1): string {
  const adds = Array.from({ length: k }, (_, j) => `${name}[${j * wg}u + lid.x] += ${name}[${j * wg}u + lid.x + s];`).join(' ');
  return `workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { ${adds} }
    workgroupBarrier();
  }`;
}

// One workgroup per (output, part): its lanes stride over the part's elements, then sum as a tree.
const PER_WORKGROUP = `
${PER_WORKGROUP_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
var<workgroup> partial: array<f32, ${WG}>;
${ENTRY_1D(WG)} {
  let slot = wid.y * nwg.x + wid.x;           // (output, part), part fastest
  let valid = slot < p.nOut * p.parts;
  let o = min(slot / p.parts, p.nOut - 1u);
  let partIndex = slot % p.parts;
  ${wgslCoords4('o', 'k')}
  let base = c0 * p.ks0 + c1 * p.ks1 + c2 * p.ks2 + c3 * p.ks3;
  let start = partIndex * p.chunk;
  let end = min(start + p.chunk, p.nRed);
  var acc = 0.0; var mid = 0.0; var part = 0.0; var k = 0u;
  for (var r = start + lid.x; r < end; r += ${WG}u) {
    ${wgslCoords4('r', 'r', 'u')}
    let v = x[base + u0 * p.rs0 + u1 * p.rs1 + u2 * p.rs2 + u3 * p.rs3];${ACCUMULATE}
  }
  partial[lid.x] = acc + mid + part;
  ${workgroupTreeSum('partial', WG)}
  if (lid.x == 0u && valid) { out[slot] = partial[0] * p.scale; }
}`;

/** Pad a list of (dim, stride) pairs on the left to length 4 with (1, 0). */
function pad(dims: number[], strides: number[]): [number[], number[]] {
  if (dims.length > MAX_RANK) throw new Error(`sum: rank above ${MAX_RANK} is not supported`);
  const k = MAX_RANK - dims.length;
  return [[...new Array<number>(k).fill(1), ...dims], [...new Array<number>(k).fill(0), ...strides]];
}

/** Sum of `x` over `axes` (sorted, distinct), times `scale`, as a flat tensor of the kept dims' sizes; not recorded. */
export function sumRaw(x: Tensor, axes: number[], scale = 1, op = 'sum'): Tensor {
  assertFloat(x, 'sum');
  const st = stridesOf(x.shape);
  const keptDims: number[] = [];
  const keptStrides: number[] = [];
  const redDims: number[] = [];
  const redStrides: number[] = [];
  x.shape.forEach((d, i) => {
    if (axes.includes(i)) {
      redDims.push(d);
      redStrides.push(st[i]);
    } else {
      keptDims.push(d);
      keptStrides.push(st[i]);
    }
  });
  const [kd, ks] = pad(keptDims, keptStrides);
  const [rd, rs] = pad(redDims, redStrides);
  const nOut = kd.reduce((a, b) => a * b, 1);
  const nRed = rd.reduce((a, b) => a * b, 1);
  if (nOut === 0) return empty([0], 'float32', op);
  const geometry = { ...values4('k', kd), ...values4('ks', ks), ...values4('r', rd), ...values4('rs', rs) };
  if (nOut >= 2048 || nRed <= 64) {
    const out = empty([nOut], 'float32', op);
    launch({ kernel: 'sum', code: PER_OUTPUT, grid: grid1d(nOut, 64), bind: [x, out], uniforms: PER_OUTPUT_UNIFORMS.pack({ nOut, ...geometry, scale }) });
    return out;
  }
  // Few outputs, long reductions: split each into parts so that there are enough workgroups.
  const parts = Math.max(1, Math.min(Math.ceil(nRed / 4096), Math.ceil(256 / nOut)));
  const chunk = Math.ceil(nRed / parts);
  const target = empty([nOut * parts], 'float32', op);
  launch({
    kernel: 'sum.workgroup',
    code: PER_WORKGROUP,
    grid: grid1d(nOut * parts, 1),
    bind: [x, target],
    uniforms: PER_WORKGROUP_UNIFORMS.pack({ nOut, ...geometry, nRed, scale: parts === 1 ? scale : 1, parts, chunk }),
  });
  if (parts === 1) return target;
  const partial = target.view([nOut, parts]);
  target.dispose();
  const r = sumRaw(partial, [1], scale, op);
  partial.dispose();
  return r;
}

/** Sum a broadcast result `x` back down to `shape` (the inverse of broadcasting); not recorded. */
export function sumToRaw(x: Tensor, shape: Shape, op = 'sumTo'): Tensor {
  const b = broadcastShapes(shape, x.shape, 'sumTo');
  if (!sameShape(b, x.shape)) throw new Error(`sumTo: [${shape}] does not broadcast to [${x.shape}]`);
  const lead = x.rank - shape.length;
  const axes: number[] = [];
  x.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  if (axes.length === 0) return x.view([...shape]);
  const flat = sumRaw(x, axes, 1, op);
  const out = flat.view([...shape]);
  flat.dispose();
  return out;
}
