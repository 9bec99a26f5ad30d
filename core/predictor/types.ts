/**
 * Regressors map encoded architectures to latency. The MLP (tfjs, exported to ONNX), ridge
 * and lookup-table baselines all implement this, so `esm fit` and the loop compare them on
 * the same data.
 */

/** Row-major design matrix. */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

/** The given rows of x, in that order (a row may repeat: bootstrap draws). */
export function selectRows(x: Matrix, rows: ArrayLike<number>): Matrix {
  const data = new Float64Array(rows.length * x.cols);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as number;
    data.set(x.data.subarray(r * x.cols, (r + 1) * x.cols), i * x.cols);
  }
  return { rows: rows.length, cols: x.cols, data };
}

/**
 * `auto` chooses or blends the others by cross-validation (auto.ts); `mlp` is the residual
 * MLP on a ridge base, `mlp-paper` the paper's plain 3 x 64 MLP, `mlp-ensemble` five
 * residual MLPs; `rf` a random forest, `gbt` gradient-boosted trees on a ridge base.
 */
export const modelKinds = [
  'auto',
  'mlp',
  'mlp-paper',
  'mlp-ensemble',
  'ridge',
  'lut',
  'rf',
  'gbt',
] as const;
export type ModelKind = (typeof modelKinds)[number];

/** The model `esm fit`, `esm run` and the cloud's training step use when none is named. */
export const defaultModelKind: ModelKind = 'auto';

export interface FitReport {
  readonly seconds: number;
  readonly epochs?: number;
  readonly validationLoss?: number;
}

/** Predictions with their uncertainty, both in ms, one entry per row. */
export interface PredictionWithStd {
  readonly mean: Float64Array;
  /**
   * Standard deviation of the prediction's error, in ms. What it is depends on the model
   * (docs/predictor.md, "Uncertainty"): the spread of an ensemble's members where the model
   * has members, else the cross-validated relative residual of the training rows times the
   * prediction. Larger means less sure; active sampling ranks candidates by `std / mean`.
   */
  readonly std: Float64Array;
}

export interface Regressor {
  /** `transfer`: a prior model of another device with a fitted correction (transfer.ts). */
  readonly kind: ModelKind | 'transfer';
  /** Fit on `x` (rows = samples) and latencies in ms. */
  fit(x: Matrix, latencyMs: Float64Array): Promise<FitReport>;
  /** Predicted latencies in ms. */
  predict(x: Matrix): Promise<Float64Array>;
  /**
   * Predicted latencies with a per-row uncertainty. Every built-in kind has it after `fit`;
   * optional so that a caller's own regressor (tests, experiments) need not.
   */
  predictWithStd?(x: Matrix): Promise<PredictionWithStd>;
}
