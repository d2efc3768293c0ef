// The web page: load a CT scan and a checkpoint, segment the scan slice by slice on the browser's
// WebGPU with the project's own tensor library, show it with the lesions over it, report area and
// burden as `predict` does, and download the mask and the report. The mask, report and file names
// come from prediction-report.ts, as `predict`'s files do. Browser only; bundled by server.ts.

import { describeConv2dVariant, init, setConv2dVariant, type Runtime } from '@aunet/tensor';
import {
  BURDEN_REFERENCE_TEXT, CheckpointError, DataError, loadModel, pct, maskNifti, mirroredTTA, modelPredictor, predictionFileNames, predictionReport, predictVolume, reportCsv, storedDims, withThreshold,
  type AUNet, type BurdenReference, type IntensityKind, type PredictionReport, type TrainConfig, type Volume,
} from '../index';
import { encodeNifti } from '../data/nifti';
import { ACCEPTED, classifyFile, defaultWindow, dicomScanName, displaySpace, isOriented, stem, volumeFromDicomFiles, volumeFromNifti, volumeFromPicture, windowPresets } from './inputs';
import { CanvasViewer, hasWebGL2, NiivueViewer, type Viewer } from './viewer';

// ---------------------------------------------------------------------------------------------
// What the page shows when WebGPU is missing: which browsers have it, and the flags that turn it on.

const WEBGPU_BROWSERS =
  'WebGPU is in Chrome and Edge 113 or newer on Windows, macOS and ChromeOS (121 or newer on Android), ' +
  'in Safari 26 (macOS 26, iOS 26) and in Firefox 141 or newer on Windows.\n' +
  'On Linux, start Chrome or Chromium with --enable-unsafe-webgpu --enable-features=Vulkan (or turn on ' +
  'chrome://flags/#enable-unsafe-webgpu and #enable-vulkan); without a GPU, Chromium still runs it on the CPU ' +
  '(SwiftShader) with --enable-unsafe-webgpu. Firefox elsewhere: set dom.webgpu.enabled to true in about:config (Nightly).';

const NO_WEBGPU = `This browser has no WebGPU (navigator.gpu is missing), so the network cannot run here.\n${WEBGPU_BROWSERS}`;
const INSECURE =
  'WebGPU is offered only to secure pages, and this one was opened over plain http from another address. ' +
  'Open it on the machine that runs the server, as http://127.0.0.1:PORT/ or http://localhost:PORT/ (an SSH tunnel does this from another machine).';
const NO_ADAPTER =
  'This browser has WebGPU but gives this page no adapter: no usable GPU or driver, or WebGPU is blocked for it ' +
  `(chrome://gpu says why).\n${WEBGPU_BROWSERS}\nOn Linux, --ignore-gpu-blocklist lets Chromium use a GPU it blocks.`;

// ---------------------------------------------------------------------------------------------
// State

interface LoadedModel {
  model: AUNet;
  config: TrainConfig;
  name: string;
  epoch: number;
  /** 'server': the server's checkpoint; 'shipped': the server's, the model that ships with the package; 'file': dropped. */
  source: 'server' | 'shipped' | 'file';
}

interface Scan {
  volume: Volume;
  name: string;
  intensity: IntensityKind;
  min: number;
  max: number;
}

interface Result {
  scan: Scan;
  modelName: string;
  /** Probabilities, mask at the current threshold, and the lesion report over the lungs found
   *  in the image (the body where none are found), built as `predict` builds its files. */
  report: PredictionReport;
  msPerSlice: number[];
  tta: boolean;
}

type PageState = 'starting' | 'ready' | 'no-webgpu' | 'loading' | 'running' | 'done' | 'error';
type MessageCode = 'no-webgpu' | 'insecure' | 'no-adapter' | 'bad-file' | 'bad-checkpoint' | 'no-checkpoint' | 'run-failed' | 'viewer' | 'info';

let runtime: Runtime | null = null;
let current: LoadedModel | null = null;
let scan: Scan | null = null;
let result: Result | null = null;
let viewer: Viewer | null = null;
let running = false;
let state: PageState = 'starting';
let slice = 0;
const messages: { kind: 'error' | 'warning' | 'info'; code: MessageCode; text: string }[] = [];

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function setState(s: PageState): void {
  state = s;
  document.body.dataset.state = s;
}

function say(kind: 'error' | 'warning' | 'info', code: MessageCode, text: string): void {
  messages.push({ kind, code, text });
  const div = document.createElement('div');
  div.className = kind;
  div.dataset.code = code;
  div.textContent = text;
  $('messages').append(div);
  (kind === 'error' ? console.error : console.log)(`aunet: ${code}: ${text}`);
}

function clearMessages(...codes: MessageCode[]): void {
  for (const el of Array.from($('messages').children) as HTMLElement[]) if (codes.includes(el.dataset.code as MessageCode)) el.remove();
  for (let i = messages.length - 1; i >= 0; i--) if (codes.includes(messages[i].code)) messages.splice(i, 1);
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

// ---------------------------------------------------------------------------------------------
// WebGPU, the model, the scan

async function startWebGPU(): Promise<boolean> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) {
    say('error', window.isSecureContext ? 'no-webgpu' : 'insecure', window.isSecureContext ? NO_WEBGPU : `${INSECURE}\n${NO_WEBGPU}`);
    $('adapter').textContent = 'WebGPU: missing';
    return false;
  }
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    say('error', 'no-adapter', `${NO_ADAPTER}\n(${errorText(e)})`);
  }
  if (!adapter) {
    if (!messages.some((m) => m.code === 'no-adapter')) say('error', 'no-adapter', NO_ADAPTER);
    $('adapter').textContent = 'WebGPU: no adapter';
    return false;
  }
  try {
    // The runtime asks the device for the adapter's own limits (workgroup storage and size,
    // storage buffers and binding sizes), so a compatibility-mode adapter works at its limits;
    // it uses f16, subgroups and timestamps only where the adapter has them.
    // ?conv2d=fallback|gpu forces conv2d's kernel variant (web-time compares them); by default
    // init() measures which is faster where the adapter does not say it is a CPU.
    const variant = new URLSearchParams(location.search).get('conv2d');
    if (variant === 'fallback' || variant === 'gpu') setConv2dVariant(variant);
    runtime = await init();
  } catch (e) {
    say('error', 'no-adapter', `WebGPU could not start a device: ${errorText(e)}\n${WEBGPU_BROWSERS}`);
    $('adapter').textContent = 'WebGPU: failed';
    return false;
  }
  // A compatibility-mode adapter (WebGPU on OpenGL ES, or --force-webgpu-compat) lacks core-features-and-limits.
  const compat = !adapter.features.has('core-features-and-limits');
  $('adapter').textContent = `WebGPU: ${runtime.describe()}${compat ? ', compatibility mode' : ''}; features: ${runtime.adapter.features.filter((f) => ['shader-f16', 'subgroups', 'timestamp-query'].includes(f)).join(', ') || 'none of f16, subgroups, timestamps'}; ${describeConv2dVariant()}`;
  return true;
}

function describeModel(m: LoadedModel): string {
  const c = m.config.model;
  return `Model: ${c.architecture === 'aunet' ? 'AU-Net' : 'U-Net'} ${c.inputSize}x${c.inputSize}, filters ${c.filters.join('-')}, epoch ${m.epoch} (${m.name}, ${{ server: 'from the server', shipped: 'the shipped model, from the server', file: 'dropped' }[m.source]})`;
}

function useModel(bytes: Uint8Array, name: string, source: LoadedModel['source']): boolean {
  clearMessages('bad-checkpoint', 'no-checkpoint');
  let loaded;
  try {
    loaded = loadModel(bytes, name);
  } catch (e) {
    const why = errorText(e);
    say('error', 'bad-checkpoint', e instanceof CheckpointError ? `The checkpoint does not fit the model: ${why}` : `${name} could not be loaded as a checkpoint: ${why}`);
    return false;
  }
  current?.model.dispose();
  current = { model: loaded.model, config: loaded.config, name, epoch: loaded.epoch, source };
  $('model').textContent = describeModel(current);
  return true;
}

async function loadServerModel(): Promise<void> {
  let info: { available: boolean; name?: string; note?: string; shipped?: boolean };
  try {
    info = await (await fetch('/model/info.json')).json();
  } catch (e) {
    say('warning', 'no-checkpoint', `The server's model could not be asked for (${errorText(e)}): drop a .safetensors checkpoint on the page.`);
    return;
  }
  if (!info.available) {
    say('warning', 'no-checkpoint', `${info.note ?? 'The server has no checkpoint.'} Drop a .safetensors checkpoint (best.safetensors of a training run) on the page.`);
    return;
  }
  $('model').textContent = `Model: loading ${info.name}…`;
  const res = await fetch('/model/checkpoint.safetensors');
  if (!res.ok) {
    say('warning', 'no-checkpoint', `The server did not send its checkpoint (HTTP ${res.status}): drop a .safetensors file on the page.`);
    return;
  }
  useModel(new Uint8Array(await res.arrayBuffer()), info.name ?? 'checkpoint.safetensors', info.shipped ? 'shipped' : 'server');
}

async function decodePicture(name: string, bytes: Uint8Array): Promise<{ rgba: Uint8ClampedArray; width: number; height: number }> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes as BlobPart]));
  } catch {
    throw new DataError(`${name} cannot be decoded as a PNG or JPEG picture: the file is damaged or of another kind. This page reads ${ACCEPTED}.`, name);
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d')!;
  ctx.drawImage(bitmap, 0, 0);
  const { data } = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
  return { rgba: data, width: bitmap.width, height: bitmap.height };
}

async function useScan(bytes: Uint8Array, name: string, kind: 'nifti' | 'picture'): Promise<boolean> {
  clearMessages('bad-file');
  let loaded;
  try {
    if (kind === 'nifti') loaded = volumeFromNifti(name, bytes);
    else {
      const { rgba, width, height } = await decodePicture(name, bytes);
      loaded = volumeFromPicture(name, rgba, width, height);
    }
  } catch (e) {
    say('error', 'bad-file', e instanceof DataError ? `Not a CT volume this page can read: ${errorText(e)}` : `${name} could not be read: ${errorText(e)}`);
    return false;
  }
  await showLoaded(loaded, name, kind, bytes);
  return true;
}

/** DICOM files (and zips of them) dropped together: one CT series, read as `predict` reads a DICOM folder. */
async function useDicom(files: { name: string; bytes: Uint8Array }[]): Promise<boolean> {
  clearMessages('bad-file');
  const name = dicomScanName(files);
  let loaded;
  try {
    loaded = volumeFromDicomFiles(files, name);
  } catch (e) {
    say('error', 'bad-file', e instanceof DataError ? `Not a CT series this page can read: ${errorText(e)}` : `${name} could not be read: ${errorText(e)}`);
    return false;
  }
  await showLoaded(loaded, name, 'dicom', null, loaded.series);
  return true;
}

async function showLoaded(loaded: Omit<Scan, 'name'>, name: string, kind: 'nifti' | 'picture' | 'dicom', bytes: Uint8Array | null, note?: string): Promise<void> {
  scan = { volume: loaded.volume, intensity: loaded.intensity, min: loaded.min, max: loaded.max, name };
  result = null;
  const [nx, ny, nz] = loaded.volume.dims;
  const sp = loaded.volume.space.pixdim;
  $('scan').textContent = `Scan: ${name}, ${nx} x ${ny} x ${nz} ${loaded.volume.datatype} (${{ hu: 'Hounsfield units', '8bit': '8-bit', unit: '0..1' }[loaded.intensity]}), voxel ${[1, 2, 3].map((i) => +Math.abs(sp[i]).toFixed(3)).join(' x ')}${isOriented(loaded.volume.space) ? '' : ', no orientation in the header (shown as stored)'}${note ? `; ${note}` : ''}`;
  await showScan(scan, bytes, kind);
  resetReport();
}

// ---------------------------------------------------------------------------------------------
// The view

async function getViewer(): Promise<Viewer> {
  if (viewer) return viewer;
  const nvCanvas = $<HTMLCanvasElement>('nv');
  const flat = $<HTMLCanvasElement>('flat');
  if (hasWebGL2()) {
    try {
      viewer = await NiivueViewer.create(nvCanvas);
      $('viewerNote').textContent = 'Viewer: NiiVue (WebGL2). Scroll or click in the view to move; right-drag sets the window there too.';
    } catch (e) {
      say('warning', 'viewer', `NiiVue could not start (${errorText(e)}): the page shows one slice at a time instead.`);
    }
  } else {
    say('info', 'viewer', 'This browser gives the page no WebGL2, which NiiVue needs: the page shows one slice at a time instead (the segmentation is unaffected).');
  }
  if (!viewer) {
    nvCanvas.hidden = true;
    flat.hidden = false;
    viewer = new CanvasViewer(flat);
    $('viewerNote').textContent = 'Viewer: the page\'s own 2-D view (no WebGL2). Scroll over it to move through the slices.';
  }
  viewer.onSlice = (k) => {
    slice = k;
    $<HTMLInputElement>('slice').value = String(k);
    updateSliceReport();
  };
  return viewer;
}

async function showScan(s: Scan, bytes: Uint8Array | null, kind: 'nifti' | 'picture' | 'dicom'): Promise<void> {
  const v = await getViewer();
  const space = displaySpace(s.volume.space);
  // An oriented NIfTI goes to NiiVue as it came; anything else as a float32 NIfTI in the display
  // space, with the file's own rank, as the mask laid over it (maskNifti) has.
  const display = kind === 'nifti' && bytes && space === s.volume.space
    ? { bytes, name: s.name }
    : { bytes: encodeNifti({ dims: storedDims(s.volume), data: s.volume.data, datatype: 'float32', space }), name: `${stem(s.name)}.nii` };
  await v.show(s.volume, display.bytes, display.name, space);
  const nz = s.volume.dims[2];
  const sl = $<HTMLInputElement>('slice');
  sl.max = String(nz - 1);
  sl.disabled = nz < 2;
  slice = Math.floor(nz / 2);
  sl.value = String(slice);
  setupWindow(s);
}

function setupWindow(s: Scan): void {
  const w = $<HTMLInputElement>('window');
  const l = $<HTMLInputElement>('level');
  const span = Math.max(s.max - s.min, s.intensity === 'unit' ? 1 : 2);
  w.min = String(span / 200);
  w.max = String(Math.max(span, defaultWindow(s.intensity).window));
  l.min = String(Math.min(s.min, defaultWindow(s.intensity).level));
  l.max = String(Math.max(s.max, defaultWindow(s.intensity).level));
  w.disabled = l.disabled = false;
  const presets = $('presets');
  presets.replaceChildren(
    ...windowPresets(s.intensity).map((p) => {
      const b = document.createElement('button');
      b.textContent = p.name;
      b.addEventListener('click', () => setWindow(p.window, p.level));
      return b;
    }),
  );
  const d = defaultWindow(s.intensity);
  setWindow(d.window, d.level);
}

function setWindow(window: number, level: number): void {
  $<HTMLInputElement>('window').value = String(window);
  $<HTMLInputElement>('level').value = String(level);
  const unit = scan?.intensity === 'hu' ? ' HU' : '';
  $('windowLabel').textContent = `${+window.toFixed(2)}${unit}`;
  $('levelLabel').textContent = `${+level.toFixed(2)}${unit}`;
  viewer?.setWindow(level - window / 2, level + window / 2);
}

// ---------------------------------------------------------------------------------------------
// Segmentation and report

async function segment(): Promise<void> {
  if (!scan || !current || !runtime || running) return;
  running = true;
  setState('running');
  clearMessages('run-failed');
  const s = scan;
  const m = current;
  const tta = $<HTMLInputElement>('tta').checked;
  const threshold = readThreshold();
  // The network's slices run along the header's slice axis (the viewer shows the third).
  const nz = s.volume.dims[s.volume.sliceAxis];
  const progress = $<HTMLProgressElement>('progress');
  progress.hidden = false;
  progress.max = nz;
  progress.value = 0;
  $('progressText').textContent = `0 / ${nz} slices`;
  $<HTMLButtonElement>('segment').disabled = true;
  const msPerSlice: number[] = [];
  let last = performance.now();
  try {
    const base = modelPredictor(m.model, 1);
    // One slice per network call: the bar moves per slice, and only one slice's activations are on the GPU.
    const p = await predictVolume(tta ? mirroredTTA(base) : base, s.volume, {
      batch: 1,
      threshold,
      onProgress: (done) => {
        const now = performance.now();
        const ms = now - last;
        last = now;
        msPerSlice.push(ms);
        // For timing scripts: one line per slice (the first includes compiling the kernels).
        console.log(`aunet-timing slice=${done}/${nz} ms=${ms.toFixed(1)} size=${m.config.model.inputSize} tta=${tta}`);
        progress.value = done;
        $('progressText').textContent = `${done} / ${nz} slices, ${ms.toFixed(0)} ms for the last`;
      },
    });
    // Without a lung mask, as predict without --lung-mask: the burden over the lungs found in the
    // image (the body where none are found).
    const report = predictionReport(s.volume, p);
    result = { scan: s, modelName: m.name, report, msPerSlice, tta };
    await viewer?.setMask(p.mask, maskNifti(report, displaySpace(s.volume.space)));
    const rest = msPerSlice.slice(1);
    const mean = rest.length ? rest.reduce((a, b) => a + b, 0) / rest.length : msPerSlice[0];
    $('progressText').textContent =
      `${nz} slices in ${(msPerSlice.reduce((a, b) => a + b, 0) / 1000).toFixed(1)} s: first ${msPerSlice[0].toFixed(0)} ms (with kernel compilation)` +
      (rest.length ? `, then ${mean.toFixed(0)} ms per slice` : '');
    console.log(`aunet-timing done slices=${nz} first_ms=${msPerSlice[0].toFixed(1)} mean_rest_ms=${mean.toFixed(1)}`);
    showReport();
    setState('done');
  } catch (e) {
    say('error', 'run-failed', `Segmentation failed: ${errorText(e)}`);
    setState('error');
  } finally {
    running = false;
    $<HTMLButtonElement>('segment').disabled = false;
  }
}

function readThreshold(): number {
  const t = Number($<HTMLInputElement>('threshold').value);
  return t > 0 && t < 1 ? t : 0.5;
}

async function rethreshold(): Promise<void> {
  if (!result || running) return;
  const t = readThreshold();
  result.report = withThreshold(result.report, t);
  await viewer?.setMask(result.report.prediction.mask, maskNifti(result.report, displaySpace(result.scan.volume.space)));
  showReport();
}

/** How the page's burden reference was found (it has no lung mask), for the note under the report. */
const BURDEN_NOTE: Record<BurdenReference, string> = {
  lung: 'lesion area over the lung mask',
  'computed-lung': 'lesion area over the lungs found in the image (air below a per-slice threshold, enclosed by the body, holes filled and gaps closed), an approximation',
  body: 'no lungs were found in the image, so lesion area over the body found in it (everything but the air reached from the border)',
};

const fmt = (v: number, d = 1) => (Number.isNaN(v) ? '–' : v.toFixed(d));
const percent = (v: number) => (Number.isFinite(v) ? `${pct(v)}%` : '–');

function resetReport(): void {
  $('sliceReport').textContent = '–';
  $('volumeReport').textContent = '–';
  $('reportNote').textContent = '';
  $('slices').querySelector('tbody')!.replaceChildren();
  $<HTMLButtonElement>('downloadMask').disabled = true;
  $<HTMLButtonElement>('downloadCsv').disabled = true;
  void viewer?.setMask(null, null);
}

function showReport(): void {
  if (!result) return;
  const r = result.report.lesions;
  const v = r.volume;
  $('volumeReport').textContent = `Volume: ${v.lesionPixels} lesion voxels, ${fmt(v.lesionMm2 / 100, 2)} cm² over all slices, ${fmt(v.lesionMl, 2)} ml; burden ${percent(v.burden)} of the ${BURDEN_REFERENCE_TEXT[result.report.reference]}`;
  $('reportNote').textContent =
    `Voxel ${r.voxelMm.map((x) => +x.toFixed(3)).join(' x ')} mm${r.unitsKnown ? '' : ' (the header gives no unit or size: mm and 1 mm assumed)'}. ` +
    `Burden: ${BURDEN_NOTE[result.report.reference]}, as predict computes it without --lung-mask. ` +
    `Threshold ${result.report.prediction.threshold}${result.tta ? ', mirroring TTA' : ''}; model ${result.modelName}.`;
  const tbody = $('slices').querySelector('tbody')!;
  tbody.replaceChildren(
    ...r.slices.map((s) => {
      const tr = document.createElement('tr');
      tr.dataset.slice = String(s.slice);
      for (const text of [String(s.slice), String(s.lesionPixels), fmt(s.lesionMm2), percent(s.burden)]) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      tr.addEventListener('click', () => goToSlice(s.slice));
      return tr;
    }),
  );
  $<HTMLButtonElement>('downloadMask').disabled = false;
  $<HTMLButtonElement>('downloadCsv').disabled = false;
  updateSliceReport();
}

function updateSliceReport(): void {
  const nz = scan?.volume.dims[2] ?? 0;
  $('sliceLabel').textContent = nz ? `${slice} of 0–${nz - 1}` : '–';
  if (!result) return;
  const s = result.report.lesions.slices[slice];
  if (s) $('sliceReport').textContent = `Slice ${slice}: ${s.lesionPixels} lesion pixels, ${fmt(s.lesionMm2)} mm²; burden ${percent(s.burden)} of the ${BURDEN_REFERENCE_TEXT[result.report.reference]}`;
  for (const tr of Array.from($('slices').querySelectorAll('tbody tr'))) tr.classList.toggle('current', (tr as HTMLElement).dataset.slice === String(slice));
}

function goToSlice(k: number): void {
  slice = k;
  $<HTMLInputElement>('slice').value = String(k);
  viewer?.setSlice(k);
  updateSliceReport();
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array | null> {
  if (typeof CompressionStream === 'undefined') return null;
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function download(name: string, bytes: Uint8Array | string, type: string): void {
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function downloadMask(): Promise<void> {
  if (!result) return;
  // predict's file: uint8, the input's dimensions, voxel size, qform, sform and units.
  const nii = maskNifti(result.report);
  const gz = await gzip(nii);
  const name = predictionFileNames(stem(result.scan.name)).mask;
  if (gz) download(name, gz, 'application/gzip');
  else download(name.replace(/\.gz$/, ''), nii, 'application/octet-stream');
}

// ---------------------------------------------------------------------------------------------
// Files in

async function takeFiles(files: FileList | File[]): Promise<void> {
  const list = Array.from(files);
  if (!list.length) return;
  if (running) {
    say('info', 'info', `Still segmenting: drop ${list.map((f) => f.name).join(', ')} again when the bar is full.`);
    return;
  }
  setState('loading');
  let newScan = false;
  let newModel = false;
  // Checkpoints first, so that a scan dropped with one is segmented by it.
  const classified: { file: File; bytes: Uint8Array; kind: ReturnType<typeof classifyFile> | null }[] = [];
  const unknown: { name: string; why: string }[] = [];
  for (const file of list) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    try {
      classified.push({ file, bytes, kind: classifyFile(file.name, bytes) });
    } catch (e) {
      unknown.push({ name: file.name, why: errorText(e) });
    }
  }
  // Beside DICOM files (a folder picked whole), other files are the folder's own (a DICOMDIR's
  // neighbours, notes): left out with a word, not an error each.
  if (unknown.length && classified.some((x) => x.kind === 'dicom' || x.kind === 'zip')) {
    say('info', 'info', `${unknown.length} file(s) that are not DICOM were left out (${unknown.slice(0, 3).map((u) => u.name).join(', ')}${unknown.length > 3 ? ', ...' : ''}).`);
  } else {
    for (const u of unknown) {
      clearMessages('bad-file');
      say('error', 'bad-file', u.why);
    }
  }
  for (const c of classified.filter((x) => x.kind === 'checkpoint')) {
    if (!runtime) {
      say('error', 'bad-checkpoint', `${c.file.name}: a model needs WebGPU, which this browser does not give the page (see above).`);
      continue;
    }
    newModel = useModel(c.bytes, c.file.name, 'file') || newModel;
  }
  // DICOM files (loose or zipped) dropped together are one series.
  const dicom = classified.filter((x) => x.kind === 'dicom' || x.kind === 'zip');
  if (dicom.length) newScan = (await useDicom(dicom.map((c) => ({ name: c.file.name, bytes: c.bytes })))) || newScan;
  for (const c of classified.filter((x) => x.kind === 'nifti' || x.kind === 'picture')) {
    newScan = (await useScan(c.bytes, c.file.name, c.kind as 'nifti' | 'picture')) || newScan;
  }
  setState(runtime ? 'ready' : 'no-webgpu');
  $<HTMLButtonElement>('segment').disabled = !(scan && current && runtime);
  if ((newScan || newModel) && scan && current && runtime) await segment();
  else if (!messages.some((m) => m.kind === 'error') && scan && !current) say('info', 'no-checkpoint', 'Drop a .safetensors checkpoint to segment the scan.');
}

function wire(): void {
  const drop = $('drop');
  const stop = (e: Event) => {
    e.preventDefault();
    e.stopPropagation();
  };
  // Anywhere on the page: a file dropped outside the box is not opened by the browser instead.
  for (const target of [document.body, drop]) {
    target.addEventListener('dragover', (e) => {
      stop(e);
      drop.classList.add('over');
    });
    target.addEventListener('dragleave', () => drop.classList.remove('over'));
    target.addEventListener('drop', (e) => {
      stop(e);
      drop.classList.remove('over');
      const files = (e as DragEvent).dataTransfer?.files;
      if (files) void takeFiles(files);
    });
  }
  for (const id of ['files', 'folder']) {
    $<HTMLInputElement>(id).addEventListener('change', (e) => {
      const input = e.target as HTMLInputElement;
      if (input.files) void takeFiles(input.files).then(() => (input.value = ''));
    });
  }
  $('segment').addEventListener('click', () => void segment());
  $('slice').addEventListener('input', (e) => goToSlice(Number((e.target as HTMLInputElement).value)));
  const onWindow = () => setWindow(Number($<HTMLInputElement>('window').value), Number($<HTMLInputElement>('level').value));
  $('window').addEventListener('input', onWindow);
  $('level').addEventListener('input', onWindow);
  $('opacity').addEventListener('input', (e) => viewer?.setOpacity(Number((e.target as HTMLInputElement).value)));
  $('threshold').addEventListener('change', () => void rethreshold());
  $('downloadMask').addEventListener('click', () => void downloadMask());
  $('downloadCsv').addEventListener('click', () => result && download(predictionFileNames(stem(result.scan.name)).csv, reportCsv(result.report), 'text/csv'));
}

// ---------------------------------------------------------------------------------------------
// For tests and scripts: the page's state and results, read with page.evaluate.

const api = {
  get state() {
    return state;
  },
  get viewer() {
    return viewer?.kind ?? null;
  },
  messages: () => messages.map((m) => ({ ...m })),
  result: () =>
    result && {
      dims: result.scan.volume.dims,
      threshold: result.report.prediction.threshold,
      mask: Array.from(result.report.prediction.mask),
      probabilities: Array.from(result.report.prediction.probabilities),
      volume: result.report.lesions.volume,
      slices: result.report.lesions.slices,
      voxelMm: result.report.lesions.voxelMm,
      msPerSlice: result.msPerSlice,
      adapter: runtime?.describe() ?? null,
      features: runtime?.adapter.features ?? [],
    },
  goToSlice,
  setWindow,
};
(window as unknown as { aunetPage: typeof api }).aunetPage = api;

async function main(): Promise<void> {
  wire();
  const ok = await startWebGPU();
  if (!ok) {
    setState('no-webgpu');
    return;
  }
  await loadServerModel();
  setState('ready');
}

void main().catch((e) => {
  say('error', 'run-failed', `The page failed to start: ${errorText(e)}`);
  setState('error');
});
