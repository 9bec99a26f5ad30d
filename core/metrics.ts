/**
 * Accuracy metrics of a latency predictor, with one definition everywhere (docs/metrics.md):
 * the ESM paper's accuracy (1 - MAPE), hit rates within 5 % and 10 %, RMSE and Spearman's
 * rank correlation, overall and per depth bin.
 */
import { ValidationError } from './errors.ts';
import type { DepthBin } from './sampling.ts';

export type { DepthBin } from './sampling.ts';

export interface BinEvaluation {
  readonly lo: number;
  readonly hi: number;
  readonly n: number;
  /** Mean accuracy of the bin's samples; null when the bin has no samples. */
  readonly accuracy: number | null;
}

export interface Evaluation {
  readonly n: number;
  /** mean(1 - |pred - measured| / measured); negative when predictions are off by > 100 %. */
  readonly accuracy: number;
  /** Share of samples with relative error <= 5 %. */
  readonly within5: number;
  /** Share of samples with relative error <= 10 %. */
  readonly within10: number;
  readonly rmse_ms: number;
  /** Spearman's rho with average ranks for ties; null when either side is constant. */
  readonly spearman: number | null;
  readonly bins?: readonly BinEvaluation[];
}

/** The headline metrics of an evaluation, without its bins (the JSON that CLIs and files report). */
export function headline(e: Evaluation): Omit<Evaluation, 'bins'> {
  const { n, accuracy, within5, within10, rmse_ms, spearman } = e;
  return { n, accuracy, within5, within10, rmse_ms, spearman };
}

export interface EvaluateOptions {
  readonly predicted: ArrayLike<number>;
  /** Measured latencies in ms; must be positive. */
  readonly measured: ArrayLike<number>;
  /** Depth of each sample; required with `bins`. */
  readonly depths?: ArrayLike<number>;
  /** Depth bins to report accuracy on (inclusive `lo`..`hi`, e.g. from `depthBins`). */
  readonly bins?: readonly DepthBin[];
}

/** Relative errors within this slack of a threshold count as within (float noise). */
const EPS = 1e-12;

export function evaluate(options: EvaluateOptions): Evaluation {
  const { predicted, measured, depths, bins } = options;
  const n = measured.length;
  if (n === 0) throw new ValidationError('measured', 'needs at least one sample to evaluate');
  if (predicted.length !== n) {
    throw new ValidationError(
      'predicted',
      `has ${predicted.length} values but measured has ${n}; pass one prediction per sample`,
    );
  }
  const accuracies = new Float64Array(n);
  let within5 = 0;
  let within10 = 0;
  let squared = 0;
  for (let i = 0; i < n; i++) {
    const m = measured[i] as number;
    const p = predicted[i] as number;
    if (!(m > 0)) {
      throw new ValidationError(`measured[${i}]`, `must be a positive latency, got ${m}`);
    }
    if (!Number.isFinite(p)) {
      throw new ValidationError(`predicted[${i}]`, `must be a finite number, got ${p}`);
    }
    const rel = Math.abs(p - m) / m;
    accuracies[i] = 1 - rel;
    if (rel <= 0.05 + EPS) within5++;
    if (rel <= 0.1 + EPS) within10++;
    squared += (p - m) ** 2;
  }
  const result: Evaluation = {
    n,
    accuracy: mean(accuracies),
    within5: within5 / n,
    within10: within10 / n,
    rmse_ms: Math.sqrt(squared / n),
    spearman: spearman(predicted, measured),
  };
  if (!bins) return result;
  if (!depths || depths.length !== n) {
    throw new ValidationError('depths', `per-bin evaluation needs one depth per sample (${n})`);
  }
  return { ...result, bins: binAccuracies(accuracies, depths, bins) };
}

function binAccuracies(
  accuracies: Float64Array,
  depths: ArrayLike<number>,
  bins: readonly DepthBin[],
): BinEvaluation[] {
  return bins.map(({ lo, hi }) => {
    let sum = 0;
    let count = 0;
    for (let i = 0; i < accuracies.length; i++) {
      const d = depths[i] as number;
      if (d >= lo && d <= hi) {
        sum += accuracies[i] as number;
        count++;
      }
    }
    return { lo, hi, n: count, accuracy: count > 0 ? sum / count : null };
  });
}

function mean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] as number;
  return sum / values.length;
}

/** 1-based ranks; tied values share the mean of the ranks they span. */
export function averageRanks(values: ArrayLike<number>): Float64Array {
  const order = Array.from({ length: values.length }, (_, i) => i).sort(
    (a, b) => (values[a] as number) - (values[b] as number),
  );
  const ranks = new Float64Array(values.length);
  let i = 0;
  while (i < order.length) {
    let j = i;
    while (j + 1 < order.length && values[order[j + 1] as number] === values[order[i] as number]) {
      j++;
    }
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k] as number] = rank;
    i = j + 1;
  }
  return ranks;
}

/** Spearman's rho: Pearson correlation of average ranks; null when either side is constant. */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number | null {
  const ra = averageRanks(a);
  const rb = averageRanks(b);
  const ma = mean(ra);
  const mb = mean(rb);
  let cov = 0;
  let va = 0;
  let vb = 0;
  for (let i = 0; i < ra.length; i++) {
    const da = (ra[i] as number) - ma;
    const db = (rb[i] as number) - mb;
    cov += da * db;
    va += da * da;
    vb += db * db;
  }
  if (va === 0 || vb === 0) return null;
  return cov / Math.sqrt(va * vb);
}
