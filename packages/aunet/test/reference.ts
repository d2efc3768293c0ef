// The AU-Net forward pass in float64, composed from @aunet/tensor's reference ops and reading the
// parameters by their dotted names: the oracle for the model's forward and its gradients. Not a
// suite itself.
import type { Ref } from '@aunet/tensor/reference';
import { binary, concat, conv2d, dualAttention, instanceNorm, unary, upsample2x } from '@aunet/tensor/reference';
import type { ModelConfig } from '../src/model';

export function referenceForward(c: ModelConfig, p: Map<string, Ref>, x: Ref): Ref {
  const get = (name: string) => {
    const v = p.get(name);
    if (!v) throw new Error(`reference: no parameter "${name}"`);
    return v;
  };
  const relu = (t: Ref) => unary('relu', t);
  const convBlock = (prefix: string, t: Ref, stride = 1) =>
    relu(instanceNorm(conv2d(t, get(`${prefix}.conv.weight`), null, { stride, padding: 1 }), get(`${prefix}.norm.weight`), get(`${prefix}.norm.bias`)));
  const resDil = (prefix: string, t: Ref) => {
    const [d1, d2] = c.dilations;
    const a = relu(instanceNorm(conv2d(t, get(`${prefix}.conv1.weight`), null, { padding: d1, dilation: d1 }), get(`${prefix}.norm1.weight`), get(`${prefix}.norm1.bias`)));
    const b = instanceNorm(conv2d(a, get(`${prefix}.conv2.weight`), null, { padding: d2, dilation: d2 }), get(`${prefix}.norm2.weight`), get(`${prefix}.norm2.bias`));
    return relu(binary('add', b, t));
  };
  const attention = (prefix: string, t: Ref) => {
    if (c.architecture !== 'aunet') return t;
    const ca = (k: string) => get(`${prefix}.attention.channel.${k}`);
    return dualAttention(t, ca('w1'), ca('b1'), ca('w2'), ca('b2'), get(`${prefix}.attention.spatial.w`), get(`${prefix}.attention.spatial.b`));
  };
  const L = c.filters.length;
  const skips: Ref[] = [];
  let h = x;
  for (let l = 0; l < L; l++) {
    const prefix = `encoder.${l}`;
    h = attention(prefix, resDil(`${prefix}.resDil`, convBlock(`${prefix}.block`, h, l === 0 ? 1 : 2)));
    skips.push(h);
  }
  const outs: Ref[] = [];
  for (let l = L - 2; l >= 0; l--) {
    const prefix = `decoder.${l}`;
    const below = l === L - 2 ? skips[L - 1] : outs[l + 1];
    const up = convBlock(`${prefix}.up`, upsample2x(below));
    const fused = convBlock(`${prefix}.fuse`, concat([skips[l], up], 1));
    outs[l] = attention(prefix, resDil(`${prefix}.resDil`, fused));
  }
  const head = (i: number) => conv2d(outs[i], get(`head.convs.${i}.weight`), get(`head.convs.${i}.bias`));
  let acc = head(c.deepSupervision - 1);
  for (let i = c.deepSupervision - 2; i >= 0; i--) acc = binary('add', upsample2x(acc), head(i));
  return acc;
}
