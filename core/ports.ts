/**
 * The small interfaces the ESM loop talks to. Local mode implements them with files and an
 * in-process MQTT broker (local/), the cloud with S3, DynamoDB and IoT Core (lambdas/).
 */
import type { JobMessage, ResultMessage } from './schemas/protocol.ts';

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
