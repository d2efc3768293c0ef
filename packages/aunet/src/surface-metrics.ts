// Surface metrics of a predicted mask against a label mask, in millimetres, on 2-D slices or 3-D
// volumes with anisotropic voxels: the 95th percentile Hausdorff distance (HD95), the Hausdorff
// distance (HD), the average surface distance (ASD) and the normalised surface Dice (NSD) at a
// tolerance, as MONAI defines them (monai/metrics: compute_hausdorff_distance,
// compute_average_surface_distance, compute_surface_dice, and get_mask_edges /
// get_surface_distance / get_edge_surface_distance in utils.py, MONAI 1.3 and later):
//
// - The surface of a mask is its boundary voxels: the voxels of the mask that binary erosion
//   (the cross-shaped structuring element: 4 neighbours in 2-D, 6 in 3-D; outside the grid
//   counts as background) removes; MONAI's default (use_subvoxels=False).
// - Distances go from each surface voxel of one mask to the nearest surface voxel of the other,
//   through an exact Euclidean distance transform with the voxel spacing (scipy's
//   distance_transform_edt with `sampling=`), both directions.
// - HD95: the 95th percentile of each direction's distances (linear interpolation, as
//   numpy.percentile and torch.quantile), the larger of the two (compute_hausdorff_distance with
//   percentile=95, directed=False). HD: the same with the maximum.
// - ASD: the mean of both directions' distances taken together (compute_average_surface_distance
//   with symmetric=True: MONAI >= 1.3 concatenates the two sets; 1.2 and before averaged the two
//   means).
// - NSD: the share of both surfaces' voxels that lie within the tolerance of the other surface,
//   (|{d <= tol} pred->label| + |{d <= tol} label->pred|) / (|pred surface| + |label surface|).
// - Empty masks, as MONAI returns them: both empty -> NaN for all four (nothing to measure);
//   exactly one empty -> HD95, HD and ASD +Infinity (every distance to an empty surface is
//   infinite) and NSD 0. (MONAI's torch code yields NaN for HD95 in the one-empty case, from
//   interpolating between two infinities in torch.quantile; the percentile of distances that are
//   all infinite is infinite, which is what is returned here.)
//
// The distance transform is Felzenszwalb and Huttenlocher's ("Distance Transforms of Sampled
// Functions", Theory of Computing 8, 2012): exact, separable, linear in the number of voxels,
// one pass per axis over the lower envelope of parabolas scaled by that axis's spacing.
// Browser-safe.

/** What {@link surfaceScores} returns; distances in the unit of the spacing (mm). */
export interface SurfaceScores {
  /** 95th percentile Hausdorff distance. */
  hd95: number;
  /** Hausdorff distance (the maximum). */
  hd: number;
  /** Average (symmetric) surface distance. */
  asd: number;
  /** Normalised surface Dice at the tolerance, 0..1. */
  nsd: number;
}

/** Checks that `dims` (x fastest; 1 to 3 axes) and `spacing` fit an array of `length` voxels. */
function checkGrid(length: number, dims: readonly number[], spacing?: readonly number[]): void {
  if (dims.length < 1 || dims.length > 3 || dims.some((d) => !Number.isInteger(d) || d < 1)) throw new Error(`surface metrics: dims ${dims.join(' x ')} must be 1 to 3 positive integers`);
  const n = dims.reduce((a, b) => a * b, 1);
  if (n !== length) throw new Error(`surface metrics: ${length} voxels for dims ${dims.join(' x ')} (${n})`);
  if (spacing && (spacing.length !== dims.length || spacing.some((s) => !(s > 0) || !Number.isFinite(s)))) {
    throw new Error(`surface metrics: spacing ${spacing.join(', ')} must give one positive size per axis of ${dims.join(' x ')}`);
  }
}

/** [nx, ny, nz] of 1- to 3-axis dims (missing axes 1), and the spacing likewise (missing 1). */
const dims3 = (dims: readonly number[]): [number, number, number] => [dims[0], dims[1] ?? 1, dims[2] ?? 1];
const spacing3 = (spacing: readonly number[]): [number, number, number] => [spacing[0], spacing[1] ?? 1, spacing[2] ?? 1];

/**
 * The lower envelope of the parabolas s2 (q - p)^2 + f[o + p] over the points p where f is
 * finite, evaluated at every q of the line (Felzenszwalb and Huttenlocher's algorithm 1): the
 * line's `n` values are read from `f` at offset `o` and written to `d`; `v`, `z` are work arrays
 * of n and n + 1. With no finite point every output is Infinity.
 */
export function envelope(f: Float64Array, o: number, d: Float64Array, n: number, s2: number, v: Int32Array, z: Float64Array): void {
  let k = -1;
  for (let q = 0; q < n; q++) {
    const fq = f[o + q];
    if (fq === Infinity) continue;
    if (k < 0) {
      k = 0;
      v[0] = q;
      z[0] = -Infinity;
      z[1] = Infinity;
      continue;
    }
    const cq = fq + s2 * q * q;
    let x: number;
    for (;;) {
      const p = v[k];
      x = (cq - (f[o + p] + s2 * p * p)) / (2 * s2 * (q - p));
      if (x > z[k]) break;
      k--; // z[0] is -Infinity: k never falls below 0
    }
    k++;
    v[k] = q;
    z[k] = x;
    z[k + 1] = Infinity;
  }
  if (k < 0) {
    d.fill(Infinity, 0, n);
    return;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    while (z[k + 1] < q) k++;
    const p = v[k];
    d[q] = s2 * (q - p) * (q - p) + f[o + p];
  }
}

/** Columns of x handled together by the passes along y and z: their values are gathered row by
 *  row in runs of this many neighbours, which keeps the strided reads in cache (2-3x faster). */
const BLOCK = 32;

/**
 * The squared Euclidean distance from every voxel to the nearest nonzero voxel of `features`
 * (0 on the features, Infinity everywhere when there is none), on a grid of `dims` (x fastest;
 * 1 to 3 axes) with voxel sizes `spacing` along each axis: exact, as scipy's
 * distance_transform_edt(features == 0, sampling=spacing) ** 2.
 */
export function squaredDistanceTransform(features: ArrayLike<number>, dims: readonly number[], spacing: readonly number[]): Float64Array {
  checkGrid(features.length, dims, spacing);
  const [nx, ny, nz] = dims3(dims);
  const [sx, sy, sz] = spacing3(spacing);
  const plane = nx * ny;
  const out = new Float64Array(features.length);
  // Along x straight from the features: the nearest feature of the row on either side.
  for (let o = 0; o < out.length; o += nx) {
    let last = -Infinity;
    for (let x = 0; x < nx; x++) {
      if (features[o + x]) last = x;
      out[o + x] = x - last; // Infinity before the row's first feature
    }
    last = Infinity;
    for (let x = nx - 1; x >= 0; x--) {
      if (features[o + x]) last = x;
      const t = Math.min(out[o + x], last - x) * sx;
      out[o + x] = t * t;
    }
  }
  // Along y, then z: the envelope of the previous pass's values on each line.
  const longest = Math.max(ny, nz);
  const lines = new Float64Array(longest * BLOCK);
  const d = new Float64Array(longest);
  const v = new Int32Array(longest);
  const z = new Float64Array(longest + 1);
  /** Every line of `n` voxels `stride` apart that starts at `first + x` for x in 0..nx-1. */
  const pass = (n: number, stride: number, s: number, first: number) => {
    const s2 = s * s;
    for (let x0 = 0; x0 < nx; x0 += BLOCK) {
      const width = Math.min(BLOCK, nx - x0);
      let finite = 0; // bit b: line b holds a finite value
      for (let i = 0; i < n; i++) {
        const row = first + x0 + i * stride;
        for (let b = 0; b < width; b++) {
          const value = out[row + b];
          lines[b * n + i] = value;
          if (value !== Infinity) finite |= 1 << b;
        }
      }
      if (!finite) continue;
      for (let b = 0; b < width; b++) {
        if (!(finite & (1 << b))) continue; // a line with no finite value stays Infinity
        envelope(lines, b * n, d, n, s2, v, z);
        lines.set(d.subarray(0, n), b * n);
      }
      for (let i = 0; i < n; i++) {
        const row = first + x0 + i * stride;
        for (let b = 0; b < width; b++) out[row + b] = lines[b * n + i];
      }
    }
  };
  if (ny > 1) for (let k = 0; k < nz; k++) pass(ny, nx, sy, k * plane);
  if (nz > 1) for (let y = 0; y < ny; y++) pass(nz, plane, sz, y * nx);
  return out;
}

/** The Euclidean distance to the nearest feature voxel: the square root of {@link squaredDistanceTransform}. */
export function distanceTransform(features: ArrayLike<number>, dims: readonly number[], spacing: readonly number[]): Float64Array {
  const out = squaredDistanceTransform(features, dims, spacing);
  for (let i = 0; i < out.length; i++) out[i] = Math.sqrt(out[i]);
  return out;
}

/**
 * The surface (boundary) voxels of a mask (nonzero = inside) on a grid of `dims`: the voxels of
 * the mask with a face neighbour (4 in 2-D, 6 in 3-D) outside it or outside the grid; what
 * `mask ^ scipy.ndimage.binary_erosion(mask)` gives (MONAI's get_mask_edges).
 */
export function surfaceVoxels(mask: ArrayLike<number>, dims: readonly number[]): Uint8Array {
  checkGrid(mask.length, dims);
  const [nx, ny, nz] = dims3(dims);
  const rank = dims.length;
  const plane = nx * ny;
  const edge = new Uint8Array(mask.length);
  for (let k = 0, i = 0; k < nz; k++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        if (!mask[i]) continue;
        const outside =
          x === 0 || x === nx - 1 || !mask[i - 1] || !mask[i + 1] ||
          (rank >= 2 && (y === 0 || y === ny - 1 || !mask[i - nx] || !mask[i + nx])) ||
          (rank >= 3 && (k === 0 || k === nz - 1 || !mask[i - plane] || !mask[i + plane]));
        if (outside) edge[i] = 1;
      }
    }
  }
  return edge;
}

/** The smallest box (per axis [first, last]) holding every nonzero voxel of `a` or `b`, or null when both are empty. */
function unionBox(a: ArrayLike<number>, b: ArrayLike<number>, dims: readonly number[]): [number, number][] | null {
  const [nx, ny, nz] = dims3(dims);
  const lo = [Infinity, Infinity, Infinity];
  const hi = [-1, -1, -1];
  for (let k = 0, i = 0; k < nz; k++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        if (!a[i] && !b[i]) continue;
        if (x < lo[0]) lo[0] = x;
        if (x > hi[0]) hi[0] = x;
        if (y < lo[1]) lo[1] = y;
        if (y > hi[1]) hi[1] = y;
        if (k < lo[2]) lo[2] = k;
        if (k > hi[2]) hi[2] = k;
      }
    }
  }
  if (hi[0] < 0) return null;
  return dims.map((_, axis) => [lo[axis], hi[axis]] as [number, number]);
}

/** The voxels of `a` inside `box` (see unionBox), as 0/1, x fastest. */
function cropTo(a: ArrayLike<number>, dims: readonly number[], box: [number, number][]): Uint8Array {
  const [nx, ny] = dims3(dims);
  const [[x0, x1], [y0, y1] = [0, 0], [z0, z1] = [0, 0]] = box;
  const out = new Uint8Array((x1 - x0 + 1) * (y1 - y0 + 1) * (z1 - z0 + 1));
  let o = 0;
  for (let k = z0; k <= z1; k++) {
    for (let y = y0; y <= y1; y++) {
      const row = (k * ny + y) * nx;
      for (let x = x0; x <= x1; x++) out[o++] = a[row + x] ? 1 : 0;
    }
  }
  return out;
}

/** Both directions' surface distances of {@link surfaceDistances}. */
export interface SurfaceDistances {
  /** From each surface voxel of the prediction to the label's surface. */
  predToLabel: Float64Array;
  /** From each surface voxel of the label to the prediction's surface. */
  labelToPred: Float64Array;
}

/**
 * The distances from every surface voxel of `pred` to the nearest surface voxel of `label` and
 * back, in the unit of `spacing`, on a grid of `dims` (x fastest). When exactly one mask is
 * empty, both directions hold Infinity once per surface voxel of the other (as MONAI's
 * get_surface_distance); when both are, both are empty. The masks are cropped to the box
 * around them first (what MONAI's get_mask_edges does): the same distances, less work.
 */
export function surfaceDistances(pred: ArrayLike<number>, label: ArrayLike<number>, dims: readonly number[], spacing: readonly number[]): SurfaceDistances {
  checkGrid(pred.length, dims, spacing);
  checkGrid(label.length, dims);
  const box = unionBox(pred, label, dims);
  if (!box) return { predToLabel: new Float64Array(0), labelToPred: new Float64Array(0) };
  const boxDims = box.map(([a, b]) => b - a + 1);
  const predEdge = surfaceVoxels(cropTo(pred, dims, box), boxDims);
  const labelEdge = surfaceVoxels(cropTo(label, dims, box), boxDims);
  const count = (e: Uint8Array) => e.reduce((s, v) => s + v, 0);
  const nPred = count(predEdge);
  const nLabel = count(labelEdge);
  if (nPred === 0 || nLabel === 0) {
    const infinite = new Float64Array(nPred + nLabel).fill(Infinity);
    return { predToLabel: infinite, labelToPred: infinite.slice() };
  }
  const at = (edges: Uint8Array, squared: Float64Array, n: number) => {
    const out = new Float64Array(n);
    for (let i = 0, j = 0; i < edges.length; i++) if (edges[i]) out[j++] = Math.sqrt(squared[i]);
    return out;
  };
  return {
    predToLabel: at(predEdge, squaredDistanceTransform(labelEdge, boxDims, spacing), nPred),
    labelToPred: at(labelEdge, squaredDistanceTransform(predEdge, boxDims, spacing), nLabel),
  };
}

/**
 * The `p`th percentile (0..100) of `values` with linear interpolation between the two nearest
 * ranks (numpy.percentile's default, torch.quantile's); NaN for no values.
 */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new Error(`percentile: ${p} is not between 0 and 100`);
  const n = values.length;
  if (n === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const h = ((n - 1) * p) / 100;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  // Equal neighbours (Infinity among them) need no interpolation, which would give NaN for Infinity.
  return sorted[lo] === sorted[hi] ? sorted[lo] : sorted[lo] + (sorted[hi] - sorted[lo]) * (h - lo);
}

/** HD95, HD, ASD and NSD (at `toleranceMm`) of two directions' surface distances; see the module comment for the empty cases. */
export function scoresOfDistances(d: SurfaceDistances, toleranceMm: number): SurfaceScores {
  const { predToLabel: a, labelToPred: b } = d;
  if (a.length + b.length === 0) return { hd95: NaN, hd: NaN, asd: NaN, nsd: NaN };
  let sum = 0;
  let within = 0;
  let max = 0;
  for (const set of [a, b]) {
    for (let i = 0; i < set.length; i++) {
      sum += set[i];
      if (set[i] <= toleranceMm) within++;
      if (set[i] > max) max = set[i];
    }
  }
  return {
    hd95: Math.max(percentile(a, 95), percentile(b, 95)),
    hd: max,
    asd: sum / (a.length + b.length),
    nsd: within / (a.length + b.length),
  };
}

/**
 * HD95, HD, ASD and NSD of the mask `pred` against `label` (nonzero = inside) on a grid of
 * `dims` (x fastest; 2-D or 3-D) with voxel sizes `spacing` (mm), NSD at `toleranceMm`.
 */
export function surfaceScores(pred: ArrayLike<number>, label: ArrayLike<number>, dims: readonly number[], spacing: readonly number[], toleranceMm: number): SurfaceScores {
  if (!(toleranceMm >= 0) || !Number.isFinite(toleranceMm)) throw new Error(`surface metrics: the tolerance must be a finite number of mm, at least 0; got ${toleranceMm}`);
  return scoresOfDistances(surfaceDistances(pred, label, dims, spacing), toleranceMm);
}
