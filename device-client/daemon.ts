/**
 * The device daemon: an MQTT client named after its thing that receives measurement jobs on
 * `esm/devices/{thing}/jobs`, runs them one at a time and reports on `.../results` and
 * `.../status` (protocol v1, docs/protocol.md). This module wires four parts together:
 *
 * - connection.ts: the MQTT lifecycle (persistent session, backoff, orderly close);
 * - job-queue.ts: the queue with duplicate detection, journaled on disk with `stateDir` before
 *   the job's PUBACK, so an accepted job survives `kill -9` and is measured after a restart;
 * - outbox.ts: results kept until the broker acknowledges them, then remembered, so a job
 *   delivered again is answered with the same result instead of being measured twice;
 * - status.ts: lifecycle states, throttled progress and heartbeats.
 */
import { join } from 'node:path';
import { ValidationError } from '../core/errors.ts';
import type { Clock, Logger } from '../core/ports.ts';
import { silentLogger, systemClock } from '../core/ports.ts';
import { createRng } from '../core/rng.ts';
import {
  type DeviceFacts,
  type JobMessage,
  jobMessage,
  PROTOCOL_VERSION,
  type ResultMessage,
  resultMessage,
  type StatusErrorCode,
  topics,
} from '../core/schemas/protocol.ts';
import {
  type DeviceConfig,
  type DeviceConfigInput,
  parseConfig,
  progressIntervalMs,
  readTlsFiles,
  type TlsFiles,
} from './config.ts';
import { type Connection, createConnection } from './connection.ts';
import { deviceFacts } from './device-facts.ts';
import { createJobQueue, fileJournal, memoryJournal, type Outcome } from './job-queue.ts';
import { JobStoppedError, type RunJobOptions, runJob } from './job-runner.ts';
import { createOutbox } from './outbox.ts';
import { createStatusPublisher } from './status.ts';

export { backoffDelay } from './connection.ts';

/** Runs one job; `runJob` from job-runner.ts unless a test or embedder injects another. */
export type JobRunner = (job: JobMessage, options: RunJobOptions) => Promise<ResultMessage>;

export interface DaemonDeps {
  /** @default runJob from ./job-runner.ts */
  runJob?: JobRunner;
  /** @default deviceFacts from ./device-facts.ts */
  facts?: (thing: string) => DeviceFacts;
  /** @default silentLogger */
  logger?: Logger;
  /** @default systemClock */
  clock?: Clock;
  /** PEM material; @default read from the config's cert/key/ca paths */
  tls?: TlsFiles;
  /** Finished batches remembered for duplicate detection. @default 256 */
  rememberBatches?: number;
  /** Longest wait in `stop()` for unacknowledged results and the offline status. @default 5000 */
  flushTimeoutMs?: number;
}

export interface Daemon {
  readonly thing: string;
  /** Resolves when the daemon is connected and subscribed to its jobs topic the first time. */
  readonly ready: Promise<void>;
  /** True while connected to the broker. */
  readonly connected: boolean;
  /** Jobs waiting behind the running one. */
  readonly queued: number;
  /** Batch id of the running job, if any. */
  readonly running: string | undefined;
  /** Results measured but not yet acknowledged by the broker. */
  readonly unacknowledged: number;
  /**
   * Stop after the current sample: queued jobs and the running one get a `STOPPED` error
   * status (the platform dispatches them again; a job whose `STOPPED` was not acknowledged
   * stays journaled and runs at the next start), results are flushed, an `offline` status is
   * published and the connection is closed. Idempotent.
   */
  stop(): Promise<void>;
}

function stringField(value: unknown, key: string): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const field = (value as Record<string, unknown>)[key];
  return typeof field === 'string' ? field : undefined;
}

/** Check an incoming payload; the error names the first bad field, as the protocol promises. */
export function decodeJob(
  payload: Buffer | string,
): { job: JobMessage } | { code: StatusErrorCode; message: string; batchId?: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(payload.toString());
  } catch (error) {
    return { code: 'MALFORMED_JSON', message: `job is not JSON: ${(error as Error).message}` };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { code: 'INVALID_JOB', message: 'job: must be a JSON object (see docs/protocol.md)' };
  }
  const batchId = stringField(raw, 'batchId');
  const withBatch = batchId === undefined ? {} : { batchId };
  const { v } = raw as { v?: unknown };
  if (v === undefined) {
    return {
      code: 'INVALID_JOB',
      message: `v: missing; this device speaks protocol version ${PROTOCOL_VERSION}`,
      ...withBatch,
    };
  }
  if (v !== PROTOCOL_VERSION) {
    return {
      code: 'UNSUPPORTED_VERSION',
      message: `v: this device speaks protocol version ${PROTOCOL_VERSION}, the job has ${JSON.stringify(v)}`,
      ...withBatch,
    };
  }
  const parsed = jobMessage.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || 'job';
    return {
      code: 'INVALID_JOB',
      message: `${field}: ${issue?.message ?? 'invalid job'}`,
      ...withBatch,
    };
  }
  return { job: parsed.data };
}

/** Seed the reconnect jitter from the thing name, so devices differ but a run is replayable. */
function seedOf(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Create the daemon and start connecting; see `Daemon`. */
export function createDaemon(
  input: DeviceConfigInput | DeviceConfig,
  deps: DaemonDeps = {},
): Daemon {
  const config = parseConfig(input);
  const {
    runJob: run = runJob,
    facts = (thing: string) => deviceFacts(thing, { executionProvider: config.executionProvider }),
    logger = silentLogger,
    clock = systemClock,
    rememberBatches = 256,
    flushTimeoutMs = 5000,
  } = deps;
  const tls = deps.tls ?? readTlsFiles(config);
  const { thing, stateDir } = config;
  const rng = createRng(seedOf(`${thing}:${process.pid}`));
  let stopping = false;
  let stopped: Promise<void> | undefined;
  let pumping: Promise<void> | undefined;
  let progress: { done: number; total: number } | undefined;

  const queue = createJobQueue({
    limit: config.queueLimit,
    remember: rememberBatches,
    journal: stateDir ? fileJournal(join(stateDir, 'jobs'), { logger }) : memoryJournal(),
  });
  // The connection is created below; the publishers only run once it exists.
  let connection: Connection | undefined;
  const publish = (topic: string, message: unknown, opts: { qos: 0 | 1; retain?: boolean }) =>
    connection
      ? connection.publish(topic, JSON.stringify(message), opts)
      : Promise.reject(new Error('not connected yet'));
  const status = createStatusPublisher({
    thing,
    clock,
    logger,
    heartbeatSeconds: config.heartbeatSeconds,
    progressIntervalMs: progressIntervalMs(config),
    publish: (message, opts) => publish(topics.status(thing), message, opts),
    activity: () => ({
      queue: queue.length,
      ...(queue.running ? { batchId: queue.running.batchId } : {}),
      ...(queue.running && progress ? { progress } : {}),
    }),
  });
  const outbox = createOutbox({
    ...(stateDir ? { dir: stateDir } : {}),
    thing,
    logger,
    keepSent: rememberBatches,
    send: (result) => publish(topics.results(thing), result, { qos: 1 }),
  });
  for (const result of [...outbox.restored.sent, ...outbox.restored.pending]) {
    queue.remember(result, { result });
  }

  const reportError = (code: StatusErrorCode, message: string, batchId?: string) =>
    status.error(code, message, batchId).catch(() => {});

  /** Tell the platform a job will not run here; forget it only once the platform has heard. */
  const reportStopped = (job: JobMessage, message: string) =>
    status.error('STOPPED', message, job.batchId).then(
      () => queue.release(job),
      () =>
        logger.warn('STOPPED not delivered: the job stays for the next start', {
          batchId: job.batchId,
        }),
    );

  const measure = async (job: JobMessage): Promise<Outcome> => {
    try {
      const result = await run(job, {
        thing,
        executionProvider: config.executionProvider,
        shouldStop: () => stopping,
        onProgress: (done, total) => {
          progress = { done, total };
          status.progress(job.batchId, done, total);
        },
      });
      // The result is checked here too: a device must never send what the platform rejects.
      return { result: resultMessage.parse(result) };
    } catch (error) {
      const message = (error as Error).message;
      const code: StatusErrorCode =
        error instanceof JobStoppedError || stopping
          ? 'STOPPED'
          : error instanceof ValidationError
            ? 'INVALID_JOB'
            : 'JOB_FAILED';
      return { error: { code, message } };
    }
  };

  const execute = async (job: JobMessage) => {
    progress = { done: 0, total: job.samples.length };
    void status.state();
    logger.info('job started', {
      runId: job.runId,
      batchId: job.batchId,
      samples: job.samples.length,
    });
    let outcome = await measure(job);
    progress = undefined;
    if (outcome.result) {
      try {
        // Into the outbox before the job leaves the journal: a crash between keeps one of them.
        outbox.add(outcome.result);
        logger.info('job finished', {
          batchId: job.batchId,
          unstable: outcome.result.quality.unstable,
        });
      } catch (error) {
        const message = `cannot keep the result in ${stateDir}: ${(error as Error).message}`;
        outcome = { error: { code: 'JOB_FAILED', message } };
      }
    }
    queue.settle(job, outcome);
    if (outcome.error?.code === 'STOPPED') void reportStopped(job, outcome.error.message);
    else if (outcome.error)
      void reportError(outcome.error.code, outcome.error.message, job.batchId);
  };

  const pump = async () => {
    for (let job = queue.take(); job && !stopping; job = stopping ? undefined : queue.take()) {
      await execute(job);
    }
    if (!stopping) void status.state();
  };

  const startPump = () => {
    if (pumping || stopping) return;
    pumping = pump()
      .catch((error: unknown) => {
        // Only a bug lands here; the daemon must keep serving, so log and go on.
        logger.error('job loop failed', { error: (error as Error).message });
      })
      .finally(() => {
        pumping = undefined;
        if (!stopping && queue.length > 0) startPump();
      });
  };

  /** One message on the jobs topic; its PUBACK goes out when this returns. */
  const onJob = (payload: Buffer) => {
    const decoded = decodeJob(payload);
    if (stopping) {
      const batchId = 'job' in decoded ? decoded.job.batchId : decoded.batchId;
      void reportError('STOPPED', 'the device is stopping; send the job again later', batchId);
      return;
    }
    if (!('job' in decoded)) {
      void reportError(decoded.code, decoded.message, decoded.batchId);
      return;
    }
    const { job } = decoded;
    let offer: ReturnType<typeof queue.offer>;
    try {
      offer = queue.offer(job);
    } catch (error) {
      const message = `cannot keep the job in ${stateDir}: ${(error as Error).message}`;
      void reportError('JOB_FAILED', message, job.batchId);
      return;
    }
    switch (offer.kind) {
      case 'finished':
        logger.info('duplicate of a finished job: reporting again', { batchId: job.batchId });
        if (offer.outcome.result) outbox.resend(offer.outcome.result);
        else void reportError(offer.outcome.error.code, offer.outcome.error.message, job.batchId);
        return;
      case 'duplicate':
        logger.info('duplicate of a queued or running job: ignored', { batchId: job.batchId });
        return;
      case 'full':
        void reportError(
          'QUEUE_FULL',
          `queue full (${config.queueLimit} jobs waiting); send it again later or raise queueLimit`,
          job.batchId,
        );
        return;
      case 'queued':
        logger.info('job queued', { batchId: job.batchId, queue: offer.position });
        startPump();
    }
  };

  connection = createConnection({
    broker: config.broker,
    clientId: thing,
    subscriptions: [topics.jobs(thing)],
    tls,
    keepaliveSeconds: config.keepaliveSeconds,
    reconnectMinMs: config.reconnectMinMs,
    reconnectMaxMs: config.reconnectMaxMs,
    random: () => rng.next(),
    logger,
    will: {
      topic: topics.status(thing),
      payload: JSON.stringify(status.message('offline', { queue: 0 })),
    },
    onMessage: (topic, payload) => {
      if (topic === topics.jobs(thing)) onJob(payload);
    },
    onConnect: () => {
      void status.online(facts(thing));
      void status.state();
      outbox.flush();
    },
  });
  status.start();

  const resumed = queue.resume();
  if (resumed > 0) {
    logger.info('resuming jobs accepted before the last stop', { jobs: resumed });
    startPump();
  }

  const stop = async () => {
    stopping = true;
    status.stop();
    for (const job of queue.drain()) {
      void reportStopped(job, 'the device stopped before running this job');
    }
    await pumping;
    const left = await outbox.settled(flushTimeoutMs);
    if (left > 0) logger.warn('stopping with unacknowledged results', { batches: left });
    if (connection?.connected) {
      await Promise.race([
        status.offline(),
        new Promise((r) => setTimeout(r, flushTimeoutMs).unref()),
      ]);
    }
    await connection?.close(flushTimeoutMs);
    logger.info('stopped', { thing });
  };

  return {
    thing,
    ready: connection.ready,
    get connected() {
      return connection?.connected ?? false;
    },
    get queued() {
      return queue.length;
    },
    get running() {
      return queue.running?.batchId;
    },
    get unacknowledged() {
      return outbox.pending;
    },
    stop() {
      stopped ??= stop();
      return stopped;
    },
  };
}

/** Create the daemon and wait until it is connected and subscribed. */
export async function startDaemon(
  config: DeviceConfigInput | DeviceConfig,
  deps: DaemonDeps = {},
): Promise<Daemon> {
  const daemon = createDaemon(config, deps);
  await daemon.ready;
  return daemon;
}
