/**
 * `predictor.json`: the description of a trained predictor directory (beside it,
 * `predictor.onnx`). It records what is needed to predict (space, features, the model's
 * parameters) and to reproduce the predictor (seed, options, data hash, metrics). One zod
 * schema, one type; pure (the caller reads and writes the files).
 */
import { z } from 'zod';
import { encodingNames } from '../encodings/types.ts';
import { ValidationError } from '../errors.ts';
import { gbtJson, rfJson } from './forest.ts';
import { lutJson } from './lut.ts';
import type { MlpState } from './mlp.ts';
import { ridgeJson } from './ridge.ts';
import type { DenseLayer } from './trainer.ts';
import { transferModelJson } from './transfer-json.ts';
import { modelKinds } from './types.ts';

export const PREDICTOR_FORMAT = 'esm-predictor';
export const PREDICTOR_VERSION = 1;
export const PREDICTOR_JSON = 'predictor.json';
export const PREDICTOR_ONNX = 'predictor.onnx';

const finite = z.number().refine(Number.isFinite, { message: 'must be a finite number' });

const denseLayerJson = z.object({
  inputs: z.number().int().positive(),
  outputs: z.number().int().positive(),
  weights: z.array(finite),
  bias: z.array(finite),
});

export const mlpJson = z.object({
  kind: z.literal('mlp'),
  input_mean: z.array(finite),
  input_scale: z.array(z.number().positive()),
  base: z.object({
    space: z.enum(['log', 'ms']),
    weights: z.array(finite),
    bias: finite,
    floor_ms: z.number().positive(),
    penalty: z.number().nonnegative(),
  }),
  residual_scale: z.number().positive(),
  members: z.array(z.object({ layers: z.array(denseLayerJson).min(1) })),
  /** Relative RMS error on the validation rows (the uncertainty's residual part). */
  rel_std: z.number().nonnegative().optional(),
});
export type MlpJson = z.infer<typeof mlpJson>;

/** The models that stand alone or as members of `auto`. */
export const memberModelJson = z.discriminatedUnion('kind', [
  mlpJson,
  ridgeJson,
  lutJson,
  rfJson,
  gbtJson,
]);
export type MemberModelJson = z.infer<typeof memberModelJson>;

/** `auto`: a weighted blend of members, each reading columns [start, end) of the input. */
export const autoJson = z.object({
  kind: z.literal('auto'),
  inputs: z.number().int().positive(),
  members: z
    .array(
      z.object({
        name: z.string(),
        weight: z.number().positive().max(1),
        columns: z.tuple([z.number().int().nonnegative(), z.number().int().positive()]),
        model: memberModelJson,
      }),
    )
    .min(1),
  /** Every candidate's cross-validated accuracy, for the record. */
  candidates: z.array(z.object({ name: z.string(), accuracy: z.number() })),
});
export type AutoJson = z.infer<typeof autoJson>;

/** A model trained on one device's data: what a transferred predictor starts from. */
export const baseModelJson = z.discriminatedUnion('kind', [
  mlpJson,
  ridgeJson,
  lutJson,
  rfJson,
  gbtJson,
  autoJson,
]);
export type BaseModelJson = z.infer<typeof baseModelJson>;

/** A prior model of another device with a correction for this one (`esm fit --prior`). */
export const transferJson = transferModelJson(baseModelJson);
export type TransferJson = z.infer<typeof transferJson>;

export const modelJson = z.discriminatedUnion('kind', [
  mlpJson,
  ridgeJson,
  lutJson,
  rfJson,
  gbtJson,
  autoJson,
  transferJson,
]);
export type ModelJson = z.infer<typeof modelJson>;

/** Number of inputs a stored model reads. */
export function modelInputs(model: ModelJson): number {
  switch (model.kind) {
    case 'mlp':
      return model.input_mean.length;
    case 'ridge':
      return model.weights.length;
    case 'lut':
      return model.costs.length;
    case 'rf':
    case 'gbt':
    case 'auto':
      return model.inputs;
    case 'transfer':
      return modelInputs(model.prior);
  }
}

const encodingFeaturesJson = z.object({
  kind: z.literal('encoding'),
  encoding: z.enum(encodingNames),
  length: z.number().int().positive(),
});
const lutFeaturesJson = z.object({
  kind: z.literal('lut'),
  buckets: z.number().int().positive(),
  length: z.number().int().positive(),
});

/**
 * What the model's input vector is: a named encoding, the LUT's table-entry counts, or a
 * stack of those parts side by side (auto's input: physics, the encoding, LUT counts).
 */
export const featuresJson = z.discriminatedUnion('kind', [
  encodingFeaturesJson,
  lutFeaturesJson,
  z.object({
    kind: z.literal('stack'),
    parts: z.array(z.discriminatedUnion('kind', [encodingFeaturesJson, lutFeaturesJson])).min(1),
    length: z.number().int().positive(),
  }),
]);
export type FeaturesJson = z.infer<typeof featuresJson>;

/** A short name of a predictor's input: the encoding, `lut`, or e.g. `physics+fcc+lut`. */
export function featuresName(features: FeaturesJson): string {
  const part = (f: Exclude<FeaturesJson, { kind: 'stack' }>) =>
    f.kind === 'lut' ? 'lut' : f.encoding;
  return features.kind === 'stack' ? features.parts.map(part).join('+') : part(features);
}

const metricsJson = z.object({
  n: z.number().int().nonnegative(),
  accuracy: z.number(),
  within5: z.number(),
  within10: z.number(),
  rmse_ms: z.number(),
  spearman: z.number().nullable(),
});

export const predictorJson = z.object({
  format: z.literal(PREDICTOR_FORMAT),
  version: z.literal(PREDICTOR_VERSION),
  space: z.object({
    name: z.string().min(1),
    /** The JSON spec of a user-defined space, so the predictor works without the spec file. */
    spec: z.unknown().optional(),
  }),
  /** What the model predicts: a dataset field, `latency_ms` when absent (`esm fit --metric`). */
  metric: z.string().optional(),
  features: featuresJson,
  model: modelJson,
  onnx: z.object({
    file: z.literal(PREDICTOR_ONNX),
    input: z.string(),
    output: z.string(),
  }),
  training: z.object({
    seed: z.number().int(),
    n_train: z.number().int().positive(),
    n_test: z.number().int().nonnegative(),
    seconds: z.number().nonnegative(),
    epochs: z.number().int().nonnegative().optional(),
    backend: z.string().optional(),
    /** The model kind asked for (`auto`, `mlp-paper` ... ; `model.kind` is what was stored). */
    model: z.enum(modelKinds).optional(),
    /** What `auto` chose: members and blend weights. */
    chosen: z.array(z.object({ name: z.string(), weight: z.number() })).optional(),
    /** Model options as given (hidden sizes, learning rate ...), for reproduction. */
    options: z.record(z.string(), z.unknown()),
    /** Resolutions and depths the training rows spanned (core/predictor/domain.ts). */
    domain: z
      .object({
        resolution: z.tuple([z.number(), z.number()]),
        depth: z.tuple([z.number(), z.number()]),
      })
      .optional(),
    data: z.object({
      file: z.string(),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      rows: z.number().int().positive(),
    }),
    created_at: z.string(),
  }),
  metrics: z
    .object({
      test: metricsJson,
      bins: z.array(
        z.object({
          lo: z.number().int(),
          hi: z.number().int(),
          n: z.number().int(),
          accuracy: z.number().nullable(),
        }),
      ),
    })
    .optional(),
});
export type PredictorJson = z.infer<typeof predictorJson>;

/**
 * Validates a parsed predictor.json. Errors name the file and the field, e.g.
 * `predictor.json: model.input_scale.3: Number must be greater than 0`.
 */
export function parsePredictorJson(json: unknown, source = PREDICTOR_JSON): PredictorJson {
  const result = predictorJson.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = issue?.path.join('.') || '(root)';
    throw new ValidationError(
      `${source}: ${path}`,
      `${issue?.message ?? 'invalid'}; the file must be written by \`esm fit --out\` (format ${PREDICTOR_FORMAT} v${PREDICTOR_VERSION})`,
    );
  }
  const p = result.data;
  const length = p.features.length;
  const inputs = modelInputs(p.model);
  const correction = p.model.kind === 'transfer' ? p.model.correction.features : null;
  if (inputs !== length || (correction && correction.weights.length !== length)) {
    throw new ValidationError(
      `${source}: model`,
      `expects ${inputs} inputs but features.length is ${length}; the file is inconsistent, refit the predictor`,
    );
  }
  // A transferred predictor's prior is checked like a model of its own.
  const model = p.model.kind === 'transfer' ? p.model.prior : p.model;
  const at = p.model.kind === 'transfer' ? 'model.prior' : 'model';
  if (model.kind === 'mlp') mlpStateFromJson(model, source);
  if (model.kind === 'auto') {
    model.members.forEach((m, i) => {
      const field = `${source}: ${at}.members.${i}`;
      const [start, end] = m.columns;
      if (!(start < end && end <= length)) {
        throw new ValidationError(`${field}.columns`, `must lie in 0..${length} with start < end`);
      }
      if (modelInputs(m.model) !== end - start) {
        throw new ValidationError(
          `${field}.model`,
          `expects ${modelInputs(m.model)} inputs, columns give ${end - start}`,
        );
      }
      if (m.model.kind === 'mlp') mlpStateFromJson(m.model, field);
    });
  }
  return p;
}

function layerToJson(layer: DenseLayer) {
  return {
    inputs: layer.inputs,
    outputs: layer.outputs,
    weights: Array.from(layer.weights),
    bias: Array.from(layer.bias),
  };
}

export function mlpStateToJson(state: MlpState): MlpJson {
  return {
    kind: 'mlp',
    input_mean: Array.from(state.inputMean),
    input_scale: Array.from(state.inputScale),
    base: {
      space: state.base.space,
      weights: Array.from(state.base.weights),
      bias: state.base.bias,
      floor_ms: state.base.floorMs,
      penalty: state.base.penalty,
    },
    residual_scale: state.residualScale,
    members: state.members.map((layers) => ({ layers: layers.map(layerToJson) })),
    rel_std: state.relStd ?? 0,
  };
}

/** The in-memory state of a stored MLP; checks that every layer's shape fits the next. */
export function mlpStateFromJson(json: MlpJson, source = PREDICTOR_JSON): MlpState {
  const cols = json.input_mean.length;
  const fail = (field: string, message: string): never => {
    throw new ValidationError(`${source}: model.${field}`, message);
  };
  if (json.input_scale.length !== cols)
    fail('input_scale', `must have ${cols} entries like input_mean`);
  if (json.base.weights.length !== cols)
    fail('base.weights', `must have ${cols} entries like input_mean`);
  const members = json.members.map((member, m) => {
    let inputs = cols;
    return member.layers.map((layer, l) => {
      const field = `members.${m}.layers.${l}`;
      if (layer.inputs !== inputs)
        fail(`${field}.inputs`, `must be ${inputs} (the previous layer's outputs)`);
      if (layer.weights.length !== layer.inputs * layer.outputs) {
        fail(
          `${field}.weights`,
          `must have inputs x outputs = ${layer.inputs * layer.outputs} entries`,
        );
      }
      if (layer.bias.length !== layer.outputs)
        fail(`${field}.bias`, `must have ${layer.outputs} entries`);
      inputs = layer.outputs;
      return {
        inputs: layer.inputs,
        outputs: layer.outputs,
        weights: Float32Array.from(layer.weights),
        bias: Float32Array.from(layer.bias),
      };
    });
  });
  const firstWidth = members[0]?.[0]?.outputs;
  members.forEach((layers, m) => {
    if ((layers[layers.length - 1] as DenseLayer).outputs !== 1) {
      fail(`members.${m}.layers`, 'the last layer must have 1 output');
    }
    if ((layers[0] as DenseLayer).outputs !== firstWidth) {
      fail(`members.${m}.layers.0.outputs`, 'every member must have the same first-layer width');
    }
  });
  return {
    inputMean: Float64Array.from(json.input_mean),
    inputScale: Float64Array.from(json.input_scale),
    base: {
      space: json.base.space,
      weights: Float64Array.from(json.base.weights),
      bias: json.base.bias,
      floorMs: json.base.floor_ms,
      penalty: json.base.penalty,
    },
    residualScale: json.residual_scale,
    members,
    relStd: json.rel_std ?? 0,
  };
}
