// ONNX export: an AUNet (either architecture) as an ONNX model in ONNX's standard operators
// (opset 13), with its weights as initializers, serialised by `onnx-proto` (ONNX's onnx.proto
// compiled to protobufjs static code). Browser-safe: no Node imports; the page could offer the
// download. Writing to a file is `onnx-file.ts` (Node).
//
// Each layer maps to operators that compute exactly what our kernels compute (the float64
// reference in @aunet/tensor/reference spells them out):
// - Conv2d: Conv with the same pads, strides and dilations; weights [outC, inC, k, k] as ours.
// - InstanceNorm2d: InstanceNormalization with its epsilon (biased variance inside the square
//   root, as ours); the fused "norm, add residual, ReLU" is InstanceNormalization, Add, Relu.
// - Channel attention: GlobalAveragePool, 1x1 Conv (w1 as [C/r, C, 1, 1], b1), Relu, 1x1 Conv
//   (w2, b2), Sigmoid, Mul with the input (broadcast over H, W).
// - Spatial attention: 1x1 Conv to one channel (w as [1, C, 1, 1], b), Sigmoid, Mul (broadcast
//   over C). Dual attention: the Add of the two.
// - upsample2x: Resize, mode nearest, scales [1, 1, 2, 2], coordinate_transformation_mode
//   asymmetric and nearest_mode floor, so output pixel (y, x) reads input (y >> 1, x >> 1), as ours.
// - The output: the head's logits through Sigmoid, named "probabilities" (what
//   `predictProbabilities` returns).

import onnxProto from 'onnx-proto';
import type { Conv2d, DualAttention, InstanceNorm2d, Parameter, ResDilBlock } from '@aunet/nn';
import type { AUNet, ConvBlock, ModelConfig } from './model';

const { onnx } = onnxProto;

/** The operator set the graph uses (every operator in it is unchanged in its opset-13 form, which ONNX Runtime 1.x runs). */
export const ONNX_OPSET = 13;
/** IR version 7 is the one that goes with opset 13. */
export const ONNX_IR_VERSION = 7;
export const ONNX_INPUT = 'image';
export const ONNX_OUTPUT = 'probabilities';

/** What goes into the model's metadata besides the config. */
export interface OnnxExportOptions {
  /** Free text: where the weights came from (a checkpoint's name, an epoch). */
  description?: string;
  /** Extra metadata_props entries (strings). */
  metadata?: Record<string, string>;
}

/** What the export produced. */
export interface OnnxExport {
  bytes: Uint8Array;
  /** Operator nodes in the graph, and how many of each type. */
  nodes: number;
  operators: Record<string, number>;
  /** Weights written (parameters). */
  parameters: number;
}

type Attribute = { name: string } & ({ i: number } | { f: number } | { s: string } | { ints: number[] } | { floats: number[] });

/** Collects nodes and initializers; names every intermediate value uniquely. */
class GraphBuilder {
  readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  readonly initializers: InstanceType<typeof onnx.TensorProto>[] = [];
  readonly operators: Record<string, number> = {};
  private count = 0;

  /** A float32 initializer of `shape` named `name`, stored as little-endian raw data. */
  constant(name: string, shape: number[], values: ArrayLike<number>): string {
    const size = shape.reduce((a, b) => a * b, 1);
    if (values.length !== size) throw new Error(`ONNX export: ${name} has ${values.length} values for shape [${shape}]`);
    const raw = new Uint8Array(size * 4);
    const view = new DataView(raw.buffer);
    for (let i = 0; i < size; i++) view.setFloat32(i * 4, values[i], true);
    this.initializers.push(onnx.TensorProto.create({ name, dims: shape, dataType: onnx.TensorProto.DataType.FLOAT, rawData: raw }));
    return name;
  }

  /** Adds a node of `op` and returns the name of its (single) output. */
  node(op: string, inputs: string[], attributes: Attribute[] = [], scope = op.toLowerCase()): string {
    const id = this.count++;
    const output = `${scope}/${op}_${id}`;
    this.nodes.push(
      onnx.NodeProto.create({ opType: op, name: `${op}_${id}`, input: inputs, output: [output], attribute: attributes.map(attribute) }),
    );
    this.operators[op] = (this.operators[op] ?? 0) + 1;
    return output;
  }

  /** Renames the output of the last node (for the graph's named output). */
  renameLastOutput(name: string): string {
    this.nodes[this.nodes.length - 1].output = [name];
    return name;
  }
}

function attribute(a: Attribute): InstanceType<typeof onnx.AttributeProto> {
  const T = onnx.AttributeProto.AttributeType;
  if ('i' in a) return onnx.AttributeProto.create({ name: a.name, type: T.INT, i: a.i });
  if ('f' in a) return onnx.AttributeProto.create({ name: a.name, type: T.FLOAT, f: a.f });
  if ('s' in a) return onnx.AttributeProto.create({ name: a.name, type: T.STRING, s: new TextEncoder().encode(a.s) });
  if ('ints' in a) return onnx.AttributeProto.create({ name: a.name, type: T.INTS, ints: a.ints });
  return onnx.AttributeProto.create({ name: a.name, type: T.FLOATS, floats: a.floats });
}

/** The weights of every parameter, read back from the device once, keyed by the Parameter. */
type Weights = Map<Parameter, { name: string; values: Float32Array }>;

/** Emits the graph of one model, reading weights from `weights`. */
class AUNetGraph {
  readonly g = new GraphBuilder();
  private scales: string | null = null;

  constructor(private readonly weights: Weights) {}

  private param(p: Parameter, shape = [...p.shape]): string {
    const w = this.weights.get(p);
    if (!w) throw new Error(`ONNX export: a parameter of shape [${p.shape}] is not the model's`);
    return this.g.constant(w.name, shape, w.values);
  }

  conv(x: string, c: Conv2d, scope: string): string {
    const inputs = [x, this.param(c.weight)];
    if (c.bias) inputs.push(this.param(c.bias));
    const p = c.padding;
    return this.g.node(
      'Conv',
      inputs,
      [
        { name: 'kernel_shape', ints: [c.kernelSize, c.kernelSize] },
        { name: 'strides', ints: [c.stride, c.stride] },
        { name: 'dilations', ints: [c.dilation, c.dilation] },
        { name: 'pads', ints: [p, p, p, p] },
        { name: 'group', i: 1 },
      ],
      scope,
    );
  }

  /** relu(IN(x) + residual), as `InstanceNorm2d.forwardRelu`. */
  normRelu(x: string, n: InstanceNorm2d, scope: string, residual: string | null = null): string {
    if (!n.weight || !n.bias) throw new Error('ONNX export: the model has an instance norm without affine parameters; this exporter expects affine ones');
    let y = this.g.node('InstanceNormalization', [x, this.param(n.weight), this.param(n.bias)], [{ name: 'epsilon', f: n.eps }], scope);
    if (residual) y = this.g.node('Add', [y, residual], [], scope);
    return this.g.node('Relu', [y], [], scope);
  }

  convBlock(x: string, b: ConvBlock, scope: string): string {
    return this.normRelu(this.conv(x, b.conv, scope), b.norm, scope);
  }

  resDil(x: string, r: ResDilBlock, scope: string): string {
    const h = this.normRelu(this.conv(x, r.conv1, scope), r.norm1, scope);
    return this.normRelu(this.conv(h, r.conv2, scope), r.norm2, scope, x);
  }

  attention(x: string, a: DualAttention, scope: string): string {
    const ca = a.channel;
    const pooled = this.g.node('GlobalAveragePool', [x], [], scope);
    const conv1x1 = (input: string, w: Parameter, b: Parameter, shape: number[]) =>
      this.g.node('Conv', [input, this.param(w, shape), this.param(b)], [{ name: 'kernel_shape', ints: [1, 1] }], scope);
    const squeezed = this.g.node('Relu', [conv1x1(pooled, ca.w1, ca.b1, [ca.hidden, ca.channels, 1, 1])], [], scope);
    const channelWeights = this.g.node('Sigmoid', [conv1x1(squeezed, ca.w2, ca.b2, [ca.channels, ca.hidden, 1, 1])], [], scope);
    const zc = this.g.node('Mul', [x, channelWeights], [], scope);
    const sa = a.spatial;
    const map = this.g.node('Sigmoid', [conv1x1(x, sa.w, sa.b, [1, sa.channels, 1, 1])], [], scope);
    const zs = this.g.node('Mul', [x, map], [], scope);
    return this.g.node('Add', [zc, zs], [], scope);
  }

  upsample(x: string, scope: string): string {
    // One shared scales constant; roi ("" = absent) is unused by nearest mode.
    this.scales ??= this.g.constant('upsample_scales', [4], [1, 1, 2, 2]);
    return this.g.node(
      'Resize',
      [x, '', this.scales],
      [
        { name: 'mode', s: 'nearest' },
        { name: 'coordinate_transformation_mode', s: 'asymmetric' },
        { name: 'nearest_mode', s: 'floor' },
      ],
      scope,
    );
  }

  /** The whole network, as `AUNet.forward`, then the sigmoid. */
  model(model: AUNet, input: string): string {
    const L = model.encoder.length;
    const skips: string[] = [];
    let h = input;
    model.encoder.forEach((level, l) => {
      const scope = `enc${l}`;
      h = this.convBlock(h, level.block, scope);
      h = this.resDil(h, level.resDil, scope);
      if (level.attention) h = this.attention(h, level.attention, scope);
      skips.push(h);
    });
    const outputs: string[] = new Array(L - 1);
    for (let l = L - 2; l >= 0; l--) {
      const scope = `dec${l}`;
      const level = model.decoder[l];
      const below = l === L - 2 ? skips[L - 1] : outputs[l + 1];
      const up = this.convBlock(this.upsample(below, scope), level.up, scope);
      // Skip first, as `DecoderLevel.forward` concatenates.
      const cat = this.g.node('Concat', [skips[l], up], [{ name: 'axis', i: 1 }], scope);
      let r = this.resDil(this.convBlock(cat, level.fuse, scope), level.resDil, scope);
      if (level.attention) r = this.attention(r, level.attention, scope);
      outputs[l] = r;
    }
    // Deep supervision, coarse to fine: acc = up(acc) + conv1x1_i(f_i), as DeepSupervisionHead.
    const convs = model.head.convs;
    let acc = this.conv(outputs[convs.length - 1], convs[convs.length - 1], 'head');
    for (let i = convs.length - 2; i >= 0; i--) acc = this.g.node('Add', [this.upsample(acc, 'head'), this.conv(outputs[i], convs[i], 'head')], [], 'head');
    this.g.node('Sigmoid', [acc], [], 'head');
    return this.g.renameLastOutput(ONNX_OUTPUT);
  }
}

function valueInfo(name: string, dims: (number | string)[]): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
}

/**
 * The ONNX model of `model` with its current weights: input "image" [N, inChannels, S, S]
 * (N free), output "probabilities" [N, 1, S, S], the lesion probabilities `predictProbabilities`
 * gives. Weights are read back from the device (one read per parameter).
 */
export async function exportOnnx(model: AUNet, options: OnnxExportOptions = {}): Promise<OnnxExport> {
  const weights: Weights = new Map();
  for (const [name, p] of model.namedParameters()) weights.set(p, { name, values: (await p.value.data()) as Float32Array });
  const graph = new AUNetGraph(weights);
  graph.model(model, ONNX_INPUT);
  const c: ModelConfig = model.config;
  const s = c.inputSize;
  const proto = onnx.ModelProto.create({
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'aunet',
    producerVersion: '0.1.0',
    docString: `${c.architecture === 'aunet' ? 'AU-Net' : 'U-Net'} (Zhou, Canu and Ruan 2020) lesion probabilities of ${s}x${s} CT slices` + (options.description ? `; ${options.description}` : ''),
    graph: {
      name: c.architecture,
      node: graph.g.nodes,
      initializer: graph.g.initializers,
      input: [valueInfo(ONNX_INPUT, ['N', c.inChannels, s, s])],
      output: [valueInfo(ONNX_OUTPUT, ['N', 1, s, s])],
    },
    metadataProps: Object.entries({ 'aunet.model': JSON.stringify(c), ...options.metadata }).map(([key, value]) => ({ key, value })),
  });
  const bytes = onnx.ModelProto.encode(proto).finish();
  let parameters = 0;
  for (const w of weights.values()) parameters += w.values.length;
  return { bytes, nodes: graph.g.nodes.length, operators: { ...graph.g.operators }, parameters };
}

/** The metadata an exported model carries (metadata_props), read back from its bytes. */
export function onnxMetadata(bytes: Uint8Array): Record<string, string> {
  const m = onnx.ModelProto.decode(bytes);
  return Object.fromEntries(m.metadataProps.map((e) => [e.key, e.value]));
}
