/**
 * `RunStateStore` (core/ports.ts) on DynamoDB: the runs, samples and iterations tables (key
 * schemas in lambdas/manifest.ts `tableKeys`), one repository each, composed here. Every write
 * that a retry or a duplicate MQTT delivery could repeat is conditional, so repeating it
 * changes nothing; the ingestion rules themselves are the core's (`ingestResult`), shared
 * with the file store of `esm run`.
 *
 * No transactions: per-sample transactions against the one run item conflict with each other
 * under concurrent deliveries (TransactionConflict in DynamoDB; moto 5.2 even rolls back whole
 * tables, losing concurrent writes).
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ValidationError } from '../../core/errors.ts';
import { ingestResult } from '../../core/ingest.ts';
import type { RunStateStore } from '../../core/ports.ts';
import { documentClient } from './dynamo.ts';
import { createIterationsTable } from './iterations-table.ts';
import { createRunsTable } from './runs-table.ts';
import { createSamplesTable } from './samples-table.ts';

export type {
  IngestOutcome,
  RunRecord,
  RunStatus,
  SampleRecord,
  StoredIteration,
} from '../../core/schemas/run.ts';
export { documentClient } from './dynamo.ts';

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

/** The run-state store of the cloud; also the type the API handlers use. */
export type RunState = RunStateStore;

export function createRunState(options: RunStateOptions): RunStateStore {
  const table = (name: keyof RunStateTables) => () => {
    const value = options.tables[name];
    if (value === undefined) {
      throw new ValidationError(name, 'this function was not configured with that table');
    }
    return value;
  };
  const db = options.client ?? documentClient();
  const concurrency = options.concurrency ?? 8;
  const now = () => (options.now?.() ?? new Date()).toISOString();
  const runs = createRunsTable(db, table('runsTable'), now);
  const samples = createSamplesTable(db, table('samplesTable'), { concurrency });
  const iterations = createIterationsTable(db, table('iterationsTable'));

  return {
    getRun: (runId) => runs.get(runId),
    createRun: (run) => runs.create(run),
    updateRun: (runId, patch) => runs.update(runId, patch),
    putSamples: (runId, planned) => samples.put(runId, planned),
    listSamples: (runId, filter) => samples.list(runId, filter),
    assignSamples: (runId, assignments, at) => samples.assign(runId, assignments, at),
    releaseSamples: (runId, ids) => samples.release(runId, ids),
    recordResult: (result) =>
      ingestResult(
        {
          getRun: runs.get,
          markUnstable: runs.markUnstable,
          measureSample: samples.measure,
          addMeasured: runs.addMeasured,
          setReferenceScale: runs.setReferenceScale,
          recordProgress: runs.recordProgress,
          recordDeviceError: (runId, deviceError) => runs.update(runId, { deviceError }),
        },
        result,
        { concurrency },
      ),
    recordProgress: (runId, thing, at) => runs.recordProgress(runId, thing, at),
    setMeasured: (runId, n) => runs.setMeasured(runId, n),
    putIteration: (record) => iterations.put(record),
    listIterations: (runId) => iterations.list(runId),
  };
}
