/**
 * Target of the IoT topic rule `SELECT *, topic() AS topic FROM 'esm/devices/+/results'`
 * (and, in `esm run`, of every result on the broker): validates a device result and records
 * each latency once. A duplicate or late delivery changes nothing; samples that are not part
 * of the run, or were never sent to this device in this job, are rejected; a result whose
 * payload claims another thing than its topic is refused.
 */
import { z } from 'zod';
import { ValidationError } from '../../core/errors.ts';
import { resultMessage } from '../../core/schemas/protocol.ts';
import { logger, parseWith, workflowTask } from '../middleware.ts';
import { type WorkflowDeps, workflowDeps } from '../workflow/run-context.ts';

/** The rule adds the topic the device published on; the IoT policy ties it to the device. */
const ruleEvent = z.looseObject({ topic: z.string().optional() });

export function createIngestHandler(deps: () => Pick<WorkflowDeps, 'state'> = workflowDeps) {
  return workflowTask(ruleEvent, async (event) => {
    const result = parseWith(resultMessage, event);
    const topicThing = event.topic?.match(/^esm\/devices\/([^/]+)\/results$/)?.[1];
    if (event.topic !== undefined && topicThing !== result.thing) {
      throw new ValidationError(
        'thing',
        `result names thing "${result.thing}" but was published on ${event.topic}`,
      );
    }
    const outcome = await deps().state.recordResult(result);
    const fields = {
      runId: result.runId,
      batchId: result.batchId,
      thing: result.thing,
      ...outcome,
    };
    if (outcome.rejected.length > 0) logger.warn('result has samples not sent in that job', fields);
    else logger.info('result ingested', fields);
    return outcome;
  });
}

export const handler = createIngestHandler();
