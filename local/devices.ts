/**
 * The devices `esm run` measures on, all reached over MQTT the way the cloud reaches its
 * devices, so one workflow serves them all:
 *
 * - `local` starts an embedded broker and a device daemon in this process (real ONNX timing on
 *   this CPU);
 * - `dataset:FILE` starts the same daemon with a replay runner that answers from a measured
 *   dataset (and sampling draws from the dataset's architectures): fast and reproducible;
 * - `thing:NAME` (or several, `thing:a,thing:b`, sharing each batch) sends jobs over
 *   `--broker URL` to daemons started elsewhere (`esm-device --broker URL --thing NAME`).
 */
import { ValidationError } from '../core/errors.ts';
import { thingName } from '../core/schemas/protocol.ts';
import { embeddedThings } from '../core/schemas/run.ts';
import type { SearchSpace } from '../core/spaces/types.ts';

export interface Devices {
  /** The broker the workflow publishes jobs to and hears results from. */
  readonly brokerUrl: string;
  readonly things: readonly string[];
  close(): Promise<void>;
}

export interface OpenDevicesOptions {
  readonly space: SearchSpace;
  /** MQTT broker URL, required by `thing:NAME`. */
  readonly broker?: string;
  /** Replay devices wait this long per sample (tests of faults and resume). @default 0 */
  readonly replayDelayMs?: number;
}

/** The thing names of `--device thing:a,thing:b`; throws `ValidationError` naming `device`. */
export function parseThings(spec: string): string[] {
  return spec.split(',').map((part) => {
    const entry = part.trim();
    if (!entry.startsWith('thing:')) {
      throw new ValidationError(
        'device',
        `"${entry}" in "${spec}": several devices are given as thing:A,thing:B`,
      );
    }
    const thing = entry.slice('thing:'.length);
    const parsed = thingName.safeParse(thing);
    if (!parsed.success) {
      throw new ValidationError(
        'device',
        `thing name "${thing}": ${parsed.error.issues[0]?.message}`,
      );
    }
    return thing;
  });
}

/** Checks a `--device` value without opening anything. */
export function checkDevice(spec: string, broker: string | undefined): void {
  if (spec === 'local' || spec.startsWith('dataset:')) return;
  if (spec.startsWith('thing:')) {
    const things = parseThings(spec);
    if (new Set(things).size !== things.length) {
      throw new ValidationError('device', `"${spec}" names a device twice`);
    }
    if (!broker) {
      throw new ValidationError(
        'broker',
        `device ${spec} needs --broker mqtt://HOST:PORT to reach it`,
      );
    }
    return;
  }
  throw new ValidationError(
    'device',
    `unknown device "${spec}"; use local, dataset:FILE (replay a measured JSONL dataset) or thing:NAME with --broker URL`,
  );
}

/** Opens the devices of `spec` (the run's `device` parameter); see the module comment. */
export async function openDevices(spec: string, options: OpenDevicesOptions): Promise<Devices> {
  checkDevice(spec, options.broker);
  if (spec.startsWith('thing:')) {
    return {
      brokerUrl: options.broker as string,
      things: parseThings(spec),
      close: async () => {},
    };
  }
  const { startBroker } = await import('./mqtt-broker.ts');
  const { startDaemon } = await import('../device-client/daemon.ts');
  let runJob: import('../device-client/daemon.ts').JobRunner | undefined;
  let facts: ((thing: string) => import('../core/schemas/protocol.ts').DeviceFacts) | undefined;
  let thing: string = embeddedThings.local;
  if (spec.startsWith('dataset:')) {
    const file = spec.slice('dataset:'.length);
    const { createReplayRunner, replayFacts } = await import('./replay.ts');
    runJob = await createReplayRunner(file, {
      space: options.space,
      delayMs: options.replayDelayMs,
    });
    facts = (t) => replayFacts(t, file);
    thing = embeddedThings.replay;
  }
  const broker = await startBroker({ port: 0 });
  try {
    const daemon = await startDaemon(
      { broker: broker.url, thing, heartbeatSeconds: 3600, progressIntervalMs: 200 },
      { ...(runJob && { runJob }), ...(facts && { facts }) },
    );
    return {
      brokerUrl: broker.url,
      things: [thing],
      close: async () => {
        await daemon.stop();
        await broker.close();
      },
    };
  } catch (error) {
    await broker.close();
    throw error;
  }
}
