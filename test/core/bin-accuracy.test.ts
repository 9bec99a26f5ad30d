/**
 * `binAccuracy: 'oof'` (RunParams): the loop judges a bin on its test samples and the
 * out-of-fold predictions of its training samples; the default ('test') is the paper's rule.
 */
import { describe, expect, it } from 'vitest';
import { type MeasuredSample, type OutOfFoldSample, summariseIteration } from '../../core/loop.ts';
import type { AutoFitReport } from '../../core/predictor/auto.ts';
import { depthBins } from '../../core/sampling.ts';
import { runParams } from '../../core/schemas/run.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { type TrainRow, trainIteration } from '../../core/train-iteration.ts';
import { syntheticTrainRows } from '../support/synthetic-data.ts';

const twoBins = [
  { lo: 0, hi: 0 },
  { lo: 1, hi: 1 },
];

/** One test sample per bin and nine training samples per bin with out-of-fold predictions. */
function iteration(testPredicted: [number, number], oofError: [number, number]) {
  const test: MeasuredSample[] = [
    { depth: 0, split: 'test', latencyMs: 10 },
    { depth: 1, split: 'test', latencyMs: 10 },
  ];
  const train: MeasuredSample[] = [];
  const outOfFold: OutOfFoldSample[] = [];
  for (const d of [0, 1]) {
    for (let i = 0; i < 9; i++) {
      train.push({ depth: d, split: 'train', latencyMs: 10 + i });
      outOfFold.push({
        depth: d,
        latencyMs: 10 + i,
        predicted: (10 + i) * (1 + (oofError[d] as number) * (i % 2 ? 1 : -1)),
      });
    }
  }
  const summarise = (binAccuracy: 'test' | 'oof', withOof = true) =>
    summariseIteration({
      iteration: 0,
      bins: twoBins,
      samples: [...test, ...train],
      predictedTest: testPredicted,
      params: { accTh: 0.95, maxIter: 5, w1: 3, binAccuracy },
      outOfFold: withOof ? outOfFold : undefined,
      secondsMeasuring: 0,
      secondsTraining: 0,
      quality: { maxDrift: 0, remeasured: 0 },
      finishedAt: '2026-01-01T00:00:00Z',
    });
  return summarise;
}

describe("summariseIteration with binAccuracy 'oof' (core/loop.ts)", () => {
  it('passes a bin whose one test network was unlucky when its out-of-fold rows are accurate', () => {
    // Bin 0: the test network is 10 % off, its 9 training rows 1 % off out of fold.
    const summarise = iteration([9, 10], [0.01, 0.01]);
    const byTest = summarise('test');
    expect(byTest.converged).toBe(false);
    expect(byTest.nextBinWeights).toEqual([3, 1]);
    expect(byTest.bins[0]?.decided).toBeUndefined();

    const byAll = summarise('oof');
    expect(byAll.converged).toBe(true);
    expect(byAll.bins[0]?.decided?.n).toBe(10);
    expect(byAll.bins[0]?.decided?.accuracy).toBeCloseTo((0.9 + 9 * 0.99) / 10, 10);
    // The reported test accuracy stays the test share's.
    expect(byAll.bins[0]?.accuracy).toBeCloseTo(0.9, 10);
  });

  it('fails a bin whose one test network was lucky when its out-of-fold rows say it is below AccTH', () => {
    // Bin 1: the test network is exact, its 9 training rows 10 % off out of fold.
    const summarise = iteration([10, 10], [0.01, 0.1]);
    expect(summarise('test').converged).toBe(true);
    const byAll = summarise('oof');
    expect(byAll.converged).toBe(false);
    expect(byAll.bins[1]?.decided?.accuracy).toBeCloseTo((1 + 9 * 0.9) / 10, 10);
    expect(byAll.nextBinWeights).toEqual([1, 3]);
  });

  it('with binAccuracyZ passes a bin only when its lower bound clears AccTH', () => {
    const bins = [{ lo: 0, hi: 0 }];
    const test: MeasuredSample[] = [{ depth: 0, split: 'test', latencyMs: 10 }];
    // Nine training rows alternately 1 % and 7 % off: mean accuracy 0.96 with the test row's.
    const outOfFold: OutOfFoldSample[] = Array.from({ length: 9 }, (_, i) => ({
      depth: 0,
      latencyMs: 10,
      predicted: i % 2 ? 10.1 : 10.7,
    }));
    const summarise = (z: number, rows = outOfFold, predicted = 10.4) =>
      summariseIteration({
        iteration: 0,
        bins,
        samples: [
          ...test,
          ...rows.map(() => ({ depth: 0, split: 'train' as const, latencyMs: 10 })),
        ],
        predictedTest: [predicted],
        params: { accTh: 0.95, maxIter: 5, w1: 3, binAccuracy: 'oof', binAccuracyZ: z },
        outOfFold: rows,
        secondsMeasuring: 0,
        secondsTraining: 0,
        quality: { maxDrift: 0, remeasured: 0 },
        finishedAt: '2026-01-01T00:00:00Z',
      });
    const accuracies = [0.96, ...outOfFold.map((r) => 1 - Math.abs(r.predicted - 10) / 10)];
    const mean = accuracies.reduce((a, b) => a + b, 0) / accuracies.length;
    const sd = Math.sqrt(
      accuracies.reduce((a, b) => a + (b - mean) ** 2, 0) / (accuracies.length - 1),
    );
    expect(mean).toBeLessThan(0.96 + 1e-9);
    expect(summarise(0).converged).toBe(true);
    const bounded = summarise(1);
    expect(bounded.bins[0]?.decided?.lowerBound).toBeCloseTo(mean - sd / Math.sqrt(10), 10);
    expect(bounded.converged).toBe(mean - sd / Math.sqrt(10) >= 0.95);
    expect(summarise(2).converged).toBe(false);
    // Rows that agree have no spread: the bound is the mean and the bin passes.
    const same = Array.from({ length: 9 }, () => ({ depth: 0, latencyMs: 10, predicted: 10.4 }));
    expect(summarise(2, same).converged).toBe(true);
    // One row alone has no spread to bound by: it cannot pass under a bound.
    expect(summarise(2, [], 10).converged).toBe(false);
    expect(summarise(0, [], 10).converged).toBe(true);
  });

  it("keeps the default rule exactly when 'test' is asked for or no out-of-fold rows exist", () => {
    const summarise = iteration([9, 10], [0.01, 0.01]);
    expect(summarise('test')).toEqual(summarise('test', false));
    expect(summarise('oof', false)).toEqual(summarise('test', false));
  });
});

describe("trainIteration with binAccuracy 'oof' (core/train-iteration.ts)", () => {
  const bins = depthBins(mobilenetv3, 3);
  const rows = (n: number, seed: number) =>
    syntheticTrainRows(n, seed, bins, { noise: 0.03, firstBatch: 30 });
  const run = (sampling: 'balanced' | 'active', data: TrainRow[]) =>
    trainIteration({
      space: mobilenetv3,
      params: runParams.parse({
        space: 'mobilenetv3',
        device: 'local',
        sampling,
        bins: 3,
        binAccuracy: 'oof',
      }),
      bins,
      iteration: 1,
      rows: data,
      secondsMeasuring: 0,
      remeasured: 0,
      data: { file: 'synthetic', sha256: '' },
      // Two cheap candidates keep auto's cross-validation fast.
      regressor: { auto: { candidates: ['ridge-physics', 'lut'] } },
    });

  it("judges every bin on its test rows and auto's out-of-fold predictions of its training rows", async () => {
    const data = rows(60, 11);
    const { record, fit } = await run('balanced', data);
    const oof = (fit as AutoFitReport).oof as Float64Array;
    const train = data.filter((r) => r.split === 'train');
    expect(oof).toHaveLength(train.length);
    // The chosen model's out-of-fold accuracy is what auto reported for it.
    const mre = train.reduce(
      (s, r, i) => s + Math.abs((oof[i] as number) - r.latencyMs) / r.latencyMs,
      0,
    );
    expect(1 - mre / train.length).toBeCloseTo((fit as AutoFitReport).accuracy, 10);
    record.bins.forEach((b) => {
      expect(b.decided?.n).toBe(b.train + b.test);
    });
  });

  it('under active sampling counts only the uniformly drawn training rows (the initial batch)', async () => {
    const data = rows(60, 12);
    const { record } = await run('active', data);
    bins.forEach((_, b) => {
      const uniform = data.filter(
        (r) => r.bin === b && (r.split === 'test' || r.iteration === 0),
      ).length;
      expect(record.bins[b]?.decided?.n).toBe(uniform);
    });
    expect(record.bins.some((b) => (b.decided?.n ?? 0) < b.train + b.test)).toBe(true);
  });
});
