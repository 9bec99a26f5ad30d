/**
 * Device identities in the AWS IoT registry: a thing of the ESM thing type, an active X.509
 * certificate whose key pair AWS IoT generates, the device policy attached to the certificate
 * and the certificate attached to the thing. The private key is returned once and kept
 * nowhere. A registration that fails half-way is rolled back, so no orphan certificate
 * stays active.
 */
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CertificateStatus,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  DeleteCertificateCommand,
  DeleteThingCommand,
  DescribeThingCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  IoTClient,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { EsmError } from '../../core/errors.ts';

/** The thing already exists in the registry or the devices table (API answer: 409). */
export class DeviceExistsError extends EsmError {
  constructor(readonly thing: string) {
    super(`device "${thing}" is already registered; pick another thing name`);
  }
}

export interface DeviceIdentity {
  readonly thingName: string;
  readonly thingArn: string;
  readonly certificateId: string;
  readonly certificateArn: string;
  readonly certificatePem: string;
  /** Returned by AWS IoT only once, at creation. */
  readonly privateKey: string;
}

export interface IotRegistryOptions {
  /** Thing type of measurement devices (`ESM_THING_TYPE`). */
  readonly thingType: string;
  /** IoT policy attached to each device certificate (`ESM_DEVICE_POLICY`). */
  readonly policyName: string;
  /** @default the module-level client from `iotClient()` */
  readonly client?: IoTClient;
}

export interface IotRegistry {
  exists(thing: string): Promise<boolean>;
  /** @throws DeviceExistsError when the thing exists already. */
  register(thing: string): Promise<DeviceIdentity>;
}

let sharedClient: IoTClient | undefined;

/** One IoT control-plane client per container; honours `AWS_ENDPOINT_URL` (LocalStack, moto). */
export function iotClient(): IoTClient {
  sharedClient ??= new IoTClient({});
  return sharedClient;
}

function isNotFound(error: unknown): boolean {
  return (error as { name?: string }).name === 'ResourceNotFoundException';
}

export function createIotRegistry(options: IotRegistryOptions): IotRegistry {
  const client = options.client ?? iotClient();

  async function exists(thing: string): Promise<boolean> {
    try {
      await client.send(new DescribeThingCommand({ thingName: thing }));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  /** Best effort, in reverse order of creation; the original error is what the caller sees. */
  async function rollBack(thing: string, created: { thing: boolean; certificate?: string[] }) {
    const [certificateId, certificateArn] = created.certificate ?? [];
    const steps: (() => Promise<unknown>)[] = [];
    if (certificateId !== undefined && certificateArn !== undefined) {
      steps.push(
        () =>
          client.send(
            new DetachThingPrincipalCommand({ thingName: thing, principal: certificateArn }),
          ),
        () =>
          client.send(
            new DetachPolicyCommand({ policyName: options.policyName, target: certificateArn }),
          ),
        () =>
          client.send(
            new UpdateCertificateCommand({ certificateId, newStatus: CertificateStatus.INACTIVE }),
          ),
        () => client.send(new DeleteCertificateCommand({ certificateId })),
      );
    }
    if (created.thing) steps.push(() => client.send(new DeleteThingCommand({ thingName: thing })));
    for (const step of steps) await step().catch(() => undefined);
  }

  async function register(thing: string): Promise<DeviceIdentity> {
    // CreateThing succeeds for an existing thing of the same type, so ask first.
    if (await exists(thing)) throw new DeviceExistsError(thing);
    const created: { thing: boolean; certificate?: string[] } = { thing: false };
    try {
      const made = await client.send(
        new CreateThingCommand({ thingName: thing, thingTypeName: options.thingType }),
      );
      created.thing = true;
      const cert = await client.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
      const { certificateId, certificateArn, certificatePem, keyPair } = cert;
      if (!certificateId || !certificateArn || !certificatePem || !keyPair?.PrivateKey) {
        throw new EsmError('AWS IoT returned an incomplete certificate; retry the registration');
      }
      created.certificate = [certificateId, certificateArn];
      await client.send(
        new AttachPolicyCommand({ policyName: options.policyName, target: certificateArn }),
      );
      await client.send(
        new AttachThingPrincipalCommand({ thingName: thing, principal: certificateArn }),
      );
      return {
        thingName: thing,
        thingArn: made.thingArn ?? '',
        certificateId,
        certificateArn,
        certificatePem,
        privateKey: keyPair.PrivateKey,
      };
    } catch (error) {
      await rollBack(thing, created);
      throw error;
    }
  }

  return { exists, register };
}
