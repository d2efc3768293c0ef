// Writes a DICOM CT series made from a shipped (or fetched) volume, for trying the DICOM path of
// predict, train, evaluate and the web page with no download: OUT/dicom/ (the series' files),
// OUT/volume.nii.gz (the same voxels and geometry as NIfTI, to compare with) and, with
// --with-mask, OUT/tr_mask.nii.gz (the labels on the series' grid, so that OUT is a data folder
// for train --data and evaluate --data). It reads the series back and checks it voxel for voxel
// against volume.nii.gz before it says it is done.
//
//   node --import tsx scripts/make-dicom-series.ts OUT [options]     (from packages/aunet; --help)

import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { dicomFixture, SHIPPED_HU, UID } from '../src/attack/dicom-files';
import { dicomSeriesLine, volumeFromDicom } from '../src/data/dicom';
import { DEFAULT_DATA_DIR, niftiFileBytes, readVolume } from '../src/data/files';
import { parseNifti } from '../src/data/nifti';
import { affineDifference, spaceFromAffine, voxelCorrespondence, voxelToWorld } from '../src/data/space';

const usage = `
Write a DICOM CT series made from a volume, with the same voxels as NIfTI beside it.

Usage: node --import tsx scripts/make-dicom-series.ts OUT [options]   (from packages/aunet)

  --from FILE         the source volume (default: data/medseg-official/tr_im.nii.gz, the official
                      HU file, when fetch-data has fetched it; else the shipped 8-bit lung-window
                      slices, data/medseg-covid/tr_im_lungwindow.nii.gz, rendered as HU = ${SHIPPED_HU.slope} v ${SHIPPED_HU.intercept})
  --slices A:B        slices A to B-1 of the source (default: all)
  --step N            every N-th row and column (default 1)
  --geometry G        axial (default: 0.75 mm pixels, 5 mm apart, the orientation a scanner writes)
                      or source (the source file's own affine)
  --tilt DEG          turn the grid by DEG degrees about an oblique axis (an oblique series)
  --shuffle SEED      random file names, InstanceNumbers in a random order
  --second-series     also a second series (3 slices) among the files: the readers then list both
  --syntax S          explicit (default), implicit, big or deflated: the transfer syntax
  --with-mask         also OUT/tr_mask.nii.gz, the shipped labels on the series' grid (only
                      with the shipped or official MedSeg source, whose tr_mask.nii.gz it cuts)
  -h, --help          this help
`;

const SYNTAX: Record<string, string> = {
  explicit: UID.explicitLittle, implicit: UID.implicitLittle, big: UID.explicitBig, deflated: UID.deflatedExplicitLittle,
};

try {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      from: { type: 'string' }, slices: { type: 'string' }, step: { type: 'string' }, geometry: { type: 'string' }, tilt: { type: 'string' },
      shuffle: { type: 'string' }, 'second-series': { type: 'boolean' }, syntax: { type: 'string' }, 'with-mask': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(usage.trim());
    process.exit(0);
  }
  if (positionals.length !== 1) throw new Error('give one output folder (see --help)');
  const out = resolve(positionals[0]);
  if (existsSync(out) && readdirSync(out).length) throw new Error(`${out} is not empty: give a new or empty folder`);
  const official = join(DEFAULT_DATA_DIR, '..', 'medseg-official', 'tr_im.nii.gz');
  const from = values.from ? resolve(values.from) : existsSync(official) ? official : join(DEFAULT_DATA_DIR, 'tr_im_lungwindow.nii.gz');
  const source = readVolume(from);
  const number = (flag: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    const v = Number(text);
    if (!Number.isFinite(v)) throw new Error(`--${flag} takes a number, got "${text}"`);
    return v;
  };
  const slices = values.slices?.split(':').map(Number) as [number, number] | undefined;
  if (slices && !(slices.length === 2 && slices.every(Number.isInteger))) throw new Error(`--slices takes A:B, got "${values.slices}"`);
  const geometry = (values.geometry ?? 'axial') as 'axial' | 'source';
  if (!['axial', 'source'].includes(geometry)) throw new Error(`--geometry is axial or source, got "${values.geometry}"`);
  const syntax = SYNTAX[values.syntax ?? 'explicit'];
  if (!syntax) throw new Error(`--syntax is one of ${Object.keys(SYNTAX).join(', ')}, got "${values.syntax}"`);

  const f = dicomFixture(source, {
    slices, step: number('step', values.step), geometry, tilt: number('tilt', values.tilt), shuffle: number('shuffle', values.shuffle),
    secondSeries: !!values['second-series'], transferSyntax: syntax,
  });
  const dicomDir = join(out, 'dicom');
  mkdirSync(dicomDir, { recursive: true });
  for (const file of f.files) writeFileSync(join(dicomDir, file.name), file.bytes);
  writeFileSync(join(out, 'volume.nii.gz'), niftiFileBytes('volume.nii.gz', f.nifti));

  // Read back through the product's reader: the same voxels at the same places as the NIfTI.
  const { volume, series } = volumeFromDicom(f.files.map((x) => ({ name: join(dicomDir, x.name), bytes: x.bytes })), dicomDir, { series: f.seriesUid });
  const nifti = parseNifti(niftiFileBytes('volume.nii', f.nifti), 'volume.nii');
  const order = voxelCorrespondence({ dims: nifti.dims, affine: voxelToWorld(nifti.space)! }, { dims: volume.dims, affine: voxelToWorld(volume.space)! });
  if (!order) throw new Error('the series read back does not lie on the NIfTI\'s grid');
  for (let t = 0; t < order.length; t++) if (volume.data[t] !== nifti.data[order[t]]) throw new Error(`voxel ${t} of the series read back is ${volume.data[t]}, the NIfTI's ${nifti.data[order[t]]}`);
  const sameOrder = order.every((v, t) => v === t);

  if (values['with-mask']) {
    const maskFile = join(from, '..', 'tr_mask.nii.gz');
    const maskSource = existsSync(maskFile) ? maskFile : join(DEFAULT_DATA_DIR, 'tr_mask.nii.gz');
    const labels = readVolume(maskSource);
    if (labels.dims.some((d, i) => d !== source.dims[i])) throw new Error(`${maskSource} is ${labels.dims.join(' x ')}, the source ${source.dims.join(' x ')}`);
    // The labels cut as the fixture was, then put in the series' voxel order.
    const cut = Uint8Array.from(f.sourceIndex, (i) => labels.data[i]);
    const onSeries = Uint8Array.from(order, (i) => cut[i]);
    writeFileSync(join(out, 'tr_mask.nii.gz'), niftiFileBytes('tr_mask.nii.gz', { dims: volume.dims, data: onSeries, datatype: 'uint8', space: volume.space }));
  }
  console.log(`${f.files.length} files in ${dicomDir} (from ${from}): ${dicomSeriesLine(series)}${f.secondUid ? `; second series ${f.secondUid}` : ''}`);
  console.log(
    `read back voxel for voxel equal to ${join(out, 'volume.nii.gz')} (${volume.data.length} voxels; ${sameOrder ? 'same voxel order' : 'the same voxels at the same places, slices in the other order: the source grid is left-handed'}; ` +
      `affines ${sameOrder ? `${affineDifference(voxelToWorld(volume.space)!, voxelToWorld(spaceFromAffine(f.affine))!).toExponential(1)} apart` : 'describe the same grid'})`,
  );
  if (values['with-mask']) console.log(`labels on the series' grid: ${join(out, 'tr_mask.nii.gz')} (train --data ${out} reads the series and them)`);
} catch (e) {
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
}
