// Float64 references for the AU-Net ops besides convolution: up-sampling, instance norm,
// channel/spatial/dual attention, the Dice/Tversky family of losses, BCE with logits, and Adam.
// Plain loops; every `...Backward` is a vector-Jacobian product, checked against finite
// differences of the forward by the tests.

import { refZeros, type Ref } from './core';

function dims4(x: Ref): [number, number, number, number] {
  const [n, c, h, w] = x.shape;
  return [n, c, h, w];
}

// ---- upsample ---------------------------------------------------------------------------------

export function upsample2x(x: Ref): Ref {
  const [n, c, h, w] = dims4(x);
  const out = refZeros([n, c, 2 * h, 2 * w]);
  for (let pl = 0; pl < n * c; pl++)
    for (let y = 0; y < 2 * h; y++)
      for (let z = 0; z < 2 * w; z++) out.data[(pl * 2 * h + y) * 2 * w + z] = x.data[(pl * h + (y >> 1)) * w + (z >> 1)];
  return out;
}

export function upsample2xBackward(x: Ref, g: Ref): Ref {
  const [n, c, h, w] = dims4(x);
  const dx = refZeros(x.shape);
  for (let pl = 0; pl < n * c; pl++)
    for (let y = 0; y < 2 * h; y++)
      for (let z = 0; z < 2 * w; z++) dx.data[(pl * h + (y >> 1)) * w + (z >> 1)] += g.data[(pl * 2 * h + y) * 2 * w + z];
  return dx;
}

// ---- instance norm ----------------------------------------------------------------------------

function planeStats(x: Ref, pl: number, hw: number): [number, number] {
  let m = 0;
  for (let i = 0; i < hw; i++) m += x.data[pl * hw + i];
  m /= hw;
  let v = 0;
  for (let i = 0; i < hw; i++) v += (x.data[pl * hw + i] - m) ** 2;
  return [m, v / hw];
}

export function instanceNorm(x: Ref, gamma: Ref | null, beta: Ref | null, eps = 1e-5): Ref {
  const [n, c, h, w] = dims4(x);
  const hw = h * w;
  const out = refZeros(x.shape);
  for (let pl = 0; pl < n * c; pl++) {
    const ch = pl % c;
    const [m, v] = planeStats(x, pl, hw);
    const r = 1 / Math.sqrt(v + eps);
    const ga = gamma ? gamma.data[ch] : 1;
    const be = beta ? beta.data[ch] : 0;
    for (let i = 0; i < hw; i++) out.data[pl * hw + i] = (x.data[pl * hw + i] - m) * r * ga + be;
  }
  return out;
}

/** [dx, dgamma, dbeta] (dgamma/dbeta zero-filled of shape [C] when the parameter is null). */
export function instanceNormBackward(x: Ref, gamma: Ref | null, _beta: Ref | null, eps: number, g: Ref): [Ref, Ref, Ref] {
  const [n, c, h, w] = dims4(x);
  const hw = h * w;
  const dx = refZeros(x.shape);
  const dgamma = refZeros(gamma ? gamma.shape : [c]);
  const dbeta = refZeros(_beta ? _beta.shape : [c]);
  for (let pl = 0; pl < n * c; pl++) {
    const ch = pl % c;
    const [m, v] = planeStats(x, pl, hw);
    const r = 1 / Math.sqrt(v + eps);
    const ga = gamma ? gamma.data[ch] : 1;
    let sg = 0;
    let sgx = 0;
    for (let i = 0; i < hw; i++) {
      const gi = g.data[pl * hw + i];
      sg += gi;
      sgx += gi * (x.data[pl * hw + i] - m) * r;
    }
    dgamma.data[ch] += sgx;
    dbeta.data[ch] += sg;
    for (let i = 0; i < hw; i++) {
      const xh = (x.data[pl * hw + i] - m) * r;
      dx.data[pl * hw + i] = ga * r * (g.data[pl * hw + i] - sg / hw - xh * (sgx / hw));
    }
  }
  return [dx, dgamma, dbeta];
}

/** relu(instanceNorm(x, gamma, beta) + residual), the residual optional. */
export function instanceNormRelu(x: Ref, gamma: Ref | null, beta: Ref | null, residual: Ref | null, eps = 1e-5): Ref {
  const y = instanceNorm(x, gamma, beta, eps);
  for (let i = 0; i < y.data.length; i++) y.data[i] = Math.max(0, y.data[i] + (residual ? residual.data[i] : 0));
  return y;
}

/** [dx, dgamma, dbeta, dresidual]: instanceNormBackward of the gradient through the ReLU's mask (y > 0), which is also dresidual. */
export function instanceNormReluBackward(x: Ref, gamma: Ref | null, beta: Ref | null, residual: Ref | null, eps: number, g: Ref): [Ref, Ref, Ref, Ref] {
  const y = instanceNormRelu(x, gamma, beta, residual, eps);
  const masked = refZeros(x.shape);
  for (let i = 0; i < masked.data.length; i++) masked.data[i] = y.data[i] > 0 ? g.data[i] : 0;
  return [...instanceNormBackward(x, gamma, beta, eps, masked), masked];
}

// ---- attention --------------------------------------------------------------------------------

const sig = (z: number) => 1 / (1 + Math.exp(-z));

interface ChannelState {
  s: Float64Array; // [N,C] means
  pre1: Float64Array; // [N,Hd]
  h: Float64Array; // [N,Hd]
  a: Float64Array; // [N,C]
}

function channelState(x: Ref, w1: Ref, b1: Ref, w2: Ref, b2: Ref): ChannelState {
  const [n, c, hh, ww] = dims4(x);
  const hw = hh * ww;
  const hd = w1.shape[0];
  const s = new Float64Array(n * c);
  for (let pl = 0; pl < n * c; pl++) {
    let t = 0;
    for (let i = 0; i < hw; i++) t += x.data[pl * hw + i];
    s[pl] = t / hw;
  }
  const pre1 = new Float64Array(n * hd);
  const h = new Float64Array(n * hd);
  for (let b = 0; b < n; b++)
    for (let j = 0; j < hd; j++) {
      let t = b1.data[j];
      for (let k = 0; k < c; k++) t += w1.data[j * c + k] * s[b * c + k];
      pre1[b * hd + j] = t;
      h[b * hd + j] = Math.max(t, 0);
    }
  const a = new Float64Array(n * c);
  for (let b = 0; b < n; b++)
    for (let k = 0; k < c; k++) {
      let t = b2.data[k];
      for (let j = 0; j < hd; j++) t += w2.data[k * hd + j] * h[b * hd + j];
      a[b * c + k] = sig(t);
    }
  return { s, pre1, h, a };
}

function spatialState(x: Ref, w: Ref, b: Ref): Float64Array {
  const [n, c, hh, ww] = dims4(x);
  const hw = hh * ww;
  const m = new Float64Array(n * hw);
  for (let s = 0; s < n; s++)
    for (let i = 0; i < hw; i++) {
      let z = b.data[0];
      for (let k = 0; k < c; k++) z += w.data[k] * x.data[(s * c + k) * hw + i];
      m[s * hw + i] = sig(z);
    }
  return m;
}

/** x * sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2)[n,c]; W1 [C/r, C], W2 [C, C/r]. */
export function channelAttention(x: Ref, w1: Ref, b1: Ref, w2: Ref, b2: Ref): Ref {
  const [n, c, hh, ww] = dims4(x);
  const hw = hh * ww;
  const { a } = channelState(x, w1, b1, w2, b2);
  const out = refZeros(x.shape);
  for (let pl = 0; pl < n * c; pl++) for (let i = 0; i < hw; i++) out.data[pl * hw + i] = x.data[pl * hw + i] * a[pl];
  return out;
}

/** [dx, dw1, db1, dw2, db2]. */
export function channelAttentionBackward(x: Ref, w1: Ref, b1: Ref, w2: Ref, b2: Ref, g: Ref): Ref[] {
  const [n, c, hh, ww] = dims4(x);
  const hw = hh * ww;
  const hd = w1.shape[0];
  const { s, pre1, h, a } = channelState(x, w1, b1, w2, b2);
  const dpre2 = new Float64Array(n * c);
  for (let pl = 0; pl < n * c; pl++) {
    let da = 0;
    for (let i = 0; i < hw; i++) da += g.data[pl * hw + i] * x.data[pl * hw + i];
    dpre2[pl] = da * a[pl] * (1 - a[pl]);
  }
  const dw2 = refZeros(w2.shape);
  const db2 = refZeros(b2.shape);
  const dpre1 = new Float64Array(n * hd);
  for (let b = 0; b < n; b++)
    for (let k = 0; k < c; k++) {
      const d = dpre2[b * c + k];
      db2.data[k] += d;
      for (let j = 0; j < hd; j++) {
        dw2.data[k * hd + j] += d * h[b * hd + j];
        dpre1[b * hd + j] += d * w2.data[k * hd + j];
      }
    }
  for (let i = 0; i < n * hd; i++) if (!(pre1[i] > 0)) dpre1[i] = 0;
  const dw1 = refZeros(w1.shape);
  const db1 = refZeros(b1.shape);
  const ds = new Float64Array(n * c);
  for (let b = 0; b < n; b++)
    for (let j = 0; j < hd; j++) {
      const d = dpre1[b * hd + j];
      db1.data[j] += d;
      for (let k = 0; k < c; k++) {
        dw1.data[j * c + k] += d * s[b * c + k];
        ds[b * c + k] += d * w1.data[j * c + k];
      }
    }
  const dx = refZeros(x.shape);
  for (let pl = 0; pl < n * c; pl++)
    for (let i = 0; i < hw; i++) dx.data[pl * hw + i] = g.data[pl * hw + i] * a[pl] + ds[pl] / hw;
  return [dx, dw1, db1, dw2, db2];
}

/** x * sigmoid(sum_c w[c] x[n,c,h,w] + b). */
export function spatialAttention(x: Ref, w: Ref, b: Ref): Ref {
  const [n, c, hh, ww] = dims4(x);
  const hw = hh * ww;
  const m = spatialState(x, w, b);
  const out = refZeros(x.shape);
  for (let s = 0; s < n; s++)
    for (let k = 0; k < c; k++)
      for (let i = 0; i < hw; i++) out.data[(s * c + k) * hw + i] = x.data[(s * c + k) * hw + i] * m[s * hw + i];
  return out;
}

/** [dx, dw, db]. */
export function spatialAttentionBackward(x: Ref, w: Ref, b: Ref, g: Ref): Ref[] {
  const [n, c, hh, ww] = dims4(x);
  const hw = hh * ww;
  const m = spatialState(x, w, b);
  const dx = refZeros(x.shape);
  const dw = refZeros(w.shape);
  const db = refZeros(b.shape);
  for (let s = 0; s < n; s++)
    for (let i = 0; i < hw; i++) {
      let dm = 0;
      for (let k = 0; k < c; k++) dm += g.data[(s * c + k) * hw + i] * x.data[(s * c + k) * hw + i];
      const mm = m[s * hw + i];
      const dz = dm * mm * (1 - mm);
      db.data[0] += dz;
      for (let k = 0; k < c; k++) {
        const at = (s * c + k) * hw + i;
        dw.data[k] += dz * x.data[at];
        dx.data[at] = g.data[at] * mm + dz * w.data[k];
      }
    }
  return [dx, dw, db];
}

/** channelAttention(x) + spatialAttention(x). */
export function dualAttention(x: Ref, w1: Ref, b1: Ref, w2: Ref, b2: Ref, w: Ref, b: Ref): Ref {
  const ca = channelAttention(x, w1, b1, w2, b2);
  const sa = spatialAttention(x, w, b);
  return { shape: [...x.shape], data: ca.data.map((v, i) => v + sa.data[i]) };
}

/** [dx, dw1, db1, dw2, db2, dw, db]. */
export function dualAttentionBackward(x: Ref, w1: Ref, b1: Ref, w2: Ref, b2: Ref, w: Ref, b: Ref, g: Ref): Ref[] {
  const [dxc, ...pc] = channelAttentionBackward(x, w1, b1, w2, b2, g);
  const [dxs, ...ps] = spatialAttentionBackward(x, w, b, g);
  return [{ shape: [...x.shape], data: dxc.data.map((v, i) => v + dxs.data[i]) }, ...pc, ...ps];
}

// ---- losses -----------------------------------------------------------------------------------

/** [sum(p*g), sum(p), sum(g), sum(p*(1-g)), sum((1-p)*g)] over all elements. */
export function tverskySums(p: Ref, g: Ref): Ref {
  const out = refZeros([5]);
  for (let i = 0; i < p.data.length; i++) {
    const a = p.data[i];
    const b = g.data[i];
    out.data[0] += a * b;
    out.data[1] += a;
    out.data[2] += b;
    out.data[3] += a * (1 - b);
    out.data[4] += (1 - a) * b;
  }
  return out;
}

/** [dp, dg] given the gradient G[5] of the sums. */
export function tverskySumsBackward(p: Ref, g: Ref, G: Ref): [Ref, Ref] {
  const [g0, g1, g2, g3, g4] = G.data;
  const dp = refZeros(p.shape);
  const dg = refZeros(g.shape);
  for (let i = 0; i < p.data.length; i++) {
    dp.data[i] = g0 * g.data[i] + g1 + g3 * (1 - g.data[i]) - g4 * g.data[i];
    dg.data[i] = g0 * p.data[i] + g2 - g3 * p.data[i] + g4 * (1 - p.data[i]);
  }
  return [dp, dg];
}

export type SumsLoss = { kind: 'dice'; smooth: number } | { kind: 'tversky' | 'focalTversky'; alpha: number; beta: number; gamma: number; smooth: number };

/** The loss as a function of the five sums, and its gradient with respect to them. */
export function lossFromSums(s: ArrayLike<number>, o: SumsLoss): { value: number; grad: number[] } {
  const [tp, sp, sg, fp, fn] = Array.from(s);
  if (o.kind === 'dice') {
    const num = 2 * tp + o.smooth;
    const den = sp + sg + o.smooth;
    return { value: 1 - num / den, grad: [-2 / den, num / den ** 2, num / den ** 2, 0, 0] };
  }
  const num = tp + o.smooth;
  const den = tp + o.alpha * fn + o.beta * fp + o.smooth;
  const ti = num / den;
  const dti = [1 / den - num / den ** 2, 0, 0, (-o.beta * num) / den ** 2, (-o.alpha * num) / den ** 2];
  if (o.kind === 'tversky') return { value: 1 - ti, grad: dti.map((d) => -d) };
  const e = 1 / o.gamma;
  const u = Math.max(1 - ti, 0);
  const uc = Math.max(1 - ti, 1e-6);
  const dl = -e * uc ** (e - 1);
  return { value: u ** e, grad: dti.map((d) => dl * d) };
}

function scalarRef(v: number): Ref {
  return { shape: [], data: Float64Array.of(v) };
}

export function sumsLoss(p: Ref, g: Ref, o: SumsLoss): Ref {
  return scalarRef(lossFromSums(tverskySums(p, g).data, o).value);
}

/** Gradient with respect to p. */
export function sumsLossBackward(p: Ref, g: Ref, o: SumsLoss, G: Ref): Ref {
  const { grad } = lossFromSums(tverskySums(p, g).data, o);
  return tverskySumsBackward(p, g, { shape: [5], data: Float64Array.from(grad, (d) => d * G.data[0]) })[0];
}

export const diceLoss = (p: Ref, g: Ref, smooth = 1) => sumsLoss(p, g, { kind: 'dice', smooth });
export const tverskyLoss = (p: Ref, g: Ref, alpha = 0.7, beta = 0.3, smooth = 1) => sumsLoss(p, g, { kind: 'tversky', alpha, beta, gamma: 1, smooth });
export const focalTverskyLoss = (p: Ref, g: Ref, alpha = 0.7, beta = 0.3, gamma = 4 / 3, smooth = 1) =>
  sumsLoss(p, g, { kind: 'focalTversky', alpha, beta, gamma, smooth });

/** mean(max(x,0) - x*t + log(1 + exp(-|x|))). */
export function bceWithLogits(x: Ref, t: Ref): Ref {
  let s = 0;
  for (let i = 0; i < x.data.length; i++) {
    const v = x.data[i];
    s += Math.max(v, 0) - v * t.data[i] + Math.log1p(Math.exp(-Math.abs(v)));
  }
  return scalarRef(s / x.data.length);
}

/** [dlogits, dtarget]. */
export function bceWithLogitsBackward(x: Ref, t: Ref, G: Ref): [Ref, Ref] {
  const n = x.data.length;
  const dx = refZeros(x.shape);
  const dt = refZeros(t.shape);
  for (let i = 0; i < n; i++) {
    dx.data[i] = (G.data[0] * (sig(x.data[i]) - t.data[i])) / n;
    dt.data[i] = (-G.data[0] * x.data[i]) / n;
  }
  return [dx, dt];
}

// ---- Adam -------------------------------------------------------------------------------------

export interface AdamRefOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  step: number;
  weightDecay?: number;
  decoupled?: boolean;
}

/** One Adam/AdamW step in place on float64 arrays (torch.optim.Adam / AdamW). */
export function adamStep(param: Float64Array, grad: ArrayLike<number>, m: Float64Array, v: Float64Array, o: AdamRefOptions): void {
  const wd = o.weightDecay ?? 0;
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  for (let i = 0; i < param.length; i++) {
    let g = grad[i];
    if (wd !== 0 && !o.decoupled) g += wd * param[i];
    if (wd !== 0 && o.decoupled) param[i] *= 1 - o.lr * wd;
    m[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
    v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
    param[i] -= (o.lr * (m[i] / bc1)) / (Math.sqrt(v[i] / bc2) + o.eps);
  }
}
