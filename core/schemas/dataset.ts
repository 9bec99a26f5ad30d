/**
 * A measured dataset: one JSON object per line. Only `arch` and `latency_ms` are required;
 * extra fields (other metrics) are kept as they are.
 */
import { z } from 'zod';

export const latencyStats = z.object({
  median_ms: z.number().positive(),
  mean_ms: z.number().positive(),
  std_ms: z.number().nonnegative(),
  min_ms: z.number().positive(),
  max_ms: z.number().positive(),
  /** Timed runs kept after outlier trimming. */
  runs: z.number().int().positive(),
});
export type LatencyStats = z.infer<typeof latencyStats>;

/**
 * Metrics a dataset line may carry besides `latency_ms`, each a number or null (not measurable
 * on that device; `metric_notes.NAME` says why). `esm fit --metric NAME` trains on one of them,
 * or on any other numeric field of the lines.
 */
export const knownMetrics = ['latency_ms', 'peak_memory_mb', 'energy_mj'] as const;

const optionalMetric = z.number().nonnegative().nullable().optional();

export const datasetLine = z.looseObject({
  arch: z.unknown().refine((a) => typeof a === 'object' && a !== null && !Array.isArray(a), {
    message: 'must be a JSON object with the native architecture',
  }),
  latency_ms: z.number().positive(),
  std_ms: z.number().nonnegative().optional(),
  runs: z.number().int().positive().optional(),
  device: z.string().optional(),
  space: z.string().optional(),
  measured_at: z.string().optional(),
  /** Peak resident memory of the model on the device, MB (docs/protocol.md). */
  peak_memory_mb: optionalMetric,
  /** Energy of one inference, millijoules. */
  energy_mj: optionalMetric,
  /** Why a metric is null, by metric name. */
  metric_notes: z.record(z.string(), z.string()).optional(),
});
export type DatasetLine = z.infer<typeof datasetLine>;
