// Internal helpers for kernels over NCHW activations seen as N*C planes of H*W values: shared by
// instancenorm.ts and attention.ts (not exported from the package).
//
// A plane is walked in "quads" of 4 consecutive values. When H*W is a multiple of 4 every plane
// starts on a 16-byte boundary and a quad is one vec4 load (the fast path, used by every layer of
// the AU-Net); otherwise a quad is 4 scalar loads with the index clamped to the plane, so values
// are always finite, and `lanes(q)` says which of the 4 are inside the plane. The two variants are
// separate WGSL texts chosen by `vec`, never by shape: shapes are uniforms.

import { ENTRY_1D, linearIndex, uniformStruct, type UniformScalar } from '../kernel';
import { Tensor } from '../tensor';
import { workgroupTreeSum } from './primitives';

export interface PlaneGeom {
  n: number;
  c: number;
  hw: number;
  /** Quads per plane: ceil(hw / 4). */
  q: number;
  planes: number;
  /** hw % 4 == 0: quads are vec4 loads. */
  vec: boolean;
}

export function planeGeom(x: Tensor, op: string): PlaneGeom {
  if (x.rank !== 4) throw new Error(`${op}: expects an NCHW tensor of rank 4, got shape [${x.shape}]`);
  if (x.dtype !== 'float32') throw new Error(`${op}: expects float32, got ${x.dtype}`);
  const [n, c, h, w] = x.shape;
  const hw = h * w;
  const planes = n * c;
  if (planes > 65535) throw new Error(`${op}: N*C = ${planes} planes exceed the 65535 workgroups of one dispatch dimension`);
  return { n, c, hw, q: Math.ceil(hw / 4), planes, vec: hw % 4 === 0 };
}

/**
 * WGSL for a plane-addressed f32 buffer `name` at `binding`: `ld_name(base, q)` loads the quad q
 * of the row starting at element `base` (a multiple of p.hw), `st_name(base, q, v)` stores the
 * lanes inside the plane. Needs a uniform `p` with field `hw`.
 */
export function planeBuffer(name: string, binding: number, access: 'read' | 'read_write', vec: boolean): string {
  const decl = `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<${vec ? 'vec4<f32>' : 'f32'}>;`;
  const store = access === 'read_write';
  if (vec) {
    return `${decl}
fn ld_${name}(base: u32, q: u32) -> vec4<f32> { return ${name}[base / 4u + q]; }
${store ? `fn st_${name}(base: u32, q: u32, v: vec4<f32>) { ${name}[base / 4u + q] = v; }` : ''}`;
  }
  return `${decl}
fn ld_${name}(base: u32, q: u32) -> vec4<f32> {
  let r = 4u * q; let l = p.hw - 1u;
  return vec4<f32>(${name}[base + min(r, l)], ${name}[base + min(r + 1u, l)], ${name}[base + min(r + 2u, l)], ${name}[base + min(r + 3u, l)]);
}
${store ? `fn st_${name}(base: u32, q: u32, v: vec4<f32>) {
  let r = 4u * q;
  ${name}[base + r] = v.x;
  if (r + 1u < p.hw) { ${name}[base + r + 1u] = v.y; }
  if (r + 2u < p.hw) { ${name}[base + r + 2u] = v.z; }
  if (r + 3u < p.hw) { ${name}[base + r + 3u] = v.w; }
}` : ''}`;
}

/** WGSL: which lanes of quad q lie inside the plane. */
export const LANES = `fn lanes(q: u32) -> vec4<bool> { return (vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u)) < vec4<u32>(p.hw); }`;

/** The uniform fields every plane reduction has (plane size, quads, parts per plane, quads per part). */
export const PLANE_REDUCE_FIELDS = { hw: 'u32', q: 'u32', parts: 'u32', chunk: 'u32' } as const;

/** Workgroup size of the plane reductions. */
export const RWG = 64;

/**
 * WGSL: accumulate the vec4 terms t0..t{k-1} that `body` defines for q = first, first + wg, ... < end
 * (lanes outside `inside` count 0), in blocks of 32 and 1024 terms (lavapipe reassociates float
 * math, so Kahan summation is optimised away), then sum the workgroup's lanes into red[j * wg].
 * Needs `var<workgroup> red: array<f32, wg * k>` and `lid`.
 */
export function blockedVec4Sums(js: number[], first: string, end: string, wg: number, inside: string, body: string): string {
  const each = (f: (j: number) => string, sep = ' ') => js.map(f).join(sep);
  return `${each((j) => `var acc${j} = vec4<f32>(0.0); var mid${j} = vec4<f32>(0.0); var sub${j} = vec4<f32>(0.0);`, '\n  ')}
  var cnt = 0u;
  for (var q = ${first}; q < ${end}; q += ${wg}u) {
    let inside = ${inside};
    ${body}
    ${each((j) => `sub${j} += select(vec4<f32>(0.0), t${j}, inside);`, '\n    ')}
    cnt++;
    if ((cnt & 31u) == 0u) {
      ${each((j) => `mid${j} += sub${j}; sub${j} = vec4<f32>(0.0);`)}
      if ((cnt & 1023u) == 0u) { ${each((j) => `acc${j} += mid${j}; mid${j} = vec4<f32>(0.0);`)} }
    }
  }
  ${each((j) => `{ let s = (acc${j} + mid${j}) + sub${j}; red[${j * wg}u + lid.x] = (s.x + s.y) + (s.z + s.w); }`, '\n  ')}
  ${workgroupTreeSum('red', wg, js.length)}`;
}

/**
 * How many parts each plane's reduction is split into, so that at least ~64 workgroups run
 * (lavapipe runs one workgroup per CPU thread) while each part keeps >= 256 quads.
 */
export function planeParts(g: PlaneGeom): { parts: number; chunk: number } {
  const parts = Math.max(1, Math.min(Math.ceil(64 / g.planes), Math.floor(g.q / 256)));
  return { parts, chunk: Math.ceil(g.q / parts) };
}

/**
 * WGSL of a plane reduction producing `k` sums per (plane, part): workgroup (part, plane), 64
 * threads striding over the part's quads. `prologue` runs once per thread (per-plane loads);
 * `body` defines vec4 terms t0..t{k-1} from quad q (lanes outside the plane are zeroed with
 * select, so NaN padding never leaks in). Sums are blocked (32 terms, 32 blocks, total) since
 * lavapipe reassociates Kahan compensation away. Writes out[(plane*parts + part)*k + j].
 * The uniforms need fields `hw, q, parts, chunk` (see {@link PLANE_REDUCE_FIELDS}); `decls`
 * declare the buffers and `out` (a plain array<f32>, read_write).
 */
export function planeReduceCode(
  k: number,
  uniforms: { readonly wgsl: string; readonly fields: Readonly<Record<keyof typeof PLANE_REDUCE_FIELDS, UniformScalar>> },
  decls: string,
  prologue: string,
  body: string,
): string {
  const js = Array.from({ length: k }, (_, j) => j);
  return `
${uniforms.wgsl}
${decls}
${LANES}
var<workgroup> red: array<f32, ${RWG * k}>;
@compute @workgroup_size(${RWG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let part = wid.x; let plane = wid.y;
  let base = plane * p.hw;
  let q0 = part * p.chunk; let q1 = min(q0 + p.chunk, p.q);
  ${prologue}
  ${blockedVec4Sums(js, 'q0 + lid.x', 'q1', RWG, 'lanes(q)', body)}
  if (lid.x == 0u) { ${js.map((j) => `out[(plane * p.parts + part) * ${k}u + ${j}u] = red[${j * RWG}u];`).join(' ')} }
}`;
}

export const SUM_PARTS_UNIFORMS = uniformStruct('sumParts', { n: 'u32', k: 'u32', parts: 'u32', scale: 'f32' });

/** WGSL: out[i] = scale * sum over parts of partial[(i / k * parts + j) * k + i % k], one
 *  invocation per output (launch over grid1d(n, 64)). */
export const SUM_PARTS = `
${SUM_PARTS_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${ENTRY_1D(64)} {
  ${linearIndex(64)}
  if (i >= p.n) { return; }
  let row = i / p.k; let j = i % p.k;
  var s = 0.0;
  for (var t = 0u; t < p.parts; t++) { s += partial[(row * p.parts + t) * p.k + j]; }
  out[i] = s * p.scale;
}`;
