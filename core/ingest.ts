/**
 * Ingesting a device result, once, whatever the store: the rules of `RunStateStore.recordResult`
 * written against a few primitive writes that each store implements atomically (a conditional
 * DynamoDB update, a synchronous file rewrite). Both engines' stores call `ingestResult`, so
 * the cloud and `esm run` accept and refuse exactly the same messages.
 */
import { ValidationError } from './errors.ts';
import type { ResultMessage } from './schemas/protocol.ts';
import { type IngestOutcome, jobKey, type RunRecord } from './schemas/run.ts';

/** Fields written on a sample when a result measures it. */
export interface Measurement {
  readonly latencyMs: number;
  readonly stats: ResultMessage['samples'][number]['stats'];
  readonly thing: string;
  readonly deviceInfo: string;
  readonly batchId: string;
  readonly drift: number;
  readonly measuredAt: string;
  /** Measured a second time because its runs spread widely (`settings.maxSampleSpread`). */
  readonly remeasured: boolean;
}

/** The atomic writes `ingestResult` needs. */
export interface IngestWrites {
  getRun(runId: string): Promise<RunRecord | undefined>;
  /** Adds `batchId` to the run's unstable jobs and remembers the drift. */
  markUnstable(runId: string, unstable: NonNullable<RunRecord['lastUnstable']>): Promise<void>;
  /**
   * Measures a sample if it is pending AND `job` (`thing/batchId`) is one of its jobs;
   * otherwise tells why not.
   */
  measureSample(
    runId: string,
    id: string,
    job: string,
    measurement: Measurement,
  ): Promise<'recorded' | 'duplicate' | 'rejected'>;
  /** Moves the run's `measured` counter by `n` (only writes that won their condition). */
  addMeasured(runId: string, n: number): Promise<void>;
  /** Sets `params.measurement.referenceScaleMs` unless it is set already. */
  setReferenceScale(runId: string, ms: number): Promise<void>;
  recordProgress(runId: string, thing: string, at: string): Promise<void>;
  /**
   * Records a job the device could not do (`run.deviceError`), so the run's Collect step
   * fails with the reason at once instead of waiting out the result timeout. Durable on
   * return: the ingestion throws right after.
   */
  recordDeviceError(runId: string, error: NonNullable<RunRecord['deviceError']>): Promise<void>;
}

/** How a device describes itself in the dataset (`device` field). */
export function describeDevice(result: ResultMessage): string {
  const d = result.device;
  const threads = result.settings.threads;
  return `${d.thing}: ${d.cpu} (${d.executionProvider}, onnxruntime ${d.onnxruntime}, ${threads} thread${threads > 1 ? 's' : ''})`;
}

/** Parallel writes while ingesting one result. */
async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Records `result` once per sample (see `RunStateStore.recordResult`).
 * @throws ValidationError (`runId`) for an unknown run, (`thing`) for a device not in the run
 */
export async function ingestResult(
  writes: IngestWrites,
  result: ResultMessage,
  options: { concurrency?: number } = {},
): Promise<IngestOutcome> {
  const run = await writes.getRun(result.runId);
  if (run === undefined) {
    throw new ValidationError(
      'runId',
      `result for unknown run "${result.runId}" (batch ${result.batchId}); nothing recorded`,
    );
  }
  const things = run.things.length > 0 ? run.things : [run.thing];
  if (!things.includes(result.thing)) {
    // The IoT policy ties a topic to its device, not a run to its devices: check here.
    throw new ValidationError(
      'thing',
      `result from "${result.thing}" for run "${result.runId}", which measures on ${things.map((t) => `"${t}"`).join(', ')}; nothing recorded`,
    );
  }
  await writes.recordProgress(result.runId, result.thing, result.finishedAt);
  // A run on another metric (params.metric) records that metric as the sample's value; a
  // device that could not measure it stops the run with its reason instead of training on
  // nothing. Checked before any write (and before the drift check: measuring an unstable
  // job again cannot make a missing metric appear), so nothing of the result is recorded half.
  const metric = typeof run.params.metric === 'string' ? run.params.metric : 'latency_ms';
  const sampleValue = (sample: ResultMessage['samples'][number]): number => {
    if (metric === 'latency_ms') return sample.stats.median_ms;
    const reading = sample.metrics?.[metric as keyof NonNullable<typeof sample.metrics>];
    if (reading?.value === null || reading?.value === undefined || !(reading.value > 0)) {
      throw new ValidationError(
        `samples.${sample.id}.metrics.${metric}`,
        `${result.thing} could not measure ${metric}: ${reading?.reason ?? (reading ? `got ${reading.value}` : 'the device does not report it (protocol minor 0)')}; run with another --metric or on a device that measures it`,
      );
    }
    return reading.value;
  };
  let values: Map<string, number>;
  try {
    values = new Map(result.samples.map((s) => [s.id, sampleValue(s)]));
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    await writes.recordDeviceError(result.runId, {
      thing: result.thing,
      batchId: result.batchId,
      code: 'METRIC_UNAVAILABLE',
      message: error.message,
    });
    throw error;
  }
  if (result.quality.unstable) {
    await writes.markUnstable(result.runId, {
      batchId: result.batchId,
      thing: result.thing,
      maxDrift: result.quality.maxDrift,
    });
    return { recorded: 0, duplicates: 0, rejected: [], unstable: true };
  }
  const job = jobKey(result.thing, result.batchId);
  const deviceInfo = describeDevice(result);
  let recorded = 0;
  let duplicates = 0;
  const rejected: string[] = [];
  await forEachLimited(
    result.samples,
    options.concurrency ?? 8,
    async ({ id, stats, remeasured }) => {
      const outcome = await writes.measureSample(result.runId, id, job, {
        latencyMs: values.get(id) as number,
        stats,
        thing: result.thing,
        deviceInfo,
        batchId: result.batchId,
        drift: result.quality.maxDrift,
        measuredAt: result.finishedAt,
        remeasured: remeasured === true,
      });
      if (outcome === 'recorded') recorded += 1;
      else if (outcome === 'duplicate') duplicates += 1;
      else rejected.push(id);
    },
  );
  // Only the writes that won their condition move the counter, so a repeated delivery never
  // double-counts. A crash between the writes can leave it short; the train task re-derives
  // it from the samples (`setMeasured`).
  if (recorded > 0) await writes.addMeasured(result.runId, recorded);
  const scale = result.quality.referenceScaleMs;
  if (recorded > 0 && result.settings.interleave && scale !== undefined) {
    await writes.setReferenceScale(result.runId, scale);
  }
  return { recorded, duplicates, rejected, unstable: false };
}
