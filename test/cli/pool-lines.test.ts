/**
 * The words `esm run` and `esm cloud` print about a replay's pool (cli/pool-lines.ts): before
 * the run, what its floor leaves out or the rows far below the others; after it, how the
 * predictor did on the pool rows it did not draw. The advice names the settings as each
 * command takes them, and a bin the run drew completely says so instead of a blank.
 */
import { describe, expect, it } from 'vitest';
import {
  describePoolExhausted,
  describePoolFloor,
  describePoolTruth,
} from '../../cli/pool-lines.ts';
import { poolFloor } from '../../core/metric-rows.ts';
import { createRng } from '../../core/rng.ts';
import type { PoolTruth } from '../../core/schemas/run.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';

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

describe('poolFloor and describePoolFloor', () => {
  // Dataset rows as parseDataset gives them; only the metric's values matter here.
  const subnet = randomSubnet(getSpace('mobilenetv3'), createRng(1));
  const rows = [0.2, 0.3, 9, 10, 11, 12, 13].map((latencyMs, i) => ({
    subnet,
    arch: {},
    latencyMs,
    line: i + 1,
    extra: { energy_mj: i === 0 ? null : latencyMs * 2 },
  }));
  const fields = { metric: '--metric', dropBelow: '--drop-below', nInit: '--n-init' };
  const pool = { file: 'pixel3.jsonl', metric: 'latency_ms', nInit: 2 };

  it('counts the rows under a tenth of the median and advises the floor that leaves exactly them out', () => {
    const floor = poolFloor(rows, pool, fields);
    expect(floor).toEqual({ rows: 7, tiny: { count: 2, floor: 1 } });
    expect(describePoolFloor(floor, pool, 'flags')).toBe(
      'note: 2 of 7 rows of pixel3.jsonl have latency_ms under 1, a tenth of its median; relative errors on them can keep the bins that hold them under --acc-th. Leave them out of the pool with --drop-below 1',
    );
    expect(describePoolFloor(floor, pool, 'params')).toMatch(
      /under accTh\. Leave them out of the pool with "dropBelow": 1 in --params$/,
    );
  });

  it('says what a floor leaves out, of the rows with a value of the metric', () => {
    const energy = { ...pool, metric: 'energy_mj', dropBelow: 1 };
    const floor = poolFloor(rows, energy, fields);
    expect(floor).toEqual({ rows: 6, leftOut: 1 });
    expect(describePoolFloor(floor, energy, 'params')).toBe(
      'dropBelow 1: left 1 of 6 rows of pixel3.jsonl with energy_mj below it out of the pool',
    );
  });

  it('has nothing to say of a pool without tiny rows, and refuses a floor that leaves under two rows', () => {
    const plain = rows.slice(2);
    expect(describePoolFloor(poolFloor(plain, pool, fields), pool, 'flags')).toBeUndefined();
    expect(() => poolFloor(rows, { ...pool, dropBelow: 12.5 }, fields)).toThrow(
      /^--drop-below: leaves 1 rows of pixel3\.jsonl/,
    );
  });

  it('refuses a first batch larger than the pool (after its floor), naming the batch flag', () => {
    expect(poolFloor(rows, { ...pool, nInit: 7 }, fields).rows).toBe(7);
    expect(() => poolFloor(rows, { ...pool, nInit: 8 }, fields)).toThrow(
      /^--n-init: the first batch of 8 is more than the 7 rows of pixel3\.jsonl; lower it to 7 or fewer/,
    );
    expect(() => poolFloor(rows, { ...pool, nInit: 6, dropBelow: 1 }, fields)).toThrow(
      /^--n-init: the first batch of 6 is more than the 5 rows of pixel3\.jsonl left by --drop-below 1;/,
    );
  });
});

describe('describePoolExhausted', () => {
  it("says why a replay stopped, with the way on in each command's terms", () => {
    expect(describePoolExhausted(3, 'flags')).toBe(
      'not converged after 3 iterations: every architecture of the replayed dataset is measured (a larger dataset, or a lower --acc-th with --resume)',
    );
    expect(describePoolExhausted(2, 'params')).toMatch(/a new run with a lower accTh\)$/);
  });
});
