/**
 * Helpers for tests that talk to a real broker: a recording MQTT client, tiny real jobs, and a
 * TCP proxy whose link can be cut to simulate a network outage.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { JobMessage } from '../../core/schemas/protocol.ts';

export interface Received {
  topic: string;
  text: string;
  json: unknown;
}

export interface Recorder {
  client: MqttClient;
  messages: Received[];
  /** Resolves with the first message (already received or future) that `match` accepts. */
  next(match: (m: Received) => boolean, timeoutMs?: number): Promise<Received>;
  close(): Promise<void>;
}

/** Connect a plain MQTT client that records everything on `filters`. */
export async function recorder(
  url: string,
  filters: string[],
  options: IClientOptions = {},
): Promise<Recorder> {
  const client = await mqtt.connectAsync(url, {
    clientId: `test-${Math.random().toString(36).slice(2)}`,
    protocolVersion: 4,
    reconnectPeriod: 0,
    ...options,
  });
  const messages: Received[] = [];
  const listeners = new Set<() => void>();
  client.on('message', (topic, payload) => {
    const text = payload.toString();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    messages.push({ topic, text, json });
    for (const listener of listeners) listener();
  });
  if (filters.length > 0) await client.subscribeAsync(filters, { qos: 1 });
  return {
    client,
    messages,
    next(match, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = messages.find(match);
          if (!found) return false;
          listeners.delete(check);
          clearTimeout(timer);
          resolve(found);
          return true;
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no matching message within ${timeoutMs} ms; got ${messages.length}`));
        }, timeoutMs);
        if (!check()) listeners.add(check);
      });
    },
    close: () => client.endAsync(true),
  };
}

/** Field accessor for recorded JSON. */
export function field(m: Received, ...path: string[]): unknown {
  let value: unknown = m.json;
  for (const key of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** A uniform MobileNetV3 subnet (OFA arch JSON). */
export function mbv3(kernel: number, expand: number, depth: number, r: number) {
  return {
    ks: Array<number>(20).fill(kernel),
    e: Array<number>(20).fill(expand),
    d: Array<number>(5).fill(depth),
    r,
  };
}

/** A real but tiny job: small MobileNetV3 subnets at resolution 128, few runs. */
export function tinyJob(batchId: string, options: { samples?: number; runs?: number } = {}) {
  const { samples = 1, runs = 3 } = options;
  const job: JobMessage = {
    v: 1,
    type: 'job',
    runId: 'run-test',
    batchId,
    space: 'mobilenetv3',
    samples: Array.from({ length: samples }, (_, i) => ({
      id: `${batchId}-s${i}`,
      arch: mbv3(3, 3, 2, 128),
    })),
    settings: {
      warmup: 1,
      runs,
      threads: 1,
      batchSize: 1,
      referenceEvery: 0,
      maxReferenceDrift: 1,
    },
    references: [{ id: 'ref-tiny', space: 'mobilenetv3', arch: mbv3(3, 3, 2, 128) }],
  };
  return job;
}

export interface CuttableProxy {
  port: number;
  /** Drop every open connection and refuse new ones until `restore()`. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/** A TCP proxy to `targetPort`, for network-outage tests over real sockets. */
export async function cuttableProxy(targetPort: number): Promise<CuttableProxy> {
  let down = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    if (down) {
      inbound.destroy();
      return;
    }
    const outbound = tcpConnect(targetPort, '127.0.0.1');
    sockets.add(inbound);
    sockets.add(outbound);
    inbound.pipe(outbound).pipe(inbound);
    const drop = () => {
      inbound.destroy();
      outbound.destroy();
      sockets.delete(inbound);
      sockets.delete(outbound);
    };
    inbound.on('error', drop).on('close', drop);
    outbound.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    cut() {
      down = true;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    restore() {
      down = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
