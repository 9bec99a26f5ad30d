/**
 * The ESM loop's files and messages: run parameters, the planned samples of a batch, one
 * record per iteration and the resumable run state. Local mode writes them as JSON files in a
 * run directory (local/run-store.ts); the cloud workflow passes the same shapes between its
 * Step Functions tasks.
 */
import { z } from 'zod';
import { encodingNames } from '../encodings/types.ts';
import { loopSamplingStrategies } from '../sampling.ts';
import { measurementSettings } from './protocol.ts';

export const RUN_STATE_VERSION = 1;

/** Everything that determines a run; recorded in the run state so a run can be reproduced. */
export const runParams = z.object({
  /** Built-in space name or the path of a user-defined spec (as given on the command line). */
  space: z.string().min(1),
  /** The JSON spec of a user-defined space, so the run directory is self-contained. */
  spaceSpec: z.record(z.string(), z.unknown()).optional(),
  /** `local`, `dataset:FILE` or `thing:NAME`. */
  device: z.string().min(1),
  /** MQTT broker URL for `thing:NAME` devices. */
  broker: z.string().optional(),
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
  /** Weight of a failing bin in the extension step (passing bins weigh 1). */
  w1: z.number().positive().max(1000).default(3),
  /** Iterations (train + evaluate) before giving up. */
  maxIter: z.number().int().min(1).max(1000).default(4),
  /**
   * Fewest test samples a bin needs before its accuracy may count as converged (fewer: the
   * bin fails and is weighted w1). 1 = any tested bin may pass.
   */
  minTestPerBin: z.number().int().min(1).max(10_000).default(1),
  /** Share of every batch, stratified per depth bin, held out as test samples. */
  testFraction: z.number().gt(0).lt(1).default(0.2),
  seed: z.number().int().min(0).max(0xffffffff).default(1),
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
});

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
  /** Why the loop stops after this iteration, or null when it continues. */
  reason: z.enum(['converged', 'max-iter']).nullable(),
  /** Bin weights of the next extension (empty when the loop stops). */
  nextBinWeights: z.array(z.number()),
  finishedAt: z.string(),
});
export type IterationRecord = z.infer<typeof iterationRecord>;

/** The resumable state of a run, rewritten atomically after every step. */
export const runState = z.object({
  version: z.literal(RUN_STATE_VERSION),
  runId: z.string().min(1),
  params: runParams,
  createdAt: z.string(),
  status: z.enum(['running', 'converged', 'max-iter', 'failed']),
  /** The iteration whose batch is being measured or trained next. */
  iteration: z.number().int().nonnegative(),
  /** The batch of `iteration`, once planned; measured ids are in dataset.jsonl. */
  batch: z.array(plannedSample).nullable(),
  /** Measurement seconds accumulated in the current iteration (survives a resume). */
  secondsMeasuring: z.number().nonnegative().default(0),
  remeasured: z.number().int().nonnegative().default(0),
  maxDrift: z.number().nonnegative().default(0),
  error: z.string().optional(),
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
  device: z.string().optional(),
  space: z.string().optional(),
  measured_at: z.string().optional(),
});
export type RunDatasetLine = z.infer<typeof runDatasetLine>;
