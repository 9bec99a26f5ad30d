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
import { binsForRange, poolDepthRange } from '../sampling.ts';
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
  type TransferJson,
} from './artifact.ts';
import {
  type AutoFitReport,
  type AutoLayout,
  type AutoModel,
  type AutoOptions,
  autoFromJson,
  createAuto,
  memberFromJson,
} from './auto.ts';
import { trainingDomain } from './domain.ts';
import { ONNX_INPUT, ONNX_OUTPUT } from './export-onnx.ts';
import {
  type BoostingModel,
  type BoostingOptions,
  createBoosting,
  createForest,
  type ForestModel,
  type ForestOptions,
} from './forest.ts';
import { createLut, type LutModel, type LutOptions, lutLayout } from './lut.ts';
import { createMlp, type MlpOptions, MlpRegressor } from './mlp.ts';
import { createRidge, type RidgeModel, type RidgeOptions } from './ridge.ts';
import { applyCorrection, transferStd } from './transfer-json.ts';
import {
  defaultModelKind,
  type Matrix,
  type ModelKind,
  modelKinds,
  type Regressor,
} from './types.ts';

export interface RegressorOptions {
  readonly mlp?: MlpOptions;
  readonly ridge?: RidgeOptions;
  readonly lut?: LutOptions;
  readonly rf?: ForestOptions;
  readonly gbt?: BoostingOptions;
  /** `layout` is required for `auto`; `createModel` fills it from the features. */
  readonly auto?: Partial<AutoOptions>;
}

type AnyRegressor = MlpRegressor | RidgeModel | LutModel | ForestModel | BoostingModel | AutoModel;

/**
 * A new, untrained regressor of `kind`. `auto` needs `options.auto.layout` (where its
 * feature parts are): use `createModel`, which builds the matching featurizer too.
 */
export function createRegressor(kind: ModelKind, options: RegressorOptions = {}): AnyRegressor {
  switch (kind) {
    case 'mlp':
      return createMlp(options.mlp);
    case 'mlp-paper':
      // The paper's reference: a plain 3 x 64 MLP on log latency, no linear base.
      return createMlp({ ...options.mlp, hidden: [64, 64, 64], base: 'none', ensemble: 1 });
    case 'mlp-ensemble':
      return createMlp({ ensemble: 5, ...options.mlp });
    case 'ridge':
      return createRidge(options.ridge);
    case 'lut':
      return createLut(options.lut);
    case 'rf':
      return createForest(options.rf);
    case 'gbt':
      return createBoosting(options.gbt);
    case 'auto': {
      const layout = options.auto?.layout;
      if (!layout) {
        throw new ValidationError(
          'model',
          'auto needs its feature layout; create it with createModel(space, {model: "auto"})',
        );
      }
      return createAuto({ ...options.auto, layout, mlp: { ...options.mlp, ...options.auto?.mlp } });
    }
    default:
      throw new ValidationError(
        'model',
        `unknown model "${kind}"; use one of ${modelKinds.join(', ')}`,
      );
  }
}

/** The parameters of a trained regressor as stored in predictor.json. */
export function modelToJson(regressor: Regressor): ModelJson {
  const r = regressor as AnyRegressor;
  // A transfer correction (transfer.ts) describes itself too.
  return r instanceof MlpRegressor
    ? mlpStateToJson(r.state)
    : (r as Exclude<AnyRegressor, MlpRegressor> | { toJSON(): ModelJson }).toJSON();
}

/** A trained regressor from predictor.json's `model` (JavaScript predictions, e.g. a prior). */
export function regressorFromJson(model: ModelJson): Regressor {
  if (model.kind === 'transfer') return transferFromJson(model);
  return model.kind === 'auto' ? autoFromJson(model) : memberFromJson(model);
}

/** A stored transferred model: its prior's predictions, corrected (transfer-json.ts). */
function transferFromJson(model: TransferJson): Regressor {
  const prior = regressorFromJson(model.prior);
  const c = model.correction;
  return {
    kind: 'transfer',
    fit: () => {
      throw new ValidationError(
        'transfer',
        'a stored transferred model predicts only; refit with esm fit --prior',
      );
    },
    predict: async (x) => applyCorrection(c, x, await prior.predict(x)),
    predictWithStd: async (x) => {
      const p = prior.predictWithStd ? await prior.predictWithStd(x) : undefined;
      const priorMs = p?.mean ?? (await prior.predict(x));
      const mean = applyCorrection(c, x, priorMs);
      return { mean, std: transferStd(c, mean, priorMs, p?.std) };
    },
  };
}

/** Subnets to model inputs: the named encoding, or the LUT's table-entry counts. */
export interface Featurizer {
  readonly features: FeaturesJson;
  encode(subnet: Subnet): Float64Array;
  /** Writes the features of `subnet` at `out[offset ..]` without allocating (batch prediction). */
  encodeInto(subnet: Subnet, out: Vector, offset: number): void;
  encodeAll(subnets: readonly Subnet[]): Matrix;
}

type PartChoice =
  | { readonly kind: 'encoding'; readonly encoding: EncodingName }
  /** `buckets` undefined: the LUT layout's own default. */
  | { readonly kind: 'lut'; readonly buckets?: number };

export type FeatureChoice =
  | PartChoice
  /** Parts side by side, in order (auto's input). */
  | { readonly kind: 'stack'; readonly parts: readonly PartChoice[] };

/** The featurizer choice that rebuilds a stored predictor's input. */
export function featureChoiceOf(features: FeaturesJson): FeatureChoice {
  const part = (f: Exclude<FeaturesJson, { kind: 'stack' }>): PartChoice =>
    f.kind === 'lut'
      ? { kind: 'lut', buckets: f.buckets }
      : { kind: 'encoding', encoding: f.encoding };
  return features.kind === 'stack'
    ? { kind: 'stack', parts: features.parts.map(part) }
    : part(features);
}

interface PartEncoder {
  readonly length: number;
  readonly features: Exclude<FeaturesJson, { kind: 'stack' }>;
  encode(subnet: Subnet): Float64Array;
  encodeInto(subnet: Subnet, out: Vector, offset: number): void;
}

function partEncoder(space: SearchSpace, choice: PartChoice): PartEncoder {
  let encoder: { readonly length: number; encode(subnet: Subnet): Float64Array };
  let features: PartEncoder['features'];
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
    length: encoder.length,
    features,
    encode: (subnet) => encoder.encode(subnet),
    encodeInto: into ?? ((subnet, out, offset) => out.set(encoder.encode(subnet), offset)),
  };
}

export function createFeaturizer(space: SearchSpace, choice: FeatureChoice): Featurizer {
  const parts = (choice.kind === 'stack' ? choice.parts : [choice]).map((c) =>
    partEncoder(space, c),
  );
  const length = parts.reduce((n, p) => n + p.length, 0);
  const features: FeaturesJson =
    choice.kind === 'stack'
      ? { kind: 'stack', parts: parts.map((p) => p.features), length }
      : (parts[0] as PartEncoder).features;
  const encodeInto = (subnet: Subnet, out: Vector, offset: number) => {
    let at = offset;
    for (const p of parts) {
      p.encodeInto(subnet, out, at);
      at += p.length;
    }
  };
  return {
    features,
    encode: (subnet) => {
      const out = new Float64Array(length);
      encodeInto(subnet, out, 0);
      return out;
    },
    encodeInto,
    encodeAll: (subnets) =>
      encodeAll({ length, encode: () => new Float64Array(0), encodeInto } as never, subnets),
  };
}

/**
 * auto's input: physics, then the encoding (unless it is physics), then the LUT counts,
 * and where each part lies.
 */
export function autoFeatures(
  space: SearchSpace,
  encoding: EncodingName = 'fcc',
  lutBuckets?: number,
): { choice: FeatureChoice; layout: AutoLayout } {
  const parts: PartChoice[] = [{ kind: 'encoding', encoding: 'physics' }];
  if (encoding !== 'physics') parts.push({ kind: 'encoding', encoding });
  parts.push({ kind: 'lut', buckets: lutBuckets });
  const lengths = parts.map((p) => partEncoder(space, p).length);
  const at = (i: number) => lengths.slice(0, i).reduce((a, b) => a + b, 0);
  const range = (i: number): [number, number] => [at(i), at(i) + (lengths[i] as number)];
  const layout: AutoLayout =
    encoding === 'physics'
      ? { physics: range(0), lut: range(1) }
      : { physics: range(0), encoding: range(1), lut: range(2) };
  return { choice: { kind: 'stack', parts }, layout };
}

export interface CreateModelOptions {
  /** @default defaultModelKind ('auto') */
  readonly model?: ModelKind;
  /** Ignored by `lut`; for `auto` the encoding beside physics and LUT counts. @default 'fcc' */
  readonly encoding?: EncodingName;
  /** Resolution buckets of the LUT. @default the LUT layout's default (lut.ts) */
  readonly lutBuckets?: number;
  readonly options?: RegressorOptions;
}

/**
 * A featurizer and an untrained regressor that fit together: what `esm fit`, the local loop
 * and the cloud's training step need for any model kind (auto's stacked input included).
 */
export function createModel(
  space: SearchSpace,
  options: CreateModelOptions = {},
): { featurizer: Featurizer; regressor: AnyRegressor } {
  const { model = defaultModelKind, encoding = 'fcc', lutBuckets } = options;
  if (model === 'auto') {
    const { choice, layout } = autoFeatures(space, encoding, lutBuckets);
    return {
      featurizer: createFeaturizer(space, choice),
      regressor: createRegressor('auto', {
        ...options.options,
        auto: { ...options.options?.auto, layout },
      }),
    };
  }
  const featurizer = createFeaturizer(
    space,
    model === 'lut' ? { kind: 'lut', buckets: lutBuckets } : { kind: 'encoding', encoding },
  );
  // Ridge on the physics encoding also tries the robust relative fit (ridge.ts `robust`):
  // narrow input, so cheap; level or ahead in 36 of 39 cells of the benchmark (docs/BENCHMARKS.md).
  const regressorOptions =
    model === 'ridge' && encoding === 'physics'
      ? { ...options.options, ridge: { robust: true, ...options.options?.ridge } }
      : options.options;
  return { featurizer, regressor: createRegressor(model, regressorOptions) };
}

export interface FitPredictorOptions {
  readonly space: SearchSpace;
  /** The JSON spec of a user-defined space, stored so the predictor is self-contained. */
  readonly spaceSpec?: unknown;
  readonly rows: readonly { readonly subnet: Subnet; readonly latencyMs: number }[];
  /** Where the rows came from, recorded for reproduction. */
  readonly data: { readonly file: string; readonly sha256: string };
  /** @default defaultModelKind */
  readonly model?: ModelKind;
  /** Ignored by `lut`, which uses its own table layout. @default 'fcc' */
  readonly encoding?: EncodingName;
  /** Resolution buckets of the LUT. @default the LUT layout's default (lut.ts) */
  readonly lutBuckets?: number;
  /** Training rows; the rest are the test set. Overrides `trainFraction`. */
  readonly train?: number;
  /** Share of the rows used for training (the rest test the predictor). @default 0.8 */
  readonly trainFraction?: number;
  /** Depth bins for the per-bin evaluation, over the depths the rows hold. @default 10 */
  readonly bins?: number;
  /** Seeds the split and the model. @default 0 */
  readonly seed?: number;
  readonly options?: RegressorOptions;
  /**
   * The features and an untrained regressor to fit instead of `createModel`'s (e.g. a
   * transfer correction, transfer.ts); `model` and `encoding` are then ignored. @default none
   */
  readonly custom?: { readonly featurizer: Featurizer; readonly regressor: Regressor };
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

/** The options a model kind used, as recorded in predictor.json (functions left out). */
function optionsRecord(
  model: ModelKind,
  options: RegressorOptions,
  mlp: Record<string, unknown>,
): Record<string, unknown> {
  switch (model) {
    case 'mlp':
    case 'mlp-ensemble':
    case 'mlp-paper':
      return { ...mlp };
    case 'auto': {
      const { mlp: _mlp, ...auto } = options.auto ?? {};
      return { ...auto, mlp };
    }
    default:
      return { ...(options[model] ?? {}) };
  }
}

/** Splits, trains, evaluates and describes a predictor. */
export async function fitPredictor(options: FitPredictorOptions): Promise<FitPredictorResult> {
  const {
    space,
    rows,
    model = defaultModelKind,
    encoding = 'fcc',
    lutBuckets,
    bins = 10,
    seed = 0,
  } = options;
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

  const regressorOptions: RegressorOptions = {
    ...options.options,
    mlp: { ...options.options?.mlp, seed: options.options?.mlp?.seed ?? seed },
    rf: { ...options.options?.rf, seed: options.options?.rf?.seed ?? seed },
    gbt: { ...options.options?.gbt, seed: options.options?.gbt?.seed ?? seed },
    auto: { ...options.options?.auto, seed: options.options?.auto?.seed ?? seed },
  };
  const { featurizer, regressor } =
    options.custom ??
    createModel(space, {
      model,
      encoding,
      lutBuckets,
      options: regressorOptions,
    });
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
      // Over the depths the data holds, as a replay of the same file bins (HELP's FBNet archs
      // have 13..22 of 0..22 layers): a bin is never empty for want of data.
      bins: binsForRange(poolDepthRange(rows.map((r) => ({ depth: depth(r.subnet) }))), bins),
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
      model: model,
      chosen:
        'chosen' in report
          ? (report.chosen as AutoFitReport['chosen']).map((c) => ({ ...c }))
          : undefined,
      options: optionsRecord(model, regressorOptions, mlpOptions),
      domain: trainingDomain(trainRows.map((r) => r.subnet)),
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
