// `pnpm bench ceiling`: what arithmetic rate this adapter gives a WGSL kernel at all, through
// this project's runtime, without loads and with the fewest loads a convolution can have.
//
//   fma A            A vec4 accumulators updated by multiply-adds, no loads: the adapter's
//                    ceiling for a kernel shaped like ours (LLVM's register allocation decides
//                    how many accumulators it keeps in registers).
//   outer WxX        the register-blocked outer product of a GEMM: per step W weight vec4s (4
//                    output channels each; the addresses differ per invocation, as each owns its
//                    output channels) and X input scalars (the same address in every invocation,
//                    as neighbouring invocations share their input pixels), then W*X vec4
//                    multiply-adds into W*X accumulators.
//   ... v4           the inputs loaded 4 at a time (as the conv loads the rows of its tile).
//   ... lane         the inputs from an address of each invocation's own.
//   ... hoisted      the same multiply-adds with the loads moved before the loop: what loads cost.
//   tile PWxPR       the 3x3 convolution's own structure stripped of its indexing and bounds:
//                    PW x PR output pixels of 4 channels per invocation, per input channel 9
//                    weight vec4s and the (PW+2) x (PR+2) inputs of the tile as vec4 row loads,
//                    9 * PW * PR multiply-adds (8x4 is the library's forward tile on CPU adapters).
//   conv2d SHAPE     the library's 3x3 convolution forward (batch 4), in the same rounds.
//
// The loops cycle over small buffers (64 KiB of weights, 16 KiB of inputs) that stay in cache: the loads are as
// cheap as loads get. Every load here is a plain per-invocation load; the library's conv shares
// its input loads between a subgroup's lanes, so it can beat the `tile` case of its own shape.

import { ENTRY_1D, conv2d, grid1d, init, launch, linearIndex, uniformStruct, zeros, type Tensor } from '@aunet/tensor';
import { median, now, sig, type Suite, type SuiteOptions } from '../common';
import { uniform } from '../fill';

const CEILING_UNIFORMS = uniformStruct('bench-ceiling', { n: 'u32', iters: 'u32', scale: 'f32', shift: 'f32' });

const WG = 64;
/** Invocations per dispatch: enough to keep a CPU adapter's threads busy (a GPU would want more). */
const INVOCATIONS = 64 * WG * 4;
const WEIGHT_VEC4S = 4096;
const INPUTS = 4096;

function fmaKernel(acc: number): string {
  const A = Array.from({ length: acc }, (_, i) => i);
  return `
${CEILING_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
${ENTRY_1D(WG)} {
  ${linearIndex(WG)}
  if (i >= p.n) { return; }
  let m = vec4<f32>(p.scale);
  let c = vec4<f32>(p.shift);
  ${A.map((a) => `var a${a} = vec4<f32>(f32(i + ${a}u)) + vec4<f32>(0.0, 0.25, 0.5, 0.75);`).join(' ')}
  for (var k = 0u; k < p.iters; k++) {
    ${A.map((a) => `a${a} = a${a} * m + c;`).join(' ')}
  }
  out[i] = ${A.map((a) => `a${a}`).join(' + ')};
}`;
}

/** How the inputs of `outer` are loaded. */
interface InputLoads {
  /** As vec4s (one load for 4 inputs) rather than scalars. */
  vec4: boolean;
  /** From an address of each invocation's own (it is the same in all invocations otherwise). */
  perLane: boolean;
  /**
   * Weights and inputs loaded once before the loop and nudged by an add per vec4 in it: the same
   * multiply-adds without the loads, to tell what the loads cost.
   */
  hoisted?: boolean;
}

function outerKernel(weights: number, inputs: number, how: InputLoads): string {
  const W = Array.from({ length: weights }, (_, i) => i);
  const X = Array.from({ length: inputs }, (_, i) => i);
  if (how.hoisted && !how.vec4) throw new Error('hoisted inputs are vec4s');
  const quads = Array.from({ length: inputs / 4 }, (_, q) => `${how.hoisted ? 'var' : 'let'} q${q} = xv[xb / 4u + ${q}u];`).join(' ');
  const swizzles = X.map((b) => `let x${b} = q${b >> 2}.${'xyzw'[b & 3]};`).join(' ');
  const loads = how.vec4 ? `${quads} ${swizzles}` : X.map((b) => `let x${b} = x[xb + ${b}u];`).join(' ');
  return `
${CEILING_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> ${how.vec4 ? 'xv: array<vec4<f32>>' : 'x: array<f32>'};
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
${ENTRY_1D(WG)} {
  ${linearIndex(WG)}
  if (i >= p.n) { return; }
  var wb = i % ${WG}u;
  var xb = ${how.perLane ? `(i % ${WG}u) * 32u` : '0u'};
  ${W.flatMap((a) => X.map((b) => `var a${a}_${b} = vec4<f32>();`)).join(' ')}
  ${how.hoisted ? `${W.map((a) => `var w${a} = w[wb + ${a * WG}u];`).join(' ')} ${quads} let eps = vec4<f32>(1e-7);` : ''}
  for (var k = 0u; k < p.iters; k++) {
    ${how.hoisted ? '' : W.map((a) => `let w${a} = w[wb + ${a * WG}u];`).join(' ')}
    ${how.hoisted ? swizzles : loads}
    ${W.flatMap((a) => X.map((b) => `a${a}_${b} += w${a} * x${b};`)).join(' ')}
    ${how.hoisted ? [...W.map((a) => `w${a} += eps;`), ...Array.from({ length: inputs / 4 }, (_, q) => `q${q} -= eps;`)].join(' ') : ''}
    wb = (wb + ${WG * weights}u) & ${WEIGHT_VEC4S - 1}u;
    xb = (xb + ${Math.ceil(inputs / 4) * 4}u) & ${INPUTS - 1}u;
  }
  out[i] = ${W.flatMap((a) => X.map((b) => `a${a}_${b}`)).join(' + ')};
}`;
}

function tileKernel(pw: number, pr: number, perLane: boolean): string {
  const q4 = Math.ceil((pw + 2) / 4); // vec4 loads per input row
  const R = Array.from({ length: pr }, (_, i) => i);
  const J = Array.from({ length: pw }, (_, i) => i);
  const body: string[] = [];
  for (let rr = 0; rr < pr + 2; rr++) {
    for (let c = 0; c < q4; c++) body.push(`let q${rr}_${c} = xv[xb + ${rr * q4 + c}u];`);
  }
  for (let ky = 0; ky < 3; ky++) {
    for (const r of R) for (const j of J) for (let kx = 0; kx < 3; kx++) {
      const col = j + kx;
      body.push(`a${r}_${j} += w${ky * 3 + kx} * q${r + ky}_${col >> 2}.${'xyzw'[col & 3]};`);
    }
  }
  return `
${CEILING_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> xv: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
${ENTRY_1D(WG)} {
  ${linearIndex(WG)}
  if (i >= p.n) { return; }
  var wb = i % ${WG}u;
  var xb = ${perLane ? `(i % ${WG}u) * 8u` : '0u'};
  ${R.flatMap((r) => J.map((j) => `var a${r}_${j} = vec4<f32>();`)).join(' ')}
  for (var k = 0u; k < p.iters; k++) {
    ${Array.from({ length: 9 }, (_, t) => `let w${t} = w[wb + ${t * WG}u];`).join(' ')}
    ${body.join('\n    ')}
    wb = (wb + ${9 * WG}u) & ${WEIGHT_VEC4S - 1}u;
    xb = (xb + ${(pr + 2) * q4}u) & ${INPUTS / 4 - 1}u;
  }
  out[i] = ${R.flatMap((r) => J.map((j) => `a${r}_${j}`)).join(' + ')};
}`;
}

interface Case {
  label: string;
  what: string;
  /** Flops per 4-byte word loaded, when the case is a synthetic kernel with loads. */
  flopsPerWord: number | null;
  /** Compiles and sizes the case; afterwards `sample` times one run and returns its flops. */
  prepare: () => Promise<void>;
  sample: () => Promise<{ ms: number; flops: number }>;
  dispose?: () => void;
}

/** The library's 3x3 conv forward on [4, c, side, side] -> c, timed as it is used. */
const CONV_SHAPES: [number, number][] = [[32, 128], [128, 32], [512, 8]];

export const suite: Suite = {
  name: 'ceiling',
  description: 'multiply-add rate of a WGSL kernel without loads and with a convolution\'s loads',
  async run(options: SuiteOptions, log) {
    const rt = await init();
    const adapter = rt.describe();
    log(`adapter: ${adapter}`);
    const w = uniform([(WEIGHT_VEC4S + 9 * WG) * 4]);
    const x = uniform([INPUTS + 128]); // the masks wrap the offsets; the tail covers the last step's reach
    const out = zeros([INVOCATIONS * 4]);
    const cases: Case[] = [];

    /** A synthetic kernel: `fmas` vec4 multiply-adds and `loadWords` words loaded per loop step. */
    const synthetic = (label: string, what: string, fmas: number, loadWords: number, code: string, bind: Tensor[]) => {
      let iters = 16;
      const kernel = `bench-ceiling-${label.replace(/\s+/g, '-')}`;
      const run = async (n: number) => {
        const t0 = now();
        launch({ kernel, code, grid: grid1d(INVOCATIONS, WG), bind, uniforms: CEILING_UNIFORMS.pack({ n: INVOCATIONS, iters: n, scale: 0.999, shift: 0.001 }) });
        await rt.sync();
        return now() - t0;
      };
      cases.push({
        label,
        what,
        flopsPerWord: loadWords ? (fmas * 8) / loadWords : null,
        async prepare() {
          await run(1); // compile
          // About 200 ms of device time per run.
          for (;;) {
            const ms = await run(iters);
            if (ms > 50 || iters >= 1 << 24) {
              iters = Math.max(1, Math.round((iters * 200) / ms));
              return;
            }
            iters *= 4;
          }
        },
        async sample() {
          return { ms: await run(iters), flops: INVOCATIONS * iters * fmas * 8 };
        },
      });
    };
    for (const a of [4, 6, 8, 12, 16, 32]) synthetic(`fma ${a}`, `${a} vec4 accumulators, no loads`, a, 0, fmaKernel(a), [out]);
    const outer = (a: number, b: number, how: InputLoads) => {
      const kind = `inputs${how.vec4 ? ` (${b / 4} vec4 loads)` : ''}${how.perLane ? ' per lane' : ''}`;
      const label = `outer ${a}x${b}${how.vec4 ? ' v4' : ''}${how.perLane ? ' lane' : ''}${how.hoisted ? ' hoisted' : ''}`;
      const what = how.hoisted ? `the above with its loads before the loop` : `${a} weight vec4s, ${b} ${kind}, ${a * b} accumulators`;
      synthetic(label, what, a * b, how.hoisted ? 0 : 4 * a + b, outerKernel(a, b, how), [w, x, out]);
    };
    for (const [a, b] of [[1, 8], [2, 4], [4, 4], [2, 8], [4, 8]]) {
      outer(a, b, { vec4: false, perLane: false });
      outer(a, b, { vec4: true, perLane: false });
    }
    outer(4, 8, { vec4: true, perLane: true });
    outer(4, 8, { vec4: true, perLane: true, hoisted: true });
    const tile = (pw: number, pr: number, perLane: boolean) => {
      const loads = 9 + (pr + 2) * Math.ceil((pw + 2) / 4);
      synthetic(
        `tile ${pw}x${pr}${perLane ? ' lane' : ''}`,
        `${pw * pr} accumulators, 9 weight + ${loads - 9} input vec4 loads${perLane ? ' per lane' : ''}`,
        9 * pw * pr,
        4 * loads,
        tileKernel(pw, pr, perLane),
        [w, x, out],
      );
    };
    for (const [pw, pr] of [[4, 2], [4, 4], [8, 2], [8, 4], [8, 8]]) tile(pw, pr, false);
    tile(8, 4, true);
    for (const [c, side] of CONV_SHAPES) {
      let input: Tensor | null = null;
      let weight: Tensor | null = null;
      const per = 8; // queued back to back, as in a step
      const run = async (n: number) => {
        const t0 = now();
        for (let k = 0; k < n; k++) conv2d(input!, weight!, null, { padding: 1 }).dispose();
        await rt.sync();
        return now() - t0;
      };
      cases.push({
        label: `conv2d 4x${c}x${side}x${side}`,
        what: `this library's 3x3 forward, ${c} -> ${c} channels, ${per} queued`,
        flopsPerWord: null,
        async prepare() {
          input = uniform([4, c, side, side]);
          weight = uniform([c, c, 3, 3], -0.1, 0.1);
          await run(1);
        },
        sample: async () => ({ ms: await run(per), flops: per * 2 * 4 * c * side * side * c * 9 }),
        dispose: () => {
          input?.dispose();
          weight?.dispose();
        },
      });
    }
    const chosen = cases.filter((c) => !options.only || c.label.toLowerCase().includes(options.only.toLowerCase()));
    for (const c of chosen) {
      log(`${c.label}: compiling and sizing...`);
      await c.prepare();
    }
    // Rounds over all cases rather than all runs of one case after another: this machine's speed
    // drifts by tens of percent over a minute, and rounds spread the drift over every case.
    const rounds = options.quick ? 3 : 7;
    const rates = new Map<Case, number[]>(chosen.map((c) => [c, []]));
    for (let r = 0; r < rounds; r++) {
      log(`round ${r + 1}/${rounds}`);
      for (const c of chosen) {
        const { ms, flops } = await c.sample();
        rates.get(c)!.push(flops / (ms * 1e6));
      }
    }
    const records: object[] = [];
    const rows: (string | number | null)[][] = [];
    for (const c of chosen) {
      const g = rates.get(c)!;
      const gflops = median(g);
      rows.push([c.label, c.what, c.flopsPerWord === null ? '-' : c.flopsPerWord.toFixed(1), gflops.toFixed(1), `${Math.min(...g).toFixed(1)}-${Math.max(...g).toFixed(1)}`]);
      records.push({ case: c.label, what: c.what, flops_per_load_word: sig(c.flopsPerWord), gflops: sig(gflops), gflops_min: sig(Math.min(...g)), gflops_max: sig(Math.max(...g)), adapter });
    }
    for (const c of cases) c.dispose?.();
    out.dispose();
    w.dispose();
    x.dispose();
    await rt.sync();
    return {
      table: { columns: [{ title: 'case', align: 'left' }, { title: 'what', align: 'left' }, { title: 'flops/load' }, { title: 'GFLOP/s' }, { title: 'range' }], rows },
      records,
      notes: [
        `synthetic kernels: ${INVOCATIONS} invocations of ${WG}, ~200 ms a run; median (range) of ${rounds} rounds over all cases; flops/load: flops per 4-byte word loaded.`,
        'lavapipe runs a storage load as a loop over the lanes: the conv shares each input load between a subgroup\'s lanes (subgroupBroadcast), the synthetic kernels do not.',
      ],
    };
  },
};
