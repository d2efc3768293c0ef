// Hostile input files: every file of the hostile corpus (NIfTI: src/attack/hostile.ts; DICOM
// series: src/attack/hostile-dicom.ts) through the loader, a few through train, evaluate and
// predict as child processes (exit code 1, one line naming the file, no stack trace; or a
// correct result), and a short run of the mutation fuzzer (NIfTI and DICOM cases).
import './conv-variant';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setupGPU } from '@aunet/tensor/testing';
import { manualSeed, saveCheckpoint } from '@aunet/nn';
import { defaultTrainConfig } from '../src/config';
import { CONFIG_KEY, EPOCH_KEY } from '../src/checkpoint';
import { DataError } from '../src/data/errors';
import { readVolume, volumeFromBytes } from '../src/data/files';
import { parseNifti } from '../src/data/nifti';
import { binaryMask, normaliseImage } from '../src/data/normalise';
import { runCase, runFuzz } from '../src/attack/fuzz';
import { makeCase } from '../src/attack/fuzz-mutations';
import { hostileCorpus, type HostileFile } from '../src/attack/hostile';
import { hostileDicomCorpus, type HostileSeries } from '../src/attack/hostile-dicom';
import { isDicomSlot } from '../src/attack/fuzz-dicom';
import { AUNet } from '../src/model';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'aunet-hostile-'));
const corpusDir = join(tmp, 'corpus');
mkdirSync(corpusDir);
const corpus = hostileCorpus();
for (const c of corpus) writeFileSync(join(corpusDir, c.name), c.bytes);
const file = (name: string) => join(corpusDir, name);
const entry = (name: string): HostileFile => corpus.find((c) => c.name === name)!;
const dicomCorpus = hostileDicomCorpus();
for (const c of dicomCorpus) {
  if (c.files) {
    mkdirSync(join(corpusDir, c.name));
    for (const f of c.files) writeFileSync(join(corpusDir, c.name, f.name), f.bytes);
  } else writeFileSync(join(corpusDir, c.name), c.bytes!);
}

/** A DataError naming `path` on one line, or the assertion that says what it was instead. */
function assertClearError(err: unknown, path: string, says?: string): void {
  assert.ok(err !== null, `${path}: nothing was thrown`);
  assert.instance(err, DataError, `${path}: not a DataError: ${String(err)}`);
  const message = (err as Error).message;
  assert.ok(message.includes(path), `the message does not name ${path}: ${message}`);
  assert.not.match(message, /[\r\n]/, `several lines: ${JSON.stringify(message)}`);
  if (says) assert.ok(message.includes(says), `"${message}" lacks "${says}"`);
}

/** What the commands do with the volume in this role. */
function use(c: HostileFile, vol: ReturnType<typeof readVolume>): void {
  if (c.role === 'mask') binaryMask(vol);
  else for (const v of normaliseImage(vol).data) assert.ok(v >= 0 && v <= 1, `${c.name}: normalised value ${v}`);
}

// ---------------------------------------------------------------------------------------------
const loader = suite('the hostile corpus through the loader');

loader('the corpus: unique names, both outcomes, every kind of damage the issue lists', () => {
  const names = corpus.map((c) => c.name);
  assert.is(new Set(names).size, names.length);
  for (const name of [
    'truncated-header.nii', 'truncated-data.nii', 'wrong-magic.nii', 'sizeof-hdr-wrong.nii', 'big-endian.nii', 'dim-zero.nii',
    'dim-negative.nii', 'absurd-dims.nii', 'datatype-rgb24.nii', 'vox-offset-past-end.nii', 'corrupt.nii.gz', 'nan-voxels.nii',
    'inf-voxels.nii', '4d-singleton.nii', '4d-two-volumes.nii', '2d-slice.nii',
  ]) assert.ok(names.includes(name), name);
  assert.ok(corpus.every((c) => c.what.length > 10 && (c.expect === 'error' || c.values)));
});

for (const c of corpus) {
  loader(`${c.name}: ${c.expect === 'ok' ? 'loads with the right values' : 'one line naming the file'}`, () => {
    const path = file(c.name);
    const t0 = performance.now();
    if (c.expect === 'ok') {
      const vol = readVolume(path);
      assert.equal(vol.dims, c.values!.dims);
      const want = c.values!.data;
      assert.is(vol.data.length, want.length);
      for (let i = 0; i < want.length; i++) if (vol.data[i] !== want[i]) assert.unreachable(`${c.name}: voxel ${i} is ${vol.data[i]}, not ${want[i]}`);
      use(c, vol);
    } else {
      let error: unknown = null;
      try {
        use(c, readVolume(path));
      } catch (err) {
        error = err;
      }
      assertClearError(error, path, c.says);
    }
    // Absurd dims are refused from the header: nothing near their size is ever allocated.
    assert.ok(performance.now() - t0 < 2000, `${c.name} took ${performance.now() - t0} ms`);
  });
}

loader('the browser path (parseNifti gunzipping by itself with fflate) gives the same outcome as readVolume', () => {
  for (const c of corpus) {
    let error: unknown = null;
    try {
      use(c, parseNifti(c.bytes, c.name));
    } catch (err) {
      error = err;
    }
    if (c.expect === 'error') assertClearError(error, c.name);
    else if (c.name === 'double-gzip.nii.gz') {
      // parseNifti gunzips one layer; readVolume's node:zlib takes the first, parseNifti the second.
      assertClearError(error, c.name, 'not a NIfTI file');
    } else {
      assert.is(error, null, `${c.name}: ${String(error)}`);
      assert.equal(parseNifti(c.bytes, c.name).data, readVolume(file(c.name)).data);
    }
  }
});

loader('the DICOM corpus: unique names, both outcomes, every kind of damage the issue lists', () => {
  const names = dicomCorpus.map((c) => c.name);
  assert.is(new Set([...names, ...corpus.map((c) => c.name)]).size, names.length + corpus.length);
  for (const name of [
    'dicom-truncated-pixels', 'dicom-truncated-header', 'dicom-no-pixel-data', 'dicom-absurd-rows-columns', 'dicom-jpeg2000', 'dicom-wrong-syntax-big',
    'dicom-wrong-syntax-implicit', 'dicom-two-series', 'dicom-missing-slice', 'dicom-uneven', 'dicom-mr', 'dicom-multiframe', 'dicom-valid', 'dicom-series.zip',
  ]) assert.ok(names.includes(name), name);
  assert.ok(dicomCorpus.every((c) => c.what.length > 10 && (c.expect === 'error' ? c.says : c.values) && (c.files ? c.files.length > 0 : c.bytes)));
  assert.ok(dicomCorpus.filter((c) => c.expect === 'ok').length >= 10 && dicomCorpus.filter((c) => c.expect === 'error').length >= 30);
});

for (const c of dicomCorpus) {
  loader(`${c.name}: ${c.expect === 'ok' ? 'reads with the right HU values' : 'one line naming it'}`, () => {
    const path = file(c.name);
    const t0 = performance.now();
    if (c.expect === 'ok') {
      const vol = readVolume(path);
      assert.equal(vol.dims, c.values!.dims);
      const want = c.values!.data;
      assert.is(vol.data.length, want.length);
      for (let i = 0; i < want.length; i++) if (vol.data[i] !== want[i]) assert.unreachable(`${c.name}: voxel ${i} is ${vol.data[i]}, not ${want[i]}`);
      for (const v of normaliseImage(vol).data) assert.ok(v >= 0 && v <= 1, `${c.name}: normalised value ${v}`);
    } else {
      let error: unknown = null;
      try {
        normaliseImage(readVolume(path));
      } catch (err) {
        error = err;
      }
      assertClearError(error, path, c.says);
    }
    // The deflate bomb inflates to its limit (256 MiB) before it is stopped: the slowest case.
    assert.ok(performance.now() - t0 < 5000, `${c.name} took ${performance.now() - t0} ms`);
  });
}

loader('big-endian files read the same values as little-endian ones, geometry included', () => {
  const little = readVolume(file('valid.nii'));
  for (const name of ['big-endian.nii', 'big-endian.nii.gz']) {
    const big = readVolume(file(name));
    assert.equal(big.data, little.data);
    assert.equal(big.space, little.space);
    assert.is(big.datatype, 'int16');
  }
  const little2 = readVolume(file('valid-nifti2.nii'));
  const big2 = readVolume(file('big-endian-nifti2.nii'));
  assert.equal(big2.data, little2.data);
  assert.equal(big2.space, little2.space);
  assert.is(big2.niftiVersion, 2);
});

// ---------------------------------------------------------------------------------------------
const fuzz = suite('mutation fuzzer');

fuzz('every unmutated base volume loads (so the errors come from the mutations)', () => {
  for (let i = 0; i < 300; i++) {
    const outcome = runCase(makeCase(11, i, { mutate: false }));
    assert.is(outcome.kind, 'ok', `case ${i}: ${outcome.detail}`);
  }
});

fuzz('cases are reproducible from seed and index, and differ between them', () => {
  const a = makeCase(5, 42);
  assert.equal(makeCase(5, 42).bytes, a.bytes);
  assert.equal(makeCase(5, 42).mutations, a.mutations);
  assert.not.equal(makeCase(5, 43).bytes, a.bytes);
  assert.not.equal(makeCase(6, 42).bytes, a.bytes);
});

fuzz('the classifier: a DataError naming the file is clear; any other exception is uncaught', () => {
  const c = { ...makeCase(3, 0, { mutate: false }), role: 'dataset-image' as const, partner: undefined };
  const outcome = runCase(c); // the missing partner makes the case itself throw a TypeError
  assert.is(outcome.kind, 'uncaught');
  assert.match(outcome.detail, /TypeError \(not a DataError\)/);
  const bad = { ...makeCase(3, 1, { mutate: false }), role: 'image' as const, bytes: entry('nan-voxels.nii').bytes };
  assert.is(runCase(bad).kind, 'clear');
  assert.ok(runCase(bad).detail.includes(bad.name));
});

fuzz('300 cases of seed 7: none uncaught, and both outcomes occur, for NIfTI and DICOM cases alike', async () => {
  const seen: number[] = [];
  const dicom = { ok: 0, clear: 0 };
  const summary = await runFuzz({
    count: 300, seed: 7,
    onResult: (r) => {
      seen.push(r.index);
      if (isDicomSlot(r.index) && r.kind !== 'uncaught') dicom[r.kind]++;
    },
  });
  assert.equal(summary.uncaughtCases.map((r) => `${r.index}: ${r.detail} (${r.description})`), []);
  assert.is(summary.uncaught, 0);
  assert.is(summary.cases, 300);
  assert.is(summary.ok + summary.clear, 300);
  assert.ok(summary.ok > 30 && summary.clear > 30, `${summary.ok} ok, ${summary.clear} clear errors`);
  assert.is(dicom.ok + dicom.clear, 75, 'every fourth case is a DICOM series');
  assert.ok(dicom.ok >= 3 && dicom.clear >= 30, `DICOM: ${dicom.ok} ok, ${dicom.clear} clear errors`);
  assert.ok(Object.keys(summary.errorKinds).filter((k) => k.startsWith('DICOM')).length >= 6, `DICOM error kinds: ${Object.keys(summary.errorKinds).join(', ')}`);
  assert.equal(seen, Array.from({ length: 300 }, (_, i) => i));
});

fuzz('DICOM cases: every unmutated series loads; a case is its series, a folder or a zip, the same from seed and index', () => {
  for (let i = 3; i < 1200; i += 4) {
    const c = makeCase(11, i, { mutate: false });
    assert.ok(c.dicom, `case ${i} is a DICOM case`);
    const outcome = runCase(c);
    assert.is(outcome.kind, 'ok', `case ${i} (${c.base}): ${outcome.detail}`);
  }
  const a = makeCase(5, 43);
  assert.equal(makeCase(5, 43).dicom!.files.map((f) => f.name), a.dicom!.files.map((f) => f.name));
  assert.equal(makeCase(5, 43).bytes, a.bytes);
  assert.ok(!makeCase(5, 42).dicom, 'the other cases stay NIfTI');
});

fuzz('the fuzz command: the last line counts the outcomes; --case replays one; bad flags exit 2', () => {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', join(pkg, 'src/cli/fuzz.ts'), ...args], { cwd: pkg, encoding: 'utf8', timeout: 120_000 });
  const r = run('--count', '40', '--seed', '3');
  assert.is(r.status, 0, r.stderr);
  const last = r.stdout.trim().split('\n').pop()!;
  assert.match(last, /^40 cases: \d+ ok, \d+ clear errors, 0 uncaught$/);
  const [, ok, clear] = last.match(/(\d+) ok, (\d+) clear/)!.map(Number);
  assert.is(ok + clear, 40);
  const out = join(tmp, 'case');
  const one = run('--seed', '3', '--case', '17', '--out', out);
  assert.is(one.status, 0, one.stderr);
  assert.match(one.stdout, /case 17 of seed 3: fuzz-s3-17-/);
  assert.match(one.stdout.trim().split('\n').pop()!, /^1 cases: [01] ok, [01] clear errors, 0 uncaught$/);
  const c = makeCase(3, 17);
  assert.equal(new Uint8Array(readFileSync(join(out, c.name))), c.bytes);
  // A DICOM case replayed: its series written as a folder (or its zip as a file).
  const folderCase = Array.from({ length: 40 }, (_, i) => 4 * i + 3).find((i) => !makeCase(3, i).dicom!.zip)!;
  const dicomOut = join(tmp, 'dicom-case');
  const replay = run('--seed', '3', '--case', String(folderCase), '--out', dicomOut);
  assert.is(replay.status, 0, replay.stderr);
  const d = makeCase(3, folderCase);
  for (const f of d.dicom!.files) assert.equal(new Uint8Array(readFileSync(join(dicomOut, d.name, f.name))), f.bytes);
  assert.is(run('--count', 'many').status, 1);
  assert.is(run('--bogus').status, 2);
  const help = run('--help');
  assert.is(help.status, 0);
  assert.match(help.stdout, /--count N/);
});

// ---------------------------------------------------------------------------------------------
const commands = suite('the commands on hostile files');
commands.before(setupGPU);

let checkpoint = '';
commands.before(async () => {
  manualSeed(3);
  const config = defaultTrainConfig('cpu', join(tmp, 'nowhere'), { model: { inputSize: 16, filters: [4, 8] } });
  const model = new AUNet(config.model);
  checkpoint = join(tmp, 'tiny.safetensors');
  await saveCheckpoint(checkpoint, model, { metadata: { [CONFIG_KEY]: JSON.stringify(config), [EPOCH_KEY]: '1' } });
  model.dispose();
});

function command(name: string, args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(pkg, `src/cli/${name}.ts`), ...args], { cwd: pkg, encoding: 'utf8', timeout: 300_000 });
}

/**
 * Exit code 1 and exactly one line on stderr, naming `path`, no stack. Set aside: lavapipe's
 * warning, and predict's progress bar (cli-progress writes to stderr; predict starts it before
 * normalising, so an image refused there shows the bar's line first).
 */
function assertOneLine(r: ReturnType<typeof command>, path: string, says: string): void {
  const lines = r.stderr.split('\n').filter((line) => line.trim() && !/artificially reduced/.test(line) && !/\] \d+\/\d+ slices \|/.test(line));
  assert.is(r.status, 1, `exit code ${r.status}; stderr: ${r.stderr}`);
  assert.is(lines.length, 1, r.stderr);
  assert.ok(lines[0].startsWith('error: '), lines[0]);
  assert.ok(lines[0].includes(path), `"${lines[0]}" does not name ${path}`);
  assert.ok(lines[0].includes(says), `"${lines[0]}" lacks "${says}"`);
  assert.not.match(r.stderr + r.stdout, /^\s+at /m, 'no stack trace');
}

/** A data folder holding `image` (a corpus file) as its image and the valid mask. */
function dataFolder(image: string): { dir: string; image: string } {
  const dir = mkdtempSync(join(tmp, 'data-'));
  const target = join(dir, image.endsWith('.gz') ? 'tr_im.nii.gz' : 'tr_im.nii');
  copyFileSync(file(image), target);
  copyFileSync(file('valid-mask.nii'), join(dir, 'tr_mask.nii'));
  return { dir, image: target };
}

commands('train --data: a corrupt gzip image stops it with one line naming the file', () => {
  const { dir, image } = dataFolder('corrupt.nii.gz');
  const r = command('train', ['--data', dir, '--out', join(tmp, 'run'), '--preset', 'cpu', '--size', '16', '--filters', '4,8', '--epochs', '1']);
  assertOneLine(r, image, 'gzip data is corrupt');
});

commands('evaluate --data: an image with absurd dims (2^40 voxels) stops it with one line', () => {
  const { dir, image } = dataFolder('absurd-dims.nii');
  assertOneLine(command('evaluate', ['--checkpoint', checkpoint, '--data', dir]), image, 'truncated or its header is damaged');
});

commands('predict --input: truncated, 4-D, NaN, bad vox_offset and bad CRC files each give one line', () => {
  const out = join(tmp, 'predictions-bad');
  for (const [name, says] of [
    ['truncated-data.nii', 'truncated'],
    ['4d-two-volumes.nii', 'only 2-D images and 3-D stacks'],
    ['nan-voxels.nii', 'NaN or infinite'],
    ['vox-offset-past-end.nii', 'vox_offset'],
    ['gzip-bad-crc.nii.gz', 'gzip data is corrupt'],
  ]) assertOneLine(command('predict', ['--checkpoint', checkpoint, '--input', file(name), '--out', out, '--png', 'none']), file(name), says);
});

commands('predict --input: the corpus files that load are segmented, big-endian as little-endian', () => {
  const dir = join(tmp, 'good');
  mkdirSync(dir);
  const good = ['valid.nii', 'big-endian.nii', 'big-endian-nifti2.nii', '2d-slice.nii', '4d-singleton.nii', 'extension-loop.nii', 'scl-inter-hu.nii', 'double-gzip.nii.gz'];
  for (const name of good) copyFileSync(file(name), join(dir, name));
  const out = join(tmp, 'predictions-good');
  const r = command('predict', ['--checkpoint', checkpoint, '--input', dir, '--out', out, '--png', 'none', '--probabilities']);
  assert.is(r.status, 0, r.stderr);
  const mask = (name: string) => readVolume(join(out, `${name}_lesions.nii.gz`));
  const probabilities = (name: string) => readVolume(join(out, `${name}_probabilities.nii.gz`));
  const reference = mask('valid');
  for (const name of ['big-endian', 'big-endian-nifti2', '4d-singleton', 'extension-loop', 'scl-inter-hu', 'double-gzip']) {
    assert.equal(mask(name).dims, reference.dims, name);
    assert.equal(mask(name).data, reference.data, `${name}: the same voxels give the same mask`);
  }
  // The 2-D slice is the first slice of the volume, predicted alone rather than in a batch of 3.
  const single = probabilities('2d-slice');
  const first = probabilities('valid').data.subarray(0, 16 * 12);
  assert.equal(single.dims, [16, 12, 1]);
  single.data.forEach((p, i) => assert.ok(Math.abs(p - first[i]) < 1e-5, `pixel ${i}: ${p} vs ${first[i]}`));
});

commands('predict --input on damaged DICOM series: one line each, naming the folder or the file at fault', () => {
  const out = join(tmp, 'predictions-dicom-bad');
  for (const [name, blamed, says] of [
    ['dicom-missing-slice', 'dicom-missing-slice', '1 slice is missing'],
    ['dicom-jpeg2000', 'dicom-jpeg2000/IM1.dcm', 'JPEG 2000 Image Compression (Lossless Only)'],
    ['dicom-two-series', 'dicom-two-series', '--series UID'],
    ['dicom-absurd-rows-columns', 'dicom-absurd-rows-columns/IM1.dcm', 'Rows 65535 x Columns 65535'],
    ['dicom-no-pixel-data', 'dicom-no-pixel-data/IM1.dcm', 'no pixel data element'],
    ['dicom-truncated-pixels', 'dicom-truncated-pixels/IM1.dcm', 'truncated'],
    ['dicom-wrong-syntax-big', 'dicom-wrong-syntax-big/IM1.dcm', 'Explicit VR Big Endian'],
    ['dicom-corrupt.zip', 'dicom-corrupt.zip', 'cannot be unzipped'],
  ]) assertOneLine(command('predict', ['--checkpoint', checkpoint, '--input', file(name), '--out', out, '--png', 'none']), file(blamed), says);
});

commands('train --data and evaluate --data with a damaged DICOM series: one line', () => {
  const data = (name: string) => {
    const dir = mkdtempSync(join(tmp, 'dicom-data-'));
    for (const f of dicomCorpus.find((c) => c.name === name)!.files!) writeFileSync(join(dir, f.name), f.bytes);
    copyFileSync(file('valid-mask.nii'), join(dir, 'tr_mask.nii'));
    return dir;
  };
  const uneven = data('dicom-uneven');
  assertOneLine(command('train', ['--data', uneven, '--out', join(tmp, 'run-dicom'), '--preset', 'cpu', '--size', '16', '--filters', '4,8', '--epochs', '1']), uneven, 'unevenly spaced');
  const rle = data('dicom-rle');
  assertOneLine(command('evaluate', ['--checkpoint', checkpoint, '--data', rle]), join(rle, 'IM1.dcm'), 'RLE Lossless');
});

commands('predict --input on the DICOM series that read: the masks of the same voxels are the same', () => {
  const out = join(tmp, 'predictions-dicom-good');
  const masks = (name: string) => {
    const r = command('predict', ['--checkpoint', checkpoint, '--input', file(name), '--out', out, '--png', 'none']);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${name.replace(/\.(zip|dcm)$/, '')}: DICOM CT series 2\\.25\\.90210 "hostile corpus"`));
    return readVolume(join(out, `${name.replace(/\.(zip|dcm)$/, '')}_lesions.nii.gz`));
  };
  const reference = masks('dicom-valid');
  assert.equal(reference.dims, [16, 12, 3]);
  for (const name of ['dicom-implicit', 'dicom-big-endian', 'dicom-deflated', 'dicom-signed', 'dicom-high-bits', 'dicom-reversed-names', 'dicom-with-others', 'dicom-series.zip']) {
    const m = masks(name);
    assert.equal(m.data, reference.data, `${name}: the same voxels give the same mask`);
    assert.equal(m.space, reference.space, `${name}: the same geometry`);
  }
});

commands('predict on a NIfTI-2 volume wider than NIfTI-1 can hold: one line naming the output', () => {
  const r = command('predict', ['--checkpoint', checkpoint, '--input', file('nifti2-wide.nii'), '--out', join(tmp, 'wide'), '--png', 'none']);
  assertOneLine(r, join(tmp, 'wide', 'nifti2-wide_lesions.nii.gz'), 'exceed 32767');
});

loader.run();
fuzz.run();
commands.run();

// The loaders are also the library's: the bytes entry point gives what readVolume gives.
const bytes = suite('volumeFromBytes');
bytes('is readVolume on bytes', () => {
  assert.equal(volumeFromBytes(entry('valid.nii.gz').bytes, 'x.nii.gz').data, readVolume(file('valid.nii.gz')).data);
});
bytes.run();
