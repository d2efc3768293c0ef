#!/usr/bin/env bash
# Sets up this checkout on a fresh machine (Debian 12 with Node 20 is the reference):
#   1. checks Node,
#   2. installs pnpm at the version pinned in package.json,
#   3. installs the dependencies from the lockfile,
#   4. installs Chromium for the browser tests (Debian, as root; else says how),
#      and Redis for the batch service and its test (Debian's redis-server, likewise),
#   5. checks that WebGPU finds an adapter; on Debian without one, installs Mesa's lavapipe
#      (Vulkan on the CPU) from bookworm-backports, since Debian 12's own Mesa 22 is too old for
#      Dawn. Where it cannot (not root, not Debian), it prints exactly what to run.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
fail() { printf '\033[1;31m[setup] %s\033[0m\n' "$*" >&2; exit 1; }

command -v node >/dev/null || fail "Node.js is not installed: install Node 20 or newer (https://nodejs.org), then run this again."
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || fail "Node $(node --version) is too old: this project needs Node 20 or newer."

pnpm_version=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]; then
  say "installing pnpm $pnpm_version"
  # corepack's signature check fails against some registry mirrors, so install from npm directly.
  if ! npm install -g "pnpm@$pnpm_version" >/dev/null 2>&1; then
    fail "could not install pnpm $pnpm_version globally: run \`npm install -g pnpm@$pnpm_version\` (with sudo if npm's prefix needs it), then run this again."
  fi
  hash -r
  [ "$(pnpm --version)" = "$pnpm_version" ] || fail "pnpm on PATH is $(pnpm --version), not $pnpm_version: put npm's global bin ($(npm prefix -g)/bin) first on PATH."
fi

say "installing dependencies from the lockfile"
pnpm install --frozen-lockfile --reporter=append-only | grep -v -E '^(Progress|Packages:)' || fail "pnpm install failed (see above)"

# Chromium for the browser tests (packages/aunet/test/web.test.ts, kernels-browser.test.ts, driven by
# playwright-core, which downloads no browser of its own): Debian's package. Without it those tests
# fail, saying so.
is_debian() { [ "$(uname -s)" = Linux ] && [ -r /etc/os-release ] && (. /etc/os-release && [ "${ID:-}" = debian ]); }
if [ -z "${AUNET_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if is_debian && [ "$(id -u)" = 0 ]; then
    say "installing Chromium from Debian (for the browser tests)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || fail "apt-get update failed: check the network and apt's sources"
    apt-get install -y -q chromium >/dev/null || fail "could not install chromium (see apt's error above)"
  else
    printf '\033[1;33m[setup] Chromium is not installed, so the browser tests (web page, kernels in the browser) will FAIL.\n' >&2
    printf '        Install it (Debian: sudo apt-get install -y chromium), or set AUNET_CHROMIUM to a Chrome or Chromium binary.\033[0m\n' >&2
  fi
fi

# Redis for the batch segmentation service (worker, submit, queue) and its test
# (packages/aunet/test/queue.test.ts starts its own redis-server on a free loopback port): Debian's
# package. Only the binary is needed here; the service installed by the package is not used by the test.
if [ -z "${AUNET_REDIS_SERVER:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
  if is_debian && [ "$(id -u)" = 0 ]; then
    say "installing redis-server from Debian (for the batch service and its test)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || fail "apt-get update failed: check the network and apt's sources"
    apt-get install -y -q redis-server >/dev/null || fail "could not install redis-server (see apt's error above)"
  else
    printf '\033[1;33m[setup] redis-server is not installed, so the queue test (packages/aunet/test/queue.test.ts) will FAIL.\n' >&2
    printf '        Install it (Debian: sudo apt-get install -y redis-server), or set AUNET_REDIS_SERVER to a redis-server binary.\033[0m\n' >&2
  fi
fi

probe() { node --import tsx packages/tensor/src/cli/probe.ts 2> >(grep -v 'artificially reduced' >&2); }

if probe; then exit 0; fi

if [ "$(uname -s)" = Linux ] && [ -r /etc/os-release ] && . /etc/os-release && [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
  if [ "$(id -u)" = 0 ]; then
    say "no WebGPU adapter: installing Mesa's lavapipe from bookworm-backports"
    echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/bookworm-backports.list
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || fail "apt-get update failed: check the network and apt's sources"
    apt-get install -y -q -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null \
      || fail "could not install mesa-vulkan-drivers from bookworm-backports (see apt's error above)"
    probe || fail "WebGPU still finds no adapter after installing lavapipe (see the error above)."
    exit 0
  fi
  fail "No WebGPU adapter. As root, run:
  echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/bookworm-backports.list
  apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1
then run this script again."
fi
fail "No WebGPU adapter (see the error above). Install a Vulkan driver for your GPU, or Mesa's lavapipe (mesa-vulkan-drivers, Mesa 23 or newer), then run this script again."
