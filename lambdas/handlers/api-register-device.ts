/**
 * POST /devices: registers a measurement device. Creates the thing and an active certificate
 * with the device policy attached, records the device, and answers the certificate, the IoT
 * data endpoint and the device's topics.
 *
 * With `csr` (a certificate signing request made on the device, as `esm-device register`
 * does) AWS IoT signs the device's own key, which never leaves the device. Without it AWS IoT
 * makes the key pair and the private key is in this answer only (AWS IoT keeps no copy and
 * neither do we): the path for devices that cannot make a CSR. 409 when the name is taken.
 */
import { z } from 'zod';
import { thingName, topics } from '../../core/schemas/protocol.ts';
import { createDevicesTable, type DevicesTable } from '../adapters/devices-table.ts';
import {
  createIotRegistry,
  DeviceExistsError,
  type IotRegistry,
  type IssuedCertificate,
} from '../adapters/iot-registry.ts';
import { lazy, loadConfig } from '../config.ts';
import { type ApiResponse, apiHandler, logger, parseBody, underField } from '../middleware.ts';

/** A PEM certificate signing request, as `openssl req -new` or `esm-device register` make it. */
export const csrPem = z
  .string()
  .max(16_384, 'a CSR is a few KB; send the PEM text of one request')
  .regex(
    /^\s*-----BEGIN (NEW )?CERTIFICATE REQUEST-----[\s\S]+-----END (NEW )?CERTIFICATE REQUEST-----\s*$/,
    'send a PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----)',
  )
  .refine(isDerSequence, 'the PEM body is not a DER certificate signing request');

/**
 * True when the base64 between the PEM lines is one whole DER SEQUENCE (what a PKCS#10
 * request is), so that garbage is answered 400 here rather than by AWS IoT.
 */
function isDerSequence(text: string): boolean {
  const body = text.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return false;
  const der = Buffer.from(body, 'base64');
  if (der.length < 2 || der[0] !== 0x30) return false;
  const first = der[1] ?? 0;
  if (first < 0x80) return der.length === 2 + first;
  const size = first & 0x7f;
  if (size < 1 || size > 3 || der.length < 2 + size) return false;
  let length = 0;
  for (let i = 0; i < size; i += 1) length = length * 256 + (der[2 + i] ?? 0);
  return der.length === 2 + size + length;
}

export const registerDeviceBody = z.strictObject({
  thing: thingName,
  description: z.string().max(500, 'use at most 500 characters').optional(),
  csr: csrPem.optional(),
});
export type RegisterDeviceBody = z.infer<typeof registerDeviceBody>;

/** The root CA device clients trust for IoT Core's ATS endpoint. */
export const amazonRootCaUrl = 'https://www.amazontrust.com/repository/AmazonRootCA1.pem';

export interface RegisterDeviceDeps {
  readonly registry: IotRegistry;
  readonly devices: DevicesTable;
  /** The account's IoT data endpoint (ATS), where devices connect with MQTT over TLS. */
  readonly dataEndpoint: string;
}

export const registerDeviceDeps = lazy((): RegisterDeviceDeps => {
  const config = loadConfig(['devicesTable', 'thingType', 'devicePolicy', 'iotDataEndpoint']);
  return {
    registry: createIotRegistry({ thingType: config.thingType, policyName: config.devicePolicy }),
    devices: createDevicesTable({ tableName: config.devicesTable }),
    dataEndpoint: config.iotDataEndpoint,
  };
});

function conflict(thing: string): ApiResponse {
  const error = new DeviceExistsError(thing);
  return {
    statusCode: 409,
    body: { error: error.name, field: 'body.thing', message: error.message },
  };
}

/** The certificate part of an answer; the key only where AWS IoT made it. */
export function certificateAnswer(certificate: IssuedCertificate): Record<string, unknown> {
  return certificate.privateKey === undefined
    ? { certificatePem: certificate.certificatePem }
    : {
        certificatePem: certificate.certificatePem,
        privateKey: certificate.privateKey,
        notice:
          'The private key is shown only in this answer and is not stored: save it now. ' +
          'Send a CSR ("csr") instead to keep the key on the device.',
      };
}

/** Where and how a device connects (the same for every certificate of the thing). */
export function connection(thing: string, dataEndpoint: string): Record<string, unknown> {
  return {
    endpoint: { host: dataEndpoint, port: 8883, protocol: 'mqtts', clientId: thing },
    caUrl: amazonRootCaUrl,
    topics: {
      jobs: topics.jobs(thing),
      results: topics.results(thing),
      status: topics.status(thing),
    },
  };
}

/** Re-throws an error of the registry with its field under `body` (`csr` -> `body.csr`). */
export function inBody(error: unknown): never {
  return underField('body', () => {
    throw error;
  });
}

export function createRegisterDeviceHandler(deps: () => RegisterDeviceDeps = registerDeviceDeps) {
  return apiHandler(async (event) => {
    const { thing, description, csr } = parseBody(event, registerDeviceBody);
    const { registry, devices, dataEndpoint } = deps();
    if (!(await devices.claim(thing, description))) return conflict(thing);
    let identity: Awaited<ReturnType<IotRegistry['register']>>;
    try {
      identity = await registry.register(thing, { csr }).catch(inBody);
    } catch (error) {
      await devices.release(thing);
      if (error instanceof DeviceExistsError) return conflict(thing);
      throw error;
    }
    const record = await devices.complete(thing, identity);
    logger.info('device registered', {
      thing,
      certificateId: identity.certificateId,
      keyOnDevice: csr !== undefined,
    });
    return {
      statusCode: 201,
      body: { device: record, ...certificateAnswer(identity), ...connection(thing, dataEndpoint) },
    };
  });
}

export const handler = createRegisterDeviceHandler();
