/**
 * Feature standardisation (z-scores per column), fitted on training data and stored with a
 * predictor so that prediction applies exactly the same transform.
 */
import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import type { Matrix } from './types.ts';

export const standardiserJson = z.object({
  means: z.array(z.number()),
  scales: z.array(z.number().positive()),
});
export type Standardiser = z.infer<typeof standardiserJson>;

/**
 * Column means and standard deviations of `x`. A constant column (e.g. a one-hot entry never
 * seen in training) gets scale 1, so it maps to 0 instead of dividing by zero.
 */
export function fitStandardiser(x: Matrix): Standardiser {
  const { rows, cols, data } = x;
  if (rows === 0) throw new ValidationError('x', 'cannot standardise an empty matrix');
  const means = new Array<number>(cols).fill(0);
  const squares = new Array<number>(cols).fill(0);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) means[j] = (means[j] as number) + (data[i * cols + j] as number);
  }
  for (let j = 0; j < cols; j++) means[j] = (means[j] as number) / rows;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      squares[j] =
        (squares[j] as number) + ((data[i * cols + j] as number) - (means[j] as number)) ** 2;
    }
  }
  const scales = squares.map((sq, j) => {
    const std = Math.sqrt(sq / rows);
    // Relative cut-off: rounding noise on a constant column must not be blown up.
    return std > 1e-12 * Math.max(1, Math.abs(means[j] as number)) ? std : 1;
  });
  return { means, scales };
}

/** A new matrix of (x - mean) / scale per column. */
export function standardise(s: Standardiser, x: Matrix): Matrix {
  const { rows, cols, data } = x;
  if (cols !== s.means.length) {
    throw new ValidationError(
      'x',
      `has ${cols} columns but the standardiser was fitted on ${s.means.length}; encode with the predictor's encoding`,
    );
  }
  const out = new Float64Array(data.length);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      out[i * cols + j] =
        ((data[i * cols + j] as number) - (s.means[j] as number)) / (s.scales[j] as number);
    }
  }
  return { rows, cols, data: out };
}

/** Validates a stored standardiser (e.g. from predictor.json). */
export function parseStandardiser(json: unknown): Standardiser {
  const result = standardiserJson.safeParse(json);
  if (!result.success) {
    throw new ValidationError(
      'standardiser',
      result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
    );
  }
  if (result.data.means.length !== result.data.scales.length) {
    throw new ValidationError('standardiser', 'means and scales must have the same length');
  }
  return result.data;
}
