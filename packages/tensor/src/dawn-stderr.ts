// Dawn's notices on stderr. When an adapter is enumerated, Dawn's C++ writes lines of its own
// straight to file descriptor 2 (dawn::WarningLog, with fprintf): on every Vulkan driver two
// "maxDynamic{Uniform,Storage}BuffersPerPipelineLayout artificially reduced from N to 16 ..." lines
// that say nothing to a user. No WebGPU call, Dawn toggle or dawn.node flag turns them off, and Node
// cannot redirect descriptor 2 by itself, so the calls that enumerate adapters run with
// descriptor 2 pointed at a temporary file (dup/dup2 from the C library, through the koffi FFI);
// afterwards every line but those notices goes on to stderr, so a reason Dawn gives for finding no
// adapter still shows. AUNET_VERBOSE=1 (the commands' --verbose) lets everything through.
// Node only: the modules are imported by a name in a variable so that browser bundlers skip them.

/** Runs `fn` (synchronous) with Dawn's known notices held back from stderr. */
export type StderrFilter = <T>(fn: () => T) => T;

/** The two notices Dawn prints for every Vulkan adapter, as one regular expression. */
export const DAWN_LIMIT_NOTICE = /^Warning: maxDynamic(?:Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.$/;

const passThrough: StderrFilter = (fn) => fn();

/** The C library that holds dup and dup2, by platform; others are left unfiltered. */
const LIBC: Partial<Record<NodeJS.Platform, string[]>> = {
  linux: ['libc.so.6', 'libc.so'],
  darwin: ['libSystem.B.dylib'],
  freebsd: ['libc.so.7'],
};

/** Whether the user asked to see Dawn's own lines. */
export function dawnVerbose(env: Record<string, string | undefined> = process.env): boolean {
  const v = env.AUNET_VERBOSE;
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

/** A filter for Dawn's notices, or one that changes nothing where it cannot work (or is not wanted). */
export async function dawnStderrFilter(): Promise<StderrFilter> {
  if (dawnVerbose()) return passThrough;
  const names = LIBC[process.platform];
  if (!names) return passThrough;
  try {
    const load = (name: string) => import(/* @vite-ignore */ name);
    const [koffiModule, fs, os, path] = await Promise.all(['koffi', 'node:fs', 'node:os', 'node:path'].map(load));
    const koffi = (koffiModule.default ?? koffiModule) as { load(name: string): { func(signature: string): (...args: number[]) => number } };
    let libc: ReturnType<typeof koffi.load> | null = null;
    for (const name of names) {
      try {
        libc = koffi.load(name);
        break;
      } catch {
        // the next name
      }
    }
    if (!libc) return passThrough;
    const dup = libc.func('int dup(int)');
    const dup2 = libc.func('int dup2(int, int)');
    return <T>(fn: () => T): T => {
      let dir = '';
      let file = '';
      let capture = -1;
      let saved = -1;
      try {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aunet-dawn-'));
        file = path.join(dir, 'stderr.txt');
        capture = fs.openSync(file, 'w');
        saved = dup(2);
        if (saved < 0 || dup2(capture, 2) < 0) throw new Error('descriptor 2 could not be redirected');
      } catch {
        // No temporary file or no redirection: run as is, the notices show.
        if (capture >= 0) fs.closeSync(capture);
        if (saved >= 0) fs.closeSync(saved);
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
        return fn();
      }
      try {
        return fn();
      } finally {
        dup2(saved, 2);
        fs.closeSync(saved);
        fs.closeSync(capture);
        let text = '';
        try {
          text = fs.readFileSync(file, 'utf8');
        } catch {
          // Lost with the temporary folder: nothing to pass on.
        }
        fs.rmSync(dir, { recursive: true, force: true });
        const rest = text.split('\n').filter((line) => line !== '' && !DAWN_LIMIT_NOTICE.test(line.trimEnd()));
        if (rest.length) process.stderr.write(rest.join('\n') + '\n');
      }
    };
  } catch {
    // koffi missing or unloadable: the notices show, nothing else changes.
    return passThrough;
  }
}
