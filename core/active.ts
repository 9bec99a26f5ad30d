/**
 * Uncertainty for `--sampling active`: how unsure a predictor trained on the measured rows is
 * about each candidate. A bootstrap ensemble of ridge models (the same features as the loop's
 * predictor, each member fitted on a resample of the training rows, penalty and target chosen
 * once by CV on all rows): the relative spread of the members' predictions is large where the
 * training rows say little, i.e. where a measurement teaches the predictor most. Ridge rather
 * than the loop's own model because it refits in milliseconds, and because the loop's default
 * models' `predictWithStd` is a constant relative error for a linear model (types.ts), which
 * cannot rank candidates. Pure and seeded.
 */
import { createEncoder, encodeAll } from './encodings/index.ts';
import { ValidationError } from './errors.ts';
import { iterationSeed } from './loop.ts';
import { createRidge, type RidgeModel } from './predictor/ridge.ts';
import { type Matrix, selectRows } from './predictor/types.ts';
import { createRng, type Rng } from './rng.ts';
import type { RunParams } from './schemas/run.ts';
import type { SearchSpace } from './spaces/types.ts';

export interface BootstrapOptions {
  readonly rng: Rng;
  /** Ensemble members. @default 8 */
  readonly members?: number;
}

/**
 * Fits the bootstrap ensemble on the measured rows and returns the relative spread
 * (std / mean of the members' predictions) of candidate rows: larger = less sure.
 */
export async function bootstrapUncertainty(
  x: Matrix,
  latencyMs: Float64Array,
  options: BootstrapOptions,
): Promise<(candidates: Matrix) => Promise<Float64Array>> {
  const { rng, members = 8 } = options;
  if (!Number.isInteger(members) || members < 2) {
    throw new ValidationError('members', `expected an integer >= 2, got ${members}`);
  }
  if (x.rows < 2) {
    throw new ValidationError('train', `needs at least 2 measured rows, got ${x.rows}`);
  }
  const chooser = createRidge();
  await chooser.fit(x, latencyMs);
  const lambda = chooser.lambda as number;
  const target = chooser.target === 'log' ? 'log' : 'linear';
  const ensemble: RidgeModel[] = [];
  for (let m = 0; m < members; m++) {
    const rows = Array.from({ length: x.rows }, () => rng.int(x.rows));
    const member = createRidge({ lambda, target });
    await member.fit(
      selectRows(x, rows),
      Float64Array.from(rows, (r) => latencyMs[r] as number),
    );
    ensemble.push(member);
  }
  return async (candidates: Matrix) => {
    const predictions = await Promise.all(ensemble.map((m) => m.predict(candidates)));
    const out = new Float64Array(candidates.rows);
    for (let i = 0; i < candidates.rows; i++) {
      let sum = 0;
      let squares = 0;
      for (const p of predictions) {
        const v = p[i] as number;
        sum += v;
        squares += v * v;
      }
      const mean = sum / members;
      const variance = Math.max(0, squares / members - mean * mean);
      out[i] = Math.sqrt(variance) / Math.max(Math.abs(mean), 1e-9);
    }
    return out;
  };
}

/**
 * What `--sampling active` ranks the candidates of iteration `iteration` by: the bootstrap
 * spread on the run's encoding of its measured training rows, seeded by (seed, iteration) so
 * that a retry plans the same batch. The workflow's Extend task and the replay benchmark
 * (scripts/bench/sampling.ts) both call it, so the benchmark measures what a run does.
 */
export async function activeUncertainty(
  space: SearchSpace,
  params: Pick<RunParams, 'encoding' | 'seed'>,
  train: readonly { readonly arch: unknown; readonly latencyMs: number }[],
  iteration: number,
): Promise<(candidates: readonly { readonly arch: unknown }[]) => Promise<Float64Array>> {
  const encoder = createEncoder(space, params.encoding);
  const encode = (rows: readonly { readonly arch: unknown }[]) =>
    encodeAll(
      encoder,
      rows.map((r) => space.parse(r.arch)),
    );
  const uncertainty = await bootstrapUncertainty(
    encode(train),
    Float64Array.from(train, (r) => r.latencyMs),
    { rng: createRng(iterationSeed(params.seed ^ 0xac71fe, iteration)) },
  );
  return (candidates) => uncertainty(encode(candidates));
}
