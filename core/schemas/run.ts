/**
 * The ESM loop's files and messages: run parameters, the planned samples of a batch, one
 * record per iteration and the resumable run state. Local mode writes them as JSON files in a
 * run directory (local/run-store.ts); the cloud workflow passes the same shapes between its
 * Step Functions tasks.
 */
import { z } from 'zod';
import { encodingNames } from '../encodings/types.ts';
import { modelKinds } from '../predictor/types.ts';
import { loopSamplingStrategies } from '../sampling.ts';
import { latencyStats } from './dataset.ts';
import { deviceMetricNames, measurementSettings, thingName } from './protocol.ts';

export const RUN_STATE_VERSION = 2;

/** Everything that determines a run; recorded in the run state so a run can be reproduced. */
export const runParams = z.object({
  /** Built-in space name or the path of a user-defined spec (as given on the command line). */
  space: z.string().min(1),
  /** The JSON spec of a user-defined space, so the run directory is self-contained. */
  spaceSpec: z.record(z.string(), z.unknown()).optional(),
  /** `local`, `dataset:FILE`, `thing:NAME` or several `thing:A,thing:B` (fan-out). */
  device: z.string().min(1),
  /**
   * The devices that measure, as IoT thing names; every batch is sharded over them. Absent:
   * the things named in `device` (`thingsOf`).
   */
  things: z.array(thingName).min(1).max(100).optional(),
  /** MQTT broker URL for `thing:NAME` devices. */
  broker: z.string().optional(),
  /**
   * Replay: a dataset (a `DatasetStore` key: an S3 key in the cloud, a file path locally)
   * whose architectures are the only ones sampled. The device answers from the same dataset.
   */
  pool: z.string().min(1).optional(),
  /**
   * Replay: pool rows whose value of `metric` is below this leave the pool before anything is
   * sampled, so no bin holds them (NAS-Bench-201's cells without an input-output path measure
   * a few tenths of a millisecond, and their relative errors keep a bin under AccTH). Rows
   * without a value of the metric stay. Only with a pool.
   */
  dropBelow: z.number().nonnegative().optional(),
  /**
   * Transfer (`esm run --prior DIR`): a `DatasetStore` key of another device's predictor.json
   * (an S3 key in the cloud, a file path locally). Every iteration then fits a correction of
   * that predictor (core/predictor/transfer.ts) instead of `model` from scratch. Without an
   * explicit `nInit` a run with a prior starts with `PRIOR_N_INIT` architectures.
   */
  prior: z.string().min(1).optional(),
  /** The regressor trained every iteration. @default `defaultModelKind` (core/predictor) */
  model: z.enum(modelKinds).optional(),
  sampling: z.enum(loopSamplingStrategies).default('balanced'),
  encoding: z.enum(encodingNames).default('fcc'),
  /** N_I: architectures measured before the first training. */
  nInit: z.number().int().min(2).max(100_000).default(100),
  /** N_Step: architectures added per extension. */
  nStep: z.number().int().min(1).max(100_000).default(50),
  /** AccTH: per-bin accuracy (1 - MAPE) every bin must reach. */
  accTh: z.number().gt(0).lt(1).default(0.95),
  /** N_Bins: equal-width depth bins (capped at the number of depths). */
  bins: z.number().int().min(1).max(100).default(5),
  /**
   * The depths the bins span. @default the space's whole depth range; a replay run's Init sets
   * it to the depths its pool holds, since a measured dataset need not cover the space (HELP's
   * FBNet archs have 13..22 of 0..22 layers) and a bin the pool cannot fill never converges.
   */
  depthRange: z
    .object({ min: z.number().int().nonnegative(), max: z.number().int().nonnegative() })
    .strict()
    .refine((r) => r.min <= r.max, { message: 'min must not exceed max' })
    .optional(),
  /** Weight of a failing bin in the extension step (passing bins weigh 1). */
  w1: z.number().positive().max(1000).default(3),
  /** Iterations (train + evaluate) before giving up. */
  maxIter: z.number().int().min(1).max(1000).default(4),
  /**
   * Fewest test samples a bin needs before its accuracy may count as converged (fewer: the
   * bin fails and is weighted w1). 1 = any tested bin may pass.
   */
  minTestPerBin: z.number().int().min(1).max(10_000).default(1),
  /**
   * What a bin's accuracy is judged on when the loop decides. `test`: its test samples (the
   * paper's rule). `oof`: its test samples and the out-of-fold predictions of its training
   * samples from the model's own cross-validation (`auto` has them; another model falls back
   * to `test`), so every measured sample of the bin counts; with `--sampling active` only the
   * training samples drawn uniformly (the initial batch's) count, since the actively picked
   * ones are the hard cases by design. `minTestPerBin` then counts those samples too.
   */
  binAccuracy: z.enum(['test', 'oof']).default('test'),
  /**
   * With `binAccuracy: 'oof'`: a bin passes only when its accuracy minus this many standard
   * errors (of its rows' accuracies) reaches AccTH, so a bin judged on few rows near AccTH
   * does not pass by luck. 0 = the mean itself.
   */
  binAccuracyZ: z.number().min(0).max(5).default(0),
  /** Share of every batch, stratified per depth bin, held out as test samples. */
  testFraction: z.number().gt(0).lt(1).default(0.2),
  seed: z.number().int().min(0).max(0xffffffff).default(1),
  /**
   * What the predictor learns and the loop converges on: latency, or a metric the devices
   * measure besides it (protocol v1 minor 1; `measurement.metrics` must ask for it).
   */
  metric: z.enum(['latency_ms', ...deviceMetricNames]).default('latency_ms'),
  /** Timing settings sent to the device with every job. */
  measurement: measurementSettings.default({
    warmup: 5,
    runs: 15,
    threads: 1,
    batchSize: 1,
    referenceEvery: 0,
    maxReferenceDrift: 0.03,
  }),
  /** Samples per device job; results are stored when each job answers. */
  chunkSize: z.number().int().min(1).max(10_000).default(10),
  /**
   * A device that has sent no progress on its jobs for this long is presumed dead: its
   * unmeasured samples are dispatched again (to the other devices when there are several).
   * Counted from the last progress message, not from dispatch, so a slow device that keeps
   * reporting is never re-sent its work.
   */
  resultTimeoutSeconds: z.number().int().min(1).max(86_400).default(300),
  /** Re-dispatches after timeouts in one iteration before the run fails. */
  maxRedispatches: z.number().int().min(0).max(20).default(3),
});
export type RunParams = z.infer<typeof runParams>;
export type RunParamsInput = z.input<typeof runParams>;

export const splits = ['train', 'test'] as const;
export type Split = (typeof splits)[number];

/** One architecture chosen for measurement, with where it goes. */
export const plannedSample = z.object({
  /** Unique in the run: `i{iteration}-{index}`. */
  id: z.string().min(1),
  arch: z.record(z.string(), z.unknown()),
  /** `subnetKey` of the architecture: identity across batches. */
  key: z.string(),
  depth: z.number().int().nonnegative(),
  bin: z.number().int().nonnegative(),
  split: z.enum(splits),
  iteration: z.number().int().nonnegative(),
});
export type PlannedSample = z.infer<typeof plannedSample>;

export const binSummary = z.object({
  lo: z.number().int(),
  hi: z.number().int(),
  train: z.number().int().nonnegative(),
  test: z.number().int().nonnegative(),
  /** Mean accuracy of the bin's test samples; null without test samples. */
  accuracy: z.number().nullable(),
  /**
   * With `binAccuracy: 'oof'`: the samples the decision judged the bin on (test plus
   * out-of-fold training samples) and their mean accuracy; absent under the default rule.
   */
  decided: z
    .object({
      n: z.number().int().nonnegative(),
      accuracy: z.number().nullable(),
      /** With `binAccuracyZ` > 0: accuracy minus that many standard errors; what must pass. */
      lowerBound: z.number().optional(),
    })
    .optional(),
});
export type BinSummary = z.infer<typeof binSummary>;

export const overallMetrics = z.object({
  n: z.number().int().nonnegative(),
  /** Mean accuracy over all test samples (follows the sampling's depth distribution). */
  accuracy: z.number(),
  /** Mean of the per-bin accuracies: every depth bin counts the same, whatever was sampled. */
  binBalancedAccuracy: z.number().nullable(),
  within5: z.number(),
  within10: z.number(),
  rmse_ms: z.number(),
  spearman: z.number().nullable(),
});
export type OverallMetrics = z.infer<typeof overallMetrics>;

export const iterationQuality = z.object({
  /** Largest reference drift seen in the iteration's batches. */
  maxDrift: z.number().nonnegative(),
  /** Jobs whose results were flagged unstable and measured again. */
  remeasured: z.number().int().nonnegative(),
  /**
   * Samples of the iteration a device timed a second time because their runs spread more
   * than `maxSampleSpread`. Absent in records written before it was counted.
   */
  samplesRemeasured: z.number().int().nonnegative().optional(),
});

/**
 * A replay's last predictor scored on the pool rows the run never drew (core/pool-truth.ts),
 * per depth bin, beside the loop's own verdict on the bin.
 */
export const poolTruth = z.object({
  n: z.number().int().positive(),
  accuracy: z.number(),
  within10: z.number(),
  spearman: z.number().nullable(),
  bins: z.array(
    z.object({
      lo: z.number().int(),
      hi: z.number().int(),
      n: z.number().int().nonnegative(),
      /** Null when the run drew every row of the bin. */
      accuracy: z.number().nullable(),
      /** Whether the loop judged the bin passed (on its test samples, or out of fold). */
      passedByRun: z.boolean(),
    }),
  ),
});
export type PoolTruth = z.infer<typeof poolTruth>;

/** What one train-evaluate step produced; one line of iterations.jsonl. */
export const iterationRecord = z.object({
  iteration: z.number().int().nonnegative(),
  samples: z.object({ train: z.number().int(), test: z.number().int() }),
  bins: z.array(binSummary),
  overall: overallMetrics,
  secondsMeasuring: z.number().nonnegative(),
  secondsTraining: z.number().nonnegative(),
  quality: iterationQuality,
  converged: z.boolean(),
  stop: z.boolean(),
  /**
   * Why the loop stops after this iteration, or null when it continues: every bin passed,
   * `maxIter` iterations done, or (a replay) every architecture of its pool drawn.
   */
  reason: z.enum(['converged', 'max-iter', 'pool-exhausted']).nullable(),
  /** Bin weights of the next extension (empty when the loop stops). */
  nextBinWeights: z.array(z.number()),
  finishedAt: z.string(),
  /** Replay only, on the iteration that stops the loop: the predictor on the undrawn rows. */
  poolTruth: poolTruth.optional(),
});
export type IterationRecord = z.infer<typeof iterationRecord>;

/**
 * Run ids are Step Functions execution names: 1-80 of [A-Za-z0-9_-] (newRunId in
 * lambdas/handlers/api-start-run.ts).
 */
export const runIdParam = z
  .string()
  .regex(
    /^[A-Za-z0-9_-]{1,80}$/,
    'use the runId that POST /runs answered (1-80 letters, digits, "-", "_")',
  );

/** N_I with a prior: a correction needs few rows, and the loop stops once every bin passes. */
export const PRIOR_N_INIT = 20;

export const runStatuses = [
  'running',
  'converged',
  'max-iter',
  'pool-exhausted',
  'failed',
] as const;
export type RunStatus = (typeof runStatuses)[number];

/**
 * A run as the workflow keeps it (a DynamoDB item in the cloud, state.json locally): its
 * parameters and where the loop is. The counters are moved by the run-state store only.
 */
export const runRecord = z.object({
  runId: z.string().min(1),
  status: z.enum(runStatuses),
  /** The first device (`things[0]`), kept for the API and the predictor's name. */
  thing: z.string(),
  /** Every device that measures this run. */
  things: z.array(z.string()).default([]),
  space: z.string(),
  /** The validated run parameters, as started (seed included); interleaved runs gain `measurement.referenceScaleMs`. */
  params: z.record(z.string(), z.unknown()),
  /** Legacy per-run wait limits of `POST /runs` (lambdas/workflow/run-context.ts). */
  limits: z.record(z.string(), z.unknown()).optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
  /** Current iteration, 0 for the initial batch. */
  iteration: z.number().int().nonnegative(),
  /** Dispatches of the current iteration (each gives fresh job ids). */
  attempts: z.number().int().nonnegative(),
  /** Id of the job last published. */
  batchId: z.string().optional(),
  dispatchedAt: z.string().optional(),
  /** When the current iteration's batch was first published (measuring time starts). */
  iterationStartedAt: z.string().optional(),
  /** Samples measured over the whole run; moved only by pending -> measured writes. */
  measured: z.number().int().nonnegative(),
  /** Job ids whose results the device flagged unstable. */
  unstableBatches: z.array(z.string()).default([]),
  /** The last unstable result: which device and how far its references drifted. */
  lastUnstable: z
    .object({ batchId: z.string(), thing: z.string(), maxDrift: z.number() })
    .optional(),
  /**
   * The last job a device refused or failed for good (status error, docs/protocol.md): the
   * run fails with it rather than waiting for a result that will not come.
   */
  deviceError: z
    .object({ thing: z.string(), batchId: z.string(), code: z.string(), message: z.string() })
    .optional(),
  /** Re-dispatches spent on unstable results in the current iteration. */
  unstableRetries: z.number().int().nonnegative(),
  /** Re-dispatches spent on silent devices in the current iteration. */
  redispatches: z.number().int().nonnegative().default(0),
  /** Devices presumed dead in the current iteration (their work goes to the others). */
  silent: z.array(z.string()).default([]),
  /** Per device: when it last reported progress (or a result) on a job of this run. */
  progress: z.record(z.string(), z.string()).default({}),
  predictorId: z.string().optional(),
  error: z.object({ name: z.string(), message: z.string() }).optional(),
});
export type RunRecord = z.infer<typeof runRecord>;

/** The fields of a run the workflow tasks may set (never the counters). */
export type RunPatch = Partial<
  Pick<
    RunRecord,
    | 'status'
    | 'iteration'
    | 'batchId'
    | 'attempts'
    | 'dispatchedAt'
    | 'iterationStartedAt'
    | 'unstableRetries'
    | 'redispatches'
    | 'silent'
    | 'predictorId'
    | 'error'
    | 'params'
    | 'deviceError'
  >
>;

/** A planned sample as stored: pending until a device's result measures it. */
export const sampleRecord = plannedSample.extend({
  runId: z.string(),
  status: z.enum(['pending', 'measured']),
  /** The job (and device) the sample is currently assigned to; absent: to be dispatched. */
  assignedThing: z.string().optional(),
  assignedBatch: z.string().optional(),
  assignedAt: z.string().optional(),
  /** Every `thing/batchId` the sample was sent in: only their results may measure it. */
  jobs: z.array(z.string()).default([]),
  latencyMs: z.number().optional(),
  stats: latencyStats.optional(),
  /** The device that measured it. */
  thing: z.string().optional(),
  /** How that device describes itself (cpu, runtime, threads). */
  deviceInfo: z.string().optional(),
  /** The job whose result measured it. */
  batchId: z.string().optional(),
  /** Largest reference drift of that job. */
  drift: z.number().optional(),
  measuredAt: z.string().optional(),
  /** Measured a second time because its runs spread widely (`maxSampleSpread`). */
  remeasured: z.boolean().optional(),
});
export type SampleRecord = z.infer<typeof sampleRecord>;

/** One iteration of a run as stored: the core's record plus where its predictor is. */
export const storedIteration = iterationRecord.extend({
  runId: z.string(),
  predictorId: z.string(),
});
export type StoredIteration = z.infer<typeof storedIteration>;

/** What ingesting one device result did. */
export interface IngestOutcome {
  /** Samples that went from pending to measured with this message. */
  readonly recorded: number;
  /** Samples already measured (a repeated or late delivery): left as they were. */
  readonly duplicates: number;
  /**
   * Sample ids that are not part of the run, or were never sent to this device in this job:
   * nothing written for them.
   */
  readonly rejected: readonly string[];
  /** The device flagged the batch unstable: no latency was recorded. */
  readonly unstable: boolean;
}

/** `thing/batchId`: one dispatch of a sample, as recorded in `SampleRecord.jobs`. */
export const jobKey = (thing: string, batchId: string) => `${thing}/${batchId}`;

/** Thing names of the devices `esm run` starts in its own process (on its own broker). */
export const embeddedThings = { local: 'esm-local', replay: 'esm-replay' } as const;

/**
 * The devices of a run: `things`, or those named by `device` (`thing:A,thing:B`; the embedded
 * device and the replay device of `local` and `dataset:FILE` have fixed names, so a resumed
 * run talks to the same thing).
 */
export function thingsOf(params: Pick<RunParams, 'device' | 'things'>): string[] {
  if (params.things !== undefined) return [...params.things];
  if (params.device === 'local') return [embeddedThings.local];
  if (params.device.startsWith('dataset:')) return [embeddedThings.replay];
  return params.device
    .split(',')
    .map((d) => d.trim())
    .filter((d) => d.startsWith('thing:'))
    .map((d) => d.slice('thing:'.length));
}

/** The dataset a replay run samples from: `pool`, or the file of `device: dataset:FILE`. */
export function poolOf(params: Pick<RunParams, 'device' | 'pool'>): string | undefined {
  if (params.pool !== undefined) return params.pool;
  return params.device.startsWith('dataset:') ? params.device.slice('dataset:'.length) : undefined;
}

/**
 * Settings a resume may change: they decide how to measure and when to stop, not what was
 * measured, so the run stays one experiment. Everything else is fixed at the start.
 */
export const resumableParams = ['maxIter', 'accTh', 'resultTimeoutSeconds'] as const;

/**
 * Measurement defaults that depend on the device. The embedded device (`local`) shares this
 * machine's cores with everything else: it times CPU time, interleaves every sample with a
 * reference model (docs/measurement.md), allows 30 % reference drift (20-30 % seen under
 * load, docs/run.md) and measures a sample again when its runs spread more than 30 % of their
 * median (bursts of interference, docs/measurement.md). Remote devices are dedicated: wall
 * clock, absolute latencies, the paper's 3 % and every sample measured once.
 */
export function measurementDefaults(device: string) {
  const embedded = device === 'local';
  return {
    maxReferenceDrift: embedded ? 0.3 : 0.03,
    maxSampleSpread: embedded ? 0.3 : undefined,
    clock: embedded ? ('cpu' as const) : ('wall' as const),
    interleave: embedded,
  };
}

/** The resumable state of a run directory (state.json): the run and its planned samples. */
export const runState = runRecord.extend({
  version: z.literal(RUN_STATE_VERSION),
  params: runParams,
  /** Every planned sample with its status; measured latencies are in dataset.jsonl too. */
  samples: z.array(sampleRecord).default([]),
  /** Why the run failed: the message (report.html shows it). */
  error: z.string().optional(),
  errorName: z.string().optional(),
});
export type RunState = z.infer<typeof runState>;

/** One line of a run's dataset.jsonl: a dataset line (usable by `esm fit`) plus its plan. */
export const runDatasetLine = z.looseObject({
  id: z.string(),
  arch: z.record(z.string(), z.unknown()),
  latency_ms: z.number().positive(),
  std_ms: z.number().nonnegative().optional(),
  runs: z.number().int().positive().optional(),
  depth: z.number().int().nonnegative(),
  bin: z.number().int().nonnegative(),
  split: z.enum(splits),
  iteration: z.number().int().nonnegative(),
  /** How the device that measured describes itself. */
  device: z.string().optional(),
  /** The thing name of the device that measured (fan-out runs have several). */
  thing: z.string().optional(),
  space: z.string().optional(),
  measured_at: z.string().optional(),
});
export type RunDatasetLine = z.infer<typeof runDatasetLine>;
