/**
 * Builds the slim `esm-device` package for one platform: an esbuild bundle of the daemon and the
 * core code it imports (zod, commander, protobufjs inlined), plus its two runtime dependencies,
 * mqtt and onnxruntime-node (native binaries), bundled into the tarball from this checkout's
 * node_modules with only the target's onnxruntime binaries. A device installs it with
 * `npm install -g esm-device-VERSION-PLATFORM-ARCH.tgz`, offline: nothing comes from a registry.
 *
 *   npx tsx device-client/build.ts                         # writes device-client/dist/
 *   npx tsx device-client/build.ts --pack                  # + esm-device-0.1.0-linux-x64.tgz
 *   npx tsx device-client/build.ts --pack --target linux-arm64   # for a Raspberry Pi
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions as EsbuildOptions } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

/** Platforms onnxruntime-node ships CPU binaries for (`{process.platform}-{process.arch}`). */
export const targets = [
  'linux-x64',
  'linux-arm64',
  'darwin-arm64',
  'win32-x64',
  'win32-arm64',
] as const;
export type Target = (typeof targets)[number];

/** Bundle the daemon into `outdir` (default device-client/dist); returns the bundle's path. */
export async function buildDeviceBundle(outdir: string = join(here, 'dist')): Promise<string> {
  rmSync(outdir, { recursive: true, force: true });
  const outfile = join(outdir, 'esm-device.js');
  const options: EsbuildOptions = {
    entryPoints: [join(here, 'main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['mqtt', 'onnxruntime-node'],
    legalComments: 'none',
    logLevel: 'warning',
    // Bundled CommonJS code (commander, protobufjs) calls require(); give the ES module one.
    banner: {
      js: [
        '#!/usr/bin/env node',
        "import { createRequire as __esmCreateRequire } from 'node:module';",
        'const require = __esmCreateRequire(import.meta.url);',
      ].join('\n'),
    },
  };
  await build(options);
  return outfile;
}

interface LockEntry {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/**
 * The `node_modules/...` paths of package-lock.json that `dependencies` need, transitively,
 * resolved as Node does (the nearest `node_modules/NAME` up from the requiring package).
 */
export function dependencyClosure(
  lock: { packages: Record<string, LockEntry> },
  dependencies: readonly string[],
): string[] {
  const found = new Set<string>();
  const locate = (from: string, name: string): string | undefined => {
    for (let base = from; ; ) {
      const path = base ? `${base}/node_modules/${name}` : `node_modules/${name}`;
      if (lock.packages[path]) return path;
      if (!base) return undefined;
      const parent = base.lastIndexOf('/node_modules/');
      base = parent >= 0 ? base.slice(0, parent) : '';
    }
  };
  const visit = (from: string, names: readonly string[], optional: boolean) => {
    for (const name of names) {
      const path = locate(from, name);
      if (!path) {
        if (optional) continue;
        throw new Error(`package-lock.json has no ${name} (needed by ${from || 'esm-device'})`);
      }
      if (found.has(path)) continue;
      found.add(path);
      const entry = lock.packages[path] as LockEntry;
      visit(path, Object.keys(entry.dependencies ?? {}), false);
      visit(path, Object.keys(entry.optionalDependencies ?? {}), true);
    }
  };
  visit('', dependencies, false);
  return [...found].sort();
}

/**
 * True for the files of onnxruntime-node to leave out for `target`: the native folders
 * `bin/napi-vN/{platform}/{arch}` of every other platform (288 MB of the 290 MB package; one
 * platform's are 25-86 MB).
 */
export function isOtherPlatformBinary(path: string, target: Target): boolean {
  const parts = path.split(sep);
  const at = parts.lastIndexOf('onnxruntime-node');
  if (at < 0 || parts[at + 1] !== 'bin') return false;
  const [os, cpu] = [parts[at + 3], parts[at + 4]];
  if (os === undefined) return false;
  const [targetOs, targetCpu] = target.split('-');
  return os !== targetOs || (cpu !== undefined && cpu !== targetCpu);
}

export interface PackOptions {
  /** @default this machine's `{platform}-{arch}` */
  target?: Target;
  /** Folder for the tarball. @default device-client/ */
  destination?: string;
}

/** Build and pack the package for `target`; returns the tarball's path. */
export async function packDevicePackage(options: PackOptions = {}): Promise<string> {
  const { target = `${process.platform}-${process.arch}` as Target, destination = here } = options;
  if (!targets.includes(target)) {
    throw new Error(`--target: ${target} is not one of ${targets.join(', ')}`);
  }
  const manifest = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
  const stage = mkdtempSync(join(tmpdir(), 'esm-device-pack-'));
  try {
    await buildDeviceBundle(join(stage, 'dist'));
    for (const file of ['package.json', 'README.md', 'esm-device.service']) {
      cpSync(join(here, file), join(stage, file));
    }
    for (const path of dependencyClosure(lock, Object.keys(manifest.dependencies))) {
      cpSync(join(root, path), join(stage, path), {
        recursive: true,
        // Nested node_modules are copied as packages of their own, only when needed.
        filter: (src) =>
          !isOtherPlatformBinary(src, target) &&
          !src.slice(join(root, path).length).includes(`${sep}node_modules`),
      });
    }
    const out = execFileSync('npm', ['pack', '--silent', '--pack-destination', stage], {
      cwd: stage,
      encoding: 'utf8',
      env: { ...process.env, npm_config_loglevel: 'error' },
    });
    const packed = join(stage, out.trim().split('\n').pop() ?? '');
    const tarball = join(destination, `esm-device-${manifest.version}-${target}.tgz`);
    renameSync(packed, tarball);
    return tarball;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const targetAt = args.indexOf('--target');
  const target = targetAt >= 0 ? (args[targetAt + 1] as Target) : undefined;
  if (args.includes('--pack')) {
    console.log(`packed ${await packDevicePackage(target ? { target } : {})}`);
  } else {
    console.log(`built ${await buildDeviceBundle()}`);
  }
}
