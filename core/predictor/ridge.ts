/**
 * Ridge regression baseline: closed-form least squares with an L2 penalty on standardised
 * features. The target is log latency (effects multiply, errors are judged relative) or
 * latency in ms (effects add up, as with FCC's resolution-scaled counts); by default both,
 * with the penalty, are chosen by 5-fold cross-validation on the relative error.
 * `robust` adds a third fit of the ms target to that choice: least squares weighted by
 * 1 / latency^2 (so it minimises relative errors, the metric) with Huber weights on the
 * relative residuals (iteratively reweighted), so that one misleading row of a 20-row draw
 * cannot pull the whole model; the model stays linear in its features (the stored target
 * is `linear`, exported like any ridge). Serialisable for predictor.json. A fold of the
 * cross-validation with far fewer rows than columns (20-200 rows of FCC's ~300) is solved in
 * the n x n dual form (`dualRidge`), the same coefficients at a fraction of the cost.
 */
import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import { median } from '../stats.ts';
import {
  fitStandardiser,
  parseStandardiser,
  type Standardiser,
  standardise,
  standardiserJson,
} from './standardise.ts';
import type { FitReport, Matrix, PredictionWithStd, Regressor } from './types.ts';

export const ridgeTargets = ['log', 'linear'] as const;
export type RidgeTarget = (typeof ridgeTargets)[number];

export interface RidgeOptions {
  /**
   * Penalty per sample: minimises mean squared error + lambda * |w|^2 on standardised
   * features. Chosen by 5-fold cross-validation over `lambdas` when undefined.
   * @default undefined
   */
  readonly lambda?: number;
  /**
   * Candidate penalties for the cross-validation.
   * @default [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10]
   */
  readonly lambdas?: readonly number[];
  /**
   * What the linear model predicts: `log` latency (multiplicative effects, relative
   * errors), `linear` latency in ms (additive effects, e.g. FCC's resolution-scaled counts),
   * or `auto`: whichever cross-validates better.
   * @default 'auto'
   */
  readonly target?: RidgeTarget | 'auto';
  /**
   * Per-column multipliers of the penalty (length = columns): a small value lets that
   * column's weight grow freely (a prior that is trusted first, e.g. the physics entries),
   * a large one keeps it near 0 unless the data insist. Undefined: 1 for every column.
   * @default undefined
   */
  readonly penaltyScales?: readonly number[];
  /**
   * Also cross-validate the robust relative fit of the ms target (`loss` `huber-relative`:
   * weights 1 / latency^2, Huber weights on the relative residuals at 1.345 robust standard
   * deviations, penalties of at least `robustMinLambda`). Each penalty then costs up to
   * `IRLS_ITERATIONS` weighted solves, cheap on narrow inputs such as the 17 physics entries.
   * On the physics encoding: level or ahead in 36 of 39 cells (13 files at 20, 50, 100 rows,
   * medians of 6-10 seeds), 0.1-0.5 points behind in 3 at 20 rows (docs/BENCHMARKS.md).
   * @default false
   */
  readonly robust?: boolean;
  /**
   * Smallest penalty tried for the robust fit: at 20 rows a nearly unpenalised 17-feature fit
   * won the folds by luck on DenseNet and lost 3 points on test rows.
   * @default 1e-3
   */
  readonly robustMinLambda?: number;
  /**
   * How `rel_std` (the uncertainty) is measured when nothing is left to choose (a fixed
   * `lambda`, a fixed `target`, no `robust`): `cv` cross-validates the residuals, five more
   * fits; `in-sample` takes the doubled in-sample residual (as under 10 rows), for callers
   * that only need the coefficients (the boosted trees' base refit, forest.ts). With
   * anything to choose, cross-validation runs either way.
   * @default 'cv'
   */
  readonly uncertainty?: 'cv' | 'in-sample';
}

/** How the coefficients were fitted: plain least squares in the target, or robust (above). */
export const ridgeLosses = ['squared', 'huber-relative'] as const;
export type RidgeLoss = (typeof ridgeLosses)[number];

export const ridgeJson = z.object({
  kind: z.literal('ridge'),
  target: z.enum(ridgeTargets),
  lambda: z.number().nonnegative(),
  standardiser: standardiserJson,
  intercept: z.number(),
  weights: z.array(z.number()),
  /** How the weights were fitted (provenance; prediction is the same). Absent: `squared`. */
  loss: z.enum(ridgeLosses).optional(),
  /**
   * Cross-validated relative RMS error (5 folds; doubled in-sample error under 10 rows):
   * `std_ms` = rel_std x prediction. Absent in files written before it existed.
   */
  rel_std: z.number().nonnegative().optional(),
});
export type RidgeJson = z.infer<typeof ridgeJson>;

export interface RidgeModel extends Regressor {
  readonly kind: 'ridge';
  predictWithStd(x: Matrix): Promise<PredictionWithStd>;
  /** The penalty in use (after cross-validation); undefined before `fit`. */
  readonly lambda: number | undefined;
  /** The target in use (after cross-validation); undefined before `fit`. */
  readonly target: RidgeTarget | undefined;
  /** How the coefficients were fitted (after cross-validation); undefined before `fit`. */
  readonly loss: RidgeLoss | undefined;
  toJSON(): RidgeJson;
}

const DEFAULT_LAMBDAS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10];
const FOLDS = 5;
/** Most reweighting rounds of the robust fit (it usually settles in 5-10). */
const IRLS_ITERATIONS = 20;
/** Huber's tuning constant: 95 % efficiency under normal errors. */
const HUBER_C = 1.345;
/** Least penalty of a column: keeps all-zero (constant) columns solvable at lambda 0. */
export const PENALTY_FLOOR = 1e-9;

/**
 * Cholesky factor L (row-major, lower triangle) of a symmetric positive definite A (n x n),
 * A = L L^T. Throws when A is not positive definite.
 */
export function cholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let j = 0; j <= i; j++) {
      const rj = j * n;
      // Four partial sums: the dot product of rows i and j is most of the work, and one
      // accumulator would wait on every addition (this ran 2-3x slower on 300 columns).
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let k = 0;
      for (; k + 3 < j; k += 4) {
        s0 += (l[ri + k] as number) * (l[rj + k] as number);
        s1 += (l[ri + k + 1] as number) * (l[rj + k + 1] as number);
        s2 += (l[ri + k + 2] as number) * (l[rj + k + 2] as number);
        s3 += (l[ri + k + 3] as number) * (l[rj + k + 3] as number);
      }
      for (; k < j; k++) s0 += (l[ri + k] as number) * (l[rj + k] as number);
      const sum = (a[ri + j] as number) - (s0 + s1 + (s2 + s3));
      if (i === j) {
        if (!(sum > 0)) throw new RangeError('matrix is not positive definite');
        l[ri + i] = Math.sqrt(sum);
      } else {
        l[ri + j] = sum / (l[rj + j] as number);
      }
    }
  }
  return l;
}

/** Solves L L^T x = b for the factor of `cholesky`. */
export function choleskySolve(l: Float64Array, b: Float64Array, n: number): Float64Array {
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let sum = b[i] as number;
    for (let k = 0; k < i; k++) sum -= (l[i * n + k] as number) * (y[k] as number);
    y[i] = sum / (l[i * n + i] as number);
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let sum = y[i] as number;
    for (let k = i + 1; k < n; k++) sum -= (l[k * n + i] as number) * (x[k] as number);
    x[i] = sum / (l[i * n + i] as number);
  }
  return x;
}

/**
 * Solves A x = b for a symmetric positive definite A (row-major, n x n) by Cholesky
 * decomposition. Throws when A is not positive definite.
 */
export function solveSpd(a: Float64Array, b: Float64Array, n: number): Float64Array {
  return choleskySolve(cholesky(a, n), b, n);
}

/**
 * Weighted Gram matrix sum_i w_i [z_i 1]^T [z_i 1] over the rows `rows` of z (weights 1
 * when undefined), p x p with p = cols + 1, both triangles filled.
 */
function weightedGram(z: Matrix, rows: Int32Array, weights?: Float64Array): Float64Array {
  const p = z.cols + 1;
  const gram = new Float64Array(p * p);
  // Four rows per pass over the triangle: a quarter of the loads and stores of the Gram
  // entries, which dominated the one-row loop (unused slots of the last pass stay zero).
  const b0 = new Float64Array(p);
  const b1 = new Float64Array(p);
  const b2 = new Float64Array(p);
  const b3 = new Float64Array(p);
  const block = [b0, b1, b2, b3];
  const w = new Float64Array(4);
  for (let start = 0; start < rows.length; start += 4) {
    for (let f = 0; f < 4; f++) {
      const slot = block[f] as Float64Array;
      const i = start + f;
      if (i < rows.length) {
        const r = rows[i] as number;
        slot.set(z.data.subarray(r * z.cols, (r + 1) * z.cols));
        slot[z.cols] = 1;
        w[f] = weights ? (weights[i] as number) : 1;
      } else {
        slot.fill(0);
        w[f] = 0;
      }
    }
    const w0 = w[0] as number;
    const w1 = w[1] as number;
    const w2 = w[2] as number;
    const w3 = w[3] as number;
    for (let j = 0; j < p; j++) {
      const a0 = w0 * (b0[j] as number);
      const a1 = w1 * (b1[j] as number);
      const a2 = w2 * (b2[j] as number);
      const a3 = w3 * (b3[j] as number);
      if (a0 === 0 && a1 === 0 && a2 === 0 && a3 === 0) continue;
      const offset = j * p;
      for (let k = 0; k <= j; k++) {
        gram[offset + k] =
          (gram[offset + k] as number) +
          (a0 * (b0[k] as number) +
            a1 * (b1[k] as number) +
            (a2 * (b2[k] as number) + a3 * (b3[k] as number)));
      }
    }
  }
  for (let j = 0; j < p; j++) {
    for (let k = 0; k < j; k++) gram[k * p + j] = gram[j * p + k] as number;
  }
  return gram;
}

/** Gram matrix [Z 1]^T [Z 1] over the rows where `use(i)` holds. */
function gramMatrix(
  z: Matrix,
  use: (row: number) => boolean,
): { gram: Float64Array; count: number } {
  const rows = Int32Array.from({ length: z.rows }, (_, i) => i).filter(use);
  return { gram: weightedGram(z, rows), count: rows.length };
}

/** sum_i values_i [z_i 1] over the rows `rows` of z (`values` one per listed row). */
function weightedMoment(z: Matrix, rows: Int32Array, values: ArrayLike<number>): Float64Array {
  const rhs = new Float64Array(z.cols + 1);
  rows.forEach((r, i) => {
    const v = values[i] as number;
    const o = r * z.cols;
    for (let j = 0; j < z.cols; j++) rhs[j] = (rhs[j] as number) + (z.data[o + j] as number) * v;
    rhs[z.cols] = (rhs[z.cols] as number) + v;
  });
  return rhs;
}

/** [Z 1]^T y over the rows where `use(i)` holds. */
function moment(z: Matrix, y: Float64Array, use: (row: number) => boolean): Float64Array {
  const rows = Int32Array.from({ length: z.rows }, (_, i) => i).filter(use);
  return weightedMoment(
    z,
    rows,
    Float64Array.from(rows, (r) => y[r] as number),
  );
}

/**
 * Cholesky factor of the ridge system (Gram + penalty); the last coefficient of a solution
 * is the unpenalised intercept. One factor serves every target (log and ms) of a penalty.
 */
function ridgeFactor(
  gram: Float64Array,
  p: number,
  count: number,
  lambda: number,
  scales?: readonly number[],
): Float64Array {
  const a = gram.slice();
  // A floor keeps all-zero (constant) columns solvable when lambda is 0.
  for (let j = 0; j < p - 1; j++) {
    const penalty = Math.max(lambda * count * (scales?.[j] ?? 1), PENALTY_FLOOR);
    a[j * p + j] = (a[j * p + j] as number) + penalty;
  }
  return cholesky(a, p);
}

/**
 * Ridge on the rows `rows` of z in its n x n (dual) form, for fewer rows than columns, where
 * the p x p system of `ridgeFactor` costs far more: FCC's ~300 columns at the 16-160
 * training rows of a few-sample cross-validation fold. The intercept is
 * unpenalised, so on the columns centred on the rows' means w = P^-1 Zc^T (Zc P^-1 Zc^T +
 * I)^-1 yc, with P = lambda n diag(scales) the primal's penalty, and the intercept is
 * mean(y) - mean(z) . w: the primal's coefficients, to rounding. Returns a solver per
 * penalty, and per penalty one per target (y indexed by z's rows); the last coefficient is
 * the intercept. A penalty at the primal's floor (`meetsFloor`) is refused: a column that
 * nearly goes unpenalised makes this system far worse conditioned than the primal one.
 */
export function dualRidge(
  z: Matrix,
  rows: Int32Array,
  scales?: readonly number[],
): (lambda: number) => (y: ArrayLike<number>) => Float64Array {
  const n = rows.length;
  const c = z.cols;
  const mean = new Float64Array(c);
  for (const r of rows) {
    for (let j = 0; j < c; j++) mean[j] = (mean[j] as number) + (z.data[r * c + j] as number);
  }
  for (let j = 0; j < c; j++) mean[j] = (mean[j] as number) / n;
  const zc = new Float64Array(n * c);
  rows.forEach((r, i) => {
    for (let j = 0; j < c; j++) zc[i * c + j] = (z.data[r * c + j] as number) - (mean[j] as number);
  });
  // Zc diag(scales)^-1 Zc^T: one kernel serves every penalty, each lambda n times it.
  const zs = zc.map((v, at) => v / (scales?.[at % c] ?? 1));
  const kernel = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      // Two partial sums: the dot products are most of the work (as in `cholesky`).
      let s0 = 0;
      let s1 = 0;
      let l = 0;
      for (; l + 1 < c; l += 2) {
        s0 += (zs[i * c + l] as number) * (zc[j * c + l] as number);
        s1 += (zs[i * c + l + 1] as number) * (zc[j * c + l + 1] as number);
      }
      if (l < c) s0 += (zs[i * c + l] as number) * (zc[j * c + l] as number);
      kernel[i * n + j] = s0 + s1;
      kernel[j * n + i] = s0 + s1;
    }
  }
  return (lambda) => {
    if (meetsFloor(lambda, n, c, scales)) {
      throw new RangeError(`penalty ${lambda} meets the floor: solve it in the primal form`);
    }
    const penalty = Float64Array.from({ length: c }, (_, j) => lambda * n * (scales?.[j] ?? 1));
    const k = kernel.map((v) => v / (lambda * n));
    for (let i = 0; i < n; i++) k[i * n + i] = (k[i * n + i] as number) + 1;
    const factor = cholesky(k, n);
    return (y) => {
      let mid = 0;
      for (const r of rows) mid += y[r] as number;
      mid /= n;
      const alpha = choleskySolve(
        factor,
        Float64Array.from(rows, (r) => (y[r] as number) - mid),
        n,
      );
      // w = P^-1 Zc^T alpha, row by row (contiguous reads).
      const coef = new Float64Array(c + 1);
      for (let i = 0; i < n; i++) {
        const a = alpha[i] as number;
        for (let j = 0; j < c; j++) coef[j] = (coef[j] as number) + (zc[i * c + j] as number) * a;
      }
      let intercept = mid;
      for (let j = 0; j < c; j++) {
        coef[j] = (coef[j] as number) / (penalty[j] as number);
        intercept -= (mean[j] as number) * (coef[j] as number);
      }
      coef[c] = intercept;
      return coef;
    };
  };
}

/** Whether some column's penalty lambda n scale is at most the floor of `ridgeFactor`. */
function meetsFloor(lambda: number, n: number, cols: number, scales?: readonly number[]): boolean {
  for (let j = 0; j < cols; j++)
    if (!(lambda * n * (scales?.[j] ?? 1) > PENALTY_FLOOR)) return true;
  return false;
}

/** Ridge solution; the last coefficient is the unpenalised intercept. */
function solveRidge(
  gram: Float64Array,
  rhs: Float64Array,
  count: number,
  lambda: number,
  scales?: readonly number[],
) {
  const p = rhs.length;
  return choleskySolve(ridgeFactor(gram, p, count, lambda, scales), rhs, p);
}

/**
 * Robust relative fit of the ms target on the rows `rows` of z: minimises
 * sum_i h((pred_i - y_i) / y_i) + lambda * n * |w|^2 with h Huber's loss, by iteratively
 * reweighted least squares (weights 1 / y_i^2 times Huber's min(1, delta / |r_i|), delta =
 * 1.345 x the median absolute relative residual / 0.6745, at least 1e-4). The weights are
 * normalised to sum to the row count, so the penalty means what it means unweighted.
 * `start`: the row weights to begin with (a neighbouring penalty's final weights on the same
 * rows: the cross-validation walks the penalties so, and settles in 2-3 rounds instead of
 * 6-10); the result's `weights` are this fit's final ones.
 */
function robustRelativeFit(
  z: Matrix,
  latencyMs: Float64Array,
  rows: Int32Array,
  lambda: number,
  scales?: readonly number[],
  start?: Float64Array,
): { coef: Float64Array; weights: Float64Array } {
  const p = z.cols + 1;
  const n = rows.length;
  const base = Float64Array.from(rows, (r) => 1 / (latencyMs[r] as number) ** 2);
  let v = start && start.length === n ? start : base.slice();
  let coef: Float64Array = new Float64Array(p);
  const normalised = new Float64Array(n);
  for (let it = 0; it < IRLS_ITERATIONS; it++) {
    const total = v.reduce((s, w) => s + w, 0);
    for (let i = 0; i < n; i++) normalised[i] = ((v[i] as number) * n) / total;
    const gram = weightedGram(z, rows, normalised);
    const rhs = weightedMoment(
      z,
      rows,
      Float64Array.from(rows, (r, i) => (normalised[i] as number) * (latencyMs[r] as number)),
    );
    const next = choleskySolve(ridgeFactor(gram, p, n, lambda, scales), rhs, p);
    const change = next.reduce((m, c, j) => Math.max(m, Math.abs(c - (coef[j] as number))), 0);
    const size = next.reduce((m, c) => Math.max(m, Math.abs(c)), 0);
    coef = next;
    if (it > 0 && change <= 1e-6 * (1 + size)) break;
    const relative = Float64Array.from(rows, (r) => {
      let t = coef[z.cols] as number;
      for (let j = 0; j < z.cols; j++)
        t += (z.data[r * z.cols + j] as number) * (coef[j] as number);
      const y = latencyMs[r] as number;
      return Math.abs(t - y) / y;
    });
    const huber = huberFactors(relative);
    v = base.map((b, i) => b * (huber[i] as number));
  }
  return { coef, weights: v };
}

/**
 * Huber's reweighting factors min(1, delta / r_i) of absolute residuals r, with delta =
 * 1.345 x the median residual / 0.6745 (a robust standard deviation), at least 1e-4: 1 where
 * a row fits, less for an outlier. The robust ridge and transfer's robust corrections share it.
 */
export function huberFactors(residuals: ArrayLike<number>): Float64Array {
  const r = Float64Array.from(residuals);
  const delta = HUBER_C * Math.max(median(Float64Array.from(r).sort()) / 0.6745, 1e-4);
  return r.map((v) => Math.min(1, delta / Math.max(v, 1e-300)));
}

function predictRaw(z: Matrix, coef: Float64Array): Float64Array {
  const out = new Float64Array(z.rows);
  for (let i = 0; i < z.rows; i++) {
    let sum = coef[z.cols] as number;
    for (let j = 0; j < z.cols; j++)
      sum += (z.data[i * z.cols + j] as number) * (coef[j] as number);
    out[i] = sum;
  }
  return out;
}

function checkTargets(latencyMs: Float64Array, rows: number): void {
  if (latencyMs.length !== rows) {
    throw new ValidationError('latencyMs', `has ${latencyMs.length} values for ${rows} rows`);
  }
  latencyMs.forEach((v, i) => {
    if (!(v > 0)) throw new ValidationError(`latencyMs[${i}]`, `must be positive, got ${v}`);
  });
}

export function createRidge(options: RidgeOptions = {}): RidgeModel {
  const { lambdas = DEFAULT_LAMBDAS, target = 'auto' } = options;
  if (options.lambda !== undefined && !(options.lambda >= 0)) {
    throw new ValidationError('lambda', `must be >= 0, got ${options.lambda}`);
  }
  const { penaltyScales } = options;
  if (penaltyScales?.some((v) => !(v >= 0))) {
    throw new ValidationError('penaltyScales', 'every multiplier must be >= 0');
  }
  const { robust = false, robustMinLambda = 1e-3, uncertainty = 'cv' } = options;
  return ridgeModel({
    target,
    fixedLambda: options.lambda,
    lambdas,
    penaltyScales,
    robust: robust && target !== 'log' ? robustMinLambda : undefined,
    uncertainty,
  });
}

interface RidgeState {
  standardiser: Standardiser;
  coef: Float64Array;
  lambda: number;
  target: RidgeTarget;
  loss: RidgeLoss;
  relStd: number;
}

/** Root mean square of (predicted - measured) / measured. */
export function relativeRms(predicted: Float64Array, measured: Float64Array): number {
  let s = 0;
  measured.forEach((m, i) => {
    s += (((predicted[i] as number) - m) / m) ** 2;
  });
  return Math.sqrt(s / Math.max(1, measured.length));
}

const toTarget = (target: RidgeTarget, ms: number) => (target === 'log' ? Math.log(ms) : ms);
const fromTarget = (target: RidgeTarget, t: number) => (target === 'log' ? Math.exp(t) : t);

function ridgeModel(config: {
  target: RidgeTarget | 'auto';
  fixedLambda: number | undefined;
  lambdas: readonly number[];
  penaltyScales?: readonly number[];
  /** The smallest penalty of the robust fit; undefined: no robust fit. */
  robust?: number;
  uncertainty?: 'cv' | 'in-sample';
  state?: RidgeState;
}): RidgeModel {
  let state = config.state;
  return {
    kind: 'ridge',
    get lambda() {
      return state?.lambda;
    },
    get target() {
      return state?.target;
    },
    get loss() {
      return state?.loss;
    },
    async fit(x: Matrix, latencyMs: Float64Array): Promise<FitReport> {
      const started = performance.now();
      checkTargets(latencyMs, x.rows);
      const scales = config.penaltyScales;
      if (scales && scales.length !== x.cols) {
        throw new ValidationError(
          'penaltyScales',
          `has ${scales.length} entries for ${x.cols} columns`,
        );
      }
      const standardiser = fitStandardiser(x);
      const z = standardise(standardiser, x);
      const all = gramMatrix(z, () => true);
      const targets: readonly RidgeTarget[] =
        config.target === 'auto' ? ['log', 'linear'] : [config.target];
      const lambdas = config.fixedLambda === undefined ? config.lambdas : [config.fixedLambda];
      // Cross-validation also runs for a single candidate: its residuals are the uncertainty.
      const robustLambdas =
        config.robust === undefined
          ? []
          : lambdas.filter(
              (l) => l >= (config.robust as number) || config.fixedLambda !== undefined,
            );
      const nothingToChoose =
        targets.length === 1 && lambdas.length === 1 && robustLambdas.length === 0;
      const choice =
        nothingToChoose && config.uncertainty === 'in-sample'
          ? {
              target: targets[0] as RidgeTarget,
              loss: 'squared' as RidgeLoss,
              lambda: lambdas[0] as number,
              relStd: undefined,
            }
          : crossValidate(z, latencyMs, all, targets, lambdas, scales, robustLambdas);
      const y = latencyMs.map((ms) => toTarget(choice.target, ms));
      const coef =
        choice.loss === 'huber-relative'
          ? robustRelativeFit(
              z,
              latencyMs,
              Int32Array.from({ length: z.rows }, (_, i) => i),
              choice.lambda,
              scales,
            ).coef
          : solveRidge(
              all.gram,
              moment(z, y, () => true),
              all.count,
              choice.lambda,
              scales,
            );
      // Too few rows to cross-validate: the in-sample residual, doubled (it flatters).
      const relStd =
        choice.relStd ??
        2 *
          relativeRms(
            predictRaw(z, coef).map((t) => fromTarget(choice.target, t)),
            latencyMs,
          );
      state = {
        standardiser,
        coef,
        target: choice.target,
        loss: choice.loss,
        lambda: choice.lambda,
        relStd,
      };
      return { seconds: (performance.now() - started) / 1000 };
    },
    async predict(x: Matrix): Promise<Float64Array> {
      if (!state) throw new ValidationError('ridge', 'predict called before fit');
      const { target } = state;
      return predictRaw(standardise(state.standardiser, x), state.coef).map((t) =>
        fromTarget(target, t),
      );
    },
    async predictWithStd(x: Matrix): Promise<PredictionWithStd> {
      const mean = await this.predict(x);
      const relStd = state?.relStd ?? 0;
      return { mean, std: mean.map((m) => Math.abs(m) * relStd) };
    },
    toJSON(): RidgeJson {
      if (!state) throw new ValidationError('ridge', 'toJSON called before fit');
      return {
        kind: 'ridge',
        target: state.target,
        lambda: state.lambda,
        standardiser: state.standardiser,
        intercept: state.coef[state.coef.length - 1] as number,
        weights: Array.from(state.coef.subarray(0, state.coef.length - 1)),
        ...(state.loss === 'squared' ? {} : { loss: state.loss }),
        rel_std: state.relStd,
      };
    },
  };
}

/**
 * The target, loss and lambda with the lowest 5-fold cross-validated mean relative error in
 * ms (the metric predictors are judged by, comparable across targets and losses). Folds are
 * interleaved (row i in fold i mod 5), so no random choice is needed; the standardiser is
 * fitted on all rows, a negligible leak for a mean and a scale. `robustLambdas` are the
 * penalties of the robust relative fit of the ms target (none: not tried).
 */
function crossValidate(
  z: Matrix,
  latencyMs: Float64Array,
  all: { gram: Float64Array; count: number },
  targets: readonly RidgeTarget[],
  lambdas: readonly number[],
  scales: readonly number[] | undefined,
  robustLambdas: readonly number[] = [],
): { target: RidgeTarget; loss: RidgeLoss; lambda: number; relStd: number | undefined } {
  if (lambdas.length === 0) throw new ValidationError('lambdas', 'needs at least one candidate');
  if (z.rows < 2 * FOLDS) {
    return {
      target: targets[0] as RidgeTarget,
      loss: 'squared',
      lambda: lambdas[Math.floor(lambdas.length / 2)] as number,
      relStd: undefined,
    };
  }
  const robustErrors = new Float64Array(robustLambdas.length);
  const robustSquares = new Float64Array(robustLambdas.length);
  const errors = targets.map(() => new Float64Array(lambdas.length));
  const squares = targets.map(() => new Float64Array(lambdas.length));
  const ys = targets.map((t) => latencyMs.map((ms) => toTarget(t, ms)));
  const totals = ys.map((y) => moment(z, y, () => true));
  for (let fold = 0; fold < FOLDS; fold++) {
    const inFold = (i: number) => i % FOLDS === fold;
    const rows = Array.from({ length: z.rows }, (_, i) => i).filter(inFold);
    const trainRows = Int32Array.from({ length: z.rows }, (_, i) => i).filter((i) => !inFold(i));
    const heldZ: Matrix = {
      rows: rows.length,
      cols: z.cols,
      data: Float64Array.from(
        rows.flatMap((i) => Array.from(z.data.subarray(i * z.cols, (i + 1) * z.cols))),
      ),
    };
    const solverFor = foldSolver(z, all, trainRows, inFold, ys, totals, scales);
    lambdas.forEach((lambda, li) => {
      const solve = solverFor(lambda);
      targets.forEach((target, ti) => {
        const predicted = predictRaw(heldZ, solve(ti));
        let sum = 0;
        let square = 0;
        rows.forEach((row, k) => {
          const ms = latencyMs[row] as number;
          const relative = (fromTarget(target, predicted[k] as number) - ms) / ms;
          sum += Math.abs(relative);
          square += relative * relative;
        });
        const e = errors[ti] as Float64Array;
        e[li] = (e[li] as number) + sum;
        const q = squares[ti] as Float64Array;
        q[li] = (q[li] as number) + square;
      });
    });
    // Penalties in order, each robust fit starting from its neighbour's weights.
    let weights: Float64Array | undefined;
    robustLambdas.forEach((lambda, li) => {
      const fit = robustRelativeFit(z, latencyMs, trainRows, lambda, scales, weights);
      weights = fit.weights;
      const predicted = predictRaw(heldZ, fit.coef);
      rows.forEach((row, k) => {
        const ms = latencyMs[row] as number;
        const relative = ((predicted[k] as number) - ms) / ms;
        robustErrors[li] = (robustErrors[li] as number) + Math.abs(relative);
        robustSquares[li] = (robustSquares[li] as number) + relative * relative;
      });
    });
  }
  let best = {
    target: targets[0] as RidgeTarget,
    loss: 'squared' as RidgeLoss,
    lambda: lambdas[0] as number,
    error: Number.POSITIVE_INFINITY,
    square: 0,
  };
  targets.forEach((target, ti) => {
    (errors[ti] as Float64Array).forEach((error, li) => {
      if (error < best.error) {
        const square = (squares[ti] as Float64Array)[li] as number;
        best = { target, loss: 'squared', lambda: lambdas[li] as number, error, square };
      }
    });
  });
  robustErrors.forEach((error, li) => {
    if (error < best.error) {
      const square = robustSquares[li] as number;
      best = {
        target: 'linear',
        loss: 'huber-relative',
        lambda: robustLambdas[li] as number,
        error,
        square,
      };
    }
  });
  return {
    target: best.target,
    loss: best.loss,
    lambda: best.lambda,
    relStd: Math.sqrt(best.square / z.rows),
  };
}

/**
 * The coefficients of one fold's training rows, per penalty and target (index into `ys`):
 * the dual form on fewer rows than 3/4 of the columns (above the penalty floor), else the
 * primal one, whose Gram matrix is all rows' less the held-out ones'.
 */
function foldSolver(
  z: Matrix,
  all: { gram: Float64Array; count: number },
  trainRows: Int32Array,
  inFold: (row: number) => boolean,
  ys: readonly Float64Array[],
  totals: readonly Float64Array[],
  scales: readonly number[] | undefined,
): (lambda: number) => (target: number) => Float64Array {
  const n = trainRows.length;
  let dual: ReturnType<typeof dualRidge> | undefined;
  let primal: { gram: Float64Array; rhss: Float64Array[] } | undefined;
  const p = z.cols + 1;
  return (lambda) => {
    // The dual form costs n^2 c / 2 once and n^3 / 6 a penalty, the primal one p^3 / 6 a
    // penalty: measured level from n = 0.64 c (FCC's 188 columns) to 0.9 c (auto's 297),
    // ahead below it.
    if (4 * n < 3 * z.cols && !meetsFloor(lambda, n, z.cols, scales)) {
      dual ??= dualRidge(z, trainRows, scales);
      const solve = dual(lambda);
      return (target) => solve(ys[target] as Float64Array);
    }
    if (!primal) {
      const held = gramMatrix(z, inFold).gram;
      primal = {
        gram: all.gram.map((v, i) => v - (held[i] as number)),
        rhss: ys.map((y, ti) => {
          const heldRhs = moment(z, y, inFold);
          return (totals[ti] as Float64Array).map((v, i) => v - (heldRhs[i] as number));
        }),
      };
    }
    const { gram, rhss } = primal;
    const factor = ridgeFactor(gram, p, n, lambda, scales);
    return (target) => choleskySolve(factor, rhss[target] as Float64Array, p);
  };
}

/** Restores a fitted ridge model from `toJSON` output (e.g. read from predictor.json). */
export function ridgeFromJSON(json: unknown): RidgeModel {
  const result = ridgeJson.safeParse(json);
  if (!result.success) {
    throw new ValidationError(
      'ridge',
      result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
    );
  }
  const { target, lambda, intercept, weights, loss = 'squared' } = result.data;
  const standardiser = parseStandardiser(result.data.standardiser);
  if (weights.length !== standardiser.means.length) {
    throw new ValidationError('ridge.weights', 'must have one weight per standardised feature');
  }
  const coef = Float64Array.from([...weights, intercept]);
  return ridgeModel({
    target,
    fixedLambda: lambda,
    lambdas: [lambda],
    state: { standardiser, coef, lambda, target, loss, relStd: result.data.rel_std ?? 0 },
  });
}
