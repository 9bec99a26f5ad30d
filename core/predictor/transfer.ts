/**
 * Transfer to a new device: start from a predictor trained on another device of the same
 * space (the prior) and learn the new device from few measurements. Latencies of one
 * architecture on two GPUs are close to proportional, and what is not proportional is
 * mostly a per-operator speed difference, so the correction is
 *
 *   log:  latency = exp(a + b * log(prior(x)) + w . z(x))
 *   ms:   latency =      a + b * prior(x)      + w . z(x)
 *
 * with z the standardised input features of the prior (the same vector the prior reads, so
 * the corrected predictor keeps one input). b is shrunk towards 1 and w towards 0 with
 * penalties chosen, together with the space, by K-fold cross-validation on the target rows
 * only: with 10 rows CV picks a one- or two-parameter correction, with hundreds a full
 * feature residual (a ridge on the features, started from the prior). The result is one
 * model for predictor.json and one ONNX graph (the prior's graph followed by the correction).
 * Pure: the caller reads the prior's directory and writes the new one.
 */
import { createEncoder } from '../encodings/index.ts';
import { physicsLabels } from '../encodings/physics.ts';
import { ValidationError } from '../errors.ts';
import type { SearchSpace } from '../spaces/types.ts';
import type { BaseModelJson, FeaturesJson, PredictorJson, TransferJson } from './artifact.ts';
import {
  createFeaturizer,
  type Featurizer,
  type FitPredictorOptions,
  type FitPredictorResult,
  featureChoiceOf,
  fitPredictor,
  regressorFromJson,
} from './index.ts';
import { lutLayout } from './lut.ts';
import { cholesky, choleskySolve, huberFactors, PENALTY_FLOOR, solveSpd } from './ridge.ts';
import { fitStandardiser, type Standardiser, standardise } from './standardise.ts';
import {
  applyCorrection,
  type CorrectionJson,
  type CorrectionSpace,
  PRIOR_FLOOR_MS,
  type PriorSourceJson,
  transferStd,
} from './transfer-json.ts';

export { applyCorrection, transferStd };

import type { FitReport, Matrix, PredictionWithStd, Regressor } from './types.ts';

/**
 * A set of correction features: a projection of the prior's input vector (cols x k, row-major)
 * or `all` its columns. Projections keep the correction small where rows are few, e.g. one
 * feature per unit (the prior's own contribution of that unit: a per-stage speed ratio).
 */
export interface FeatureBasis {
  readonly name: string;
  /** `all`, or a cols x k matrix. */
  readonly projection: 'all' | Matrix;
  /**
   * Tried only with at least this many rows: choosing among many candidates on few rows
   * overfits the choice itself. @default 0
   */
  readonly minRows?: number;
  /**
   * How the projected features are scaled before their weights are penalised: `columns`,
   * each to unit variance (a ridge on z-scores); `shared`, all by one factor, the standard
   * deviation of their sum, so that a weight is a relative change of that column's share and
   * the penalty pulls every column's coefficient towards the prior's in proportion to its
   * size (a column the prior gives no weight stays near none). @default 'columns'
   */
  readonly scaling?: 'columns' | 'shared';
}

export interface TransferOptions {
  /** Spaces to try: `log` (multiplicative correction) and/or `ms` (additive). @default both */
  readonly spaces?: readonly CorrectionSpace[];
  /**
   * Penalties per sample on (slope - 1); `null` fixes the slope at 1 (a pure scale in `log`,
   * a pure offset in `ms`). @default [null, 0.1, 0]
   */
  readonly slopePenalties?: readonly (number | null)[];
  /**
   * Ridge penalties per sample on the (standardised) feature weights; `null` means no feature
   * term (an affine correction of the prior's output only).
   * @default [null, 100, 10, 1, 0.1, 0.01]
   */
  readonly featurePenalties?: readonly (number | null)[];
  /** Feature sets to try with every non-null feature penalty. @default [all columns] */
  readonly bases?: readonly FeatureBasis[];
  /** Cross-validation folds (capped at the number of rows). @default 10 */
  readonly folds?: number;
  /**
   * Also try every candidate fitted robustly: Huber weights on the relative residuals
   * (iteratively reweighted, as ridge.ts's `robust`), so that one misleading target row of a
   * small draw cannot pull the correction. Only up to `robustMaxRows` rows (cost: up to
   * `ROBUST_ITERATIONS` solves per candidate and fold). @default true
   */
  readonly robust?: boolean;
  /** Most target rows at which the robust candidates are tried. @default 200 */
  readonly robustMaxRows?: number;
  /**
   * Solve a robust candidate on a basis wider than the rows in the n x n (dual) form; false
   * keeps every system in the primal form, the reference the dual form is tested against.
   * @default true
   */
  readonly dualForm?: boolean;
}

const DEFAULT_SLOPE_PENALTIES = [null, 0.1, 0] as const;
const DEFAULT_FEATURE_PENALTIES = [null, 100, 10, 1, 0.1, 0.01] as const;
/**
 * A ridge on every input column: only where rows are plenty (at 10-20 rows CV chose it by
 * luck on 188 FCC columns), or at least twice the columns.
 */
const ALL: FeatureBasis = { name: 'all', projection: 'all', minRows: 100 };
/** Below this many rows there is nothing to cross-validate on: the correction is a pure scale. */
const MIN_CV_ROWS = 4;
/** Reweighting rounds of a robust candidate (it settles in a few on 10-50 rows). */
const ROBUST_ITERATIONS = 10;
/**
 * A feature basis wider than this many times the rows is solved in the n x n (dual) form,
 * as ridge.ts's `dualRidge`: the whole input (281 columns for FBNet's auto prior) at 100-200
 * target rows, where a robust candidate's rounds of (p + 2) x (p + 2) systems took most of
 * `esm fit --prior`'s time.
 */
const DUAL_ROWS_PER_COLUMN = 0.75;

/** One candidate correction: the space, the two penalties and the feature basis. */
interface Candidate {
  readonly space: CorrectionSpace;
  readonly slopePenalty: number | null;
  readonly featurePenalty: number | null;
  /** Name of the basis; null without a feature term. */
  readonly basis: string | null;
  /** Fitted with Huber weights on the relative residuals (IRLS). */
  readonly robust: boolean;
}

/** One row of the cross-validation table, reported so a user can see what was compared. */
export interface CorrectionScore extends Candidate {
  /** Mean relative error over the held-out rows. */
  readonly error: number;
}

export interface CorrectionFit {
  readonly correction: CorrectionJson;
  /** Every candidate's cross-validated error, best first; empty when too few rows for CV. */
  readonly scores: readonly CorrectionScore[];
}

const toTarget = (space: CorrectionSpace, ms: number) =>
  space === 'log' ? Math.log(Math.max(ms, PRIOR_FLOOR_MS)) : ms;
const fromTarget = (space: CorrectionSpace, t: number) => (space === 'log' ? Math.exp(t) : t);

/** x times a cols x k projection. */
function project(x: Matrix, basis: FeatureBasis): Matrix {
  const p = basis.projection;
  if (p === 'all') return x;
  if (p.rows !== x.cols) {
    throw new ValidationError(
      `bases.${basis.name}`,
      `projects ${p.rows} columns, the input has ${x.cols}`,
    );
  }
  const data = new Float64Array(x.rows * p.cols);
  for (let i = 0; i < x.rows; i++) {
    for (let j = 0; j < x.cols; j++) {
      const v = x.data[i * x.cols + j] as number;
      if (v === 0) continue;
      for (let k = 0; k < p.cols; k++) {
        data[i * p.cols + k] =
          (data[i * p.cols + k] as number) + v * (p.data[j * p.cols + k] as number);
      }
    }
  }
  return { rows: x.rows, cols: p.cols, data };
}

/**
 * The regression problem of one (space, basis): rows of [z..., q, 1] with weights v and
 * target r = t - q, so that the slope's penalty pulls it to 1 and the feature weights' to 0.
 */
interface Problem {
  readonly cols: number;
  /** Row-major [z_1..z_k, q, 1] per row. */
  readonly design: Float64Array;
  readonly residual: Float64Array;
  readonly weight: Float64Array;
  /** The standardisation of the projected features, to turn weights back into raw-x ones. */
  readonly standardiser: Standardiser;
  /** Wide candidates may be solved in the dual form (`TransferOptions.dualForm`). */
  readonly dualForm: boolean;
}

function problem(
  space: CorrectionSpace,
  f: Matrix,
  prior: Float64Array,
  ms: Float64Array,
  scaling: FeatureBasis['scaling'] = 'columns',
  dualForm = true,
): Problem {
  const standardiser = scaling === 'shared' ? sharedStandardiser(f) : fitStandardiser(f);
  const z = standardise(standardiser, f);
  const p = z.cols;
  const cols = p + 2;
  const design = new Float64Array(z.rows * cols);
  const residual = new Float64Array(z.rows);
  const weight = new Float64Array(z.rows);
  let weightSum = 0;
  for (let i = 0; i < z.rows; i++) {
    design.set(z.data.subarray(i * p, (i + 1) * p), i * cols);
    const q = toTarget(space, prior[i] as number);
    design[i * cols + p] = q;
    design[i * cols + p + 1] = 1;
    residual[i] = toTarget(space, ms[i] as number) - q;
    // In ms, weighting by 1/latency^2 makes least squares minimise relative errors, the
    // metric predictors are judged by; log errors already are relative.
    const w = space === 'log' ? 1 : 1 / (ms[i] as number) ** 2;
    weight[i] = w;
    weightSum += w;
  }
  for (let i = 0; i < z.rows; i++) weight[i] = ((weight[i] as number) * z.rows) / weightSum;
  return { cols, design, residual, weight, standardiser, dualForm };
}
/** Column means, and one scale for all columns: the standard deviation of the row sums. */
function sharedStandardiser(f: Matrix): Standardiser {
  const { means } = fitStandardiser(f);
  const sums: Matrix = { rows: f.rows, cols: 1, data: new Float64Array(f.rows) };
  for (let i = 0; i < f.rows; i++) {
    let s = 0;
    for (let j = 0; j < f.cols; j++) s += f.data[i * f.cols + j] as number;
    sums.data[i] = s;
  }
  const [scale] = fitStandardiser(sums).scales;
  return { means, scales: means.map(() => scale as number) };
}

/**
 * Weighted Gram matrix and moment vector of the rows where `use` holds; `weight` replaces
 * the problem's row weights (a robust round's).
 */
function normal(pr: Problem, use: (row: number) => boolean, weight: Float64Array = pr.weight) {
  const { cols, design, residual } = pr;
  const gram = new Float64Array(cols * cols);
  const rhs = new Float64Array(cols);
  let count = 0;
  for (let i = 0; i < residual.length; i++) {
    if (!use(i)) continue;
    count++;
    const v = weight[i] as number;
    const offset = i * cols;
    for (let j = 0; j < cols; j++) {
      const dj = (design[offset + j] as number) * v;
      if (dj === 0) continue;
      rhs[j] = (rhs[j] as number) + dj * (residual[i] as number);
      for (let k = 0; k <= j; k++) {
        gram[j * cols + k] = (gram[j * cols + k] as number) + dj * (design[offset + k] as number);
      }
    }
  }
  for (let j = 0; j < cols; j++) {
    for (let k = 0; k < j; k++) gram[k * cols + j] = gram[j * cols + k] as number;
  }
  return { gram, rhs, count };
}

/**
 * Solves the candidate's penalised least squares; returns the coefficients over all columns
 * [w..., b - 1, a] (zeros for the columns the candidate leaves out).
 */
function solveCandidate(
  cols: number,
  gram: Float64Array,
  rhs: Float64Array,
  count: number,
  c: Candidate,
): Float64Array {
  const p = cols - 2;
  const used: number[] = [];
  if (c.featurePenalty !== null) for (let j = 0; j < p; j++) used.push(j);
  if (c.slopePenalty !== null) used.push(p);
  used.push(p + 1);
  const m = used.length;
  const a = new Float64Array(m * m);
  const b = new Float64Array(m);
  used.forEach((j, r) => {
    b[r] = rhs[j] as number;
    used.forEach((k, s) => {
      a[r * m + s] = gram[j * cols + k] as number;
    });
    const penalty = j < p ? (c.featurePenalty as number) : j === p ? (c.slopePenalty as number) : 0;
    // A floor keeps constant feature columns (all zero after standardisation) solvable.
    a[r * m + r] = (a[r * m + r] as number) + Math.max(penalty * count, PENALTY_FLOOR);
  });
  const solved = solveSpd(a, b, m);
  const coef = new Float64Array(cols);
  used.forEach((j, r) => {
    coef[j] = solved[r] as number;
  });
  return coef;
}

/** Whether `c` on `n` rows is solved in the dual form: a penalised basis wider than the rows. */
function inDualForm(pr: Problem, c: Candidate, n: number): boolean {
  const features = pr.cols - 2;
  return (
    pr.dualForm &&
    c.featurePenalty !== null &&
    c.featurePenalty * n > PENALTY_FLOOR &&
    n < DUAL_ROWS_PER_COLUMN * features
  );
}

/** Z Z^T of a problem's standardised features over all its rows: the dual form's kernel. */
const kernels = new WeakMap<Problem, Float64Array>();
function featureKernel(pr: Problem): Float64Array {
  let kernel = kernels.get(pr);
  if (kernel) return kernel;
  const { cols, design } = pr;
  const n = pr.residual.length;
  const k = cols - 2;
  kernel = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = 0;
      for (let l = 0; l < k; l++)
        sum += (design[i * cols + l] as number) * (design[j * cols + l] as number);
      kernel[i * n + j] = sum;
      kernel[j * n + i] = sum;
    }
  }
  kernels.set(pr, kernel);
  return kernel;
}

/**
 * `solveCandidate`'s weighted system on `rows` (row weights `weight`) in its n x n (dual)
 * form, for a candidate with `inDualForm`. With S = diag(sqrt(weight)), the penalised columns
 * P (the features, and the slope when its penalty is above the floor) with penalties Lambda,
 * and the unpenalised ones U (the intercept, and a slope penalised 0):
 * K = S P Lambda^-1 P^T S + I, gamma = (U~^T K^-1 U~)^-1 U~^T K^-1 y~ with U~ = S U and
 * y~ = S r, and the penalised coefficients Lambda^-1 P^T S K^-1 (y~ - U~ gamma). These are
 * the primal's coefficients, but for the floor the primal puts on the unpenalised columns.
 */
function solveDual(
  pr: Problem,
  rows: readonly number[],
  weight: Float64Array,
  c: Candidate,
): Float64Array {
  const { cols, design, residual } = pr;
  const k = cols - 2;
  const n = rows.length;
  const all = residual.length;
  const kernel = featureKernel(pr);
  const featurePenalty = (c.featurePenalty as number) * n;
  const slopeFree = c.slopePenalty !== null && !(c.slopePenalty * n > PENALTY_FLOOR);
  const slopePenalty = c.slopePenalty === null || slopeFree ? 0 : c.slopePenalty * n;
  const s = Float64Array.from(rows, (i) => Math.sqrt(weight[i] as number));
  const q = Float64Array.from(rows, (i) => design[i * cols + k] as number);
  const system = new Float64Array(n * n);
  for (let a = 0; a < n; a++) {
    const ra = (rows[a] as number) * all;
    for (let b = 0; b <= a; b++) {
      let v = (kernel[ra + (rows[b] as number)] as number) / featurePenalty;
      if (slopePenalty > 0) v += ((q[a] as number) * (q[b] as number)) / slopePenalty;
      v *= (s[a] as number) * (s[b] as number);
      system[a * n + b] = a === b ? v + 1 : v;
      system[b * n + a] = system[a * n + b] as number;
    }
  }
  const factor = cholesky(system, n);
  const free = [s.slice()];
  if (slopeFree) free.push(s.map((v, a) => v * (q[a] as number)));
  const y = Float64Array.from(rows, (i, a) => (s[a] as number) * (residual[i] as number));
  const ky = choleskySolve(factor, y, n);
  const ku = free.map((u) => choleskySolve(factor, u, n));
  const dot = (u: Float64Array, v: Float64Array) =>
    u.reduce((sum, x, a) => sum + x * (v[a] as number), 0);
  const m = free.length;
  const gls = new Float64Array(m * m);
  free.forEach((u, r) => {
    ku.forEach((v, t) => {
      gls[r * m + t] = dot(u, v);
    });
  });
  const gamma = solveSpd(
    gls,
    Float64Array.from(free, (u) => dot(u, ky)),
    m,
  );
  const alpha = ky.map((v, a) =>
    ku.reduce((sum, u, r) => sum - (gamma[r] as number) * (u[a] as number), v),
  );
  const coef = new Float64Array(cols);
  let slope = 0;
  rows.forEach((i, a) => {
    const sa = (s[a] as number) * (alpha[a] as number);
    for (let j = 0; j < k; j++)
      coef[j] = (coef[j] as number) + (design[i * cols + j] as number) * sa;
    slope += (q[a] as number) * sa;
  });
  for (let j = 0; j < k; j++) coef[j] = (coef[j] as number) / featurePenalty;
  if (c.slopePenalty !== null) coef[k] = slopeFree ? (gamma[1] as number) : slope / slopePenalty;
  coef[k + 1] = gamma[0] as number;
  return coef;
}

/** The candidate's weighted fit on the rows where `use` holds, in whichever form is cheaper. */
function solveWeighted(
  pr: Problem,
  use: (row: number) => boolean,
  weight: Float64Array,
  c: Candidate,
): Float64Array {
  const rows = Array.from({ length: pr.residual.length }, (_, i) => i).filter(use);
  if (inDualForm(pr, c, rows.length)) return solveDual(pr, rows, weight, c);
  const eq = normal(pr, use, weight);
  return solveCandidate(pr.cols, eq.gram, eq.rhs, eq.count, c);
}

/**
 * A robust candidate's coefficients on the rows where `use` holds: starting from the
 * plain solution, rounds of Huber weights on the relative residuals (log residuals in
 * `log`, (pred - y) / y in `ms`; ridge.ts `huberFactors`), the weights renormalised to
 * their plain sum so the penalties keep their size.
 */
function solveRobust(
  pr: Problem,
  use: (row: number) => boolean,
  c: Candidate,
  latencyMs: Float64Array,
): Float64Array {
  let coef = solveWeighted(pr, use, pr.weight, c);
  const rows = Array.from({ length: pr.residual.length }, (_, i) => i).filter(use);
  const plainSum = rows.reduce((s, i) => s + (pr.weight[i] as number), 0);
  for (let it = 0; it < ROBUST_ITERATIONS; it++) {
    const residual = rows.map((i) => {
      const predicted = predictProblem(pr, coef, i, c.space);
      const ms = latencyMs[i] as number;
      return c.space === 'log'
        ? Math.abs(Math.log(Math.max(predicted, PRIOR_FLOOR_MS) / ms))
        : Math.abs(predicted - ms) / ms;
    });
    const huber = huberFactors(residual);
    const weight = new Float64Array(pr.weight.length);
    let sum = 0;
    rows.forEach((i, k) => {
      const w = (pr.weight[i] as number) * (huber[k] as number);
      weight[i] = w;
      sum += w;
    });
    for (const i of rows) weight[i] = ((weight[i] as number) * plainSum) / sum;
    const next = solveWeighted(pr, use, weight, c);
    const change = next.reduce((a, v, j) => Math.max(a, Math.abs(v - (coef[j] as number))), 0);
    const size = next.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    coef = next;
    if (change <= 1e-9 * (1 + size)) break;
  }
  return coef;
}

function predictProblem(pr: Problem, coef: Float64Array, row: number, space: CorrectionSpace) {
  const { cols, design } = pr;
  let r = 0;
  for (let j = 0; j < cols; j++) r += (design[row * cols + j] as number) * (coef[j] as number);
  // t = q + r; q is the design's slope column.
  return fromTarget(space, (design[row * cols + cols - 2] as number) + r);
}

function candidates(options: TransferOptions, n: number, cols: number): Candidate[] {
  const spaces = options.spaces ?? ['log', 'ms'];
  const slopes = options.slopePenalties ?? DEFAULT_SLOPE_PENALTIES;
  const features = options.featurePenalties ?? DEFAULT_FEATURE_PENALTIES;
  const given = options.bases ?? [ALL];
  // A small input (e.g. the physics encoding) is as few parameters as a projection.
  const minRows = (b: FeatureBasis) =>
    b.projection === 'all' ? Math.min(b.minRows ?? 0, 2 * cols) : (b.minRows ?? 0);
  const bases = given.filter((b) => n >= minRows(b));
  for (const [field, list] of [
    ['spaces', spaces],
    ['slopePenalties', slopes],
    ['featurePenalties', features],
    ['bases', given],
  ] as const) {
    if (list.length === 0) throw new ValidationError(field, 'needs at least one candidate');
  }
  for (const penalty of [...slopes, ...features]) {
    if (penalty !== null && !(penalty >= 0)) {
      throw new ValidationError('penalty', `must be >= 0 or null, got ${penalty}`);
    }
  }
  // No basis for this few rows: an affine correction of the prior's output only.
  const usable = bases.length > 0 ? features : [null];
  const plain = spaces.flatMap((space) =>
    slopes.flatMap((slopePenalty) =>
      [...new Set(usable)].flatMap((featurePenalty): Candidate[] =>
        featurePenalty === null
          ? [{ space, slopePenalty, featurePenalty, basis: null, robust: false }]
          : bases.map((b) => ({
              space,
              slopePenalty,
              featurePenalty,
              basis: b.name,
              robust: false,
            })),
      ),
    ),
  );
  const { robust = true, robustMaxRows = 200 } = options;
  return robust && n <= robustMaxRows && n >= MIN_CV_ROWS
    ? [...plain, ...plain.map((c) => ({ ...c, robust: true }))]
    : plain;
}

const problemKey = (c: Pick<Candidate, 'space' | 'basis'>) => `${c.space}|${c.basis ?? ''}`;

/**
 * Fits the correction of `prior` (the prior's predictions for the rows of `x`) to the
 * measured `latencyMs`, choosing space, penalties and feature basis by cross-validated mean
 * relative error. Folds are interleaved (row i in fold i mod K): shuffle the rows first.
 */
export function fitCorrection(
  x: Matrix,
  prior: Float64Array,
  latencyMs: Float64Array,
  options: TransferOptions = {},
): CorrectionFit {
  const n = x.rows;
  if (prior.length !== n || latencyMs.length !== n) {
    throw new ValidationError(
      'latencyMs',
      `expected ${n} prior predictions and latencies, got ${prior.length} and ${latencyMs.length}`,
    );
  }
  if (n < 1) throw new ValidationError('train', 'needs at least 1 target measurement');
  latencyMs.forEach((v, i) => {
    if (!(v > 0)) throw new ValidationError(`latencyMs[${i}]`, `must be positive, got ${v}`);
  });
  prior.forEach((v, i) => {
    if (!Number.isFinite(v)) {
      throw new ValidationError(`prior[${i}]`, `the prior predicted ${v}; check the prior`);
    }
  });
  const all = candidates(options, n, x.cols);
  const bases = new Map((options.bases ?? [ALL]).map((b) => [b.name, b]));
  const none: Matrix = { rows: n, cols: 0, data: new Float64Array(0) };
  const problems = new Map<string, Problem>();
  const problemOf = (c: Pick<Candidate, 'space' | 'basis'>): Problem => {
    const key = problemKey(c);
    let pr = problems.get(key);
    if (!pr) {
      const basis = c.basis === null ? undefined : bases.get(c.basis);
      pr = problem(
        c.space,
        basis ? project(x, basis) : none,
        prior,
        latencyMs,
        basis?.scaling,
        options.dualForm,
      );
      problems.set(key, pr);
    }
    return pr;
  };

  let best: Candidate;
  let scores: CorrectionScore[] = [];
  if (n < MIN_CV_ROWS) {
    best = { space: 'log', slopePenalty: null, featurePenalty: null, basis: null, robust: false };
  } else {
    const folds = Math.min(options.folds ?? 10, n);
    const errors = new Float64Array(all.length);
    for (const key of new Set(all.map(problemKey))) {
      const members = all.flatMap((c, ci) => (problemKey(c) === key ? [ci] : []));
      const first = all[members[0] as number] as Candidate;
      const pr = problemOf(first);
      const total = normal(pr, () => true);
      for (let fold = 0; fold < folds; fold++) {
        const held = normal(pr, (i) => i % folds === fold);
        const gram = total.gram.map((v, i) => v - (held.gram[i] as number));
        const rhs = total.rhs.map((v, i) => v - (held.rhs[i] as number));
        for (const ci of members) {
          const c = all[ci] as Candidate;
          const coef = c.robust
            ? solveRobust(pr, (i) => i % folds !== fold, c, latencyMs)
            : solveCandidate(pr.cols, gram, rhs, total.count - held.count, c);
          for (let i = fold; i < n; i += folds) {
            const ms = latencyMs[i] as number;
            errors[ci] =
              (errors[ci] as number) + Math.abs(predictProblem(pr, coef, i, c.space) - ms) / ms;
          }
        }
      }
    }
    scores = all
      .map((c, ci) => ({ ...c, error: (errors[ci] as number) / n }))
      .sort((a, b) => a.error - b.error || complexity(a) - complexity(b));
    best = scores[0] as CorrectionScore;
  }

  const pr = problemOf(best);
  const total = normal(pr, () => true);
  const coef = best.robust
    ? solveRobust(pr, () => true, best, latencyMs)
    : solveCandidate(pr.cols, total.gram, total.rhs, total.count, best);
  const k = pr.cols - 2;
  // Back to raw x: w . (f - m) / s with f = x P is (P (w / s)) . x minus a constant.
  let intercept = coef[k + 1] as number;
  let features: CorrectionJson['features'] = null;
  if (best.basis !== null) {
    const basis = bases.get(best.basis) as FeatureBasis;
    const { means, scales } = pr.standardiser;
    const wf = Array.from({ length: k }, (_, j) => (coef[j] as number) / (scales[j] as number));
    wf.forEach((w, j) => {
      intercept -= w * (means[j] as number);
    });
    const projection = basis.projection;
    const weights =
      projection === 'all'
        ? wf
        : Array.from({ length: x.cols }, (_, i) =>
            wf.reduce((sum, w, j) => sum + w * (projection.data[i * k + j] as number), 0),
          );
    features = { basis: basis.name, weights };
  }
  const correction: CorrectionJson = {
    space: best.space,
    intercept,
    slope: 1 + (coef[k] as number),
    slope_penalty: best.slopePenalty,
    feature_penalty: best.featurePenalty,
    features,
    cv_error: scores.length ? (scores[0] as CorrectionScore).error : null,
    n,
    ...(best.robust ? { robust: true } : {}),
  };
  return { correction, scores };
}

/** Ties go to the simpler correction: fewer free parameters, heavier shrinkage, not robust. */
function complexity(c: Candidate): number {
  const slope = c.slopePenalty === null ? 0 : 1 / (1 + c.slopePenalty);
  const features = c.featurePenalty === null ? 0 : 10 / (1 + c.featurePenalty);
  return slope + features + (c.robust ? 0.5 : 0);
}

/** Groupings of input labels for `contributionBases`: a label's group key, or undefined. */
const GROUPINGS: readonly { name: string; key: (label: string) => string | undefined }[] = [
  { name: 'units', key: (l) => /(?:^|\.)(u\d+)\./.exec(l)?.[1] },
  { name: 'kernels', key: (l) => /kernel=(\d+)/.exec(l)?.[1] },
  {
    name: 'units x kernels',
    key: (l) => {
      const unit = /(?:^|\.)(u\d+)\./.exec(l)?.[1];
      const kernel = /kernel=(\d+)/.exec(l)?.[1];
      return unit && kernel ? `${unit}.k${kernel}` : undefined;
    },
  },
];

/**
 * The prior's coefficients on the raw input vector (its linear part): a ridge's or a LUT's
 * weights, an MLP's linear base, `auto`'s members weighted and placed at their columns; tree
 * ensembles have none (zeros).
 */
function linearCoefficients(model: BaseModelJson): number[] {
  switch (model.kind) {
    case 'ridge':
      return model.weights.map((w, j) => w / (model.standardiser.scales[j] as number));
    case 'lut':
      return model.costs;
    case 'mlp':
      return model.base.weights.map((w, j) => w / (model.input_scale[j] as number));
    case 'rf':
    case 'gbt':
      return new Array<number>(model.inputs).fill(0);
    case 'auto': {
      const out = new Array<number>(model.inputs).fill(0);
      for (const m of model.members) {
        linearCoefficients(m.model).forEach((c, j) => {
          const at = m.columns[0] + j;
          out[at] = (out[at] as number) + m.weight * c;
        });
      }
      return out;
    }
  }
}

/**
 * Feature bases made of the prior's own linear contributions, grouped by unit (`u{g}.` in
 * FCC and LUT labels), by kernel size (`kernel=k`) and by both: feature g of an architecture
 * is what the prior attributes to group g, so a weight on it rescales that group, e.g. a
 * per-stage or per-kernel speed ratio between the two devices: a handful of parameters where
 * the input has hundreds. Depth and resolution are added as they are (per-layer overhead,
 * input size). Nonlinear priors contribute their linear base. Groupings that match no label
 * are left out.
 */
export function contributionBases(model: BaseModelJson, labels: readonly string[]): FeatureBasis[] {
  const coefs = linearCoefficients(model);
  if (coefs.length !== labels.length || coefs.every((c) => c === 0)) return [];
  const extra = labels.flatMap((l, j) => (l === 'depth' || l === 'resolution' ? [j] : []));
  return GROUPINGS.flatMap(({ name, key }) => {
    const keyOf = labels.map(key);
    const groups = [...new Set(keyOf.filter((g): g is string => g !== undefined))].sort();
    if (groups.length === 0) return [];
    const k = groups.length + extra.length;
    const data = new Float64Array(labels.length * k);
    keyOf.forEach((g, j) => {
      if (g !== undefined) data[j * k + groups.indexOf(g)] = coefs[j] as number;
    });
    extra.forEach((j, e) => {
      data[j * k + groups.length + e] = 1;
    });
    return [{ name, projection: { rows: labels.length, cols: k, data } }];
  });
}

/**
 * The physics entries of a stacked input (auto's: physics first) as a basis of their own:
 * 17 cost features a ridge fits from 20 rows, so the correction can also learn what the
 * target device's costs are where the prior's output says little (a batch-1 prior of a
 * batch-64 device). With the slope free, it includes training on physics from scratch.
 * None when the input does not start with the physics entries or is physics alone ('all').
 */
export function physicsBasis(labels: readonly string[]): FeatureBasis[] {
  const k = physicsLabels.length;
  if (labels.length <= k || physicsLabels.some((l, j) => labels[j] !== l)) return [];
  const data = new Float64Array(labels.length * k);
  for (let j = 0; j < k; j++) data[j * k + j] = 1;
  return [{ name: 'physics', projection: { rows: labels.length, cols: k, data } }];
}

/**
 * The physics entries summed into the 7 costs a device's speed differs by most (the issue's
 * probe: dense MACs, depthwise MACs per kernel size, activation volume, layers; and the
 * input size): fewer weights than the 17 entries for a correction from 10-20 rows.
 */
export const physicsSummaryGroups: readonly (readonly string[])[] = [
  ['macs_dense_1x1', 'macs_dense_kxk', 'macs_grouped', 'macs_linear', 'macs_se'],
  ['macs_depthwise_k3'],
  ['macs_depthwise_k5'],
  ['macs_depthwise_k7'],
  ['activation_mb'],
  ['layers'],
  ['input_mb'],
];

/** `physics summary`: the `physicsSummaryGroups` sums of the physics entries, where the input starts with them. */
export function physicsSummaryBasis(labels: readonly string[]): FeatureBasis[] {
  if (physicsBasis(labels).length === 0) return [];
  const k = physicsSummaryGroups.length;
  const data = new Float64Array(labels.length * k);
  physicsSummaryGroups.forEach((group, g) => {
    for (const label of group) data[physicsLabels.indexOf(label) * k + g] = 1;
  });
  return [{ name: 'physics summary', projection: { rows: labels.length, cols: k, data } }];
}

/**
 * Bases made of the prior's own split into its physics part and the rest (the encoding and
 * LUT columns after the physics entries), for an input that starts with the physics entries:
 * - `physics shares`: the prior's contribution of each physics entry, scaled together
 *   (`shared`), so the weights are relative changes of the prior's coefficients;
 * - `parts`: the prior's physics part and its rest as two features: their own slopes;
 * - `physics + rest`: the physics entries and the prior's rest as one more feature.
 * Each only where the prior gives the parts it needs non-zero weight.
 */
export function priorPartBases(model: BaseModelJson, labels: readonly string[]): FeatureBasis[] {
  const k = physicsLabels.length;
  if (physicsBasis(labels).length === 0) return [];
  const coefs = linearCoefficients(model);
  if (coefs.length !== labels.length) return [];
  const cols = labels.length;
  const physicsWeight = coefs.slice(0, k).some((c) => c !== 0);
  const restWeight = coefs.slice(k).some((c) => c !== 0);
  const basis = (name: string, width: number, entry: (j: number) => [number, number][]) => {
    const data = new Float64Array(cols * width);
    for (let j = 0; j < cols; j++) {
      for (const [at, v] of entry(j)) data[j * width + at] = v;
    }
    return { name, projection: { rows: cols, cols: width, data } };
  };
  const out: FeatureBasis[] = [];
  if (physicsWeight) {
    out.push({
      ...basis('physics shares', k, (j) => (j < k ? [[j, coefs[j] as number]] : [])),
      scaling: 'shared',
    });
  }
  if (physicsWeight && restWeight) {
    out.push(basis('parts', 2, (j) => [[j < k ? 0 : 1, coefs[j] as number]]));
  }
  if (restWeight) {
    out.push(basis('physics + rest', k + 1, (j) => (j < k ? [[j, 1]] : [[k, coefs[j] as number]])));
  }
  return out;
}

/**
 * The default candidates for a prior with known input labels. Where the input starts with
 * the physics entries (auto's), the correction is fitted in `ms` on the physics summary, the
 * physics entries and the prior's parts (`priorPartBases`): on the HELP GPUs at 10 and 20
 * rows that beat also offering `log` and per-unit contributions (more candidates made CV's
 * choice noisier; the same at 50), docs/BENCHMARKS.md. Otherwise per-unit contributions:
 * per-kernel and unit-x-kernel groups did no better and made the choice noisier. All columns
 * from 100 rows (or 2 x the columns) on, both ways.
 */
function defaultBases(
  prior: { readonly model: BaseModelJson; readonly labels?: readonly string[] },
  options: TransferOptions,
): TransferOptions {
  const labels = prior.labels ?? [];
  const physics = physicsBasis(labels);
  if (physics.length > 0) {
    return {
      spaces: ['ms'],
      ...options,
      bases: [
        ...physicsSummaryBasis(labels),
        ...physics,
        ...priorPartBases(prior.model, labels),
        ALL,
      ],
    };
  }
  const units = contributionBases(prior.model, labels).filter((b) => b.name === 'units');
  return units.length === 0 ? options : { ...options, bases: [...units, ALL] };
}

/** A regressor whose `fit` learns the correction of a fixed prior; `toJSON` gives the model. */
export interface TransferRegressor extends Regressor {
  /** The fitted correction and its CV table; undefined before `fit`. */
  readonly fitted: CorrectionFit | undefined;
  toJSON(): TransferJson;
}

/**
 * Wraps the prior `model` (of another device) so that `fit` learns this device's correction.
 * With the labels of the prior's input vector and no `bases` in `options`, the feature term
 * is tried on all input columns and on the prior's grouped contributions (`contributionBases`).
 */
export function createTransferRegressor(
  prior: {
    readonly model: BaseModelJson;
    readonly source: PriorSourceJson;
    readonly labels?: readonly string[];
  },
  options: TransferOptions = {},
): TransferRegressor {
  const fitOptions = options.bases || !prior.labels ? options : defaultBases(prior, options);
  const base = regressorFromJson(prior.model);
  let fitted: CorrectionFit | undefined;
  return {
    kind: 'transfer',
    get fitted() {
      return fitted;
    },
    async fit(x: Matrix, latencyMs: Float64Array): Promise<FitReport> {
      const started = performance.now();
      fitted = fitCorrection(x, await base.predict(x), latencyMs, fitOptions);
      return { seconds: (performance.now() - started) / 1000 };
    },
    async predict(x: Matrix): Promise<Float64Array> {
      if (!fitted) throw new ValidationError('transfer', 'predict called before fit');
      return applyCorrection(fitted.correction, x, await base.predict(x));
    },
    async predictWithStd(x: Matrix): Promise<PredictionWithStd> {
      if (!fitted) throw new ValidationError('transfer', 'predict called before fit');
      const c = fitted.correction;
      const p = base.predictWithStd ? await base.predictWithStd(x) : undefined;
      const priorMs = p?.mean ?? (await base.predict(x));
      const mean = applyCorrection(c, x, priorMs);
      return { mean, std: transferStd(c, mean, priorMs, p?.std) };
    },
    toJSON(): TransferJson {
      if (!fitted) throw new ValidationError('transfer', 'toJSON called before fit');
      return {
        kind: 'transfer',
        prior: prior.model,
        prior_source: prior.source,
        correction: fitted.correction,
      };
    },
  };
}

/** The label of every input column of a predictor's features (stacked parts side by side). */
export function featureLabels(space: SearchSpace, features: FeaturesJson): string[] {
  const part = (f: Exclude<FeaturesJson, { kind: 'stack' }>): readonly string[] =>
    f.kind === 'lut'
      ? lutLayout(space, { buckets: f.buckets }).labels
      : createEncoder(space, f.encoding).labels;
  return features.kind === 'stack'
    ? features.parts.flatMap((f) => [...part(f)])
    : [...part(features)];
}

/**
 * The featurizer and untrained transfer regressor for a prior predictor.json (checked: same
 * space, not itself transferred): what `fitTransferPredictor` and the loop's training step fit.
 */
export function transferModel(
  space: SearchSpace,
  prior: PredictorJson,
  options: TransferOptions = {},
): { featurizer: Featurizer; regressor: TransferRegressor } {
  if (prior.space.name !== space.name) {
    throw new ValidationError(
      '--prior',
      `the prior predicts space "${prior.space.name}", the data is "${space.name}"; use a prior of the same space`,
    );
  }
  if (prior.model.kind === 'transfer') {
    throw new ValidationError(
      '--prior',
      'the prior is itself a transferred predictor; use the predictor it was transferred from, or one fitted from scratch',
    );
  }
  const regressor = createTransferRegressor(
    {
      model: prior.model,
      source: {
        data: prior.training.data,
        n_train: prior.training.n_train,
        created_at: prior.training.created_at,
      },
      labels: featureLabels(space, prior.features),
    },
    options,
  );
  return { featurizer: createFeaturizer(space, featureChoiceOf(prior.features)), regressor };
}

export interface FitTransferOptions
  extends Omit<FitPredictorOptions, 'model' | 'encoding' | 'lutBuckets' | 'options' | 'custom'> {
  /** The prior predictor (of another device in the same space), as read from its predictor.json. */
  readonly prior: PredictorJson;
  /** Where the prior was read from, recorded in the training options. */
  readonly priorDir?: string;
  readonly transfer?: TransferOptions;
}

export interface FitTransferResult extends FitPredictorResult {
  readonly correction: CorrectionFit;
}

/**
 * `fitPredictor` for a new device from a prior: the same split, evaluation and predictor.json,
 * with the prior's features and a fitted correction as the model.
 */
export async function fitTransferPredictor(
  options: FitTransferOptions,
): Promise<FitTransferResult> {
  const { prior, space } = options;
  const custom = transferModel(space, prior, options.transfer);
  const result = await fitPredictor({
    ...options,
    spaceSpec: options.spaceSpec ?? prior.space.spec,
    custom,
  });
  const regressor = custom.regressor;
  const fitted = regressor.fitted as CorrectionFit;
  return {
    ...result,
    predictor: {
      ...result.predictor,
      training: {
        ...result.predictor.training,
        options: {
          prior: options.priorDir ?? null,
          ...options.transfer,
          chosen: {
            space: fitted.correction.space,
            slope_penalty: fitted.correction.slope_penalty,
            feature_penalty: fitted.correction.feature_penalty,
          },
        },
      },
    },
    correction: fitted,
  };
}
