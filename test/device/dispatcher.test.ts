/**
 * The MQTT `MeasurementDispatcher` and the embedded broker, with a real daemon measuring real
 * ONNX models: results, device errors and timeouts as the ESM loop sees them; the embedded
 * broker's mutual TLS and per-device isolation.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeasurementTimeoutError } from '../../core/errors.ts';
import { type StatusMessage, topics } from '../../core/schemas/protocol.ts';
import { type Daemon, startDaemon } from '../../device-client/daemon.ts';
import { type Broker, startBroker } from '../../local/mqtt-broker.ts';
import {
  BrokerConnectionError,
  createMqttDispatcher,
  DeviceJobError,
  type MqttDispatcher,
} from '../../local/mqtt-dispatcher.ts';
import { makePki, type Pki } from '../support/mosquitto.ts';
import { mbv3, recorder, tinyJob } from '../support/mqtt.ts';
import { commandWorks } from '../support/services.ts';

describe('MQTT dispatcher with a real daemon', () => {
  let broker: Broker;
  let daemon: Daemon;
  let dispatcher: MqttDispatcher;
  const statuses: StatusMessage[] = [];

  beforeAll(async () => {
    broker = await startBroker();
    daemon = await startDaemon({ broker: broker.url, thing: 'disp-1', progressIntervalMs: 0 });
    dispatcher = createMqttDispatcher({
      brokerUrl: broker.url,
      onStatus: (s) => statuses.push(s),
    });
    await dispatcher.ready;
  });

  afterAll(async () => {
    await daemon.stop();
    await dispatcher.close();
    await broker.close();
  });

  it('dispatches a job and resolves with its validated result', async () => {
    await dispatcher.dispatch('disp-1', tinyJob('d-1', { samples: 2 }));
    const result = await dispatcher.awaitResult('disp-1', 'd-1', 60_000);

    expect(result.batchId).toBe('d-1');
    expect(result.samples).toHaveLength(2);
    expect(result.samples.every((s) => s.stats.median_ms > 0)).toBe(true);
    const progress = statuses.filter((s) => s.batchId === 'd-1' && s.progress);
    expect(progress.map((s) => s.progress?.done)).toContain(2);
  });

  it('keeps a result that arrives before awaitResult is called', async () => {
    const watcher = await recorder(broker.url, [topics.results('disp-1')]);
    await dispatcher.dispatch('disp-1', tinyJob('d-early'));
    await watcher.next((m) => m.text.includes('"d-early"'), 60_000);
    await watcher.close();

    const result = await dispatcher.awaitResult('disp-1', 'd-early', 1000);
    expect(result.samples[0]?.id).toBe('d-early-s0');
  });

  it("rejects with the device's error when it refuses the job", async () => {
    const job = tinyJob('d-bad');
    (job.samples[0] as { arch: Record<string, unknown> }).arch = { ...mbv3(4, 3, 2, 128) };
    await dispatcher.dispatch('disp-1', job);
    const failure = await dispatcher.awaitResult('disp-1', 'd-bad', 30_000).catch((e) => e);

    expect(failure).toBeInstanceOf(DeviceJobError);
    expect(failure.code).toBe('INVALID_JOB');
    expect(failure.message).toContain('samples[0].arch');
  });

  it('times out with MeasurementTimeoutError when no device answers', async () => {
    await dispatcher.dispatch('nobody-home', tinyJob('d-lost'));
    await expect(dispatcher.awaitResult('nobody-home', 'd-lost', 300)).rejects.toBeInstanceOf(
      MeasurementTimeoutError,
    );
  });

  it('validates a job before sending it', async () => {
    const job = { ...tinyJob('d-invalid'), samples: [] };
    await expect(dispatcher.dispatch('disp-1', job)).rejects.toThrow(/samples/);
  });
});

describe('MQTT dispatcher without a broker', () => {
  it('rejects ready with BrokerConnectionError naming the broker', async () => {
    const gone = await startBroker();
    await gone.close();
    const dispatcher = createMqttDispatcher({ brokerUrl: gone.url, connectTimeoutMs: 300 });
    const failure = await dispatcher.ready.catch((e) => e);
    await dispatcher.close();

    expect(failure).toBeInstanceOf(BrokerConnectionError);
    expect(failure.message).toContain(gone.url);
  });
});

const haveOpenssl = commandWorks('openssl', ['version']);

describe.skipIf(!haveOpenssl)('embedded broker with TLS client certificates', () => {
  let pki: Pki;
  let broker: Broker;

  beforeAll(async () => {
    pki = makePki(['platform', 'tls-a', 'tls-b']);
    broker = await startBroker({
      tls: { key: pki.server.key, cert: pki.server.cert, ca: pki.ca },
      isolateDevices: true,
      platformIds: ['platform'],
    });
  });

  afterAll(async () => {
    await broker.close();
  });

  const tlsOf = (name: string) => ({
    cert: pki.clients[name]?.cert,
    key: pki.clients[name]?.key,
    ca: pki.ca,
  });

  it('serves a daemon over mqtts and isolates devices by certificate name', async () => {
    expect(broker.url).toMatch(/^mqtts:/);
    const daemon = await startDaemon(
      { broker: broker.url, thing: 'tls-a' },
      { tls: { cert: pki.clients['tls-a']?.cert, key: pki.clients['tls-a']?.key, ca: pki.ca } },
    );
    const dispatcher = createMqttDispatcher({
      brokerUrl: broker.url,
      mqttOptions: tlsOf('platform'),
    });
    const other = await recorder(broker.url, [], tlsOf('tls-b'));
    try {
      await dispatcher.dispatch('tls-a', tinyJob('t-1'));
      expect((await dispatcher.awaitResult('tls-a', 't-1', 60_000)).thing).toBe('tls-a');

      // The broker answers with a SUBACK failure (0x80), which mqtt.js turns into an error.
      await expect(other.client.subscribeAsync(topics.jobs('tls-a'), { qos: 1 })).rejects.toThrow(
        /Subscribe error/,
      );
      const own = await other.client.subscribeAsync(topics.jobs('tls-b'), { qos: 1 });
      expect(own[0]?.qos).toBe(1);
    } finally {
      await other.close();
      await dispatcher.close();
      await daemon.stop();
    }
  });

  it('refuses a client without a certificate', async () => {
    const client = mqtt.connect(broker.url, {
      ca: pki.ca,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    const outcome = await new Promise<string>((resolve) => {
      client.once('connect', () => resolve('connected'));
      client.once('error', (error) => resolve(`error: ${error.message}`));
      client.once('close', () => resolve('closed'));
    });
    client.end(true);
    expect(outcome).not.toBe('connected');
  });
});
