// `evaluate --pred PATH --labels PATH`: predictions from any source scored against label volumes
// with no checkpoint (src/mask-scores.ts, src/mask-report.ts, src/evaluate-file.ts): per-class
// sensitivity and what --labels-as changes, counted by hand; surface distances per slice and in
// 3-D with each header's voxel size and slice axis; folders matched by name; the CSV, JSON and
// Markdown files; every refusal with its one line. No WebGPU.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultSpace, type NiftiSpace } from '../src/data/nifti';
import { evaluatePredictions, pairPredictions } from '../src/evaluate-file';
import { jsonSafe, maskEvaluationCsv, maskEvaluationMarkdown } from '../src/mask-report';
import { lesionOfLabels, meanScores, poolCases, scoreCase, surfaceCounts, type CaseReport } from '../src/mask-scores';
import { surfaceScores } from '../src/surface-metrics';
import { spaceFromAffine, type Affine } from '../src/data/space';
import { flipRows, writeNifti } from './nifti-fixture';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'aunet-evaluate-pred-'));
const close = (a: number, b: number, what: string, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} against ${b}`);

/** Voxels of `dims` (x fastest) set to `value(x, y, z)`. */
function volume(dims: number[], value: (x: number, y: number, z: number) => number): Float32Array {
  const [nx, ny, nz] = dims;
  const out = new Float32Array(nx * ny * nz);
  for (let z = 0, i = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++, i++) out[i] = value(x, y, z);
  return out;
}
const within = (v: number, lo: number, hi: number) => v >= lo && v <= hi;
/** A header with voxel size [x, y, z] in mm, and the slice axis in dim_info (slice_dim) when given. */
const space = (voxel: number[], sliceDim = 0): NiftiSpace => ({ ...defaultSpace(), pixdim: [1, ...voxel, 1, 1, 1, 1], xyztUnits: 2, dimInfo: sliceDim << 4 });
const write = (file: string, dims: number[], data: Float32Array, s: NiftiSpace, datatype: 'uint8' | 'float32' = 'uint8') =>
  writeNifti(file, { dims, data: datatype === 'uint8' ? Uint8Array.from(data) : data, datatype, space: s });

// "classes": 24 x 20 x 4, voxels 0.8 x 0.8 x 3 mm. Slice 1: ground glass (8 x 8) and consolidation
// (4 x 4); slice 2: the same ground glass and pleural effusion (4 x 4). The prediction: the ground
// glass square 2 voxels to the right in slices 1 and 2 (48 of its 64 voxels each), the effusion
// whole, nothing of the consolidation, and a false 2 x 2 in slice 3, whose label is empty. Slice
// 0 is empty in both.
const CLASSES_DIMS = [24, 20, 4];
const classesLabel = volume(CLASSES_DIMS, (x, y, z) =>
  (z === 1 || z === 2) && within(x, 4, 11) && within(y, 4, 11) ? 1 : z === 1 && within(x, 14, 17) && within(y, 4, 7) ? 2 : z === 2 && within(x, 2, 5) && within(y, 15, 18) ? 3 : 0);
const classesPred = volume(CLASSES_DIMS, (x, y, z) =>
  ((z === 1 || z === 2) && within(x, 6, 13) && within(y, 4, 11)) || (z === 2 && within(x, 2, 5) && within(y, 15, 18)) || (z === 3 && within(x, 20, 21) && within(y, 16, 17)) ? 1 : 0);
// "shifted": a 6 x 6 x 3 block and the same 2 voxels along x, voxels 0.8 x 0.6 x 2.5 mm: every
// distance the shift makes is 2 x 0.8 = 1.6 mm, per slice and in 3-D. A probability map (0.7).
const SHIFTED_DIMS = [16, 12, 5];
const block = (dx: number) => (x: number, y: number, z: number) => (within(x, 3 + dx, 8 + dx) && within(y, 3, 8) && within(z, 1, 3) ? 1 : 0);
// "sideways": slices along x (slice_dim 1), the block moved 1 voxel along z of 2 mm: per slice
// (planes of y and z, pixels 0.5 x 2 mm) and in 3-D the distance is 2 mm.
const SIDEWAYS_DIMS = [6, 10, 8];
const sideways = (dz: number) => (x: number, y: number, z: number) => (within(x, 1, 4) && within(y, 2, 6) && within(z, 2 + dz, 4 + dz) ? 1 : 0);

const labelsDir = join(tmp, 'labels');
const predsDir = join(tmp, 'preds');
mkdirSync(labelsDir, { recursive: true });
mkdirSync(predsDir, { recursive: true });
write(join(labelsDir, 'classes.nii.gz'), CLASSES_DIMS, classesLabel, space([0.8, 0.8, 3]));
write(join(predsDir, 'classes.nii.gz'), CLASSES_DIMS, classesPred, space([0.8, 0.8, 3]));
write(join(labelsDir, 'shifted.nii.gz'), SHIFTED_DIMS, volume(SHIFTED_DIMS, block(0)), space([0.8, 0.6, 2.5]));
write(join(predsDir, 'shifted_lesions.nii.gz'), SHIFTED_DIMS, volume(SHIFTED_DIMS, (x, y, z) => 0.7 * block(2)(x, y, z) + 0.2), space([0.8, 0.6, 2.5]), 'float32');
write(join(labelsDir, 'sideways.nii'), SIDEWAYS_DIMS, volume(SIDEWAYS_DIMS, sideways(0)), space([1.5, 0.5, 2], 1));
write(join(predsDir, 'sideways.nii.gz'), SIDEWAYS_DIMS, volume(SIDEWAYS_DIMS, sideways(1)), space([1.5, 0.5, 2], 1));
write(join(predsDir, 'extra.nii.gz'), [2, 2, 1], new Float32Array(4), space([1, 1, 1]));

const byName = (cases: CaseReport[], name: string) => cases.find((c) => c.name === name) as CaseReport;

test('per-class sensitivity and the confusion counts by hand, under --labels-as lesion and lung-lesion', () => {
  assert.equal(Array.from(lesionOfLabels([0, 1, 2, 3, 2.9, 0.4], 'lesion')), [0, 1, 1, 1, 1, 0]);
  assert.equal(Array.from(lesionOfLabels([0, 1, 2, 3, 2.9, 0.4], 'lung-lesion')), [0, 1, 1, 0, 0, 0]);
  const file = (p: string) => join(p, 'classes.nii.gz');
  const lesion = evaluatePredictions(file(predsDir), file(labelsDir));
  const c = lesion.cases[0];
  assert.equal(c.classes.map((k) => [k.name, k.voxels, k.found]), [['ground glass', 128, 96], ['consolidation', 16, 0], ['pleural effusion', 16, 16]]);
  assert.equal(c.classes.map((k) => k.sensitivity), [0.75, 0, 1]);
  // Lesion = all three: 160 label voxels, 148 predicted, 112 found.
  assert.equal(c.confusion, { tp: 112, fp: 36, fn: 48, tn: 24 * 20 * 4 - 112 - 36 - 48 });
  close(c.overlap.dice, 224 / 308, 'Dice');
  close(c.overlap.iou, 112 / 196, 'IoU');
  close(c.overlap.precision, 112 / 148, 'precision');
  // Effusion as background: the predicted effusion becomes 16 false positives.
  const lung = evaluatePredictions(file(predsDir), file(labelsDir), { labelsAs: 'lung-lesion' });
  assert.equal(lung.cases[0].confusion, { tp: 96, fp: 52, fn: 48, tn: 24 * 20 * 4 - 96 - 52 - 48 });
  assert.equal(lung.cases[0].classes, c.classes, 'the classes found do not depend on what counts as lesion');
  assert.is(lung.labelsAs, 'lung-lesion');
});

test('per slice: no lesion on either side undefined, on one side infinite with NSD 0, else the 2-D distances with the in-plane pixel size', () => {
  const e = evaluatePredictions(join(predsDir, 'classes.nii.gz'), join(labelsDir, 'classes.nii.gz'), { toleranceMm: 1.6 });
  const [s0, s1, s2, s3] = e.cases[0].slices;
  for (const k of ['hd95', 'hd', 'asd', 'nsd'] as const) assert.ok(Number.isNaN(s0[k]), `slice 0 ${k}`);
  assert.is(s0.dice, 1);
  assert.equal([s3.hd95, s3.hd, s3.asd, s3.nsd], [Infinity, Infinity, Infinity, 0]);
  // Slices 1 and 2 as 2-D masks of 24 x 20 with 0.8 mm pixels, scored on their own.
  const plane = 24 * 20;
  for (const [k, s] of [[1, s1], [2, s2]] as const) {
    const pred = Uint8Array.from(classesPred.subarray(k * plane, (k + 1) * plane));
    const label = lesionOfLabels(classesLabel.subarray(k * plane, (k + 1) * plane), 'lesion');
    assert.equal({ hd95: s.hd95, hd: s.hd, asd: s.asd, nsd: s.nsd }, surfaceScores(pred, label, [24, 20], [0.8, 0.8], 1.6), `slice ${k}`);
  }
  assert.equal(e.cases[0].sliceSurface, { both: 2, oneSide: 1, neither: 1 });
  // The means skip what is undefined, and the infinite distances (counted above); NSD's 0 counts.
  close(e.cases[0].perSliceMean.hd95, (s1.hd95 + s2.hd95) / 2, 'mean HD95');
  close(e.cases[0].perSliceMean.nsd, (s1.nsd + s2.nsd + 0) / 3, 'mean NSD');
  close(e.cases[0].perSliceMean.dice, (1 + s1.dice + s2.dice + 0) / 4, 'mean Dice');
  assert.ok(Number.isNaN(meanScores([]).dice));
  assert.equal(surfaceCounts([{ hd95: NaN, hd: NaN, asd: NaN, nsd: NaN }]), { both: 0, oneSide: 0, neither: 1 });
});

test('surface distances in mm from each header: along x (3-D and per slice), and for slices cut along x', () => {
  const e = evaluatePredictions(predsDir, labelsDir);
  assert.equal(e.cases.map((c) => c.name), ['classes', 'shifted', 'sideways']);
  const shifted = byName(e.cases, 'shifted');
  assert.equal(shifted.pixelMm, [0.8, 0.6]);
  assert.is(shifted.sliceMm, 2.5);
  close(shifted.surface!.hd95, 1.6, '3-D HD95');
  close(shifted.surface!.hd, 1.6, '3-D HD');
  for (const s of shifted.slices.filter((s) => s.lesionPixels > 0)) close(s.hd95, 1.6, `slice ${s.slice} HD95`);
  assert.is(shifted.confusion.tp + shifted.confusion.fp, 6 * 6 * 3, 'the probability map cut at 0.5: 0.9 in the block, 0.2 around it');
  const side = byName(e.cases, 'sideways');
  assert.is(side.slices.length, 6, 'one slice per x');
  assert.equal(side.pixelMm, [0.5, 2]);
  assert.is(side.sliceMm, 1.5);
  close(side.surface!.hd95, 2, '3-D HD95');
  for (const s of side.slices.filter((s) => s.lesionPixels > 0)) close(s.hd95, 2, `slice ${s.slice} HD95 (z pixels of 2 mm)`);
  // Pooled: counts summed over every voxel; the means over cases of their 3-D scores.
  const p = e.pooled;
  assert.is(p.cases, 3);
  assert.is(p.slices, 4 + 5 + 6);
  assert.equal(p.confusion.tp, e.cases.reduce((s, c) => s + c.confusion.tp, 0));
  assert.equal(p.classes.map((k) => k.voxels), [128 + 6 * 6 * 3 + 4 * 5 * 3, 16, 16]);
  close(p.perCaseMean!.hd95, (byName(e.cases, 'classes').surface!.hd95 + 1.6 + 2) / 3, 'mean over cases');
  assert.equal(p.caseSurface, { both: 3, oneSide: 0, neither: 0 });
  assert.match(e.notes.join('\n'), /not scored, no label of their name in .*labels: extra\.nii\.gz/);
});

test('folders are matched by name (NAME or NAME_lesions); two files need no matching', () => {
  const { pairs, unmatched } = pairPredictions(predsDir, labelsDir);
  assert.equal(pairs.map((p) => [p.name, p.prediction.slice(predsDir.length + 1), p.labels.slice(labelsDir.length + 1)]), [
    ['classes', 'classes.nii.gz', 'classes.nii.gz'],
    ['shifted', 'shifted_lesions.nii.gz', 'shifted.nii.gz'],
    ['sideways', 'sideways.nii.gz', 'sideways.nii'],
  ]);
  assert.equal(unmatched, ['extra.nii.gz']);
  const one = pairPredictions(join(predsDir, 'extra.nii.gz'), join(labelsDir, 'shifted.nii.gz'));
  assert.equal(one.pairs.map((p) => p.name), ['shifted']);
});

test('the report files: a CSV row per slice, case, pooled and means; JSON with null and "Infinity"; Markdown', () => {
  const e = evaluatePredictions(predsDir, labelsDir);
  const csv = maskEvaluationCsv(e).trim().split('\n');
  assert.is(csv[0], 'level,case,slice,lesion_voxels,predicted_voxels,tp,fp,fn,tn,dice,iou,sensitivity,specificity,precision,hd95_mm,hd_mm,asd_mm,nsd,sensitivity_ground_glass,sensitivity_consolidation,sensitivity_pleural_effusion');
  assert.is(csv.length, 1 + (4 + 2) + (5 + 2) + (6 + 2) + 3);
  assert.is(csv.filter((r) => r.startsWith('slice,')).length, 15);
  assert.equal(csv.slice(1).filter((r) => !r.startsWith('slice,')).map((r) => r.split(',').slice(0, 2).join(',')), [
    'case,classes', 'slice-mean,classes', 'case,shifted', 'slice-mean,shifted', 'case,sideways', 'slice-mean,sideways', 'pooled,', 'slice-mean,', 'case-mean,',
  ]);
  const slice3 = csv.find((r) => r.startsWith('slice,classes,3,'))!.split(',');
  assert.equal(slice3.slice(14, 18), ['inf', 'inf', 'inf', '0']);
  assert.equal(csv.find((r) => r.startsWith('slice,classes,0,'))!.split(',').slice(14, 18), ['', '', '', '']);
  assert.equal(csv.find((r) => r.startsWith('case,classes'))!.split(',').slice(18), ['0.75', '0', '1']);
  const json = JSON.parse(JSON.stringify(jsonSafe(e))) as { cases: { slices: { hd95: unknown; sensitivity: unknown }[] }[] };
  assert.is(json.cases[0].slices[3].hd95, 'Infinity');
  assert.is(json.cases[0].slices[3].sensitivity, null, 'undefined: no lesion in the label');
  const md = maskEvaluationMarkdown(e);
  assert.match(md, /^# Evaluation\n/);
  assert.match(md, /\| pooled: every voxel of 3 cases \| /);
  assert.match(md, /\| ground glass \| 1 \| 296 \| /);
  assert.match(md, /in one only: HD95, HD and ASD infinite, NSD 0/);
});

test('scoreCase refuses a stack that does not fit its slices; poolCases of no case is empty', () => {
  assert.throws(
    () => scoreCase({ name: 'x', prediction: 'p', labels: 'l', pred: new Uint8Array(10), labelValues: new Float32Array(10), width: 3, height: 3, slices: [0], pixelMm: [1, 1], sliceMm: null, labelsAs: 'lesion', toleranceMm: 1 }),
    /10 predicted and 10 label voxels for 1 slices of 3x3/,
  );
  assert.is(poolCases([]).perCaseMean, null);
});

test('labels whose classes are not known (0/1 lesion only): no per-class figures, and no lung-lesion', () => {
  const base = { name: 'x', prediction: 'p', labels: 'l.nii', pred: Uint8Array.from([1, 1, 0, 0]), labelValues: Uint8Array.from([1, 0, 1, 0]), width: 2, height: 2, slices: [0], pixelMm: [1, 1] as [number, number], sliceMm: null, toleranceMm: 1 };
  const c = scoreCase({ ...base, labelsAs: 'lesion', classesKnown: false });
  assert.equal(c.classes, []);
  assert.equal(c.confusion, { tp: 1, fp: 1, fn: 1, tn: 1 });
  const e = { scope: 's', labelsAs: 'lesion' as const, toleranceMm: 1, threshold: 0.5, pooled: poolCases([c]), cases: [c], notes: [] };
  assert.equal(e.pooled.classes, []);
  assert.match(maskEvaluationMarkdown(e), /Per class: not known: the labels could not be matched class by class/);
  assert.ok(maskEvaluationCsv(e).trim().split('\n').every((r) => r.endsWith(',,,') || r.startsWith('level')), 'blank class cells');
  assert.throws(() => scoreCase({ ...base, labelsAs: 'lung-lesion', classesKnown: false }), /l\.nii: the label classes are not known, so lesion cannot be taken as lung-lesion/);
});

// ---------------------------------------------------------------------------------------------
// The command.

function evaluate(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'src/cli/evaluate.ts'), ...args], { cwd: pkg, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr.split('\n').filter((l) => l.trim()) };
}

test('evaluate --pred --labels --out: the table on the terminal, the three files; --help says the defaults', () => {
  const out = join(tmp, 'report');
  const r = evaluate('--pred', predsDir, '--labels', labelsDir, '--out', out, '--tolerance', '2');
  assert.is(r.code, 0, r.err.join('\n'));
  assert.equal(r.err, []);
  assert.match(r.out, /\[1\/3\] classes\n\[2\/3\] shifted\n\[3\/3\] sideways\n/);
  assert.match(r.out, /note: not scored, no label of their name in .*: extra\.nii\.gz/);
  assert.match(r.out, /Dice\s+IoU\s+Sens\s+Spec\s+Prec\s+HD95 mm\s+HD mm\s+ASD mm\s+NSD/);
  assert.match(r.out, /shifted \(3-D\)\s+(\S+\s+){5}1\.60\s+1\.60\s+/);
  assert.match(r.out, /NSD at 2 mm/);
  assert.match(r.out, /found per class \(sensitivity\): ground glass /);
  for (const f of ['evaluation.csv', 'evaluation.json', 'evaluation.md']) assert.ok(existsSync(join(out, f)), f);
  const json = JSON.parse(readFileSync(join(out, 'evaluation.json'), 'utf8'));
  assert.is(json.toleranceMm, 2);
  assert.is(json.cases.length, 3);
  assert.ok(json.definitions.length >= 5);
  const help = evaluate('--help');
  assert.is(help.code, 0);
  assert.match(help.out, /--tolerance MM\s+the NSD's tolerance in mm \(default 1 mm\)/);
  assert.match(help.out, /--labels-as KIND\s+lesion \(default\)/);
  assert.match(help.out, /lesion on one side only HD95, HD and ASD are infinite \(inf\) and NSD 0/);
});

test('evaluate --pred: every refusal in one line, exit 1', () => {
  mkdirSync(join(tmp, 'empty'), { recursive: true });
  writeFileSync(join(tmp, 'empty', 'notes.txt'), 'no volume here');
  const other = join(tmp, 'other');
  write(join(other, 'classes.nii.gz'), [24, 20, 3], new Float32Array(24 * 20 * 3), space([0.8, 0.8, 3]));
  write(join(tmp, 'ct.nii.gz'), CLASSES_DIMS, volume(CLASSES_DIMS, () => -1000), space([0.8, 0.8, 3]), 'float32');
  const label = join(labelsDir, 'classes.nii.gz');
  const pred = join(predsDir, 'classes.nii.gz');
  for (const [args, message] of [
    [['--pred', pred], /^error: --pred PATH and --labels PATH go together .*; --labels is missing$/],
    [['--labels', label], /^error: --pred PATH and --labels PATH go together .*; --pred is missing$/],
    [['--pred', pred, '--labels', label, '--checkpoint', 'x.safetensors', '--tta'], /^error: --checkpoint, --tta belong to a checkpoint's evaluation, not to --pred/],
    [['--pred', join(tmp, 'nowhere.nii.gz'), '--labels', label], /^error: --pred .*nowhere\.nii\.gz does not exist\. Pass a \.nii or \.nii\.gz file, or a folder of them\.$/],
    [['--pred', pred, '--labels', join(tmp, 'nolabels')], /^error: --labels .*nolabels does not exist/],
    [['--pred', predsDir, '--labels', label], /^error: --pred and --labels must both be files or both folders: .*preds is a folder, .*classes\.nii\.gz a file\.$/],
    [['--pred', join(tmp, 'empty'), '--labels', labelsDir], /^error: --pred .*empty holds no \.nii or \.nii\.gz file\.$/],
    [['--pred', other, '--labels', labelsDir], /^error: .*other has no prediction for 2 of the 3 labels in .*labels \(shifted\.nii\.gz, sideways\.nii\): a prediction must be named as its label, or NAME_lesions\.nii\.gz/],
    [['--pred', join(other, 'classes.nii.gz'), '--labels', label], /^error: .*other\/classes\.nii\.gz is 24 x 20 x 3 but .*labels\/classes\.nii\.gz is 24 x 20 x 4: a prediction must be on its label's voxel grid\.$/],
    [['--pred', pred, '--labels', join(tmp, 'ct.nii.gz')], /^error: .*ct\.nii\.gz does not look like a label volume \(0 background, 1-3 lesion classes\): it holds negative values \(down to -1000\)\. Check that it is not a CT image\.$/],
    [['--pred', join(tmp, 'ct.nii.gz'), '--labels', label], /^error: .*ct\.nii\.gz does not look like a mask or a probability map: it holds negative values/],
    [['--pred', pred, '--labels', label, '--labels-as', 'effusion'], /^error: --labels-as takes lesion or lung-lesion; got "effusion"$/],
    [['--pred', pred, '--labels', label, '--tolerance=-1'], /^error: --tolerance takes a distance in mm, 0 or more; got -1$/],
    [['--pred', pred, '--labels', label, '--tolerance', 'one'], /^error: --tolerance takes a number, got "one"$/],
    [['--pred', join(tmp, 'empty', 'notes.txt'), '--labels', label], /^error: .*notes\.txt is not a NIfTI file \(14 bytes, shorter than a NIfTI header/],
  ] as const) {
    const r = evaluate(...args);
    assert.is(r.code, 1, `${args.join(' ')}: ${r.err.join('\n')}`);
    assert.is(r.err.length, 1, `${args.join(' ')}: one line, got ${r.err.join(' | ')}`);
    assert.match(r.err[0], message);
  }
  assert.not.ok(existsSync(join(tmp, 'nowhere')));
});

test('evaluate --pred: a prediction whose voxel size differs is scored with the label\'s, and says so', () => {
  const dir = join(tmp, 'spacing');
  write(join(dir, 'p.nii.gz'), SHIFTED_DIMS, volume(SHIFTED_DIMS, block(2)), space([1, 1, 1]));
  const r = evaluate('--pred', join(dir, 'p.nii.gz'), '--labels', join(labelsDir, 'shifted.nii.gz'));
  assert.is(r.code, 0, r.err.join('\n'));
  assert.match(r.out, /note: .*p\.nii\.gz's voxel size 1 x 1 x 1 mm differs from .*shifted\.nii\.gz's 0\.8 x 0\.6 x 2\.5 mm: distances use the label's/);
  assert.match(r.out, /shifted\.nii\.gz\n.*Dice.*\nevery voxel, surfaces in 3-D\s+(\S+\s+){5}1\.60\s+1\.60/);
});

test('evaluate --pred with oriented headers: a prediction with its rows reversed is put on the label\'s grid; one on another grid is refused; without orientation the order is assumed, and said', () => {
  const dir = join(tmp, 'grids');
  const GRID: Affine = [[-0.8, 0, 0, 40], [0, -0.8, 0, 30], [0, 0, 3, -20]];
  const label = join(dir, 'label.nii.gz');
  write(label, CLASSES_DIMS, classesLabel, spaceFromAffine(GRID));
  const straight = join(dir, 'straight.nii.gz');
  write(straight, CLASSES_DIMS, classesPred, spaceFromAffine(GRID));
  const f = flipRows(CLASSES_DIMS, classesPred, GRID);
  const flipped = join(dir, 'flipped.nii.gz');
  write(flipped, CLASSES_DIMS, f.data, spaceFromAffine(f.affine));
  const a = evaluatePredictions(straight, label);
  const b = evaluatePredictions(flipped, label);
  assert.equal(a.notes, []);
  assert.equal({ ...b.cases[0], prediction: straight }, a.cases[0], 'the same scores as the prediction stored in the label\'s order');
  assert.ok(a.cases[0].overlap.dice! > 0 && a.cases[0].overlap.dice! < 1);
  assert.equal(b.notes, [`${flipped}: its voxels are those of ${label} in another order (as their headers place them): reordered onto the label's grid before scoring`]);
  // Voxels 0.82 mm across: 0.46 mm apart at the far column, more than 0.1 voxel: not the label's grid.
  const wide = join(dir, 'wide.nii.gz');
  write(wide, CLASSES_DIMS, classesPred, spaceFromAffine(GRID.map((r, i) => (i === 0 ? [-0.82, 0, 0, 40] : [...r])) as Affine));
  const r = evaluate('--pred', wide, '--labels', label);
  assert.is(r.code, 1);
  assert.equal(r.err.length, 1, r.err.join('\n'));
  assert.match(r.err[0], /^error: .*grids\/wide\.nii\.gz does not lie on the grid of its label .*grids\/label\.nii\.gz: .*Resample the prediction onto the grid of its label/);
  // A prediction without orientation: taken in the stored order, and the notes say so.
  const bare = join(dir, 'bare.nii.gz');
  write(bare, CLASSES_DIMS, f.data, space([0.8, 0.8, 3]));
  const c = evaluatePredictions(bare, label);
  assert.equal(c.notes, [`${bare} has no orientation (no sform or qform): the prediction's voxels are assumed to be in the label's voxel order, as stored`]);
  assert.not.equal(c.cases[0].overlap, a.cases[0].overlap, 'scored as stored: rows reversed');
});

test.run();
