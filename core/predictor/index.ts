/**
 * Predictors end to end, without I/O: pick a regressor, turn subnets into its input
 * vectors, split a measured dataset (seeded), train, evaluate on the held-out rows overall
 * and per depth bin, and describe the result as predictor.json. The CLI (`esm fit`), the
 * local loop and the Lambdas call `fitPredictor` and do the file or S3 writes themselves.
 */
import { createEncoder, type EncodingName, encodeAll } from '../encodings/index.ts';
import type { FastEncoder, Vector } from '../encodings/layout.ts';
import { ValidationError } from '../errors.ts';
import { type Evaluation, evaluate, headline } from '../metrics.ts';
import { createRng, shuffled } from '../rng.ts';
import { depthBins } from '../sampling.ts';
import { depth } from '../spaces/subnet.ts';
import type { SearchSpace, Subnet } from '../spaces/types.ts';
import {
  type FeaturesJson,
  type ModelJson,
  mlpStateToJson,
  PREDICTOR_FORMAT,
  PREDICTOR_ONNX,
  PREDICTOR_VERSION,
  type PredictorJson,
} from './artifact.ts';
import { ONNX_INPUT, ONNX_OUTPUT } from './export-onnx.ts';
import { createLut, type LutModel, type LutOptions, lutLayout } from './lut.ts';
import { createMlp, type MlpOptions, type MlpRegressor } from './mlp.ts';
import { createRidge, type RidgeModel, type RidgeOptions } from './ridge.ts';
import type { Matrix, ModelKind, Regressor } from './types.ts';

export interface RegressorOptions {
  readonly mlp?: MlpOptions;
  readonly ridge?: RidgeOptions;
  readonly lut?: LutOptions;
}

type AnyRegressor = MlpRegressor | RidgeModel | LutModel;

/** A new, untrained regressor of `kind`. */
export function createRegressor(kind: ModelKind, options: RegressorOptions = {}): AnyRegressor {
  switch (kind) {
    case 'mlp':
      return createMlp(options.mlp);
    case 'ridge':
      return createRidge(options.ridge);
    case 'lut':
      return createLut(options.lut);
    default:
      throw new ValidationError('model', `unknown model "${kind}"; use mlp, ridge or lut`);
  }
}

/** The parameters of a trained regressor as stored in predictor.json. */
export function modelToJson(regressor: Regressor): ModelJson {
  const r = regressor as AnyRegressor;
  // Any other regressor (a transfer correction) describes itself.
  return r.kind === 'mlp' ? mlpStateToJson(r.state) : (r as { toJSON(): ModelJson }).toJSON();
}

/** Subnets to model inputs: the named encoding, or the LUT's table-entry counts. */
export interface Featurizer {
  readonly features: FeaturesJson;
  encode(subnet: Subnet): Float64Array;
  /** Writes the features of `subnet` at `out[offset ..]` without allocating (batch prediction). */
  encodeInto(subnet: Subnet, out: Vector, offset: number): void;
  encodeAll(subnets: readonly Subnet[]): Matrix;
}

export type FeatureChoice =
  | { readonly kind: 'encoding'; readonly encoding: EncodingName }
  /** `buckets` undefined: the LUT layout's own default. */
  | { readonly kind: 'lut'; readonly buckets?: number };

export function createFeaturizer(space: SearchSpace, choice: FeatureChoice): Featurizer {
  let encoder: { readonly length: number; encode(subnet: Subnet): Float64Array };
  let features: FeaturesJson;
  if (choice.kind === 'lut') {
    const layout = lutLayout(
      space,
      choice.buckets === undefined ? {} : { buckets: choice.buckets },
    );
    encoder = layout;
    features = { kind: 'lut', buckets: layout.buckets.length, length: layout.length };
  } else {
    encoder = createEncoder(space, choice.encoding);
    features = { kind: 'encoding', encoding: choice.encoding, length: encoder.length };
  }
  const into = (encoder as Partial<FastEncoder>).encodeInto;
  return {
    features,
    encode: (subnet) => encoder.encode(subnet),
    encodeInto: into ?? ((subnet, out, offset) => out.set(encoder.encode(subnet), offset)),
    encodeAll: (subnets) => encodeAll(encoder, subnets),
  };
}

export interface FitPredictorOptions {
  readonly space: SearchSpace;
  /** The JSON spec of a user-defined space, stored so the predictor is self-contained. */
  readonly spaceSpec?: unknown;
  readonly rows: readonly { readonly subnet: Subnet; readonly latencyMs: number }[];
  /** Where the rows came from, recorded for reproduction. */
  readonly data: { readonly file: string; readonly sha256: string };
  /** @default 'mlp' */
  readonly model?: ModelKind;
  /** Ignored by `lut`, which uses its own table layout. @default 'fcc' */
  readonly encoding?: EncodingName;
  /** Resolution buckets of the LUT. @default the LUT layout's default (lut.ts) */
  readonly lutBuckets?: number;
  /** Training rows; the rest are the test set. Overrides `trainFraction`. */
  readonly train?: number;
  /** Share of the rows used for training (the rest test the predictor). @default 0.8 */
  readonly trainFraction?: number;
  /** Depth bins for the per-bin evaluation. @default 10 */
  readonly bins?: number;
  /** Seeds the split and the model. @default 0 */
  readonly seed?: number;
  readonly options?: RegressorOptions;
  /**
   * An untrained regressor to fit instead of a new `model` (e.g. a transfer correction,
   * transfer.ts); `model` and `encoding` still choose the features. @default none
   */
  readonly regressor?: Regressor;
  /** @default new Date() */
  readonly now?: Date;
}

export interface FitPredictorResult {
  readonly predictor: PredictorJson;
  readonly regressor: Regressor;
  readonly featurizer: Featurizer;
  /** Undefined when every row was used for training. */
  readonly test: Evaluation | undefined;
  readonly train: { readonly n: number; readonly seconds: number };
}

function trainCount(n: number, options: FitPredictorOptions): number {
  if (options.train !== undefined) {
    if (!Number.isInteger(options.train) || options.train < 1 || options.train > n) {
      throw new ValidationError(
        'train',
        `must be an integer in 1..${n} (the dataset's rows), got ${options.train}`,
      );
    }
    return options.train;
  }
  const fraction = options.trainFraction ?? 0.8;
  if (!(fraction > 0 && fraction <= 1)) {
    throw new ValidationError('train-fraction', `must be in (0, 1], got ${fraction}`);
  }
  return Math.max(1, Math.round(n * fraction));
}

/**
 * The parts of predictor.json that only depend on the space: format, version, the space (with
 * the spec of a user-defined one, so the predictor works without the file) and the ONNX names.
 */
export function predictorFrame(spaceName: string, spaceSpec?: unknown) {
  return {
    format: PREDICTOR_FORMAT,
    version: PREDICTOR_VERSION,
    space: spaceSpec === undefined ? { name: spaceName } : { name: spaceName, spec: spaceSpec },
    onnx: { file: PREDICTOR_ONNX, input: ONNX_INPUT, output: ONNX_OUTPUT },
  } as const;
}

/** Splits, trains, evaluates and describes a predictor. */
export async function fitPredictor(options: FitPredictorOptions): Promise<FitPredictorResult> {
  const { space, rows, model = 'mlp', encoding = 'fcc', lutBuckets, bins = 10, seed = 0 } = options;
  if (rows.length < 2) {
    throw new ValidationError('data', `needs at least 2 measured rows, got ${rows.length}`);
  }
  const nTrain = trainCount(rows.length, options);
  const order = shuffled(
    rows.map((_, i) => i),
    createRng(seed),
  );
  const trainRows = order
    .slice(0, nTrain)
    .map((i) => rows[i] as FitPredictorOptions['rows'][number]);
  const testRows = order.slice(nTrain).map((i) => rows[i] as FitPredictorOptions['rows'][number]);

  const featurizer = createFeaturizer(
    space,
    model === 'lut' ? { kind: 'lut', buckets: lutBuckets } : { kind: 'encoding', encoding },
  );
  const regressorOptions: RegressorOptions = {
    ...options.options,
    mlp: { ...options.options?.mlp, seed: options.options?.mlp?.seed ?? seed },
  };
  const regressor = options.regressor ?? createRegressor(model, regressorOptions);
  const report = await regressor.fit(
    featurizer.encodeAll(trainRows.map((r) => r.subnet)),
    Float64Array.from(trainRows, (r) => r.latencyMs),
  );

  let test: Evaluation | undefined;
  if (testRows.length > 0) {
    const predicted = await regressor.predict(featurizer.encodeAll(testRows.map((r) => r.subnet)));
    test = evaluate({
      predicted,
      measured: testRows.map((r) => r.latencyMs),
      depths: testRows.map((r) => depth(r.subnet)),
      bins: depthBins(space, bins),
    });
  }
  const { trainer: _trainer, onEpoch: _onEpoch, ...mlpOptions } = regressorOptions.mlp ?? {};
  const predictor: PredictorJson = {
    ...predictorFrame(space.name, options.spaceSpec),
    features: featurizer.features,
    model: modelToJson(regressor),
    training: {
      seed,
      n_train: trainRows.length,
      n_test: testRows.length,
      seconds: report.seconds,
      epochs: 'epochs' in report ? report.epochs : undefined,
      backend: 'backend' in report ? (report.backend as string) : undefined,
      options: model === 'mlp' ? { ...mlpOptions } : { ...(regressorOptions[model] ?? {}) },
      data: { file: options.data.file, sha256: options.data.sha256, rows: rows.length },
      created_at: (options.now ?? new Date()).toISOString(),
    },
    metrics: test
      ? {
          test: headline(test),
          bins: (test.bins ?? []).map((b) => ({
            lo: b.lo,
            hi: b.hi,
            n: b.n,
            accuracy: b.accuracy,
          })),
        }
      : undefined,
  };
  return {
    predictor,
    regressor,
    featurizer,
    test,
    train: { n: trainRows.length, seconds: report.seconds },
  };
}
