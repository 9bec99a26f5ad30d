/**
 * The truth about a replay run: its final predictor scored on every row of the replayed
 * dataset that the run never drew. The loop judges a bin on a few test samples (one per bin
 * by default), so a bin can pass by chance; a replay knows all the latencies, so it can say
 * how the predictor does on the rest, and which bins passed on too few samples.
 */
import { readFile } from 'node:fs/promises';
import { parseDataset } from '../core/dataset.ts';
import { binPassed } from '../core/loop.ts';
import { rowsAtLeast, rowsForMetric } from '../core/metric-rows.ts';
import { evaluate } from '../core/metrics.ts';
import { runBins } from '../core/sampling.ts';
import type { PoolTruth } from '../core/schemas/run.ts';
import { depth, subnetKey } from '../core/spaces/subnet.ts';
import type { SearchSpace } from '../core/spaces/types.ts';
import { loadPredictor } from './predictor-store.ts';
import type { RunStore } from './run-store.ts';

/**
 * Scores the run's predictor on the pool rows it did not draw and writes pool-truth.json;
 * undefined (and nothing written) for a run without a pool, before its first iteration, or
 * when it drew every row. The pool is read as the run read it: the run's metric, less the
 * rows under `dropBelow`.
 */
export async function scorePoolTruth(
  store: RunStore,
  space: SearchSpace,
): Promise<PoolTruth | undefined> {
  const params = store.state.params;
  const last = store.iterations().at(-1);
  if (params.pool === undefined || last === undefined) return undefined;
  const file = params.pool;
  const parsed = parseDataset(await readFile(file, 'utf8'), { space, file }).rows;
  let rows = rowsForMetric(parsed, params.metric, file).rows;
  if (params.dropBelow !== undefined) {
    rows = rowsAtLeast(rows, params.metric, params.dropBelow, file);
  }
  const drawn = new Set(store.state.samples.map((s) => s.key));
  const rest = rows.filter((r) => !drawn.has(subnetKey(r.subnet)));
  if (rest.length === 0) return undefined;
  const predictor = await loadPredictor(store.path('predictor'));
  let predicted: Float64Array;
  try {
    predicted = await predictor.predictSubnets(rest.map((r) => r.subnet));
  } finally {
    await predictor.close();
  }
  const bins = runBins(space, params);
  const evaluation = evaluate({
    predicted,
    measured: rest.map((r) => r.latencyMs),
    depths: rest.map((r) => depth(r.subnet)),
    bins,
  });
  const truth: PoolTruth = {
    iteration: last.iteration,
    n: evaluation.n,
    accuracy: evaluation.accuracy,
    within10: evaluation.within10,
    spearman: evaluation.spearman,
    bins: (evaluation.bins ?? []).map((b, i) => {
      const judged = last.bins[i];
      return {
        lo: b.lo,
        hi: b.hi,
        n: b.n,
        accuracy: b.accuracy,
        passedByRun: judged !== undefined && binPassed(judged, params),
      };
    }),
  };
  store.savePoolTruth(truth);
  return truth;
}

/** The bins the run passed whose accuracy on the rest of the pool is under AccTH. */
export function falsePasses(truth: PoolTruth, accTh: number): PoolTruth['bins'] {
  return truth.bins.filter((b) => b.passedByRun && b.accuracy !== null && b.accuracy < accTh);
}
