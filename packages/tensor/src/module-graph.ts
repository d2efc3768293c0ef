// The import graph of a package's source folder, for the tests that keep each package's modules
// free of cycles and its layers in order. Node-only test support (`@aunet/tensor/module-graph`).

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** Every .ts file under `dir`, as absolute paths. */
export function sourceModules(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? sourceModules(path) : name.endsWith('.ts') ? [path] : [];
    });
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * The modules of this package that `file` imports or re-exports from (relative specifiers only).
 * Type-only imports count only with `types` (they vanish at run time, so they cannot make a
 * load-order cycle, but they still say which module knows about which).
 */
export function localImports(file: string, o: { types?: boolean } = {}): string[] {
  const code = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of code.matchAll(/^(?:import|export)\s+(type\s+)?([^;]*?)\s+from\s+'(\.[^']+)'/gms)) {
    const [, typeKeyword, what, specifier] = m;
    // `import { type A, type B } from` is type-only too.
    const namesOnlyTypes = /^\{[^}]*\}$/s.test(what.trim()) && what.replace(/[{}\s]/g, '').split(',').filter(Boolean).every((n) => n.startsWith('type'));
    if (!o.types && (typeKeyword || namesOnlyTypes)) continue;
    let target = resolve(dirname(file), specifier);
    if (!target.endsWith('.ts')) target = isFile(`${target}.ts`) ? `${target}.ts` : join(target, 'index.ts');
    out.push(target);
  }
  return [...new Set(out)];
}

/** Each module of `dir` with the modules it imports, paths relative to `dir` ("data/nifti.ts"). */
export function importGraph(dir: string, o: { types?: boolean } = {}): Map<string, string[]> {
  return new Map(sourceModules(dir).map((f) => [relative(dir, f), localImports(f, o).map((g) => relative(dir, g))]));
}

/** The import cycles of a graph, each as "a.ts -> b.ts -> a.ts"; [] when there is none. */
export function importCycles(graph: Map<string, string[]>): string[] {
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'visiting') {
      cycles.push([...path.slice(path.indexOf(f)), f].join(' -> '));
      return;
    }
    state.set(f, 'visiting');
    for (const g of graph.get(f) ?? []) visit(g, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of graph.keys()) visit(f, []);
  return cycles;
}
