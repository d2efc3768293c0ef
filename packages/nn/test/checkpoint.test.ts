import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, runtime, type Tensor } from '@aunet/tensor';
import { setupGPU, testRng } from '@aunet/tensor/testing';
import {
  Adam, CheckpointMismatchError, Conv2d, F16_MAX, InstanceNorm2d, Module, SafetensorsError, bf16BitsToFloat32, checkpointBytes, decodeSafetensors,
  encodeSafetensors, f16BitsToFloat32, float32ToBF16Bits, float32ToF16Bits, loadCheckpoint, loadCheckpointBytes, saveCheckpoint,
} from '../src/index';

test.before(setupGPU);

class Tiny extends Module {
  conv: Conv2d;
  norm = new InstanceNorm2d(3, { affine: true });
  out: Conv2d;
  constructor(seed: number, outChannels = 1) {
    super();
    this.conv = new Conv2d(2, 3, 3, { padding: 1, rng: new Rng(seed) });
    this.out = new Conv2d(3, outChannels, 1, { rng: new Rng(seed + 1) });
  }
  forward(x: Tensor): Tensor {
    return x;
  }
}

/** Random moments and a step count, as if the optimiser had run. */
function fakeOptimState(opt: Adam, rng: Rng, step: number): void {
  for (const p of opt.params) {
    const s = opt.stateOf(p);
    for (const t of [s.m, s.v]) runtime().write(t.buffer, Float32Array.from({ length: t.size }, () => rng.range(0, 1)));
  }
  opt.stepCount = step;
}

const tmp = mkdtempSync(join(tmpdir(), 'aunet-nn-ckpt-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('encode/decode: sorted names, 8-byte aligned header, values and metadata round trip', () => {
  const a = { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-30, -7]) };
  const b = { shape: [1], data: Float32Array.from([42]) };
  const e = { shape: [0, 4], data: new Float32Array(0) };
  const bytes = encodeSafetensors({ zeta: a, alpha: b, empty: e }, { note: 'hi', epoch: '3' });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.is(n % 8, 0);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  assert.equal(Object.keys(header), ['__metadata__', 'alpha', 'empty', 'zeta']);
  assert.equal(header.alpha, { dtype: 'F32', shape: [1], data_offsets: [0, 4] });
  assert.equal(header.zeta.data_offsets, [4, 28]);
  assert.is(bytes.byteLength, 8 + n + 28);
  const d = decodeSafetensors(bytes);
  assert.equal(d.metadata, { epoch: '3', note: 'hi' });
  assert.equal(Array.from(d.tensors.get('zeta')!.data), Array.from(a.data));
  assert.equal(d.tensors.get('zeta')!.shape, [2, 3]);
  assert.equal(d.tensors.get('empty')!.shape, [0, 4]);
  // Deterministic: insertion order does not matter.
  assert.equal(encodeSafetensors({ alpha: b, empty: e, zeta: a }, { epoch: '3', note: 'hi' }), bytes);
});

test('decode from a Node Buffer that is a view into a larger pool (readFileSync of a small file)', () => {
  const bytes = encodeSafetensors({ w: { shape: [3], data: Float32Array.from([1, 2, 3]) } });
  // Buffer.slice() does not copy: a decoder that copies with it gets the whole pool.
  const pool = Buffer.alloc(bytes.byteLength + 4096);
  pool.set(bytes, 100);
  const view = pool.subarray(100, 100 + bytes.byteLength);
  const w = decodeSafetensors(view).tensors.get('w')!;
  assert.equal(Array.from(w.data), [1, 2, 3]);
  assert.is(w.data.buffer.byteLength, 12, 'a copy of the tensor alone');
});

/** A safetensors file written by hand from the format's description, not by encodeSafetensors. */
function handWritten(entries: { name: string; shape: number[]; values: number[] }[], metadata: Record<string, string>): Uint8Array {
  // Data in reverse name order and the header keys unsorted, unpadded, with spaces: all legal.
  let offset = 0;
  const parts: string[] = [];
  const chunks: number[][] = [];
  for (const e of [...entries].reverse()) {
    const begin = offset;
    offset += e.values.length * 4;
    parts.push(`"${e.name}": {"shape": [${e.shape.join(', ')}], "dtype": "F32", "data_offsets": [${begin}, ${offset}]}`);
    chunks.push(e.values);
  }
  parts.push(`"__metadata__": {${Object.entries(metadata).map(([k, v]) => `"${k}": "${v}"`).join(', ')}}`);
  const json = `{${parts.join(', ')}}`;
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeUInt32LE(headerBytes.length, 0); // the high 32 bits of the u64 stay zero
  out.writeUInt32LE(0, 4);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const c of chunks) for (const v of c) {
    out.writeFloatLE(v, at);
    at += 4;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

test('loads a file built byte by byte from the specification', async () => {
  const m = new Tiny(1);
  const rng = testRng('handwritten');
  const entries = m.namedParameters().map(([name, p]) => ({ name, shape: [...p.shape], values: Array.from({ length: p.size }, () => Math.fround(rng.range(-1, 1))) }));
  const bytes = handWritten(entries, { source: 'by hand' });
  const meta = loadCheckpointBytes(bytes, m);
  assert.is(meta.source, 'by hand');
  for (const e of entries) assert.equal(await m.getParameter(e.name)!.value.array(), e.values, e.name);
  m.dispose();
});

test('save, load, save gives identical bytes (module and Adam state), through files too', async () => {
  const rng = testRng('roundtrip');
  const a = new Tiny(10);
  const optA = new Adam(a, { lr: 3e-4, betas: [0.8, 0.99], eps: 1e-7, weightDecay: 0.01 });
  fakeOptimState(optA, rng, 17);
  const first = await checkpointBytes(a, { optimizer: optA, metadata: { epoch: '4' } });
  const header = decodeSafetensors(first);
  assert.equal(header.metadata['optim.step'], '17');
  assert.ok(header.tensors.has('optim.m.conv.weight') && header.tensors.has('optim.v.out.bias'));

  const b = new Tiny(99);
  const optB = new Adam(b);
  const paramB = b.conv.weight;
  const tensorB = paramB.value;
  const meta = loadCheckpointBytes(first, b, { optimizer: optB });
  assert.is(meta.epoch, '4');
  assert.is(b.conv.weight, paramB, 'the Parameter keeps its identity');
  assert.is(paramB.value, tensorB, 'and so does its tensor');
  assert.is(optB.stepCount, 17);
  assert.is(optB.lr, 3e-4);
  assert.is(optB.beta1, 0.8);
  assert.is(optB.weightDecay, 0.01);
  assert.equal(await b.conv.weight.value.array(), await a.conv.weight.value.array());
  assert.equal(await optB.stateOf(b.out.bias!).v.array(), await optA.stateOf(a.out.bias!).v.array());
  const second = await checkpointBytes(b, { optimizer: optB, metadata: { epoch: '4' } });
  assert.ok(Buffer.from(first).equals(Buffer.from(second)), 'second save differs from the first');

  const f1 = join(tmp, 'a.safetensors');
  const f2 = join(tmp, 'b.safetensors');
  await saveCheckpoint(f1, a, { optimizer: optA });
  const c = new Tiny(5);
  const optC = new Adam(c);
  await loadCheckpoint(f1, c, { optimizer: optC });
  await saveCheckpoint(f2, c, { optimizer: optC });
  assert.ok(readFileSync(f1).equals(readFileSync(f2)));
  // A module-only load ignores the optimiser entries.
  const d = new Tiny(6);
  await loadCheckpoint(f1, d);
  assert.equal(await d.out.weight.value.array(), await a.out.weight.value.array());
  for (const x of [a, b, c, d]) x.dispose();
  for (const o of [optA, optB, optC]) o.dispose();
});

test('atomic writes: no temporary file is left; replacing works; a failed write leaves nothing behind', async () => {
  const m = new Tiny(2);
  const dir = join(tmp, 'atomic');
  mkdirSync(dir);
  const f = join(dir, 'model.safetensors');
  writeFileSync(f, 'old contents');
  await saveCheckpoint(f, m);
  assert.equal(readdirSync(dir), ['model.safetensors']);
  assert.ok(decodeSafetensors(new Uint8Array(readFileSync(f))).tensors.has('conv.weight'));
  // The target is a non-empty directory: the rename fails, the temporary file is removed.
  const blocker = join(dir, 'blocked');
  mkdirSync(blocker);
  writeFileSync(join(blocker, 'x'), 'x');
  let failed = false;
  try {
    await saveCheckpoint(blocker, m);
  } catch {
    failed = true;
  }
  assert.ok(failed);
  assert.equal(readdirSync(dir).sort(), ['blocked', 'model.safetensors']);
  // A missing directory fails cleanly.
  try {
    await saveCheckpoint(join(tmp, 'no', 'such', 'dir.safetensors'), m);
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /ENOENT/);
  }
  m.dispose();
});

test('a mismatched checkpoint fails listing every mismatch, and changes nothing', async () => {
  const src = new Tiny(1, 2); // out.weight [2,3,1,1], out.bias [2]
  const bytes = await checkpointBytes(src);
  const dst = new Tiny(3, 1);
  const before = await dst.conv.weight.value.array();
  try {
    loadCheckpointBytes(bytes, dst);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, CheckpointMismatchError);
    const msg = (e as Error).message;
    assert.match(msg, /2 mismatches/);
    assert.match(msg, /shape of "out.weight": file \[2,3,1,1\], module \[1,3,1,1\]/);
    assert.match(msg, /shape of "out.bias": file \[2\], module \[1\]/);
  }
  assert.equal(await dst.conv.weight.value.array(), before, 'nothing was written');
  // Missing and unexpected names; an optimiser asked for but absent.
  const extra = encodeSafetensors({ ...Object.fromEntries(decodeSafetensors(bytes).tensors), 'head.weight': { shape: [1], data: new Float32Array(1) } });
  class Other extends Module {
    conv = new Conv2d(2, 3, 3, { rng: new Rng(1) });
    forward(x: Tensor) {
      return x;
    }
  }
  const other = new Other();
  const opt = new Adam(other);
  try {
    loadCheckpointBytes(extra, other, { optimizer: opt });
    assert.unreachable();
  } catch (e) {
    const msg = (e as Error).message;
    for (const want of ['missing "optim.m.conv.weight"', 'missing "optim.v.conv.bias"', 'unexpected "head.weight"', 'unexpected "norm.weight"', 'unexpected "out.bias"', '"optim.step"']) {
      assert.ok(msg.includes(want), `"${want}" not in:\n${msg}`);
    }
  }
  for (const x of [src, dst, other]) x.dispose();
  opt.dispose();
});

test('truncated or corrupt files fail with a clear error', async () => {
  const m = new Tiny(4);
  const good = await checkpointBytes(m);
  const n = Number(new DataView(good.buffer).getBigUint64(0, true));
  const withHeader = (json: string, data = new Uint8Array(0)) => {
    const h = new TextEncoder().encode(json);
    const out = new Uint8Array(8 + h.length + data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    out.set(data, 8 + h.length);
    return out;
  };
  const cases: [string, Uint8Array, RegExp][] = [
    ['empty file', new Uint8Array(0), /too short to hold the 8-byte header length/],
    ['7 bytes', good.slice(0, 7), /too short/],
    ['huge header length', (() => { const b = good.slice(); new DataView(b.buffer).setBigUint64(0, 2n ** 60n, true); return b; })(), /implausible/],
    ['header past the end', good.slice(0, 8 + n - 5), /runs past the end/],
    ['bad JSON', (() => { const b = good.slice(); b[8] = 0x5b; b[9] = 0x2c; return b; })(), /not valid UTF-8 JSON/],
    ['JSON array', withHeader('[1,2]'), /not a JSON object/],
    ['data truncated', good.slice(0, good.byteLength - 4), /run past the end of the data.*truncated/s],
    ['wrong dtype', withHeader('{"w":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}', new Uint8Array(16)), /dtype "F64" is not supported/],
    ['F16 offsets disagree with shape', withHeader('{"w":{"dtype":"F16","shape":[3],"data_offsets":[0,12]}}', new Uint8Array(12)), /hold 12 bytes, but F16 shape \[3\] needs 6/],
    ['offsets disagree with shape', withHeader('{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', new Uint8Array(8)), /hold 8 bytes, but F32 shape \[3\] needs 12/],
    ['offsets reversed', withHeader('{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}', new Uint8Array(8)), /is not \[begin, end\]/],
    ['bad shape', withHeader('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', new Uint8Array(4)), /not a list of non-negative integers/],
    ['overlap', withHeader('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', new Uint8Array(12)), /overlap/],
    ['bad metadata', withHeader('{"__metadata__":{"a":1}}'), /metadata "a" is not a string/],
  ];
  for (const [what, bytes, re] of cases) {
    try {
      decodeSafetensors(bytes, 'f.safetensors');
      assert.unreachable(what);
    } catch (e) {
      assert.instance(e, SafetensorsError, what);
      assert.match((e as Error).message, re, what);
      assert.match((e as Error).message, /^f\.safetensors: /, what);
    }
  }
  // Through the loader: the file name is in the message, the module is untouched.
  const f = join(tmp, 'truncated.safetensors');
  writeFileSync(f, good.slice(0, good.byteLength - 10));
  try {
    await loadCheckpoint(f, m);
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /truncated\.safetensors.*truncated/s);
  }
  try {
    await loadCheckpoint(join(tmp, 'missing.safetensors'), m);
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /Cannot read checkpoint .*missing\.safetensors/);
  }
  m.dispose();
});

// ---- half precision (F16, BF16) -------------------------------------------------------------------

/** Element by element with Object.is: -0 is not 0, NaN is NaN. */
function assertSameValues(actual: ArrayLike<number>, expected: number[], what: string): void {
  assert.is(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) assert.ok(Object.is(actual[i], expected[i]), `${what}[${i}]: got ${actual[i]}, expected ${expected[i]}`);
}

test('F16 and BF16: a file laid out byte by byte from the specification decodes to the exact float32 values', () => {
  // Not in name order, and the F32 tensor starts at byte 46 of the data: unaligned, which is legal.
  const json = '{"h":{"dtype":"F16","shape":[13],"data_offsets":[20,46]},"bf":{"dtype":"BF16","shape":[2,5],"data_offsets":[0,20]},' +
    '"w":{"dtype":"F32","shape":[2],"data_offsets":[46,54]},"__metadata__":{"by":"hand"}}';
  const header = [...new TextEncoder().encode(json)];
  const n = header.length;
  const length = [n & 0xff, (n >> 8) & 0xff, 0, 0, 0, 0, 0, 0]; // u64 little-endian (n < 65536)
  // prettier-ignore
  const bf = [
    0x80, 0x3f, 0x00, 0xc0, 0x49, 0x40, 0x7f, 0x7f, 0x01, 0x00, // 0x3f80 1, 0xc000 -2, 0x4049 3.140625, 0x7f7f largest, 0x0001 smallest subnormal
    0x80, 0x00, 0x00, 0x80, 0x80, 0x7f, 0x80, 0xff, 0xc0, 0x7f, // 0x0080 2^-126, 0x8000 -0, 0x7f80 Inf, 0xff80 -Inf, 0x7fc0 NaN
  ];
  // prettier-ignore
  const h = [
    0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, // 0x3c00 1, 0xc000 -2, 0x7bff 65504 (largest)
    0x01, 0x00, 0xff, 0x03, 0x00, 0x04, // 0x0001 2^-24 (smallest subnormal), 0x03ff largest subnormal, 0x0400 2^-14 (smallest normal)
    0x00, 0x80, 0x00, 0x7c, 0x00, 0xfc, 0x00, 0x7e, // 0x8000 -0, 0x7c00 Inf, 0xfc00 -Inf, 0x7e00 NaN
    0x55, 0x35, 0x40, 0x56, 0x01, 0x80, // 0x3555 1365/4096, 0x5640 100, 0x8001 -2^-24
  ];
  const w = [0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x80, 0xbe]; // F32 0x3fc00000 1.5, 0xbe800000 -0.25
  const bytes = Uint8Array.from([...length, ...header, ...bf, ...h, ...w]);

  const d = decodeSafetensors(bytes, 'by-hand.safetensors');
  assert.equal(d.metadata, { by: 'hand' });
  const hT = d.tensors.get('h')!;
  const bfT = d.tensors.get('bf')!;
  const wT = d.tensors.get('w')!;
  assert.equal([hT.dtype, bfT.dtype, wT.dtype], ['F16', 'BF16', 'F32']);
  assert.equal(bfT.shape, [2, 5]);
  assertSameValues(hT.data, [1, -2, 65504, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, -0, Infinity, -Infinity, NaN, 1365 / 4096, 100, -(2 ** -24)], 'F16');
  assertSameValues(bfT.data, [1, -2, 3.140625, (2 - 2 ** -7) * 2 ** 127, 2 ** -133, 2 ** -126, -0, Infinity, -Infinity, NaN], 'BF16');
  assertSameValues(wT.data, [1.5, -0.25], 'F32');

  // Written again, each tensor keeps its dtype and the same bits.
  const again = decodeSafetensors(encodeSafetensors(d.tensors, d.metadata));
  for (const name of ['h', 'bf', 'w']) {
    assert.is(again.tensors.get(name)!.dtype, d.tensors.get(name)!.dtype, name);
    assert.equal(new Uint32Array(again.tensors.get(name)!.data.buffer), new Uint32Array(d.tensors.get(name)!.data.buffer), name);
  }
  const reencoded = encodeSafetensors({ h: hT });
  const hn = Number(new DataView(reencoded.buffer).getBigUint64(0, true));
  assert.equal([...reencoded.subarray(8 + hn)], h, 'the F16 bytes written are the ones read');
});

/** The NumPy fixture (test/fixtures/make-f16.py): [float32 bits, F16 bits, BF16 bits, widened F16 bits], hex. */
const halfFixture = JSON.parse(readFileSync(new URL('./fixtures/half-precision.json', import.meta.url), 'utf8')) as {
  cases: [string, string, string, string][];
  allF16NonNanWidenedSha256: string;
  allF16NonNanCount: number;
};
const hex = (s: string) => parseInt(s, 16);
/** Float32 values with exactly these bits (through a Uint32Array: a JS number could lose a NaN's payload). */
const float32sOfBits = (bits: number[]) => new Float32Array(Uint32Array.from(bits).buffer);

/** The 16-bit values stored for the single tensor of an encoded file. */
function storedHalves(bytes: Uint8Array): number[] {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const data = bytes.subarray(8 + n);
  return Array.from({ length: data.length / 2 }, (_, i) => data[2 * i] | (data[2 * i + 1] << 8));
}

for (const [dtype, column] of [['F16', 1], ['BF16', 2]] as const) {
  test(`${dtype} encoding matches the NumPy fixture bit for bit (round to nearest even, subnormals, Inf, NaN); overflow is refused`, () => {
    const infinity = dtype === 'F16' ? 0x7c00 : 0x7f80;
    const all = halfFixture.cases.map((c) => ({ f32: hex(c[0]), half: hex(c[column]) }));
    const finite = (b: number) => (b & 0x7f800000) !== 0x7f800000;
    const overflowing = all.filter((c) => finite(c.f32) && (c.half & 0x7fff) === infinity);
    const kept = all.filter((c) => !overflowing.includes(c));
    assert.ok(overflowing.length >= 3 && kept.length > 800, `the fixture covers both (${overflowing.length} overflowing, ${kept.length} not)`);

    const data = float32sOfBits(kept.map((c) => c.f32));
    const stored = storedHalves(encodeSafetensors({ x: { shape: [data.length], data, dtype } }));
    const wrong = kept.filter((c, i) => stored[i] !== c.half).map((c) => `${c.f32.toString(16)} -> ${stored[kept.indexOf(c)].toString(16)}, NumPy ${c.half.toString(16)}`);
    assert.equal(wrong, [], `${wrong.length} of ${kept.length} differ`);

    // The single-value function too (NaN aside: a JS number need not keep a NaN's payload).
    const toBits = dtype === 'F16' ? float32ToF16Bits : float32ToBF16Bits;
    for (const c of all) if (!Number.isNaN(float32sOfBits([c.f32])[0])) assert.is(toBits(float32sOfBits([c.f32])[0]), c.half, c.f32.toString(16));

    // Each finite value that would become infinite is refused, naming the tensor and the largest.
    const big = float32sOfBits(overflowing.map((c) => c.f32));
    const largest = Math.max(...big.map(Math.abs));
    try {
      encodeSafetensors({ fine: { shape: [1], data: Float32Array.of(1), dtype }, big: { shape: [big.length], data: big, dtype } });
      assert.unreachable();
    } catch (e) {
      assert.instance(e, SafetensorsError);
      assert.match((e as Error).message, new RegExp(`tensor "big": ${overflowing.length} values beyond ${dtype}'s range \\(largest magnitude ${largest.toPrecision(6).replace('+', '\\+')}`));
    }
  });
}

test('F16 decoding matches NumPy: the fixture bit for bit, and every one of the 65536 F16 values', () => {
  const rows = halfFixture.cases;
  const halves = rows.map((c) => hex(c[1]));
  // A file holding the fixture's F16 values, built from the specification (not by the encoder).
  const file = encodeRawHalves(Uint16Array.from(halves));
  const widened = new Uint32Array(decodeSafetensors(file).tensors.get('v')!.data.buffer);
  const wrong = rows.filter((c, i) => widened[i] !== hex(c[3])).map((c) => c[1]);
  assert.equal(wrong, [], 'F16 values widened unlike NumPy');

  // Every non-NaN F16, in order, widened to float32: the same bytes as NumPy's (compared by hash).
  const every = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const all = decodeSafetensors(encodeRawHalves(every)).tensors.get('v')!.data;
  const notNan = all.filter((x) => !Number.isNaN(x));
  assert.is(notNan.length, halfFixture.allF16NonNanCount);
  assert.is(createHash('sha256').update(new Uint8Array(notNan.buffer)).digest('hex'), halfFixture.allF16NonNanWidenedSha256);
  // The NaN patterns (exponent all ones, mantissa not zero) decode to NaN.
  for (let h = 0; h < 65536; h++) if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) assert.ok(Number.isNaN(all[h]), h.toString(16));
  // And every non-NaN F16 value encodes back to its own bits.
  for (let h = 0; h < 65536; h++) if (!Number.isNaN(all[h])) assert.is(float32ToF16Bits(all[h]), h, h.toString(16));
});

/** A file with one F16 tensor "v" holding these bits. */
function encodeRawHalves(halves: Uint16Array): Uint8Array {
  const header = new TextEncoder().encode(`{"v":{"dtype":"F16","shape":[${halves.length}],"data_offsets":[0,${2 * halves.length}]}}`);
  const out = new Uint8Array(8 + header.length + 2 * halves.length);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  halves.forEach((h, i) => view.setUint16(8 + header.length + 2 * i, h, true));
  return out;
}

/** The size of a file's data (what follows the header). */
const dataBytes = (bytes: Uint8Array) => bytes.byteLength - 8 - Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));

test('round trips F32 -> F16 / BF16 -> F32 stay within half a unit in the last place; the stored values are stable', () => {
  const rng = testRng('half round trip');
  // Magnitudes over each format's normal and subnormal range, both signs.
  const draw = (lo: number, hi: number) => Float32Array.from({ length: 4000 }, () => (rng.uniform() < 0.5 ? -1 : 1) * 2 ** rng.range(lo, hi));
  const cases = [
    // F16: relative error at most 2^-11 (its unit roundoff) for normals; absolute at most 2^-25 (half the smallest subnormal) below 2^-14.
    { dtype: 'F16' as const, data: draw(-26, 15.99), bound: (x: number) => (Math.abs(x) >= 2 ** -14 ? 2 ** -11 * Math.abs(x) : 2 ** -25) },
    // BF16: relative error at most 2^-8 over float32's normal range.
    { dtype: 'BF16' as const, data: draw(-125, 127), bound: (x: number) => 2 ** -8 * Math.abs(x) },
  ];
  for (const { dtype, data, bound } of cases) {
    const first = encodeSafetensors({ x: { shape: [data.length], data, dtype } });
    const back = decodeSafetensors(first).tensors.get('x')!;
    let worst = 0;
    let changed = 0;
    for (let i = 0; i < data.length; i++) {
      const err = Math.abs(back.data[i] - data[i]);
      assert.ok(err <= bound(data[i]), `${dtype}: ${data[i]} came back as ${back.data[i]}`);
      worst = Math.max(worst, err / bound(data[i]));
      if (err > 0) changed++;
    }
    assert.ok(changed > data.length / 2 && worst > 0.9, `${dtype}: the rounding is real (${changed} changed, worst ${worst} of the bound)`);
    assert.ok(Buffer.from(encodeSafetensors({ x: back })).equals(Buffer.from(first)), `${dtype}: stored values are written back unchanged`);
    assert.is(dataBytes(first), 2 * data.length, `${dtype}: two bytes a value`);
  }
  // F16's range: its largest value and what rounds to it are kept; Inf and NaN are values, not overflow.
  const edge = decodeSafetensors(encodeSafetensors({ x: { shape: [5], data: Float32Array.of(F16_MAX, 65519, -65519, Infinity, NaN), dtype: 'F16' } })).tensors.get('x')!;
  assertSameValues(edge.data, [65504, 65504, -65504, Infinity, NaN], 'F16 edge');
  assert.is(f16BitsToFloat32(float32ToF16Bits(1 / 3)), 1365 / 4096);
  assert.is(bf16BitsToFloat32(float32ToBF16Bits(Math.PI)), 3.140625);
});

test('a checkpoint saved in F16 or BF16 loads into float32 parameters holding the rounded weights; optimiser state is refused', async () => {
  const src = new Tiny(21);
  const f32 = await checkpointBytes(src);
  const original = new Map<string, number[]>();
  for (const [name, p] of src.namedParameters()) original.set(name, Array.from((await p.value.data()) as Float32Array));
  const count = src.numParameters();
  for (const [dtype, toBits, fromBits, unitRoundoff] of [
    ['F16', float32ToF16Bits, f16BitsToFloat32, 2 ** -11],
    ['BF16', float32ToBF16Bits, bf16BitsToFloat32, 2 ** -8],
  ] as const) {
    const half = await checkpointBytes(src, { dtype, metadata: { epoch: '2' } });
    const file = decodeSafetensors(half);
    assert.equal(new Set([...file.tensors.values()].map((t) => t.dtype)), new Set([dtype]));
    assert.is(dataBytes(f32) - dataBytes(half), 2 * count, `${dtype}: two bytes less per parameter`);
    const dst = new Tiny(22);
    const meta = loadCheckpointBytes(half, dst);
    assert.is(meta.epoch, '2');
    assert.is(meta.format, 'aunet-nn/1');
    for (const [name, p] of dst.namedParameters()) {
      const loaded = (await p.value.data()) as Float32Array;
      const want = original.get(name)!;
      assert.equal(Array.from(loaded), want.map((x) => fromBits(toBits(x))), `${dtype} ${name}: the rounded weights`);
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs(loaded[i] - want[i]) <= unitRoundoff * Math.abs(want[i]), `${dtype} ${name}[${i}]`);
    }
    dst.dispose();
  }
  // Through a file.
  const f = join(tmp, 'half.safetensors');
  await saveCheckpoint(f, src, { dtype: 'F16' });
  const fromFile = new Tiny(23);
  await loadCheckpoint(f, fromFile);
  const w = Array.from((await fromFile.conv.weight.value.data()) as Float32Array);
  assert.equal(w, original.get('conv.weight')!.map((x) => f16BitsToFloat32(float32ToF16Bits(x))));
  // Optimiser state is for an exact resume: not with rounded weights.
  const opt = new Adam(src);
  for (const dtype of ['F16', 'BF16'] as const) {
    try {
      await checkpointBytes(src, { optimizer: opt, dtype });
      assert.unreachable();
    } catch (e) {
      assert.match((e as Error).message, new RegExp(`optimiser state must keep its weights in F32 \\(asked for ${dtype}\\)`));
    }
  }
  assert.ok(decodeSafetensors(await checkpointBytes(src, { optimizer: opt, dtype: 'F32' })).tensors.has('optim.v.conv.weight'));
  opt.dispose();
  src.dispose();
  fromFile.dispose();
});

test.run();
