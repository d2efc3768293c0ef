// Shared by the nn suites (not a suite itself): checking a layer, parameters included, with the
// tensor library's checkOp.

import type { Tensor } from '@aunet/tensor';
import type { Ref } from '@aunet/tensor/reference';
import { checkOp, toRef } from '@aunet/tensor/testing';
import type { Rng } from '@aunet/tensor';
import type { Module } from '../src/index';

export interface LayerCheck<M extends Module<any, any>> {
  name: string;
  rng: Rng;
  layer: M;
  /** The layer's inputs (not its parameters). */
  inputs: Ref[];
  call: (layer: M, xs: Tensor[]) => Tensor;
  /** Reference forward from the inputs and the parameters (in `namedParameters()` order). */
  ref: (xs: Ref[], ps: Ref[]) => Ref;
  /** Reference VJP: gradients of the inputs, then of the parameters. */
  refBackward: (xs: Ref[], ps: Ref[], g: Ref) => Ref[];
  forwardTol?: number;
  gradTol?: number;
  fdSamples?: number;
}

/**
 * Forward and gradients (inputs and every parameter) of a layer against the float64 reference
 * and finite differences, with the standard tolerances. The layer's parameters are swapped for
 * checkOp's tensors during the forward, then restored.
 */
export async function checkLayer<M extends Module<any, any>>(c: LayerCheck<M>): Promise<void> {
  const params = c.layer.parameters();
  const pRefs = await Promise.all(params.map((p) => toRef(p.value)));
  const k = c.inputs.length;
  const used: Tensor[] = [];
  const t0 = performance.now();
  try {
    await checkOp({
      name: c.name,
      rng: c.rng,
      inputs: [...c.inputs, ...pRefs],
      forwardTol: c.forwardTol,
      gradTol: c.gradTol,
      fdSamples: c.fdSamples,
      gpu: (ts) => {
        const originals = params.map((p, i) => p.swap(ts[k + i]));
        try {
          return c.call(c.layer, ts.slice(0, k));
        } finally {
          params.forEach((p, i) => used.push(p.swap(originals[i])));
        }
      },
      ref: (rs) => c.ref(rs.slice(0, k), rs.slice(k)),
      refBackward: (rs, g) => c.refBackward(rs.slice(0, k), rs.slice(k), g),
    });
  } finally {
    for (const t of used) t.dispose();
    if (process.env.NN_TIMING) console.log(`  ${c.name}: ${(performance.now() - t0).toFixed(0)} ms`);
  }
}

export function addRef(a: Ref, b: Ref): Ref {
  return { shape: [...a.shape], data: a.data.map((v, i) => v + b.data[i]) };
}
