import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../core/errors.ts';
import {
  mlpStateFromJson,
  mlpStateToJson,
  type PredictorJson,
  parsePredictorJson,
} from '../../core/predictor/artifact.ts';
import { predictWithState } from '../../core/predictor/mlp.ts';

/** A small valid MLP predictor.json: 2 inputs, one hidden layer of 3 units. */
function validPredictor(): PredictorJson {
  return {
    format: 'esm-predictor',
    version: 1,
    space: { name: 'mobilenetv3' },
    features: { kind: 'encoding', encoding: 'fcc', length: 2 },
    model: {
      kind: 'mlp',
      input_mean: [1, 2],
      input_scale: [0.5, 2],
      base: { space: 'log', weights: [0.1, -0.2], bias: 3, floor_ms: 1, penalty: 0.01 },
      residual_scale: 0.05,
      members: [
        {
          layers: [
            { inputs: 2, outputs: 3, weights: [1, 0, -1, 0.5, 0.5, 0.5], bias: [0, 0.1, 0] },
            { inputs: 3, outputs: 1, weights: [0.2, -0.3, 0.4], bias: [0.01] },
          ],
        },
      ],
    },
    onnx: { file: 'predictor.onnx', input: 'x', output: 'latency_ms' },
    training: {
      seed: 0,
      n_train: 80,
      n_test: 20,
      seconds: 1.5,
      epochs: 12,
      backend: 'tfjs-wasm',
      options: { hidden: [3] },
      data: { file: 'data.jsonl', sha256: 'a'.repeat(64), rows: 100 },
      created_at: '2026-01-01T00:00:00.000Z',
    },
  };
}

function errorOf(json: unknown): ValidationError {
  try {
    parsePredictorJson(json, 'dir/predictor.json');
  } catch (error) {
    if (error instanceof ValidationError) return error;
    throw error;
  }
  throw new Error('expected a ValidationError');
}

describe('predictor.json', () => {
  it('accepts a valid file and round-trips the MLP state without changing predictions', () => {
    const parsed = parsePredictorJson(validPredictor());
    if (parsed.model.kind !== 'mlp') throw new Error('expected an mlp model');
    const state = mlpStateFromJson(parsed.model);
    const again = mlpStateFromJson(mlpStateToJson(state));
    const x = { rows: 3, cols: 2, data: Float64Array.from([0, 0, 1, 2, -3, 4]) };

    const before = predictWithState(state, x);
    expect(predictWithState(again, x)).toEqual(before);
    // log base: exp(3 + 0.1 z0 - 0.2 z1) times a small correction, so near e^3.
    expect(before[1]).toBeGreaterThan(Math.exp(3) * 0.9);
    expect(before[1]).toBeLessThan(Math.exp(3) * 1.1);
  });

  it('names the file and the field of a schema error, and says how to fix it', () => {
    const wrongVersion = { ...validPredictor(), version: 2 };
    expect(errorOf(wrongVersion).message).toMatch(
      /^dir\/predictor\.json: version: .*esm fit --out/,
    );

    const p = validPredictor();
    if (p.model.kind !== 'mlp') throw new Error('expected an mlp model');
    const badScale = { ...p, model: { ...p.model, input_scale: [0.5, -1] } };
    expect(errorOf(badScale).field).toBe('dir/predictor.json: model.input_scale.1');

    const { training: _training, ...noTraining } = validPredictor();
    expect(errorOf(noTraining).field).toBe('dir/predictor.json: training');

    expect(errorOf({ ...validPredictor(), model: { kind: 'forest' } }).field).toBe(
      'dir/predictor.json: model.kind',
    );
    expect(errorOf('not an object').field).toBe('dir/predictor.json: (root)');
  });

  it('rejects weights whose shapes do not chain, naming the layer', () => {
    const p = validPredictor();
    if (p.model.kind !== 'mlp') throw new Error('expected an mlp model');
    const [first, second] = p.model.members[0]?.layers ?? [];
    if (!first || !second) throw new Error('expected two layers');
    const shortWeights = {
      ...p,
      model: { ...p.model, members: [{ layers: [{ ...first, weights: [1, 2] }, second] }] },
    };
    expect(errorOf(shortWeights).message).toMatch(
      /model\.members\.0\.layers\.0\.weights: must have inputs x outputs = 6 entries/,
    );
    const badChain = {
      ...p,
      model: { ...p.model, members: [{ layers: [first, { ...second, inputs: 4 }] }] },
    };
    expect(errorOf(badChain).field).toBe('dir/predictor.json: model.members.0.layers.1.inputs');
  });

  it('rejects a model whose input width disagrees with the features', () => {
    const p = validPredictor();
    const inconsistent = { ...p, features: { ...p.features, length: 5 } };
    expect(errorOf(inconsistent).message).toMatch(/expects 2 inputs but features\.length is 5/);
  });
});
