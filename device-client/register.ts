/**
 * `esm-device register`: gives a device its AWS IoT identity without its private key ever
 * leaving it. The device makes an EC P-256 key pair and a PKCS#10 certificate signing
 * request (CN = thing name), sends only the CSR to `POST /devices` (signed with SigV4, the
 * usual AWS credential chain), and stores the certificate AWS IoT signed next to its key,
 * with a config file the daemon starts from (`esm-device --config DIR/device.json`).
 * `--csr-only` writes the key and CSR and stops, for devices without AWS credentials: the
 * CSR is then registered from a workstation with `esm cloud devices register --csr`.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
} from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { CloudApi } from '../cli/cloud-api.ts';
import { ValidationError } from '../core/errors.ts';
import { thingName } from '../core/schemas/protocol.ts';

/** DER: tag, definite length, contents. */
function der(tag: number, ...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  let length: Buffer;
  if (body.length < 0x80) length = Buffer.from([body.length]);
  else {
    const bytes: number[] = [];
    for (let n = body.length; n > 0; n >>= 8) bytes.unshift(n & 0xff);
    length = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

const oid = {
  commonName: Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03]),
  // 1.2.840.10045.4.3.2
  ecdsaWithSha256: Buffer.from([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
};

function pem(label: string, body: Buffer): string {
  const lines = body.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * A PKCS#10 certificate signing request for `key` (EC P-256) with subject CN = `commonName`,
 * signed with ECDSA-SHA256 (RFC 2986). AWS IoT takes the subject and public key from it.
 */
export function certificateRequest(key: KeyObject, commonName: string): string {
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const subject = der(
    0x30,
    der(0x31, der(0x30, oid.commonName, der(0x0c, Buffer.from(commonName)))),
  );
  const info = der(0x30, der(0x02, Buffer.from([0])), subject, spki, der(0xa0));
  const signature = sign('sha256', info, { key, dsaEncoding: 'der' });
  const csr = der(
    0x30,
    info,
    der(0x30, oid.ecdsaWithSha256),
    der(0x03, Buffer.from([0]), signature),
  );
  return pem('CERTIFICATE REQUEST', csr);
}

/** A new EC P-256 private key (PKCS#8 PEM): fast to make even on a Raspberry Pi. */
export function newDeviceKey(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export interface RegisterOptions {
  readonly thing: string;
  /** Where the key, CSR, certificate and device.json live (the key never leaves it). */
  readonly dir: string;
  readonly description?: string;
  /** Only make the key and CSR; register them elsewhere. @default false */
  readonly csrOnly?: boolean;
}

export interface RegisterResult {
  readonly keyFile: string;
  readonly csrFile: string;
  /** Absent with `csrOnly`. */
  readonly certFile?: string;
  readonly configFile?: string;
  readonly certificateId?: string;
}

interface RegisterAnswer {
  device: { certificateId: string };
  certificatePem: string;
  endpoint: { host: string; port: number };
}

/** The file names inside `dir`. */
export function deviceFiles(dir: string) {
  return {
    key: path.join(dir, 'device.key.pem'),
    csr: path.join(dir, 'device.csr.pem'),
    cert: path.join(dir, 'device.cert.pem'),
    config: path.join(dir, 'device.json'),
  };
}

/**
 * Makes (or reuses) the device key, writes the CSR, and, unless `csrOnly`, registers it with
 * `api` and writes the certificate and the daemon's config file. Re-running after a failed
 * registration reuses the key.
 */
export async function registerDevice(
  options: RegisterOptions,
  api?: CloudApi,
): Promise<RegisterResult> {
  const thing = thingName.safeParse(options.thing);
  if (!thing.success) {
    throw new ValidationError('--thing', thing.error.issues[0]?.message ?? 'invalid thing name');
  }
  const files = deviceFiles(options.dir);
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  let keyPem: string;
  if (existsSync(files.key)) keyPem = await readFile(files.key, 'utf8');
  else {
    keyPem = newDeviceKey();
    await writeFile(files.key, keyPem, { mode: 0o600 });
  }
  await chmod(files.key, 0o600);
  const csr = certificateRequest(createPrivateKey(keyPem), thing.data);
  await writeFile(files.csr, csr);
  if (options.csrOnly === true || api === undefined)
    return { keyFile: files.key, csrFile: files.csr };
  const answer = await api.request<RegisterAnswer>('POST', 'devices', {
    thing: thing.data,
    csr,
    ...(options.description === undefined ? {} : { description: options.description }),
  });
  await writeFile(files.cert, answer.certificatePem);
  // No `ca`: Node's built-in root store includes Amazon Root CA 1, which signs IoT Core's
  // ATS endpoint.
  const config = {
    broker: `mqtts://${answer.endpoint.host}:${answer.endpoint.port}`,
    thing: thing.data,
    cert: files.cert,
    key: files.key,
  };
  await writeFile(files.config, `${JSON.stringify(config, null, 2)}\n`);
  return {
    keyFile: files.key,
    csrFile: files.csr,
    certFile: files.cert,
    configFile: files.config,
    certificateId: answer.device.certificateId,
  };
}

/** `esm-device register --thing NAME [--dir DIR] [--csr-only] [--api-url URL]`. */
export async function registerMain(argv: readonly string[]): Promise<void> {
  const { Command } = await import('commander');
  const program = new Command('esm-device register')
    .description(
      'make this device a key and CSR (the key never leaves it) and register it with the ESM API',
    )
    .requiredOption('--thing <name>', 'the thing name to register (MQTT client id)')
    .option('--dir <dir>', 'where the key, CSR, certificate and device.json go', '.esm-device')
    .option('--description <text>', 'free text kept on the device record')
    .option('--csr-only', 'only write the key and CSR; register the CSR from a workstation')
    .option('--api-url <url>', 'API base URL (env ESM_API_URL; default: the stack output ApiUrl)')
    .option('--region <region>', 'AWS region to sign for (default: from the URL or AWS_REGION)')
    .showHelpAfterError()
    // A bad flag exits 2 like every other configuration error (main.ts).
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));
  program.parse(argv.slice(3), { from: 'user' });
  const flags = program.opts<{
    thing: string;
    dir: string;
    description?: string;
    csrOnly?: boolean;
    apiUrl?: string;
    region?: string;
  }>();
  const options = {
    thing: flags.thing,
    dir: flags.dir,
    csrOnly: flags.csrOnly === true,
    ...(flags.description === undefined ? {} : { description: flags.description }),
  };
  if (options.csrOnly) {
    const result = await registerDevice(options);
    process.stdout.write(
      `${JSON.stringify(result, null, 2)}\nRegister the CSR from a machine with AWS credentials:\n` +
        `  esm cloud devices register ${flags.thing} --csr ${result.csrFile}\n` +
        `then copy the certificate back to ${deviceFiles(flags.dir).cert}\n`,
    );
    return;
  }
  const { createCloudApi, resolveApiUrl } = await import('../cli/cloud-api.ts');
  const api = createCloudApi({
    apiUrl: await resolveApiUrl({ apiUrl: flags.apiUrl }),
    region: flags.region,
  });
  const result = await registerDevice(options, api);
  process.stdout.write(
    `${JSON.stringify(result, null, 2)}\nStart the daemon: esm-device --config ${result.configFile}\n`,
  );
}
