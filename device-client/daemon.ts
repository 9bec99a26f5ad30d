/**
 * The device daemon: an MQTT client named after its thing that receives measurement jobs on
 * `esm/devices/{thing}/jobs`, runs them one at a time and reports on `.../results` and
 * `.../status` (protocol v1, docs/protocol.md).
 *
 * Delivery guarantees, because devices sit on flaky networks (Wi-Fi Raspberry Pis, shared GPU
 * hosts):
 * - the session is persistent (`clean: false`), so QoS 1 jobs sent while the device is away
 *   arrive when it is back;
 * - a result stays in `pending` until the broker acknowledges it (PUBACK) and is published again
 *   after every reconnect until then, so a job interrupted by a disconnect is still reported,
 *   whole, exactly as measured; with `stateDir` it is also kept on disk, so not even a crash or
 *   power loss between measuring and the acknowledgement loses it;
 * - a job delivered twice (at-least-once delivery, or a platform retry) is recognised by
 *   (runId, batchId): a finished one gets its result again, a queued or running one is ignored.
 *
 * Reconnection is ours, not mqtt.js's fixed `reconnectPeriod`: exponential backoff with jitter,
 * so a fleet does not reconnect in lockstep after a broker outage.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
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
  type StatusMessage,
  topics,
} from '../core/schemas/protocol.ts';
import {
  type DeviceConfig,
  type DeviceConfigInput,
  parseConfig,
  readTlsFiles,
  type TlsFiles,
} from './config.ts';
import { deviceFacts } from './device-facts.ts';
import { JobStoppedError, type RunJobOptions, runJob } from './job-runner.ts';

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
   * status (the platform dispatches them again), acknowledged results are flushed, an
   * `offline` status is published and the connection is closed. Idempotent.
   */
  stop(): Promise<void>;
}

interface Outcome {
  result?: ResultMessage;
  error?: { code: StatusErrorCode; message: string };
}

const batchKey = (job: { runId: string; batchId: string }) => `${job.runId}\u0000${job.batchId}`;

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

/**
 * Delay before reconnect attempt `attempt` (0-based): `min * 2^attempt` capped at `max`, then
 * "equal jitter" (half fixed, half random), which keeps a floor under the delay.
 */
export function backoffDelay(attempt: number, min: number, max: number, random: number): number {
  const capped = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.round(capped / 2 + (capped / 2) * random);
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
  const { thing } = config;
  const jobsTopic = topics.jobs(thing);
  const statusTopic = topics.status(thing);
  const resultsTopic = topics.results(thing);
  const rng = createRng(seedOf(`${thing}:${process.pid}`));

  const queue: JobMessage[] = [];
  const active = new Set<string>();
  const finished = new Map<string, Outcome>();
  const pending = new Map<string, { result: ResultMessage; inFlight: boolean }>();
  let running: JobMessage | undefined;
  let progress: { done: number; total: number } | undefined;
  let lastProgressAt = 0;
  let stopping = false;
  let stopped: Promise<void> | undefined;
  let pumping: Promise<void> | undefined;
  let attempt = 0;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let resolveReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    resolveReady = resolve;
  });

  const status = (
    state: StatusMessage['state'],
    extra: Partial<StatusMessage> = {},
  ): StatusMessage => ({
    v: PROTOCOL_VERSION,
    type: 'status',
    thing,
    state,
    at: clock.now().toISOString(),
    queue: queue.length,
    ...extra,
  });

  const options: IClientOptions = {
    clientId: thing,
    clean: false,
    protocolVersion: 4,
    keepalive: config.keepaliveSeconds,
    connectTimeout: 15_000,
    // Reconnection is driven by scheduleReconnect (exponential backoff); mqtt.js's own is fixed.
    reconnectPeriod: 0,
    // Progress and heartbeats are only worth sending live; QoS 1 messages are still queued.
    queueQoSZero: false,
    will: {
      topic: statusTopic,
      payload: Buffer.from(JSON.stringify(status('offline', { queue: 0 }))),
      qos: 1,
      retain: true,
    },
    ...(tls.cert ? { cert: tls.cert } : {}),
    ...(tls.key ? { key: tls.key } : {}),
    ...(tls.ca ? { ca: tls.ca } : {}),
    rejectUnauthorized: true,
  };
  const client: MqttClient = mqtt.connect(config.broker, options);

  const publish = (
    topic: string,
    message: unknown,
    opts: { qos: 0 | 1; retain?: boolean },
    done?: (error?: Error) => void,
  ): void => {
    if (opts.qos === 0 && !client.connected) {
      done?.();
      return;
    }
    client.publish(
      topic,
      JSON.stringify(message),
      { qos: opts.qos, retain: opts.retain ?? false },
      (error) => {
        if (error) logger.warn('publish failed', { topic, error: error.message });
        done?.(error ?? undefined);
      },
    );
  };

  const publishStatus = (
    state: StatusMessage['state'],
    extra: Partial<StatusMessage> = {},
    opts: { qos: 0 | 1; retain?: boolean } = { qos: 1 },
    done?: (error?: Error) => void,
  ) => publish(statusTopic, status(state, extra), opts, done);

  const currentState = (): 'busy' | 'idle' => (running ? 'busy' : 'idle');

  const publishState = () =>
    publishStatus(
      currentState(),
      running ? { batchId: running.batchId, ...(progress ? { progress } : {}) } : {},
      { qos: 1, retain: true },
    );

  const publishError = (code: StatusErrorCode, message: string, batchId?: string) => {
    logger.warn('job error', { code, message, batchId });
    publishStatus('error', {
      ...(batchId === undefined ? {} : { batchId }),
      error: { code, message, ...(batchId === undefined ? {} : { batchId }) },
    });
  };

  const stateFile = (result: ResultMessage) =>
    config.stateDir
      ? join(config.stateDir, `${encodeURIComponent(`${result.runId}__${result.batchId}`)}.json`)
      : undefined;

  /** Write-then-rename, so a crash mid-write never leaves a half result to re-send. */
  const saveResult = (result: ResultMessage) => {
    const file = stateFile(result);
    if (!file) return;
    try {
      writeFileSync(`${file}.tmp`, JSON.stringify(result));
      renameSync(`${file}.tmp`, file);
    } catch (error) {
      logger.warn('cannot keep the result on disk', { file, error: (error as Error).message });
    }
  };

  const forgetResult = (result: ResultMessage) => {
    const file = stateFile(result);
    if (file) rmSync(file, { force: true });
  };

  const publishResult = (result: ResultMessage) => {
    const key = batchKey(result);
    const entry = { result, inFlight: true };
    pending.set(key, entry);
    publish(resultsTopic, result, { qos: 1 }, (error) => {
      if (error) {
        entry.inFlight = false;
      } else if (pending.get(key) === entry) {
        pending.delete(key);
        forgetResult(result);
        logger.info('result acknowledged', { batchId: result.batchId });
      }
    });
  };

  /** Results a previous process measured but could not deliver: sent on the first connect. */
  const loadSavedResults = (dir: string) => {
    mkdirSync(dir, { recursive: true });
    for (const name of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
      let raw: unknown;
      try {
        raw = JSON.parse(readFileSync(join(dir, name), 'utf8'));
      } catch {
        raw = undefined;
      }
      const parsed = resultMessage.safeParse(raw);
      if (!parsed.success || parsed.data.thing !== thing) {
        logger.warn('ignoring a saved file that is not a result of this thing', { file: name });
        continue;
      }
      const key = batchKey(parsed.data);
      remember(key, { result: parsed.data });
      pending.set(key, { result: parsed.data, inFlight: false });
      logger.info('result from a previous run will be sent', { batchId: parsed.data.batchId });
    }
  };

  const remember = (key: string, outcome: Outcome) => {
    finished.set(key, outcome);
    if (finished.size > rememberBatches) {
      const oldest = finished.keys().next().value;
      if (oldest !== undefined) finished.delete(oldest);
    }
  };

  const execute = async (job: JobMessage) => {
    const key = batchKey(job);
    running = job;
    progress = { done: 0, total: job.samples.length };
    publishState();
    logger.info('job started', {
      runId: job.runId,
      batchId: job.batchId,
      samples: job.samples.length,
    });
    let outcome: Outcome;
    try {
      const result = await run(job, {
        thing,
        executionProvider: config.executionProvider,
        shouldStop: () => stopping,
        onProgress: (done, total) => {
          progress = { done, total };
          const now = Date.now();
          if (done < total && now - lastProgressAt < config.progressIntervalMs) return;
          lastProgressAt = now;
          publishStatus('busy', { batchId: job.batchId, progress }, { qos: 0 });
        },
      });
      // The result is checked here too: a device must never send what the platform rejects.
      outcome = { result: resultMessage.parse(result) };
    } catch (error) {
      const message = (error as Error).message;
      const code: StatusErrorCode =
        error instanceof JobStoppedError || stopping
          ? 'STOPPED'
          : error instanceof ValidationError
            ? 'INVALID_JOB'
            : 'JOB_FAILED';
      outcome = { error: { code, message } };
    }
    running = undefined;
    progress = undefined;
    active.delete(key);
    if (outcome.result) {
      remember(key, outcome);
      saveResult(outcome.result);
      logger.info('job finished', {
        batchId: job.batchId,
        unstable: outcome.result.quality.unstable,
      });
      publishResult(outcome.result);
    } else if (outcome.error) {
      // A stopped job was never finished: a later delivery must run it, not replay the stop.
      if (outcome.error.code !== 'STOPPED') remember(key, outcome);
      publishError(outcome.error.code, outcome.error.message, job.batchId);
    }
  };

  const pump = async () => {
    while (!stopping && queue.length > 0) {
      await execute(queue.shift() as JobMessage);
    }
    if (!stopping) publishState();
  };

  const startPump = () => {
    if (pumping) return;
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

  const onJob = (payload: Buffer) => {
    const decoded = decodeJob(payload);
    if (stopping) {
      const batchId = 'job' in decoded ? decoded.job.batchId : decoded.batchId;
      publishError('STOPPED', 'the device is stopping; send the job again later', batchId);
      return;
    }
    if (!('job' in decoded)) {
      publishError(decoded.code, decoded.message, decoded.batchId);
      return;
    }
    const { job } = decoded;
    const key = batchKey(job);
    const done = finished.get(key);
    if (done) {
      logger.info('duplicate of a finished job: reporting again', { batchId: job.batchId });
      if (done.result) publishResult(done.result);
      else if (done.error) publishError(done.error.code, done.error.message, job.batchId);
      return;
    }
    if (active.has(key)) {
      logger.info('duplicate of a queued or running job: ignored', { batchId: job.batchId });
      return;
    }
    if (queue.length >= config.queueLimit && (running !== undefined || pumping !== undefined)) {
      publishError(
        'QUEUE_FULL',
        `queue full (${config.queueLimit} jobs waiting); send it again later or raise queueLimit`,
        job.batchId,
      );
      return;
    }
    active.add(key);
    queue.push(job);
    logger.info('job queued', { batchId: job.batchId, queue: queue.length });
    startPump();
  };

  const scheduleReconnect = () => {
    if (stopping || reconnectTimer) return;
    const delay = backoffDelay(attempt, config.reconnectMinMs, config.reconnectMaxMs, rng.next());
    attempt++;
    logger.info('reconnecting', { attempt, delayMs: delay });
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      if (stopping || client.connected) return;
      // Keep the stores: they hold QoS 1 messages (results) not yet acknowledged.
      client.reconnect({
        incomingStore: client.incomingStore,
        outgoingStore: client.outgoingStore,
      });
    }, delay);
  };

  if (config.stateDir) loadSavedResults(config.stateDir);

  client.on('connect', (connack) => {
    attempt = 0;
    logger.info('connected', {
      broker: config.broker,
      thing,
      sessionPresent: connack.sessionPresent,
    });
    // Subscribing on every connect is harmless and covers brokers that lost the session.
    client.subscribe(jobsTopic, { qos: 1 }, (error, granted) => {
      const refused = granted?.some((g) => g.qos === 128);
      if (error || refused) {
        logger.error('cannot subscribe to the jobs topic; check the device policy/ACL', {
          topic: jobsTopic,
          error: error?.message,
        });
        return;
      }
      resolveReady();
    });
    publishStatus('online', { device: facts(thing) }, { qos: 1, retain: true });
    publishState();
    for (const entry of pending.values()) {
      if (!entry.inFlight) publishResult(entry.result);
    }
  });
  client.on('reconnect', () => logger.debug('connecting', { broker: config.broker }));
  client.on('close', () => {
    logger.info('connection closed', { thing });
    scheduleReconnect();
  });
  client.on('offline', () => logger.info('offline', { thing }));
  client.on('disconnect', (packet) =>
    logger.warn('broker disconnected us', { reason: packet.reasonCode }),
  );
  client.on('error', (error) => logger.warn('mqtt error', { error: error.message }));
  client.on('end', () => logger.info('client ended', { thing }));
  client.on('message', (topic, payload) => {
    if (topic === jobsTopic) onJob(payload);
  });

  const heartbeat = setInterval(() => {
    publishStatus(
      currentState(),
      running ? { batchId: running.batchId, ...(progress ? { progress } : {}) } : {},
      { qos: 0 },
    );
  }, config.heartbeatSeconds * 1000);
  heartbeat.unref();

  const withTimeout = (promise: Promise<unknown>, ms: number) =>
    Promise.race([promise, new Promise((resolve) => setTimeout(resolve, ms).unref())]);

  const stop = async () => {
    stopping = true;
    clearInterval(heartbeat);
    if (reconnectTimer) clearTimeout(reconnectTimer);
    reconnectTimer = undefined;
    for (const job of queue.splice(0)) {
      active.delete(batchKey(job));
      publishError('STOPPED', 'the device stopped before running this job', job.batchId);
    }
    await pumping;
    const flushed = (async () => {
      while (pending.size > 0 && client.connected) await new Promise((r) => setTimeout(r, 20));
      if (client.connected) {
        await new Promise<void>((resolve) =>
          publishStatus('offline', { queue: 0 }, { qos: 1, retain: true }, () => resolve()),
        );
      }
    })();
    await withTimeout(flushed, flushTimeoutMs);
    if (pending.size > 0) {
      logger.warn('stopping with unacknowledged results', { batches: pending.size });
    }
    await withTimeout(client.endAsync(false), flushTimeoutMs);
    if (!client.disconnected) await client.endAsync(true);
    logger.info('stopped', { thing });
  };

  return {
    thing,
    ready,
    get connected() {
      return client.connected;
    },
    get queued() {
      return queue.length;
    },
    get running() {
      return running?.batchId;
    },
    get unacknowledged() {
      return pending.size;
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
