import { describe, expect, it } from 'vitest';
import { binMatrix, fitTree, predictTree } from '../../core/predictor/trees.ts';
import type { Matrix } from '../../core/predictor/types.ts';
import { createRng } from '../../core/rng.ts';

describe('regression trees', () => {
  it('fits a bootstrap sample (repeated rows) exactly as the matrix with those rows copied', () => {
    // Prepare: 60 rows, 4 features, a step function plus noise; a sample with repeats.
    const rng = createRng(3);
    const rows = 60;
    const cols = 4;
    const data = Float64Array.from({ length: rows * cols }, () => rng.normal());
    const x: Matrix = { rows, cols, data };
    const y = Float64Array.from({ length: rows }, (_, r) => {
      const a = data[r * cols] as number;
      const b = data[r * cols + 2] as number;
      return (a > 0 ? 2 : 0) + (b > 0.5 ? 1 : 0) + 0.1 * rng.normal();
    });
    const sample = Int32Array.from({ length: rows }, () => rng.int(rows)).sort();
    expect(new Set(sample).size).toBeLessThan(rows);
    const copied: Matrix = {
      rows,
      cols,
      data: Float64Array.from(
        Array.from(sample).flatMap((r) => Array.from(data.subarray(r * cols, (r + 1) * cols))),
      ),
    };
    const copiedY = Float64Array.from(sample, (r) => y[r] as number);
    const options = { maxDepth: 6, minLeaf: 2 };

    // Act: the same tree options, no random feature subsets.
    const fromSample = fitTree(binMatrix(x), y, sample, createRng(0), options);
    const fromCopies = fitTree(
      binMatrix(copied),
      copiedY,
      Int32Array.from({ length: rows }, (_, i) => i),
      createRng(0),
      options,
    );

    // Assess: the same split features and the same leaf for every sampled row (thresholds
    // differ: each matrix bins its own values).
    expect(Array.from(fromSample.feature)).toEqual(Array.from(fromCopies.feature));
    expect(fromSample.feature.filter((f) => f >= 0).length).toBeGreaterThan(2);
    sample.forEach((r, i) => {
      expect(predictTree(fromSample, x, r)).toBeCloseTo(predictTree(fromCopies, copied, i), 12);
    });
  });
});
