import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../core/errors.ts';
import { averageRanks, evaluate, spearman } from '../../core/metrics.ts';

describe('evaluate', () => {
  it('computes accuracy, hit rates and RMSE on a hand-worked case', () => {
    // Relative errors: 0.02, 0.05, 0.10, 0.30 -> accuracies 0.98, 0.95, 0.90, 0.70.
    const measured = [10, 20, 40, 5];
    const predicted = [10.2, 19, 44, 6.5];
    const m = evaluate({ predicted, measured });
    expect(m.n).toBe(4);
    expect(m.accuracy).toBeCloseTo((0.98 + 0.95 + 0.9 + 0.7) / 4, 12);
    // Exactly 5 % and exactly 10 % count as within.
    expect(m.within5).toBe(0.5);
    expect(m.within10).toBe(0.75);
    expect(m.rmse_ms).toBeCloseTo(Math.sqrt((0.04 + 1 + 16 + 2.25) / 4), 12);
    // Predicted order equals measured order.
    expect(m.spearman).toBeCloseTo(1, 12);
  });

  it('lets accuracy go negative when predictions are off by more than 100 %', () => {
    const m = evaluate({ predicted: [30, 1], measured: [10, 1] });
    expect(m.accuracy).toBeCloseTo((1 - 2 + 1) / 2, 12);
  });

  it('reports per-bin n and accuracy, null for an empty bin', () => {
    const m = evaluate({
      predicted: [11, 20, 33, 40],
      measured: [10, 20, 30, 40],
      depths: [10, 12, 15, 16],
      bins: [
        { lo: 10, hi: 12 },
        { lo: 13, hi: 14 },
        { lo: 15, hi: 16 },
      ],
    });
    expect(m.bins).toEqual([
      { lo: 10, hi: 12, n: 2, accuracy: expect.closeTo((0.9 + 1) / 2, 12) },
      { lo: 13, hi: 14, n: 0, accuracy: null },
      { lo: 15, hi: 16, n: 2, accuracy: expect.closeTo((0.9 + 1) / 2, 12) },
    ]);
  });

  it('rejects mismatched lengths, non-positive measurements and missing depths', () => {
    expect(() => evaluate({ predicted: [1], measured: [1, 2] })).toThrow(ValidationError);
    expect(() => evaluate({ predicted: [1, 2], measured: [1, 0] })).toThrow(
      /measured\[1\]: must be a positive latency/,
    );
    expect(() => evaluate({ predicted: [Number.NaN], measured: [1] })).toThrow(/predicted\[0\]/);
    expect(() => evaluate({ predicted: [], measured: [] })).toThrow(/at least one sample/);
    expect(() => evaluate({ predicted: [1], measured: [1], bins: [{ lo: 1, hi: 2 }] })).toThrow(
      /depths/,
    );
  });
});

describe('spearman', () => {
  it('gives tied values the mean of their ranks', () => {
    expect(Array.from(averageRanks([10, 20, 20, 5, 20]))).toEqual([2, 4, 4, 1, 4]);
  });

  it('matches a hand-computed coefficient with ties', () => {
    // ranks a: [1, 2.5, 2.5, 4]; ranks b: [1, 2, 3, 4]; means 2.5.
    // cov = (-1.5)(-1.5) + 0(-0.5) + 0(0.5) + 1.5(1.5) = 4.5
    // var a = 2.25 + 0 + 0 + 2.25 = 4.5; var b = 2.25 + 0.25 + 0.25 + 2.25 = 5
    expect(spearman([1, 2, 2, 3], [10, 20, 30, 40])).toBeCloseTo(4.5 / Math.sqrt(4.5 * 5), 12);
  });

  it('is -1 for reversed order and null for a constant side', () => {
    expect(spearman([1, 2, 3, 4], [8, 6, 4, 2])).toBeCloseTo(-1, 12);
    expect(spearman([1, 1, 1], [1, 2, 3])).toBeNull();
  });
});
