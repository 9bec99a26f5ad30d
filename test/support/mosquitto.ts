/**
 * A real mosquitto broker for tests, set up like AWS IoT Core: TLS with client certificates
 * (`require_certificate`), the certificate's CN as the identity (`use_identity_as_username`)
 * and a per-device ACL (`pattern readwrite esm/devices/%u/#`), so a device can only use its
 * own topics. Certificates come from a throwaway CA made with openssl.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { commandWorks } from './services.ts';

/** The mosquitto binary, or undefined where it is not installed. */
export function mosquittoBinary(): string | undefined {
  for (const candidate of ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto']) {
    if (existsSync(candidate)) return candidate;
  }
  return commandWorks('mosquitto', ['-h']) ? 'mosquitto' : undefined;
}

export interface CertPair {
  cert: Buffer;
  key: Buffer;
  certFile: string;
  keyFile: string;
}

export interface Pki {
  dir: string;
  ca: Buffer;
  caFile: string;
  server: CertPair;
  clients: Record<string, CertPair>;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function issue(dir: string, name: string, cn: string, extensions: string): CertPair {
  const key = `${name}.key`;
  const csr = `${name}.csr`;
  const crt = `${name}.crt`;
  const ext = `${name}.ext`;
  writeFileSync(join(dir, ext), extensions);
  openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  openssl(dir, ['req', '-new', '-key', key, '-out', csr, '-subj', `/CN=${cn}`]);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    crt,
    '-days',
    '2',
    '-extfile',
    ext,
  ]);
  return {
    cert: readFileSync(join(dir, crt)),
    key: readFileSync(join(dir, key)),
    certFile: join(dir, crt),
    keyFile: join(dir, key),
  };
}

/** A CA, a server certificate for 127.0.0.1/localhost and one client certificate per name. */
export function makePki(clientNames: readonly string[]): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'esm-pki-'));
  openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key']);
  openssl(dir, [
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=esm-test-ca',
  ]);
  const server = issue(
    dir,
    'server',
    'localhost',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  const clients: Record<string, CertPair> = {};
  for (const name of clientNames) {
    clients[name] = issue(dir, `client-${name}`, name, 'extendedKeyUsage=clientAuth\n');
  }
  return {
    dir,
    ca: readFileSync(join(dir, 'ca.crt')),
    caFile: join(dir, 'ca.crt'),
    server,
    clients,
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address ? address.port : 0;
}

async function waitForPort(port: number, timeoutMs: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited with ${child.exitCode}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`mosquitto did not listen on ${port} within ${timeoutMs} ms`);
}

export interface Mosquitto {
  url: string;
  port: number;
  /** Everything mosquitto logged (connections, ACL denials), for assertions and failures. */
  log(): string;
  close(): Promise<void>;
}

/** The IoT-Core-like ACL: each identity its own subtree, `platformIds` everything. */
export function deviceAcl(platformIds: readonly string[]): string {
  const platform = platformIds.map((id) => `user ${id}\ntopic readwrite esm/devices/#\n`).join('');
  return `${platform}\npattern readwrite esm/devices/%u/#\n`;
}

/** Start mosquitto with mutual TLS and `acl` on a free port. */
export async function startMosquitto(pki: Pki, acl: string): Promise<Mosquitto> {
  const binary = mosquittoBinary();
  if (!binary) throw new Error('mosquitto is not installed');
  const port = await freePort();
  writeFileSync(join(pki.dir, 'acl'), acl);
  const conf = [
    `listener ${port} 127.0.0.1`,
    `cafile ${pki.caFile}`,
    `certfile ${pki.server.certFile}`,
    `keyfile ${pki.server.keyFile}`,
    'require_certificate true',
    'use_identity_as_username true',
    'allow_anonymous false',
    `acl_file ${join(pki.dir, 'acl')}`,
    'persistence false',
    // A log file is line-buffered; piped stdout is block-buffered, so a denial logged just now
    // could still sit in mosquitto's buffer when a test reads the log (seen on a loaded machine).
    `log_dest file ${join(pki.dir, 'mosquitto.log')}`,
    'log_type all',
    // Started as root, mosquitto would switch to the `mosquitto` user, who cannot read the keys.
    `user ${userInfo().username}`,
    '',
  ].join('\n');
  const confFile = join(pki.dir, 'mosquitto.conf');
  writeFileSync(confFile, conf);
  const child = spawn(binary, ['-c', confFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  try {
    await waitForPort(port, 10_000, child);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${(error as Error).message}\n${output}`);
  }
  return {
    url: `mqtts://127.0.0.1:${port}`,
    port,
    log: () => {
      const file = join(pki.dir, 'mosquitto.log');
      return `${output}${existsSync(file) ? readFileSync(file, 'utf8') : ''}`;
    },
    close: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(pki.dir, { recursive: true, force: true });
    },
  };
}
