/**
 * `esm cloud` without AWS credentials: the SDK's default chain finds none (a clean
 * environment and home, no instance metadata), and the command says what to set instead of
 * printing the SDK's stack trace.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('esm cloud without AWS credentials', () => {
  it('exits 2 with what to set, before any request is sent', async () => {
    const home = await mkdtemp(join(tmpdir(), 'esm-no-credentials-'));
    const env = {
      PATH: process.env.PATH,
      TMPDIR: tmpdir(),
      HOME: home,
      AWS_CONFIG_FILE: join(home, 'none'),
      AWS_SHARED_CREDENTIALS_FILE: join(home, 'none'),
      AWS_EC2_METADATA_DISABLED: 'true',
      ORT_DISABLE_TELEMETRY: '1',
    };
    // Port 9 (discard): nothing listens; the request must fail at signing, not connecting.
    const args = [resolve('bin/esm.js'), 'cloud', 'run', 'status', 'r-1'];
    const result = await run('node', [...args, '--api-url', 'http://127.0.0.1:9/v1/'], {
      env,
    }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    await rm(home, { recursive: true, force: true });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      /^error: cannot sign GET \/v1\/runs\/r-1 for the ESM API \(.+\): esm cloud signs its calls with your AWS credentials; set AWS_PROFILE/,
    );
    expect(result.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);
});
