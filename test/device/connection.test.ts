/**
 * The MQTT connection lifecycle against the aedes broker over real TCP: PUBACK only after the
 * message handler, redelivery of an unacknowledged message, reconnect with backoff after the
 * broker drops the client, and an orderly close.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backoffDelay,
  type ConnectionEvent,
  createConnection,
} from '../../device-client/connection.ts';
import { type Broker, startBroker } from '../../local/mqtt-broker.ts';
import { type Recorder, recorder } from '../support/mqtt.ts';

let broker: Broker;
let platform: Recorder;
/** Message ids the broker got a PUBACK for, per client id. */
const acks: { client: string; payload: string }[] = [];

beforeAll(async () => {
  broker = await startBroker();
  broker.aedes.on('ack', (packet, client) => {
    if (packet && 'payload' in packet) {
      acks.push({ client: client.id, payload: String(packet.payload) });
    }
  });
  platform = await recorder(broker.url, []);
});

afterAll(async () => {
  await platform.close();
  await broker.close();
});

const until = async (condition: () => boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('device connection', () => {
  it('acknowledges a message only after its handler has finished', async () => {
    let finish: () => void = () => {};
    let started = false;
    const handled: string[] = [];
    const connection = createConnection({
      broker: broker.url,
      clientId: 'conn-ack',
      subscriptions: ['esm/devices/conn-ack/jobs'],
      onMessage: async (_topic, payload) => {
        started = true;
        await new Promise<void>((resolve) => {
          finish = resolve;
        });
        handled.push(payload.toString());
      },
    });
    await connection.ready;
    await platform.client.publishAsync('esm/devices/conn-ack/jobs', 'job-1', { qos: 1 });
    await until(() => started);
    // Give a wrongly early PUBACK time to reach the broker before checking there is none.
    await new Promise((r) => setTimeout(r, 200));
    expect(acks.filter((a) => a.client === 'conn-ack')).toEqual([]);

    finish();
    await until(() => acks.some((a) => a.client === 'conn-ack'));
    expect(handled).toEqual(['job-1']);
    await connection.close();
  });

  it('leaves a message unacknowledged when its handler fails, so the broker delivers it again', async () => {
    const seen: string[] = [];
    const events: ConnectionEvent['type'][] = [];
    const connection = createConnection({
      broker: broker.url,
      clientId: 'conn-redeliver',
      subscriptions: ['esm/devices/conn-redeliver/jobs'],
      reconnectMinMs: 20,
      reconnectMaxMs: 40,
      onEvent: (event) => events.push(event.type),
      onMessage: (_topic, payload) => {
        seen.push(payload.toString());
        if (seen.length === 1) throw new Error('disk full');
      },
    });
    await connection.ready;
    await platform.client.publishAsync('esm/devices/conn-redeliver/jobs', 'job-2', { qos: 1 });
    await until(() => seen.length === 1);

    // The broker drops the client (a network fault): the session keeps the unacknowledged job.
    const clients = (broker.aedes as unknown as { clients: Record<string, { close(): void }> })
      .clients;
    clients['conn-redeliver']?.close();
    await until(() => seen.length === 2);
    await until(() => acks.some((a) => a.client === 'conn-redeliver'));
    expect(seen).toEqual(['job-2', 'job-2']);
    expect(events).toEqual(
      expect.arrayContaining(['connectionSuccess', 'disconnection', 'reconnectScheduled']),
    );
    expect(events.filter((e) => e === 'connectionSuccess')).toHaveLength(2);
    await connection.close();
    expect(events.at(-1)).toBe('stopped');
    expect(connection.connected).toBe(false);
  });

  it('publishes QoS 1 with the PUBACK and drops QoS 0 while offline', async () => {
    const watcher = await recorder(broker.url, ['esm/devices/conn-pub/#']);
    const connection = createConnection({
      broker: broker.url,
      clientId: 'conn-pub',
      subscriptions: [],
      onMessage: () => {},
    });
    await connection.publish('esm/devices/conn-pub/status', 'offline-qos0', { qos: 0 });
    await connection.ready;
    await connection.publish('esm/devices/conn-pub/results', 'r1', { qos: 1 });
    await watcher.next((m) => m.text === 'r1');
    expect(watcher.messages.map((m) => m.text)).toEqual(['r1']);
    await connection.close();
    await expect(
      connection.publish('esm/devices/conn-pub/results', 'late', { qos: 1 }),
    ).rejects.toThrow();
    await watcher.close();
  });

  it('backs off exponentially up to the maximum, with a floor', () => {
    expect(backoffDelay(0, 1000, 60_000, 0)).toBe(500);
    expect(backoffDelay(1, 1000, 60_000, 0)).toBe(1000);
    expect(backoffDelay(3, 1000, 60_000, 1)).toBe(8000);
    expect(backoffDelay(40, 1000, 60_000, 1)).toBe(60_000);
  });
});
