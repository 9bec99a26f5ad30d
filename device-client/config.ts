/**
 * The daemon's configuration, parsed once at start from three sources, highest first:
 * command-line flags, environment variables (`ESM_*`), a JSON config file. A bad value fails
 * fast with a `ValidationError` naming the flag, variable or file key to fix.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { ValidationError } from '../core/errors.ts';
import { thingName } from '../core/schemas/protocol.ts';

const positiveInt = z.coerce.number().int().positive();

export const deviceConfig = z
  .object({
    /** `mqtt://host:port` or `mqtts://host:port` (AWS IoT Core: `mqtts://ENDPOINT:8883`). */
    broker: z
      .string()
      .refine((s) => /^mqtts?:\/\/[^/\s]+/.test(s), 'use mqtt://host:port or mqtts://host:port'),
    /** Thing name: the MQTT client id and the `{thing}` of every topic. */
    thing: thingName,
    /** Client certificate (PEM file) for mutual TLS. */
    cert: z.string().min(1).optional(),
    /** Private key of `cert` (PEM file). */
    key: z.string().min(1).optional(),
    /** CA bundle that signed the broker's certificate (PEM file); system CAs when absent. */
    ca: z.string().min(1).optional(),
    /** Jobs waiting behind the running one; more are refused with a QUEUE_FULL status. */
    queueLimit: z.coerce.number().int().min(0).max(1000).default(8),
    /** Seconds between heartbeat status messages. */
    heartbeatSeconds: positiveInt.default(60),
    /** MQTT keepalive in seconds. */
    keepaliveSeconds: positiveInt.default(30),
    /** First reconnect delay; doubles after each failed attempt up to `reconnectMaxMs`. */
    reconnectMinMs: positiveInt.default(1000),
    reconnectMaxMs: positiveInt.default(60_000),
    /**
     * Fewest seconds between two progress messages of one job (the first and last are always
     * sent). Every message is billed on AWS IoT Core; see device-client/README.md for the cost.
     */
    progressIntervalSeconds: z.coerce.number().min(0).max(3600).default(5),
    /** Deprecated: the same in milliseconds; wins over `progressIntervalSeconds` when given. */
    progressIntervalMs: z.coerce.number().int().min(0).max(3_600_000).optional(),
    /** onnxruntime execution provider (`cuda` needs `--onnxruntime-node-install=cuda12`). */
    executionProvider: z.enum(['cpu', 'cuda']).default('cpu'),
    logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    /**
     * Directory for accepted jobs (journaled before their PUBACK), results not yet acknowledged
     * and recently sent results (duplicate detection across restarts), so a crash or power loss
     * loses nothing. `none` or absent: memory only. `esm-device` defaults it to
     * `defaultStateDir(thing)`; code that embeds the daemon gets memory only unless it asks.
     */
    stateDir: z
      .string()
      .min(1)
      .optional()
      .transform((dir) => (dir === 'none' ? undefined : dir)),
  })
  .refine((c) => (c.cert === undefined) === (c.key === undefined), {
    path: ['key'],
    message: 'give the client certificate and its private key together',
  })
  .refine((c) => c.reconnectMinMs <= c.reconnectMaxMs, {
    path: ['reconnectMaxMs'],
    message: 'must be at least reconnectMinMs',
  });
export type DeviceConfig = z.infer<typeof deviceConfig>;
export type DeviceConfigInput = z.input<typeof deviceConfig>;

type Key = keyof DeviceConfig;

/** The flag and environment variable of each setting; every setting is a config-file key. */
export const configSources: Record<Key, { flag: string; env: string }> = {
  broker: { flag: '--broker', env: 'ESM_BROKER' },
  thing: { flag: '--thing', env: 'ESM_THING' },
  cert: { flag: '--cert', env: 'ESM_CERT' },
  key: { flag: '--key', env: 'ESM_KEY' },
  ca: { flag: '--ca', env: 'ESM_CA' },
  queueLimit: { flag: '--queue-limit', env: 'ESM_QUEUE_LIMIT' },
  heartbeatSeconds: { flag: '--heartbeat-seconds', env: 'ESM_HEARTBEAT_SECONDS' },
  keepaliveSeconds: { flag: '--keepalive-seconds', env: 'ESM_KEEPALIVE_SECONDS' },
  reconnectMinMs: { flag: '--reconnect-min-ms', env: 'ESM_RECONNECT_MIN_MS' },
  reconnectMaxMs: { flag: '--reconnect-max-ms', env: 'ESM_RECONNECT_MAX_MS' },
  progressIntervalSeconds: { flag: '--progress-interval', env: 'ESM_PROGRESS_INTERVAL' },
  progressIntervalMs: { flag: '--progress-interval-ms', env: 'ESM_PROGRESS_INTERVAL_MS' },
  executionProvider: { flag: '--execution-provider', env: 'ESM_EXECUTION_PROVIDER' },
  logLevel: { flag: '--log-level', env: 'ESM_LOG_LEVEL' },
  stateDir: { flag: '--state-dir', env: 'ESM_STATE_DIR' },
};

const keys = Object.keys(configSources) as Key[];

export interface LoadConfigOptions {
  /** Values from command-line flags, by config key. @default {} */
  flags?: Partial<Record<Key, string | number | undefined>>;
  /** @default process.env */
  env?: Record<string, string | undefined>;
  /** Path of a JSON config file (the flag `--config` or `ESM_CONFIG`). @default none */
  configFile?: string;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ValidationError('--config', `cannot read ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ValidationError('--config', `${path} is not JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ValidationError('--config', `${path} must hold a JSON object of settings`);
  }
  const unknownKey = Object.keys(parsed).find((k) => !keys.includes(k as Key));
  if (unknownKey !== undefined) {
    throw new ValidationError(
      `${path}: ${unknownKey}`,
      `unknown setting; known settings: ${keys.join(', ')}`,
    );
  }
  return parsed as Record<string, unknown>;
}

/**
 * Merge flags over environment over config file and validate the result. The error names
 * where the bad value came from, e.g. `ESM_BROKER: use mqtt://host:port or mqtts://host:port`.
 */
export function loadConfig(options: LoadConfigOptions = {}): DeviceConfig {
  const { flags = {}, env = process.env } = options;
  const configFile = options.configFile ?? env.ESM_CONFIG;
  const file = configFile ? readConfigFile(configFile) : {};
  const merged: Record<string, unknown> = {};
  const origin: Partial<Record<Key, string>> = {};
  for (const key of keys) {
    const { flag, env: variable } = configSources[key];
    const fromFlag = flags[key];
    const fromEnv = env[variable];
    if (fromFlag !== undefined) {
      merged[key] = fromFlag;
      origin[key] = flag;
    } else if (fromEnv !== undefined && fromEnv !== '') {
      merged[key] = fromEnv;
      origin[key] = variable;
    } else if (file[key] !== undefined) {
      merged[key] = file[key];
      origin[key] = `${configFile}: ${key}`;
    }
  }
  if (merged.stateDir === undefined && typeof merged.thing === 'string') {
    merged.stateDir = defaultStateDir(merged.thing, env);
  }
  return parseConfig(merged, origin);
}

/**
 * Where `esm-device` keeps its state when `--state-dir` is not given: one folder per thing
 * under `$XDG_STATE_HOME` (`~/.local/state` when unset), so two daemons on one host never share.
 */
export function defaultStateDir(
  thing: string,
  env: Record<string, string | undefined> = process.env,
): string {
  const base = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return join(base, 'esm-device', thing);
}

/** The effective progress interval in milliseconds. */
export function progressIntervalMs(
  config: Pick<DeviceConfig, 'progressIntervalSeconds' | 'progressIntervalMs'>,
): number {
  return config.progressIntervalMs ?? Math.round(config.progressIntervalSeconds * 1000);
}

/**
 * Validate settings given in code (e.g. `esm run --device local` starting a daemon in-process);
 * `origin` names where each key came from, for the error message.
 */
export function parseConfig(
  input: DeviceConfigInput | Record<string, unknown>,
  origin: Partial<Record<Key, string>> = {},
): DeviceConfig {
  const parsed = deviceConfig.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const key = issue?.path[0] as Key | undefined;
  const where =
    key === undefined || !(key in configSources)
      ? 'config'
      : (origin[key] ?? `${configSources[key].flag} (or ${configSources[key].env})`);
  const given = key === undefined ? undefined : (input as Record<string, unknown>)[key];
  const missing = key !== undefined && given === undefined && issue?.code !== 'custom';
  const message = missing ? 'is required' : (issue?.message ?? 'invalid');
  throw new ValidationError(where, message);
}

/** PEM material for mutual TLS, read from the configured files. */
export interface TlsFiles {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
}

/** Read the certificate files now, so a wrong path fails at start and not at first connect. */
export function readTlsFiles(config: Pick<DeviceConfig, 'cert' | 'key' | 'ca'>): TlsFiles {
  const out: TlsFiles = {};
  for (const name of ['cert', 'key', 'ca'] as const) {
    const path = config[name];
    if (path === undefined) continue;
    try {
      out[name] = readFileSync(path);
    } catch (error) {
      throw new ValidationError(
        `${configSources[name].flag} (or ${configSources[name].env})`,
        `cannot read ${path}: ${(error as Error).message}`,
      );
    }
  }
  return out;
}
