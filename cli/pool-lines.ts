/**
 * What `esm run` and `esm cloud` say about a replay's pool: before the run, what its floor
 * leaves out or the rows that lie far below the others (core/metric-rows.ts `poolFloor`);
 * after it, how its last predictor did on the rows the run did not draw (core/pool-truth.ts):
 * one summary line, and a warning naming the bins that passed on their few test samples but
 * not there.
 */
import type { PoolFloor } from '../core/metric-rows.ts';
import { falsePasses } from '../core/pool-truth.ts';
import type { PoolTruth, RunParams } from '../core/schemas/run.ts';

/** "10-13", or "10" for a bin of one depth (never "10-10"). */
export function depthSpan(b: { lo: number; hi: number }): string {
  return b.lo === b.hi ? `${b.lo}` : `${b.lo}-${b.hi}`;
}

export function pct(x: number | null): string {
  return x === null ? '  -  ' : `${(x * 100).toFixed(1)}%`;
}

/** How the advice spells a setting: `esm run`'s flags, or the cloud's `--params` JSON. */
const spellings = {
  flags: {
    accTh: '--acc-th',
    afterExhausted: 'a larger dataset, or a lower --acc-th with --resume',
    dropBelow: '--drop-below',
    leaveOut: (floor: number) => `--drop-below ${floor}`,
    moreSamples: (oof: boolean) =>
      `--min-test-per-bin N${oof ? '' : ' or --bin-accuracy oof'} judges a bin on more samples`,
  },
  params: {
    accTh: 'accTh',
    afterExhausted: 'a larger pool, or a new run with a lower accTh',
    dropBelow: 'dropBelow',
    leaveOut: (floor: number) => `"dropBelow": ${floor} in --params`,
    moreSamples: (oof: boolean) =>
      `a larger "minTestPerBin"${oof ? '' : ' or "binAccuracy": "oof"'} in --params judges a bin on more samples`,
  },
} as const;

export function describePoolTruth(
  truth: PoolTruth,
  p: Pick<RunParams, 'accTh' | 'binAccuracy'>,
  spelling: keyof typeof spellings,
): string[] {
  const lines = [
    `on the ${truth.n} rows of the pool this run did not draw: accuracy ${pct(truth.accuracy)}, within 10 % ${pct(truth.within10)}; per depth bin ${truth.bins.map((b) => `${depthSpan(b)}:${b.n === 0 ? 'all drawn' : pct(b.accuracy)}`).join(' ')}`,
  ];
  const wrong = falsePasses(truth, p.accTh);
  if (wrong.length > 0) {
    const oof = p.binAccuracy === 'oof';
    const { accTh, moreSamples } = spellings[spelling];
    lines.push(
      `warning: ${wrong.length === 1 ? 'bin' : 'bins'} ${wrong.map(depthSpan).join(', ')} passed ${accTh} ${pct(p.accTh)} on ${wrong.length === 1 ? 'its' : 'their'} ${oof ? 'test and out-of-fold samples' : 'test samples'} but not on the rest of the pool; ${moreSamples(oof)}`,
    );
  }
  return lines;
}

/** The line said before a replay about its pool's floor, or undefined when there is nothing to say. */
export function describePoolFloor(
  floor: PoolFloor,
  pool: { file: string; metric: string; dropBelow?: number },
  spelling: keyof typeof spellings,
): string | undefined {
  const { accTh, dropBelow, leaveOut } = spellings[spelling];
  if (floor.leftOut !== undefined) {
    return `${dropBelow} ${pool.dropBelow}: left ${floor.leftOut} of ${floor.rows} rows of ${pool.file} with ${pool.metric} below it out of the pool`;
  }
  if (floor.tiny === undefined) return undefined;
  return `note: ${floor.tiny.count} of ${floor.rows} rows of ${pool.file} have ${pool.metric} under ${floor.tiny.floor}, a tenth of its median; relative errors on them can keep the bins that hold them under ${accTh}. Leave them out of the pool with ${leaveOut(floor.tiny.floor)}`;
}

/** How a replay that drew every row of its dataset ended (status `pool-exhausted`). */
export function describePoolExhausted(
  iterations: number,
  spelling: keyof typeof spellings,
): string {
  return `not converged after ${iterations} iterations: every architecture of the replayed dataset is measured (${spellings[spelling].afterExhausted})`;
}
