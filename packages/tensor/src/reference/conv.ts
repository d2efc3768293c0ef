// Float64 reference for 2-D convolution (NCHW, weights [Cout, Cin, kh, kw], zero padding),
// written as plain loops over every output element and tap.

import type { Ref } from './core';

export interface ConvRefOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
}

interface Geometry {
  n: number; ci: number; h: number; w: number;
  co: number; kh: number; kw: number;
  s: number; p: number; d: number;
  ho: number; wo: number;
}

function geometry(x: Ref, w: Ref, opts: ConvRefOptions): Geometry {
  const [n, ci, h, wd] = x.shape;
  const [co, ci2, kh, kw] = w.shape;
  if (x.shape.length !== 4 || w.shape.length !== 4 || ci !== ci2) throw new Error(`reference conv2d: bad shapes [${x.shape}] [${w.shape}]`);
  const s = opts.stride ?? 1;
  const p = opts.padding ?? 0;
  const d = opts.dilation ?? 1;
  const ho = Math.floor((h + 2 * p - d * (kh - 1) - 1) / s) + 1;
  const wo = Math.floor((wd + 2 * p - d * (kw - 1) - 1) / s) + 1;
  if (ho < 1 || wo < 1) throw new Error('reference conv2d: empty output');
  return { n, ci, h, w: wd, co, kh, kw, s, p, d, ho, wo };
}

/** Visit every (output element, input element, weight element) triple that the convolution multiplies. */
function forEachTerm(g: Geometry, f: (o: number, xi: number, wi: number, c: number) => void): void {
  for (let n = 0; n < g.n; n++)
    for (let co = 0; co < g.co; co++)
      for (let oy = 0; oy < g.ho; oy++)
        for (let ox = 0; ox < g.wo; ox++) {
          const o = ((n * g.co + co) * g.ho + oy) * g.wo + ox;
          for (let ci = 0; ci < g.ci; ci++)
            for (let ky = 0; ky < g.kh; ky++) {
              const iy = oy * g.s + ky * g.d - g.p;
              if (iy < 0 || iy >= g.h) continue;
              for (let kx = 0; kx < g.kw; kx++) {
                const ix = ox * g.s + kx * g.d - g.p;
                if (ix < 0 || ix >= g.w) continue;
                f(o, ((n * g.ci + ci) * g.h + iy) * g.w + ix, ((co * g.ci + ci) * g.kh + ky) * g.kw + kx, co);
              }
            }
        }
}

/** y[n,co,oy,ox] = b[co] + sum over ci, ky, kx of w[co,ci,ky,kx] x[n,ci,oy*s+ky*d-p,ox*s+kx*d-p]. */
export function conv2d(x: Ref, w: Ref, b: Ref | null, opts: ConvRefOptions = {}): Ref {
  const g = geometry(x, w, opts);
  const y = new Float64Array(g.n * g.co * g.ho * g.wo);
  const xd = x.data;
  const wd = w.data;
  // The same loops as forEachTerm, inlined: finite differences run this forward many times.
  for (let n = 0; n < g.n; n++)
    for (let co = 0; co < g.co; co++)
      for (let oy = 0; oy < g.ho; oy++)
        for (let ox = 0; ox < g.wo; ox++) {
          let acc = b ? b.data[co] : 0;
          for (let ci = 0; ci < g.ci; ci++)
            for (let ky = 0; ky < g.kh; ky++) {
              const iy = oy * g.s + ky * g.d - g.p;
              if (iy < 0 || iy >= g.h) continue;
              const xrow = ((n * g.ci + ci) * g.h + iy) * g.w;
              const wrow = ((co * g.ci + ci) * g.kh + ky) * g.kw;
              for (let kx = 0; kx < g.kw; kx++) {
                const ix = ox * g.s + kx * g.d - g.p;
                if (ix >= 0 && ix < g.w) acc += xd[xrow + ix] * wd[wrow + kx];
              }
            }
          y[((n * g.co + co) * g.ho + oy) * g.wo + ox] = acc;
        }
  return { shape: [g.n, g.co, g.ho, g.wo], data: y };
}

/** Vector-Jacobian product of `conv2d` for dL/dy = g: [dx, dw, db] (db is the sum of g over N, H, W). */
export function conv2dBackward(x: Ref, w: Ref, _b: Ref | null, opts: ConvRefOptions, g: Ref): Ref[] {
  const geo = geometry(x, w, opts);
  const dx = new Float64Array(x.data.length);
  const dw = new Float64Array(w.data.length);
  const db = new Float64Array(geo.co);
  for (let i = 0; i < g.data.length; i++) db[Math.floor(i / (geo.ho * geo.wo)) % geo.co] += g.data[i];
  forEachTerm(geo, (o, xi, wi) => {
    dx[xi] += g.data[o] * w.data[wi];
    dw[wi] += g.data[o] * x.data[xi];
  });
  return [
    { shape: [...x.shape], data: dx },
    { shape: [...w.shape], data: dw },
    { shape: [geo.co], data: db },
  ];
}
