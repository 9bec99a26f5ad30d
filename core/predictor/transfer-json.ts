/**
 * The stored form of a transfer correction (core/predictor/transfer.ts): how a prior
 * predictor's output, and optionally the input features, map to the new device's latency.
 * and how it applies (JavaScript predictions of a stored transfer model). Kept apart from
 * transfer.ts so that predictor.json's schema (artifact.ts) and `regressorFromJson`
 * (index.ts) can use it without importing the fitting code, which imports both.
 */
import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import type { Matrix } from './types.ts';

/** The prior's output is floored here before its logarithm (a linear prior can reach 0). */
export const PRIOR_FLOOR_MS = 1e-6;

export const correctionSpaces = ['log', 'ms'] as const;
export type CorrectionSpace = (typeof correctionSpaces)[number];

const finite = z.number().refine(Number.isFinite, { message: 'must be a finite number' });

/**
 * `log`: latency = exp(intercept + slope * log(prior) + w . x);
 * `ms`: latency = intercept + slope * prior + w . x;
 * with x the prior's raw input vector (absent: no feature term). However the feature term was
 * fitted (on a projection of x, standardised), it is linear in x and stored as such.
 */
export const correctionJson = z.object({
  space: z.enum(correctionSpaces),
  intercept: finite,
  slope: finite,
  /** Penalty on (slope - 1) per sample; null: slope fixed at 1. */
  slope_penalty: z.number().nonnegative().nullable(),
  /** Ridge penalty per sample on the feature weights; null: no feature term. */
  feature_penalty: z.number().nonnegative().nullable(),
  features: z
    .object({
      /** Which features were fitted: `all` input columns, or a projection (transfer.ts). */
      basis: z.string(),
      /** Coefficients on the raw input vector. */
      weights: z.array(finite),
    })
    .nullable(),
  /** Cross-validated mean relative error of the chosen correction; null without CV. */
  cv_error: z.number().nonnegative().nullable(),
  /** Target-device rows the correction was fitted on. */
  n: z.number().int().positive(),
  /** Fitted with Huber weights on the relative residuals (provenance). Absent: plain. */
  robust: z.boolean().optional(),
});
export type CorrectionJson = z.infer<typeof correctionJson>;

/** Where the prior came from, so a transferred predictor records its provenance. */
export const priorSourceJson = z.object({
  /** The prior predictor's training data (file, hash, rows), as in its predictor.json. */
  data: z.object({ file: z.string(), sha256: z.string(), rows: z.number().int().positive() }),
  n_train: z.number().int().positive(),
  created_at: z.string(),
});
export type PriorSourceJson = z.infer<typeof priorSourceJson>;

/** predictor.json's `model` for a transferred predictor, given the schema of the prior's model. */
export function transferModelJson<T extends z.ZodTypeAny>(prior: T) {
  return z.object({
    kind: z.literal('transfer'),
    prior,
    prior_source: priorSourceJson,
    correction: correctionJson,
  });
}

const toTarget = (space: CorrectionSpace, ms: number) =>
  space === 'log' ? Math.log(Math.max(ms, PRIOR_FLOOR_MS)) : ms;
const fromTarget = (space: CorrectionSpace, t: number) => (space === 'log' ? Math.exp(t) : t);

/** Corrected latencies in ms for rows `x` whose prior predictions are `prior`. */
export function applyCorrection(
  c: CorrectionJson,
  x: Matrix,
  prior: ArrayLike<number>,
): Float64Array {
  if (prior.length !== x.rows) {
    throw new ValidationError('prior', `expected ${x.rows} prior predictions, got ${prior.length}`);
  }
  const w = c.features?.weights;
  if (w && w.length !== x.cols) {
    throw new ValidationError('x', `expected ${w.length} feature columns, got ${x.cols}`);
  }
  const out = new Float64Array(x.rows);
  for (let i = 0; i < x.rows; i++) {
    let t = c.intercept + c.slope * toTarget(c.space, prior[i] as number);
    if (w)
      for (let j = 0; j < x.cols; j++) t += (x.data[i * x.cols + j] as number) * (w[j] as number);
    out[i] = fromTarget(c.space, t);
  }
  return out;
}

/**
 * The uncertainty of a corrected prediction, in ms: its cross-validated relative error times
 * the prediction (the convention of the models without members, types.ts); without CV (fewer
 * than 4 rows), the prior's own relative uncertainty. The ONNX graph computes the same.
 */
export function transferStd(
  c: CorrectionJson,
  mean: ArrayLike<number>,
  priorMs: ArrayLike<number>,
  priorStd: ArrayLike<number> | undefined,
): Float64Array {
  return Float64Array.from(mean, (m, i) =>
    c.cv_error !== null
      ? Math.abs(m) * c.cv_error
      : priorStd
        ? (Math.abs(m) * (priorStd[i] as number)) / Math.max(priorMs[i] as number, PRIOR_FLOOR_MS)
        : Number.NaN,
  );
}
