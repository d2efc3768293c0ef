// The AU-Net's kernels on its shapes: one plain-data description per (op, pass, shape), shared
// by our suite, the PyTorch script and the TF.js child, so all three time the same problems.

export type KernelOp = 'conv2d' | 'upsample2x' | 'instance_norm' | 'dual_attention' | 'focal_tversky' | 'adam';
export type Pass = 'forward' | 'backward-input' | 'backward-weight';

export interface ConvParams {
  cout: number;
  k: number;
  stride: number;
  dilation: number;
  padding: number;
}

export interface KernelCase {
  id: number;
  op: KernelOp;
  pass: Pass;
  /** Label, e.g. "4x32x256x256 k3 d2 s1 ->32". */
  shape: string;
  /** Image size of the network the case belongs to (128, 256, 512); 0 for adam (size-independent). */
  image: number;
  /** The op's main input: [N, C, H, W]; for adam, the parameter's shape. */
  input: number[];
  conv?: ConvParams;
  /** Floating-point operations of one run (2 per multiply-add), or null where not defined. */
  flops: number | null;
  /** Bytes read + written by one run, counting each tensor once (the minimum traffic). */
  bytes: number;
}

export const BATCH = 4;
export const BASE_FILTERS = 32;
export const LEVELS = 5;

const prod = (xs: number[]) => xs.reduce((a, b) => a * b, 1);

export function convOut(h: number, p: ConvParams): number {
  return Math.floor((h + 2 * p.padding - p.dilation * (p.k - 1) - 1) / p.stride) + 1;
}

/** Every case for images of size `s` x `s`. Level L has 32*2^L filters at s/2^L. */
export function casesForSize(s: number): Omit<KernelCase, 'id'>[] {
  const out: Omit<KernelCase, 'id' | 'image'>[] = [];
  const n = BATCH;
  const level = (l: number) => ({ f: BASE_FILTERS * 2 ** l, h: s / 2 ** l });

  const conv = (cin: number, h: number, cp: Omit<ConvParams, 'padding'>, passes: Pass[] = ['forward', 'backward-input', 'backward-weight']) => {
    const p: ConvParams = { ...cp, padding: (cp.dilation * (cp.k - 1)) >> 1 };
    const ho = convOut(h, p);
    const x = n * cin * h * h;
    const w = p.cout * cin * p.k * p.k;
    const y = n * p.cout * ho * ho;
    const flops = 2 * n * p.cout * ho * ho * cin * p.k * p.k;
    const shape = `${n}x${cin}x${h}x${h} k${p.k} d${p.dilation} s${p.stride} ->${p.cout}`;
    for (const pass of passes) {
      const bytes = 4 * (pass === 'forward' ? x + w + p.cout + y : pass === 'backward-input' ? y + w + x : x + y + w);
      out.push({ op: 'conv2d', pass, shape, input: [n, cin, h, h], conv: p, flops, bytes });
    }
  };
  // 3x3 convs: the level's conv (dilation 1) and the res_dil block's dilated convs (2, 4).
  for (const d of [1, 2, 4]) for (let l = 0; l < LEVELS; l++) {
    const { f, h } = level(l);
    conv(f, h, { cout: f, k: 3, stride: 1, dilation: d });
  }
  // Down-sampling: 3x3, stride 2, doubling the filters.
  for (let l = 0; l < LEVELS - 1; l++) {
    const { f, h } = level(l);
    conv(f, h, { cout: 2 * f, k: 3, stride: 2, dilation: 1 });
  }
  // 1x1 convs: spatial attention's squeeze and the (deep-supervision) segmentation heads, F -> 1.
  for (let l = 0; l < LEVELS; l++) {
    const { f, h } = level(l);
    conv(f, h, { cout: 1, k: 1, stride: 1, dilation: 1 });
  }
  // Decoder up-sampling: level L+1's output to level L's size.
  for (let l = 0; l < LEVELS - 1; l++) {
    const { f, h } = level(l + 1);
    const input = [n, f, h, h];
    const shape = `${n}x${f}x${h}x${h}`;
    const elems = prod(input); // read once, written 4x (and the reverse for the gradient)
    out.push({ op: 'upsample2x', pass: 'forward', shape, input, flops: null, bytes: 4 * 5 * elems });
    out.push({ op: 'upsample2x', pass: 'backward-input', shape, input, flops: null, bytes: 4 * 5 * elems });
  }
  // Instance norm and dual attention at every level.
  for (let l = 0; l < LEVELS; l++) {
    const { f, h } = level(l);
    const input = [n, f, h, h];
    const e = prod(input);
    const shape = `${n}x${f}x${h}x${h}`;
    out.push({ op: 'instance_norm', pass: 'forward', shape, input, flops: null, bytes: 4 * (2 * e + 2 * f) });
    out.push({ op: 'instance_norm', pass: 'backward-input', shape, input, flops: null, bytes: 4 * (3 * e + 2 * f) });
    out.push({ op: 'instance_norm', pass: 'backward-weight', shape, input, flops: null, bytes: 4 * (2 * e + 2 * f) });
    const wts = f * (f / 2) * 2 + f / 2 + f + f + 1;
    out.push({ op: 'dual_attention', pass: 'forward', shape, input, flops: null, bytes: 4 * (2 * e + wts) });
    out.push({ op: 'dual_attention', pass: 'backward-input', shape, input, flops: null, bytes: 4 * (3 * e + wts) });
    out.push({ op: 'dual_attention', pass: 'backward-weight', shape, input, flops: null, bytes: 4 * (2 * e + 2 * wts) });
  }
  // The loss: prediction and target [N,1,H,W] reduced to a scalar; gradient w.r.t. the prediction.
  {
    const input = [n, 1, s, s];
    const e = prod(input);
    const shape = `${n}x1x${s}x${s}`;
    out.push({ op: 'focal_tversky', pass: 'forward', shape, input, flops: null, bytes: 4 * (2 * e + 1) });
    out.push({ op: 'focal_tversky', pass: 'backward-input', shape, input, flops: null, bytes: 4 * (3 * e + 1) });
  }
  return out.map((c) => ({ ...c, image: s }));
}

/** Adam steps over the 3x3 weights of each level (independent of the image size). */
export function adamCases(): Omit<KernelCase, 'id'>[] {
  const out: Omit<KernelCase, 'id'>[] = [];
  for (let l = 0; l < LEVELS; l++) {
    const f = BASE_FILTERS * 2 ** l;
    const input = [f, f, 3, 3];
    // param, grad, m, v read; param, m, v written.
    out.push({ op: 'adam', pass: 'forward', shape: input.join('x'), image: 0, input, flops: null, bytes: 4 * 7 * prod(input) });
  }
  return out;
}

export function allCases(sizes: number[], only: string | null): KernelCase[] {
  const list = [...sizes.flatMap((s) => casesForSize(s)), ...adamCases()];
  const o = only?.toLowerCase();
  return list
    .filter((c) => !o || caseLabel(c).toLowerCase().includes(o))
    .map((c, id) => ({ ...c, id }));
}

export function caseLabel(c: Pick<KernelCase, 'op' | 'pass' | 'shape'>): string {
  return `${c.op} ${c.pass} ${c.shape}`;
}

/** Timing plan and cases, as the peers (PyTorch script, TF.js child) read them on stdin. */
export interface PeerRequest {
  timing: { warmup: number; runs: number; budgetMs: number };
  cases: KernelCase[];
}

/** One peer's answer per case: ms (median) or null with a note. */
export interface PeerResult {
  id: number;
  ms: number | null;
  note?: string;
}
