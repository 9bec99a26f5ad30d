/**
 * Target of the IoT topic rule on `esm/devices/+/status` (state changes; progress updates are
 * filtered out by the rule): keeps each registered device's last state, last-seen time,
 * facts and last error on its record, shown by GET /devices.
 */
import { z } from 'zod';
import { ValidationError } from '../../core/errors.ts';
import { statusMessage } from '../../core/schemas/protocol.ts';
import { createDevicesTable, type DevicesTable } from '../adapters/devices-table.ts';
import { lazy, loadConfig } from '../config.ts';
import { logger, parseWith, workflowTask } from '../middleware.ts';

/** The rule adds the topic the device published on; the IoT policy ties it to the device. */
const ruleEvent = z.looseObject({ topic: z.string().optional() });

const defaultTable = lazy(
  (): DevicesTable => createDevicesTable({ tableName: loadConfig(['devicesTable']).devicesTable }),
);

export function createIngestStatusHandler(table: () => DevicesTable = defaultTable) {
  return workflowTask(ruleEvent, async (event) => {
    const status = parseWith(statusMessage, event);
    const topicThing = event.topic?.match(/^esm\/devices\/([^/]+)\/status$/)?.[1];
    if (event.topic !== undefined && topicThing !== status.thing) {
      throw new ValidationError(
        'thing',
        `status names thing "${status.thing}" but was published on ${event.topic}`,
      );
    }
    const outcome = await table().recordStatus(status);
    const fields = { thing: status.thing, state: status.state, at: status.at, outcome };
    if (outcome === 'unknown') logger.warn('status from an unregistered device', fields);
    else logger.info('device status', fields);
    return { outcome };
  });
}

export const handler = createIngestStatusHandler();
