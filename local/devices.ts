/**
 * The devices `esm run` can measure on, behind one small interface:
 *
 * - `dataset:FILE` answers from a measured dataset (replay): sampling then draws from the
 *   dataset's pool, so experiments are fast and reproducible;
 * - `local` starts an embedded MQTT broker and a device daemon in this process, and talks to
 *   it over MQTT exactly as the cloud talks to remote devices (real ONNX timing on this CPU);
 * - `thing:NAME` sends jobs over `--broker URL` to a daemon started elsewhere
 *   (`esm-device --broker URL --thing NAME`).
 */
import { readFile } from 'node:fs/promises';
import { parseDataset } from '../core/dataset.ts';
import { ValidationError } from '../core/errors.ts';
import type { MeasurementDispatcher } from '../core/ports.ts';
import { type PoolItem, poolItem } from '../core/sampling.ts';
import type { LatencyStats } from '../core/schemas/dataset.ts';
import type { JobMessage } from '../core/schemas/protocol.ts';
import { thingName } from '../core/schemas/protocol.ts';
import { subnetKey } from '../core/spaces/subnet.ts';
import type { SearchSpace } from '../core/spaces/types.ts';
import { createMqttDispatcher, type MqttDispatcher } from './mqtt-dispatcher.ts';

/** A measurement request: one device job. */
export type MeasureRequest = Pick<
  JobMessage,
  'runId' | 'batchId' | 'space' | 'spaceSpec' | 'samples' | 'settings'
>;

export interface MeasureOutcome {
  readonly samples: readonly { id: string; stats: LatencyStats }[];
  readonly quality: { maxDrift: number; unstable: boolean; referenceScaleMs?: number };
  /** Short description of the device that measured, recorded with every sample. */
  readonly device: string;
}

/** A measured architecture of a replay pool. */
export type ReplayItem = PoolItem & {
  readonly arch: Record<string, unknown>;
  readonly latencyMs: number;
  readonly stdMs?: number;
  readonly runs?: number;
};

export interface Device {
  /** As given on the command line (`local`, `dataset:FILE`, `thing:NAME`). */
  readonly name: string;
  /** Replay devices only: the architectures the device can answer for. */
  readonly pool?: readonly ReplayItem[];
  measure(request: MeasureRequest): Promise<MeasureOutcome>;
  close(): Promise<void>;
}

export interface OpenDeviceOptions {
  space: SearchSpace;
  /** MQTT broker URL, required by `thing:NAME`. */
  broker?: string;
  /**
   * Replay devices wait this long per sample, to emulate a slow device (tests of resume
   * after a kill mid-batch). @default 0
   */
  replayDelayMs?: number;
  /** Longest wait for a device job's result. @default 30 minutes */
  timeoutMs?: number;
  /** Samples done so far in a running job, as the device reports them. */
  onProgress?: (batchId: string, done: number) => void;
}

/** Opens the device named `spec`; throws `ValidationError` naming `device` on a bad name. */
export async function openDevice(spec: string, options: OpenDeviceOptions): Promise<Device> {
  if (spec.startsWith('dataset:')) {
    return datasetDevice(spec, spec.slice('dataset:'.length), options);
  }
  if (spec === 'local') return localDevice(options);
  if (spec.startsWith('thing:')) {
    const thing = spec.slice('thing:'.length);
    const parsed = thingName.safeParse(thing);
    if (!parsed.success) {
      throw new ValidationError(
        'device',
        `thing name "${thing}": ${parsed.error.issues[0]?.message}`,
      );
    }
    if (!options.broker) {
      throw new ValidationError(
        'broker',
        `device ${spec} needs --broker mqtt://HOST:PORT to reach it`,
      );
    }
    return remoteDevice(spec, thing, options.broker, options);
  }
  throw new ValidationError(
    'device',
    `unknown device "${spec}"; use local, dataset:FILE (replay a measured JSONL dataset) or thing:NAME with --broker URL`,
  );
}

async function datasetDevice(
  name: string,
  file: string,
  options: OpenDeviceOptions,
): Promise<Device> {
  const { space, replayDelayMs = 0 } = options;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new ValidationError('device', `cannot read dataset ${file} (from --device ${name})`, {
      cause,
    });
  }
  const { rows } = parseDataset(text, { space, file });
  const pool: ReplayItem[] = rows.map((row) =>
    poolItem(row.subnet, {
      arch: space.toNative(row.subnet) as Record<string, unknown>,
      latencyMs: row.latencyMs,
      stdMs: typeof row.extra.std_ms === 'number' ? row.extra.std_ms : undefined,
      runs: typeof row.extra.runs === 'number' ? row.extra.runs : undefined,
    }),
  );
  const byKey = new Map(pool.map((item) => [item.key, item]));
  return {
    name,
    pool,
    async measure(request) {
      const samples = [];
      for (const [i, sample] of request.samples.entries()) {
        const key = subnetKey(space.parse(sample.arch));
        const item = byKey.get(key);
        if (!item) {
          throw new ValidationError(
            `samples[${i}].arch`,
            `not in the replayed dataset ${file}; a replay run can only ask for the dataset's architectures`,
          );
        }
        if (replayDelayMs > 0) await new Promise((r) => setTimeout(r, replayDelayMs));
        const ms = item.latencyMs;
        const std = item.stdMs ?? 0;
        samples.push({
          id: sample.id,
          stats: {
            median_ms: ms,
            mean_ms: ms,
            std_ms: std,
            min_ms: ms,
            max_ms: ms,
            runs: item.runs ?? 1,
          },
        });
      }
      return { samples, quality: { maxDrift: 0, unstable: false }, device: `replay of ${file}` };
    },
    close: async () => {},
  };
}

/** A device reached through a `MeasurementDispatcher` (MQTT): one job per request. */
export function dispatcherDevice(
  name: string,
  thing: string,
  dispatcher: MeasurementDispatcher,
  options: { timeoutMs?: number; close?: () => Promise<void> } = {},
): Device {
  const { timeoutMs = 30 * 60_000 } = options;
  return {
    name,
    async measure(request) {
      const job: JobMessage = { v: 1, type: 'job', references: [], ...request };
      await dispatcher.dispatch(thing, job);
      const result = await dispatcher.awaitResult(thing, request.batchId, timeoutMs);
      const d = result.device;
      return {
        samples: result.samples,
        quality: result.quality,
        device: `${d.thing}: ${d.cpu} (${d.executionProvider}, onnxruntime ${d.onnxruntime}, ${request.settings.threads} thread${request.settings.threads > 1 ? 's' : ''})`,
      };
    },
    close: options.close ?? (async () => {}),
  };
}

async function createDispatcher(
  brokerUrl: string,
  options: OpenDeviceOptions,
): Promise<MqttDispatcher> {
  const dispatcher = createMqttDispatcher({
    brokerUrl,
    onStatus: (status) => {
      if (status.progress && status.batchId)
        options.onProgress?.(status.batchId, status.progress.done);
    },
  });
  await dispatcher.ready;
  return dispatcher;
}

async function remoteDevice(
  name: string,
  thing: string,
  broker: string,
  options: OpenDeviceOptions,
): Promise<Device> {
  const dispatcher = await createDispatcher(broker, options);
  return dispatcherDevice(name, thing, dispatcher, {
    timeoutMs: options.timeoutMs,
    close: () => dispatcher.close(),
  });
}

/** Embedded broker + in-process daemon + MQTT dispatcher: the cloud's protocol on one machine. */
async function localDevice(options: OpenDeviceOptions): Promise<Device> {
  const { startBroker } = await import('./mqtt-broker.ts');
  const { startDaemon } = await import('../device-client/daemon.ts');
  const broker = await startBroker({ port: 0 });
  const thing = `local-${process.pid}`;
  const daemon = await startDaemon({ broker: broker.url, thing, heartbeatSeconds: 3600 });
  const dispatcher = await createDispatcher(broker.url, options);
  return dispatcherDevice('local', thing, dispatcher, {
    timeoutMs: options.timeoutMs,
    close: async () => {
      await dispatcher.close();
      await daemon.stop();
      await broker.close();
    },
  });
}
