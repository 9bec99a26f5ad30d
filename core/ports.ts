/**
 * The small interfaces the ESM loop talks to. Local mode implements them with files and an
 * in-process MQTT broker (local/), the cloud with S3, DynamoDB and IoT Core (lambdas/).
 */
import type { JobMessage, ResultMessage } from './schemas/protocol.ts';
import type {
  IngestOutcome,
  PlannedSample,
  RunPatch,
  RunRecord,
  SampleRecord,
  StoredIteration,
} from './schemas/run.ts';

/** Datasets and artifacts addressed by slash-separated keys (S3 keys, relative file paths). */
export interface DatasetStore {
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, body: Uint8Array | string, contentType?: string): Promise<void>;
  list(prefix: string): Promise<string[]>;
}

/** Sends measurement jobs to devices and hands back their results. */
export interface MeasurementDispatcher {
  dispatch(thing: string, job: JobMessage): Promise<void>;
  /** Resolves with the result of `batchId`, or rejects with `MeasurementTimeoutError`. */
  awaitResult(thing: string, batchId: string, timeoutMs: number): Promise<ResultMessage>;
}

/** Publishes a measurement job to a device's jobs topic (IoT Core, any MQTT broker). */
export interface JobPublisher {
  publish(thing: string, job: JobMessage): Promise<void>;
}

/** A new run as `POST /runs` or `esm run` records it. */
export interface NewRun {
  readonly runId: string;
  readonly thing: string;
  readonly things?: readonly string[];
  readonly space: string;
  readonly params: Record<string, unknown>;
  readonly limits?: Record<string, unknown>;
}

/** Assigns a pending sample to one job of one device. */
export interface SampleAssignment {
  readonly id: string;
  readonly thing: string;
  readonly batchId: string;
}

/**
 * Where the ESM loop keeps its runs, planned samples and iterations: the persistence layer of
 * the workflow, like Powertools' `BasePersistenceLayer` with its DynamoDB subclass. The
 * workflow tasks and the result ingestion are written against this interface only; the
 * cloud implements it with three DynamoDB tables (lambdas/adapters/), `esm run` with files in
 * the run directory (local/run-store.ts).
 *
 * Every write a retry or a duplicate delivery could repeat is idempotent: a run is created
 * once, a planned sample written once, a sample measured once (the first result wins).
 */
export interface RunStateStore {
  getRun(runId: string): Promise<RunRecord | undefined>;
  /** Creates the run; false (and nothing written) when it exists already. */
  createRun(run: NewRun): Promise<boolean>;
  /** Sets plain fields of an existing run; throws `ValidationError` (`runId`) for an unknown run. */
  updateRun(runId: string, patch: RunPatch): Promise<void>;
  /** Writes planned samples; one that exists already is left alone. Returns how many were new. */
  putSamples(runId: string, samples: readonly PlannedSample[]): Promise<number>;
  listSamples(
    runId: string,
    filter?: { iteration?: number; status?: SampleRecord['status'] },
  ): Promise<SampleRecord[]>;
  /** Records that pending samples were sent in a job (before it is published). */
  assignSamples(runId: string, assignments: readonly SampleAssignment[], at: string): Promise<void>;
  /** Clears the assignment of pending samples, so the next dispatch sends them again. */
  releaseSamples(runId: string, ids: readonly string[]): Promise<void>;
  /**
   * Records a device result once per sample. A sample is measured only by a result of a job
   * it was sent in, to the device it was sent to; anything else is rejected. An unstable
   * result records only its job id. The first interleaved result fixes the run's
   * `params.measurement.referenceScaleMs`.
   * @throws ValidationError (`runId`) for an unknown run, (`thing`) for a device not in the run
   */
  recordResult(result: ResultMessage): Promise<IngestOutcome>;
  /** A device reported progress on a job of the run (resets its result timeout). */
  recordProgress(runId: string, thing: string, at: string): Promise<void>;
  /** Re-derives the run's `measured` counter from its samples. */
  setMeasured(runId: string, measured: number): Promise<void>;
  /** Stores an iteration summary; the same iteration again replaces it. */
  putIteration(record: StoredIteration): Promise<void>;
  listIterations(runId: string): Promise<StoredIteration[]>;
}

export interface Clock {
  now(): Date;
}

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const systemClock: Clock = { now: () => new Date() };

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};
