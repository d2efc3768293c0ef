// Measures the lungs found in the image (src/lungs.ts) against the shipped lung masks: Dice per
// slice over the 100 slices of data/medseg-covid, for the 8-bit file and for a Hounsfield copy
// of it (the 8-bit values through the lung window -1000..400 HU, as tr_im.nii.gz would be read;
// the official HU file is not shipped), and the time per slice.
//
//   cd packages/aunet && node --import tsx scripts/lung-dice.ts [--8bit-only] [--per-slice] [--set NAME=VALUE ...] [--png DIR [SLICE ...]]
//
// It prints, for each kind of input, the mean and minimum Dice per slice, the slices under 0.9
// and the milliseconds per slice (reading excluded, normalising included), and whether the two
// kinds give the same mask. --8bit-only skips the HU copy; --set overrides a LungOptions setting
// (e.g. --set closingRadius=20) to try other values; --per-slice prints each slice's Dice; --png
// writes pictures of the given slices (default: the ten worst) to DIR: the image in grey,
// reference-only pixels in green, computed-only in red, both in yellow, and the image alone.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { encode as encodePng } from 'fast-png';
import { DEFAULT_DATA_DIR, readVolume } from '../src/data/files';
import type { Volume } from '../src/data/nifti';
import { maskDice, volumeLungMask, type LungOptions } from '../src/lungs';

const args = process.argv.slice(2);
const perSlice = args.includes('--per-slice');
const options: LungOptions = {};
args.forEach((a, i) => {
  if (a !== '--set') return;
  const [name, value] = args[i + 1].split('=');
  (options as Record<string, number>)[name] = Number(value);
});
const pngAt = args.indexOf('--png');
const pngDir = pngAt >= 0 ? resolve(args[pngAt + 1]) : null;
const pngSlices = pngAt >= 0 ? args.slice(pngAt + 2).filter((a) => /^\d+$/.test(a)).map(Number) : [];

const image = readVolume(join(DEFAULT_DATA_DIR, 'tr_im_lungwindow.nii.gz'));
const reference = Uint8Array.from(readVolume(join(DEFAULT_DATA_DIR, 'tr_lungmask.nii.gz')).data, (v) => (v > 0 ? 1 : 0));
const [nx, ny, nz] = image.dims;
const plane = nx * ny;
const hu: Volume = { ...image, source: 'hu copy', data: image.data.map((v) => (v * 1400) / 255 - 1000), datatype: 'int16' };

function measure(volume: Volume, name: string): { computed: Uint8Array; dice: number[] } {
  const t0 = performance.now();
  const computed = volumeLungMask(volume, options);
  const ms = (performance.now() - t0) / nz;
  const dice = Array.from({ length: nz }, (_, k) => maskDice(computed.subarray(k * plane, (k + 1) * plane), reference.subarray(k * plane, (k + 1) * plane)));
  const mean = dice.reduce((a, b) => a + b, 0) / nz;
  const min = Math.min(...dice);
  const under = dice.map((d, k) => [d, k] as const).filter(([d]) => d < 0.9);
  console.log(
    `${name}: Dice per slice mean ${mean.toFixed(4)}, min ${min.toFixed(4)} (slice ${dice.indexOf(min)}), ${under.length} of ${nz} under 0.9` +
      `${under.length ? ` (${under.map(([d, k]) => `${k}: ${d.toFixed(3)}`).join(', ')})` : ''}; ${ms.toFixed(1)} ms per slice (normalising included)`,
  );
  return { computed, dice };
}

const eight = measure(image, '8-bit');
if (!args.includes('--8bit-only')) {
  const fromHu = measure(hu, 'HU copy');
  let differ = 0;
  for (let i = 0; i < eight.computed.length; i++) differ += eight.computed[i] !== fromHu.computed[i] ? 1 : 0;
  console.log(`8-bit and HU masks differ in ${differ} voxels`);
}
if (Object.keys(options).length) console.log('options', JSON.stringify(options));
if (perSlice) console.log(eight.dice.map((d, k) => `${k}\t${d.toFixed(4)}`).join('\n'));

if (pngDir) {
  mkdirSync(pngDir, { recursive: true });
  const slices = pngSlices.length ? pngSlices : eight.dice.map((d, k) => [d, k]).sort((a, b) => a[0] - b[0]).slice(0, 10).map(([, k]) => k);
  for (const k of slices) {
    const rgb = new Uint8Array(plane * 3);
    for (let i = 0; i < plane; i++) {
      const g = image.data[k * plane + i] * 0.8;
      const r = reference[k * plane + i];
      const c = eight.computed[k * plane + i];
      rgb[3 * i] = c ? 255 : g;
      rgb[3 * i + 1] = r ? 255 : g;
      rgb[3 * i + 2] = r || c ? 0 : g;
    }
    writeFileSync(join(pngDir, `slice_${String(k).padStart(3, '0')}.png`), encodePng({ width: nx, height: ny, channels: 3, depth: 8, data: rgb }));
    const grey = Uint8Array.from(image.data.subarray(k * plane, (k + 1) * plane));
    writeFileSync(join(pngDir, `slice_${String(k).padStart(3, '0')}_image.png`), encodePng({ width: nx, height: ny, channels: 1, depth: 8, data: grey }));
  }
  console.log(`pictures of slices ${slices.join(', ')} in ${pngDir}`);
}
