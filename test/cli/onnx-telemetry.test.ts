/**
 * onnxruntime-node (1.30 here) collects telemetry on Linux and macOS: a process that creates a
 * session writes $TMPDIR/mat-debug-PID.log and, under $XDG_CACHE_HOME/Microsoft/
 * DeveloperTools/.onnxruntime, a device id and an event queue to upload. Every module that
 * creates sessions turns it off unless the user set ORT_DISABLE_TELEMETRY
 * (device-client/measure.ts). `esm measure` runs the real runtime with its own TMPDIR and cache
 * directory, by default and opted in, in an environment without CI markers (with one the
 * runtime keeps quiet by itself: test/support/telemetry-env.ts): the opted-in run shows that
 * the files are the runtime's, so their absence in the other is the opt-out's.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { telemetryOnEnv } from '../support/telemetry-env.ts';

const run = promisify(execFile);

/** `esm measure` of one small model, with the telemetry variable as given (undefined: unset). */
async function measureWith(telemetry: string | undefined) {
  const home = await mkdtemp(join(tmpdir(), 'esm-telemetry-'));
  const [tmp, cache] = [join(home, 'tmp'), join(home, 'cache')];
  await Promise.all([tmp, cache].map((d) => mkdir(d)));
  const measure = ['measure', '--space', 'mobilenetv3', '--arch', 'smallest', '--runs', '2'];
  await run('node', [resolve('bin/esm.js'), ...measure, '--warmup', '0', '--json'], {
    env: {
      ...telemetryOnEnv(),
      TMPDIR: tmp,
      XDG_CACHE_HOME: cache,
      HOME: home,
      ...(telemetry === undefined ? {} : { ORT_DISABLE_TELEMETRY: telemetry }),
    },
  });
  return {
    debugLogs: (await readdir(tmp)).filter((f) => f.startsWith('mat-debug-')),
    telemetryDir: existsSync(join(cache, 'Microsoft', 'DeveloperTools', '.onnxruntime')),
  };
}

describe("onnxruntime's telemetry", () => {
  it('is off by default: esm leaves no debug log, device id or event queue', async () => {
    const left = await measureWith(undefined);
    expect(left).toEqual({ debugLogs: [], telemetryDir: false });
  });

  it('stays the user’s choice: ORT_DISABLE_TELEMETRY=0 turns it on', async () => {
    const left = await measureWith('0');
    expect(left.debugLogs).toHaveLength(1);
    expect(left.telemetryDir).toBe(true);
  });

  it('is turned off by every module that imports onnxruntime-node, and by none for a user who set it', async () => {
    // Prepare: the product's modules that import the runtime (tests and benchmarks aside).
    const sources = await Promise.all(
      ['cli', 'core', 'device-client', 'infra', 'lambdas', 'local'].map(async (top) =>
        (await readdir(top, { recursive: true }))
          .filter((f) => f.endsWith('.ts'))
          .map((f) => join(top, f)),
      ),
    );
    const owners: string[] = [];
    for (const file of sources.flat()) {
      if ((await readFile(file, 'utf8')).includes("from 'onnxruntime-node'")) owners.push(file);
    }
    expect(owners.sort()).toEqual([
      'device-client/measure.ts',
      'lambdas/adapters/onnx-predictor.ts',
      'local/predictor-store.ts',
    ]);
    const env = telemetryOnEnv();
    for (const owner of owners) {
      // Act: import the module in a fresh process, unset and set to 0.
      const valueAfterImport = async (value: string | undefined) =>
        (
          await run(
            'node',
            [
              '--import',
              'tsx',
              '-e',
              `await import(${JSON.stringify(resolve(owner))}); console.log(String(process.env.ORT_DISABLE_TELEMETRY));`,
            ],
            { env: value === undefined ? env : { ...env, ORT_DISABLE_TELEMETRY: value } },
          )
        ).stdout.trim();
      // Assess
      expect(await valueAfterImport(undefined), owner).toBe('1');
      expect(await valueAfterImport('0'), owner).toBe('0');
    }
  }, 180_000); // six child processes that load tsx: slow on a loaded machine
});
