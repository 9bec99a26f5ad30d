/**
 * A local stand-in for the deployed REST API: an HTTP server on 127.0.0.1 that serves every
 * route of lambdas/manifest.ts with its real handler module (proxy integration events, path
 * parameters as API Gateway fills them) and, like IAM authorisation, refuses a request whose
 * SigV4 signature (service execute-api) does not verify with the test credentials.
 */
import { createServer, type Server } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { Sha256 } from '../../cli/cloud-api.ts';
import { type FunctionName, type FunctionSpec, functions } from '../../lambdas/manifest.ts';
import { lambdaContext } from '../../local/sfn.ts';

type Handler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;

const context = lambdaContext('esm-local');

export interface LocalApi {
  /** Base URL of the stage, like the `ApiUrl` output (`http://127.0.0.1:PORT/v1/`). */
  readonly url: string;
  /** Requests refused for a missing or wrong signature. */
  readonly refused: number;
  close(): Promise<void>;
}

export interface LocalApiOptions {
  /** Handlers to use instead of a route's module export (e.g. with test dependencies). */
  readonly overrides?: Partial<Record<FunctionName, Handler>>;
  /** Credentials requests must be signed with. @default the AWS_* test environment */
  readonly credentials?: { accessKeyId: string; secretAccessKey: string };
  readonly region?: string;
  /** Wraps each handler call, e.g. to attribute recorded AWS calls to the function. */
  readonly around?: <T>(name: FunctionName, run: () => Promise<T>) => Promise<T>;
}

/** Matches `/devices/abc/certificate` against `/devices/{thing}/certificate`. */
function match(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/').filter(Boolean);
  const got = path.split('/').filter(Boolean);
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, part] of want.entries()) {
    const value = got[i] ?? '';
    const name = /^\{(.+)\}$/.exec(part)?.[1];
    if (name !== undefined) params[name] = decodeURIComponent(value);
    else if (part !== value) return undefined;
  }
  return params;
}

export async function startLocalApi(options: LocalApiOptions = {}): Promise<LocalApi> {
  const credentials = options.credentials ?? {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? 'testing',
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? 'testing',
  };
  const region = options.region ?? process.env.AWS_REGION ?? 'us-east-1';
  const signer = new SignatureV4({ service: 'execute-api', region, credentials, sha256: Sha256 });
  const routes = (Object.entries(functions) as [FunctionName, FunctionSpec][]).flatMap(
    ([name, spec]) => {
      if (spec.route === undefined) return [];
      const [method, path] = spec.route.split(' ') as [string, string];
      return [{ name, spec, method, path }];
    },
  );
  const handlers = new Map<FunctionName, Handler>();
  let refused = 0;

  async function verified(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: string,
  ): Promise<boolean> {
    const authorization = headers.authorization ?? '';
    const signedHeaders = /SignedHeaders=([^,]+)/.exec(authorization)?.[1]?.split(';') ?? [];
    const amzDate = headers['x-amz-date'];
    if (signedHeaders.length === 0 || amzDate === undefined) return false;
    const kept = Object.fromEntries(signedHeaders.map((h) => [h, headers[h] ?? '']));
    const query: Record<string, string> = {};
    for (const [k, v] of url.searchParams) query[k] = v;
    const date = new Date(
      amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'),
    );
    const again = await signer.sign(
      {
        method,
        protocol: 'http:',
        hostname: url.hostname,
        port: Number(url.port),
        path: url.pathname,
        query,
        headers: kept,
        body: body === '' ? undefined : body,
      },
      { signingDate: date },
    );
    return again.headers.authorization === authorization;
  }

  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
    const headers = Object.fromEntries(
      Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : (v ?? '')]),
    );
    const send = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    };
    if (!(await verified(req.method ?? 'GET', url, headers, body))) {
      refused += 1;
      return send(403, { message: 'The request signature we calculated does not match' });
    }
    const path = url.pathname.replace(/^\/v1/, '');
    for (const route of routes) {
      if (route.method !== req.method) continue;
      const params = match(route.path, path);
      if (params === undefined) continue;
      let handler = options.overrides?.[route.name] ?? handlers.get(route.name);
      if (handler === undefined) {
        const module = (await import(/* @vite-ignore */ `../../${route.spec.entry}`)) as {
          handler: Handler;
        };
        handler = module.handler;
        handlers.set(route.name, handler);
      }
      const query = Object.fromEntries(url.searchParams);
      const event = {
        httpMethod: route.method,
        path,
        resource: route.path,
        body: body === '' ? null : body,
        isBase64Encoded: false,
        headers,
        multiValueHeaders: {},
        queryStringParameters: Object.keys(query).length === 0 ? null : query,
        multiValueQueryStringParameters: null,
        pathParameters: Object.keys(params).length === 0 ? null : params,
        stageVariables: null,
        requestContext: {} as APIGatewayProxyEvent['requestContext'],
      } as APIGatewayProxyEvent;
      const invoke = handler;
      const result = options.around
        ? await options.around(route.name, () => invoke(event, context))
        : await invoke(event, context);
      res.writeHead(result.statusCode, { 'content-type': 'application/json' });
      res.end(result.body);
      return;
    }
    send(404, { message: 'Missing Authentication Token' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/v1/`,
    get refused() {
      return refused;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
