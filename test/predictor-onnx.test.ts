import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeModel, encodeModel } from '../core/onnx/model.ts';
import {
  mlpToOnnxGraph,
  modelToOnnxGraph,
  ridgeToOnnxGraph,
} from '../core/predictor/export-onnx.ts';
import { createForest } from '../core/predictor/forest.ts';
import { fitPredictor, regressorFromJson } from '../core/predictor/index.ts';
import { createMlp, predictWithState, predictWithTrainer } from '../core/predictor/mlp.ts';
import { createRidge } from '../core/predictor/ridge.ts';
import { syntheticLatencyMs } from '../core/predictor/synthetic.ts';
import { defaultTrainer } from '../core/predictor/trainer.ts';
import { type Matrix, modelKinds, type Regressor } from '../core/predictor/types.ts';
import { createRng } from '../core/rng.ts';
import { mobilenetv3 } from '../core/spaces/mobilenetv3.ts';
import { randomSubnet } from '../core/spaces/subnet.ts';
import { loadPredictor, savePredictor } from '../local/predictor-store.ts';

async function runOnnx(bytes: Uint8Array, x: Matrix): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  const input = new ort.Tensor('float32', Float32Array.from(x.data), [x.rows, x.cols]);
  const out = await session.run({ x: input });
  await session.release();
  return (out.latency_ms as ort.Tensor).data as Float32Array;
}

function maxRelativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(
      worst,
      Math.abs((a[i] as number) - (b[i] as number)) / Math.abs(b[i] as number),
    );
  }
  return worst;
}

/** Random vectors with raw (unstandardised) magnitudes, like encodings with a resolution entry. */
function randomInputs(rows: number, cols: number, seed: number): Matrix {
  const rng = createRng(seed);
  const data = Float64Array.from({ length: rows * cols }, (_, i) =>
    i % cols === 0 ? 128 + 4 * rng.int(25) : rng.int(5),
  );
  return { rows, cols, data };
}

describe('ONNX export of predictors', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'esm-onnx-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const ensemble of [1, 3]) {
    it(`runs a trained MLP (ensemble ${ensemble}) in onnxruntime within 1e-4 relative of the JS model`, async () => {
      const train = randomInputs(300, 12, 1);
      const y = Float64Array.from({ length: train.rows }, (_, r) => {
        const row = train.data.subarray(r * 12, r * 12 + 12);
        return (
          0.001 * (row[0] as number) ** 2 * (1 + (row[1] as number)) +
          (row[2] as number) * (row[3] as number) +
          1
        );
      });
      const mlp = createMlp({ seed: 2, ensemble, maxEpochs: 15, hidden: [64, 64, 64] });
      await mlp.fit(train, y);
      const x = randomInputs(1000, 12, 9);

      const bytes = encodeModel(mlpToOnnxGraph(mlp.state));
      const onnx = await runOnnx(bytes, x);
      const js = predictWithState(mlp.state, x);
      const tfjs = await predictWithTrainer(mlp.state, x, await defaultTrainer());

      expect(onnx.length).toBe(x.rows);
      expect(maxRelativeDifference(onnx, tfjs)).toBeLessThan(1e-4);
      expect(maxRelativeDifference(onnx, js)).toBeLessThan(1e-4);
      // The MLP must have moved away from its linear base, or parity would be trivial.
      const base = predictWithState({ ...mlp.state, members: [] }, x);
      expect(maxRelativeDifference(js, base)).toBeGreaterThan(1e-3);
    });
  }

  it('declares input x [batch, length] and output latency_ms [batch, 1]', () => {
    const state = {
      inputMean: new Float64Array(3),
      inputScale: new Float64Array([1, 1, 1]),
      base: {
        space: 'log' as const,
        weights: new Float64Array(3),
        bias: 0,
        floorMs: 1,
        penalty: 0,
      },
      residualScale: 1,
      members: [],
    };
    const decoded = decodeModel(encodeModel(mlpToOnnxGraph(state)));
    expect(decoded.inputs).toEqual([{ name: 'x', elemType: 'float', shape: ['batch', 3] }]);
    expect(decoded.outputs).toEqual([
      { name: 'latency_ms', elemType: 'float', shape: ['batch', 1] },
      { name: 'std_ms', elemType: 'float', shape: ['batch', 1] },
    ]);
  });

  it('exports the ridge baseline with the same predictions', async () => {
    const x = randomInputs(200, 8, 3);
    const y = Float64Array.from(
      { length: x.rows },
      (_, r) => 5 + (x.data[r * 8] as number) / 10 + (x.data[r * 8 + 1] as number),
    );
    for (const target of ['log', 'linear'] as const) {
      const ridge = createRidge({ target });
      await ridge.fit(x, y);
      const onnx = await runOnnx(encodeModel(ridgeToOnnxGraph(ridge.toJSON())), x);
      expect(maxRelativeDifference(onnx, await ridge.predict(x))).toBeLessThan(1e-4);
    }
  });

  it.each(modelKinds)(
    '%s: the saved predictor directory (ONNX) predicts latency and std like the JS model',
    async (model) => {
      const rng = createRng(5);
      // A device the physics entries do not explain alone, so that auto has a choice to make.
      const rows = Array.from({ length: 120 }, () => {
        const subnet = randomSubnet(mobilenetv3, rng);
        const k7 = subnet.units[2]?.blocks.filter((b) => b.kernel === 7).length ?? 0;
        const latencyMs = syntheticLatencyMs(mobilenetv3, subnet) * (1 + 0.08 * k7);
        return { subnet, latencyMs };
      });
      const fitted = await fitPredictor({
        space: mobilenetv3,
        rows,
        model,
        data: { file: 'synthetic', sha256: '0'.repeat(64) },
        options: { mlp: { maxEpochs: 5 }, rf: { trees: 20 }, gbt: { maxTrees: 40 } },
      });
      const out = join(dir, model);
      await savePredictor(out, fitted.predictor);
      const loaded = await loadPredictor(out);
      const subnets = rows.slice(0, 40).map((r) => r.subnet);
      const fromDir = await loaded.predict(subnets.map((s) => mobilenetv3.toNative(s)));
      const x = fitted.featurizer.encodeAll(subnets);
      const inMemory = await fitted.regressor.predict(x);
      expect(maxRelativeDifference(fromDir, inMemory)).toBeLessThan(1e-4);
      // The uncertainty: same in ONNX as in JavaScript, positive.
      const withStd = await loaded.predictSubnetsWithStd(subnets);
      const js = await (
        fitted.regressor.predictWithStd as NonNullable<Regressor['predictWithStd']>
      )(x);
      expect(maxRelativeDifference(withStd.mean, js.mean)).toBeLessThan(1e-4);
      expect(maxRelativeDifference(withStd.std, js.std)).toBeLessThan(1e-3);
      expect(Math.min(...withStd.std)).toBeGreaterThan(0);
      // A model restored from predictor.json predicts the same in JavaScript.
      const restored = regressorFromJson(fitted.predictor.model);
      expect(maxRelativeDifference(await restored.predict(x), inMemory)).toBeLessThan(1e-9);
      // The session is created once: a second call reuses it and agrees exactly.
      expect(await loaded.predictSubnets(subnets)).toEqual(fromDir);
      await loaded.close();
    },
    120_000,
  );

  it('runs a random forest with the spread of its trees as std, in onnxruntime', async () => {
    const x = randomInputs(300, 6, 4);
    const y = Float64Array.from({ length: x.rows }, (_, r) => {
      const row = x.data.subarray(r * 6, r * 6 + 6);
      return 1 + (row[1] as number) * (row[2] as number) + ((row[0] as number) > 160 ? 3 : 0);
    });
    const rf = createForest({ trees: 30, seed: 1 });
    await rf.fit(x, y);
    const test = randomInputs(500, 6, 8);
    const bytes = encodeModel(modelToOnnxGraph(rf.toJSON()));
    const session = await ort.InferenceSession.create(bytes);
    const out = await session.run({
      x: new ort.Tensor('float32', Float32Array.from(test.data), [test.rows, test.cols]),
    });
    await session.release();
    const js = await rf.predictWithStd(test);
    expect(
      maxRelativeDifference((out.latency_ms as ort.Tensor).data as Float32Array, js.mean),
    ).toBeLessThan(1e-5);
    expect(
      maxRelativeDifference((out.std_ms as ort.Tensor).data as Float32Array, js.std),
    ).toBeLessThan(1e-3);
    // Trees disagree more on some rows than on others: a per-row uncertainty, not a constant.
    const relative = js.std.map((s, i) => s / (js.mean[i] as number));
    expect(Math.max(...relative)).toBeGreaterThan(2 * Math.min(...relative));
  });

  it('refuses a predictor directory whose json is damaged, naming the field', async () => {
    const rng = createRng(6);
    const out = join(dir, 'damaged');
    const fitted = await fitPredictor({
      space: mobilenetv3,
      rows: Array.from({ length: 30 }, () => {
        const subnet = randomSubnet(mobilenetv3, rng);
        return { subnet, latencyMs: syntheticLatencyMs(mobilenetv3, subnet) };
      }),
      model: 'ridge',
      data: { file: 'synthetic', sha256: '0'.repeat(64) },
    });
    await savePredictor(out, fitted.predictor);
    const broken = { ...fitted.predictor, features: { ...fitted.predictor.features, length: 3 } };
    await writeFile(join(out, 'predictor.json'), JSON.stringify(broken));

    await expect(loadPredictor(out)).rejects.toThrow(
      /predictor\.json: model: expects \d+ inputs but features\.length is 3/,
    );
  });
});
