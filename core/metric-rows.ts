/**
 * The training target of a predictor: `latency_ms` by default, or another measured metric
 * of the dataset lines (`peak_memory_mb`, `energy_mj`, or any numeric field), so that
 * `esm fit --metric NAME` trains the same models on it. Pure: takes parsed rows.
 */
import type { DatasetRow } from './dataset.ts';
import { DatasetFormatError, ValidationError } from './errors.ts';
import { knownMetrics } from './schemas/dataset.ts';
import { median } from './stats.ts';

export const DEFAULT_METRIC = 'latency_ms';

export interface MetricRows {
  /** Rows whose `latencyMs` holds the metric's value (the models' target field). */
  readonly rows: DatasetRow[];
  /** Lines without a value for the metric (missing or null), left out. */
  readonly skipped: number;
  /** Distinct reasons the lines gave for a null value (`metric_notes`). */
  readonly reasons: readonly string[];
}

/** Checks a metric name: a field name of the dataset lines. */
export function checkMetricName(metric: string, field = '--metric'): string {
  if (!/^[a-z][a-z0-9_]*$/.test(metric)) {
    throw new ValidationError(
      field,
      `"${metric}" is not a dataset field name; use ${knownMetrics.join(', ')} or another numeric field of the lines`,
    );
  }
  return metric;
}

/**
 * The rows with a value for `metric`, that value as the target. Lines where the metric is
 * missing or null (not measurable on that device) are left out and counted; a value that is
 * not a positive number stops with the file, line and field.
 */
export function rowsForMetric(
  rows: readonly DatasetRow[],
  metric: string,
  file: string,
  field = '--metric',
): MetricRows {
  checkMetricName(metric, field);
  if (metric === DEFAULT_METRIC) return { rows: [...rows], skipped: 0, reasons: [] };
  const out: DatasetRow[] = [];
  const reasons = new Set<string>();
  let skipped = 0;
  for (const row of rows) {
    const value = row.extra[metric];
    if (value === undefined || value === null) {
      skipped++;
      const note = (row.extra.metric_notes as Record<string, unknown> | undefined)?.[metric];
      if (typeof note === 'string') reasons.add(note);
      continue;
    }
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new DatasetFormatError(
        file,
        row.line,
        `field ${metric}: got ${JSON.stringify(value)}; a metric to train on must be a positive number (null where it was not measured)`,
      );
    }
    out.push({ ...row, latencyMs: value });
  }
  if (out.length === 0) {
    const why = reasons.size > 0 ? ` (the lines say: ${[...reasons].join('; ')})` : '';
    throw new ValidationError(
      field,
      `no line of ${file} has a value for ${metric}${why}; measure it with esm run --metric ${metric} or pick another metric`,
    );
  }
  return { rows: out, skipped, reasons: [...reasons] };
}

/**
 * The rows whose value of `metric` is at least `floor` (a replay pool's `dropBelow`); rows
 * without a value stay, since nothing says they are small. Refuses a floor that leaves fewer
 * than two rows, naming `field`.
 */
export function rowsAtLeast(
  rows: readonly DatasetRow[],
  metric: string,
  floor: number,
  file: string,
  field = 'dropBelow',
): DatasetRow[] {
  const kept = rows.filter((row) => {
    const value = metric === DEFAULT_METRIC ? row.latencyMs : row.extra[metric];
    return typeof value !== 'number' || value >= floor;
  });
  if (kept.length < 2) {
    throw new ValidationError(field, `leaves ${kept.length} rows of ${file}; lower it`);
  }
  return kept;
}

/**
 * The values under a tenth of the median of `values`, and that floor to three significant
 * digits. Accuracy is a mean relative error, so a few values far below the others swamp it
 * (the NAS-Bench-201 cells without an input-output path, ../shared/data/README.md).
 */
export function tinyValues(values: readonly number[]): { count: number; floor: number } {
  const floor = Number((0.1 * median(Float64Array.from(values).sort())).toPrecision(3));
  return { count: values.filter((v) => v < floor).length, floor };
}

/** What a replay pool's floor does to its rows, said before the run (`esm run`, `POST /runs`). */
export interface PoolFloor {
  /** Rows with a value of the metric. */
  readonly rows: number;
  /** With `dropBelow`: the rows it leaves out of the pool. */
  readonly leftOut?: number;
  /** Without `dropBelow`: the rows under a tenth of the median (`tinyValues`), if any. */
  readonly tiny?: { readonly count: number; readonly floor: number };
}

/**
 * `rows` (a replay pool's parsed lines) as `poolFloor` describes them: how many have a value
 * of `metric`, and how many `dropBelow` leaves out or, without one, how many lie so far below
 * the others that relative errors on them can keep their bins under AccTH. Refuses, naming
 * `fields`, a metric no row has, a floor that leaves fewer than two rows, and a first batch
 * (`nInit`) larger than the pool, which a replay draws without repeats.
 */
export function poolFloor(
  rows: readonly DatasetRow[],
  pool: { metric: string; dropBelow?: number; file: string; nInit: number },
  fields: { metric: string; dropBelow: string; nInit: string },
): PoolFloor {
  const { metric, dropBelow, file, nInit } = pool;
  const valued = rowsForMetric(rows, metric, file, fields.metric).rows;
  const kept =
    dropBelow === undefined
      ? valued
      : rowsAtLeast(valued, metric, dropBelow, file, fields.dropBelow);
  if (kept.length < nInit) {
    const which = dropBelow === undefined ? '' : ` left by ${fields.dropBelow} ${dropBelow}`;
    throw new ValidationError(
      fields.nInit,
      `the first batch of ${nInit} is more than the ${kept.length} rows of ${file}${which}; lower it to ${kept.length} or fewer, or replay a larger dataset`,
    );
  }
  if (dropBelow !== undefined) return { rows: valued.length, leftOut: valued.length - kept.length };
  const tiny = tinyValues(valued.map((row) => row.latencyMs));
  return tiny.count === 0 ? { rows: valued.length } : { rows: valued.length, tiny };
}
