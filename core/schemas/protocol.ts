/**
 * The device protocol (MQTT), version 1. Topics are per device:
 *   jobs:    esm/devices/{thing}/jobs     (platform -> device)
 *   results: esm/devices/{thing}/results  (device -> platform)
 *   status:  esm/devices/{thing}/status   (device -> platform; heartbeats, progress, errors)
 * Both ends validate every message with these schemas. Delivery is at-least-once (QoS 1),
 * so consumers are idempotent per (runId, batchId) and (runId, sample id).
 */
import { z } from 'zod';
import { latencyStats } from './dataset.ts';

export const PROTOCOL_VERSION = 1;
/**
 * Additive revisions within version 1, carried as `minor`: 1 = per-sample metrics beyond
 * latency (`settings.metrics`, `samples[].metrics`). A peer of minor 0 drops the unknown
 * fields (zod strips them), so old devices answer without metrics and old platforms ignore them.
 */
export const PROTOCOL_MINOR = 1;

/** Metrics a device can measure besides latency (docs/protocol.md, "Metrics beyond latency"). */
export const deviceMetricNames = ['peak_memory_mb', 'energy_mj'] as const;
export type DeviceMetricName = (typeof deviceMetricNames)[number];

/**
 * One measured metric: its value, or null with the reason (no counter on this hardware, not
 * readable ...). A metric that cannot be measured never fails the job.
 */
export const metricReading = z.object({
  value: z.number().nonnegative().nullable(),
  /** How it was measured, e.g. "child process: peak RSS - RSS before the session". */
  method: z.string().optional(),
  /** Why `value` is null. */
  reason: z.string().optional(),
});
export type MetricReading = z.infer<typeof metricReading>;

export const sampleMetrics = z.object({
  peak_memory_mb: metricReading.optional(),
  energy_mj: metricReading.optional(),
});
export type SampleMetrics = z.infer<typeof sampleMetrics>;

export const topics = {
  jobs: (thing: string) => `esm/devices/${thing}/jobs`,
  results: (thing: string) => `esm/devices/${thing}/results`,
  status: (thing: string) => `esm/devices/${thing}/status`,
} as const;

/** Thing names as AWS IoT allows them; also keeps topic wildcards out of topic names. */
export const thingName = z
  .string()
  .regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'use 1-128 letters, digits, ":", "_" or "-"');

export const measurementSettings = z.object({
  /** Untimed runs before timing. */
  warmup: z.number().int().min(0).max(1000).default(10),
  /** Timed runs per model. */
  runs: z.number().int().min(1).max(10_000).default(30),
  /** onnxruntime intra-op threads. */
  threads: z.number().int().min(1).max(256).default(1),
  batchSize: z.number().int().min(1).max(1024).default(1),
  /** Measure the reference models again every k samples (0: only at start and end). */
  referenceEvery: z.number().int().min(0).default(0),
  /** Largest allowed relative drift of a reference model's median within a batch. */
  maxReferenceDrift: z.number().positive().max(1).default(0.03),
  /**
   * What a run's time is: `wall` (elapsed, the latency on a dedicated device; the default) or
   * `cpu` (this process's CPU time, robust to other processes sharing the cores; needs one
   * thread on the CPU provider). Optional, so v1 peers that do not know it stay compatible.
   */
  clock: z.enum(['wall', 'cpu']).optional(),
  /**
   * Time every sample alternately, run by run, with the first reference model and report its
   * latency as (median of the per-run ratios sample / reference) x `referenceScaleMs`. Both
   * models see the same changes of the machine's speed, so the ratio is far steadier between
   * processes than an absolute median (docs/BENCHMARKS.md, "Interleaving").
   */
  interleave: z.boolean().optional(),
  /**
   * The reference's calibrated latency for `interleave`; absent, the job uses its first
   * reference check and reports it in `quality.referenceScaleMs`, which the platform sends
   * with every later job of the run so that all share one scale.
   */
  referenceScaleMs: z.number().positive().optional(),
  /**
   * Measure a sample once more, after the batch's other samples, when its runs spread more
   * than this (std_ms / median_ms), and report the measurement that spread less: a burst of
   * interference that slows some of a sample's runs moves its median and widens its runs (one
   * that slows all of them alike is not seen; docs/measurement.md). Absent: no sample is
   * measured twice. Optional, so older peers stay compatible.
   */
  maxSampleSpread: z.number().positive().max(10).optional(),
  /**
   * Metrics to measure per sample besides latency (minor 1). Optional, so minor-0 peers stay
   * compatible; a device that cannot measure one reports it as null with the reason.
   */
  metrics: z.array(z.enum(deviceMetricNames)).max(deviceMetricNames.length).optional(),
});
export type MeasurementSettings = z.infer<typeof measurementSettings>;

const archEntry = z.object({
  id: z.string().min(1).max(200),
  arch: z.record(z.string(), z.unknown()),
});

export const jobMessage = z.object({
  v: z.literal(PROTOCOL_VERSION),
  /** Revision within v1 (PROTOCOL_MINOR); absent = 0. */
  minor: z.number().int().nonnegative().optional(),
  type: z.literal('job'),
  runId: z.string().min(1).max(200),
  batchId: z.string().min(1).max(200),
  /** Built-in space name, or the name of `spaceSpec`. */
  space: z.string().min(1),
  /** The JSON spec of a user-defined space (absent for built-in spaces). */
  spaceSpec: z.record(z.string(), z.unknown()).optional(),
  samples: z.array(archEntry).min(1).max(10_000),
  settings: measurementSettings,
  /** Models measured at the start and end of the batch (and every k samples) to detect drift. */
  references: z.array(archEntry.extend({ space: z.string() })).default([]),
});
export type JobMessage = z.infer<typeof jobMessage>;

export const deviceFacts = z.object({
  thing: z.string(),
  cpu: z.string(),
  cores: z.number().int().positive(),
  accelerator: z.string().nullable(),
  os: z.string(),
  node: z.string(),
  onnxruntime: z.string(),
  executionProvider: z.string(),
});
export type DeviceFacts = z.infer<typeof deviceFacts>;

export const referenceResult = z.object({
  id: z.string(),
  /** One entry per time the reference was measured in the batch, in order. */
  checks: z.array(latencyStats).min(1),
  /** (max median - min median) / min median over the checks. */
  drift: z.number().nonnegative(),
});

export const resultMessage = z.object({
  v: z.literal(PROTOCOL_VERSION),
  /** Revision within v1 the device speaks (PROTOCOL_MINOR); absent = 0 (no metrics). */
  minor: z.number().int().nonnegative().optional(),
  type: z.literal('result'),
  runId: z.string(),
  batchId: z.string(),
  thing: z.string(),
  samples: z.array(
    z.object({
      id: z.string(),
      stats: latencyStats,
      /** The metrics `settings.metrics` asked for (minor 1). */
      metrics: sampleMetrics.optional(),
      /** True when `settings.maxSampleSpread` had it measured a second time (absent: once). */
      remeasured: z.literal(true).optional(),
    }),
  ),
  references: z.array(referenceResult).default([]),
  quality: z.object({
    maxDrift: z.number().nonnegative(),
    /** True when a reference drifted more than `maxReferenceDrift`: the batch must not be trusted. */
    unstable: z.boolean(),
    /** The reference latency that interleaved samples were scaled by (`settings.interleave`). */
    referenceScaleMs: z.number().positive().optional(),
    /** With `settings.maxSampleSpread`: how many samples were measured a second time. */
    samplesRemeasured: z.number().int().nonnegative().optional(),
  }),
  device: deviceFacts,
  settings: measurementSettings,
  startedAt: z.string(),
  finishedAt: z.string(),
});
export type ResultMessage = z.infer<typeof resultMessage>;

export const statusMessage = z.object({
  v: z.literal(PROTOCOL_VERSION),
  type: z.literal('status'),
  thing: z.string(),
  state: z.enum(['online', 'idle', 'busy', 'offline', 'error']),
  at: z.string(),
  batchId: z.string().optional(),
  progress: z.object({ done: z.number().int(), total: z.number().int() }).optional(),
  queue: z.number().int().nonnegative().optional(),
  error: z
    .object({ code: z.string(), message: z.string(), batchId: z.string().optional() })
    .optional(),
  device: deviceFacts.optional(),
});
export type StatusMessage = z.infer<typeof statusMessage>;

/**
 * Codes of `status.error` (see docs/protocol.md). All but `STOPPED` are final for the batch;
 * `STOPPED` means the device shut down before finishing it: dispatch the batch again.
 */
export const statusErrorCodes = [
  'MALFORMED_JSON',
  'UNSUPPORTED_VERSION',
  'INVALID_JOB',
  'QUEUE_FULL',
  'JOB_FAILED',
  'STOPPED',
] as const;
export type StatusErrorCode = (typeof statusErrorCodes)[number];
