/**
 * Publishing measurement jobs to a device's jobs topic. The dispatch handler only sees the
 * `JobPublisher` interface: in AWS it is IoT Core's data plane, in local mode and the
 * end-to-end test an MQTT broker (`ESM_MQTT_URL`), so the workflow does not care how a job
 * travels.
 */
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import mqtt from 'mqtt';
import { type JobMessage, topics } from '../../core/schemas/protocol.ts';

export interface JobPublisher {
  publish(thing: string, job: JobMessage): Promise<void>;
}

export interface IotPublisherOptions {
  /**
   * The account's IoT data endpoint (`xxxx-ats.iot.REGION.amazonaws.com`, from
   * `aws iot describe-endpoint --endpoint-type iot:Data-ATS`). Ignored when
   * `AWS_ENDPOINT_URL` is set (emulators serve every service on one URL).
   */
  readonly endpoint?: string;
  /** @default a client built from `endpoint` */
  readonly client?: IoTDataPlaneClient;
}

function iotEndpoint(endpoint: string | undefined): string | undefined {
  if (process.env.AWS_ENDPOINT_URL) return undefined;
  if (endpoint === undefined) return undefined;
  return endpoint.startsWith('https://') ? endpoint : `https://${endpoint}`;
}

/** Publishes with QoS 1: the device may see a job twice, and results are idempotent. */
export function createIotPublisher(options: IotPublisherOptions = {}): JobPublisher {
  const client =
    options.client ?? new IoTDataPlaneClient({ endpoint: iotEndpoint(options.endpoint) });
  return {
    async publish(thing, job) {
      await client.send(
        new PublishCommand({
          topic: topics.jobs(thing),
          qos: 1,
          contentType: 'application/json',
          payload: new TextEncoder().encode(JSON.stringify(job)),
        }),
      );
    },
  };
}

export interface MqttPublisherOptions {
  /** Broker URL, e.g. `mqtt://127.0.0.1:1883`. */
  readonly url: string;
  /** @default `esm-dispatch-<random>` */
  readonly clientId?: string;
  /** @default 10000 */
  readonly connectTimeoutMs?: number;
}

/** A publisher over a plain MQTT connection, opened on first use and kept for reuse. */
export function createMqttPublisher(
  options: MqttPublisherOptions,
): JobPublisher & { close(): Promise<void> } {
  let connection: Promise<mqtt.MqttClient> | undefined;
  const connect = () => {
    connection ??= mqtt.connectAsync(options.url, {
      clientId: options.clientId ?? `esm-dispatch-${Math.random().toString(36).slice(2, 10)}`,
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      reconnectPeriod: 1000,
    });
    return connection;
  };
  return {
    async publish(thing, job) {
      const client = await connect();
      await client.publishAsync(topics.jobs(thing), JSON.stringify(job), { qos: 1 });
    },
    async close() {
      if (connection === undefined) return;
      const client = await connection;
      connection = undefined;
      await client.endAsync();
    },
  };
}

/** Publishes every job through each publisher in turn (e.g. IoT Core and a local broker). */
export function fanOutPublisher(...publishers: readonly JobPublisher[]): JobPublisher {
  return {
    async publish(thing, job) {
      for (const publisher of publishers) await publisher.publish(thing, job);
    },
  };
}
