// The page's two views of a scan with its lesion overlay: NiiVue (WebGL2), and, where a browser
// gives no WebGL2 (headless Chromium on the lavapipe/OpenGL ES route, for one), a plain 2-D
// canvas drawn with `overlayRgb`, the function behind `predict`'s pictures. Browser only.

import { Niivue, NVImage, SLICE_TYPE } from '@niivue/niivue';
import type { NiftiSpace, Volume } from '../data/nifti';
import { displayFlips, overlayRgb } from '../overlay';
import { voxelToWorld as orientedVoxelToWorld } from '../data/space';

export interface Viewer {
  readonly kind: 'niivue' | 'canvas';
  /** Show a scan: `display` is a NIfTI of it in `space` (the space the viewer places it in). */
  show(volume: Volume, display: Uint8Array, displayName: string, space: NiftiSpace): Promise<void>;
  /** Lay the 0/1 mask (the scan's layout) over it; null removes it. `nifti`: the mask as NIfTI in the same space. */
  setMask(mask: Uint8Array | null, nifti: Uint8Array | null): Promise<void>;
  setSlice(k: number): void;
  /** Grey values from `low` (black) to `high` (white), in the scan's units. */
  setWindow(low: number, high: number): void;
  setOpacity(alpha: number): void;
  /** Called with the slice index when the user moves through the scan in the viewer itself. */
  onSlice: (k: number) => void;
}

/** Whether this browser gives a WebGL2 context (NiiVue needs one). */
export function hasWebGL2(): boolean {
  try {
    return Boolean(document.createElement('canvas').getContext('webgl2'));
  } catch {
    return false;
  }
}

type Mat = [number[], number[], number[]];

/**
 * The voxel-to-world matrix (3 rows of 4) NIfTI readers use: the sform when set, else the qform;
 * with neither, the quaternion fields as stored (identity rotation, the voxel size) rather than
 * none, so that the viewer always has a grid to draw on.
 */
export function voxelToWorld(space: NiftiSpace): Mat {
  return orientedVoxelToWorld(space) ?? orientedVoxelToWorld({ ...space, qformCode: 1 })!;
}

function apply(m: Mat, v: number[]): number[] {
  return m.map((r) => r[0] * v[0] + r[1] * v[1] + r[2] * v[2] + r[3]);
}

function invert(m: Mat): Mat {
  const [[a, b, c, x], [d, e, f, y], [g, h, i, z]] = m;
  const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
  const det = a * A + b * B + c * C;
  const inv = [
    [A / det, -(b * i - c * h) / det, (b * f - c * e) / det],
    [B / det, (a * i - c * g) / det, -(a * f - c * d) / det],
    [C / det, -(a * h - b * g) / det, (a * e - b * d) / det],
  ];
  return inv.map((r) => [...r, -(r[0] * x + r[1] * y + r[2] * z)]) as Mat;
}

/** NiiVue in axial view, radiological convention (the patient's left on the right), as CT is read. */
export class NiivueViewer implements Viewer {
  readonly kind = 'niivue' as const;
  onSlice: (k: number) => void = () => {};
  private base: NVImage | null = null;
  private overlay: NVImage | null = null;
  private opacity = 0.5;
  private toWorld: Mat | null = null;
  private toVoxel: Mat | null = null;
  private dims: [number, number, number] = [1, 1, 1];
  private slice = 0;

  private constructor(private readonly nv: Niivue) {}

  static async create(canvas: HTMLCanvasElement): Promise<NiivueViewer> {
    const nv = new Niivue({
      dragAndDropEnabled: false, // the page takes the drops
      isRadiologicalConvention: true,
      sliceType: SLICE_TYPE.AXIAL,
      show3Dcrosshair: false,
      crosshairColor: [0.1, 0.9, 0.3, 0.45],
      crosshairWidth: 0.25,
      backColor: [0, 0, 0, 1],
      isColorbar: false,
      isResizeCanvas: true,
      loadingText: '',
      logLevel: 'error',
    });
    await nv.attachToCanvas(canvas);
    nv.setSliceType(SLICE_TYPE.AXIAL);
    const viewer = new NiivueViewer(nv);
    nv.onLocationChange = (loc: unknown) => {
      const mm = (loc as { mm?: ArrayLike<number> }).mm;
      if (!mm || !viewer.toVoxel) return;
      const k = Math.round(apply(viewer.toVoxel, [mm[0], mm[1], mm[2]])[2]);
      if (k >= 0 && k < viewer.dims[2] && k !== viewer.slice) {
        viewer.slice = k;
        viewer.onSlice(k);
      }
    };
    return viewer;
  }

  async show(volume: Volume, display: Uint8Array, displayName: string, space: NiftiSpace): Promise<void> {
    for (const v of [...this.nv.volumes]) this.nv.removeVolume(v);
    this.overlay = null;
    this.dims = volume.dims;
    this.toWorld = voxelToWorld(space);
    this.toVoxel = invert(this.toWorld);
    const buffer = display.slice().buffer;
    this.base = await NVImage.loadFromUrl({ url: displayName, name: displayName, buffer, colormap: 'gray', trustCalMinMax: false });
    this.nv.addVolume(this.base);
    this.setSlice(Math.floor(volume.dims[2] / 2));
  }

  async setMask(mask: Uint8Array | null, nifti: Uint8Array | null): Promise<void> {
    if (this.overlay) this.nv.removeVolume(this.overlay);
    this.overlay = null;
    if (!mask || !nifti) return;
    this.overlay = await NVImage.loadFromUrl({ url: 'lesions.nii', name: 'lesions.nii', buffer: nifti.slice().buffer, colormap: 'red', opacity: this.opacity, cal_min: 0.5, cal_max: 1, trustCalMinMax: true });
    this.nv.addVolume(this.overlay);
    this.setSlice(this.slice);
  }

  setSlice(k: number): void {
    if (!this.base || !this.toWorld) return;
    this.slice = k;
    const [nx, ny] = this.dims;
    const mm = apply(this.toWorld, [(nx - 1) / 2, (ny - 1) / 2, k]);
    this.nv.scene.crosshairPos = this.nv.mm2frac(mm);
    this.nv.drawScene();
  }

  setWindow(low: number, high: number): void {
    if (!this.base) return;
    this.base.cal_min = low;
    this.base.cal_max = high;
    this.nv.updateGLVolume();
  }

  setOpacity(alpha: number): void {
    this.opacity = alpha;
    if (this.overlay) this.nv.setOpacity(this.nv.volumes.indexOf(this.overlay), alpha);
  }
}

/** The fallback: one slice at a time on a 2-D canvas, mirrored into the radiological view as `predict`'s pictures are. */
export class CanvasViewer implements Viewer {
  readonly kind = 'canvas' as const;
  onSlice: (k: number) => void = () => {};
  private volume: Volume | null = null;
  private mask: Uint8Array | null = null;
  private slice = 0;
  private low = 0;
  private high = 1;
  private opacity = 0.5;

  constructor(private readonly canvas: HTMLCanvasElement) {
    canvas.addEventListener('wheel', (e) => {
      if (!this.volume) return;
      e.preventDefault();
      const k = Math.min(this.volume.dims[2] - 1, Math.max(0, this.slice + (e.deltaY > 0 ? 1 : -1)));
      if (k !== this.slice) {
        this.setSlice(k);
        this.onSlice(k);
      }
    });
  }

  async show(volume: Volume): Promise<void> {
    this.volume = volume;
    this.mask = null;
    const [nx, ny] = volume.dims;
    this.canvas.width = nx;
    this.canvas.height = ny;
    // Physical aspect: pixels may not be square.
    const px = Math.abs(volume.space.pixdim[1]) || 1;
    const py = Math.abs(volume.space.pixdim[2]) || 1;
    this.canvas.style.aspectRatio = `${nx * px} / ${ny * py}`;
    this.slice = Math.floor(volume.dims[2] / 2);
    this.draw();
  }

  async setMask(mask: Uint8Array | null): Promise<void> {
    this.mask = mask;
    this.draw();
  }

  setSlice(k: number): void {
    this.slice = k;
    this.draw();
  }

  setWindow(low: number, high: number): void {
    this.low = low;
    this.high = high;
    this.draw();
  }

  setOpacity(alpha: number): void {
    this.opacity = alpha;
    this.draw();
  }

  private draw(): void {
    const v = this.volume;
    if (!v) return;
    const [nx, ny] = v.dims;
    const plane = nx * ny;
    const off = this.slice * plane;
    const span = this.high - this.low || 1;
    const grey = new Float32Array(plane);
    for (let i = 0; i < plane; i++) grey[i] = (v.data[off + i] - this.low) / span;
    const flips = displayFlips(v.space);
    const noMask = new Uint8Array(plane);
    const plain = overlayRgb(grey, noMask, nx, ny, 'fill', flips);
    const drawn = this.mask && this.opacity > 0 ? overlayRgb(grey, this.mask.subarray(off, off + plane), nx, ny, 'fill', flips) : plain;
    const img = new ImageData(nx, ny);
    // overlayRgb's 40% fill, scaled by the opacity slider (0.5 draws it as predict's pictures).
    const w = Math.min(1, this.opacity * 2);
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) img.data[4 * i + c] = Math.round(plain[3 * i + c] + w * (drawn[3 * i + c] - plain[3 * i + c]));
      img.data[4 * i + 3] = 255;
    }
    this.canvas.getContext('2d')!.putImageData(img, 0, 0);
  }
}
