// The lungs found in a CT image without a model or a mask file: the classical extraction, slice
// by slice (threshold the air, drop the air outside the patient, keep the large enclosed
// components, fill holes, close small gaps). Used by predict, evaluate and the web page when no
// lung mask is given. Browser-safe: typed arrays only, iterative floods, no recursion.

import { fromSliceStack, toSliceStack, type Volume } from './data/nifti';
import { normaliseImage } from './data/normalise';
import { otsuThreshold, reachFromBorder } from './lesions';
import { envelope } from './surface-metrics';

/** Settings of {@link lungSlice}. Sizes are in pixels of a slice 512 pixels across and scale with
 *  the slice's shorter side: many CT files (the shipped ones among them) give no voxel size, and a
 *  CT slice spans the chest whatever its pixel count. */
export interface LungOptions {
  /** Level (normalised image, 0..1) below which a pixel is air; default: {@link airLevel}. */
  threshold?: number;
  /** Enclosed air components smaller than this many pixels are dropped (default 200: airways
   *  seen end-on, gas in the bowel, noise; a lung's section in a slice is thousands of pixels). */
  minArea?: number;
  /** Radius of the disc of the closing that bridges gaps in the lung's edge (default 10). */
  closingRadius?: number;
  /** See {@link airLevel} (default 4). */
  maxGrowthRatio?: number;
  /** Radius of the disc by which the lungs found are grown (default 2, about 1.5 mm at the usual
   *  0.7-0.8 mm pixel): the lung's outline as radiologists draw it takes in its edge, the
   *  partial-volume pixels against the pleura that the air threshold leaves out. */
  edgeGrowth?: number;
}

const DEFAULTS = { minArea: 200, closingRadius: 10, maxGrowthRatio: 4, edgeGrowth: 2 } as const;

/** Threshold levels: 256ths of the normalised range, as {@link otsuThreshold} bins it; an 8-bit
 *  image (v / 255) never lies on a level's edge, so HU and 8-bit copies of an image agree. */
const LEVELS = 256;
/** The step of the threshold search, in levels: about 25 HU in a lung window 1400-1600 HU wide. */
const LEVEL_STEP = 4;

/** Work buffers for one slice size, reused from slice to slice. */
export class LungWork {
  readonly labels: Int32Array;
  readonly stack: Int32Array;
  readonly reached: Uint8Array;
  readonly crop: Uint8Array;
  readonly part: Uint8Array;
  readonly distance: Float64Array;
  readonly column: Float64Array;
  readonly envelope: Int32Array;
  readonly bounds: Float64Array;
  readonly columnOut: Float64Array;
  readonly parent: Int32Array;
  readonly size: Int32Array;
  readonly order: Int32Array;
  readonly bins: Uint8Array;
  constructor(readonly nx: number, readonly ny: number) {
    const plane = nx * ny;
    const n = Math.max(nx, ny);
    this.labels = new Int32Array(plane);
    this.stack = new Int32Array(plane);
    this.reached = new Uint8Array(plane);
    this.crop = new Uint8Array(plane);
    this.part = new Uint8Array(plane);
    this.distance = new Float64Array(plane);
    this.column = new Float64Array(n);
    this.envelope = new Int32Array(n);
    this.bounds = new Float64Array(n + 1);
    this.columnOut = new Float64Array(n);
    this.parent = new Int32Array(plane + 1);
    this.size = new Int32Array(plane + 1);
    this.order = new Int32Array(plane);
    this.bins = new Uint8Array(plane);
  }
}

/**
 * The lungs in one slice of a normalised image (values 0..1 as normaliseImage gives them, `nx`
 * x `ny`, x fastest), as 0/1 (all 0 where the slice holds no lung):
 * 1. Air: pixels below the threshold ({@link airLevel}).
 * 2. Air and tissue are cut into 4-connected components. The patient's body is the largest
 *    tissue component; air components that touch the slice's border (outside the patient, the
 *    padding outside the scanner's field of view), that do not touch the body (air inside the
 *    scanner's table or clothes), or that are smaller than `minArea` (airways seen end-on, gas
 *    in the bowel) are dropped, except a lung cut by the image's edge ({@link keepLungCutByEdge}).
 * 3. Each lung on its own side of the mediastinum (split at the column between them with the
 *    fewest lung pixels): holes are filled (vessels and lesions enclosed by aerated lung), a
 *    closing with a disc of `closingRadius` bridges the notches that vessels and lesions cut into
 *    the lung's edge, and the holes that the closing encloses are filled too. The closing's
 *    erosion stops `edgeGrowth` short of its dilation, which grows the lungs by `edgeGrowth`.
 */
export function lungSlice(image: Float32Array, nx: number, ny: number, o: LungOptions = {}, work = new LungWork(nx, ny)): Uint8Array {
  const plane = nx * ny;
  if (image.length !== plane) throw new RangeError(`lungSlice: ${image.length} pixels for a ${nx} x ${ny} slice`);
  if (work.nx !== nx || work.ny !== ny) throw new RangeError(`lungSlice: work buffers for ${work.nx} x ${work.ny}, slice ${nx} x ${ny}`);
  const scale = Math.min(nx, ny) / 512;
  const minArea = (o.minArea ?? DEFAULTS.minArea) * scale * scale;
  const radius = (o.closingRadius ?? DEFAULTS.closingRadius) * scale;
  const grow = (o.edgeGrowth ?? DEFAULTS.edgeGrowth) * scale;
  const threshold = o.threshold ?? airLevel(image, nx, ny, { maxGrowthRatio: o.maxGrowthRatio, minGrowth: minArea, pocketArea: minArea / 10 }, work);
  const { labels, stack } = work;
  labels.fill(0);
  // Tissue components get labels -1, -2, ...; air components 1, 2, ... (0: not yet visited).
  let tissueCount = 0;
  let bodyLabel = 0;
  let bodyArea = 0;
  for (let s = 0; s < plane; s++) {
    if (labels[s] !== 0 || image[s] < threshold) continue;
    const label = -++tissueCount;
    let top = 0;
    let area = 0;
    labels[s] = label;
    stack[top++] = s;
    while (top > 0) {
      const i = stack[--top];
      area++;
      const x = i % nx;
      if (x > 0 && labels[i - 1] === 0 && image[i - 1] >= threshold) (labels[i - 1] = label), (stack[top++] = i - 1);
      if (x < nx - 1 && labels[i + 1] === 0 && image[i + 1] >= threshold) (labels[i + 1] = label), (stack[top++] = i + 1);
      if (i >= nx && labels[i - nx] === 0 && image[i - nx] >= threshold) (labels[i - nx] = label), (stack[top++] = i - nx);
      if (i < plane - nx && labels[i + nx] === 0 && image[i + nx] >= threshold) (labels[i + nx] = label), (stack[top++] = i + nx);
    }
    if (area > bodyArea) {
      bodyArea = area;
      bodyLabel = label;
    }
  }
  const mask = new Uint8Array(plane);
  if (bodyLabel === 0) return mask; // all air: no patient
  // Air components: 1, 2, ... in `labels`; `parts[label]` says what each is.
  const parts: AirPart[] = [{ area: 0, border: false, touchesBody: false, x0: 0, x1: 0, y0: 0, y1: 0, sumX: 0 }];
  for (let s = 0; s < plane; s++) {
    if (labels[s] !== 0) continue;
    const label = parts.length;
    const part: AirPart = { area: 0, border: false, touchesBody: false, x0: nx, x1: -1, y0: ny, y1: -1, sumX: 0 };
    parts.push(part);
    let top = 0;
    labels[s] = label;
    stack[top++] = s;
    while (top > 0) {
      const i = stack[--top];
      const x = i % nx;
      const y = (i - x) / nx;
      part.area++;
      part.sumX += x;
      if (x < part.x0) part.x0 = x;
      if (x > part.x1) part.x1 = x;
      if (y < part.y0) part.y0 = y;
      if (y > part.y1) part.y1 = y;
      if (x === 0 || x === nx - 1 || y === 0 || y === ny - 1) part.border = true;
      // Unvisited neighbours are air (tissue is all labelled); negative labels are tissue.
      if (x > 0) {
        const l = labels[i - 1];
        if (l === 0) (labels[i - 1] = label), (stack[top++] = i - 1);
        else if (l === bodyLabel) part.touchesBody = true;
      }
      if (x < nx - 1) {
        const l = labels[i + 1];
        if (l === 0) (labels[i + 1] = label), (stack[top++] = i + 1);
        else if (l === bodyLabel) part.touchesBody = true;
      }
      if (y > 0) {
        const l = labels[i - nx];
        if (l === 0) (labels[i - nx] = label), (stack[top++] = i - nx);
        else if (l === bodyLabel) part.touchesBody = true;
      }
      if (y < ny - 1) {
        const l = labels[i + nx];
        if (l === 0) (labels[i + nx] = label), (stack[top++] = i + nx);
        else if (l === bodyLabel) part.touchesBody = true;
      }
    }
  }
  const keep = parts.map((p) => p.touchesBody && p.area >= minArea && !p.border);
  keepLungCutByEdge(parts, keep, labels, bodyLabel, nx, minArea);
  let x0 = nx;
  let x1 = -1;
  let y0 = ny;
  let y1 = -1;
  parts.forEach((p, l) => {
    if (!keep[l]) return;
    x0 = Math.min(x0, p.x0);
    x1 = Math.max(x1, p.x1);
    y0 = Math.min(y0, p.y0);
    y1 = Math.max(y1, p.y1);
  });
  if (x1 < 0) return mask;
  // The rest works on the lungs' bounding box, with room for the closing's dilation.
  const margin = Math.ceil(Math.max(radius, grow)) + 1;
  x0 = Math.max(0, x0 - margin);
  x1 = Math.min(nx - 1, x1 + margin);
  y0 = Math.max(0, y0 - margin);
  y1 = Math.min(ny - 1, y1 + margin);
  const cw = x1 - x0 + 1;
  const ch = y1 - y0 + 1;
  const crop = work.crop.subarray(0, cw * ch);
  for (let y = 0; y < ch; y++) {
    for (let x = 0; x < cw; x++) {
      const l = labels[x0 + x + nx * (y0 + y)];
      crop[x + cw * y] = l > 0 && keep[l] ? 1 : 0;
    }
  }
  // Each lung on its own side of the mediastinum: where the lungs meet in front of the heart (or
  // the closing bridges them there or behind it), filling holes in both at once would take the
  // heart between them for lung.
  const split = mediastinumColumn(crop, cw, ch);
  closeAndFill(crop, cw, ch, 0, split, radius, grow, work);
  closeAndFill(crop, cw, ch, split, cw, radius, grow, work);
  for (let y = 0; y < ch; y++) mask.set(crop.subarray(cw * y, cw * (y + 1)), x0 + nx * (y0 + y));
  return mask;
}

/** An air component of a slice: its area (pixels), whether it touches the slice's border and the
 *  patient's body, its bounding box and the sum of its pixels' columns. */
interface AirPart {
  area: number;
  border: boolean;
  touchesBody: boolean;
  x0: number;
  x1: number;
  y0: number;
  y1: number;
  sumX: number;
}

/**
 * A lung cut by the image's edge (a patient wider than the field of view) touches the border
 * like the air outside the patient. It is told from that air by where it lies: when the lungs
 * found enclosed all lie (by their centres) on one side of the body's middle, an air component
 * wholly on the other side of the middle and beside them (past their columns), within their
 * rows, touching the body and at least `minArea`, is the other lung, and is kept. The air around
 * the patient spans more rows than the lungs, or lies above or below them.
 */
function keepLungCutByEdge(parts: readonly AirPart[], keep: boolean[], labels: Int32Array, bodyLabel: number, nx: number, minArea: number): void {
  let bodyX0 = nx;
  let bodyX1 = -1;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== bodyLabel) continue;
    const x = i % nx;
    if (x < bodyX0) bodyX0 = x;
    if (x > bodyX1) bodyX1 = x;
  }
  const middle = (bodyX0 + bodyX1) / 2;
  const lungs = parts.filter((_, l) => keep[l]);
  if (lungs.length === 0) return;
  const left = lungs.every((p) => p.sumX / p.area < middle);
  if (!left && !lungs.every((p) => p.sumX / p.area > middle)) return; // lungs on both sides
  const x0 = Math.min(...lungs.map((p) => p.x0));
  const x1 = Math.max(...lungs.map((p) => p.x1));
  const y0 = Math.min(...lungs.map((p) => p.y0));
  const y1 = Math.max(...lungs.map((p) => p.y1));
  parts.forEach((p, l) => {
    const beside = left ? p.x0 > Math.max(middle, x1) : p.x1 < Math.min(middle, x0);
    if (p.border && p.touchesBody && p.area >= minArea && beside && p.y0 >= y0 && p.y1 <= y1) keep[l] = true;
  });
}

/** The column of `mask` (`nx` x `ny`) with the fewest lung pixels in its middle third (of equal
 *  counts, the one nearest the middle): the mediastinum between the two lungs. */
function mediastinumColumn(mask: Uint8Array, nx: number, ny: number): number {
  let best = Math.floor(nx / 2);
  let fewest = Infinity;
  for (let x = Math.floor(nx / 3); x < Math.ceil((2 * nx) / 3); x++) {
    let count = 0;
    for (let y = 0; y < ny; y++) count += mask[x + nx * y];
    if (count < fewest || (count === fewest && Math.abs(x - nx / 2) < Math.abs(best - nx / 2))) {
      fewest = count;
      best = x;
    }
  }
  return best;
}

/** Fills the holes of the columns `xa` to `xb` - 1 of `mask` (`nx` x `ny`), as an image of their
 *  own; closes them with a disc of `radius`, its erosion stopping `grow` pixels short of its
 *  dilation (the closed lungs grown by `grow` at no cost), and fills the holes that the closing
 *  encloses. */
function closeAndFill(mask: Uint8Array, nx: number, ny: number, xa: number, xb: number, radius: number, grow: number, work: LungWork): void {
  const w = xb - xa;
  if (w <= 0) return;
  const part = work.part.subarray(0, w * ny);
  for (let y = 0; y < ny; y++) part.set(mask.subarray(xa + nx * y, xb + nx * y), w * y);
  fillHoles(part, w, ny, work);
  const dilateBy = Math.max(radius, grow);
  if (dilateBy >= 1) {
    close(part, w, ny, dilateBy, dilateBy - grow, work);
    fillHoles(part, w, ny, work);
  }
  for (let y = 0; y < ny; y++) mask.set(part.subarray(w * y, w * (y + 1)), xa + nx * y);
}

/**
 * The air threshold of a slice (normalised image, 0..1). It starts at Otsu's level, which
 * separates the aerated lung and the outside air from soft tissue (about -450 HU), and rises
 * by LEVEL_STEP levels while the air enclosed by the body (not reached from the slice's
 * border) grows steadily: each step takes in more of the lung's ground glass and partial
 * volume, which the lung mask of a COVID-19 scan must hold and Otsu's level leaves out. It
 * stops before the first step
 * - whose growth exceeds `maxGrowthRatio` times the smallest growth seen so far (the threshold
 *   reaches fat, which joins the lungs at once),
 * - after which the enclosed air falls into more than twice (plus 10) the fewest pockets
 *   (components of at least `pocketArea` pixels) seen so far: fat reached gradually, as in
 *   8-bit windows where its level overlaps the densest ground glass, shows as many small
 *   pockets of "air" in the chest wall and the mediastinum at once, where ground glass only
 *   widens the lungs,
 * - or where the enclosed air shrinks (the lungs leak through the chest wall into the outside
 *   air).
 * A fixed level cannot do this for every file: 8-bit copies come in different windows, and one
 * level that suits them is soft tissue in Hounsfield units. `minGrowth` (pixels) is the growth
 * always allowed, for slices with little or no lung. One union-find over the pixels in order of
 * value gives the enclosed area and pockets at every level at the cost of one labelling.
 */
export function airLevel(image: Float32Array, nx: number, ny: number, o: { maxGrowthRatio?: number; minGrowth?: number; pocketArea?: number } = {}, work = new LungWork(nx, ny)): number {
  const plane = nx * ny;
  const maxGrowthRatio = o.maxGrowthRatio ?? DEFAULTS.maxGrowthRatio;
  const minGrowth = o.minGrowth ?? 0;
  const pocketArea = o.pocketArea ?? DEFAULTS.minArea / 10;
  const { parent, size, order, bins } = work;
  const counts = new Int32Array(LEVELS + 1);
  for (let i = 0; i < plane; i++) {
    const b = Math.min(LEVELS - 1, Math.max(0, Math.floor(image[i] * LEVELS)));
    bins[i] = b;
    counts[b + 1]++;
  }
  for (let b = 0; b < LEVELS; b++) counts[b + 1] += counts[b];
  const next = counts.slice(0, LEVELS);
  for (let i = 0; i < plane; i++) order[next[bins[i]]++] = i;
  // Node `plane` is the outside: every border pixel joins it. parent -1: not air yet.
  const OUTSIDE = plane;
  parent.fill(-1);
  size.fill(1);
  parent[OUTSIDE] = OUTSIDE;
  const find = (i: number): number => {
    while (parent[i] !== i) {
      const up = parent[parent[i]];
      parent[i] = up;
      i = up;
    }
    return i;
  };
  // The root of the air joined to the outside, and the enclosed components of at least
  // pocketArea pixels, kept up to date by union.
  let outside = OUTSIDE;
  let pockets = 0;
  const pocket = (r: number): number => (r !== outside && size[r] >= pocketArea ? 1 : 0);
  const union = (a: number, b: number): void => {
    let ra = find(a);
    let rb = find(b);
    if (ra === rb) return;
    pockets -= pocket(ra) + pocket(rb);
    if (size[ra] < size[rb]) [ra, rb] = [rb, ra];
    parent[rb] = ra;
    size[ra] += size[rb];
    if (rb === outside) outside = ra;
    pockets += pocket(ra);
  };
  let added = 0;
  let done = 0;
  /** Makes the pixels below `level` air; the area of the air not joined to the outside. */
  const enclosedBelow = (level: number): number => {
    for (const end = counts[Math.min(level, LEVELS)]; done < end; done++) {
      const i = order[done];
      parent[i] = i;
      added++;
      const x = i % nx;
      if (x === 0 || x === nx - 1 || i < nx || i >= plane - nx) union(i, OUTSIDE);
      if (x > 0 && parent[i - 1] !== -1) union(i, i - 1);
      if (x < nx - 1 && parent[i + 1] !== -1) union(i, i + 1);
      if (i >= nx && parent[i - nx] !== -1) union(i, i - nx);
      if (i < plane - nx && parent[i + nx] !== -1) union(i, i + nx);
    }
    return added - (size[outside] - 1);
  };
  let level = Math.round(otsuThreshold(image) * LEVELS);
  let enclosed = enclosedBelow(level);
  let slowest = Infinity;
  let fewestPockets = pockets;
  for (let up = level + LEVEL_STEP; up <= LEVELS; up += LEVEL_STEP) {
    const more = enclosedBelow(up);
    const growth = more - enclosed;
    if (growth < 0 || growth > Math.max(maxGrowthRatio * slowest, minGrowth) || pockets > 2 * fewestPockets + 10) break;
    slowest = Math.min(slowest, growth);
    fewestPockets = Math.min(fewestPockets, pockets);
    level = up;
    enclosed = more;
  }
  return level / LEVELS;
}

/** Sets the pixels of `mask` (`nx` x `ny`) not reachable from its border through 0s (4-connected). */
function fillHoles(mask: Uint8Array, nx: number, ny: number, work: LungWork): void {
  const plane = nx * ny;
  const { reached, stack } = work;
  reachFromBorder(nx, ny, (i) => !mask[i], reached, stack);
  for (let i = 0; i < plane; i++) if (!reached[i]) mask[i] = 1;
}

/** Dilation of `mask` by a disc of `dilateBy` pixels and erosion of the result by a disc of
 *  `erodeBy` (a closing where they are equal), in place: each a threshold of an exact Euclidean
 *  distance transform (any radius, same cost). */
function close(mask: Uint8Array, nx: number, ny: number, dilateBy: number, erodeBy: number, work: LungWork): void {
  const plane = nx * ny;
  const d = work.distance;
  squaredDistance(mask, 1, nx, ny, work);
  for (let i = 0; i < plane; i++) mask[i] = d[i] <= dilateBy * dilateBy ? 1 : 0;
  squaredDistance(mask, 0, nx, ny, work);
  for (let i = 0; i < plane; i++) mask[i] = d[i] > erodeBy * erodeBy ? 1 : 0;
}

/**
 * Squared Euclidean distance from every pixel of `mask` (`nx` x `ny`) to the nearest pixel that
 * is `value`, into `work.distance` (Felzenszwalb and Huttenlocher: distances along each row, then
 * the lower envelope of parabolas down each column, surface-metrics' `envelope`). Beyond the
 * border counts as neither value; Infinity where no pixel is `value`.
 */
function squaredDistance(mask: Uint8Array, value: 0 | 1, nx: number, ny: number, work: LungWork): void {
  const d = work.distance;
  for (let y = 0; y < ny; y++) {
    const row = nx * y;
    let last = -1;
    for (let x = 0; x < nx; x++) {
      if (mask[row + x] === value) last = x;
      d[row + x] = last < 0 ? Infinity : (x - last) * (x - last);
    }
    last = -1;
    for (let x = nx - 1; x >= 0; x--) {
      if (mask[row + x] === value) last = x;
      if (last >= 0 && (last - x) * (last - x) < d[row + x]) d[row + x] = (last - x) * (last - x);
    }
  }
  const { column: f, envelope: v, bounds: z, columnOut: out } = work;
  for (let x = 0; x < nx; x++) {
    for (let q = 0; q < ny; q++) f[q] = d[x + nx * q];
    envelope(f, 0, out, ny, 1, v, z);
    for (let q = 0; q < ny; q++) d[x + nx * q] = out[q];
  }
}

/**
 * The lungs of every slice of a normalised image (values 0..1) stored as `nz` slices of `nx` x
 * `ny` (x fastest, slice slowest), as 0/1 in the same layout; see {@link lungSlice}.
 */
export function lungMask(image: Float32Array, nx: number, ny: number, nz: number, o: LungOptions = {}): Uint8Array {
  const plane = nx * ny;
  if (image.length !== plane * nz) throw new RangeError(`lungMask: ${image.length} values for ${nx} x ${ny} x ${nz}`);
  const out = new Uint8Array(image.length);
  const work = new LungWork(nx, ny);
  for (let k = 0; k < nz; k++) out.set(lungSlice(image.subarray(k * plane, (k + 1) * plane), nx, ny, o, work), k * plane);
  return out;
}

/**
 * The lungs of a volume as read from a file (HU, 8-bit or 0..1; normalised as the network
 * sees it), slice by slice along its header's slice axis, as 0/1 in the file's layout (x
 * fastest): the lung mask {@link lungSlice} computes where the user has none. Pass `normalised`
 * (normaliseImage(volume).data) when it is at hand.
 */
export function volumeLungMask(volume: Volume, o: LungOptions = {}, normalised?: Float32Array): Uint8Array {
  const data = normalised ?? normaliseImage(volume).data;
  const { data: stack, dims: [width, height, count] } = toSliceStack(data, volume.dims, volume.sliceAxis);
  return fromSliceStack(lungMask(stack, width, height, count, o), volume.dims, volume.sliceAxis);
}

/** The lungs of each slice of a dataset (normalised slices of `width` x `height`, as
 *  SliceDataset.images holds them), in the same order: a region for evaluate where no lung mask
 *  file is given. */
export function sliceLungMasks(images: readonly Float32Array[], width: number, height: number, o: LungOptions = {}): Uint8Array[] {
  const work = new LungWork(width, height);
  return images.map((image) => lungSlice(image, width, height, o, work));
}

/** What evaluate and the reports call the lungs of {@link lungSlice}. */
export const COMPUTED_LUNGS_SOURCE = 'lungs found in the image';

/**
 * Dice of two 0/1 masks of the same size (2 |A and B| / (|A| + |B|)); 1 when both are empty,
 * as the metrics count a slice with no lesion predicted or present: nothing to find, and
 * nothing wrongly found.
 */
export function maskDice(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new RangeError(`maskDice: ${a.length} against ${b.length} values`);
  let both = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ? 1 : 0;
    const y = b[i] ? 1 : 0;
    both += x & y;
    sum += x + y;
  }
  return sum === 0 ? 1 : (2 * both) / sum;
}
