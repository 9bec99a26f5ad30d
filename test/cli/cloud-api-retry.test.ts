/**
 * The `esm cloud` API client over a real HTTP connection to a server that misbehaves the way
 * networks and gateways do: a request that is safe to repeat survives a dropped connection
 * and a 503; one that is not (POST /runs starts a run) is sent once and the error names the
 * API.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CloudApiError, createCloudApi } from '../../cli/cloud-api.ts';

const credentials = async () => ({ accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' });

/** A server answering by the request's number: 'drop' destroys the socket unanswered. */
async function flakyServer(answers: readonly (number | 'drop')[]) {
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const answer = answers[seen.length - 1] ?? 200;
    if (answer === 'drop') {
      req.socket.destroy();
      return;
    }
    res.writeHead(answer, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer === 200 ? { ok: true } : { message: 'busy' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, seen, url: `http://127.0.0.1:${port}/v1/` };
}

describe('cloud API client retries', () => {
  let server: Server | undefined;
  afterEach(() => {
    server?.close();
    server = undefined;
  });

  it('repeats a GET after a dropped connection and a 503, then answers', async () => {
    const flaky = await flakyServer(['drop', 503, 200]);
    server = flaky.server;
    const api = createCloudApi({ apiUrl: flaky.url, credentials, retryDelaysMs: [1, 1, 1] });
    expect(await api.request('GET', 'runs/r-1')).toEqual({ ok: true });
    expect(flaky.seen).toEqual(['GET /v1/runs/r-1', 'GET /v1/runs/r-1', 'GET /v1/runs/r-1']);
  });

  it('gives up after its retries with the last answer, and never repeats POST /runs', async () => {
    const flaky = await flakyServer([503, 503, 503, 'drop']);
    server = flaky.server;
    const api = createCloudApi({ apiUrl: flaky.url, credentials, retryDelaysMs: [1, 1] });
    const error = await api.request('GET', 'devices').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CloudApiError);
    expect((error as CloudApiError).status).toBe(503);
    expect(flaky.seen).toHaveLength(3);

    await expect(api.request('POST', 'runs', { space: 'mobilenetv3' })).rejects.toThrow(
      /cannot reach the ESM API at http:\/\/127\.0\.0\.1:\d+\/v1\//,
    );
    expect(flaky.seen.slice(3)).toEqual(['POST /v1/runs']);
  });
});
