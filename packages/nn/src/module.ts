// Module and Parameter: a module owns named parameters and child modules, found by walking its
// own properties in creation order (as PyTorch's attribute registration), so that
// `this.conv = new Conv2d(...)` in a constructor is all it takes to register a layer.

import { Tensor, keep, runtime, tensor, type Shape } from '@aunet/tensor';

let nextParamId = 1;

/**
 * A trainable tensor. The Parameter object is the stable identity that optimisers and
 * checkpoints key their state by; `value` is the Tensor that ops consume (requiresGrad, kept out
 * of every scope). Loading new values (`assign`) writes into the same buffer, so both the
 * Parameter and its Tensor keep their identity.
 */
export class Parameter {
  readonly id = nextParamId++;
  private _value: Tensor;

  /** Wrap `value` (taken over: kept out of scopes, marked requiresGrad), or create from host data. */
  constructor(value: Tensor | { data: ArrayLike<number>; shape: Shape }, name?: string) {
    const t = value instanceof Tensor ? value : tensor(value.data, value.shape);
    if (t.dtype !== 'float32') throw new Error(`Parameter: expected a float32 tensor, got ${t.dtype} ${t}`);
    t.requiresGrad = true;
    t.gradFn = null;
    if (name) t.name = name;
    this._value = keep(t);
  }

  /** The tensor to pass to ops. */
  get value(): Tensor {
    return this._value;
  }

  get shape(): Shape {
    return this._value.shape;
  }

  get size(): number {
    return this._value.size;
  }

  /** The gradient accumulated by `backward()`, or null. */
  get grad(): Tensor | null {
    return this._value.grad;
  }

  /** Overwrite the values in place (same buffer); `src` must have the same number of elements
   *  (a Tensor source must have the same shape). Ordered after all work encoded so far. */
  assign(src: Tensor | ArrayLike<number>): void {
    const dst = this._value;
    if (src instanceof Tensor) {
      if (src.shape.join() !== dst.shape.join()) throw new Error(`Parameter.assign: shape [${src.shape}] does not match [${dst.shape}]`);
      if (src === dst) return;
      runtime().copy(src.buffer, 0, dst.buffer, 0, dst.size * 4);
      return;
    }
    if (src.length !== dst.size) throw new Error(`Parameter.assign: ${src.length} values for shape [${dst.shape}] (${dst.size} elements)`);
    if (dst.size > 0) runtime().write(dst.buffer, src instanceof Float32Array ? src : Float32Array.from(src));
  }

  /**
   * Swap in another tensor as the value (for functional use and tests): `t` is kept and marked
   * requiresGrad; the previous tensor is returned, not disposed. Optimiser state stays attached
   * to this Parameter.
   */
  swap(t: Tensor): Tensor {
    if (t.shape.join() !== this._value.shape.join()) throw new Error(`Parameter.swap: shape [${t.shape}] does not match [${this._value.shape}]`);
    const prev = this._value;
    // A parameter is a leaf: an op result swapped in must not keep its recorded history.
    t.gradFn = null;
    t.requiresGrad = true;
    this._value = keep(t);
    return prev;
  }

  /** Free the gradient. */
  zeroGrad(): void {
    this._value.grad?.dispose();
    this._value.grad = null;
  }

  /** Free the value and the gradient. */
  dispose(): void {
    this.zeroGrad();
    this._value.dispose();
  }

  get disposed(): boolean {
    return this._value.disposed;
  }

  toString(): string {
    return `Parameter(#${this.id}, [${this.shape}])`;
  }
}

/**
 * Base class of layers and networks. Subclasses assign parameters (`Parameter`), child modules
 * (`Module`) or arrays of either to properties in their constructor; names are the property
 * names joined by dots, array elements by index ("enc.0.conv.weight"). Properties whose name
 * starts with "_" are not walked. A parameter or module reachable twice is listed once, under its
 * first name.
 */
export abstract class Module<In = Tensor, Out = Tensor> {
  /** True in training mode (the default); switch with `train()` / `eval()`. */
  training = true;

  abstract forward(input: In): Out;

  /** Own parameters and child modules, in property creation order. */
  protected *entries(): Generator<[string, Parameter | Module<any, any>]> {
    for (const key of Object.keys(this)) {
      if (key.startsWith('_')) continue;
      const v = (this as Record<string, unknown>)[key];
      if (v instanceof Parameter || v instanceof Module) yield [key, v];
      else if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          const e = v[i];
          if (e instanceof Parameter || e instanceof Module) yield [`${key}.${i}`, e];
        }
      }
    }
  }

  /** Direct child modules with their names. */
  namedChildren(): [string, Module<any, any>][] {
    const out: [string, Module<any, any>][] = [];
    for (const [k, v] of this.entries()) if (v instanceof Module) out.push([k, v]);
    return out;
  }

  /** This module and every descendant, with dotted names ("" for this one). */
  namedModules(prefix = ''): [string, Module<any, any>][] {
    const out: [string, Module<any, any>][] = [];
    const seen = new Set<Module<any, any>>();
    const walk = (m: Module<any, any>, name: string) => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([name, m]);
      for (const [k, c] of m.namedChildren()) walk(c, name ? `${name}.${k}` : k);
    };
    walk(this, prefix);
    return out;
  }

  /** Every parameter with its dotted name: own parameters first, then each child's, in creation order. */
  namedParameters(prefix = ''): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    const seenP = new Set<Parameter>();
    const seenM = new Set<Module<any, any>>();
    const walk = (m: Module<any, any>, name: string) => {
      if (seenM.has(m)) return;
      seenM.add(m);
      const full = (k: string) => (name ? `${name}.${k}` : k);
      const children: [string, Module<any, any>][] = [];
      for (const [k, v] of m.entries()) {
        if (v instanceof Parameter) {
          if (!seenP.has(v)) {
            seenP.add(v);
            out.push([full(k), v]);
          }
        } else children.push([k, v]);
      }
      for (const [k, c] of children) walk(c, full(k));
    };
    walk(this, prefix);
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** The parameter with this dotted name, or undefined. */
  getParameter(name: string): Parameter | undefined {
    return this.namedParameters().find(([n]) => n === name)?.[1];
  }

  /** Total number of parameter elements. */
  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.size, 0);
  }

  /** Set training mode on this module and every descendant. */
  train(on = true): this {
    for (const [, m] of this.namedModules()) m.training = on;
    return this;
  }

  /** Set evaluation mode on this module and every descendant. */
  eval(): this {
    return this.train(false);
  }

  /** Free every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /** Free the GPU memory of every parameter and gradient. The module is unusable afterwards. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
  }

  /** Host copies of every parameter, by name (one readback per parameter). */
  async stateDict(): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, p] of this.namedParameters()) out.set(name, { shape: [...p.shape], data: (await p.value.data()) as Float32Array });
    return out;
  }

  /** A one-line-per-module summary: name, class, parameter count. */
  summary(): string {
    const lines: string[] = [];
    for (const [name, m] of this.namedModules()) {
      const own = [...m.entries()].filter(([, v]) => v instanceof Parameter).reduce((s, [, v]) => s + (v as Parameter).size, 0);
      lines.push(`${name || '(root)'}  ${m.constructor.name}${own ? `  ${own} params` : ''}`);
    }
    lines.push(`total ${this.numParameters()} parameters`);
    return lines.join('\n');
  }
}
