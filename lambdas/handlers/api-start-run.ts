/**
 * `POST /runs`: validates the run parameters (the same as `esm run`, core/schemas/run.ts,
 * with `device: "thing:NAME"` of a registered device), records the run and starts the
 * state machine. Bad input answers 400 naming the field, and nothing is written.
 */
import { randomBytes } from 'node:crypto';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { ValidationError } from '../../core/errors.ts';
import { checkSpaceBounds } from '../../core/spaces/bounds.ts';
import { createRunState, documentClient, type RunState } from '../adapters/run-state.ts';
import { lazy, loadConfig } from '../config.ts';
import { apiHandler, logger, parseBody, underField } from '../middleware.ts';
import {
  cloudRunParams,
  dispatchLimits,
  type ExecutionInput,
  spaceOf,
  thingOf,
} from '../workflow/run-context.ts';

/** Strict: an unknown (e.g. misspelt) field is refused with its name, never dropped. */
export const startRunBody = cloudRunParams
  .extend({ limits: dispatchLimits.strict().optional() })
  .strict();

/** Starts an execution named `runId`; returns its ARN. */
export type ExecutionStarter = (runId: string, input: ExecutionInput) => Promise<string>;

export interface StartRunDeps {
  readonly state: RunState;
  readonly deviceExists: (thing: string) => Promise<boolean>;
  readonly start: ExecutionStarter;
}

export const startRunDeps = lazy((): StartRunDeps => {
  const config = loadConfig(['runsTable', 'devicesTable', 'stateMachineArn']);
  const sfn = new SFNClient({});
  return {
    state: createRunState({ tables: { runsTable: config.runsTable } }),
    async deviceExists(thing) {
      const out = await documentClient().send(
        new GetCommand({ TableName: config.devicesTable, Key: { thing } }),
      );
      return out.Item !== undefined;
    },
    async start(runId, input) {
      const out = await sfn.send(
        new StartExecutionCommand({
          stateMachineArn: config.stateMachineArn,
          name: runId,
          input: JSON.stringify(input),
        }),
      );
      return out.executionArn ?? '';
    },
  };
});

/** Sortable, unique, and valid as an execution name (80 chars of [A-Za-z0-9-_]). */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `run-${stamp}-${randomBytes(4).toString('hex')}`;
}

export function createStartRunHandler(deps: () => StartRunDeps = startRunDeps) {
  return apiHandler(async (event: APIGatewayProxyEvent) => {
    const { limits, ...params } = parseBody(event, startRunBody);
    const space = underField('body', () => spaceOf(params));
    // A spec's size is checked by spaceOf; the batch size multiplies every job's memory.
    const { batchSize } = params.measurement;
    checkSpaceBounds(space, { field: 'body.measurement.batchSize', batchSize });
    const thing = thingOf(params);
    const { state, deviceExists, start } = deps();
    if (!(await deviceExists(thing))) {
      throw new ValidationError(
        'body.device',
        `no registered device "${thing}"; register it with POST /devices first`,
      );
    }
    const runId = newRunId();
    const input: ExecutionInput = {
      runId,
      params,
      limits: dispatchLimits.parse(limits ?? {}),
    };
    await state.createRun({ runId, thing, space: space.name, params, limits: input.limits });
    try {
      const executionArn = await start(runId, input);
      logger.info('run started', { runId, thing, space: space.name, executionArn });
      return { statusCode: 202, body: { runId, status: 'running', executionArn, params } };
    } catch (error) {
      await state.updateRun(runId, {
        status: 'failed',
        error: { name: 'StartExecutionFailed', message: (error as Error).message },
      });
      throw error;
    }
  });
}

export const handler = createStartRunHandler();
