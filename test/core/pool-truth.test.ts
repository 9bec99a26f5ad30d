/**
 * A replay's truth (core/pool-truth.ts): the iteration that stops the loop scores its
 * predictor on the pool rows the run never drew; an iteration that goes on reads nothing.
 */
import { describe, expect, it } from 'vitest';
import { falsePasses, type UndrawnRow } from '../../core/pool-truth.ts';
import { depthBins } from '../../core/sampling.ts';
import { runParams } from '../../core/schemas/run.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { trainIteration } from '../../core/train-iteration.ts';
import { syntheticTrainRows } from '../support/synthetic-data.ts';

const bins = depthBins(mobilenetv3, 3);

const rows = (n: number, seed: number) => syntheticTrainRows(n, seed, bins, { noise: 0.01 });

const measured = rows(60, 5);
// The pool rows no sample drew, as the Train task hands them over (parsed once).
const poolRows = rows(200, 6);
const undrawn: UndrawnRow[] = poolRows.map((r) => ({
  subnet: mobilenetv3.parse(r.arch),
  latencyMs: r.latencyMs,
}));

function train(options: { maxIter: number; accTh: number; undrawn: () => Promise<UndrawnRow[]> }) {
  return trainIteration({
    space: mobilenetv3,
    params: runParams.parse({
      space: 'mobilenetv3',
      device: 'dataset:pool.jsonl',
      model: 'ridge',
      bins: 3,
      maxIter: options.maxIter,
      accTh: options.accTh,
    }),
    bins,
    iteration: 0,
    rows: measured,
    secondsMeasuring: 0,
    remeasured: 0,
    data: { file: 'synthetic', sha256: '' },
    undrawn: options.undrawn,
  });
}

describe('trainIteration on a replay (core/pool-truth.ts)', () => {
  it('scores the stopping iteration on the undrawn rows, per bin beside its verdict', async () => {
    // Act: one iteration allowed, so this one stops the loop.
    const { record, regressor, featurizer } = await train({
      maxIter: 1,
      accTh: 0.5,
      undrawn: async () => undrawn,
    });
    // Assess: the same predictor, scored by hand.
    const predicted = await regressor.predict(
      featurizer.encodeAll(poolRows.map((r) => mobilenetv3.parse(r.arch))),
    );
    const accuracy =
      poolRows.reduce(
        (s, r, i) => s + 1 - Math.abs((predicted[i] as number) - r.latencyMs) / r.latencyMs,
        0,
      ) / poolRows.length;
    const truth = record.poolTruth;
    expect(record.stop).toBe(true);
    expect(truth?.n).toBe(undrawn.length);
    expect(truth?.accuracy).toBeCloseTo(accuracy, 12);
    expect(truth?.bins.map((b) => b.n)).toEqual(
      bins.map((b) => poolRows.filter((r) => r.depth >= b.lo && r.depth <= b.hi).length),
    );
    // Every bin passed AccTH 0.5 on its test rows, and none is under it on the rest.
    expect(truth?.bins.every((b) => b.passedByRun)).toBe(true);
    expect(truth && falsePasses(truth, 0.5)).toEqual([]);
    // At a threshold above every bin's truth, each passed bin would be a false pass.
    const above = Math.max(...(truth?.bins.map((b) => b.accuracy ?? 0) ?? [])) + 1e-9;
    expect(truth && falsePasses(truth, above)).toHaveLength(3);
  });

  it('reads no pool on an iteration that goes on, and scores nothing when all rows were drawn', async () => {
    // Prepare: AccTH out of reach, three iterations allowed: iteration 0 continues.
    let reads = 0;
    const goesOn = await train({
      maxIter: 3,
      accTh: 0.9999,
      undrawn: async () => {
        reads++;
        return undrawn;
      },
    });
    const allDrawn = await train({ maxIter: 1, accTh: 0.5, undrawn: async () => [] });
    // Assess
    expect(goesOn.record.stop).toBe(false);
    expect(reads).toBe(0);
    expect(goesOn.record.poolTruth).toBeUndefined();
    expect(allDrawn.record.stop).toBe(true);
    expect(allDrawn.record.poolTruth).toBeUndefined();
  });
});
