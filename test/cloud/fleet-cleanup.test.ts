/**
 * `cdk destroy` with devices still registered, as far as the emulator shows it: while
 * certificates are attached, the device policy cannot be deleted (what fails a stack
 * delete); the fleet-cleanup custom resource's Delete deregisters every device (things,
 * certificates, rows, and certificates left on the policy without a thing), answers
 * CloudFormation over its pre-signed URL, and after it the policy and the thing type delete.
 */
import { createPrivateKey } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import {
  AttachPolicyCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  DeletePolicyCommand,
  DeleteThingTypeCommand,
  DeprecateThingTypeCommand,
  type IoTClient,
  ListCertificatesCommand,
  ListThingsCommand,
} from '@aws-sdk/client-iot';
import type { CloudFormationCustomResourceEvent, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { certificateRequest, newDeviceKey } from '../../device-client/register.ts';
import { createDevicesTable } from '../../lambdas/adapters/devices-table.ts';
import { createIotRegistry } from '../../lambdas/adapters/iot-registry.ts';
import { handler as registerDevice } from '../../lambdas/handlers/api-register-device.ts';
import {
  handler as cleanup,
  createFleetCleanupHandler,
  fleetCleanupDeps,
} from '../../lambdas/handlers/fleet-cleanup.ts';
import { apiEvent, lambdaContext } from '../support/local-sfn.ts';
import { type Emulator, type EsmResources, scanAll, startIotTestbed } from '../support/moto.ts';

vi.hoisted(() => {
  process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
});

let emulator: Emulator | undefined;
let resources: EsmResources;
let iot: IoTClient;
let server: Server;
let responseUrl: string;
const responses: Record<string, unknown>[] = [];
let thingType: string;
let policyName: string;

beforeAll(async () => {
  // Without an emulator with IoT these tests skip (printed reason).
  const testbed = await startIotTestbed('fleet');
  if (!testbed) return;
  ({ emulator, resources, iot, thingType, policyName } = testbed);
  // CloudFormation's pre-signed response URL.
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      responses.push({ method: req.method, ...JSON.parse(Buffer.concat(chunks).toString()) });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  responseUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/r`;
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  iot?.destroy();
  await emulator?.stop();
});

const context = lambdaContext('fleetCleanup') as Context;
function deleteEvent(): CloudFormationCustomResourceEvent {
  return {
    RequestType: 'Delete',
    ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:cleanup',
    ResponseURL: responseUrl,
    StackId: 'arn:aws:cloudformation:us-east-1:123456789012:stack/EsmStateless/1',
    RequestId: `req-${responses.length}`,
    LogicalResourceId: 'DevicesFleetCleanup',
    PhysicalResourceId: 'esm-fleet-cleanup-1',
    ResourceType: 'Custom::EsmFleetCleanup',
    ResourceProperties: { ServiceToken: 'x' },
  } as CloudFormationCustomResourceEvent;
}

describe('fleet cleanup on stack delete', () => {
  it('answers FAILED with the reason when a step fails, so CloudFormation does not hang', async ({
    skip,
  }) => {
    if (!emulator) skip();
    const broken = createFleetCleanupHandler(() => ({
      ...fleetCleanupDeps(),
      registry: {
        ...createIotRegistry({ thingType, policyName }),
        deregister: () => Promise.reject(new Error('throttled')),
      },
    }));
    await iot.send(new CreateThingCommand({ thingName: 'doomed', thingTypeName: thingType }));
    await broken(deleteEvent(), context);
    expect(responses.pop()).toMatchObject({
      method: 'PUT',
      Status: 'FAILED',
      Reason: expect.stringContaining('throttled'),
      LogicalResourceId: 'DevicesFleetCleanup',
    });
  });

  it('deregisters every device so that the device policy and thing type can be deleted', async ({
    skip,
  }) => {
    if (!emulator) skip();
    const csr = certificateRequest(createPrivateKey(newDeviceKey()), 'pi-csr');
    for (const body of [{ thing: 'pi-csr', csr }, { thing: 'pi-keys' }]) {
      const answer = await registerDevice(
        apiEvent({ method: 'POST', path: '/devices', body }) as never,
        context,
      );
      expect(answer.statusCode).toBe(201);
    }
    // A certificate on the policy without a thing (e.g. left by a hand-made experiment).
    const orphan = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    await iot.send(new AttachPolicyCommand({ policyName, target: orphan.certificateArn }));
    // What fails `cdk destroy` today: the policy is attached.
    await expect(iot.send(new DeletePolicyCommand({ policyName }))).rejects.toMatchObject({
      name: 'DeleteConflictException',
    });

    const data = await cleanup(deleteEvent(), context);
    expect(responses.pop()).toMatchObject({ method: 'PUT', Status: 'SUCCESS' });
    expect(data).toMatchObject({ things: expect.arrayContaining(['pi-csr', 'pi-keys', 'doomed']) });
    expect((await iot.send(new ListThingsCommand({ thingTypeName: thingType }))).things).toEqual(
      [],
    );
    expect((await iot.send(new ListCertificatesCommand({}))).certificates).toEqual([]);
    expect(await scanAll(resources.devicesTable)).toEqual([]);
    await iot.send(new DeletePolicyCommand({ policyName }));
    await iot.send(new DeprecateThingTypeCommand({ thingTypeName: thingType }));
    await iot.send(new DeleteThingTypeCommand({ thingTypeName: thingType }));
  });

  it('does nothing on Create and Update but answer SUCCESS', async ({ skip }) => {
    if (!emulator) skip();
    const devices = createDevicesTable({ tableName: resources.devicesTable });
    await devices.claim('kept');
    const event = { ...deleteEvent(), RequestType: 'Create' } as CloudFormationCustomResourceEvent;
    expect(await cleanup(event, context)).toBeUndefined();
    expect(responses.pop()).toMatchObject({
      Status: 'SUCCESS',
      PhysicalResourceId: expect.stringMatching(/^esm-fleet-cleanup-/),
    });
    expect((await scanAll(resources.devicesTable)).map((r) => r.thing)).toEqual(['kept']);
  });
});
