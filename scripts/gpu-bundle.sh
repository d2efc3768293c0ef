#!/usr/bin/env bash
# Packs what `pnpm bench` needs on a machine that has a GPU but no Node and no network (the lent
# device machines): this Node binary, the benchmarks compiled into one ES module by esbuild, and
# Dawn's bindings (the `webgpu` package, linux-x64 only). Writes .gpu/bench.tar.xz (about 28 MB;
# .gpu/ is git-ignored). On that machine, scripts/gpu-bench.sh unpacks and runs it.
#
#   bash scripts/gpu-bundle.sh            # then: device run, carry [".gpu"], bash scripts/gpu-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

webgpu=$(node -e "console.log(require('path').dirname(require.resolve('webgpu/package.json', { paths: [process.argv[1]] })))" "$root/benchmarks")
mkdir -p "$work/bench/node_modules/webgpu/dist/linux-x64" .gpu
# One file: every workspace package and dependency inlined; only the native bindings stay outside.
# (Suites are loaded by import() with literal paths, which esbuild inlines as well.)
packages/aunet/node_modules/.bin/esbuild benchmarks/src/main.ts --bundle --platform=node --format=esm --target=node20 \
  --external:webgpu --outfile="$work/bench/bench.mjs" --log-level=warning \
  --banner:js="import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);"
cp "$webgpu/package.json" "$webgpu/index.js" "$webgpu/LICENSE.md" "$work/bench/node_modules/webgpu/"
cp "$webgpu/dist/linux-x64/dawn.node" "$work/bench/node_modules/webgpu/dist/linux-x64/"
cp "$(command -v node)" "$work/bench/node"
echo "$(node --version) $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+changes')" > "$work/bench/VERSION"
tar -C "$work" -cf - bench | xz -T0 -6 > .gpu/bench.tar.xz
echo "wrote .gpu/bench.tar.xz ($(du -h .gpu/bench.tar.xz | cut -f1); $(cat "$work/bench/VERSION"))"
