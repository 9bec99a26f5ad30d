/**
 * Run, iteration and sample state in DynamoDB (key schemas in lambdas/manifest.ts
 * `tableKeys`). Every write that a retry or a duplicate MQTT delivery could repeat is
 * conditional, so repeating it changes nothing:
 * - a run is created once (`attribute_not_exists(runId)`);
 * - a planned sample is written once and never overwrites a measurement;
 * - a result marks a sample measured only while it is pending, and the run's `measured`
 *   counter moves by the number of such writes only, so a duplicate delivery never
 *   double-counts.
 * No transactions: per-sample transactions against the one run item conflict with each
 * other under concurrent deliveries (TransactionConflict in DynamoDB; moto 5.2 even rolls
 * back whole tables, losing concurrent writes).
 */
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { ValidationError } from '../../core/errors.ts';
import type { LatencyStats } from '../../core/schemas/dataset.ts';
import type { ResultMessage } from '../../core/schemas/protocol.ts';
import type { IterationRecord, PlannedSample } from '../../core/schemas/run.ts';

/** Same statuses as local runs (core/schemas/run.ts `runState`). */
export type RunStatus = 'running' | 'converged' | 'max-iter' | 'failed';

export interface RunRecord {
  readonly runId: string;
  readonly status: RunStatus;
  readonly thing: string;
  readonly space: string;
  /** The validated run parameters, as started (seed included). */
  readonly params: Record<string, unknown>;
  /** Measurement wait limits (lambdas/workflow/run-context.ts `dispatchLimits`). */
  readonly limits?: Record<string, unknown>;
  readonly createdAt: string;
  readonly updatedAt: string;
  /** Current iteration, 0 for the initial batch. */
  readonly iteration: number;
  /** Id of the job last published for the current iteration (changes on each re-dispatch). */
  readonly batchId?: string;
  /** How many times the current iteration's samples were published. */
  readonly attempts: number;
  readonly dispatchedAt?: string;
  /** When the current iteration's batch was first published (measuring time starts). */
  readonly iterationStartedAt?: string;
  /** Samples measured over the whole run; moved only by pending -> measured writes. */
  readonly measured: number;
  /** Job ids whose results the device flagged unstable. */
  readonly unstableBatches?: readonly string[];
  /** Re-dispatches spent on unstable results in the current iteration. */
  readonly unstableRetries: number;
  readonly predictorId?: string;
  readonly error?: { readonly name: string; readonly message: string };
}

export interface SampleRecord extends PlannedSample {
  readonly runId: string;
  readonly status: 'pending' | 'measured';
  readonly latencyMs?: number;
  readonly stats?: LatencyStats;
  readonly thing?: string;
  /** The job whose result measured it. */
  readonly batchId?: string;
  readonly measuredAt?: string;
}

/** One iteration of a run as stored: the core's record plus where its predictor is. */
export interface StoredIteration extends IterationRecord {
  readonly runId: string;
  readonly predictorId: string;
}

export interface IngestOutcome {
  /** Samples that went from pending to measured with this message. */
  readonly recorded: number;
  /** Samples already measured (a repeated delivery): left as they were. */
  readonly duplicates: number;
  /** Sample ids that are not part of the run: nothing written for them. */
  readonly rejected: readonly string[];
  /** The device flagged the batch unstable: no latency was recorded. */
  readonly unstable: boolean;
}

export interface RunStateTables {
  readonly runsTable: string;
  readonly iterationsTable: string;
  readonly samplesTable: string;
}

export interface RunStateOptions {
  /** Functions that use only some tables (the API) pass only those; using another throws. */
  readonly tables: Partial<RunStateTables>;
  /** @default the module-level client from `documentClient()` */
  readonly client?: DynamoDBDocumentClient;
  /** Parallel conditional writes while ingesting one result. @default 8 */
  readonly concurrency?: number;
  /** @default () => new Date() */
  readonly now?: () => Date;
}

let sharedClient: DynamoDBDocumentClient | undefined;

export function documentClient(): DynamoDBDocumentClient {
  sharedClient ??= DynamoDBDocumentClient.from(new DynamoDBClient({}), {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
  });
  return sharedClient;
}

function isConditionFailure(error: unknown): boolean {
  const name = (error as { name?: string }).name;
  return (
    error instanceof ConditionalCheckFailedException || name === 'ConditionalCheckFailedException'
  );
}

async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export type RunState = ReturnType<typeof createRunState>;

export function createRunState(options: RunStateOptions) {
  const table = (name: keyof RunStateTables) => {
    const value = options.tables[name];
    if (value === undefined) {
      throw new ValidationError(name, 'this function was not configured with that table');
    }
    return value;
  };
  const runsTable = () => table('runsTable');
  const iterationsTable = () => table('iterationsTable');
  const samplesTable = () => table('samplesTable');
  const db = options.client ?? documentClient();
  const concurrency = options.concurrency ?? 8;
  const now = () => (options.now?.() ?? new Date()).toISOString();

  async function queryAll(input: QueryCommandInput): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await db.send(new QueryCommand({ ...input, ExclusiveStartKey: start }));
      items.push(...((page.Items ?? []) as Record<string, unknown>[]));
      start = page.LastEvaluatedKey;
    } while (start !== undefined);
    return items;
  }

  async function getRun(runId: string): Promise<RunRecord | undefined> {
    const out = await db.send(
      new GetCommand({ TableName: runsTable(), Key: { runId }, ConsistentRead: true }),
    );
    if (out.Item === undefined) return undefined;
    const item = out.Item as RunRecord & { unstableBatches?: Set<string> };
    return {
      ...item,
      unstableBatches: item.unstableBatches ? [...item.unstableBatches] : [],
    };
  }

  return {
    getRun,

    /** Creates the run; returns false (and writes nothing) when it already exists. */
    async createRun(run: {
      runId: string;
      thing: string;
      space: string;
      params: Record<string, unknown>;
      limits?: Record<string, unknown>;
    }): Promise<boolean> {
      const at = now();
      const item = {
        ...run,
        status: 'running',
        createdAt: at,
        updatedAt: at,
        iteration: 0,
        attempts: 0,
        measured: 0,
        unstableRetries: 0,
      } satisfies Omit<RunRecord, 'unstableBatches'>;
      try {
        await db.send(
          new PutCommand({
            TableName: runsTable(),
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

    /** Sets plain fields of an existing run (never the counters). */
    async updateRun(
      runId: string,
      patch: Partial<
        Pick<
          RunRecord,
          | 'status'
          | 'iteration'
          | 'batchId'
          | 'attempts'
          | 'dispatchedAt'
          | 'iterationStartedAt'
          | 'unstableRetries'
          | 'predictorId'
          | 'error'
        >
      >,
    ): Promise<void> {
      const fields = Object.entries({ ...patch, updatedAt: now() }).filter(
        ([, v]) => v !== undefined,
      );
      const names: Record<string, string> = {};
      const values: Record<string, unknown> = {};
      const sets = fields.map(([k, v], i) => {
        names[`#f${i}`] = k;
        values[`:v${i}`] = v;
        return `#f${i} = :v${i}`;
      });
      try {
        await db.send(
          new UpdateCommand({
            TableName: runsTable(),
            Key: { runId },
            UpdateExpression: `SET ${sets.join(', ')}`,
            ConditionExpression: 'attribute_exists(runId)',
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
          }),
        );
      } catch (error) {
        if (isConditionFailure(error)) {
          throw new ValidationError('runId', `no run "${runId}"; start one with POST /runs`);
        }
        throw error;
      }
    },

    /** Writes planned samples; a sample that already exists (a retried task) is left alone. */
    async putSamples(runId: string, samples: readonly PlannedSample[]): Promise<number> {
      let written = 0;
      await forEachLimited(samples, concurrency, async (sample) => {
        try {
          await db.send(
            new PutCommand({
              TableName: samplesTable(),
              Item: { ...sample, runId, sampleId: sample.id, status: 'pending' },
              ConditionExpression: 'attribute_not_exists(sampleId)',
            }),
          );
          written += 1;
        } catch (error) {
          if (!isConditionFailure(error)) throw error;
        }
      });
      return written;
    },

    /** Samples of a run, optionally only those of one iteration and/or one status. */
    async listSamples(
      runId: string,
      filter: { iteration?: number; status?: SampleRecord['status'] } = {},
    ): Promise<SampleRecord[]> {
      const conditions: string[] = [];
      const names: Record<string, string> = {};
      const values: Record<string, unknown> = { ':r': runId };
      if (filter.iteration !== undefined) {
        conditions.push('#it = :it');
        names['#it'] = 'iteration';
        values[':it'] = filter.iteration;
      }
      if (filter.status !== undefined) {
        conditions.push('#st = :st');
        names['#st'] = 'status';
        values[':st'] = filter.status;
      }
      const items = await queryAll({
        TableName: samplesTable(),
        KeyConditionExpression: 'runId = :r',
        FilterExpression: conditions.length > 0 ? conditions.join(' AND ') : undefined,
        ExpressionAttributeNames: conditions.length > 0 ? names : undefined,
        ExpressionAttributeValues: values,
        ConsistentRead: true,
      });
      return items.map((item) => ({ ...item, id: item.sampleId }) as unknown as SampleRecord);
    },

    /**
     * Records a device result once. Each sample goes from pending to measured with a
     * conditional write; a sample already measured is a duplicate delivery and stays as
     * first recorded. An unstable batch records nothing but
     * its job id, so the workflow can re-dispatch it.
     * @throws ValidationError (field `runId`) when the run does not exist, (field `thing`)
     * when the result comes from another device than the run's.
     */
    async recordResult(result: ResultMessage): Promise<IngestOutcome> {
      const run = await getRun(result.runId);
      if (run === undefined) {
        throw new ValidationError(
          'runId',
          `result for unknown run "${result.runId}" (batch ${result.batchId}); nothing recorded`,
        );
      }
      if (result.thing !== run.thing) {
        // The IoT policy ties a topic to its device, not a run to its device: check here.
        throw new ValidationError(
          'thing',
          `result from "${result.thing}" for run "${result.runId}", which measures on "${run.thing}"; nothing recorded`,
        );
      }
      if (result.quality.unstable) {
        await db.send(
          new UpdateCommand({
            TableName: runsTable(),
            Key: { runId: result.runId },
            UpdateExpression: 'ADD unstableBatches :b SET updatedAt = :u',
            ExpressionAttributeValues: { ':b': new Set([result.batchId]), ':u': now() },
          }),
        );
        return { recorded: 0, duplicates: 0, rejected: [], unstable: true };
      }
      let recorded = 0;
      let duplicates = 0;
      const rejected: string[] = [];
      await forEachLimited(result.samples, concurrency, async ({ id, stats }) => {
        try {
          await db.send(
            new UpdateCommand({
              TableName: samplesTable(),
              Key: { runId: result.runId, sampleId: id },
              UpdateExpression:
                'SET #st = :measured, latencyMs = :lat, stats = :stats, thing = :thing, batchId = :batch, measuredAt = :at',
              ConditionExpression: 'attribute_exists(sampleId) AND #st = :pending',
              ExpressionAttributeNames: { '#st': 'status' },
              ExpressionAttributeValues: {
                ':measured': 'measured',
                ':pending': 'pending',
                ':lat': stats.median_ms,
                ':stats': stats,
                ':thing': result.thing,
                ':batch': result.batchId,
                ':at': result.finishedAt,
              },
              ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            }),
          );
          recorded += 1;
        } catch (error) {
          if (!isConditionFailure(error)) throw error;
          const old = (error as { Item?: unknown }).Item;
          const exists =
            old !== undefined ||
            (
              await db.send(
                new GetCommand({
                  TableName: samplesTable(),
                  Key: { runId: result.runId, sampleId: id },
                  ConsistentRead: true,
                }),
              )
            ).Item !== undefined;
          if (exists) duplicates += 1;
          else rejected.push(id);
        }
      });
      if (recorded > 0) {
        // Only the writes that won their condition move the counter, so a repeated delivery
        // never double-counts. A crash between the two writes can leave it short; the train
        // task re-derives it from the samples (`setMeasured`).
        await db.send(
          new UpdateCommand({
            TableName: runsTable(),
            Key: { runId: result.runId },
            UpdateExpression: 'ADD measured :n SET updatedAt = :u',
            ExpressionAttributeValues: { ':n': recorded, ':u': now() },
          }),
        );
      }
      return { recorded, duplicates, rejected, unstable: false };
    },

    /** Re-derives the run's `measured` counter from its samples (the samples are the truth). */
    async setMeasured(runId: string, measured: number): Promise<void> {
      await db.send(
        new UpdateCommand({
          TableName: runsTable(),
          Key: { runId },
          UpdateExpression: 'SET measured = :n, updatedAt = :u',
          ConditionExpression: 'attribute_exists(runId)',
          ExpressionAttributeValues: { ':n': measured, ':u': now() },
        }),
      );
    },

    /** Stores an iteration summary; a retried train task overwrites its own iteration only. */
    async putIteration(record: StoredIteration): Promise<void> {
      await db.send(new PutCommand({ TableName: iterationsTable(), Item: record }));
    },

    async listIterations(runId: string): Promise<StoredIteration[]> {
      const items = await queryAll({
        TableName: iterationsTable(),
        KeyConditionExpression: 'runId = :r',
        ExpressionAttributeValues: { ':r': runId },
        ConsistentRead: true,
      });
      return items as unknown as StoredIteration[];
    },
  };
}
