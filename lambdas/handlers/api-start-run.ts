/**
 * `POST /runs`: validates the run parameters (the same as `esm run`, core/schemas/run.ts,
 * with `device: "thing:NAME"` of a registered device, or several of one kind for fan-out:
 * `"device": "thing:a,thing:b"` or `"things": ["a", "b"]`), records the run and starts the
 * state machine. Bad input answers 400 naming the field, and nothing is written. A replay's
 * pool (`pool`, a dataset key) is read first: a missing or malformed dataset is bad input
 * too, and the answer says what its floor leaves out (`"poolFloor"`, core/metric-rows.ts).
 */
import { randomBytes } from 'node:crypto';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { z } from 'zod';
import type { EncodingName } from '../../core/encodings/types.ts';
import { DatasetFormatError, ValidationError } from '../../core/errors.ts';
import { type PoolFloor, poolFloor } from '../../core/metric-rows.ts';
import type { DatasetStore } from '../../core/ports.ts';
import type { PredictorJson } from '../../core/predictor/artifact.ts';
import { transferModel } from '../../core/predictor/transfer.ts';
import { PRIOR_N_INIT, type RunParams, thingsOf } from '../../core/schemas/run.ts';
import { checkSpaceBounds } from '../../core/spaces/bounds.ts';
import type { SearchSpace } from '../../core/spaces/types.ts';
import { createDevicesTable, type DeviceRecord } from '../adapters/devices-table.ts';
import { createRunState, type RunState } from '../adapters/run-state.ts';
import { resolvePredictorId } from '../adapters/s3-predictors.ts';
import { createS3Store } from '../adapters/s3-store.ts';
import { lazy, loadConfig } from '../config.ts';
import {
  apiHandler,
  logger,
  NotFoundError,
  parseBody,
  parseWith,
  underField,
} from '../middleware.ts';
import {
  cloudRunParams,
  dispatchLimits,
  type ExecutionInput,
  keys,
  loadPrior,
  readPoolRows,
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
  /** The device's record (registration, last reported facts), or undefined. */
  readonly device: (thing: string) => Promise<DeviceRecord | undefined>;
  readonly start: ExecutionStarter;
  /** The bucket a replay's pool is read from, and its name (for the upload command). */
  readonly datasets: { readonly store: DatasetStore; readonly bucket: string };
}

export const startRunDeps = lazy((): StartRunDeps => {
  const config = loadConfig(['runsTable', 'devicesTable', 'stateMachineArn', 'bucket']);
  const sfn = new SFNClient({});
  return {
    state: createRunState({ tables: { runsTable: config.runsTable } }),
    device: (thing) => createDevicesTable({ tableName: config.devicesTable }).get(thing),
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
    datasets: { store: createS3Store({ bucket: config.bucket }), bucket: config.bucket },
  };
});

/** Sortable, unique, and valid as an execution name (80 chars of [A-Za-z0-9-_]). */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `run-${stamp}-${randomBytes(4).toString('hex')}`;
}

/**
 * A replay's pool read as the Init task will read it (lambdas/workflow/run-context.ts
 * `loadPool`), refused here with the request field to fix, before the execution starts.
 */
async function checkPool(
  datasets: StartRunDeps['datasets'],
  params: Pick<RunParams, 'pool' | 'metric' | 'dropBelow' | 'nInit'> & { pool: string },
  space: SearchSpace,
): Promise<PoolFloor> {
  const { pool: file, metric, dropBelow, nInit } = params;
  try {
    const rows = await readPoolRows(datasets.store, file, space);
    return poolFloor(
      rows,
      { file, metric, dropBelow, nInit },
      { metric: 'body.metric', dropBelow: 'body.dropBelow', nInit: 'body.nInit' },
    );
  } catch (error) {
    if (error instanceof ValidationError && error.field === 'pool') {
      throw new ValidationError(
        'body.pool',
        `no dataset at "${file}"; upload it first (aws s3 cp FILE s3://${datasets.bucket}/${file}) or fix the key`,
        { cause: error },
      );
    }
    if (error instanceof DatasetFormatError) {
      throw new ValidationError(
        'body.pool',
        `${error.message}; fix the dataset and upload it again`,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
}

/**
 * A transfer run's prior: a predictor id, `space/thing` for that device's newest predictor,
 * or the key of an uploaded predictor.json. Answers the key every Train task reads (pinned
 * now, so a newer predictor of the prior device does not change the run) and the encoding
 * its correction reads; refuses what the Train task would, with `body.prior`.
 */
async function resolvePrior(
  store: DatasetStore,
  ref: string,
  space: SearchSpace,
): Promise<{ key: string; encoding?: EncodingName }> {
  try {
    const key = ref.endsWith('.json')
      ? ref
      : keys.predictorJson(await resolvePredictorId(store, ref, 'body.prior'));
    const prior = (await loadPrior(store, { prior: key })) as PredictorJson;
    transferModel(space, prior);
    const { features } = prior;
    return { key, ...(features.kind === 'encoding' && { encoding: features.encoding }) };
  } catch (error) {
    if (error instanceof ValidationError || error instanceof NotFoundError) {
      const detail = error instanceof ValidationError ? error.detail : error.message;
      const hint = /^no predictor\.json/.test(detail)
        ? '; give a predictor id (GET /predictors), "space/thing" for its newest, or the key of an uploaded predictor.json'
        : '';
      throw new ValidationError('body.prior', `${detail}${hint}`, { cause: error });
    }
    throw error;
  }
}

/**
 * A transfer run's parameters with its prior resolved (`resolvePrior`) and its encoding, the
 * one the correction reads; refuses a `model` (the prior's is corrected) and another
 * `encoding` given in the body (`given`).
 */
async function withPrior<P extends Pick<RunParams, 'prior' | 'model' | 'encoding'>>(
  params: P,
  given: unknown,
  store: DatasetStore,
  space: SearchSpace,
): Promise<P> {
  if (params.model !== undefined) {
    throw new ValidationError(
      'body.model',
      "cannot be combined with body.prior: every iteration corrects the prior's model; drop it",
    );
  }
  const prior = await resolvePrior(store, params.prior as string, space);
  if (given !== undefined && prior.encoding !== undefined && given !== prior.encoding) {
    throw new ValidationError(
      'body.encoding',
      `the prior reads ${prior.encoding}; drop body.encoding (or give "${prior.encoding}")`,
    );
  }
  return { ...params, prior: prior.key, ...(prior.encoding && { encoding: prior.encoding }) };
}

/** The body with a prior's defaults: a small first batch (`esm run --prior` does the same). */
function withPriorDefaults(body: Record<string, unknown>): Record<string, unknown> {
  return body.prior !== undefined && body.nInit === undefined
    ? { ...body, nInit: PRIOR_N_INIT }
    : body;
}

/** What makes two devices "of one kind": the same processor, accelerator and runtime. */
function kindOf(record: DeviceRecord): string | undefined {
  const facts = record.facts;
  return facts === undefined
    ? undefined
    : `${facts.cpu} / ${facts.accelerator ?? 'no accelerator'} / ${facts.executionProvider}`;
}

/**
 * Every device of the run is registered, named once, and (where the devices have reported
 * their facts) of one kind: a fan-out run shards one batch over devices whose latencies
 * must be interchangeable.
 */
async function checkDevices(
  params: { device: string; things?: string[] },
  device: StartRunDeps['device'],
): Promise<void> {
  const named = thingsOf({ device: params.device });
  const field = params.things === undefined ? 'body.device' : 'body.things';
  if (params.things !== undefined && params.device.includes(',')) {
    if (named.join(',') !== params.things.join(',')) {
      throw new ValidationError(
        'body.things',
        'names other devices than body.device; give one list',
      );
    }
  }
  const things = thingsOf(params);
  const twice = things.find((t, i) => things.indexOf(t) !== i);
  if (twice !== undefined) throw new ValidationError(field, `names "${twice}" twice`);
  const records = await Promise.all(things.map((t) => device(t)));
  const kinds = new Map<string, string>();
  for (const [i, record] of records.entries()) {
    const name = things[i] ?? '';
    if (record === undefined) {
      throw new ValidationError(
        field,
        `no registered device "${name}"; register it with POST /devices first`,
      );
    }
    const kind = kindOf(record);
    if (kind !== undefined && !kinds.has(kind)) kinds.set(kind, name);
  }
  if (kinds.size > 1) {
    const seen = [...kinds].map(([kind, name]) => `${name}: ${kind}`).join('; ');
    throw new ValidationError(
      field,
      `a run measures on devices of one kind; these differ (${seen}): start one run per kind`,
    );
  }
}

export function createStartRunHandler(deps: () => StartRunDeps = startRunDeps) {
  return apiHandler(async (event: APIGatewayProxyEvent) => {
    const body = parseBody(event, z.looseObject({}));
    const { limits, ...parsed } = parseWith(startRunBody, withPriorDefaults(body), 'body');
    let params = parsed;
    if (params.dropBelow !== undefined && params.pool === undefined) {
      // Refused now, not by the Init task once the execution has started.
      throw new ValidationError(
        'body.dropBelow',
        'leaves rows out of a replay pool; give it with body.pool (a dataset key) or drop it',
      );
    }
    const space = underField('body', () => spaceOf(params));
    // A spec's size is checked by spaceOf; the batch size multiplies every job's memory.
    const { batchSize } = params.measurement;
    checkSpaceBounds(space, { field: 'body.measurement.batchSize', batchSize });
    const thing = thingOf(params);
    const { state, device, start, datasets } = deps();
    await checkDevices(params, device);
    if (params.prior !== undefined) {
      params = await withPrior(params, body.encoding, datasets.store, space);
    }
    const pool =
      params.pool === undefined
        ? undefined
        : await checkPool(datasets, { ...params, pool: params.pool }, space);
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
      return {
        statusCode: 202,
        body: { runId, status: 'running', executionArn, params, ...(pool && { poolFloor: pool }) },
      };
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
