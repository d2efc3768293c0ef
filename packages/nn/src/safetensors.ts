// The safetensors format, as bytes (no file system here, so this runs in a browser too):
//   8 bytes: N, the header length, unsigned 64-bit little-endian;
//   N bytes: a UTF-8 JSON object {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}},
//            padded with spaces to a multiple of 8;
//   the data: each tensor's raw little-endian values at [begin, end) relative to the end of the header.
// The writer sorts names (and so the data) for byte-identical output; the reader checks every
// field and offset and reports what is wrong instead of crashing. Values are float32 in memory;
// in the file a tensor may be F32, F16 (IEEE binary16) or BF16 (bfloat16: float32's top 16 bits),
// converted on reading (exactly: every F16 and BF16 value is a float32) and on writing (rounded
// to nearest, ties to even).

/** The dtypes a tensor can be stored as. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';
const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };
/** Largest finite F16 value. */
export const F16_MAX = 65504;

export interface HostTensor {
  shape: number[];
  data: Float32Array;
  /** How the values are stored in the file: the writer rounds to it (absent: F32); the reader says what the file held. */
  dtype?: SafetensorsDtype;
}

export interface SafetensorsContents {
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** Largest header accepted (the reference implementation's limit is 100 MB). */
const MAX_HEADER = 100_000_000;

function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// ---- F16 and BF16 <-> float32, on bit patterns ---------------------------------------------------

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** The F16 bits nearest to the float32 with bits `f` (ties to even; beyond F16's range: +-Inf; NaN stays a quiet NaN with its sign and top payload bits). */
function f16FromFloat32Bits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  const mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15; // the F16 biased exponent, if the value were a normal F16
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // F16 subnormal (units of 2^-24) or zero. The float32 value is M * 2^(exp-150) with M its
    // 24-bit significand, i.e. M / 2^s units with s = 14 - e. Float32 subnormals (exp 0) land far below.
    const s = 14 - e;
    if (s > 24) return sign; // under half the smallest F16 subnormal (M < 2^24 <= 2^(s-1))
    const m = mant | 0x800000;
    let q = m >>> s;
    const r = m & ((1 << s) - 1);
    const half = 1 << (s - 1);
    if (r > half || (r === half && q & 1)) q++; // a carry into 0x400 is the smallest normal: right
    return sign | q;
  }
  let q = (e << 10) | (mant >>> 13);
  const r = mant & 0x1fff;
  if (r > 0x1000 || (r === 0x1000 && q & 1)) q++; // a carry may reach 0x7c00, Inf: the overflow it is
  return sign | q;
}

/** The float32 bits of the F16 with bits `h` (exact; NaN payloads kept). */
function float32BitsFromF16(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal: mant * 2^-24, normalised for float32.
  let m = mant;
  let e = -14;
  while (!(m & 0x400)) {
    m <<= 1;
    e--;
  }
  return (sign | ((e + 127) << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

/** The BF16 bits nearest to the float32 with bits `f` (ties to even; NaN stays a quiet NaN with its sign and top payload bits). */
function bf16FromFloat32Bits(f: number): number {
  if ((f & 0x7f800000) === 0x7f800000 && f & 0x7fffff) return (f >>> 16) | 0x40;
  // Adding 0x7fff plus the kept part's lowest bit rounds to nearest, ties to even; a carry out of
  // the largest finite values gives Inf. (f + 0x8000 < 2^32: no overflow in a JS number.)
  return ((f >>> 0) + 0x7fff + ((f >>> 16) & 1)) >>> 16;
}

/** The F16 bits nearest to float32 `x` (a number not exactly a float32 is first rounded to one). */
export function float32ToF16Bits(x: number): number {
  scratch[0] = x;
  return f16FromFloat32Bits(scratchBits[0]);
}

/** The value of the F16 with bits `h`, exactly. */
export function f16BitsToFloat32(h: number): number {
  scratchBits[0] = float32BitsFromF16(h & 0xffff);
  return scratch[0];
}

/** The BF16 bits nearest to float32 `x` (a number not exactly a float32 is first rounded to one). */
export function float32ToBF16Bits(x: number): number {
  scratch[0] = x;
  return bf16FromFloat32Bits(scratchBits[0]);
}

/** The value of the BF16 with bits `h`, exactly. */
export function bf16BitsToFloat32(h: number): number {
  scratchBits[0] = (h & 0xffff) << 16;
  return scratch[0];
}

/**
 * `data` as 16-bit patterns of `dtype`. A finite value that would become infinite is refused
 * with the count and the largest magnitude: weights silently turned into Inf give NaN outputs
 * far from the cause, and BF16 (float32's range) or F32 stores them. Inf and NaN are kept as
 * they are; values below the smallest subnormal become (signed) zero, as rounding says.
 */
function toHalfBits(data: Float32Array, dtype: 'F16' | 'BF16', name: string): Uint16Array {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const out = new Uint16Array(data.length);
  const convert = dtype === 'F16' ? f16FromFloat32Bits : bf16FromFloat32Bits;
  const infinity = dtype === 'F16' ? 0x7c00 : 0x7f80;
  let overflows = 0;
  let largest = 0;
  for (let i = 0; i < bits.length; i++) {
    const h = convert(bits[i]);
    out[i] = h;
    if ((h & 0x7fff) === infinity && Number.isFinite(data[i])) {
      overflows++;
      largest = Math.max(largest, Math.abs(data[i]));
    }
  }
  if (overflows) {
    const max = dtype === 'F16' ? `${F16_MAX}` : bf16BitsToFloat32(0x7f7f).toPrecision(6);
    throw new SafetensorsError(
      `tensor "${name}": ${overflows} value${overflows > 1 ? 's' : ''} beyond ${dtype}'s range (largest magnitude ${largest.toPrecision(6)}, ${dtype}'s largest ${max}) would become infinite; store it as ${dtype === 'F16' ? 'BF16 or ' : ''}F32`,
    );
  }
  return out;
}

/** Float32 values of 16-bit patterns of `dtype`, exactly. */
function fromHalfBits(halves: Uint16Array, dtype: 'F16' | 'BF16'): Float32Array {
  const out = new Float32Array(halves.length);
  const bits = new Uint32Array(out.buffer);
  if (dtype === 'BF16') for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
  else for (let i = 0; i < halves.length; i++) bits[i] = float32BitsFromF16(halves[i]);
  return out;
}

/**
 * Serialise tensors and string metadata. Each tensor is written in its `dtype` (F32 when absent;
 * F16 and BF16 rounded to nearest, ties to even; a finite value beyond the dtype's range is a
 * SafetensorsError). Names are sorted; the data follows in that order.
 */
export function encodeSafetensors(tensors: Map<string, HostTensor> | Record<string, HostTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  const metaKeys = Object.keys(metadata).sort();
  if (metaKeys.length) {
    const m: Record<string, string> = {};
    for (const k of metaKeys) {
      if (typeof metadata[k] !== 'string') throw new SafetensorsError(`metadata "${k}" must be a string, got ${typeof metadata[k]}`);
      m[k] = metadata[k];
    }
    header.__metadata__ = m;
  }
  let offset = 0;
  // Each tensor's bytes, little-endian, as they go into the file.
  const payloads: Uint8Array[] = [];
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new SafetensorsError('"__metadata__" cannot be a tensor name');
    if (!(t.data instanceof Float32Array)) throw new SafetensorsError(`tensor "${name}": data must be a Float32Array`);
    const dtype = t.dtype ?? 'F32';
    if (!Object.hasOwn(DTYPE_BYTES, dtype)) throw new SafetensorsError(`tensor "${name}": dtype ${JSON.stringify(dtype)} cannot be written (only ${Object.keys(DTYPE_BYTES).join(', ')})`);
    const n = elementCount(t.shape);
    if (t.shape.some((d) => !Number.isInteger(d) || d < 0) || n !== t.data.length) {
      throw new SafetensorsError(`tensor "${name}": shape [${t.shape}] does not match its ${t.data.length} values`);
    }
    const size = n * DTYPE_BYTES[dtype];
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + size] };
    offset += size;
    payloads.push(dtype === 'F32' ? littleEndianBytes(t.data) : littleEndianBytes(toHalfBits(t.data, dtype, name)));
  }
  let json = JSON.stringify(header);
  let jsonBytes = new TextEncoder().encode(json);
  const padded = Math.ceil(jsonBytes.length / 8) * 8;
  if (padded !== jsonBytes.length) {
    json += ' '.repeat(padded - jsonBytes.length);
    jsonBytes = new TextEncoder().encode(json);
  }
  const out = new Uint8Array(8 + jsonBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(jsonBytes.length), true);
  out.set(jsonBytes, 8);
  let at = 8 + jsonBytes.length;
  for (const p of payloads) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** The bytes of `values`, little-endian (a view of them on a little-endian machine). */
function littleEndianBytes(values: Float32Array | Uint16Array): Uint8Array {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (LITTLE_ENDIAN) return bytes;
  const out = new Uint8Array(values.byteLength);
  const view = new DataView(out.buffer);
  if (values instanceof Float32Array) values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  else values.forEach((v, i) => view.setUint16(i * 2, v, true));
  return out;
}

/** Parse and validate a safetensors file. Throws a SafetensorsError saying what is wrong. */
export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors data'): SafetensorsContents {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${source}: ${msg}`);
  };
  if (bytes.byteLength < 8) fail(`only ${bytes.byteLength} bytes: too short to hold the 8-byte header length (truncated or not a safetensors file)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER)) fail(`header length ${n64} is implausible (over ${MAX_HEADER} bytes): not a safetensors file, or corrupt`);
  const n = Number(n64);
  if (8 + n > bytes.byteLength) fail(`header length ${n} runs past the end of the data (${bytes.byteLength} bytes): truncated or corrupt`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    fail(`the header is not valid UTF-8 JSON (${(e as Error).message}): corrupt`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('the header is not a JSON object');
  const dataStart = 8 + n;
  const dataBytes = bytes.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, HostTensor>();
  const spans: [number, number, string][] = [];
  const problems: string[] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
        problems.push('"__metadata__" is not an object');
        continue;
      }
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') problems.push(`metadata "${k}" is not a string`);
        else metadata[k] = v;
      }
      continue;
    }
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      problems.push(`tensor "${name}": entry is not an object`);
      continue;
    }
    const { dtype, shape, data_offsets: offs } = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
      problems.push(`tensor "${name}": dtype ${JSON.stringify(dtype)} is not supported (only ${Object.keys(DTYPE_BYTES).map((d) => `"${d}"`).join(', ')})`);
      continue;
    }
    const stored = dtype as SafetensorsDtype;
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      problems.push(`tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
      continue;
    }
    if (!Array.isArray(offs) || offs.length !== 2 || offs.some((d) => !Number.isSafeInteger(d) || d < 0) || offs[0] > offs[1]) {
      problems.push(`tensor "${name}": data_offsets ${JSON.stringify(offs)} is not [begin, end] with 0 <= begin <= end`);
      continue;
    }
    const [begin, end] = offs as [number, number];
    const count = elementCount(shape as number[]);
    const want = count * DTYPE_BYTES[stored];
    if (end - begin !== want) {
      problems.push(`tensor "${name}": data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${stored} shape [${shape}] needs ${want}`);
      continue;
    }
    if (end > dataBytes) {
      problems.push(`tensor "${name}": data_offsets [${begin}, ${end}] run past the end of the data (${dataBytes} bytes): truncated`);
      continue;
    }
    spans.push([begin, end, name]);
    const raw = bytes.subarray(dataStart + begin, dataStart + end);
    let values: Float32Array | Uint16Array;
    if (LITTLE_ENDIAN) {
      // An explicit copy: Node's Buffer.slice() is a view, whose .buffer is the whole pool (and
      // the copy is aligned, which the tensor's place in the file need not be).
      const copy = new Uint8Array(raw.byteLength);
      copy.set(raw);
      values = stored === 'F32' ? new Float32Array(copy.buffer) : new Uint16Array(copy.buffer);
    } else {
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      values = stored === 'F32' ? Float32Array.from({ length: count }, (_, i) => dv.getFloat32(i * 4, true)) : Uint16Array.from({ length: count }, (_, i) => dv.getUint16(i * 2, true));
    }
    const data = values instanceof Float32Array ? values : fromHalfBits(values, stored as 'F16' | 'BF16');
    tensors.set(name, { shape: [...(shape as number[])], data, dtype: stored });
  }
  // Tensors must not overlap (empty tensors are exempt).
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let prev: [number, number, string] | null = null;
  for (const s of spans) {
    if (s[0] === s[1]) continue;
    if (prev && s[0] < prev[1]) problems.push(`tensors "${prev[2]}" [${prev[0]}, ${prev[1]}] and "${s[2]}" [${s[0]}, ${s[1]}] overlap`);
    prev = s;
  }
  if (problems.length) fail(`${problems.length} problem${problems.length > 1 ? 's' : ''} in the header:\n  ${problems.join('\n  ')}`);
  return { tensors, metadata };
}
