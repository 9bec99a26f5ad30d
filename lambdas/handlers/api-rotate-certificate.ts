/**
 * `POST /devices/{thing}/certificate` `{ csr?, keepPrevious? }`: certificate rotation. Issues
 * a new certificate (from the device's CSR, or with a key pair AWS IoT makes), attaches it
 * like the first one and records it; then the thing's other certificates are retired
 * (detached, deactivated, deleted), unless `keepPrevious` is true, which leaves the old one
 * working until the next rotation or `DELETE /devices/{thing}`, so a running daemon can move
 * to the new certificate without a gap.
 */
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { z } from 'zod';
import { createDevicesTable } from '../adapters/devices-table.ts';
import { certificateIdOf, createIotRegistry } from '../adapters/iot-registry.ts';
import { lazy, loadConfig } from '../config.ts';
import { apiHandler, logger, NotFoundError, parseBody } from '../middleware.ts';
import { type DeviceLifecycleDeps, thingOfPath } from './api-delete-device.ts';
import { certificateAnswer, connection, csrPem, inBody } from './api-register-device.ts';

export const rotateCertificateBody = z.strictObject({
  csr: csrPem.optional(),
  /** @default false: the old certificates stop working now */
  keepPrevious: z.boolean().default(false),
});

export interface RotateCertificateDeps extends DeviceLifecycleDeps {
  readonly dataEndpoint: string;
}

export const rotateCertificateDeps = lazy((): RotateCertificateDeps => {
  const config = loadConfig(['devicesTable', 'thingType', 'devicePolicy', 'iotDataEndpoint']);
  return {
    registry: createIotRegistry({ thingType: config.thingType, policyName: config.devicePolicy }),
    devices: createDevicesTable({ tableName: config.devicesTable }),
    dataEndpoint: config.iotDataEndpoint,
  };
});

export function createRotateCertificateHandler(
  deps: () => RotateCertificateDeps = rotateCertificateDeps,
) {
  return apiHandler(async (event: APIGatewayProxyEvent) => {
    const thing = thingOfPath(event);
    const { csr, keepPrevious } = parseBody(event, rotateCertificateBody);
    const { registry, devices, dataEndpoint } = deps();
    const record = await devices.get(thing);
    if (record === undefined || record.status !== 'registered') {
      throw new NotFoundError(`no registered device "${thing}" (GET /devices lists them)`);
    }
    const previous = await registry.certificatesOf(thing);
    const issued = await registry.issueCertificate(thing, { csr }).catch(inBody);
    const updated = await devices.setCertificate(thing, issued);
    const retired: string[] = [];
    if (!keepPrevious) {
      for (const arn of previous) {
        await registry.retireCertificate(thing, arn);
        retired.push(certificateIdOf(arn));
      }
    }
    logger.info('certificate rotated', { thing, certificateId: issued.certificateId, retired });
    return {
      statusCode: 201,
      body: {
        device: updated,
        ...certificateAnswer(issued),
        retired,
        kept: keepPrevious ? previous.map(certificateIdOf) : [],
        ...connection(thing, dataEndpoint),
      },
    };
  });
}

export const handler = createRotateCertificateHandler();
