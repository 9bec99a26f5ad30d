/**
 * The words `esm run` and `esm cloud run wait` print about a replay's predictor on the pool
 * rows it did not draw (cli/pool-truth-lines.ts): the advice names the settings as each
 * command takes them, and a bin the run drew completely says so instead of a blank.
 */
import { describe, expect, it } from 'vitest';
import { describePoolTruth } from '../../cli/pool-truth-lines.ts';
import type { PoolTruth } from '../../core/schemas/run.ts';

const truth: PoolTruth = {
  n: 300,
  accuracy: 0.93,
  within10: 0.8,
  spearman: 0.9,
  bins: [
    { lo: 13, hi: 14, n: 0, accuracy: null, passedByRun: true },
    { lo: 15, hi: 16, n: 100, accuracy: 0.91, passedByRun: true },
    { lo: 17, hi: 17, n: 200, accuracy: 0.96, passedByRun: false },
  ],
};

describe('describePoolTruth', () => {
  it('sums up the pool and names a bin with no rows left as all drawn', () => {
    const [line] = describePoolTruth(truth, { accTh: 0.9, binAccuracy: 'test' }, 'flags');
    expect(line).toBe(
      'on the 300 rows of the pool this run did not draw: accuracy 93.0%, within 10 % 80.0%; per depth bin 13-14:all drawn 15-16:91.0% 17:96.0%',
    );
  });

  it("warns about a bin the run passed under AccTH there, in esm run's flags", () => {
    const lines = describePoolTruth(truth, { accTh: 0.95, binAccuracy: 'test' }, 'flags');
    expect(lines[1]).toBe(
      'warning: bin 15-16 passed --acc-th 95.0% on its test samples but not on the rest of the pool; --min-test-per-bin N or --bin-accuracy oof judges a bin on more samples',
    );
  });

  it("gives the cloud's advice as --params keys, and no oof advice to an oof run", () => {
    const lines = describePoolTruth(truth, { accTh: 0.95, binAccuracy: 'oof' }, 'params');
    expect(lines[1]).toBe(
      'warning: bin 15-16 passed accTh 95.0% on its test and out-of-fold samples but not on the rest of the pool; a larger "minTestPerBin" in --params judges a bin on more samples',
    );
  });

  it('says nothing more when every bin the run passed holds on the pool', () => {
    expect(describePoolTruth(truth, { accTh: 0.9, binAccuracy: 'test' }, 'params')).toHaveLength(1);
  });
});
