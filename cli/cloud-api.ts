/**
 * A client of the deployed ESM API: every request is signed with SigV4 (service
 * `execute-api`) by the AWS SDK's signer, with credentials from the usual AWS chain
 * (environment, shared config and SSO profiles, container and instance roles). The API URL
 * comes from `--api-url`, `ESM_API_URL`, or the `ApiUrl` output of the deployed stack.
 */
import { createHash, createHmac } from 'node:crypto';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, Checksum, SourceData } from '@smithy/types';
import { EsmError } from '../core/errors.ts';

/** The API answered an error; `status` and the API's `{error, field, message}` are kept. */
export class CloudApiError extends EsmError {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
    what: string,
  ) {
    const field = typeof body.field === 'string' ? ` (${body.field})` : '';
    const detail = typeof body.message === 'string' ? body.message : JSON.stringify(body);
    super(`${what} answered HTTP ${status}${field}: ${detail}`);
  }
}

/** SHA-256 for the signer, from node:crypto (no extra dependency). */
export class Sha256 implements Checksum {
  private hash;
  constructor(private readonly secret?: SourceData) {
    this.hash = this.make();
  }
  private make() {
    return this.secret === undefined
      ? createHash('sha256')
      : createHmac('sha256', Buffer.from(this.secret as Uint8Array));
  }
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    this.hash = this.make();
  }
}

export interface CloudApiOptions {
  /** Base URL of the stage, e.g. `https://abc.execute-api.eu-west-1.amazonaws.com/v1/`. */
  readonly apiUrl: string;
  /** @default the region in the API URL, else AWS_REGION / AWS_DEFAULT_REGION */
  readonly region?: string;
  /** @default the AWS SDK's default credential chain */
  readonly credentials?: () => Promise<AwsCredentialIdentity>;
  /**
   * Pauses before each retry of a request that is safe to repeat (GET, and POST /predict,
   * which changes nothing) after a network error or a 429/502/503/504.
   * @default [500, 1000, 2000, 4000]
   */
  readonly retryDelaysMs?: readonly number[];
}

/** Answers a request may be retried on: throttling and a gateway or service in trouble. */
const transientStatus = new Set([429, 502, 503, 504]);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface CloudApi {
  readonly apiUrl: string;
  /** Sends a signed request; answers the JSON body, or throws `CloudApiError` for non-2xx. */
  request<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T>;
}

/** `abc.execute-api.eu-west-1.amazonaws.com` -> `eu-west-1`. */
function regionOfUrl(url: URL): string | undefined {
  return /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com/.exec(url.hostname)?.[1];
}

export function createCloudApi(options: CloudApiOptions): CloudApi {
  const base = new URL(options.apiUrl.endsWith('/') ? options.apiUrl : `${options.apiUrl}/`);
  const region =
    options.region ??
    regionOfUrl(base) ??
    process.env.AWS_REGION ??
    process.env.AWS_DEFAULT_REGION ??
    'us-east-1';
  const signer = new SignatureV4({
    service: 'execute-api',
    region,
    credentials: options.credentials ?? defaultProvider(),
    sha256: Sha256,
  });
  return {
    apiUrl: base.href,
    async request<T>(method: string, path: string, body?: unknown): Promise<T> {
      const url = new URL(path.replace(/^\//, ''), base);
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const query: Record<string, string> = {};
      for (const [k, v] of url.searchParams) query[k] = v;
      const signed = await signer
        .sign({
          method,
          protocol: url.protocol,
          hostname: url.hostname,
          port: url.port === '' ? undefined : Number(url.port),
          path: url.pathname,
          query,
          headers: {
            host: url.host,
            ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
          },
          body: payload,
        })
        .catch((cause: Error) => {
          // Signing fails only for want of credentials (none found, an expired SSO token).
          throw new EsmError(
            `cannot sign ${method} ${url.pathname} for the ESM API (${cause.message}): esm cloud signs its calls with your AWS credentials; set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run aws sso login`,
            { cause },
          );
        });
      // A poll that lands on a connection the server is closing (keep-alive) fails with
      // "fetch failed" though nothing is wrong: `esm cloud run wait` must not die of it.
      const repeatable =
        method === 'GET' || (method === 'POST' && url.pathname.endsWith('/predict'));
      const delays = repeatable ? (options.retryDelaysMs ?? [500, 1000, 2000, 4000]) : [];
      let response: Response | undefined;
      for (let attempt = 0; ; attempt++) {
        try {
          response = await fetch(url, { method, headers: signed.headers, body: payload });
          if (!transientStatus.has(response.status) || attempt >= delays.length) break;
        } catch (cause) {
          if (attempt >= delays.length) {
            // fetch's own message is "fetch failed"; the socket's reason is its cause.
            const reason = (cause as Error & { cause?: Error }).cause?.message;
            const why = `${(cause as Error).message}${reason ? ` (${reason})` : ''}`;
            throw new EsmError(`cannot reach the ESM API at ${base.href}: ${why}`, { cause });
          }
        }
        await sleep(delays[attempt] as number);
      }
      const text = await response.text();
      let json: Record<string, unknown>;
      try {
        json = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
      } catch {
        json = { message: text.slice(0, 500) };
      }
      if (!response.ok) throw new CloudApiError(response.status, json, `${method} ${url.pathname}`);
      return json as T;
    },
  };
}

export interface ApiUrlOptions {
  /** `--api-url` */
  readonly apiUrl?: string;
  /**
   * Name of the stateless stack whose `ApiUrl` output to read.
   * @default `${ESM_STACK_PREFIX ?? 'Esm'}Stateless`
   */
  readonly stack?: string;
}

/** The API URL from the flag, `ESM_API_URL`, or the deployed stack's `ApiUrl` output. */
export async function resolveApiUrl(options: ApiUrlOptions = {}): Promise<string> {
  const given = options.apiUrl ?? process.env.ESM_API_URL;
  if (given !== undefined && given !== '') return given;
  const stack = options.stack ?? `${process.env.ESM_STACK_PREFIX ?? 'Esm'}Stateless`;
  const client = new CloudFormationClient({});
  try {
    const out = await client.send(new DescribeStacksCommand({ StackName: stack }));
    const url = out.Stacks?.[0]?.Outputs?.find((o) => o.OutputKey === 'ApiUrl')?.OutputValue;
    if (url === undefined) throw new EsmError(`stack ${stack} has no ApiUrl output`);
    return url;
  } catch (cause) {
    if (cause instanceof EsmError) throw cause;
    throw new EsmError(
      `no API URL: pass --api-url (or set ESM_API_URL), or deploy the stack ${stack} and ` +
        `give credentials that may read it (${(cause as Error).message})`,
      { cause },
    );
  } finally {
    client.destroy();
  }
}
