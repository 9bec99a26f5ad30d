/**
 * POST /devices: registers a measurement device. Creates the thing, an active certificate
 * with the device policy attached, records the device, and answers the certificate, its
 * private key, the IoT data endpoint and the device's topics. The key exists only in this
 * answer: AWS IoT does not keep it and neither do we. 409 when the thing name is taken.
 */
import { z } from 'zod';
import { thingName, topics } from '../../core/schemas/protocol.ts';
import { createDevicesTable, type DevicesTable } from '../adapters/devices-table.ts';
import {
  createIotRegistry,
  DeviceExistsError,
  type IotRegistry,
} from '../adapters/iot-registry.ts';
import { lazy, loadConfig } from '../config.ts';
import { type ApiResponse, apiHandler, logger, parseBody } from '../middleware.ts';

export const registerDeviceBody = z.strictObject({
  thing: thingName,
  description: z.string().max(500, 'use at most 500 characters').optional(),
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

const defaultDeps = lazy((): RegisterDeviceDeps => {
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

export function createRegisterDeviceHandler(deps: () => RegisterDeviceDeps = defaultDeps) {
  return apiHandler(async (event) => {
    const { thing, description } = parseBody(event, registerDeviceBody);
    const { registry, devices, dataEndpoint } = deps();
    if (!(await devices.claim(thing, description))) return conflict(thing);
    let identity: Awaited<ReturnType<IotRegistry['register']>>;
    try {
      identity = await registry.register(thing);
    } catch (error) {
      await devices.release(thing);
      if (error instanceof DeviceExistsError) return conflict(thing);
      throw error;
    }
    const record = await devices.complete(thing, identity);
    logger.info('device registered', { thing, certificateId: identity.certificateId });
    return {
      statusCode: 201,
      body: {
        device: record,
        certificatePem: identity.certificatePem,
        privateKey: identity.privateKey,
        endpoint: { host: dataEndpoint, port: 8883, protocol: 'mqtts', clientId: thing },
        caUrl: amazonRootCaUrl,
        topics: {
          jobs: topics.jobs(thing),
          results: topics.results(thing),
          status: topics.status(thing),
        },
        notice: 'The private key is shown only in this answer and is not stored: save it now.',
      },
    };
  });
}

export const handler = createRegisterDeviceHandler();
