/**
 * `MeasurementDispatcher` over MQTT (any broker: the embedded aedes one, mosquitto, IoT Core
 * with a platform certificate). Jobs go to `esm/devices/{thing}/jobs` with QoS 1; results and
 * status messages of every device are followed through two wildcard subscriptions made before
 * the first job is sent, so a fast device's result cannot be missed.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { EsmError, MeasurementTimeoutError } from '../core/errors.ts';
import type { Logger, MeasurementDispatcher } from '../core/ports.ts';
import { silentLogger } from '../core/ports.ts';
import {
  type JobMessage,
  jobMessage,
  type ResultMessage,
  resultMessage,
  type StatusMessage,
  statusMessage,
  topics,
} from '../core/schemas/protocol.ts';

/** A device refused or failed a batch; `code` is one of `statusErrorCodes` (docs/protocol.md). */
export class DeviceJobError extends EsmError {
  constructor(
    readonly thing: string,
    readonly batchId: string,
    readonly code: string,
    message: string,
  ) {
    super(`device ${thing} reported ${code} for batch ${batchId}: ${message}`);
  }
}

/** The broker could not be reached (wrong URL, broker down, TLS or authorisation refused). */
export class BrokerConnectionError extends EsmError {}

export interface MqttDispatcherOptions {
  /** Broker to connect to, e.g. `mqtt://127.0.0.1:1883`. Give this or `client`. */
  brokerUrl?: string;
  /** An already connected client to use; `close()` leaves it open. */
  client?: MqttClient;
  /** Extra mqtt.js options for `brokerUrl` (TLS key/cert/ca, clientId). @default random id */
  mqttOptions?: IClientOptions;
  /** Called with every valid status message of any device (progress, heartbeats, errors). */
  onStatus?: (status: StatusMessage) => void;
  /** Results and errors kept for `awaitResult` calls that come after them. @default 1000 */
  bufferLimit?: number;
  /** How long `ready` waits for the first connection before rejecting. @default 30000 */
  connectTimeoutMs?: number;
  /** @default silentLogger */
  logger?: Logger;
}

export interface MqttDispatcher extends MeasurementDispatcher {
  /** Resolves once the result and status subscriptions are in place. */
  readonly ready: Promise<void>;
  /** The latest status message of `thing`, if one was seen. */
  lastStatus(thing: string): StatusMessage | undefined;
  close(): Promise<void>;
}

type Settled = { result: ResultMessage } | { error: DeviceJobError };

const keyOf = (thing: string, batchId: string) => `${thing}\u0000${batchId}`;

/** Connect (or adopt a client) and subscribe; see `MqttDispatcher`. */
export function createMqttDispatcher(options: MqttDispatcherOptions): MqttDispatcher {
  const {
    onStatus,
    bufferLimit = 1000,
    connectTimeoutMs = 30_000,
    logger = silentLogger,
  } = options;
  if (!options.client && !options.brokerUrl) {
    throw new EsmError('createMqttDispatcher needs brokerUrl or client');
  }
  const owned = !options.client;
  const client =
    options.client ??
    mqtt.connect(options.brokerUrl as string, {
      clientId: `esm-platform-${process.pid}-${Date.now().toString(36)}`,
      protocolVersion: 4,
      reconnectPeriod: 1000,
      ...options.mqttOptions,
    });
  const settled = new Map<string, Settled>();
  const waiters = new Map<string, (outcome: Settled) => void>();
  const statuses = new Map<string, StatusMessage>();
  const resultsFilter = topics.results('+');
  const statusFilter = topics.status('+');

  const settle = (thing: string, batchId: string, outcome: Settled) => {
    const key = keyOf(thing, batchId);
    const waiter = waiters.get(key);
    if (waiter) {
      waiters.delete(key);
      waiter(outcome);
      return;
    }
    // A duplicate delivery must not replace a result with an error or vice versa.
    if (settled.has(key)) return;
    settled.set(key, outcome);
    if (settled.size > bufferLimit) {
      const oldest = settled.keys().next().value;
      if (oldest !== undefined) settled.delete(oldest);
    }
  };

  const thingOf = (topic: string) => topic.split('/')[2] ?? '';

  client.on('message', (topic, payload) => {
    const isResult = topic.endsWith('/results');
    if (!isResult && !topic.endsWith('/status')) return;
    let raw: unknown;
    try {
      raw = JSON.parse(payload.toString());
    } catch {
      logger.warn('dropped a message that is not JSON', { topic });
      return;
    }
    const thing = thingOf(topic);
    if (isResult) {
      const parsed = resultMessage.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        logger.warn('dropped an invalid result', {
          topic,
          field: issue?.path.join('.'),
          error: issue?.message,
        });
        return;
      }
      settle(thing, parsed.data.batchId, { result: parsed.data });
      return;
    }
    const parsed = statusMessage.safeParse(raw);
    if (!parsed.success) {
      logger.warn('dropped an invalid status', { topic });
      return;
    }
    const status = parsed.data;
    statuses.set(thing, status);
    onStatus?.(status);
    const batchId = status.error?.batchId ?? status.batchId;
    if (status.state === 'error' && status.error && batchId !== undefined) {
      settle(thing, batchId, {
        error: new DeviceJobError(thing, batchId, status.error.code, status.error.message),
      });
    }
  });

  const subscribe = () =>
    client.subscribeAsync({ [resultsFilter]: { qos: 1 }, [statusFilter]: { qos: 1 } });
  const ready = (async () => {
    if (!client.connected) {
      let lastError: Error | undefined;
      const onError = (error: Error) => {
        lastError = error;
      };
      client.on('error', onError);
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => {
            const why = lastError ? `: ${lastError.message}` : '';
            reject(
              new BrokerConnectionError(
                `cannot connect to the MQTT broker ${options.brokerUrl ?? ''} within ${connectTimeoutMs} ms${why}; check the URL, that the broker runs, and the TLS files`,
              ),
            );
          }, connectTimeoutMs);
          client.once('connect', () => {
            clearTimeout(timer);
            resolve();
          });
        });
      } finally {
        client.off('error', onError);
      }
    }
    await subscribe();
  })();
  ready.catch(() => {});

  return {
    ready,
    lastStatus: (thing) => statuses.get(thing),

    async dispatch(thing: string, job: JobMessage): Promise<void> {
      const checked = jobMessage.parse(job);
      await ready;
      // A stale outcome (e.g. QUEUE_FULL of an earlier try) must not answer this dispatch.
      settled.delete(keyOf(thing, checked.batchId));
      await client.publishAsync(topics.jobs(thing), JSON.stringify(checked), { qos: 1 });
      logger.info('job dispatched', { thing, batchId: checked.batchId });
    },

    awaitResult(thing: string, batchId: string, timeoutMs: number): Promise<ResultMessage> {
      const key = keyOf(thing, batchId);
      const unwrap = (outcome: Settled): ResultMessage => {
        if ('error' in outcome) throw outcome.error;
        return outcome.result;
      };
      const early = settled.get(key);
      if (early) {
        settled.delete(key);
        return Promise.resolve().then(() => unwrap(early));
      }
      return new Promise<ResultMessage>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(key);
          reject(
            new MeasurementTimeoutError(
              `device ${thing} sent no result for batch ${batchId} within ${timeoutMs} ms; ` +
                `check that esm-device runs with --thing ${thing} on the same broker`,
            ),
          );
        }, timeoutMs);
        waiters.set(key, (outcome) => {
          clearTimeout(timer);
          try {
            resolve(unwrap(outcome));
          } catch (error) {
            reject(error);
          }
        });
      });
    },

    async close(): Promise<void> {
      if (owned) {
        await client.endAsync();
      } else {
        await client.unsubscribeAsync([resultsFilter, statusFilter]).catch(() => {});
      }
    },
  };
}
