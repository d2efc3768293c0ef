// The loss on the host, in float64, from the five sums of probabilities p against 0/1 masks g
// (TP = sum p.g, sum p, sum g, FP = sum p.(1-g), FN = sum (1-p).g): the focal Tversky or soft
// Dice value and its partials, as @aunet/nn's losses compute them on the GPU. The training step
// uses it to split a batch into chunks, the trainer to score validation predictions.
// Browser-safe.

export interface LossSpec {
  loss: 'ftl' | 'dice';
  alpha: number;
  beta: number;
  gamma: number;
  /** Added to numerator and denominator (default 1, as @aunet/nn's losses). */
  smooth?: number;
}

/**
 * The loss from the batch's sums S = [TP, sum p, sum g, FP, FN] and its partials dL/dS, in
 * float64, as @aunet/nn's focal Tversky and Dice losses compute them (1 - TI clamped at 0, its
 * derivative at 1e-6, so that a perfect prediction has a finite gradient).
 */
export function lossFromSums(s: ArrayLike<number>, o: LossSpec): { value: number; partials: number[] } {
  const smooth = o.smooth ?? 1;
  const [tp, sp, sg, fp, fn] = Array.from(s);
  if (o.loss === 'dice') {
    const num = 2 * tp + smooth;
    const den = sp + sg + smooth;
    return { value: 1 - num / den, partials: [-2 / den, num / (den * den), num / (den * den), 0, 0] };
  }
  const num = tp + smooth;
  const den = tp + o.alpha * fn + o.beta * fp + smooth;
  const ti = num / den;
  const q = num / (den * den);
  const e = 1 / o.gamma;
  const u = Math.max(1 - ti, 0);
  const dLdTI = -e * Math.pow(Math.max(u, 1e-6), e - 1);
  return { value: Math.pow(u, e), partials: [dLdTI * (1 / den - q), 0, 0, dLdTI * -o.beta * q, dLdTI * -o.alpha * q] };
}

/** Soft focal Tversky (or Dice) loss of probabilities against masks, pooled over all slices, in float64. */
export function pooledLoss(probs: Float32Array[], masks: Uint8Array[], spec: LossSpec): number {
  // The five sums of tverskySums: TP, sum p, sum g, FP, FN.
  let tp = 0;
  let sp = 0;
  let sg = 0;
  probs.forEach((p, j) => {
    const g = masks[j];
    for (let i = 0; i < p.length; i++) {
      sp += p[i];
      if (g[i]) {
        tp += p[i];
        sg++;
      }
    }
  });
  return lossFromSums([tp, sp, sg, sp - tp, sg - tp], spec).value;
}
