/**
 * The stored form of a transfer correction (core/predictor/transfer.ts): how a prior
 * predictor's output, and optionally the input features, map to the new device's latency.
 * Kept apart from transfer.ts so that predictor.json's schema (artifact.ts) can include it
 * without importing the fitting code, which itself reads predictor.json models.
 */
import { z } from 'zod';

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
