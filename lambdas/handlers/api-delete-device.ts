/**
 * `DELETE /devices/{thing}`: deregisters a device. Every certificate of the thing is
 * detached from the thing and the device policy, deactivated and deleted, then the thing and
 * the device's record are deleted. Idempotent where it matters: a repeat after a half-done
 * delete finishes it; a device the platform does not know answers 404 (things made outside
 * the platform are never touched).
 */
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { thingName } from '../../core/schemas/protocol.ts';
import { createDevicesTable, type DevicesTable } from '../adapters/devices-table.ts';
import { createIotRegistry, type IotRegistry } from '../adapters/iot-registry.ts';
import { lazy, loadConfig } from '../config.ts';
import { apiHandler, logger, NotFoundError, parseWith } from '../middleware.ts';

export interface DeviceLifecycleDeps {
  readonly registry: IotRegistry;
  readonly devices: DevicesTable;
}

export const deviceLifecycleDeps = lazy((): DeviceLifecycleDeps => {
  const config = loadConfig(['devicesTable', 'thingType', 'devicePolicy']);
  return {
    registry: createIotRegistry({ thingType: config.thingType, policyName: config.devicePolicy }),
    devices: createDevicesTable({ tableName: config.devicesTable }),
  };
});

/** The `{thing}` of the path, validated like a registration's name. */
export function thingOfPath(event: APIGatewayProxyEvent): string {
  return parseWith(thingName, event.pathParameters?.thing ?? '', 'path.thing');
}

export function createDeleteDeviceHandler(deps: () => DeviceLifecycleDeps = deviceLifecycleDeps) {
  return apiHandler(async (event: APIGatewayProxyEvent) => {
    const thing = thingOfPath(event);
    const { registry, devices } = deps();
    if ((await devices.get(thing)) === undefined) {
      throw new NotFoundError(`no registered device "${thing}" (GET /devices lists them)`);
    }
    const { certificates, thingDeleted } = await registry.deregister(thing);
    await devices.remove(thing);
    logger.info('device deleted', { thing, certificates });
    return { body: { thing, deleted: { certificates, thing: thingDeleted, record: true } } };
  });
}

export const handler = createDeleteDeviceHandler();
