/**
 * An embedded MQTT broker (aedes, MQTT 3.1.1) for local mode and tests: plain TCP, or TLS with
 * client certificates. With `isolateDevices` it enforces what the AWS IoT policy enforces in
 * the cloud: a client may only use `esm/devices/{its identity}/#`, where the identity is the
 * client certificate's CN under TLS and the client id otherwise; `platformIds` may use all.
 */
import { createServer as createTcpServer, type Server } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import type { Logger } from '../core/ports.ts';
import { silentLogger } from '../core/ports.ts';

export interface BrokerTlsOptions {
  /** Server private key (PEM). */
  key: string | Buffer;
  /** Server certificate (PEM). */
  cert: string | Buffer;
  /** CA that signed the client certificates (PEM). */
  ca?: string | Buffer;
  /** Refuse clients without a certificate signed by `ca`. @default true */
  requireClientCert?: boolean;
}

export interface BrokerOptions {
  /** TCP port; 0 picks a free one. @default 0 */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** Serve mqtts:// with these keys instead of plain mqtt://. @default none */
  tls?: BrokerTlsOptions;
  /** Restrict each client to `esm/devices/{identity}/#`. @default false */
  isolateDevices?: boolean;
  /** Identities allowed every topic when `isolateDevices` is on. @default [] */
  platformIds?: readonly string[];
  /** @default silentLogger */
  logger?: Logger;
}

export interface Broker {
  /** `mqtt://host:port` or `mqtts://host:port`. */
  url: string;
  port: number;
  /** The aedes instance, for embedders that publish or inspect directly. */
  aedes: Aedes;
  close(): Promise<void>;
}

function identityOf(client: Client): string {
  const socket = client.conn as Partial<TLSSocket>;
  const subject = socket?.getPeerCertificate?.()?.subject;
  const cn = subject?.CN;
  return (Array.isArray(cn) ? cn[0] : cn) ?? client.id;
}

/** True when `topic` (a filter or a name) stays under `esm/devices/{id}/`. */
export function topicAllowed(topic: string, id: string): boolean {
  // An identity with wildcards or slashes would widen the prefix to other devices' topics.
  return !/[+#/]/.test(id) && topic.startsWith(`esm/devices/${id}/`);
}

/** Start the broker and resolve once it listens. */
export async function startBroker(options: BrokerOptions = {}): Promise<Broker> {
  const {
    port = 0,
    host = '127.0.0.1',
    tls,
    isolateDevices = false,
    platformIds = [],
    logger = silentLogger,
  } = options;
  const platform = new Set(platformIds);
  const aedes = await Aedes.createBroker({
    ...(isolateDevices
      ? {
          authorizePublish: (client, packet, callback) => {
            const id = client ? identityOf(client) : undefined;
            if (id === undefined || platform.has(id) || topicAllowed(packet.topic, id)) {
              callback(null);
            } else {
              callback(new Error(`${id} may not publish to ${packet.topic}`));
            }
          },
          authorizeSubscribe: (client, subscription, callback) => {
            const id = identityOf(client);
            if (platform.has(id) || topicAllowed(subscription.topic, id)) {
              callback(null, subscription);
            } else {
              // Refusing by a null subscription gives the client a SUBACK failure (0x80).
              logger.warn('subscription refused', { id, topic: subscription.topic });
              callback(null, null);
            }
          },
        }
      : {}),
  });
  aedes.on('clientError', (client, error) =>
    logger.debug('client error', { client: client?.id, error: error.message }),
  );
  aedes.on('connectionError', (_client, error) =>
    logger.debug('connection error', { error: error.message }),
  );

  const server: Server = tls
    ? createTlsServer(
        {
          key: tls.key,
          cert: tls.cert,
          ...(tls.ca ? { ca: tls.ca } : {}),
          requestCert: tls.requireClientCert ?? true,
          rejectUnauthorized: tls.requireClientCert ?? true,
        },
        aedes.handle,
      )
    : createTcpServer(aedes.handle);
  const sockets = new Set<{ destroy(): void }>();
  server.on(tls ? 'secureConnection' : 'connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  const url = `${tls ? 'mqtts' : 'mqtt'}://${host}:${boundPort}`;
  logger.info('broker listening', { url });

  return {
    url,
    port: boundPort,
    aedes,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await closed;
    },
  };
}
