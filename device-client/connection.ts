/**
 * The daemon's MQTT connection lifecycle, after aws-iot-device-sdk-js-v2's
 * `samples/node/mqtt/mqtt5_x509`: every lifecycle event is handled and reported, reconnection
 * uses exponential backoff with jitter (so a fleet does not reconnect in lockstep after a
 * broker outage), and `close()` stops in order: no new attempt, a clean DISCONNECT, then a
 * forced close if the broker does not answer.
 *
 * The session is persistent (`clean: false`): the broker keeps the subscription and queues QoS 1
 * jobs while the device is away. Incoming messages go through mqtt.js's `handleMessage`, whose
 * callback sends the PUBACK: `onMessage` runs first, so a job is acknowledged only after the
 * daemon has journaled it.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../core/ports.ts';
import { silentLogger } from '../core/ports.ts';
import type { TlsFiles } from './config.ts';

/** Lifecycle events, named as in the AWS IoT device SDK where one matches. */
export type ConnectionEvent =
  | { type: 'attemptingConnect' }
  | { type: 'connectionSuccess'; sessionPresent: boolean }
  | { type: 'subscribed' }
  | { type: 'subscribeFailure'; message: string }
  | { type: 'disconnection' }
  | { type: 'brokerDisconnect'; reasonCode: number | undefined }
  | { type: 'error'; message: string }
  | { type: 'reconnectScheduled'; attempt: number; delayMs: number }
  | { type: 'stopped' };

export interface ConnectionOptions {
  /** `mqtt://host:port` or `mqtts://host:port`. */
  broker: string;
  /** MQTT client id (the thing name). */
  clientId: string;
  /** Topics to subscribe to (QoS 1) after every connect. */
  subscriptions: readonly string[];
  /**
   * Handle one incoming message. Its PUBACK is sent when this resolves; when it rejects no
   * PUBACK is sent (mqtt.js skips it on a callback error) and the broker delivers the message
   * again after the next reconnect. Messages are handled one at a time, so keep it short.
   */
  onMessage: (topic: string, payload: Buffer) => Promise<void> | void;
  /** Called after every successful connect, before the subscriptions are confirmed. */
  onConnect?: (info: { sessionPresent: boolean }) => void;
  /** Every lifecycle event, for logs, metrics and tests. */
  onEvent?: (event: ConnectionEvent) => void;
  /** Last will: published by the broker when the connection dies without a DISCONNECT. */
  will?: { topic: string; payload: string };
  /** @default {} (plain TCP, or TLS with the system CAs for mqtts://) */
  tls?: TlsFiles;
  /** @default 30 */
  keepaliveSeconds?: number;
  /** First reconnect delay, doubled per failed attempt. @default 1000 */
  reconnectMinMs?: number;
  /** @default 60000 */
  reconnectMaxMs?: number;
  /** Random numbers in [0, 1) for the jitter; seed it per device. @default Math.random */
  random?: () => number;
  /** @default silentLogger */
  logger?: Logger;
}

export interface Connection {
  /** Resolves when connected and subscribed the first time. */
  readonly ready: Promise<void>;
  /** True while connected. */
  readonly connected: boolean;
  /**
   * Publish `payload`. QoS 1 resolves on the PUBACK (mqtt.js keeps it across reconnects) and
   * rejects when it cannot be delivered; QoS 0 while offline is dropped (resolves, nothing sent).
   */
  publish(topic: string, payload: string, options: { qos: 0 | 1; retain?: boolean }): Promise<void>;
  /** Stop reconnecting, disconnect cleanly, force after `timeoutMs`. Idempotent. */
  close(timeoutMs?: number): Promise<void>;
}

/**
 * Delay before reconnect attempt `attempt` (0-based): `min * 2^attempt` capped at `max`, then
 * "equal jitter" (half fixed, half random), which keeps a floor under the delay.
 */
export function backoffDelay(attempt: number, min: number, max: number, random: number): number {
  const capped = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.round(capped / 2 + (capped / 2) * random);
}

const withTimeout = (promise: Promise<unknown>, ms: number) =>
  Promise.race([promise, new Promise((resolve) => setTimeout(resolve, ms).unref())]);

/** Connect and keep connected until `close()`; see `Connection`. */
export function createConnection(options: ConnectionOptions): Connection {
  const {
    broker,
    clientId,
    subscriptions,
    onMessage,
    onConnect,
    onEvent = () => {},
    will,
    tls = {},
    keepaliveSeconds = 30,
    reconnectMinMs = 1000,
    reconnectMaxMs = 60_000,
    random = Math.random,
    logger = silentLogger,
  } = options;
  let attempt = 0;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let closing = false;
  let closed: Promise<void> | undefined;
  let resolveReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    resolveReady = resolve;
  });

  const clientOptions: IClientOptions = {
    clientId,
    clean: false,
    protocolVersion: 4,
    keepalive: keepaliveSeconds,
    connectTimeout: 15_000,
    // Reconnection is ours (scheduleReconnect, with backoff); mqtt.js's own period is fixed.
    reconnectPeriod: 0,
    // Progress and heartbeats are only worth sending live; QoS 1 messages are still queued.
    queueQoSZero: false,
    ...(will
      ? { will: { topic: will.topic, payload: Buffer.from(will.payload), qos: 1, retain: true } }
      : {}),
    ...(tls.cert ? { cert: tls.cert } : {}),
    ...(tls.key ? { key: tls.key } : {}),
    ...(tls.ca ? { ca: tls.ca } : {}),
    rejectUnauthorized: true,
  };
  onEvent({ type: 'attemptingConnect' });
  const client: MqttClient = mqtt.connect(broker, clientOptions);

  client.handleMessage = (packet, callback) => {
    Promise.resolve()
      .then(() => onMessage(packet.topic, packet.payload as Buffer))
      .then(
        () => callback(),
        (error: unknown) => {
          logger.error('message not acknowledged: its handler failed', {
            topic: packet.topic,
            error: (error as Error).message,
          });
          callback(error as Error);
        },
      );
  };

  const scheduleReconnect = () => {
    if (closing || reconnectTimer) return;
    const delayMs = backoffDelay(attempt, reconnectMinMs, reconnectMaxMs, random());
    attempt++;
    logger.info('reconnecting', { attempt, delayMs });
    onEvent({ type: 'reconnectScheduled', attempt, delayMs });
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      if (closing || client.connected) return;
      onEvent({ type: 'attemptingConnect' });
      // Keep the stores: they hold QoS 1 messages (results) not yet acknowledged.
      client.reconnect({
        incomingStore: client.incomingStore,
        outgoingStore: client.outgoingStore,
      });
    }, delayMs);
  };

  client.on('connect', (connack) => {
    attempt = 0;
    logger.info('connected', { broker, clientId, sessionPresent: connack.sessionPresent });
    onEvent({ type: 'connectionSuccess', sessionPresent: connack.sessionPresent });
    onConnect?.({ sessionPresent: connack.sessionPresent });
    if (subscriptions.length === 0) {
      resolveReady();
      return;
    }
    // Subscribing on every connect is harmless and covers brokers that lost the session.
    client.subscribe([...subscriptions], { qos: 1 }, (error, granted) => {
      const refused = granted?.some((g) => g.qos === 128);
      if (error || refused) {
        const message = error?.message ?? 'subscription refused';
        logger.error('cannot subscribe; check the device policy/ACL', { subscriptions, message });
        onEvent({ type: 'subscribeFailure', message });
        return;
      }
      onEvent({ type: 'subscribed' });
      resolveReady();
    });
  });
  client.on('reconnect', () => logger.debug('connecting', { broker }));
  client.on('close', () => {
    logger.info('connection closed', { clientId });
    onEvent({ type: 'disconnection' });
    scheduleReconnect();
  });
  client.on('offline', () => logger.info('offline', { clientId }));
  client.on('disconnect', (packet) => {
    logger.warn('broker disconnected us', { reason: packet.reasonCode });
    onEvent({ type: 'brokerDisconnect', reasonCode: packet.reasonCode });
  });
  client.on('error', (error) => {
    logger.warn('mqtt error', { error: error.message });
    onEvent({ type: 'error', message: error.message });
  });
  client.on('end', () => {
    logger.info('client ended', { clientId });
    onEvent({ type: 'stopped' });
  });

  const close = async (timeoutMs: number) => {
    closing = true;
    if (reconnectTimer) clearTimeout(reconnectTimer);
    reconnectTimer = undefined;
    await withTimeout(client.endAsync(false), timeoutMs);
    if (!client.disconnected) await client.endAsync(true);
  };

  return {
    ready,
    get connected() {
      return client.connected;
    },
    publish(topic, payload, { qos, retain = false }) {
      if (closing) return Promise.reject(new Error(`connection closed: ${topic} not published`));
      if (qos === 0 && !client.connected) return Promise.resolve();
      return new Promise((resolve, reject) => {
        client.publish(topic, payload, { qos, retain }, (error) => {
          if (error) {
            logger.warn('publish failed', { topic, error: error.message });
            reject(error);
          } else resolve();
        });
      });
    },
    close(timeoutMs = 5000) {
      closed ??= close(timeoutMs);
      return closed;
    },
  };
}
