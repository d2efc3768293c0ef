import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng, runtime, scope, tensor, type Tensor } from '@aunet/tensor';
import { setupGPU } from '@aunet/tensor/testing';
import {
  ChannelAttention, Conv2d, DeepSupervisionHead, DualAttention, InstanceNorm2d, Module, Parameter, ReLU, ResDilBlock, Sequential,
  fans, glorotUniform, kaimingNormal, kaimingUniform, manualSeed, onesInit, zerosInit,
} from '../src/index';

test.before(setupGPU);

class Block extends Module {
  conv = new Conv2d(2, 3, 3, { padding: 1, rng: new Rng(1) });
  norm = new InstanceNorm2d(3, { affine: true });
  forward(x: Tensor): Tensor {
    return this.norm.forward(this.conv.forward(x));
  }
}

class Net extends Module {
  scale = new Parameter({ data: [1], shape: [1] });
  enc = [new Block(), new Block()];
  head = new Sequential(new ReLU(), new Conv2d(3, 1, 1, { rng: new Rng(2) }));
  shared: Block;
  _private = new Conv2d(1, 1, 1); // not walked: leading underscore
  constructor() {
    super();
    this.shared = this.enc[0]; // reachable twice: listed once, under its first name
  }
  forward(x: Tensor): Tensor {
    return x;
  }
}

test('namedParameters: dotted names in creation order, own parameters first, no duplicates', () => {
  const net = new Net();
  const names = net.namedParameters().map(([n]) => n);
  assert.equal(names, [
    'scale',
    'enc.0.conv.weight', 'enc.0.conv.bias', 'enc.0.norm.weight', 'enc.0.norm.bias',
    'enc.1.conv.weight', 'enc.1.conv.bias', 'enc.1.norm.weight', 'enc.1.norm.bias',
    'head.1.weight', 'head.1.bias',
  ]);
  assert.is(net.parameters().length, names.length);
  assert.is(net.numParameters(), 1 + 2 * (3 * 2 * 9 + 3 + 3 + 3) + 3 + 1);
  assert.is(net.getParameter('enc.1.conv.weight'), net.enc[1].conv.weight);
  assert.equal(net.enc[0].conv.weight.shape, [3, 2, 3, 3]);
  assert.ok(net.summary().includes('total'));
  net.dispose();
  (net as unknown as { _private: Conv2d })._private.dispose();
});

test('names of the library blocks', () => {
  const rd = new ResDilBlock(4);
  assert.equal(rd.namedParameters().map(([n, p]) => `${n}[${p.shape}]`), [
    'conv1.weight[4,4,3,3]', 'norm1.weight[4]', 'norm1.bias[4]', 'conv2.weight[4,4,3,3]', 'norm2.weight[4]', 'norm2.bias[4]',
  ]);
  assert.is(rd.conv1.dilation, 2);
  assert.is(rd.conv1.padding, 2);
  assert.is(rd.conv2.dilation, 4);
  assert.is(rd.conv2.padding, 4);
  const att = new DualAttention(6);
  assert.equal(att.namedParameters().map(([n, p]) => `${n}[${p.shape}]`), [
    'channel.w1[3,6]', 'channel.b1[3]', 'channel.w2[6,3]', 'channel.b2[6]', 'spatial.w[6]', 'spatial.b[1]',
  ]);
  const head = new DeepSupervisionHead([8, 16, 32], 2);
  assert.equal(head.namedParameters().map(([n, p]) => `${n}[${p.shape}]`), [
    'convs.0.weight[2,8,1,1]', 'convs.0.bias[2]', 'convs.1.weight[2,16,1,1]', 'convs.1.bias[2]', 'convs.2.weight[2,32,1,1]', 'convs.2.bias[2]',
  ]);
  const seq = new Sequential(new Conv2d(1, 2, 3), new ReLU(), new Sequential(new Conv2d(2, 2, 1, { bias: false })));
  assert.equal(seq.namedParameters().map(([n]) => n), ['0.weight', '0.bias', '2.0.weight']);
  assert.is(new InstanceNorm2d(3).parameters().length, 0, 'InstanceNorm2d is not affine by default');
  assert.is(new ChannelAttention(8, { reduction: 4 }).w1.shape[0], 2);
  for (const m of [rd, att, head, seq]) m.dispose();
});

test('train() and eval() switch the whole tree', () => {
  const net = new Net();
  assert.ok(net.training && net.enc[1].norm.training);
  net.eval();
  assert.ok(net.namedModules().every(([, m]) => !m.training));
  assert.is(net.namedModules().length, 1 + 2 * 3 + 3 + 0); // root, 2 blocks with 2 children, head with 2 children
  net.train();
  assert.ok(net.namedModules().every(([, m]) => m.training));
  net.dispose();
});

test('parameters live outside scopes; dispose() frees their memory; zeroGrad() frees gradients', async () => {
  await runtime().sync();
  const before = runtime().memory().bytesInUse;
  let conv!: Conv2d;
  await scope(async () => {
    conv = new Conv2d(4, 8, 3);
  });
  assert.not.ok(conv.weight.disposed, 'a parameter made inside a scope survives it');
  assert.ok(conv.weight.value.requiresGrad);
  assert.ok(runtime().memory().bytesInUse > before);
  conv.weight.value.grad = tensor(new Float32Array(conv.weight.size), conv.weight.shape);
  conv.zeroGrad();
  assert.is(conv.weight.grad, null);
  conv.dispose();
  assert.ok(conv.weight.disposed);
  assert.is(runtime().memory().bytesInUse, before);
});

test('assign() keeps the identity of the parameter and of its tensor', async () => {
  const p = new Parameter({ data: [1, 2, 3, 4], shape: [2, 2] });
  const t = p.value;
  p.assign([5, 6, 7, 8]);
  assert.is(p.value, t);
  assert.equal(await p.value.array(), [5, 6, 7, 8]);
  const src = tensor([9, 10, 11, 12], [2, 2]);
  p.assign(src);
  assert.equal(await p.value.array(), [9, 10, 11, 12]);
  assert.throws(() => p.assign([1, 2, 3]), /3 values for shape \[2,2\]/);
  assert.throws(() => p.assign(tensor([1, 2, 3, 4], [4])), /shape \[4\] does not match \[2,2\]/);
  src.dispose();
  p.dispose();
});

test('initialisers: same seed, same network; statistics as specified', async () => {
  const build = () => new Sequential(new Conv2d(3, 16, 3, { rng: new Rng(42) }), new Conv2d(16, 4, 1, { rng: new Rng(43) }));
  const a = build();
  const b = build();
  for (const [[na, pa], [, pb]] of a.namedParameters().map((e, i) => [e, b.namedParameters()[i]] as const)) {
    assert.equal(await pa.value.array(), await pb.value.array(), na);
  }
  manualSeed(7);
  const c1 = new Conv2d(3, 4, 3);
  manualSeed(7);
  const c2 = new Conv2d(3, 4, 3);
  assert.equal(await c1.weight.value.array(), await c2.weight.value.array());
  for (const m of [a, b, c1, c2]) m.dispose();

  assert.equal(fans([64, 32, 3, 3]), { fanIn: 288, fanOut: 576 });
  assert.equal(fans([10, 20]), { fanIn: 20, fanOut: 10 });
  const rng = new Rng(3);
  const shape = [64, 32, 3, 3];
  const n = 64 * 32 * 9;
  const std = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
  const kn = kaimingNormal()(shape, rng);
  assert.ok(Math.abs(std(kn) / Math.sqrt(2 / 288) - 1) < 0.03, `kaimingNormal std ${std(kn)}`);
  const ku = kaimingUniform()(shape, rng);
  const bound = Math.sqrt(6 / 288);
  assert.ok(ku.every((v) => Math.abs(v) <= bound) && Math.max(...ku.map(Math.abs)) > 0.99 * bound);
  assert.ok(Math.abs(std(ku) / Math.sqrt(2 / 288) - 1) < 0.03, `kaimingUniform std ${std(ku)}`);
  const gu = glorotUniform()(shape, rng);
  const gb = Math.sqrt(6 / (288 + 576));
  assert.ok(gu.every((v) => Math.abs(v) <= gb) && Math.max(...gu.map(Math.abs)) > 0.99 * gb);
  assert.equal(Array.from(zerosInit()([2, 3], rng)), [0, 0, 0, 0, 0, 0]);
  assert.equal(Array.from(onesInit()([3], rng)), [1, 1, 1]);
  assert.is(kn.length, n);
});

test('layer constructors reject bad arguments', () => {
  assert.throws(() => new Conv2d(1, 2, 2, { padding: 'same' }), /odd kernel/);
  assert.throws(() => new Conv2d(0, 2, 3), /inChannels must be a positive integer/);
  assert.throws(() => new DeepSupervisionHead([]), /at least one level/);
});

test.run();
