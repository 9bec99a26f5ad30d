/**
 * An AWS emulator for integration tests. When `AWS_ENDPOINT_URL` is set (LocalStack, or a
 * moto server already running) the tests use it; otherwise a moto server is started as a
 * child process on a free port (requests serialised: see `serialisedMoto`). Where neither is possible the tests are skipped with a
 * printed reason (or fail under ESM_REQUIRE_SERVICES=1, see services.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import {
  type AttributeDefinition,
  CreateTableCommand,
  DynamoDBClient,
  type KeySchemaElement,
} from '@aws-sdk/client-dynamodb';
import type { IoTClient } from '@aws-sdk/client-iot';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { envNames, tableKeys } from '../../lambdas/manifest.ts';
import { commandWorks, serviceAvailable } from './services.ts';

export interface Emulator {
  /** Base URL every SDK client is pointed at (also exported as `AWS_ENDPOINT_URL`). */
  readonly endpoint: string;
  /** True when the tests started a moto server (so `/moto-api/reset` is available). */
  readonly isMoto: boolean;
  /** Drop every resource (moto only; on LocalStack tests use unique names instead). */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** Fake credentials and region: the SDK refuses to sign without them, the emulator ignores them. */
function setSdkEnvironment(endpoint: string): void {
  process.env.AWS_ENDPOINT_URL = endpoint;
  process.env.AWS_ACCESS_KEY_ID ??= 'testing';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';
  process.env.AWS_REGION ??= 'us-east-1';
  process.env.AWS_DEFAULT_REGION ??= process.env.AWS_REGION;
}

/**
 * `python3 -m moto.server`, except that requests are handled one at a time. moto evaluates a
 * DynamoDB condition and applies the write in separate steps, so under the threaded server
 * two concurrent conditional updates of one item can both succeed, which real DynamoDB never
 * allows; serialising requests restores per-item atomicity (the idempotency tests rely on it).
 */
const serialisedMoto = `
import sys, threading
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()
def serialised(environ, start_response):
    with lock:
        return list(app(environ, start_response))
run_simple(sys.argv[1], int(sys.argv[2]), serialised, threaded=True)
`;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await response.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

async function waitUntilAnswering(url: string, child: ChildProcess, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`moto server exited with ${child.exitCode}`);
    if (await answers(url)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`moto server did not answer on ${url} within ${timeoutMs} ms`);
}

async function resetMoto(endpoint: string): Promise<void> {
  const response = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
  if (!response.ok) throw new Error(`moto reset failed with HTTP ${response.status}`);
  await response.arrayBuffer();
}

/**
 * Returns a running emulator, or `undefined` (tests skip) when none can be had.
 * Call in `beforeAll`; call `stop()` in `afterAll`.
 */
export async function startEmulator(): Promise<Emulator | undefined> {
  const existing = process.env.AWS_ENDPOINT_URL;
  if (existing !== undefined && existing !== '') {
    // An emulator that is not running is a missing service (skip with the reason), not a
    // failure of every test.
    if (
      !serviceAvailable(
        `the emulator at AWS_ENDPOINT_URL=${existing}`,
        await answers(existing),
        'start it (localstack start -d) or unset AWS_ENDPOINT_URL to use moto',
      )
    ) {
      return undefined;
    }
    setSdkEnvironment(existing);
    const isMoto = await answers(`${existing}/moto-api/`);
    return {
      endpoint: existing,
      isMoto,
      reset: async () => {
        if (isMoto) await resetMoto(existing);
      },
      stop: async () => {},
    };
  }
  const hasMoto = commandWorks('python3', ['-c', 'import moto.server']);
  if (
    !serviceAvailable(
      'the moto server',
      hasMoto,
      'install moto[server] (pip install "moto[server]") or set AWS_ENDPOINT_URL to LocalStack',
    )
  ) {
    return undefined;
  }
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn('python3', ['-c', serialisedMoto, '127.0.0.1', String(port)], {
    stdio: 'ignore',
    env: { ...process.env, MOTO_PORT: String(port) },
  });
  try {
    await waitUntilAnswering(`${endpoint}/moto-api/`, child, 30_000);
  } catch (error) {
    child.kill();
    throw error;
  }
  setSdkEnvironment(endpoint);
  return {
    endpoint,
    isMoto: true,
    reset: () => resetMoto(endpoint),
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      if (process.env.AWS_ENDPOINT_URL === endpoint) delete process.env.AWS_ENDPOINT_URL;
    },
  };
}

export interface EsmResources {
  readonly bucket: string;
  readonly runsTable: string;
  readonly iterationsTable: string;
  readonly samplesTable: string;
  readonly devicesTable: string;
}

/**
 * Creates the bucket and tables the handlers use (key schemas from lambdas/manifest.ts, as
 * infra/ deploys them) under unique names, and exports them as the handlers' environment.
 */
export async function provisionEsmResources(prefix = 'esm'): Promise<EsmResources> {
  const unique = `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  const resources: EsmResources = {
    bucket: `${unique}-bucket`,
    runsTable: `${unique}-runs`,
    iterationsTable: `${unique}-iterations`,
    samplesTable: `${unique}-samples`,
    devicesTable: `${unique}-devices`,
  };
  const s3 = new S3Client({ forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: resources.bucket }));
  const dynamo = new DynamoDBClient({});
  for (const [key, schema] of Object.entries(tableKeys) as [
    keyof typeof tableKeys,
    (typeof tableKeys)[keyof typeof tableKeys],
  ][]) {
    const keySchema: KeySchemaElement[] = [{ AttributeName: schema.partitionKey, KeyType: 'HASH' }];
    const attributes: AttributeDefinition[] = [
      { AttributeName: schema.partitionKey, AttributeType: 'S' },
    ];
    if ('sortKey' in schema) {
      keySchema.push({ AttributeName: schema.sortKey, KeyType: 'RANGE' });
      attributes.push({
        AttributeName: schema.sortKey,
        AttributeType: 'sortKeyType' in schema && schema.sortKeyType === 'number' ? 'N' : 'S',
      });
    }
    await dynamo.send(
      new CreateTableCommand({
        TableName: resources[key],
        KeySchema: keySchema,
        AttributeDefinitions: attributes,
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
  }
  s3.destroy();
  dynamo.destroy();
  process.env[envNames.bucket] = resources.bucket;
  process.env[envNames.runsTable] = resources.runsTable;
  process.env[envNames.iterationsTable] = resources.iterationsTable;
  process.env[envNames.samplesTable] = resources.samplesTable;
  process.env[envNames.devicesTable] = resources.devicesTable;
  return resources;
}

/** Every item of a table (tests assert that bad input wrote nothing). */
export async function scanAll(table: string): Promise<Record<string, unknown>[]> {
  const dynamo = DynamoDBDocumentClient.from(new DynamoDBClient({}));
  const out = await dynamo.send(new ScanCommand({ TableName: table }));
  dynamo.destroy();
  return (out.Items ?? []) as Record<string, unknown>[];
}

/** Every key of a bucket. */
export async function listKeys(bucket: string): Promise<string[]> {
  const s3 = new S3Client({ forcePathStyle: true });
  const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  s3.destroy();
  return (out.Contents ?? []).map((o) => o.Key ?? '');
}

/**
 * True when the emulator serves the IoT control plane (moto does; LocalStack only with its
 * IoT support, a paid feature). Otherwise prints why the IoT tests are skipped (or throws
 * under ESM_REQUIRE_SERVICES=1, like every missing service).
 */
export async function iotAvailable(emulator: Emulator | undefined): Promise<boolean> {
  if (emulator === undefined) return false;
  const { IoTClient, ListThingTypesCommand } = await import('@aws-sdk/client-iot');
  const client = new IoTClient({ maxAttempts: 1 });
  let reason = '';
  try {
    await client.send(new ListThingTypesCommand({ maxResults: 1 }));
  } catch (error) {
    reason = `${(error as Error).name}: ${(error as Error).message}`.slice(0, 200);
  } finally {
    client.destroy();
  }
  return serviceAvailable(
    `AWS IoT at ${emulator.endpoint}`,
    reason === '',
    `the emulator answered ${reason}; LocalStack needs its IoT support (docs/cloud.md, LocalStack)`,
  );
}

export interface IotResources {
  readonly thingType: string;
  readonly policyName: string;
  readonly dataEndpoint: string;
}

/**
 * What infra/ deploys for devices, under unique names: the thing type and a device policy
 * (permissive: the emulator evaluates no IoT policy), exported with the data endpoint as the
 * handlers' environment.
 */
export async function provisionIot(prefix = 'esm'): Promise<IotResources> {
  const { CreatePolicyCommand, CreateThingTypeCommand, DescribeEndpointCommand, IoTClient } =
    await import('@aws-sdk/client-iot');
  const unique = `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  const resources = { thingType: `${unique}-type`, policyName: `${unique}-policy` };
  const iot = new IoTClient({});
  await iot.send(new CreateThingTypeCommand({ thingTypeName: resources.thingType }));
  await iot.send(
    new CreatePolicyCommand({
      policyName: resources.policyName,
      policyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
      }),
    }),
  );
  const endpoint = await iot.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }));
  iot.destroy();
  const dataEndpoint = endpoint.endpointAddress ?? '';
  process.env[envNames.thingType] = resources.thingType;
  process.env[envNames.devicePolicy] = resources.policyName;
  process.env[envNames.iotDataEndpoint] = dataEndpoint;
  return { ...resources, dataEndpoint };
}

export interface IotTestbed extends IotResources {
  readonly emulator: Emulator;
  readonly resources: EsmResources;
  /** A client of the emulator's IoT; the caller destroys it. */
  readonly iot: IoTClient;
}

/**
 * What the device routes' tests start from: the emulator, the ESM tables and bucket, and the
 * IoT thing type and device policy, all under `prefix`. Undefined where there is no emulator
 * or it has no IoT (the reason is printed, and the tests skip).
 */
export async function startIotTestbed(prefix: string): Promise<IotTestbed | undefined> {
  const emulator = await startEmulator();
  if (emulator === undefined || !(await iotAvailable(emulator))) {
    await emulator?.stop();
    return undefined;
  }
  const resources = await provisionEsmResources(prefix);
  const { IoTClient } = await import('@aws-sdk/client-iot');
  const iot = new IoTClient({});
  return { emulator, resources, iot, ...(await provisionIot(prefix)) };
}
