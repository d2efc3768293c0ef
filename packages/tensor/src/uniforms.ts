// A kernel's uniforms declared once: the WGSL struct and the host packing come from one
// declaration, keyed by field name. No imports, so that the runtime's own kernel uses it too.

/** WGSL scalar types a uniform field can have (4 bytes each). */
export type UniformScalar = 'u32' | 'i32' | 'f32';

/**
 * A kernel's uniform block: `wgsl` declares `struct P { ... }` and binds it as `p` at
 * @group(0) @binding(0); `pack(values)` lays out a value for every field, by name, in the order
 * of the declaration. A missing or unknown field, or a u32 that is negative or not an integer,
 * throws: the WGSL and the host side cannot drift apart silently.
 */
export class UniformStruct<F extends Readonly<Record<string, UniformScalar>>> {
  readonly wgsl: string;
  private readonly names: (keyof F & string)[];

  constructor(
    readonly kernel: string,
    readonly fields: F,
  ) {
    this.names = Object.keys(fields) as (keyof F & string)[];
    if (this.names.length === 0) throw new Error(`${kernel}: a uniform struct needs at least one field`);
    this.wgsl = `struct P { ${this.names.map((n) => `${n}: ${fields[n]}`).join(', ')} }
@group(0) @binding(0) var<uniform> p: P;`;
  }

  pack(values: { readonly [K in keyof F]: number }): Uint8Array {
    // Uniform bindings are sized in multiples of 16 bytes.
    const bytes = new Uint8Array(Math.max(16, Math.ceil((this.names.length * 4) / 16) * 16));
    const view = new DataView(bytes.buffer);
    const given = values as Readonly<Record<string, number>>;
    for (const key of Object.keys(given)) {
      if (!(key in this.fields)) throw new Error(`${this.kernel}: uniform "${key}" is not a field of its struct (${this.names.join(', ')})`);
    }
    this.names.forEach((name, i) => {
      const v = given[name];
      if (typeof v !== 'number' || Number.isNaN(v)) throw new Error(`${this.kernel}: uniform "${name}" is missing or not a number (${v})`);
      const type = this.fields[name];
      if (type === 'f32') view.setFloat32(i * 4, v, true);
      else if (type === 'i32') view.setInt32(i * 4, v, true);
      else {
        if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`${this.kernel}: uniform "${name}" is a u32 and cannot hold ${v}`);
        view.setUint32(i * 4, v, true);
      }
    });
    return bytes;
  }
}

/** Declare a kernel's uniform struct (see {@link UniformStruct}). */
export function uniformStruct<const F extends Readonly<Record<string, UniformScalar>>>(kernel: string, fields: F): UniformStruct<F> {
  return new UniformStruct(kernel, fields);
}

/** Fields `prefix`0..3 of type `type`, for 4-D shapes and strides. */
export function fields4<const P extends string, const T extends UniformScalar>(prefix: P, type: T): Record<`${P}${0 | 1 | 2 | 3}`, T> {
  return { [`${prefix}0`]: type, [`${prefix}1`]: type, [`${prefix}2`]: type, [`${prefix}3`]: type } as Record<`${P}${0 | 1 | 2 | 3}`, T>;
}

/** Values of fields `prefix`0..3 (see {@link fields4}). */
export function values4<const P extends string>(prefix: P, v: readonly number[]): Record<`${P}${0 | 1 | 2 | 3}`, number> {
  if (v.length !== 4) throw new Error(`values4(${prefix}): expected 4 values, got ${v.length}`);
  return { [`${prefix}0`]: v[0], [`${prefix}1`]: v[1], [`${prefix}2`]: v[2], [`${prefix}3`]: v[3] } as Record<`${P}${0 | 1 | 2 | 3}`, number>;
}
