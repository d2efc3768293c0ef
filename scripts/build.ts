// Builds the published packages into their dist/ folders: `tsx scripts/build.ts [tensor|nn|aunet ...]`
// (no name: all three). Each package's `prepack` runs it for itself, so `pnpm pack` never packs
// an old build. The package's dist/ is emptied first; the packages it depends on are rebuilt
// only when their sources changed (tsc's build mode keeps their state in dist/.tsbuildinfo).
//
// Why tsc, one output file per source file, rather than a bundle per entry point: the sources
// find their files from their own place (`new URL('../models/...', import.meta.url)`: the shipped
// model and data, the web page's HTML), and dist/ mirrors src/ at the same depth, so every such
// path stays right; tsc also writes the type declarations, and the WGSL is template strings in
// the code, so it stays inside the JavaScript. Project references (tsconfig.build.json) compile
// @aunet/nn and aunet against @aunet/tensor's declarations instead of its sources.
//
// The sources import without extensions (`./tensor`), as bundler resolution allows; Node's ES
// module loader needs the file (`./tensor.js`, `./ops/index.js`). A transformer run by tsc's own
// emit gives every relative import and export (and `import("./x")` types in declarations) the
// file it names, found on disk; one it cannot find stops the build.
//
// For aunet, also the web page: its HTML copied beside the server, and its script (and the
// ONNX Runtime page of `web-time`) bundled for the browser by esbuild, as `web` bundles them when
// it runs from source: an installed package has neither esbuild nor the TypeScript sources.
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('..', import.meta.url));
const PACKAGES = ['tensor', 'nn', 'aunet'] as const;
type PackageName = (typeof PACKAGES)[number];

/** The file a relative specifier names, as Node must be told it: `./x` -> `./x.js` or `./x/index.js`; `..` (which tsc writes in declarations) -> `../index.js`. */
export function withExtension(specifier: string, fromFile: string): string {
  if (!/^\.\.?(\/|$)/.test(specifier)) return specifier;
  if (/\.(m?js|json)$/.test(specifier)) return specifier;
  const target = resolve(dirname(fromFile), specifier);
  const isFile = (p: string) => existsSync(p) && statSync(p).isFile();
  if (isFile(`${target}.ts`) || isFile(`${target}.tsx`)) return `${specifier}.js`;
  if (isFile(join(target, 'index.ts'))) return `${specifier}/index.js`;
  throw new Error(`${fromFile}: import "${specifier}" names no .ts file or folder with an index.ts`);
}

/** {@link withExtension} applied to a file's imports, exports, `import()` calls and `import("...")` types. */
function relativeImportsWithExtensions(context: ts.TransformationContext, file: ts.SourceFile): ts.SourceFile {
  const f = context.factory;
  const source = file.fileName;
  const literal = (node: ts.StringLiteral) => {
    const fixed = withExtension(node.text, source);
    return fixed === node.text ? node : f.createStringLiteral(fixed);
  };
  const visit = (node: ts.Node): ts.Node => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      return f.updateImportDeclaration(node, node.modifiers, node.importClause, literal(node.moduleSpecifier), node.attributes);
    }
    if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      return f.updateExportDeclaration(node, node.modifiers, node.isTypeOnly, node.exportClause, literal(node.moduleSpecifier), node.attributes);
    }
    if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      const argument = f.updateLiteralTypeNode(node.argument, literal(node.argument.literal));
      return f.updateImportTypeNode(node, argument, node.attributes, node.qualifier, node.typeArguments?.map((t) => ts.visitNode(t, visit) as ts.TypeNode), node.isTypeOf);
    }
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments.length && ts.isStringLiteral(node.arguments[0])) {
      return f.updateCallExpression(node, node.expression, node.typeArguments, [literal(node.arguments[0]), ...node.arguments.slice(1)]);
    }
    return ts.visitEachChild(node, visit, context);
  };
  return ts.visitNode(file, visit) as ts.SourceFile;
}

/** The transformers for tsc's emit: the JavaScript, and the declarations (which tsc may hand over as a bundle: none here). */
const transformers: ts.CustomTransformers = {
  after: [(context) => (file) => relativeImportsWithExtensions(context, file)],
  afterDeclarations: [(context) => (file) => (ts.isSourceFile(file) ? relativeImportsWithExtensions(context, file) : file)],
};

/** tsc's build of one package (and of the packages it references, where out of date); false when it reported errors. */
function compile(name: PackageName): boolean {
  const config = join(root, 'packages', name, 'tsconfig.build.json');
  const format: ts.FormatDiagnosticsHost = { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' };
  const report: ts.DiagnosticReporter = (d) => process.stderr.write(ts.formatDiagnosticsWithColorAndContext([d], format));
  const host = ts.createSolutionBuilderHost(ts.sys, undefined, report, report);
  const builder = ts.createSolutionBuilder(host, [config], {});
  const status = builder.build(undefined, undefined, undefined, () => transformers);
  return status === ts.ExitStatus.Success;
}

/** What esbuild made of a browser entry: the script and the source files in it. */
type BrowserBundle = { js: string; inputs: string[] };

/** aunet's web page beside the built server: index.html, and the scripts bundled for the browser (see web/server.ts). */
async function buildWebPages(): Promise<void> {
  const pkg = join(root, 'packages', 'aunet');
  const server = (await import(pathToFileURL(join(pkg, 'src', 'web', 'server.ts')).href)) as {
    bundleForBrowser(entry: string): Promise<BrowserBundle>;
    BROWSER_ENTRIES: readonly string[];
  };
  const out = join(pkg, 'dist', 'web');
  mkdirSync(out, { recursive: true });
  copyFileSync(join(pkg, 'src', 'web', 'index.html'), join(out, 'index.html'));
  for (const entry of server.BROWSER_ENTRIES) {
    const { js, inputs } = await server.bundleForBrowser(join(pkg, 'src', 'web', `${entry}.ts`));
    writeFileSync(join(out, `${entry}.bundle.js`), js);
    writeFileSync(join(out, `${entry}.bundle.json`), JSON.stringify({ inputs }, null, 1) + '\n');
  }
}

async function main(): Promise<void> {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((a) => !(PACKAGES as readonly string[]).includes(a));
  if (unknown.length) {
    console.error(`error: no package ${unknown.join(', ')}: name ${PACKAGES.join(', ')} (none: all three)`);
    process.exit(2);
  }
  const names = asked.length ? PACKAGES.filter((p) => asked.includes(p)) : [...PACKAGES];
  for (const name of names) {
    const start = Date.now();
    rmSync(join(root, 'packages', name, 'dist'), { recursive: true, force: true });
    if (!compile(name)) {
      console.error(`error: tsc found errors building packages/${name} (above)`);
      process.exit(1);
    }
    if (name === 'aunet') await buildWebPages();
    console.log(`built packages/${name}/dist in ${((Date.now() - start) / 1000).toFixed(1)} s`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  });
}
