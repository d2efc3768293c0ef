// Adam / AdamW as one fused in-place kernel per parameter: moment updates, bias correction and
// the parameter update in one pass over (param, grad, m, v). Not recorded for autodiff.

import { ENTRY_1D, assertFloat, grid1d, launch, linearIndex, sameShape, uniformStruct } from '../kernel';
import { Tensor } from '../tensor';

export interface AdamStepOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** 1 for the first step. */
  step: number;
  /** L2 penalty added to the gradient (torch.optim.Adam), or decoupled decay (AdamW). Default 0. */
  weightDecay?: number;
  /** Decay the parameter directly, param *= 1 - lr*weightDecay, as AdamW. Default false. */
  decoupled?: boolean;
}

// 1 - beta1 and 1 - beta2 come from the host in float64: 1 - f32(0.999) in float32 is off by 1.3e-5.
// As torch.optim.Adam(W): g += wd*param (L2) or param *= 1 - lr*wd (decoupled);
// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; param -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
const ADAM_UNIFORMS = uniformStruct('adamStep', {
  n4: 'u32', decoupled: 'u32', lr: 'f32', beta1: 'f32', beta2: 'f32', oneMinusBeta1: 'f32', oneMinusBeta2: 'f32', eps: 'f32', wd: 'f32', stepSize: 'f32', invSqrtBc2: 'f32',
});
const ADAM = `
${ADAM_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> v: array<vec4<f32>>;
${ENTRY_1D(256)} {
  ${linearIndex(256)}
  if (i >= p.n4) { return; }
  var w = param[i];
  var g = grad[i];
  if (p.decoupled != 0u) { w = w * (1.0 - p.lr * p.wd); } else { g = g + p.wd * w; }
  let mi = p.beta1 * m[i] + p.oneMinusBeta1 * g;
  let vi = p.beta2 * v[i] + p.oneMinusBeta2 * (g * g);
  m[i] = mi;
  v[i] = vi;
  param[i] = w - p.stepSize * mi / (sqrt(vi) * p.invSqrtBc2 + p.eps);
}`;

/**
 * One Adam step, in place on `param`, `m` and `v` (same shape as `param`; m and v start at zero).
 * Bias corrections are computed in float64 on the host from `step`.
 */
export function adamStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamStepOptions): void {
  for (const [t, what] of [[param, 'param'], [grad, 'grad'], [m, 'm'], [v, 'v']] as const) {
    assertFloat(t, 'adamStep');
    if (!sameShape(t.shape, param.shape)) throw new Error(`adamStep: ${what} has shape [${t.shape}], param has [${param.shape}]`);
  }
  if (new Set([param.buffer, grad.buffer, m.buffer, v.buffer]).size !== 4) throw new Error('adamStep: param, grad, m and v must be four distinct buffers');
  if (!Number.isInteger(o.step) || o.step < 1) throw new Error(`adamStep: step must be an integer >= 1, got ${o.step}`);
  const wd = o.weightDecay ?? 0;
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  const n4 = Math.ceil(param.size / 4);
  const uniforms = ADAM_UNIFORMS.pack({
    n4, decoupled: o.decoupled ? 1 : 0, lr: o.lr, beta1: o.beta1, beta2: o.beta2, oneMinusBeta1: 1 - o.beta1, oneMinusBeta2: 1 - o.beta2,
    eps: o.eps, wd, stepSize: o.lr / bc1, invSqrtBc2: 1 / Math.sqrt(bc2),
  });
  launch({ kernel: 'adamStep', code: ADAM, grid: grid1d(n4, 256), bind: [param, grad, m, v], uniforms });
}
