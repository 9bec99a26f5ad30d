/**
 * The device lifecycle as a user drives it: `esm cloud devices register | list | rotate |
 * delete` (child processes, SigV4-signed HTTP) against the real handlers behind a local API
 * that verifies the signatures, on the AWS emulator. The key is made on the "device" and
 * never sent; delete leaves no thing, certificate or row.
 *
 * The emulator's resources carry the names the synthesised stacks give them, and every AWS
 * call the handlers make is recorded and simulated against the deploying function's role
 * policy with AWS's IAM data (moto itself checks no IAM).
 */
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type AttributeDefinition,
  CreateTableCommand,
  DynamoDBClient,
  type KeySchemaElement,
} from '@aws-sdk/client-dynamodb';
import {
  CreatePolicyCommand,
  CreateThingTypeCommand,
  DescribeEndpointCommand,
  DescribeThingCommand,
  IoTClient,
  ListCertificatesCommand,
  ListThingPrincipalsCommand,
} from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devicePolicyDocument } from '../../infra/constructs/device-fleet.ts';
import { createEsmApp } from '../../infra/esm-app.ts';
import { iotClient } from '../../lambdas/adapters/iot-registry.ts';
import { documentClient } from '../../lambdas/adapters/run-state.ts';
import { envNames, type FunctionName, functions, tableKeys } from '../../lambdas/manifest.ts';
import { type LocalApi, startLocalApi } from '../support/api-gateway.ts';
import { type AwsCall, recordCalls, simulate } from '../support/aws-calls.ts';
import { esm } from '../support/cli.ts';
import { DeployedApp, type DeployedLambda } from '../support/deployed-template.ts';
import { type Emulator, scanAll, startEmulator } from '../support/moto.ts';

let emulator: Emulator | undefined;
let api: LocalApi;
let iot: IoTClient;
let dir: string;
let lambdas: Map<FunctionName, DeployedLambda>;
const recorded: { fn: FunctionName; call: AwsCall }[] = [];
let stopRecording: (() => void) | undefined;
let devicesTable: string;

beforeAll(async () => {
  emulator = await startEmulator();
  if (!emulator) return;
  await emulator.reset();
  // The names a deployment of the synthesised stacks would have.
  const built = createEsmApp({ bundle: false });
  const deployed = new DeployedApp([built.stateful, built.stateless]);
  const all = deployed.lambdas(built.stateless.stackName);
  lambdas = new Map(
    (Object.keys(functions) as FunctionName[]).map((name) => {
      const id = built.stateless.getLogicalId(
        built.stateless.functions.functions[name].node.defaultChild as never,
      );
      return [name, all.find((l) => l.logicalId === id) as DeployedLambda];
    }),
  );
  const env = lambdas.get('apiRotateCertificate')?.env ?? {};
  devicesTable = env[envNames.devicesTable] ?? '';
  iot = new IoTClient({});
  const endpoint = await iot.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }));
  const dynamo = new DynamoDBClient({});
  const keySchema: KeySchemaElement[] = [
    { AttributeName: tableKeys.devicesTable.partitionKey, KeyType: 'HASH' },
  ];
  const attributes: AttributeDefinition[] = [
    { AttributeName: tableKeys.devicesTable.partitionKey, AttributeType: 'S' },
  ];
  await dynamo.send(
    new CreateTableCommand({
      TableName: devicesTable,
      KeySchema: keySchema,
      AttributeDefinitions: attributes,
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
  dynamo.destroy();
  await iot.send(new CreateThingTypeCommand({ thingTypeName: env[envNames.thingType] }));
  await iot.send(
    new CreatePolicyCommand({
      policyName: env[envNames.devicePolicy],
      policyDocument: JSON.stringify(devicePolicyDocument(built.stateless)).replace(
        /"\$\{Token\[[^"]*"/g,
        '"*"',
      ),
    }),
  );
  for (const name of [envNames.devicesTable, envNames.thingType, envNames.devicePolicy]) {
    process.env[name] = env[name];
  }
  process.env[envNames.iotDataEndpoint] = endpoint.endpointAddress;
  let current: FunctionName | undefined;
  const sink: AwsCall[] = [];
  const recorder = recordCalls(
    [
      { service: 'iot', client: iotClient() as never },
      { service: 'dynamodb', client: documentClient() as never },
    ],
    sink,
  );
  stopRecording = () => recorder.stop();
  api = await startLocalApi({
    async around(name, run) {
      current = name;
      try {
        return await run();
      } finally {
        for (const call of sink.splice(0)) recorded.push({ fn: current, call });
        current = undefined;
      }
    },
  });
  dir = mkdtempSync(path.join(tmpdir(), 'esm-lifecycle-'));
}, 120_000);

afterAll(async () => {
  stopRecording?.();
  await api?.close();
  iot?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
  await emulator?.stop();
});

const cloud = (...args: string[]) => esm('cloud', ...args, '--api-url', api.url);
const certificateArns = async () =>
  ((await iot.send(new ListCertificatesCommand({}))).certificates ?? []).map(
    (c) => c.certificateArn ?? '',
  );

describe('esm cloud devices', () => {
  it('registers from a CSR: the key stays in the device directory, the certificate names the thing', async (ctx) => {
    if (!emulator) return ctx.skip();
    const deviceDir = path.join(dir, 'rpi5-lab-1');
    const out = await cloud('devices', 'register', 'rpi5-lab-1', '--dir', deviceDir);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    const answer = JSON.parse(out.stdout) as { certificateId: string; configFile: string };
    const key = readFileSync(path.join(deviceDir, 'device.key.pem'), 'utf8');
    const cert = new X509Certificate(readFileSync(path.join(deviceDir, 'device.cert.pem')));
    const publicOf = (k: ReturnType<typeof createPublicKey>) =>
      k.export({ type: 'spki', format: 'der' }).toString('base64');
    // AWS IoT signs the CSR's public key; moto 5 puts a fresh key of its own in the certificate
    // and keeps only the CSR's subject, so there the subject is what can be checked.
    expect(cert.subject).toContain('CN=rpi5-lab-1');
    if (emulator.isMoto) {
      console.warn(
        'moto signs a key of its own for CreateCertificateFromCsr: key match not checked',
      );
    } else {
      expect(publicOf(cert.publicKey)).toBe(publicOf(createPublicKey(createPrivateKey(key))));
    }
    expect(statSync(path.join(deviceDir, 'device.key.pem')).mode & 0o077).toBe(0);
    expect(JSON.parse(readFileSync(answer.configFile, 'utf8'))).toMatchObject({
      thing: 'rpi5-lab-1',
      broker: expect.stringMatching(/^mqtts:\/\/.+:8883$/),
      cert: path.join(deviceDir, 'device.cert.pem'),
      key: path.join(deviceDir, 'device.key.pem'),
    });
    // The private key went nowhere: not in the API's answer, not in the table.
    const rows = await scanAll(devicesTable);
    expect(JSON.stringify(rows)).not.toContain('PRIVATE KEY');
    const principals = await iot.send(new ListThingPrincipalsCommand({ thingName: 'rpi5-lab-1' }));
    expect(principals.principals).toEqual([expect.stringContaining(answer.certificateId)]);
  }, 60_000);

  it('lists the device', async (ctx) => {
    if (!emulator) return ctx.skip();
    const out = await cloud('devices', 'list');
    expect(out.code).toBe(0);
    const { devices } = JSON.parse(out.stdout) as { devices: { thing: string; status: string }[] };
    expect(devices.map((d) => [d.thing, d.status])).toEqual([['rpi5-lab-1', 'registered']]);
  }, 60_000);

  it('rotates the certificate with a new device key and retires the old one', async (ctx) => {
    if (!emulator) return ctx.skip();
    const before = await certificateArns();
    const deviceDir = path.join(dir, 'rpi5-lab-1');
    const out = await cloud('devices', 'rotate', 'rpi5-lab-1', '--dir', deviceDir);
    expect(out.code).toBe(0);
    const answer = JSON.parse(out.stdout) as { retired: string[] };
    expect(answer.retired).toHaveLength(1);
    const after = await certificateArns();
    expect(after).toHaveLength(1);
    expect(before).not.toContain(after[0]);
    const principals = await iot.send(new ListThingPrincipalsCommand({ thingName: 'rpi5-lab-1' }));
    expect(principals.principals).toEqual(after);
    const cert = new X509Certificate(readFileSync(path.join(deviceDir, 'device.cert.pem')));
    const key = createPrivateKey(readFileSync(path.join(deviceDir, 'device.key.pem')));
    expect(cert.subject).toContain('CN=rpi5-lab-1');
    if (!emulator.isMoto) expect(cert.checkPrivateKey(key)).toBe(true);
    expect(key.asymmetricKeyType).toBe('ec');
  }, 60_000);

  it('refuses unsigned requests and names a bad thing in the path', async (ctx) => {
    if (!emulator) return ctx.skip();
    const unsigned = await fetch(`${api.url}devices`);
    expect(unsigned.status).toBe(403);
    const bad = await cloud('devices', 'delete', 'no+such');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/400.*path\.thing/);
    const missing = await cloud('devices', 'delete', 'never-registered');
    expect(missing.stderr).toMatch(/404/);
  }, 60_000);

  it('deletes the device: no thing, certificate or row remains', async (ctx) => {
    if (!emulator) return ctx.skip();
    const out = await cloud('devices', 'delete', 'rpi5-lab-1');
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({
      thing: 'rpi5-lab-1',
      deleted: { thing: true, record: true, certificates: [expect.any(String)] },
    });
    await expect(
      iot.send(new DescribeThingCommand({ thingName: 'rpi5-lab-1' })),
    ).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    expect(await certificateArns()).toEqual([]);
    expect(await scanAll(devicesTable)).toEqual([]);
  }, 60_000);

  it('made only calls the deploying functions’ roles allow (IAM simulation of the recording)', async (ctx) => {
    if (!emulator) return ctx.skip();
    const made = new Set(recorded.map((r) => `${r.fn} ${r.call.action}`));
    // The scenario exercised every lifecycle step.
    for (const expected of [
      'apiRegisterDevice iot:CreateCertificateFromCsr',
      'apiRegisterDevice iot:AttachPolicy',
      'apiRotateCertificate iot:DeleteCertificate',
      'apiDeleteDevice iot:DeleteThing',
      'apiListDevices dynamodb:Scan',
    ]) {
      expect(made, expected).toContain(expected);
    }
    const denied: string[] = [];
    for (const { fn, call } of recorded) {
      const verdict = await simulate(call, lambdas.get(fn)?.policies ?? []);
      if (verdict.result !== 'Allowed') {
        denied.push(`${fn}: ${call.action} on ${call.resource} -> ${verdict.result}`);
      }
    }
    expect(denied).toEqual([]);
  }, 60_000);
});
