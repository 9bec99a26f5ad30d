/**
 * The truth about a replay: the loop's predictor scored on every row of the replayed dataset
 * that the run never drew. The loop judges a bin on a few test samples (one or two per bin
 * at first), so a bin can pass by chance; a replay knows every latency, so it can say how the
 * predictor does on the rest, and which bins passed on their test samples only.
 */
import { binPassed } from './loop.ts';
import { evaluate } from './metrics.ts';
import type { Featurizer } from './predictor/index.ts';
import type { Regressor } from './predictor/types.ts';
import type { DepthBin } from './sampling.ts';
import type { BinSummary, PoolTruth, RunParams } from './schemas/run.ts';
import { depth } from './spaces/subnet.ts';
import type { Subnet } from './spaces/types.ts';

/** A pool row the run has not drawn, with the value of the run's metric. */
export interface UndrawnRow {
  readonly subnet: Subnet;
  readonly latencyMs: number;
}

export interface ScorePoolOptions {
  readonly featurizer: Featurizer;
  readonly regressor: Regressor;
  readonly rows: readonly UndrawnRow[];
  /** The run's depth bins, and the loop's summary of each (what it judged). */
  readonly bins: readonly DepthBin[];
  readonly judged: readonly BinSummary[];
  readonly params: Pick<RunParams, 'accTh' | 'minTestPerBin'>;
}

/** The predictor on the undrawn rows, per bin; undefined when the run drew every row. */
export async function scorePoolTruth(options: ScorePoolOptions): Promise<PoolTruth | undefined> {
  const { featurizer, regressor, rows, bins, judged, params } = options;
  if (rows.length === 0) return undefined;
  const predicted = await regressor.predict(featurizer.encodeAll(rows.map((r) => r.subnet)));
  const evaluation = evaluate({
    predicted,
    measured: rows.map((r) => r.latencyMs),
    depths: rows.map((r) => depth(r.subnet)),
    bins,
  });
  return {
    n: evaluation.n,
    accuracy: evaluation.accuracy,
    within10: evaluation.within10,
    spearman: evaluation.spearman,
    bins: (evaluation.bins ?? []).map((b, i) => {
      const bin = judged[i];
      return {
        lo: b.lo,
        hi: b.hi,
        n: b.n,
        accuracy: b.accuracy,
        passedByRun: bin !== undefined && binPassed(bin, params),
      };
    }),
  };
}

/** The bins the loop passed whose accuracy on the undrawn rows is under AccTH. */
export function falsePasses(truth: PoolTruth, accTh: number): PoolTruth['bins'] {
  return truth.bins.filter((b) => b.passedByRun && b.accuracy !== null && b.accuracy < accTh);
}
