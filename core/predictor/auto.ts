/**
 * `--model auto`: chooses or blends candidate models by K-fold cross-validation on the
 * training rows only, so that no single candidate beats it (up to the noise of the folds).
 *
 * Its input is a stack of feature parts (index.ts `autoFeatureChoice`): the physics
 * encoding, the chosen encoding (FCC by default) and the LUT's table counts. The candidates
 * read the columns they need:
 *
 * | name | model | columns |
 * |---|---|---|
 * | `ridge-physics` | ridge (penalty, target and the robust relative fit by CV) | physics |
 * | `ridge-encoding` | ridge | encoding |
 * | `ridge-both` | ridge, physics entries penalised 1000x less ("physics first, the encoding for what physics misses") | physics + encoding |
 * | `lut` | the LUT | lut |
 * | `rf` | random forest | physics + encoding |
 * | `gbt` | gradient-boosted trees on a physics-first ridge base | physics + encoding |
 * | `mlp` | residual MLP on a physics-first ridge base (41 to 200 rows) | physics + encoding |
 * | `mlp-ensemble` | 3 residual MLPs (41 to 100 rows) | physics + encoding |
 *
 * Every candidate's out-of-fold predictions are scored by mean relative error (1 - accuracy,
 * the metric predictors are judged by). The choice is conservative, because on 20-100 rows
 * the out-of-fold differences between physics ridge and the wider candidates (which mostly
 * hold a physics-first ridge inside) are a fraction of a point and mostly luck: a candidate
 * that reads the physics columns replaces `ridge-physics` only when it is better by
 * `preferFirst` (4) standard errors of the paired per-row error difference, one that does
 * not (`independent`: ridge on the encoding, the LUT) when it is better at all; a greedy blend (Caruana et al. 2004:
 * repeatedly add, with replacement, the member that most lowers the blend's out-of-fold
 * error) replaces that choice only when it beats it by `blendMargin` (0.2 points) and by
 * `blendSe` (4) standard errors. The chosen members are refitted on every row.
 * docs/BENCHMARKS.md compares these rules with the earlier "best out of fold, blend if 0.2
 * points better" on the same out-of-fold predictions (`fewshot.ts --rules`).
 *
 * Cost: MLP candidates are skipped above `mlpMaxRows` (the residual MLP) and
 * `ensembleMaxRows` (the ensemble) training rows, so that 4,000 rows train in well under
 * 30 s of CPU; docs/BENCHMARKS.md measures what that costs in accuracy (nothing measurable:
 * the residual MLP rarely leaves its ridge base). Both are skipped below `mlpMinRows` too:
 * with 10 folds of 18-36 rows they were over half of a fit's CPU (3 of 5.5 s at 20 rows) and
 * never chosen there (a physics-reading candidate must beat physics ridge by 4 standard
 * errors, and no MLP did in the benchmark's 20-row cells).
 *
 * Uncertainty: sqrt(sum_i w_i (std_i^2 + (mean_i - mean)^2)): the members' own
 * uncertainties (forest spread, CV or validation residuals) plus their disagreement.
 */
import { ValidationError } from '../errors.ts';
import { createRng } from '../rng.ts';
import {
  type AutoJson,
  type MemberModelJson,
  mlpStateFromJson,
  mlpStateToJson,
} from './artifact.ts';
import { boostingFromJson, createBoosting, createForest, forestFromJson } from './forest.ts';
import { createLut, lutFromJSON } from './lut.ts';
import { createMlp, type MlpOptions, MlpRegressor } from './mlp.ts';
import { createRidge, ridgeFromJSON } from './ridge.ts';
import type { FitReport, Matrix, PredictionWithStd, Regressor } from './types.ts';

export const autoCandidates = [
  'ridge-physics',
  'ridge-encoding',
  'ridge-both',
  'lut',
  'rf',
  'gbt',
  'mlp',
  'mlp-ensemble',
] as const;
export type AutoCandidate = (typeof autoCandidates)[number];

/** Column ranges [start, end) of the feature parts in auto's input. */
export interface AutoLayout {
  readonly physics?: readonly [number, number];
  readonly encoding?: readonly [number, number];
  readonly lut?: readonly [number, number];
}

export interface AutoOptions {
  readonly layout: AutoLayout;
  /** Candidates to consider (those whose columns exist). @default every candidate */
  readonly candidates?: readonly AutoCandidate[];
  /**
   * Cross-validation folds (at most half the rows). More folds train each fold's model on
   * more of the rows (boosted trees improve fast with rows at 100-300), at a cost per fold.
   * Undefined: 10 up to `smallRows` training rows, else 5. At 20 rows, 5 folds train each
   * candidate on 16 rows, and what 16 rows give is not what the refit on 20 gives: on
   * NAS-Bench-201's FPGA the LUT is exact from 20 rows but 87-94 % out of fold on 16, so
   * `auto` kept physics ridge (90.6 % on test rows) where 10 folds (18 rows each) choose
   * the LUT (100 %).
   * @default 5 (10 up to `smallRows` rows)
   */
  readonly folds?: number;
  /** Most training rows at which the default is 10 folds. @default 40 */
  readonly smallRows?: number;
  /** Greedy blend steps (0: choose the best single candidate). @default 20 */
  readonly blendSteps?: number;
  /**
   * Out-of-fold accuracy (0..1) by which a blend must beat the best single candidate.
   * @default 0.002
   */
  readonly blendMargin?: number;
  /**
   * Standard errors by which a candidate that reads the physics columns must beat the first
   * one (physics ridge) out of fold to be chosen over it (0: the best out of fold wins). The
   * standard error is that of the mean per-row difference of the two relative errors. Those
   * candidates are near-copies of physics ridge on few rows (most hold a physics-first ridge
   * inside), and with seven of them compared the best is often ahead by luck: on one 20-row
   * draw of data/mobilenetv3-r160 three of them led by 2.6 points and 3.5-3.9 standard errors
   * out of fold and were 1.9 points worse on the test rows. Candidates that share nothing
   * with physics ridge are judged by `independent` instead. docs/BENCHMARKS.md compares the
   * values on the fewshot grid (2 and 3 lost that cell; 4 lost nothing there).
   * @default 4
   */
  readonly preferFirst?: number;
  /**
   * Standard errors (of the paired per-row difference) by which the greedy blend must also
   * beat the single choice out of fold, on top of `blendMargin` (0: the margin alone). Its
   * weights are fitted on the rows that score it, so it needs more than the single choice.
   * @default 4
   */
  readonly blendSe?: number;
  /**
   * Out-of-fold accuracy (0..1) by which a candidate ahead of the first one replaces it even
   * when it is not `preferFirst` standard errors ahead (Infinity: never). The standard-error
   * rule guards against near-ties won by luck, which cost a few tenths of a point; a lead of
   * whole points is worth taking on 20 rows even where 20 noisy rows cannot make it
   * significant.
   * @default Infinity
   */
  readonly preferFirstMargin?: number;
  /**
   * Candidates that need only be ahead of the first one out of fold, not `preferFirst`
   * standard errors ahead: those that do not read the physics columns, so their out-of-fold
   * errors are not near-ties with physics ridge's. Their lead on 20 rows is real more often
   * than significant: NAS-Bench-201's FPGA latencies are a per-operator table, the LUT is
   * exact from 20 rows on most draws, but out of fold on 18 rows it misses the operators its
   * fold never saw (errors of 26-90 % on a few rows, 0 on the rest) and led physics ridge by
   * 0.5-11 points at only 0.1-3.0 standard errors (6 seeds); with `[]` auto kept physics
   * ridge on 3 of them and lost 5.5 points to the LUT (median of seeds 0-2).
   * @default ['ridge-encoding', 'lut']
   */
  readonly independent?: readonly AutoCandidate[];
  /**
   * Candidates within this many standard errors of the best one out of fold (the paired
   * difference of their per-row errors) are averaged with equal weights instead of picking
   * one of them by luck (0: the best alone). The greedy blend must still beat that by
   * `blendMargin`.
   * @default 0
   */
  readonly tieAverage?: number;
  /**
   * Bootstrap resamples of the out-of-fold rows the greedy blend is run on, its weights
   * averaged (Caruana et al. 2006, bagged ensemble selection; 0: one blend on all rows).
   * @default 0
   */
  readonly blendBags?: number;
  /** Most training rows at which the residual MLP is a candidate. @default 200 */
  readonly mlpMaxRows?: number;
  /**
   * Fewest training rows at which the MLP candidates (residual MLP and ensemble) are tried:
   * the first size cross-validated with 5 folds (`smallRows` + 1). Never under 10 (an MLP
   * keeps some rows for its early stopping).
   * @default 41
   */
  readonly mlpMinRows?: number;
  /** Most training rows at which the MLP ensemble is a candidate. @default 100 */
  readonly ensembleMaxRows?: number;
  /**
   * Options of the MLP candidates (trainer, epochs ...). The residual MLP rarely improves on
   * its base after its first epochs, so candidates stop after 10 epochs without progress.
   * @default { patience: 10, maxEpochs: 100 }
   */
  readonly mlp?: MlpOptions;
  /** Seeds the folds and every candidate. @default 0 */
  readonly seed?: number;
}

/** The cross-validated score of one candidate. */
export interface CandidateScore {
  readonly name: AutoCandidate;
  /** 1 - mean relative error of the out-of-fold predictions. */
  readonly accuracy: number;
  readonly seconds: number;
}

export interface AutoFitReport extends FitReport {
  readonly candidates: readonly CandidateScore[];
  /** Members and weights of the refitted model. */
  readonly chosen: readonly { readonly name: AutoCandidate; readonly weight: number }[];
  /** Out-of-fold accuracy of the chosen model (blend or single). */
  readonly accuracy: number;
  /** Out-of-fold accuracy of the greedy blend, chosen or not (NaN without cross-validation). */
  readonly blendAccuracy: number;
  /**
   * The chosen model's out-of-fold prediction of every training row, in `fit`'s row order
   * (undefined without cross-validation): what the loop's `oof` accuracy estimate scores.
   */
  readonly oof?: Float64Array;
}

export interface AutoModel extends Regressor {
  readonly kind: 'auto';
  /** Scores and choice of the last `fit` (undefined for a model restored from JSON). */
  readonly report: AutoFitReport | undefined;
  predictWithStd(x: Matrix): Promise<PredictionWithStd>;
  toJSON(): AutoJson;
}

type MemberRegressor = Regressor & { toJSON?: () => MemberModelJson };

/** A candidate: its name, the columns it reads and a factory of untrained models. */
export interface AutoPlan {
  readonly name: AutoCandidate;
  readonly columns: readonly [number, number];
  make(seed: number): MemberRegressor;
}

/**
 * Ridge penalties tried on the wide inputs: ridge.ts's grid without 1e-6 and 1e-5, to save
 * solves (every penalty costs one per inner fold; ridge-physics keeps the full grid).
 */
const lambdas = [1e-4, 1e-3, 1e-2, 1e-1, 1, 10];

/** Penalty multipliers: physics entries (the first `nPhysics`) are trusted first. */
function physicsFirst(nPhysics: number, cols: number): number[] {
  return Array.from({ length: cols }, (_, j) => (j < nPhysics ? 1e-3 : 1));
}

function plans(options: AutoOptions, rows: number): AutoPlan[] {
  const { layout, candidates = autoCandidates } = options;
  const { mlpMaxRows = 200, ensembleMaxRows = 100 } = options;
  const mlpMinRows = Math.max(10, options.mlpMinRows ?? 41);
  const { physics, encoding, lut } = layout;
  // Physics and encoding together: adjacent in the stack (physics first).
  const both: readonly [number, number] | undefined =
    physics && encoding && physics[1] === encoding[0]
      ? [physics[0], encoding[1]]
      : (physics ?? encoding);
  const nPhysics = physics && both && both[0] === physics[0] ? physics[1] - physics[0] : 0;
  const scales =
    both && nPhysics > 0 && encoding ? physicsFirst(nPhysics, both[1] - both[0]) : undefined;
  const mlp = (ensemble: number) => (seed: number) => {
    const m = createMlp({
      patience: 10,
      maxEpochs: 100,
      ...options.mlp,
      ensemble,
      seed,
      ridge: { ...options.mlp?.ridge, penaltyScales: scales },
    });
    return Object.assign(m, { toJSON: () => mlpStateToJson(m.state) });
  };
  const out: (AutoPlan | undefined)[] = [
    // Robust relative fit among its CV choices: on 17 columns it costs little (ridge.ts).
    physics && {
      name: 'ridge-physics',
      columns: physics,
      make: () => createRidge({ robust: true }),
    },
    encoding && { name: 'ridge-encoding', columns: encoding, make: () => createRidge({ lambdas }) },
    physics && encoding && scales && both
      ? {
          name: 'ridge-both',
          columns: both,
          make: () => createRidge({ penaltyScales: scales, lambdas }),
        }
      : undefined,
    lut && { name: 'lut', columns: lut, make: () => createLut() },
    // Half the trees above 300 rows: the forest's cost grows with rows, its accuracy not.
    both && {
      name: 'rf',
      columns: both,
      make: (seed) => createForest({ seed, trees: rows > 300 ? 50 : 100 }),
    },
    both && {
      name: 'gbt',
      columns: both,
      make: (seed) => createBoosting({ seed, penaltyScales: scales, baseLambdas: lambdas }),
    },
    both && rows <= mlpMaxRows && rows >= mlpMinRows
      ? { name: 'mlp', columns: both, make: mlp(1) }
      : undefined,
    both && rows <= ensembleMaxRows && rows >= mlpMinRows
      ? { name: 'mlp-ensemble', columns: both, make: mlp(3) }
      : undefined,
  ];
  return out.filter((p): p is AutoPlan => p !== undefined && candidates.includes(p.name));
}

function columnsOf(x: Matrix, [start, end]: readonly [number, number], rows?: Int32Array): Matrix {
  const cols = end - start;
  const index = rows ?? Int32Array.from({ length: x.rows }, (_, i) => i);
  const data = new Float64Array(index.length * cols);
  index.forEach((r, i) => {
    data.set(x.data.subarray(r * x.cols + start, r * x.cols + end), i * cols);
  });
  return { rows: index.length, cols, data };
}

const meanRelativeError = (predicted: ArrayLike<number>, measured: Float64Array) => {
  let s = 0;
  measured.forEach((m, i) => {
    s += Math.abs((predicted[i] as number) / m - 1);
  });
  return s / measured.length;
};

/**
 * Greedy forward selection with replacement; returns weights per candidate. `rows` (with
 * repeats: a bootstrap sample) are the rows scored; all rows when undefined.
 */
function greedyBlend(
  oof: readonly Float64Array[],
  y: Float64Array,
  steps: number,
  rows?: Int32Array,
): Float64Array {
  const k = oof.length;
  const index = rows ?? Int32Array.from({ length: y.length }, (_, i) => i);
  const counts = new Float64Array(k);
  const sum = new Float64Array(y.length);
  let used = 0;
  let current = Number.POSITIVE_INFINITY;
  for (let step = 0; step < steps; step++) {
    let best = -1;
    let bestError = current;
    for (let c = 0; c < k; c++) {
      const p = oof[c] as Float64Array;
      let e = 0;
      for (const i of index) {
        e += Math.abs(((sum[i] as number) + (p[i] as number)) / (used + 1) / (y[i] as number) - 1);
      }
      e /= index.length;
      if (e < bestError - 1e-12) {
        bestError = e;
        best = c;
      }
    }
    if (best < 0) break;
    counts[best] = (counts[best] as number) + 1;
    const p = oof[best] as Float64Array;
    for (let i = 0; i < y.length; i++) sum[i] = (sum[i] as number) + (p[i] as number);
    used++;
    current = bestError;
  }
  return counts.map((c) => (used > 0 ? c / used : 0));
}

/** Weights of `bags` greedy blends on seeded bootstrap samples of the rows, averaged. */
function baggedBlend(
  oof: readonly Float64Array[],
  y: Float64Array,
  steps: number,
  bags: number,
  seed: number,
): Float64Array {
  const rng = createRng(seed + 7919);
  const total = new Float64Array(oof.length);
  for (let b = 0; b < bags; b++) {
    const rows = Int32Array.from({ length: y.length }, () => rng.int(y.length));
    greedyBlend(oof, y, steps, rows).forEach((w, c) => {
      total[c] = (total[c] as number) + w / bags;
    });
  }
  return total;
}

/**
 * Mean and standard error of the per-row difference of relative errors, candidate a minus
 * candidate b (negative: a is better).
 */
function pairedDifference(a: Float64Array, b: Float64Array, y: Float64Array) {
  const d = Float64Array.from(
    y,
    (m, i) => Math.abs((a[i] as number) / m - 1) - Math.abs((b[i] as number) / m - 1),
  );
  const mean = d.reduce((s, v) => s + v, 0) / d.length;
  const variance = d.reduce((s, v) => s + (v - mean) ** 2, 0) / Math.max(1, d.length - 1);
  return { mean, se: Math.sqrt(variance / d.length) };
}

/** The blend sum_c weights[c] x predicted[c], row by row (candidates of weight 0 skipped). */
function weightedPrediction(
  predicted: readonly Float64Array[],
  weights: ArrayLike<number>,
  rows: number,
): Float64Array {
  const out = new Float64Array(rows);
  predicted.forEach((p, c) => {
    const w = weights[c] as number;
    if (w > 0)
      p.forEach((v, r) => {
        out[r] = (out[r] as number) + w * v;
      });
  });
  return out;
}

interface Member {
  readonly name: AutoCandidate;
  readonly weight: number;
  readonly columns: readonly [number, number];
  readonly regressor: MemberRegressor;
}

async function memberStd(m: Member, x: Matrix): Promise<PredictionWithStd> {
  const input = columnsOf(x, m.columns);
  if (m.regressor.predictWithStd) return m.regressor.predictWithStd(input);
  const mean = await m.regressor.predict(input);
  return { mean, std: new Float64Array(mean.length) };
}

/** Out-of-fold predictions of every candidate: K-fold cross-validation on the training rows. */
export interface CrossValidation {
  readonly plans: readonly AutoPlan[];
  /** Per candidate, its out-of-fold prediction of every training row (empty without CV). */
  readonly predicted: readonly Float64Array[];
  readonly scores: readonly CandidateScore[];
}

function checkInput(options: AutoOptions, x: Matrix, latencyMs: Float64Array): AutoPlan[] {
  if (latencyMs.length !== x.rows) {
    throw new ValidationError('latencyMs', `has ${latencyMs.length} values for ${x.rows} rows`);
  }
  latencyMs.forEach((v, i) => {
    if (!(v > 0) || !Number.isFinite(v)) {
      throw new ValidationError(`latencyMs[${i}]`, `must be a positive number, got ${v}`);
    }
  });
  const candidates = plans(options, x.rows);
  if (candidates.length === 0) {
    throw new ValidationError(
      'auto',
      'no candidate model fits the feature layout; give physics, encoding or lut columns',
    );
  }
  for (const c of candidates) {
    if (c.columns[1] > x.cols || c.columns[0] < 0 || c.columns[0] >= c.columns[1]) {
      throw new ValidationError(
        'layout',
        `columns ${c.columns.join('..')} of ${c.name} are outside the ${x.cols} inputs`,
      );
    }
  }
  return candidates;
}

/**
 * Every candidate's out-of-fold predictions (folds seeded by `options.seed`). Without enough
 * rows to cross-validate (under 4) or with a single candidate, no candidate is scored.
 */
export async function crossValidateCandidates(
  options: AutoOptions,
  x: Matrix,
  latencyMs: Float64Array,
): Promise<CrossValidation> {
  const candidates = checkInput(options, x, latencyMs);
  const { seed = 0 } = options;
  const { smallRows = 40 } = options;
  const wanted = options.folds ?? (x.rows <= smallRows ? 10 : 5);
  const folds = Math.max(0, Math.min(wanted, Math.floor(x.rows / 2)));
  if (folds < 2 || candidates.length === 1) {
    return { plans: candidates, predicted: [], scores: [] };
  }
  const rng = createRng(seed);
  const fold = new Int32Array(x.rows);
  const order = Array.from({ length: x.rows }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  order.forEach((r, i) => {
    fold[r] = i % folds;
  });
  const predictedAll: Float64Array[] = [];
  const scores: CandidateScore[] = [];
  for (const plan of candidates) {
    const t0 = performance.now();
    const predicted = new Float64Array(x.rows);
    for (let f = 0; f < folds; f++) {
      const trainRows = Int32Array.from(order.filter((r) => fold[r] !== f)).sort();
      const heldRows = Int32Array.from(order.filter((r) => fold[r] === f)).sort();
      const model = plan.make(seed + f + 1);
      await model.fit(
        columnsOf(x, plan.columns, trainRows),
        Float64Array.from(trainRows, (r) => latencyMs[r] as number),
      );
      const p = await model.predict(columnsOf(x, plan.columns, heldRows));
      heldRows.forEach((r, i) => {
        predicted[r] = p[i] as number;
      });
    }
    predictedAll.push(predicted);
    scores.push({
      name: plan.name,
      accuracy: 1 - meanRelativeError(predicted, latencyMs),
      seconds: (performance.now() - t0) / 1000,
    });
  }
  return { plans: candidates, predicted: predictedAll, scores };
}

/** Weights per candidate (in `plans` order, summing to 1) and the out-of-fold accuracies. */
export interface Selection {
  readonly weights: Float64Array;
  /** Out-of-fold accuracy of the chosen model (NaN without cross-validation). */
  readonly accuracy: number;
  /** Out-of-fold accuracy of the greedy blend, chosen or not (NaN without cross-validation). */
  readonly blendAccuracy: number;
}

/**
 * The members auto keeps, from the out-of-fold predictions alone: the best single candidate,
 * or the greedy blend when it beats that by `blendMargin`. Without scores (too few rows),
 * the first candidate (physics ridge when present).
 */
export function selectMembers(
  cv: CrossValidation,
  latencyMs: Float64Array,
  options: Pick<
    AutoOptions,
    | 'blendSteps'
    | 'blendMargin'
    | 'preferFirst'
    | 'preferFirstMargin'
    | 'independent'
    | 'blendBags'
    | 'tieAverage'
    | 'blendSe'
    | 'seed'
  > = {},
): Selection {
  const { blendSteps = 20, blendMargin = 0.002, preferFirst = 4, blendBags = 0 } = options;
  const { tieAverage = 0, blendSe = 4 } = options;
  const { preferFirstMargin = Number.POSITIVE_INFINITY } = options;
  const { independent = ['ridge-encoding', 'lut'] } = options;
  const k = cv.plans.length;
  const single = (c: number) => Float64Array.from({ length: k }, (_, i) => (i === c ? 1 : 0));
  if (cv.scores.length === 0) {
    return { weights: single(0), accuracy: Number.NaN, blendAccuracy: Number.NaN };
  }
  const oof = cv.predicted;
  const scores = cv.scores;
  let best = scores.reduce(
    (a, s, i) => (s.accuracy > (scores[a] as CandidateScore).accuracy ? i : a),
    0,
  );
  if (preferFirst > 0 && best !== 0) {
    // The best out of fold among the candidates that beat the first one credibly.
    const first = (scores[0] as CandidateScore).accuracy;
    const credible = (c: number) => {
      const s = scores[c] as CandidateScore;
      const lead = s.accuracy - first;
      if (c === 0 || lead >= preferFirstMargin) return true;
      if (independent.includes(s.name)) return lead > 0;
      const d = pairedDifference(oof[c] as Float64Array, oof[0] as Float64Array, latencyMs);
      return -d.mean > preferFirst * d.se;
    };
    if (!credible(best)) {
      best = scores.reduce(
        (a, s, i) => (credible(i) && s.accuracy > (scores[a] as CandidateScore).accuracy ? i : a),
        0,
      );
    }
  }
  const weights =
    blendBags > 0
      ? baggedBlend(oof, latencyMs, blendSteps, blendBags, options.seed ?? 0)
      : greedyBlend(oof, latencyMs, blendSteps);
  const blended = weightedPrediction(oof, weights, latencyMs.length);
  const blendAccuracy = 1 - meanRelativeError(blended, latencyMs);
  let bestAccuracy = (scores[best] as CandidateScore).accuracy;
  let baseline = single(best);
  if (tieAverage > 0) {
    const top = oof[best] as Float64Array;
    const ties = oof.flatMap((p, c) => {
      if (c === best) return [c];
      const d = pairedDifference(p, top, latencyMs);
      return d.mean <= tieAverage * d.se ? [c] : [];
    });
    if (ties.length > 1) {
      baseline = Float64Array.from({ length: k }, (_, c) =>
        ties.includes(c) ? 1 / ties.length : 0,
      );
      const mean = new Float64Array(latencyMs.length);
      for (const c of ties) {
        (oof[c] as Float64Array).forEach((v, r) => {
          mean[r] = (mean[r] as number) + v / ties.length;
        });
      }
      bestAccuracy = 1 - meanRelativeError(mean, latencyMs);
    }
  }
  // The blend's weights are fitted on the same out-of-fold rows that score it, so it
  // must win by a margin to be trusted over the best single candidate.
  const significant = () => {
    if (blendSe <= 0) return true;
    const chosen = weightedPrediction(oof, baseline, latencyMs.length);
    const d = pairedDifference(blended, chosen, latencyMs);
    return -d.mean > blendSe * d.se;
  };
  if (
    blendAccuracy > bestAccuracy + blendMargin &&
    weights.filter((w) => w > 0).length > 1 &&
    significant()
  ) {
    return { weights, accuracy: blendAccuracy, blendAccuracy };
  }
  return { weights: baseline, accuracy: bestAccuracy, blendAccuracy };
}

function autoModel(
  options: AutoOptions | undefined,
  fitted?: { inputs: number; members: Member[]; json?: AutoJson },
): AutoModel {
  let state = fitted;
  let report: AutoFitReport | undefined;
  const need = () => {
    if (!state) throw new ValidationError('auto', 'predict called before fit');
    return state;
  };
  const withStd = async (x: Matrix): Promise<PredictionWithStd> => {
    const s = need();
    if (x.cols !== s.inputs) {
      throw new ValidationError(
        'x',
        `expected ${s.inputs} columns (the features length), got ${x.cols}`,
      );
    }
    const parts = await Promise.all(s.members.map((m) => memberStd(m, x)));
    const mean = new Float64Array(x.rows);
    parts.forEach((p, i) => {
      const w = (s.members[i] as Member).weight;
      p.mean.forEach((v, r) => {
        mean[r] = (mean[r] as number) + w * v;
      });
    });
    const variance = new Float64Array(x.rows);
    parts.forEach((p, i) => {
      const w = (s.members[i] as Member).weight;
      p.mean.forEach((v, r) => {
        const d = v - (mean[r] as number);
        const sd = p.std[r] as number;
        variance[r] = (variance[r] as number) + w * (sd * sd + d * d);
      });
    });
    return { mean, std: variance.map(Math.sqrt) };
  };
  return {
    kind: 'auto',
    get report() {
      return report;
    },
    async fit(x: Matrix, latencyMs: Float64Array): Promise<AutoFitReport> {
      if (!options) throw new ValidationError('auto', 'a restored model cannot be refitted');
      const started = performance.now();
      const { seed = 0 } = options;
      const cv = await crossValidateCandidates(options, x, latencyMs);
      const selection = selectMembers(cv, latencyMs, options);
      const chosen = cv.plans
        .map((plan, c) => ({ plan, weight: selection.weights[c] as number }))
        .filter((m) => m.weight > 0);
      const { accuracy, blendAccuracy } = selection;
      const scores = cv.scores;
      const members: Member[] = [];
      for (const { plan, weight } of chosen) {
        const regressor = plan.make(seed);
        await regressor.fit(columnsOf(x, plan.columns), latencyMs);
        members.push({ name: plan.name, weight, columns: plan.columns, regressor });
      }
      state = { inputs: x.cols, members };
      const oof =
        cv.predicted.length > 0
          ? weightedPrediction(cv.predicted, selection.weights, x.rows)
          : undefined;
      report = {
        seconds: (performance.now() - started) / 1000,
        candidates: scores,
        chosen: members.map((m) => ({ name: m.name, weight: m.weight })),
        accuracy,
        blendAccuracy,
        oof,
      };
      return report;
    },
    async predict(x: Matrix): Promise<Float64Array> {
      return (await withStd(x)).mean;
    },
    predictWithStd: withStd,
    toJSON(): AutoJson {
      const s = need();
      if (s.json) return s.json;
      return {
        kind: 'auto',
        inputs: s.inputs,
        members: s.members.map((m) => {
          if (!m.regressor.toJSON)
            throw new ValidationError('auto', `member ${m.name} cannot be stored`);
          return {
            name: m.name,
            weight: m.weight,
            columns: [m.columns[0], m.columns[1]],
            model: m.regressor.toJSON(),
          };
        }),
        candidates: (report?.candidates ?? []).map((c) => ({ name: c.name, accuracy: c.accuracy })),
      };
    },
  };
}

export function createAuto(options: AutoOptions): AutoModel {
  return autoModel(options);
}

/** The member regressor stored in an auto model (or any stored non-auto model). */
export function memberFromJson(json: MemberModelJson): MemberRegressor {
  switch (json.kind) {
    case 'ridge':
      return ridgeFromJSON(json);
    case 'lut':
      return lutFromJSON(json);
    case 'rf':
      return forestFromJson(json);
    case 'gbt':
      return boostingFromJson(json);
    case 'mlp': {
      const m = new MlpRegressor();
      m.load(mlpStateFromJson(json));
      return Object.assign(m, { toJSON: () => json });
    }
  }
}

export function autoFromJson(json: AutoJson): AutoModel {
  return autoModel(undefined, {
    inputs: json.inputs,
    json,
    members: json.members.map((m) => ({
      name: m.name as AutoCandidate,
      weight: m.weight,
      columns: [m.columns[0], m.columns[1]] as const,
      regressor: memberFromJson(m.model),
    })),
  });
}
