/**
 * What a replay's last iteration found on the pool rows the run did not draw
 * (core/pool-truth.ts), as `esm run` and `esm cloud run wait` print it: one summary line,
 * and a warning naming the bins that passed on their few test samples but not there.
 */
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
    moreSamples: (oof: boolean) =>
      `--min-test-per-bin N${oof ? '' : ' or --bin-accuracy oof'} judges a bin on more samples`,
  },
  params: {
    accTh: 'accTh',
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
