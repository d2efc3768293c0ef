import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, runtime, type Tensor } from '@aunet/tensor';
import { setupGPU, testRng } from '@aunet/tensor/testing';
import {
  Adam, CheckpointMismatchError, Conv2d, InstanceNorm2d, Module, SafetensorsError, checkpointBytes, decodeSafetensors, encodeSafetensors,
  loadCheckpoint, loadCheckpointBytes, saveCheckpoint,
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
    ['wrong dtype', withHeader('{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}', new Uint8Array(4)), /dtype "F16" is not supported/],
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

test.run();
