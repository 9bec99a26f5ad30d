/**
 * `esm cloud run wait` on a run that failed exits 1, not the 2 of a usage error, so a script
 * can tell "the run failed" from "I called it wrong". The API is a local HTTP server that
 * answers the failed run (an error path; the happy path runs against the real handlers in
 * test/cloud/cloud-cli.test.ts).
 */
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);

const failedRun = {
  runId: 'r-1',
  status: 'failed',
  iteration: 0,
  measured: 0,
  predictor: null,
  converged: false,
  bins: [],
  error: { name: 'MeasurementTimeoutError', message: 'no results after 2 publications' },
  params: { accTh: 0.95, binAccuracy: 'test' },
  history: [],
};

describe('esm cloud run wait on a failed run', () => {
  let server: Server;
  let url: string;
  const seen: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(failedRun));
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/`;
  });
  afterAll(() => {
    server.close();
  });

  it('prints the run, names the error and exits 1', async () => {
    const env = {
      ...process.env,
      AWS_ACCESS_KEY_ID: 'AKIDTEST',
      AWS_SECRET_ACCESS_KEY: 'secret',
      AWS_REGION: 'us-east-1',
    };
    const args = [resolve('bin/esm.js'), 'cloud', 'run', 'wait', 'r-1', '--api-url', url];
    const result = await run('node', args, { env }).then(
      (ok) => ({ code: 0, ...ok }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(seen).toEqual(['GET /v1/runs/r-1']);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ runId: 'r-1', status: 'failed' });
    expect(result.stderr).toContain(
      'error: run r-1 failed: MeasurementTimeoutError: no results after 2 publications',
    );
  }, 60_000);
});
