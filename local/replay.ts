/**
 * A replay device: a `JobRunner` for the device daemon that answers every sample from a
 * measured dataset instead of timing it. `esm run --device dataset:FILE` runs the real daemon
 * with it on the embedded broker, so a replayed run takes the same path as a measured one
 * (jobs, progress, results, ingestion), in both engines. A run on `--metric NAME` replays
 * the lines' `NAME` field (`peak_memory_mb` of a dataset an earlier metric run wrote).
 */
import { readFile } from 'node:fs/promises';
import { parseDataset } from '../core/dataset.ts';
import { ValidationError } from '../core/errors.ts';
import {
  type DeviceFacts,
  type DeviceMetricName,
  type JobMessage,
  type MetricReading,
  PROTOCOL_MINOR,
  type ResultMessage,
} from '../core/schemas/protocol.ts';
import { subnetKey } from '../core/spaces/subnet.ts';
import type { SearchSpace } from '../core/spaces/types.ts';
import type { JobRunner } from '../device-client/daemon.ts';
import { JobStoppedError } from '../device-client/job-runner.ts';

export interface ReplayOptions {
  readonly space: SearchSpace;
  /** Milliseconds each sample takes, to emulate a device (fault tests, the fan-out bench). @default 0 */
  readonly delayMs?: number;
}

interface Entry {
  readonly latencyMs: number;
  readonly stdMs: number;
  readonly runs: number;
  /** The line's other fields: a run on `--metric NAME` replays `NAME` from them. */
  readonly extra: Readonly<Record<string, unknown>>;
}

/** The dataset's value of `name` as the device would report it, or null with the reason. */
function replayedMetric(entry: Entry, name: DeviceMetricName, file: string): MetricReading {
  const value = entry.extra[name];
  return typeof value === 'number' && value >= 0
    ? { value, method: `replayed from ${file}` }
    : { value: null, reason: `the replayed dataset ${file} has no ${name} for this arch` };
}

/** Facts a replay device reports about itself. */
export function replayFacts(thing: string, file: string): DeviceFacts {
  return {
    thing,
    cpu: `replay of ${file}`,
    cores: 1,
    accelerator: null,
    os: process.platform,
    node: process.version,
    onnxruntime: 'none',
    executionProvider: 'cpu',
  };
}

/** A job runner answering from the dataset `file` (JSONL or CSV, as `esm fit` reads). */
export async function createReplayRunner(file: string, options: ReplayOptions): Promise<JobRunner> {
  const { space, delayMs = 0 } = options;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new ValidationError(
      'device',
      `cannot read dataset ${file} (from --device dataset:${file})`,
      {
        cause,
      },
    );
  }
  const { rows } = parseDataset(text, { space, file });
  const byKey = new Map<string, Entry>(
    rows.map((row) => [
      subnetKey(row.subnet),
      {
        latencyMs: row.latencyMs,
        stdMs: typeof row.extra.std_ms === 'number' ? row.extra.std_ms : 0,
        runs: typeof row.extra.runs === 'number' ? row.extra.runs : 1,
        extra: row.extra,
      },
    ]),
  );
  return async (job: JobMessage, run): Promise<ResultMessage> => {
    const startedAt = new Date().toISOString();
    const samples = [];
    for (const [i, sample] of job.samples.entries()) {
      if (run.shouldStop?.()) throw new JobStoppedError(job.batchId, i, job.samples.length);
      const item = byKey.get(subnetKey(space.parse(sample.arch)));
      if (!item) {
        throw new ValidationError(
          `samples[${i}].arch`,
          `not in the replayed dataset ${file}; a replay run can only ask for the dataset's architectures`,
        );
      }
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      const ms = item.latencyMs;
      const asked = job.settings.metrics ?? [];
      samples.push({
        id: sample.id,
        stats: {
          median_ms: ms,
          mean_ms: ms,
          std_ms: item.stdMs,
          min_ms: ms,
          max_ms: ms,
          runs: item.runs,
        },
        ...(asked.length > 0 && {
          metrics: Object.fromEntries(asked.map((m) => [m, replayedMetric(item, m, file)])),
        }),
      });
      run.onProgress?.(i + 1, job.samples.length);
    }
    return {
      v: 1,
      minor: PROTOCOL_MINOR,
      type: 'result',
      runId: job.runId,
      batchId: job.batchId,
      thing: run.thing,
      samples,
      references: [],
      quality: { maxDrift: 0, unstable: false },
      device: replayFacts(run.thing, file),
      settings: job.settings,
      startedAt,
      finishedAt: new Date().toISOString(),
    };
  };
}
