/**
 * Device identities in the AWS IoT registry: a thing of the ESM thing type with one active
 * X.509 certificate (two during a rotation that keeps the old one), the device policy
 * attached to the certificate and the certificate attached to the thing.
 *
 * A certificate is issued from the device's certificate signing request (the private key
 * never leaves the device) or, without one, from a key pair AWS IoT makes; that private key
 * is returned once and kept nowhere. Anything that fails half-way is rolled back, so no
 * orphan certificate stays active. Retiring a certificate detaches, deactivates and deletes
 * it; deregistering a device retires all its certificates and deletes the thing.
 */
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CertificateStatus,
  CreateCertificateFromCsrCommand,
  type CreateCertificateFromCsrCommandOutput,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  DeleteCertificateCommand,
  DeleteThingCommand,
  DescribeThingCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  IoTClient,
  ListThingPrincipalsCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { EsmError, ValidationError } from '../../core/errors.ts';

/** The thing already exists in the registry or the devices table (API answer: 409). */
export class DeviceExistsError extends EsmError {
  constructor(readonly thing: string) {
    super(`device "${thing}" is already registered; pick another thing name`);
  }
}

export interface IssuedCertificate {
  readonly certificateId: string;
  readonly certificateArn: string;
  readonly certificatePem: string;
  /** Only when AWS IoT made the key pair (no CSR given); returned by AWS IoT only once. */
  readonly privateKey?: string;
}

export interface DeviceIdentity extends IssuedCertificate {
  readonly thingName: string;
  readonly thingArn: string;
}

export interface CertificateOptions {
  /**
   * PEM certificate signing request made on the device; AWS IoT signs it and the private
   * key stays on the device. Without it AWS IoT makes the key pair.
   */
  readonly csr?: string;
}

export interface IotRegistryOptions {
  /** Thing type of measurement devices (`ESM_THING_TYPE`). */
  readonly thingType: string;
  /** IoT policy attached to each device certificate (`ESM_DEVICE_POLICY`). */
  readonly policyName: string;
  /** @default the module-level client from `iotClient()` */
  readonly client?: IoTClient;
  /**
   * Waits between tries of DeleteCertificate while a detach is still propagating (AWS IoT
   * detaches asynchronously).
   * @default [250, 500, 1000, 2000, 4000]
   */
  readonly retryDelaysMs?: readonly number[];
}

export interface IotRegistry {
  exists(thing: string): Promise<boolean>;
  /** @throws DeviceExistsError when the thing exists already. */
  register(thing: string, options?: CertificateOptions): Promise<DeviceIdentity>;
  /** A new certificate for an existing thing, attached like the first one. */
  issueCertificate(thing: string, options?: CertificateOptions): Promise<IssuedCertificate>;
  /** ARNs of the certificates attached to the thing ([] for no such thing). */
  certificatesOf(thing: string): Promise<string[]>;
  /** Detaches, deactivates and deletes one certificate of the thing. */
  retireCertificate(thing: string, certificateArn: string): Promise<void>;
  /**
   * Retires every certificate of the thing and deletes it; a thing that is already gone is
   * fine (idempotent). @returns the retired certificates' ids
   */
  deregister(thing: string): Promise<{ certificates: string[]; thingDeleted: boolean }>;
}

let sharedClient: IoTClient | undefined;

/** One IoT control-plane client per container; honours `AWS_ENDPOINT_URL` (LocalStack, moto). */
export function iotClient(): IoTClient {
  sharedClient ??= new IoTClient({});
  return sharedClient;
}

function errorName(error: unknown): string | undefined {
  return (error as { name?: string }).name;
}

function isNotFound(error: unknown): boolean {
  return errorName(error) === 'ResourceNotFoundException';
}

/** `arn:aws:iot:eu-west-1:123456789012:cert/ab12...` -> `ab12...` */
export function certificateIdOf(certificateArn: string): string {
  return certificateArn.slice(certificateArn.lastIndexOf('/') + 1);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function createIotRegistry(options: IotRegistryOptions): IotRegistry {
  const client = options.client ?? iotClient();
  const delays = options.retryDelaysMs ?? [250, 500, 1000, 2000, 4000];

  async function exists(thing: string): Promise<boolean> {
    try {
      await client.send(new DescribeThingCommand({ thingName: thing }));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  async function createCertificate(csr: string | undefined): Promise<IssuedCertificate> {
    if (csr === undefined) {
      const cert = await client.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
      const { certificateId, certificateArn, certificatePem, keyPair } = cert;
      if (!certificateId || !certificateArn || !certificatePem || !keyPair?.PrivateKey) {
        throw new EsmError('AWS IoT returned an incomplete certificate; retry the registration');
      }
      return { certificateId, certificateArn, certificatePem, privateKey: keyPair.PrivateKey };
    }
    let cert: CreateCertificateFromCsrCommandOutput;
    try {
      cert = await client.send(
        new CreateCertificateFromCsrCommand({ certificateSigningRequest: csr, setAsActive: true }),
      );
    } catch (error) {
      if (errorName(error) === 'InvalidRequestException') {
        throw new ValidationError(
          'csr',
          `AWS IoT refused the certificate signing request (${(error as Error).message}); ` +
            'send a PEM CSR of an RSA (2048+) or EC (P-256/P-384) key',
          { cause: error },
        );
      }
      throw error;
    }
    const { certificateId, certificateArn, certificatePem } = cert;
    if (!certificateId || !certificateArn || !certificatePem) {
      throw new EsmError('AWS IoT returned an incomplete certificate; retry the registration');
    }
    return { certificateId, certificateArn, certificatePem };
  }

  /** Each step once, in order; a step whose target is already gone counts as done. */
  async function retireCertificate(thing: string, certificateArn: string): Promise<void> {
    const certificateId = certificateIdOf(certificateArn);
    const tolerant = (promise: Promise<unknown>) =>
      promise.catch((error: unknown) => {
        if (!isNotFound(error)) throw error;
      });
    await tolerant(
      client.send(new DetachThingPrincipalCommand({ thingName: thing, principal: certificateArn })),
    );
    await tolerant(
      client.send(
        new DetachPolicyCommand({ policyName: options.policyName, target: certificateArn }),
      ),
    );
    await tolerant(
      client.send(
        new UpdateCertificateCommand({ certificateId, newStatus: CertificateStatus.INACTIVE }),
      ),
    );
    // Detaching is asynchronous in AWS IoT: DeleteCertificate may see the attachment for a
    // few seconds more and answer DeleteConflictException.
    for (let attempt = 0; ; attempt += 1) {
      try {
        await client.send(new DeleteCertificateCommand({ certificateId }));
        return;
      } catch (error) {
        if (isNotFound(error)) return;
        const delay = delays[attempt];
        if (errorName(error) !== 'DeleteConflictException' || delay === undefined) throw error;
        await sleep(delay);
      }
    }
  }

  /** Best effort: the original error is what the caller sees. */
  async function rollBack(thing: string, certificateArn: string | undefined, thingMade: boolean) {
    if (certificateArn !== undefined) {
      await retireCertificate(thing, certificateArn).catch(() => undefined);
    }
    if (thingMade) {
      await client.send(new DeleteThingCommand({ thingName: thing })).catch(() => undefined);
    }
  }

  async function attach(thing: string, certificate: IssuedCertificate): Promise<void> {
    await client.send(
      new AttachPolicyCommand({
        policyName: options.policyName,
        target: certificate.certificateArn,
      }),
    );
    await client.send(
      new AttachThingPrincipalCommand({ thingName: thing, principal: certificate.certificateArn }),
    );
  }

  async function issueCertificate(
    thing: string,
    { csr }: CertificateOptions = {},
  ): Promise<IssuedCertificate> {
    const certificate = await createCertificate(csr);
    try {
      await attach(thing, certificate);
      return certificate;
    } catch (error) {
      await rollBack(thing, certificate.certificateArn, false);
      throw error;
    }
  }

  async function register(thing: string, { csr }: CertificateOptions = {}) {
    // CreateThing succeeds for an existing thing of the same type, so ask first.
    if (await exists(thing)) throw new DeviceExistsError(thing);
    let thingMade = false;
    let certificateArn: string | undefined;
    try {
      const made = await client.send(
        new CreateThingCommand({ thingName: thing, thingTypeName: options.thingType }),
      );
      thingMade = true;
      const certificate = await createCertificate(csr);
      certificateArn = certificate.certificateArn;
      await attach(thing, certificate);
      return { thingName: thing, thingArn: made.thingArn ?? '', ...certificate };
    } catch (error) {
      await rollBack(thing, certificateArn, thingMade);
      throw error;
    }
  }

  async function certificatesOf(thing: string): Promise<string[]> {
    const arns: string[] = [];
    let nextToken: string | undefined;
    try {
      do {
        const page = await client.send(
          new ListThingPrincipalsCommand({ thingName: thing, nextToken }),
        );
        for (const principal of page.principals ?? []) {
          if (principal.includes(':cert/')) arns.push(principal);
        }
        nextToken = page.nextToken;
      } while (nextToken !== undefined && nextToken !== '');
    } catch (error) {
      if (isNotFound(error)) return [];
      throw error;
    }
    return arns;
  }

  async function deregister(thing: string) {
    const certificates = await certificatesOf(thing);
    for (const arn of certificates) await retireCertificate(thing, arn);
    let thingDeleted = true;
    await client.send(new DeleteThingCommand({ thingName: thing })).catch((error: unknown) => {
      if (!isNotFound(error)) throw error;
      thingDeleted = false;
    });
    return { certificates: certificates.map(certificateIdOf), thingDeleted };
  }

  return { exists, register, issueCertificate, certificatesOf, retireCertificate, deregister };
}
