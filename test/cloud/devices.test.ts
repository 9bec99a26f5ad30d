/**
 * Device registration (POST /devices, GET /devices) against a real AWS emulator over HTTP:
 * the handlers create the thing, certificate and policy attachment in the IoT registry and
 * record the device in DynamoDB. Bad input is refused with the field named and writes
 * nothing; a half-done registration is rolled back.
 */

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  CreateThingCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  type IoTClient,
  ListAttachedPoliciesCommand,
  ListCertificatesCommand,
  ListThingPrincipalsCommand,
  ListThingsCommand,
} from '@aws-sdk/client-iot';
import { App, Stack } from 'aws-cdk-lib';
import { Architecture, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handlerCode } from '../../infra/constructs/lambda-code.ts';
import { projectRoot } from '../../infra/esm-app.ts';
import { createDevicesTable } from '../../lambdas/adapters/devices-table.ts';
import { createIotRegistry } from '../../lambdas/adapters/iot-registry.ts';
import { handler as listDevices } from '../../lambdas/handlers/api-list-devices.ts';
import {
  createRegisterDeviceHandler,
  handler as registerDevice,
} from '../../lambdas/handlers/api-register-device.ts';
import { handler as ingestStatus } from '../../lambdas/handlers/ingest-status.ts';
import { functions } from '../../lambdas/manifest.ts';
import { lambdaContext } from '../support/local-sfn.ts';
import { type Emulator, type EsmResources, scanAll, startIotTestbed } from '../support/moto.ts';

let emulator: Emulator | undefined;
let resources: EsmResources;
let iot: IoTClient;
let dataEndpoint: string;
let thingType: string;
let policyName: string;

beforeAll(async () => {
  // Without an emulator with IoT these tests skip (printed reason).
  const testbed = await startIotTestbed('devices');
  if (testbed) ({ emulator, resources, iot, thingType, policyName, dataEndpoint } = testbed);
});

afterAll(async () => {
  iot?.destroy();
  await emulator?.stop();
});

const context = lambdaContext('esm-test');

function event(
  method: string,
  path: string,
  body?: unknown,
  query?: Record<string, string>,
): APIGatewayProxyEvent {
  return {
    httpMethod: method,
    path,
    resource: path,
    body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
    isBase64Encoded: false,
    headers: { 'content-type': 'application/json' },
    multiValueHeaders: {},
    queryStringParameters: query ?? null,
    multiValueQueryStringParameters: null,
    pathParameters: null,
    stageVariables: null,
    requestContext: {} as APIGatewayProxyEvent['requestContext'],
  };
}

type Answer = { statusCode: number; body: Record<string, unknown> };

async function call(
  fn: (e: APIGatewayProxyEvent, c: Context) => Promise<APIGatewayProxyResult>,
  e: APIGatewayProxyEvent,
): Promise<Answer> {
  const result = await fn(e, context);
  return {
    statusCode: result.statusCode,
    body: JSON.parse(result.body) as Record<string, unknown>,
  };
}

async function thingCount(): Promise<number> {
  return (await iot.send(new ListThingsCommand({}))).things?.length ?? 0;
}

async function certificateCount(): Promise<number> {
  return (await iot.send(new ListCertificatesCommand({}))).certificates?.length ?? 0;
}

describe('device registration', () => {
  it('creates thing, active certificate and attachments, records the device, returns the key once', async (ctx) => {
    if (!emulator) return ctx.skip();
    // Act
    const answer = await call(
      registerDevice,
      event('POST', '/devices', { thing: 'pi-5', description: 'Raspberry Pi 5, 8 GB' }),
    );
    // Assess
    expect(answer.statusCode).toBe(201);
    const body = answer.body as {
      certificatePem: string;
      privateKey: string;
      endpoint: { host: string; port: number };
      topics: Record<string, string>;
      device: { certificateArn: string; certificateId: string; status: string };
    };
    expect(body.certificatePem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(body.privateKey).toMatch(/PRIVATE KEY-----/);
    expect(body.endpoint).toEqual(expect.objectContaining({ host: dataEndpoint, port: 8883 }));
    expect(body.topics).toEqual({
      jobs: 'esm/devices/pi-5/jobs',
      results: 'esm/devices/pi-5/results',
      status: 'esm/devices/pi-5/status',
    });
    expect(body.device.status).toBe('registered');

    const thing = await iot.send(new DescribeThingCommand({ thingName: 'pi-5' }));
    expect(thing.thingTypeName).toBe(thingType);
    const principals = await iot.send(new ListThingPrincipalsCommand({ thingName: 'pi-5' }));
    expect(principals.principals).toEqual([body.device.certificateArn]);
    const policies = await iot.send(
      new ListAttachedPoliciesCommand({ target: body.device.certificateArn }),
    );
    expect(policies.policies?.map((p) => p.policyName)).toEqual([policyName]);
    const cert = await iot.send(
      new DescribeCertificateCommand({ certificateId: body.device.certificateId }),
    );
    expect(cert.certificateDescription?.status).toBe('ACTIVE');

    const rows = await scanAll(resources.devicesTable);
    expect(rows).toEqual([
      expect.objectContaining({
        thing: 'pi-5',
        status: 'registered',
        description: 'Raspberry Pi 5, 8 GB',
        certificateId: body.device.certificateId,
      }),
    ]);
    expect(JSON.stringify(rows)).not.toContain('PRIVATE KEY');
  });

  it('lists registered devices without secrets', async (ctx) => {
    if (!emulator) return ctx.skip();
    const answer = await call(listDevices, event('GET', '/devices'));
    expect(answer.statusCode).toBe(200);
    const devices = answer.body.devices as { thing: string; status: string }[];
    expect(devices.map((d) => [d.thing, d.status])).toEqual([['pi-5', 'registered']]);
    expect(JSON.stringify(answer.body)).not.toContain('PRIVATE KEY');
  });

  it('pages through devices with limit and cursor', async (ctx) => {
    if (!emulator) return ctx.skip();
    await call(registerDevice, event('POST', '/devices', { thing: 'gpu-a100' }));
    const first = await call(listDevices, event('GET', '/devices', undefined, { limit: '1' }));
    expect(first.statusCode).toBe(200);
    expect(first.body.devices).toHaveLength(1);
    expect(typeof first.body.next).toBe('string');
    const second = await call(
      listDevices,
      event('GET', '/devices', undefined, { limit: '1', cursor: String(first.body.next) }),
    );
    const seen = [first, second].flatMap((a) =>
      (a.body.devices as { thing: string }[]).map((d) => d.thing),
    );
    expect(seen.sort()).toEqual(['gpu-a100', 'pi-5']);
  });

  it('answers 409 for a thing name that is taken, creating no second certificate', async (ctx) => {
    if (!emulator) return ctx.skip();
    const certificates = await certificateCount();
    const again = await call(registerDevice, event('POST', '/devices', { thing: 'pi-5' }));
    expect(again.statusCode).toBe(409);
    expect(again.body).toMatchObject({ error: 'DeviceExistsError', field: 'body.thing' });
    expect(await certificateCount()).toBe(certificates);
    const principals = await iot.send(new ListThingPrincipalsCommand({ thingName: 'pi-5' }));
    expect(principals.principals).toHaveLength(1);
  });

  it('answers 409 for a thing made outside the platform and releases its claim', async (ctx) => {
    if (!emulator) return ctx.skip();
    await iot.send(new CreateThingCommand({ thingName: 'hand-made' }));
    const answer = await call(registerDevice, event('POST', '/devices', { thing: 'hand-made' }));
    expect(answer.statusCode).toBe(409);
    const rows = await scanAll(resources.devicesTable);
    expect(rows.map((r) => r.thing)).not.toContain('hand-made');
  });

  it.each([
    ['a thing name with a topic wildcard', { thing: 'pi/+' }, 'body.thing'],
    ['no thing', { description: 'x' }, 'body.thing'],
    ['a number for thing', { thing: 42 }, 'body.thing'],
    [
      'an oversized description',
      { thing: 'ok-1', description: 'x'.repeat(501) },
      'body.description',
    ],
    ['an unknown field', { thing: 'ok-2', certificate: 'mine' }, 'body.certificate'],
    ['a CSR that is not PEM', { thing: 'ok-3', csr: 'MIIB...' }, 'body.csr'],
    [
      'a CSR AWS IoT cannot parse',
      {
        thing: 'ok-4',
        csr: '-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----',
      },
      'body.csr',
    ],
    ['a body that is not JSON', '{"thing":', 'body'],
  ])('answers 400 naming the field for %s, and writes nothing', async (_name, body, field) => {
    if (!emulator) return;
    const [things, certificates, rows] = [
      await thingCount(),
      await certificateCount(),
      (await scanAll(resources.devicesTable)).length,
    ];
    const answer = await call(registerDevice, event('POST', '/devices', body));
    expect(answer.statusCode).toBe(400);
    expect(answer.body).toMatchObject({ error: 'ValidationError', field });
    expect(await thingCount()).toBe(things);
    expect(await certificateCount()).toBe(certificates);
    expect((await scanAll(resources.devicesTable)).length).toBe(rows);
  });

  const cursorOf = (key: unknown) => Buffer.from(JSON.stringify(key)).toString('base64url');
  it.each([
    ['a page size of 0', { limit: '0' }, 'query.limit'],
    ['a hexadecimal page size', { limit: '0x10' }, 'query.limit'],
    ['a page size with a fraction', { limit: '1.5' }, 'query.limit'],
    ['a page size over 100', { limit: '101' }, 'query.limit'],
    ['an unknown parameter', { limt: '10' }, 'query.limt'],
    ['a cursor that is not base64 JSON', { cursor: 'not-a-cursor' }, 'query.cursor'],
    ['a cursor of an empty thing', { cursor: cursorOf({ thing: '' }) }, 'query.cursor'],
    [
      'a cursor of a 3,000-character thing',
      { cursor: cursorOf({ thing: 'x'.repeat(3000) }) },
      'query.cursor',
    ],
    [
      'a cursor with extra keys',
      { cursor: cursorOf({ thing: 'pi-5', runId: 'r' }) },
      'query.cursor',
    ],
  ])('answers 400 naming the parameter for %s', async (_name, query, field) => {
    if (!emulator) return;
    const answer = await call(listDevices, event('GET', '/devices', undefined, query));
    expect(answer).toMatchObject({ statusCode: 400, body: { error: 'ValidationError', field } });
  });

  it('rolls back thing and certificate when a step fails half-way', async (ctx) => {
    if (!emulator) return ctx.skip();
    const certificates = await certificateCount();
    // A policy name that does not exist makes AttachPolicy fail after the thing and the
    // certificate were created.
    const broken = createRegisterDeviceHandler(() => ({
      registry: createIotRegistry({ thingType, policyName: 'no-such-policy' }),
      devices: createDevicesTable({ tableName: resources.devicesTable }),
      dataEndpoint,
    }));
    const answer = await call(broken, event('POST', '/devices', { thing: 'half-made' }));
    expect(answer.statusCode).toBe(500);
    await expect(iot.send(new DescribeThingCommand({ thingName: 'half-made' }))).rejects.toThrow();
    expect(await certificateCount()).toBe(certificates);
    const rows = await scanAll(resources.devicesTable);
    expect(rows.map((r) => r.thing)).not.toContain('half-made');
  });
});

describe('device status (IoT rule on esm/devices/+/status)', () => {
  const facts = {
    thing: 'pi-5',
    cpu: 'Cortex-A76',
    cores: 4,
    accelerator: null,
    os: 'linux',
    node: 'v22.1.0',
    onnxruntime: '1.30.0',
    executionProvider: 'cpu',
  };
  const status = (state: string, at: string, extra: Record<string, unknown> = {}) => ({
    v: 1,
    type: 'status',
    thing: 'pi-5',
    state,
    at,
    topic: 'esm/devices/pi-5/status',
    ...extra,
  });
  const record = async (thing: string) =>
    (await scanAll(resources.devicesTable)).find((r) => r.thing === thing);

  it('keeps the newest state, last-seen time and facts on the device record', async (ctx) => {
    if (!emulator) return ctx.skip();
    const online = await ingestStatus(
      status('online', '2026-11-28T10:00:00.000Z', { device: facts }),
      context,
    );
    expect(online).toEqual({ outcome: 'recorded' });
    // A retained or re-delivered older message must not move the state back.
    const stale = await ingestStatus(status('offline', '2026-11-28T09:00:00.000Z'), context);
    expect(stale).toEqual({ outcome: 'stale' });
    expect(await record('pi-5')).toMatchObject({
      state: 'online',
      lastSeenAt: '2026-11-28T10:00:00.000Z',
      facts,
      status: 'registered',
    });
    const listed = await call(listDevices, event('GET', '/devices'));
    expect(listed.body.devices).toEqual(
      expect.arrayContaining([expect.objectContaining({ thing: 'pi-5', state: 'online' })]),
    );
  });

  it('records nothing for an unregistered device', async (ctx) => {
    if (!emulator) return ctx.skip();
    const answer = await ingestStatus(
      {
        ...status('online', '2026-11-28T10:00:00.000Z'),
        thing: 'ghost',
        topic: 'esm/devices/ghost/status',
      },
      context,
    );
    expect(answer).toEqual({ outcome: 'unknown' });
    expect(await record('ghost')).toBeUndefined();
  });

  it('refuses a status that names another thing than its topic, and a malformed one', async (ctx) => {
    if (!emulator) return ctx.skip();
    const before = await record('pi-5');
    await expect(
      ingestStatus(
        { ...status('error', '2026-11-28T11:00:00.000Z'), topic: 'esm/devices/gpu-a100/status' },
        context,
      ),
    ).rejects.toMatchObject({ name: 'ValidationError', field: 'thing' });
    await expect(
      ingestStatus(status('exploded', '2026-11-28T11:00:00.000Z'), context),
    ).rejects.toMatchObject({ name: 'ValidationError', field: 'state' });
    expect(await record('pi-5')).toEqual(before);
  });
});

describe('the deployed bundle', () => {
  it('registers a device when bundled by infra/ (esbuild, ESM, SDK inside)', async (ctx) => {
    if (!emulator) return ctx.skip();
    // Prepare: bundle exactly as `cdk synth` does, into a temporary cloud assembly.
    const outdir = mkdtempSync(path.join(tmpdir(), 'esm-bundle-'));
    try {
      const app = new App({ outdir });
      new NodejsFunction(new Stack(app, 'Bundle'), 'Register', {
        ...handlerCode(functions.apiRegisterDevice, { projectRoot }),
        runtime: Runtime.NODEJS_22_X,
        architecture: Architecture.ARM_64,
      });
      app.synth();
      const asset = readdirSync(outdir).find((name) => name.startsWith('asset.'));
      expect(asset).toBeDefined();
      const bundled = (await import(
        pathToFileURL(path.join(outdir, asset ?? '', 'index.mjs')).href
      )) as { handler: typeof registerDevice };
      // Act
      const created = await call(
        bundled.handler,
        event('POST', '/devices', { thing: 'bundled-1' }),
      );
      const again = await call(bundled.handler, event('POST', '/devices', { thing: 'bundled-1' }));
      // Assess: error class names survive minification (keepNames), as Retry/Catch need.
      expect(created.statusCode).toBe(201);
      expect(again).toMatchObject({ statusCode: 409, body: { error: 'DeviceExistsError' } });
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  }, 180_000);
});
