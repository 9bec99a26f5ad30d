/**
 * The samples table: one item per planned sample (key `runId`, `sampleId`). A planned sample
 * is written once and never overwrites a measurement; it goes from pending to measured once,
 * by a conditional write that also checks the result's job is one the sample was sent in.
 */
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { Measurement } from '../../core/ingest.ts';
import type { SampleAssignment } from '../../core/ports.ts';
import {
  jobKey,
  type PlannedSample,
  type SampleRecord,
  sampleRecord,
} from '../../core/schemas/run.ts';
import { isConditionFailure, queryAll } from './dynamo.ts';

export interface SamplesTable {
  put(runId: string, samples: readonly PlannedSample[]): Promise<number>;
  list(
    runId: string,
    filter?: { iteration?: number; status?: SampleRecord['status'] },
  ): Promise<SampleRecord[]>;
  assign(runId: string, assignments: readonly SampleAssignment[], at: string): Promise<void>;
  release(runId: string, ids: readonly string[]): Promise<void>;
  measure(
    runId: string,
    id: string,
    job: string,
    measurement: Measurement,
  ): Promise<'recorded' | 'duplicate' | 'rejected'>;
}

function fromItem(item: Record<string, unknown>): SampleRecord {
  const jobs = item.jobs as Set<string> | string[] | undefined;
  return sampleRecord.parse({ ...item, id: item.sampleId, jobs: jobs ? [...jobs] : [] });
}

export function createSamplesTable(
  db: DynamoDBDocumentClient,
  tableName: () => string,
  options: { concurrency: number },
): SamplesTable {
  const forEach = async <T>(items: readonly T[], work: (item: T) => Promise<void>) => {
    let next = 0;
    const worker = async () => {
      while (next < items.length) await work(items[next++] as T);
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency, items.length) }, worker));
  };
  const conditional = async (command: UpdateCommand | PutCommand): Promise<boolean> => {
    try {
      await db.send(command as UpdateCommand);
      return true;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      return false;
    }
  };

  return {
    async put(runId, samples) {
      let written = 0;
      await forEach(samples, async (sample) => {
        const done = await conditional(
          new PutCommand({
            TableName: tableName(),
            Item: { ...sample, runId, sampleId: sample.id, status: 'pending' },
            ConditionExpression: 'attribute_not_exists(sampleId)',
          }),
        );
        if (done) written += 1;
      });
      return written;
    },

    async list(runId, filter = {}) {
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
      const items = await queryAll(db, {
        TableName: tableName(),
        KeyConditionExpression: 'runId = :r',
        FilterExpression: conditions.length > 0 ? conditions.join(' AND ') : undefined,
        ExpressionAttributeNames: conditions.length > 0 ? names : undefined,
        ExpressionAttributeValues: values,
        ConsistentRead: true,
      });
      return items.map(fromItem);
    },

    async assign(runId, assignments, at) {
      await forEach(assignments, async ({ id, thing, batchId }) => {
        await conditional(
          new UpdateCommand({
            TableName: tableName(),
            Key: { runId, sampleId: id },
            UpdateExpression:
              'SET assignedThing = :t, assignedBatch = :b, assignedAt = :at ADD jobs :j',
            ConditionExpression: 'attribute_exists(sampleId) AND #st = :pending',
            ExpressionAttributeNames: { '#st': 'status' },
            ExpressionAttributeValues: {
              ':t': thing,
              ':b': batchId,
              ':at': at,
              ':j': new Set([jobKey(thing, batchId)]),
              ':pending': 'pending',
            },
          }),
        );
      });
    },

    async release(runId, ids) {
      await forEach(ids, async (id) => {
        await conditional(
          new UpdateCommand({
            TableName: tableName(),
            Key: { runId, sampleId: id },
            UpdateExpression: 'REMOVE assignedThing, assignedBatch, assignedAt',
            ConditionExpression: 'attribute_exists(sampleId) AND #st = :pending',
            ExpressionAttributeNames: { '#st': 'status' },
            ExpressionAttributeValues: { ':pending': 'pending' },
          }),
        );
      });
    },

    async measure(runId, id, job, m) {
      const done = await conditional(
        new UpdateCommand({
          TableName: tableName(),
          Key: { runId, sampleId: id },
          UpdateExpression:
            'SET #st = :measured, latencyMs = :lat, stats = :stats, thing = :thing, deviceInfo = :info, batchId = :batch, drift = :drift, measuredAt = :at, remeasured = :re',
          ConditionExpression:
            'attribute_exists(sampleId) AND #st = :pending AND contains(jobs, :job)',
          ExpressionAttributeNames: { '#st': 'status' },
          ExpressionAttributeValues: {
            ':measured': 'measured',
            ':pending': 'pending',
            ':job': job,
            ':lat': m.latencyMs,
            ':stats': m.stats,
            ':thing': m.thing,
            ':info': m.deviceInfo,
            ':batch': m.batchId,
            ':drift': m.drift,
            ':at': m.measuredAt,
            ':re': m.remeasured,
          },
        }),
      );
      if (done) return 'recorded';
      const old = (
        await db.send(
          new GetCommand({
            TableName: tableName(),
            Key: { runId, sampleId: id },
            ConsistentRead: true,
          }),
        )
      ).Item;
      if (old === undefined) return 'rejected';
      const jobs = old.jobs as Set<string> | undefined;
      if (!jobs?.has(job)) return 'rejected';
      return 'duplicate';
    },
  };
}
