/**
 * The CloudFormation custom resource that lets `cdk destroy` succeed with devices still
 * registered. An IoT policy attached to certificates and a thing type with things cannot be
 * deleted, so when the stack is deleted this runs first (the resource depends on the thing
 * type and the device policy) and deregisters every device: each thing of the ESM thing type
 * has its certificates detached, deactivated and deleted, then the thing and its row go;
 * certificates still attached to the device policy without a thing are retired too.
 * Create and Update do nothing. The answer always reaches CloudFormation (SUCCESS or FAILED
 * with the reason), so a failure never leaves the stack waiting for an hour.
 */
import {
  type IoTClient,
  ListTargetsForPolicyCommand,
  type ListTargetsForPolicyCommandOutput,
  ListThingsCommand,
} from '@aws-sdk/client-iot';
import type { CloudFormationCustomResourceEvent, Context } from 'aws-lambda';
import { createDevicesTable, type DevicesTable } from '../adapters/devices-table.ts';
import { createIotRegistry, type IotRegistry, iotClient } from '../adapters/iot-registry.ts';
import { lazy, loadConfig } from '../config.ts';
import { logger } from '../middleware.ts';

export interface FleetCleanupDeps {
  readonly registry: IotRegistry;
  readonly devices: DevicesTable;
  readonly client: IoTClient;
  readonly thingType: string;
  readonly policyName: string;
}

export const fleetCleanupDeps = lazy((): FleetCleanupDeps => {
  const config = loadConfig(['devicesTable', 'thingType', 'devicePolicy']);
  return {
    registry: createIotRegistry({ thingType: config.thingType, policyName: config.devicePolicy }),
    devices: createDevicesTable({ tableName: config.devicesTable }),
    client: iotClient(),
    thingType: config.thingType,
    policyName: config.devicePolicy,
  };
});

/** Every thing of the thing type, then every certificate still on the policy. */
export async function deregisterFleet(deps: FleetCleanupDeps) {
  const things: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await deps.client.send(
      new ListThingsCommand({ thingTypeName: deps.thingType, nextToken }),
    );
    for (const thing of page.things ?? []) if (thing.thingName) things.push(thing.thingName);
    nextToken = page.nextToken || undefined;
  } while (nextToken !== undefined);
  let certificates = 0;
  for (const thing of things) {
    certificates += (await deps.registry.deregister(thing)).certificates.length;
    await deps.devices.remove(thing);
  }
  const orphans: string[] = [];
  nextToken = undefined;
  try {
    do {
      const page: ListTargetsForPolicyCommandOutput = await deps.client.send(
        new ListTargetsForPolicyCommand({ policyName: deps.policyName, marker: nextToken }),
      );
      orphans.push(...(page.targets ?? []).filter((t: string) => t.includes(':cert/')));
      nextToken = page.nextMarker || undefined;
    } while (nextToken !== undefined);
  } catch (error) {
    if ((error as { name?: string }).name !== 'ResourceNotFoundException') throw error;
  }
  for (const arn of orphans) await deps.registry.retireCertificate(undefined, arn);
  return { things, certificates: certificates + orphans.length };
}

export type Responder = (url: string, body: Record<string, unknown>) => Promise<void>;

const putResponse: Responder = async (url, body) => {
  const text = JSON.stringify(body);
  // The pre-signed S3 URL wants no content type and an exact length.
  const response = await fetch(url, {
    method: 'PUT',
    headers: { 'content-type': '', 'content-length': String(Buffer.byteLength(text)) },
    body: text,
  });
  if (!response.ok) throw new Error(`CloudFormation response refused: HTTP ${response.status}`);
};

export function createFleetCleanupHandler(
  deps: () => FleetCleanupDeps = fleetCleanupDeps,
  respond: Responder = putResponse,
) {
  return async (event: CloudFormationCustomResourceEvent, context: Context) => {
    const physicalId =
      event.RequestType === 'Create'
        ? `esm-fleet-cleanup-${event.RequestId}`
        : event.PhysicalResourceId;
    const base = {
      PhysicalResourceId: physicalId,
      StackId: event.StackId,
      RequestId: event.RequestId,
      LogicalResourceId: event.LogicalResourceId,
    };
    try {
      const data = event.RequestType === 'Delete' ? await deregisterFleet(deps()) : undefined;
      if (data !== undefined) logger.info('fleet deregistered', data);
      await respond(event.ResponseURL, { ...base, Status: 'SUCCESS' });
      return data;
    } catch (error) {
      logger.error('fleet cleanup failed', { error: error as Error });
      await respond(event.ResponseURL, {
        ...base,
        Status: 'FAILED',
        Reason: `${(error as Error).message} (log stream ${context.logStreamName})`.slice(0, 1000),
      });
      return undefined;
    }
  };
}

export const handler = createFleetCleanupHandler();
