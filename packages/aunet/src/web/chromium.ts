// Headless Chromium driven by playwright-core, for the browser tests and `web-time` (Node only,
// development: playwright-core is a devDependency). Chromium is the system's (Debian's `chromium`
// package, which scripts/setup.sh installs), never a browser build downloaded by playwright.

import { existsSync } from 'node:fs';
import type { Browser, BrowserContext } from 'playwright-core';

/**
 * How headless Chromium gets WebGPU on a machine without a GPU:
 * - `swiftshader`: Chromium's own software Vulkan (SwiftShader); WebGL2 too, so NiiVue shows.
 * - `lavapipe`: WebGPU on OpenGL ES through ANGLE on Vulkan (Mesa's lavapipe), faster; a
 *   compatibility-mode adapter (no f16, subgroups or timestamps) and no WebGL2 (the page falls
 *   back to its 2-D view).
 * - `none`: no flag, as a user's Linux Chromium starts: WebGPU is there but gives no adapter.
 */
export const CHROMIUM_ROUTES = {
  swiftshader: ['--enable-unsafe-webgpu'],
  lavapipe: ['--enable-unsafe-webgpu', '--ignore-gpu-blocklist', '--use-angle=vulkan', '--use-webgpu-adapter=opengles', '--force-webgpu-compat'],
  none: [] as string[],
} as const;
export type ChromiumRoute = keyof typeof CHROMIUM_ROUTES;

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/lib/chromium/chromium', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];

/** The Chromium executable: $AUNET_CHROMIUM, else the usual system paths; null when there is none. */
export function findChromium(): string | null {
  const env = process.env.AUNET_CHROMIUM;
  if (env) return existsSync(env) ? env : null;
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

export const NO_CHROMIUM =
  'NO CHROMIUM: the browser tests cannot run, and they FAIL rather than pass without a browser. Install it: ' +
  "`apt-get install -y chromium` (Debian; `bash scripts/setup.sh` does this as root), or point AUNET_CHROMIUM at a Chrome or Chromium binary.";

/** Launch headless Chromium with the flags of `route`; throws NO_CHROMIUM when there is none. */
export async function launchChromium(route: ChromiumRoute, extraArgs: string[] = []): Promise<Browser> {
  const executablePath = findChromium();
  if (!executablePath) throw new Error(NO_CHROMIUM);
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath, headless: true, args: [...CHROMIUM_ROUTES[route], ...extraArgs], timeout: 120_000 });
}

/**
 * Launch headless Chromium with the flags of `route` on the browser profile in `profileDir`
 * (created if missing), as a user's browser keeps one between visits: what Chromium caches on
 * disk (compiled shaders among it) is there the next time.
 */
export async function launchChromiumWithProfile(route: ChromiumRoute, profileDir: string): Promise<BrowserContext> {
  const executablePath = findChromium();
  if (!executablePath) throw new Error(NO_CHROMIUM);
  const { chromium } = await import('playwright-core');
  return chromium.launchPersistentContext(profileDir, { executablePath, headless: true, args: [...CHROMIUM_ROUTES[route]], timeout: 120_000 });
}
