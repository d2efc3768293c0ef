// Reverse-mode autodiff over a tape of GradFn records: one walk in reverse topological order,
// gradients accumulated where a tensor feeds several ops, intermediate gradients freed as soon
// as they have been propagated.

import { onesLike } from './ops/creation';
import { binaryRaw, copy } from './ops/primitives';
import { currentSection, inBackwardOf } from './profile';
import { Tensor, keep, type GradFn } from './tensor';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run `fn` without recording any op for autodiff. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Attach the op's backward rule to `out` when grad mode is on and some input requires grad. */
export function record(out: Tensor, op: string, inputs: Tensor[], backward: GradFn['backward']): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    const section = currentSection();
    out.gradFn = section ? { op, inputs, backward, section } : { op, inputs, backward };
  }
  return out;
}

/** Tensors that `root` depends on through recorded ops, in topological order (inputs first). */
function topoSort(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const state = new Map<Tensor, 1 | 2>(); // 1: on stack, 2: done
  const stack: [Tensor, number][] = [[root, 0]];
  state.set(root, 1);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.gradFn?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const child = inputs[i];
      if (child.requiresGrad && !state.has(child)) {
        state.set(child, 1);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      state.set(t, 2);
      order.push(t);
    }
  }
  return order;
}

export interface BackwardOptions {
  /** dL/d(root); defaults to ones for a one-element root. */
  grad?: Tensor;
  /** Keep the recorded graph so that backward can run again (default: the graph is released). */
  retainGraph?: boolean;
}

/**
 * Compute gradients of `root` with respect to every leaf tensor with `requiresGrad`,
 * adding them into `leaf.grad`. Runs in no-grad mode.
 */
export function backward(root: Tensor, options: BackwardOptions = {}): void {
  if (!root.requiresGrad) throw new Error(`backward(): ${root} does not require grad (no input of the graph has requiresGrad set)`);
  let seed = options.grad;
  if (!seed) {
    if (root.size !== 1) throw new Error(`backward() on a non-scalar ${root} needs an explicit { grad }`);
    seed = onesLike(root);
  } else if (seed.shape.join() !== root.shape.join()) {
    throw new Error(`backward(): grad shape [${seed.shape}] does not match root shape [${root.shape}]`);
  }
  const order = topoSort(root);
  const grads = new Map<Tensor, Tensor>();
  const owned = new Set<Tensor>(); // gradients created here, safe to free
  grads.set(root, seed);
  if (!options.grad) owned.add(seed);
  // The whole walk counts as backward work in a profile (accumulations too), each rule in its op's section.
  inBackwardOf('', () => noGrad(() => {
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      const fn = t.gradFn;
      if (!fn) {
        // A leaf: accumulate into .grad, which outlives every scope.
        if (t.grad) {
          const sum = accumulate(t.grad, g);
          t.grad.dispose();
          t.grad = keep(sum);
          if (owned.has(g)) g.dispose();
        } else {
          t.grad = keep(owned.has(g) ? g : copyOf(g));
        }
        continue;
      }
      // A rule may pass `g` straight through (or return one tensor twice): give each input its own.
      // The first pass-through of an owned `g` takes it over; other repeats get copies.
      const seen = new Set<Tensor>();
      let gTaken = false;
      const inGrads = inBackwardOf(fn.section ?? '', () => fn.backward(g)).map((gi) => {
        if (!gi) return gi;
        if (gi === g && owned.has(g) && !gTaken) {
          gTaken = true;
          return gi;
        }
        if (gi === g || seen.has(gi)) return copyOf(gi);
        seen.add(gi);
        return gi;
      });
      if (owned.has(g) && !gTaken) g.dispose();
      fn.inputs.forEach((input, i) => {
        const gi = inGrads[i];
        if (!gi) return;
        if (!input.requiresGrad) {
          gi.dispose();
          return;
        }
        if (gi.shape.join() !== input.shape.join()) {
          throw new Error(`Internal: backward of "${fn.op}" gave a gradient of shape [${gi.shape}] for an input of shape [${input.shape}]`);
        }
        const prev = grads.get(input);
        if (prev) {
          grads.set(input, accumulate(prev, gi));
          if (owned.has(prev)) prev.dispose();
          gi.dispose();
        } else {
          grads.set(input, gi);
        }
        owned.add(grads.get(input)!);
      });
      if (!options.retainGraph) t.gradFn = releasedGradFn(fn);
    }
  }));
}

/** Stands in for a rule whose graph a backward pass released: a second pass through it fails
 *  clearly, instead of treating the intermediate as a leaf and stopping there. */
function releasedGradFn(fn: GradFn): GradFn {
  return {
    op: fn.op,
    inputs: [],
    backward: () => {
      throw new Error(`backward(): the graph through "${fn.op}" was already released by an earlier backward; pass { retainGraph: true } to the first call to backpropagate through it twice`);
    },
  };
}

function accumulate(a: Tensor, b: Tensor): Tensor {
  return binaryRaw('add', a, b, 'backward (accumulating a gradient)');
}

function copyOf(t: Tensor): Tensor {
  return copy(t);
}
