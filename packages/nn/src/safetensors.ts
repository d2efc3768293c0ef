// The safetensors format, as bytes (no file system here, so this runs in a browser too):
//   8 bytes: N, the header length, unsigned 64-bit little-endian;
//   N bytes: a UTF-8 JSON object {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}},
//            padded with spaces to a multiple of 8;
//   the data: each tensor's raw little-endian values at [begin, end) relative to the end of the header.
// The writer sorts names (and so the data) for byte-identical output; the reader checks every
// field and offset and reports what is wrong instead of crashing. Only F32 is supported.

export interface HostTensor {
  shape: number[];
  data: Float32Array;
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

/** Serialise tensors (float32) and string metadata. Names are sorted; the data follows in that order. */
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
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new SafetensorsError('"__metadata__" cannot be a tensor name');
    if (!(t.data instanceof Float32Array)) throw new SafetensorsError(`tensor "${name}": data must be a Float32Array`);
    const n = elementCount(t.shape);
    if (t.shape.some((d) => !Number.isInteger(d) || d < 0) || n !== t.data.length) {
      throw new SafetensorsError(`tensor "${name}": shape [${t.shape}] does not match its ${t.data.length} values`);
    }
    header[name] = { dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + n * 4] };
    offset += n * 4;
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
  for (const [, t] of entries) {
    if (LITTLE_ENDIAN) out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    else for (let i = 0; i < t.data.length; i++) view.setFloat32(at + i * 4, t.data[i], true);
    at += t.data.byteLength;
  }
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
    if (dtype !== 'F32') {
      problems.push(`tensor "${name}": dtype ${JSON.stringify(dtype)} is not supported (only "F32")`);
      continue;
    }
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      problems.push(`tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
      continue;
    }
    if (!Array.isArray(offs) || offs.length !== 2 || offs.some((d) => !Number.isSafeInteger(d) || d < 0) || offs[0] > offs[1]) {
      problems.push(`tensor "${name}": data_offsets ${JSON.stringify(offs)} is not [begin, end] with 0 <= begin <= end`);
      continue;
    }
    const [begin, end] = offs as [number, number];
    const want = elementCount(shape as number[]) * 4;
    if (end - begin !== want) {
      problems.push(`tensor "${name}": data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but F32 shape [${shape}] needs ${want}`);
      continue;
    }
    if (end > dataBytes) {
      problems.push(`tensor "${name}": data_offsets [${begin}, ${end}] run past the end of the data (${dataBytes} bytes): truncated`);
      continue;
    }
    spans.push([begin, end, name]);
    const raw = bytes.subarray(dataStart + begin, dataStart + end);
    let data: Float32Array;
    if (LITTLE_ENDIAN) {
      // An explicit copy: Node's Buffer.slice() is a view, whose .buffer is the whole pool.
      const copy = new Uint8Array(raw.byteLength);
      copy.set(raw);
      data = new Float32Array(copy.buffer);
    } else {
      data = new Float32Array(want / 4);
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      for (let i = 0; i < data.length; i++) data[i] = dv.getFloat32(i * 4, true);
    }
    tensors.set(name, { shape: [...(shape as number[])], data });
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
