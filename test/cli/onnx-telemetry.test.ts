/**
 * onnxruntime-node (1.30 here) collects telemetry on Linux and macOS: a process that creates a
 * session writes $TMPDIR/mat-debug-PID.log and, under $XDG_CACHE_HOME/Microsoft/
 * DeveloperTools/.onnxruntime, a device id and an event queue to upload. `esm` turns it off
 * unless the user set ORT_DISABLE_TELEMETRY (cli/main.ts). Both cases run the real runtime
 * (`esm measure` times one model) with their own TMPDIR and cache directory; the opted-in one
 * shows that the files are the runtime's, so their absence in the other is the opt-out's.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

/** `esm measure` of one small model, with the telemetry variable as given (undefined: unset). */
async function measureWith(telemetry: string | undefined) {
  const home = await mkdtemp(join(tmpdir(), 'esm-telemetry-'));
  const [tmp, cache] = [join(home, 'tmp'), join(home, 'cache')];
  await Promise.all([tmp, cache].map((d) => run('mkdir', ['-p', d])));
  const { ORT_DISABLE_TELEMETRY: _suite, ...env } = process.env;
  await run(
    'node',
    [resolve('bin/esm.js'), 'measure', '--space', 'mobilenetv3', '--arch', 'smallest'].concat([
      '--runs',
      '2',
      '--warmup',
      '0',
      '--json',
    ]),
    {
      env: {
        ...env,
        TMPDIR: tmp,
        XDG_CACHE_HOME: cache,
        HOME: home,
        ...(telemetry === undefined ? {} : { ORT_DISABLE_TELEMETRY: telemetry }),
      },
    },
  );
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
});
