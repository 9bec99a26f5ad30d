/**
 * The daemon's status publisher: lifecycle states, progress and heartbeats on
 * `esm/devices/{thing}/status` (docs/protocol.md, "status").
 *
 * Progress is throttled because every message is billed on AWS IoT Core (per million messages,
 * metered in 5 KB blocks): one progress message a second from 100 busy devices is 8.64 M
 * messages a day, one every 5 s (the default) 1.73 M. A job's first and last progress and every
 * state change are always sent, so the platform never misses a start or an end.
 */
import type { Clock, Logger } from '../core/ports.ts';
import { silentLogger, systemClock } from '../core/ports.ts';
import {
  type DeviceFacts,
  PROTOCOL_VERSION,
  type StatusErrorCode,
  type StatusMessage,
} from '../core/schemas/protocol.ts';

/** What the device is doing now, for state messages and heartbeats. */
export interface Activity {
  /** The running job's batch id; undefined when idle. */
  batchId?: string;
  progress?: { done: number; total: number };
  /** Jobs waiting behind the running one. */
  queue: number;
}

export interface PublishOptions {
  qos: 0 | 1;
  retain?: boolean;
}

export interface StatusPublisherOptions {
  thing: string;
  /** Publish one status message; resolves when sent (QoS 1: acknowledged). */
  publish: (message: StatusMessage, options: PublishOptions) => Promise<void>;
  /** The current activity, read for every state message and heartbeat. */
  activity: () => Activity;
  /** Seconds between heartbeats. @default 60 */
  heartbeatSeconds?: number;
  /** Fewest milliseconds between two progress messages. @default 5000 */
  progressIntervalMs?: number;
  /** @default systemClock */
  clock?: Clock;
  /** @default silentLogger */
  logger?: Logger;
}

export interface StatusPublisher {
  /** A status message stamped now (also the MQTT last will, built before connecting). */
  message(state: StatusMessage['state'], extra?: Partial<StatusMessage>): StatusMessage;
  /** `online` with the device facts (QoS 1, retained). */
  online(device: DeviceFacts): Promise<void>;
  /** The current state, `busy` with the job or `idle` (QoS 1, retained). */
  state(): Promise<void>;
  /** Progress of the running job (QoS 0), throttled; returns whether it was sent. */
  progress(batchId: string, done: number, total: number): boolean;
  /** An error about a job (QoS 1); resolves when the broker acknowledged it. */
  error(code: StatusErrorCode, message: string, batchId?: string): Promise<void>;
  /** `offline` on a clean stop (QoS 1, retained). */
  offline(): Promise<void>;
  /** Start the heartbeat timer. */
  start(): void;
  /** Stop the heartbeat timer. */
  stop(): void;
}

/** Create the status publisher; see `StatusPublisher`. */
export function createStatusPublisher(options: StatusPublisherOptions): StatusPublisher {
  const {
    thing,
    publish,
    activity,
    heartbeatSeconds = 60,
    progressIntervalMs = 5000,
    clock = systemClock,
    logger = silentLogger,
  } = options;
  let lastProgress = Number.NEGATIVE_INFINITY;
  let lastProgressBatch: string | undefined;
  let heartbeat: NodeJS.Timeout | undefined;

  const message = (
    state: StatusMessage['state'],
    extra: Partial<StatusMessage> = {},
  ): StatusMessage => ({
    v: PROTOCOL_VERSION,
    type: 'status',
    thing,
    state,
    at: clock.now().toISOString(),
    queue: activity().queue,
    ...extra,
  });

  const current = (): StatusMessage => {
    const { batchId, progress } = activity();
    return batchId === undefined
      ? message('idle')
      : message('busy', { batchId, ...(progress ? { progress } : {}) });
  };

  // Status messages are best effort: a failed one is logged, the next state or beat follows.
  const send = (status: StatusMessage, opts: PublishOptions) =>
    publish(status, opts).catch((error: unknown) => {
      logger.debug('status not sent', { state: status.state, error: (error as Error).message });
    });

  return {
    message,
    online: (device) => send(message('online', { device }), { qos: 1, retain: true }),
    state: () => send(current(), { qos: 1, retain: true }),
    progress(batchId, done, total) {
      const now = clock.now().getTime();
      const first = batchId !== lastProgressBatch;
      if (!first && done < total && now - lastProgress < progressIntervalMs) return false;
      lastProgress = now;
      lastProgressBatch = batchId;
      void send(message('busy', { batchId, progress: { done, total } }), { qos: 0 });
      return true;
    },
    error(code, text, batchId) {
      logger.warn('job error', { code, message: text, batchId });
      const about = batchId === undefined ? {} : { batchId };
      return publish(message('error', { ...about, error: { code, message: text, ...about } }), {
        qos: 1,
      });
    },
    offline: () => send(message('offline', { queue: 0 }), { qos: 1, retain: true }),
    start() {
      if (heartbeat) return;
      heartbeat = setInterval(() => void send(current(), { qos: 0 }), heartbeatSeconds * 1000);
      heartbeat.unref();
    },
    stop() {
      clearInterval(heartbeat);
      heartbeat = undefined;
    },
  };
}
