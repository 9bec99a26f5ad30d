/**
 * The runs table: one item per run (key `runId`). Created once (`attribute_not_exists`);
 * counters move by `ADD` only; the reference calibration is set once.
 */
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { ValidationError } from '../../core/errors.ts';
import type { NewRun } from '../../core/ports.ts';
import {
  type RunParams,
  type RunPatch,
  type RunRecord,
  runIdParam,
  runRecord,
  thingsOf,
} from '../../core/schemas/run.ts';
import { decodeCursor, encodeCursor, isConditionFailure, setExpression } from './dynamo.ts';

/** A run as `GET /runs` lists it: where it stands, not its parameters or history. */
export type RunSummary = Pick<
  RunRecord,
  'runId' | 'status' | 'thing' | 'space' | 'createdAt' | 'updatedAt' | 'iteration' | 'measured'
> & { readonly predictor: string | null };

/** One page of runs, newest first within the page; `next` when the scan has more. */
export interface RunPage {
  readonly runs: RunSummary[];
  readonly next?: string;
}

export interface RunsTable {
  get(runId: string): Promise<RunRecord | undefined>;
  /** A page of the table's runs (a scan: runs have no common key to query on). */
  list(options?: { limit?: number; cursor?: string }): Promise<RunPage>;
  create(run: NewRun): Promise<boolean>;
  update(runId: string, patch: RunPatch): Promise<void>;
  markUnstable(runId: string, unstable: NonNullable<RunRecord['lastUnstable']>): Promise<void>;
  addMeasured(runId: string, n: number): Promise<void>;
  setMeasured(runId: string, n: number): Promise<void>;
  setReferenceScale(runId: string, ms: number): Promise<void>;
  recordProgress(runId: string, thing: string, at: string): Promise<void>;
}

export function createRunsTable(
  db: DynamoDBDocumentClient,
  tableName: () => string,
  now: () => string,
): RunsTable {
  const update = async (
    runId: string,
    input: {
      expression: string;
      names?: Record<string, string>;
      values?: Record<string, unknown>;
      condition?: string;
    },
  ) => {
    try {
      await db.send(
        new UpdateCommand({
          TableName: tableName(),
          Key: { runId },
          UpdateExpression: input.expression,
          ConditionExpression: input.condition ?? 'attribute_exists(runId)',
          ExpressionAttributeNames: input.names,
          ExpressionAttributeValues: input.values,
        }),
      );
      return true;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      return false;
    }
  };
  const mustUpdate = async (runId: string, input: Parameters<typeof update>[1]) => {
    if (!(await update(runId, input))) {
      throw new ValidationError('runId', `no run "${runId}"; start one with POST /runs`);
    }
  };

  return {
    async get(runId) {
      const out = await db.send(
        new GetCommand({ TableName: tableName(), Key: { runId }, ConsistentRead: true }),
      );
      if (out.Item === undefined) return undefined;
      const item = out.Item as Record<string, unknown> & { unstableBatches?: Set<string> };
      return runRecord.parse({
        ...item,
        unstableBatches: item.unstableBatches ? [...item.unstableBatches] : [],
      });
    },

    async list({ limit = 100, cursor } = {}) {
      const out = await db.send(
        new ScanCommand({
          TableName: tableName(),
          Limit: limit,
          ExclusiveStartKey:
            cursor === undefined
              ? undefined
              : decodeCursor(cursor, 'runId', (v) => runIdParam.safeParse(v).success),
        }),
      );
      const runs = ((out.Items ?? []) as RunRecord[])
        .map((r) => ({
          runId: r.runId,
          status: r.status,
          thing: r.thing,
          space: r.space,
          createdAt: r.createdAt,
          updatedAt: r.updatedAt,
          iteration: r.iteration,
          measured: r.measured,
          predictor: r.predictorId ?? null,
        }))
        // Run ids start with their start time (newRunId), so this is newest first.
        .sort((a, b) => b.runId.localeCompare(a.runId));
      const last = out.LastEvaluatedKey;
      return last === undefined ? { runs } : { runs, next: encodeCursor(last) };
    },

    async create(run) {
      const at = now();
      const params = run.params as Partial<Pick<RunParams, 'device' | 'things'>>;
      const things =
        run.things ??
        (typeof params.device === 'string'
          ? thingsOf(params as Pick<RunParams, 'device' | 'things'>)
          : []);
      const item = {
        ...run,
        things: things.length > 0 ? [...things] : [run.thing],
        status: 'running',
        createdAt: at,
        updatedAt: at,
        iteration: 0,
        attempts: 0,
        measured: 0,
        unstableRetries: 0,
        redispatches: 0,
        silent: [],
        progress: {},
      };
      try {
        await db.send(
          new PutCommand({
            TableName: tableName(),
            Item: item,
            ConditionExpression: 'attribute_not_exists(runId)',
          }),
        );
        return true;
      } catch (error) {
        if (isConditionFailure(error)) return false;
        throw error;
      }
    },

    async update(runId, patch) {
      const set = setExpression({ ...patch, updatedAt: now() });
      await mustUpdate(runId, { expression: set.expression, names: set.names, values: set.values });
    },

    async markUnstable(runId, unstable) {
      await mustUpdate(runId, {
        expression: 'ADD unstableBatches :b SET lastUnstable = :l, updatedAt = :u',
        values: { ':b': new Set([unstable.batchId]), ':l': unstable, ':u': now() },
      });
    },

    async addMeasured(runId, n) {
      await mustUpdate(runId, {
        expression: 'ADD measured :n SET updatedAt = :u',
        values: { ':n': n, ':u': now() },
      });
    },

    async setMeasured(runId, n) {
      await mustUpdate(runId, {
        expression: 'SET measured = :n, updatedAt = :u',
        values: { ':n': n, ':u': now() },
      });
    },

    async setReferenceScale(runId, ms) {
      // Conditional: the first calibrated result wins, later ones (other scales) change nothing.
      await update(runId, {
        expression: 'SET #p.#m.#r = :s',
        names: { '#p': 'params', '#m': 'measurement', '#r': 'referenceScaleMs' },
        values: { ':s': ms },
        condition: 'attribute_exists(runId) AND attribute_not_exists(#p.#m.#r)',
      });
    },

    async recordProgress(runId, thing, at) {
      // Runs created before progress tracking have no map: create it on the way.
      const done = await update(runId, {
        expression: 'SET progress.#t = :at',
        names: { '#t': thing },
        values: { ':at': at },
        condition: 'attribute_exists(runId) AND attribute_exists(progress)',
      });
      if (!done) {
        await update(runId, {
          expression: 'SET progress = :p',
          values: { ':p': { [thing]: at } },
          condition: 'attribute_exists(runId) AND attribute_not_exists(progress)',
        });
      }
    },
  };
}
