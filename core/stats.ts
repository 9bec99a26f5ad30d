/**
 * Statistics of timed runs, pure and shared: the device client trims and judges a sample's
 * runs with them, the report summarises a run's samples with the same definitions.
 */
import type { LatencyStats } from './schemas/dataset.ts';

/** The median of values sorted ascending (the mean of the middle two for an even count). */
export function median(sorted: ArrayLike<number>): number {
  const n = sorted.length;
  const mid = Math.floor(n / 2);
  return n % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** How widely a sample's timed runs spread: std / median (what `maxSampleSpread` judges). */
export function spread(stats: Pick<LatencyStats, 'std_ms' | 'median_ms'>): number {
  return stats.std_ms / stats.median_ms;
}
