// The packages as someone else's project gets them. Each package is packed (`pnpm pack`, whose
// prepack builds it afresh: scripts/build.ts), and the three tarballs are installed into a new
// project in a temporary folder outside the workspace, which then runs on plain Node (no tsx, no
// TypeScript in it, the workspace's tools off its PATH):
// - @aunet/tensor: a convolution and its gradients on the adapter, against the float64 reference;
// - aunet: the shipped model loaded and three shipped slices segmented through the library
//   (Dice against their labels), from the package's own model and data files;
// - `aunet --help`, `npx aunet --help` and `npx aunet help`, `npx aunet predict --help`,
//   `npx aunet predict --input` (the library's mask, written under the project's folder) and the
//   one-line errors;
// - the declarations: a TypeScript file of the project type-checks against them (Node's module
//   resolution, through `exports`; the declarations checked too), and misuse is a type error;
// - a page importing aunet, bundled by esbuild from the project and run in headless Chromium
//   (lavapipe route): the same mask as Node.
// The install is offline (the tests may run without a network), from pnpm's store and metadata
// cache that `scripts/setup.sh` filled, with the versions of the workspace's lockfile pinned
// (overrides), since a fresh resolution would pick newer versions that are not in the store.
// Without Chromium the browser test fails, saying so.
// The small conv2d variant for this process and the commands it starts (inherited through the
// environment), as the other tests that run the network: on an empty shader cache the default
// variant's kernels took this file from 45 s to 210 s.
import './conv-variant';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { delimiter, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../src/web/chromium';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const PACKAGES = [
  { dir: 'packages/tensor', name: '@aunet/tensor', file: 'aunet-tensor' },
  { dir: 'packages/nn', name: '@aunet/nn', file: 'aunet-nn' },
  { dir: 'packages/aunet', name: 'aunet', file: 'aunet' },
] as const;
const work = mkdtempSync(join(tmpdir(), 'aunet-package-'));
const project = join(work, 'project');

/**
 * What the project's processes get: no loader or workspace tool inherited from the test (tsx's
 * NODE_OPTIONS, the workspace's node_modules/.bin on PATH, pnpm's npm_* variables and INIT_CWD),
 * and no $AUNET_MODEL or $AUNET_DATA that would stand in for the package's own files.
 */
const strangerEnv: NodeJS.ProcessEnv = (() => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(npm_|pnpm_|INIT_CWD$|NODE_OPTIONS$|NODE_PATH$|TSX_|AUNET_(MODEL|DATA)$)/i.test(k)));
  env.PATH = (process.env.PATH ?? '').split(delimiter).filter((p) => !p.startsWith(root)).join(delimiter);
  return env;
})();

function run(command: string, args: string[], cwd: string, env = strangerEnv, timeout = 300_000): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout, maxBuffer: 64 * 1024 * 1024 });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.is(r.status, 0, `${what} exited ${r.status}${r.error ? ` (${r.error.message})` : ''}:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  return r.stdout;
}

const seconds = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;

interface Packed {
  tarball: string;
  bytes: number;
  files: { path: string; bytes: number }[];
  manifest: Record<string, unknown>;
}

interface Installed {
  packed: Record<string, Packed>;
}

let installed: Promise<Installed> | null = null;

/** Pack the three packages (each built by its prepack) and install the tarballs into the project, offline: once, shared by the tests. */
function install(): Promise<Installed> {
  installed ??= (async () => {
    const tarballs = join(work, 'tarballs');
    mkdirSync(tarballs);
    const packed: Record<string, Packed> = {};
    for (const p of PACKAGES) {
      const t0 = performance.now();
      // pnpm in the workspace (its prepack runs tsx from there): this is the maintainer's side.
      ok(run('pnpm', ['pack', '--pack-destination', tarballs], join(root, p.dir), process.env, 600_000), `pnpm pack in ${p.dir}`);
      const tarball = join(tarballs, `${p.file}-0.1.0.tgz`);
      assert.ok(existsSync(tarball), `${tarball} written`);
      const listing = ok(run('tar', ['tzvf', tarball], work), 'tar tzvf');
      const files = listing.trim().split('\n').map((line) => {
        const f = line.trim().split(/\s+/);
        return { path: f[5].replace(/^package\//, ''), bytes: Number(f[2]) };
      });
      const manifest = JSON.parse(ok(run('tar', ['xzf', tarball, '-O', 'package/package.json'], work), 'tar xzf')) as Record<string, unknown>;
      packed[p.name] = { tarball, bytes: statSync(tarball).size, files, manifest };
      console.log(`  packed ${p.name}: ${(packed[p.name].bytes / 1e6).toFixed(2)} MB, ${files.length} files (${(files.reduce((a, f) => a + f.bytes, 0) / 1e6).toFixed(2)} MB unpacked), build and pack ${seconds(t0)}`);
    }

    // The project: the three tarballs as its dependencies (and as the packages' dependencies on
    // each other), every other version as the workspace's lockfile has it, the same packages
    // allowed to run install scripts.
    const t0 = performance.now();
    mkdirSync(project);
    const tgz = (name: string) => `file:${packed[name].tarball}`;
    const tree = JSON.parse(ok(run('pnpm', ['list', '--filter', 'aunet', '--prod', '--depth', 'Infinity', '--json'], root, process.env), 'pnpm list')) as [PackageNode];
    const allowBuilds = JSON.parse(ok(run('pnpm', ['config', 'get', 'allowBuilds', '--json'], root, process.env), 'pnpm config get allowBuilds')) as Record<string, boolean>;
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'stranger', private: true, type: 'module', dependencies: Object.fromEntries(PACKAGES.map((p) => [p.name, tgz(p.name)])) }, null, 2));
    // YAML holds JSON as it is.
    writeFileSync(join(project, 'pnpm-workspace.yaml'), JSON.stringify({ overrides: { ...lockedVersions(tree[0]), '@aunet/tensor': tgz('@aunet/tensor'), '@aunet/nn': tgz('@aunet/nn') }, allowBuilds }, null, 2));
    ok(run('pnpm', ['install', '--offline'], project), 'pnpm install --offline in the project');
    console.log(`  installed into ${project} in ${seconds(t0)}`);
    return { packed };
  })();
  return installed;
}

interface PackageNode {
  version: string;
  dependencies?: Record<string, PackageNode>;
}

/**
 * Overrides that pin every package below aunet's production dependencies to the version the
 * workspace installed: `name: version` where it has one, `parent@version>name: version` where
 * it has several.
 */
function lockedVersions(top: PackageNode): Record<string, string> {
  const versions = new Map<string, Set<string>>();
  const edges: [string, string, string, string][] = [];
  const walk = (name: string, node: PackageNode) => {
    for (const [child, c] of Object.entries(node.dependencies ?? {})) {
      if (!c.version.startsWith('link:')) {
        if (!versions.has(child)) versions.set(child, new Set());
        versions.get(child)!.add(c.version);
        edges.push([name, node.version, child, c.version]);
      }
      walk(child, c);
    }
  };
  walk('aunet', top);
  const pins: Record<string, string> = {};
  for (const [name, vs] of versions) if (vs.size === 1) pins[name] = [...vs][0];
  for (const [parent, parentVersion, name, version] of edges) {
    if (versions.get(name)!.size > 1) pins[parentVersion.startsWith('link:') ? `${parent}>${name}` : `${parent}@${parentVersion}>${name}`] = version;
  }
  return pins;
}

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name)));
}

// ---------------------------------------------------------------------------------------------

const packing = suite('packing');

packing('each tarball holds its build, declarations, licence and README, and no sources', async () => {
  const { packed } = await install();
  for (const p of PACKAGES) {
    const { files, manifest } = packed[p.name];
    const paths = files.map((f) => f.path);
    for (const f of ['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts']) assert.ok(paths.includes(f), `${p.name}: ${f}`);
    assert.equal(paths.filter((f) => /^(src|test|scripts|node_modules)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts')) || f.endsWith('.tsbuildinfo')), [], `${p.name}: sources or build state packed`);
    assert.is(manifest.license, p.name === 'aunet' ? 'MIT AND CC0-1.0' : 'MIT');
    assert.equal(manifest.engines, { node: '>=20' });
    assert.ok(!JSON.stringify(manifest.dependencies ?? {}).includes('workspace:'), `${p.name}: workspace: versions rewritten`);
    for (const [entry, target] of Object.entries(manifest.exports as Record<string, { types: string; import: string }>)) {
      assert.match(target.import, /^\.\/dist\/.*\.js$/, `${p.name} ${entry}`);
      assert.match(target.types, /^\.\/dist\/.*\.d\.ts$/, `${p.name} ${entry}`);
      assert.ok(paths.includes(target.import.slice(2)) && paths.includes(target.types.slice(2)), `${p.name} ${entry}: its files are packed`);
    }
  }
  const aunet = packed.aunet.files.map((f) => f.path);
  for (const f of ['models/aunet-medseg.safetensors', 'MODEL.md', 'data/medseg-covid/tr_im_lungwindow.nii.gz', 'data/medseg-covid/tr_mask.nii.gz', 'data/medseg-covid/tr_lungmask.nii.gz', 'data/medseg-covid/LICENSE', 'dist/cli/aunet.js', 'dist/web/index.html', 'dist/web/page.bundle.js', 'dist/web/ort-page.bundle.js']) {
    assert.ok(aunet.includes(f), `aunet: ${f}`);
  }
  assert.equal(aunet.filter((f) => /^(runs|predictions|test-artifacts|data\/medseg-official)\//.test(f)), [], 'aunet: no run, prediction or fetched file');
  assert.equal(packed.aunet.manifest.bin, { aunet: './dist/cli/aunet.js' });
});

packing('the installed JavaScript names a file in every relative import, and the WGSL is inside it', async () => {
  await install();
  const extensionless: string[] = [];
  for (const p of PACKAGES) {
    const dir = join(project, 'node_modules', p.name);
    for (const f of filesUnder(join(dir, 'dist')).filter((f) => f.endsWith('.js') || f.endsWith('.d.ts'))) {
      if (f.endsWith('.bundle.js')) continue;
      const code = readFileSync(join(dir, 'dist', f), 'utf8');
      for (const m of code.matchAll(/(?:from\s*|import\s*\(\s*)["'](\.{1,2}(?:\/[^"']*)?)["']/g)) if (!m[1].endsWith('.js')) extensionless.push(`${p.name}/dist/${f}: ${m[1]}`);
    }
  }
  assert.equal(extensionless, []);
  const winograd = readFileSync(join(project, 'node_modules', '@aunet/tensor', 'dist', 'ops', 'conv2d', 'winograd.js'), 'utf8');
  assert.match(winograd, /@compute @workgroup_size/);
  assert.ok(!existsSync(join(project, 'node_modules', 'tsx')) && !existsSync(join(project, 'node_modules', 'typescript')), 'neither tsx nor TypeScript in the project');
});

packing.run();

// ---------------------------------------------------------------------------------------------

const LIBRARY = `
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backward, conv2d, init, mul, randn, sum } from '@aunet/tensor';
import { conv2dBackward, conv2d as conv2dReference, ref } from '@aunet/tensor/reference';
import { loadModel, modelPredictor, predictVolume } from 'aunet';
import { DEFAULT_DATA_DIR, SHIPPED_MODEL_FILE, readVolume, writeNifti } from 'aunet/node';

const out = { resolved: [import.meta.resolve('@aunet/tensor'), import.meta.resolve('aunet'), import.meta.resolve('aunet/node')], files: [SHIPPED_MODEL_FILE, DEFAULT_DATA_DIR] };
const rt = await init();
out.adapter = rt.describe();

// A convolution and its three gradients (loss = sum(y * r)) against the float64 reference.
const opts = { padding: 1 };
const x = randn([2, 3, 9, 9], { seed: 1, requiresGrad: true });
const w = randn([4, 3, 3, 3], { seed: 2, requiresGrad: true });
const b = randn([4], { seed: 3, requiresGrad: true });
const r = randn([2, 4, 9, 9], { seed: 4 });
const y = conv2d(x, w, b, opts);
backward(sum(mul(y, r)));
const [xv, wv, bv, rv, yv, dx, dw, db] = await Promise.all([x, w, b, r, y, x.grad, w.grad, b.grad].map((t) => t.data()));
const R = (t, v) => ref(v, [...t.shape]);
const expected = [conv2dReference(R(x, xv), R(w, wv), R(b, bv), opts), ...conv2dBackward(R(x, xv), R(w, wv), R(b, bv), opts, R(r, rv))];
const relErr = (got, want) => {
  let e = 0, m = 0;
  for (let i = 0; i < want.data.length; i++) { e = Math.max(e, Math.abs(got[i] - want.data[i])); m = Math.max(m, Math.abs(want.data[i])); }
  return got.length === want.data.length ? e / m : Infinity;
};
out.conv = { y: relErr(yv, expected[0]), dx: relErr(dx, expected[1]), dw: relErr(dw, expected[2]), db: relErr(db, expected[3]) };

// Three shipped slices segmented by the shipped model, scored against their labels; the same
// slices written as a NIfTI volume for predict and the page, with the probabilities to compare.
const SLICES = [40, 55, 70];
const image = readVolume(join(DEFAULT_DATA_DIR, 'tr_im_lungwindow.nii.gz'));
const labels = readVolume(join(DEFAULT_DATA_DIR, 'tr_mask.nii.gz'));
const [nx, ny] = image.dims;
const plane = nx * ny;
const pick = (v) => { const d = new Float32Array(plane * SLICES.length); SLICES.forEach((k, i) => d.set(v.data.subarray(k * plane, (k + 1) * plane), i * plane)); return d; };
const slices = { ...image, source: 'slices', dims: [nx, ny, SLICES.length], data: pick(image) };
const { model, config } = loadModel(new Uint8Array(readFileSync(SHIPPED_MODEL_FILE)), SHIPPED_MODEL_FILE);
const p = await predictVolume(modelPredictor(model, 4), slices, { batch: 4 });
model.dispose();
const truth = pick(labels);
let both = 0, predicted = 0, labelled = 0;
for (let i = 0; i < truth.length; i++) { const t = truth[i] > 0.5 ? 1 : 0; both += t & p.mask[i]; predicted += p.mask[i]; labelled += t; }
out.model = { inputSize: config.model.inputSize, architecture: config.model.architecture, dice: (2 * both) / (predicted + labelled), predicted, labelled };
await writeNifti('slices.nii.gz', { dims: slices.dims, data: Uint8Array.from(slices.data), datatype: 'uint8', space: image.space });
writeFileSync('library-probabilities.f32', new Uint8Array(p.probabilities.buffer));
console.log(JSON.stringify(out));
`;

interface LibraryResult {
  resolved: string[];
  files: string[];
  adapter: string;
  conv: Record<'y' | 'dx' | 'dw' | 'db', number>;
  model: { inputSize: number; architecture: string; dice: number; predicted: number; labelled: number };
}

let library: Promise<LibraryResult> | null = null;

/** The library run in the project (plain `node library.mjs`): once, shared by the tests below. */
function runLibrary(): Promise<LibraryResult> {
  library ??= install().then(() => {
    const t0 = performance.now();
    writeFileSync(join(project, 'library.mjs'), LIBRARY);
    const stdout = ok(run(process.execPath, ['library.mjs'], project), 'node library.mjs');
    console.log(`  node library.mjs: ${seconds(t0)}`);
    return JSON.parse(stdout.trim().split('\n').at(-1)!) as LibraryResult;
  });
  return library;
}

/** Node's probabilities for the three slices (the library's, in the project). */
const libraryProbabilities = () => new Float32Array(new Uint8Array(readFileSync(join(project, 'library-probabilities.f32'))).buffer);

/** Voxels where `mask` differs from Node's probabilities thresholded at 0.5, beyond those within 1e-3 of it (float rounding at the threshold). */
function maskDifferences(mask: ArrayLike<number>, probabilities: Float32Array): number {
  assert.is(mask.length, probabilities.length, 'same number of voxels');
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] !== (probabilities[i] >= 0.5 ? 1 : 0) && Math.abs(probabilities[i] - 0.5) > 1e-3) n++;
  return n;
}

const usingIt = suite('using the installed packages');

usingIt('@aunet/tensor from the build: a convolution and its gradients on the adapter equal the float64 reference', async () => {
  const r = await runLibrary();
  const inProject = (url: string) => fileURLToPath(url).startsWith(join(project, 'node_modules') + sep);
  assert.ok(r.resolved.every(inProject) && r.resolved.every((u) => u.endsWith('.js')), `imports resolve to the installed build: ${r.resolved.join(', ')}`);
  console.log(`  adapter: ${r.adapter}; conv2d relative errors ${JSON.stringify(r.conv)}`);
  for (const [k, e] of Object.entries(r.conv)) assert.ok(e < 1e-4, `conv2d ${k}: relative error ${e}`);
});

usingIt('aunet from the build: the shipped model segments shipped slices, read from the installed package', async () => {
  const r = await runLibrary();
  assert.ok(r.files.every((f) => f.startsWith(join(project, 'node_modules') + sep)), `model and data in the installed package: ${r.files.join(', ')}`);
  console.log(`  shipped model (${r.model.architecture}, ${r.model.inputSize}x${r.model.inputSize}) on slices 40, 55, 70: Dice ${r.model.dice.toFixed(3)} (${r.model.predicted} px predicted, ${r.model.labelled} labelled)`);
  assert.ok(r.model.labelled > 1000, 'the slices have lesions');
  // The shipped model trained on every slice; on three of them it must find most lesion pixels.
  assert.ok(r.model.dice > 0.6, `Dice ${r.model.dice}`);
});

// --yes=false: never download (the package is installed). Not `--no`: npm 11's npx reads
// `--no aunet` as a flag's value, finds no command and answers `--help` with npm's own help.
const npx = (args: string[]) => run('npx', ['--yes=false', 'aunet', ...args], project);

usingIt('aunet --help, npx aunet --help and npx aunet help list the commands; npx aunet predict --help is the command\'s help, named aunet', async () => {
  await install();
  const help = ok(run(join(project, 'node_modules', '.bin', 'aunet'), ['--help'], project), 'aunet --help');
  assert.is(ok(npx(['--help']), 'npx aunet --help'), help);
  assert.is(ok(npx(['help']), 'npx aunet help'), help);
  for (const c of ['train', 'predict', 'evaluate', 'web', 'export', 'fetch-data', 'cv', 'ablation']) assert.match(help, new RegExp(`^  ${c} `, 'm'), `${c} in:\n${help}`);
  assert.match(help, 'predict its outputs into predictions/');
  const predictHelp = ok(npx(['predict', '--help']), 'npx aunet predict --help');
  assert.is(ok(npx(['help', 'predict']), 'npx aunet help predict'), predictHelp);
  assert.match(predictHelp, 'Usage: aunet predict --input PATH');
  assert.not.match(predictHelp, 'pnpm --filter');
  // The package's folder as Node found it: node_modules/aunet, which pnpm links into its store.
  assert.match(predictHelp, /node_modules\/(\.pnpm\/\S+\/)?aunet\/models\/aunet-medseg\.safetensors/);
  assert.match(predictHelp, 'output folder (default: predictions)');
});

usingIt('npx aunet predict --input: the library\'s mask, written into the project\'s folder', async () => {
  await runLibrary();
  const t0 = performance.now();
  const r = npx(['predict', '--input', 'slices.nii.gz', '--png', 'none']);
  ok(r, 'npx aunet predict');
  console.log(`  npx aunet predict: ${seconds(t0)}`);
  assert.match(r.stdout, /no --checkpoint: using the shipped model node_modules\/(\.pnpm\/\S+\/)?aunet\/models\/aunet-medseg\.safetensors/);
  const file = join(project, 'predictions', 'slices_lesions.nii.gz');
  assert.ok(existsSync(file), `${file} written`);
  // Read back with the installed package itself.
  const read = run(process.execPath, ['--input-type=module', '-e', `import { readVolume } from 'aunet/node'; process.stdout.write(Buffer.from(Uint8Array.from(readVolume(${JSON.stringify(file)}).data)).toString('base64'));`], project);
  const mask = Buffer.from(ok(read, 'reading the mask'), 'base64');
  assert.is(maskDifferences(mask, libraryProbabilities()), 0);
});

usingIt('an error is one line and its exit code, from npx too', async () => {
  await install();
  const missing = npx(['predict', '--input', 'no-such-scan.nii.gz']);
  assert.is(missing.status, 1, missing.stderr);
  assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
  assert.match(missing.stderr, /^error: .*no-such-scan\.nii\.gz/);
  const unknown = npx(['segment']);
  assert.is(unknown.status, 2);
  assert.match(unknown.stderr, /^error: unknown command "segment": the commands are predict, evaluate, web, .*\(aunet help says what each does\)\n$/);
  const flag = npx(['predict', '--no-such-flag']);
  assert.is(flag.status, 2);
  assert.is(flag.stderr.trim().split('\n').length, 1, flag.stderr);
});

usingIt('the declarations type-check a project that imports the packages (Node\'s resolution, through exports)', async () => {
  await install();
  const t0 = performance.now();
  writeFileSync(
    join(project, 'typed.ts'),
    `import { conv2d, randn, type Tensor } from '@aunet/tensor';
import { Adam } from '@aunet/nn';
import { loadModel, type ModelConfig } from 'aunet';
import { readVolume, SHIPPED_MODEL_FILE } from 'aunet/node';
const x: Tensor = conv2d(randn([1, 1, 4, 4]), randn([1, 1, 3, 3]), null, { padding: 1 });
const size: ModelConfig['inputSize'] = loadModel(new Uint8Array(0)).config.model.inputSize;
const file: string = SHIPPED_MODEL_FILE;
const dims: [number, number, number] = readVolume(file).dims;
// @ts-expect-error: a string is not a tensor
conv2d('x', x);
// @ts-expect-error: Adam takes parameters, not a number
new Adam(3);
export { size, dims };
`,
  );
  writeFileSync(
    join(project, 'tsconfig.json'),
    // skipLibCheck off: the declarations themselves are checked too (WebGPU's types come through
    // the reference that @aunet/tensor's runtime.d.ts keeps).
    JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: [] }, files: ['typed.ts'] }),
  );
  // The workspace's TypeScript, run on the project: the project itself has none.
  const r = run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], project);
  console.log(`  tsc on the project: ${seconds(t0)}`);
  ok(r, 'tsc -p project');
});

usingIt.run();

// ---------------------------------------------------------------------------------------------

const PAGE = `
import { init } from '@aunet/tensor';
import { loadModel, modelPredictor, parseNifti, predictVolume } from 'aunet';

globalThis.segment = async () => {
  const rt = await init();
  const [checkpoint, scan] = await Promise.all(['model.safetensors', 'slices.nii.gz'].map(async (u) => new Uint8Array(await (await fetch(u)).arrayBuffer())));
  const { model } = loadModel(checkpoint, 'model.safetensors');
  const p = await predictVolume(modelPredictor(model, 4), parseNifti(scan, 'slices.nii.gz'), { batch: 4 });
  model.dispose();
  return { adapter: rt.describe(), mask: p.mask.join('') };
};
`;

const browser = suite('in a browser');
let server: Server | null = null;
let chromium: Browser | null = null;

browser('a page importing aunet, bundled by esbuild from the project, segments the slices in Chromium as Node does', async () => {
  await runLibrary();
  const t0 = performance.now();
  writeFileSync(join(project, 'page.mjs'), PAGE);
  const bundle = await build({ entryPoints: [join(project, 'page.mjs')], absWorkingDir: project, bundle: true, platform: 'browser', format: 'esm', target: 'es2022', write: false, metafile: true, logLevel: 'silent' });
  const inputs = Object.keys(bundle.metafile.inputs);
  assert.ok(inputs.some((f) => /node_modules\/aunet\/dist\/index\.js$/.test(f)), 'aunet\'s build is in the bundle');
  assert.ok(inputs.some((f) => /node_modules\/@aunet\/tensor\/dist\/runtime\.js$/.test(f)), '@aunet/tensor\'s build is in the bundle');
  assert.equal(inputs.filter((f) => f.endsWith('.ts') || f.includes('node_modules/webgpu/')), [], 'no TypeScript source and no Dawn in the bundle');
  const files: Record<string, { type: string; body: string | Uint8Array }> = {
    '/': { type: 'text/html', body: '<!doctype html><meta charset="utf-8"><title>aunet from npm</title><script type="module" src="page.js"></script>' },
    '/page.js': { type: 'text/javascript', body: bundle.outputFiles[0].text },
    '/model.safetensors': { type: 'application/octet-stream', body: readFileSync(join(project, 'node_modules', 'aunet', 'models', 'aunet-medseg.safetensors')) },
    '/slices.nii.gz': { type: 'application/octet-stream', body: readFileSync(join(project, 'slices.nii.gz')) },
  };
  server = createServer((req, res) => {
    const f = files[req.url ?? ''];
    if (!f) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': f.type }).end(f.body);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  chromium = await launchChromium('lavapipe');
  const page = await chromium.newPage();
  page.on('pageerror', (e) => console.log(`  page error: ${e.message}`));
  page.setDefaultTimeout(300_000);
  await page.goto(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
  await page.waitForFunction(() => typeof (globalThis as { segment?: unknown }).segment === 'function');
  const r = (await page.evaluate(() => (globalThis as unknown as { segment(): Promise<{ adapter: string; mask: string }> }).segment())) as { adapter: string; mask: string };
  console.log(`  Chromium (lavapipe route, ${r.adapter}): ${seconds(t0)}`);
  const mask = Uint8Array.from(r.mask, (c) => Number(c));
  assert.ok(mask.some((v) => v === 1), 'lesions found');
  assert.is(maskDifferences(mask, libraryProbabilities()), 0);
});

browser.after(async () => {
  await chromium?.close().catch(() => {});
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  rmSync(work, { recursive: true, force: true });
});
browser.run();
