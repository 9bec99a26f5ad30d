/**
 * Target of the IoT topic rule on `esm/devices/+/status` (and, in `esm run`, of every status
 * on the broker): keeps each registered device's last state, last-seen time, facts and last
 * error on its record, shown by GET /devices; a progress report on a job of a run resets that
 * run's result timeout for the device (the job id names its run, core/loop.ts `jobId`).
 */
import { z } from 'zod';
import { ValidationError } from '../../core/errors.ts';
import { runOfJob } from '../../core/loop.ts';
import type { RunStateStore } from '../../core/ports.ts';
import { statusMessage } from '../../core/schemas/protocol.ts';
import { createDevicesTable, type DevicesTable } from '../adapters/devices-table.ts';
import { createRunState } from '../adapters/run-state.ts';
import { lazy, loadConfig } from '../config.ts';
import { logger, parseWith, workflowTask } from '../middleware.ts';

/** The rule adds the topic the device published on; the IoT policy ties it to the device. */
const ruleEvent = z.looseObject({ topic: z.string().optional() });

const defaultTable = lazy(
  (): DevicesTable => createDevicesTable({ tableName: loadConfig(['devicesTable']).devicesTable }),
);

/** The runs table, where a device's progress on a run's jobs resets its result timeout. */
const defaultRuns = lazy(
  (): RunStateStore =>
    createRunState({ tables: { runsTable: loadConfig(['runsTable']).runsTable } }),
);

export function createIngestStatusHandler(
  table: () => DevicesTable | undefined = defaultTable,
  runs: () => RunStateStore | undefined = defaultRuns,
) {
  return workflowTask(ruleEvent, async (event) => {
    const status = parseWith(statusMessage, event);
    const topicThing = event.topic?.match(/^esm\/devices\/([^/]+)\/status$/)?.[1];
    if (event.topic !== undefined && topicThing !== status.thing) {
      throw new ValidationError(
        'thing',
        `status names thing "${status.thing}" but was published on ${event.topic}`,
      );
    }
    const runId = status.batchId !== undefined ? runOfJob(status.batchId) : undefined;
    if (status.progress !== undefined && runId !== undefined) {
      await runs()?.recordProgress(runId, status.thing, status.at);
    }
    const devices = table();
    const outcome = devices ? await devices.recordStatus(status) : 'untracked';
    const fields = { thing: status.thing, state: status.state, at: status.at, outcome };
    if (outcome === 'unknown') logger.warn('status from an unregistered device', fields);
    else logger.debug('device status', fields);
    return { outcome };
  });
}

export const handler = createIngestStatusHandler();
