import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEncoder, encodeAll } from '../../core/encodings/index.ts';
import { physicsLabels } from '../../core/encodings/physics.ts';
import { evaluate } from '../../core/metrics.ts';
import { type BaseModelJson, parsePredictorJson } from '../../core/predictor/artifact.ts';
import {
  autoFeatures,
  createFeaturizer,
  fitPredictor,
  regressorFromJson,
} from '../../core/predictor/index.ts';
import { createRidge, type RidgeJson, ridgeFromJSON } from '../../core/predictor/ridge.ts';
import { type SyntheticDevice, syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import {
  applyCorrection,
  contributionBases,
  createTransferRegressor,
  featureLabels,
  fitCorrection,
  fitTransferPredictor,
  physicsBasis,
  physicsSummaryBasis,
  priorPartBases,
} from '../../core/predictor/transfer.ts';
import type { Matrix } from '../../core/predictor/types.ts';
import { createRng } from '../../core/rng.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import type { Subnet } from '../../core/spaces/types.ts';
import { loadPredictor, savePredictor } from '../../local/predictor-store.ts';

const encoder = createEncoder(mobilenetv3, 'fcc');
const source = { file: 'synthetic', sha256: '0'.repeat(64), rows: 1 };
const priorSource = { data: source, n_train: 1, created_at: '2026-12-01T00:00:00.000Z' };

/**
 * A second device: every operator type faster, by different factors (dense 1.3x, depthwise
 * 1.2x, memory-bound 1.2x), and 1.5x the per-layer overhead. (A harsher one, dense 1.7x
 * faster and depthwise 1.4x slower, reaches 98.9 % from 20 samples: docs/predictor.md.)
 */
const deviceB: SyntheticDevice = {
  overheadMs: 0.03,
  denseMacsPerMs: 2.6e7,
  depthwiseMacsPerMs: 1.8e6,
  elementsPerMs: 2.4e6,
};

function archs(n: number, seed: number): Subnet[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => randomSubnet(mobilenetv3, rng));
}

function latencies(subnets: readonly Subnet[], device: SyntheticDevice | undefined, seed: number) {
  const rng = createRng(seed);
  return Float64Array.from(subnets, (s) =>
    syntheticLatencyMs(mobilenetv3, s, { device, noise: 0.002, rng }),
  );
}

/** A ridge's coefficients on its raw input columns. */
const rawWeights = (json: RidgeJson) =>
  json.weights.map((w, j) => w / (json.standardiser.scales[j] as number));

const accuracy = (predicted: ArrayLike<number>, measured: ArrayLike<number>) =>
  evaluate({ predicted, measured: Array.from(measured) }).accuracy;

describe('transfer to a new device (core/predictor/transfer.ts)', () => {
  const trainA = archs(1000, 1);
  const test = archs(1000, 3);
  const xTest: Matrix = encodeAll(encoder, test);
  const yTestB = latencies(test, deviceB, 4);
  let prior: BaseModelJson;

  beforeAll(async () => {
    const ridge = createRidge();
    await ridge.fit(encodeAll(encoder, trainA), latencies(trainA, undefined, 2));
    prior = ridge.toJSON();
  });

  it('recovers a synthetic second device to > 99 % from 20 samples, where the prior alone and a scratch model fail', async () => {
    // Prepare: 20 measurements on device B.
    const few = archs(20, 5);
    const x = encodeAll(encoder, few);
    const y = latencies(few, deviceB, 6);
    const transfer = createTransferRegressor({
      model: prior,
      source: priorSource,
      labels: encoder.labels,
    });
    const scratch = createRidge();

    // Act
    await transfer.fit(x, y);
    await scratch.fit(x, y);

    // Assess
    const transferred = accuracy(await transfer.predict(xTest), yTestB);
    const priorAlone = accuracy(await ridgeFromJSON(prior).predict(xTest), yTestB);
    const fromScratch = accuracy(await scratch.predict(xTest), yTestB);
    expect(transferred).toBeGreaterThan(0.99);
    expect(priorAlone).toBeLessThan(0.9);
    expect(fromScratch).toBeLessThan(0.97);
  });

  it('keeps > 99 % from 20 samples when two of them are misleading (robust candidates), where plain fits drop', async () => {
    // Prepare: the same 20-row draw, two rows measured 1.6x slow (a throttled run).
    const few = archs(20, 5);
    const x = encodeAll(encoder, few);
    const y = latencies(few, deviceB, 6).map((v, i) => (i === 2 || i === 13 ? 1.6 * v : v));
    const make = (robust: boolean) =>
      createTransferRegressor(
        { model: prior, source: priorSource, labels: encoder.labels },
        { robust },
      );
    const robust = make(true);
    const plain = make(false);

    // Act
    await robust.fit(x, y);
    await plain.fit(x, y);

    // Assess: CV picks a robust correction, which keeps to the device.
    expect(robust.fitted?.correction.robust).toBe(true);
    expect(plain.fitted?.correction.robust).toBeUndefined();
    const a = accuracy(await robust.predict(xTest), yTestB);
    const b = accuracy(await plain.predict(xTest), yTestB);
    expect(a).toBeGreaterThan(0.99);
    expect(a).toBeGreaterThan(b + 0.01);
  });

  it('recovers an exactly proportional device with a pure scale from 5 samples', async () => {
    const few = archs(5, 7);
    const x = encodeAll(encoder, few);
    const priorMs = await ridgeFromJSON(prior).predict(x);
    const fit = fitCorrection(
      x,
      priorMs,
      priorMs.map((v) => 1.7 * v),
    );
    const predicted = applyCorrection(
      fit.correction,
      xTest,
      await ridgeFromJSON(prior).predict(xTest),
    );
    const expected = (await ridgeFromJSON(prior).predict(xTest)).map((v) => 1.7 * v);
    expect(accuracy(predicted, expected)).toBeGreaterThan(0.9999);
    expect(fit.scores.length).toBeGreaterThan(1);
  });

  it('chooses by cross-validation: more rows allow a richer correction, and each score is reported', async () => {
    const many = archs(300, 8);
    const x = encodeAll(encoder, many);
    const y = latencies(many, deviceB, 9);
    const t = createTransferRegressor({
      model: prior,
      source: priorSource,
      labels: encoder.labels,
    });
    await t.fit(x, y);
    const fitted = t.fitted;
    expect(fitted?.correction.features).not.toBeNull();
    expect(fitted?.correction.n).toBe(300);
    const errors = fitted?.scores.map((sc) => sc.error) ?? [];
    expect(errors).toEqual([...errors].sort((a, b) => a - b));
    expect(fitted?.correction.cv_error).toBe(errors[0]);
    // The all-columns basis is only tried with enough rows.
    expect(fitted?.scores.some((sc) => sc.basis === 'all')).toBe(true);
    const few = createTransferRegressor({
      model: prior,
      source: priorSource,
      labels: encoder.labels,
    });
    await few.fit(encodeAll(encoder, many.slice(0, 20)), y.slice(0, 20));
    expect(few.fitted?.scores.some((sc) => sc.basis === 'all')).toBe(false);
  });

  it("solves a robust candidate on a basis wider than the rows in the dual form, with the primal's answers", async () => {
    // Prepare: 100 rows, so the all-columns basis (FCC's 188) is tried, robustly too, on
    // 90-row folds: the dual form.
    const rows = archs(100, 21);
    const x = encodeAll(encoder, rows);
    const priorMs = await ridgeFromJSON(prior).predict(x);
    const y = latencies(rows, deviceB, 22);
    // Act
    // (Two feature penalties, with every slope rule, keep the primal reference quick.)
    const options = { featurePenalties: [null, 1, 0.01] };
    const dual = fitCorrection(x, priorMs, y, options);
    const primal = fitCorrection(x, priorMs, y, { ...options, dualForm: false });
    // Assess: every candidate's CV error, the choice and the correction agree.
    const wide = dual.scores.filter((sc) => sc.basis === 'all' && sc.robust);
    expect(wide.length).toBeGreaterThan(0);
    expect(new Set(wide.map((sc) => sc.slopePenalty))).toEqual(new Set([null, 0.1, 0]));
    const key = (sc: (typeof dual.scores)[number]) =>
      `${sc.space}|${sc.slopePenalty}|${sc.featurePenalty}|${sc.basis}|${sc.robust}`;
    const primalError = new Map(primal.scores.map((sc) => [key(sc), sc.error]));
    expect(primal.scores).toHaveLength(dual.scores.length);
    for (const sc of dual.scores) {
      const reference = primalError.get(key(sc)) as number;
      expect(Math.abs(sc.error - reference), key(sc)).toBeLessThan(1e-7 * reference + 1e-12);
    }
    const { features: dualFeatures, ...dualRest } = dual.correction;
    const { features: primalFeatures, ...primalRest } = primal.correction;
    expect(Object.keys(dualRest).sort()).toEqual(Object.keys(primalRest).sort());
    for (const [field, value] of Object.entries(primalRest)) {
      const got = dualRest[field as keyof typeof dualRest];
      if (typeof value === 'number') expect(got as number, field).toBeCloseTo(value, 6);
      else expect(got, field).toEqual(value);
    }
    expect(dualFeatures?.basis).toBe(primalFeatures?.basis);
    const predictedDual = applyCorrection(
      dual.correction,
      xTest,
      await ridgeFromJSON(prior).predict(xTest),
    );
    const predictedPrimal = applyCorrection(
      primal.correction,
      xTest,
      await ridgeFromJSON(prior).predict(xTest),
    );
    predictedDual.forEach((v, i) => {
      expect(Math.abs(v - (predictedPrimal[i] as number))).toBeLessThan(
        1e-6 * (predictedPrimal[i] as number),
      );
    });
  });

  it('with physics first in the input (auto), corrects through the cost features where the prior says little', async () => {
    // Prepare: auto's stacked input; a prior of device A; a device C whose costs are
    // distributed differently (dense 3x slower, depthwise 20x faster, 10x the overhead).
    const stacked = createFeaturizer(mobilenetv3, autoFeatures(mobilenetv3, 'fcc').choice);
    const labels = featureLabels(mobilenetv3, stacked.features);
    const deviceC: SyntheticDevice = {
      overheadMs: 0.2,
      denseMacsPerMs: 6e6,
      depthwiseMacsPerMs: 3e7,
      elementsPerMs: 2e7,
    };
    const ridge = createRidge();
    const subnetsA = archs(600, 1);
    await ridge.fit(stacked.encodeAll(subnetsA), latencies(subnetsA, undefined, 2));
    const model = ridge.toJSON();
    const few = archs(20, 5);
    const x = stacked.encodeAll(few);
    const y = latencies(few, deviceC, 6);
    const withPhysics = createTransferRegressor({ model, source: priorSource, labels });
    const units = contributionBases(model, labels).filter((b) => b.name === 'units');
    const unitsOnly = createTransferRegressor(
      { model, source: priorSource, labels },
      { bases: units },
    );

    // Act
    await withPhysics.fit(x, y);
    await unitsOnly.fit(x, y);

    // Assess
    const xC = stacked.encodeAll(test);
    const yC = latencies(test, deviceC, 4);
    const a = accuracy(await withPhysics.predict(xC), yC);
    expect(physicsBasis(labels).map((b) => b.name)).toEqual(['physics']);
    expect(physicsBasis(encoder.labels)).toEqual([]);
    // One of the bases of the physics entries (plain, summed, or with the prior's rest).
    expect(withPhysics.fitted?.correction.features?.basis).toMatch(/^physics/);
    expect(a).toBeGreaterThan(0.99);
    expect(a).toBeGreaterThan(accuracy(await unitsOnly.predict(xC), yC) + 0.01);
  });

  describe("corrections built from the prior's physics part and its rest (priorPartBases)", () => {
    const stacked = createFeaturizer(mobilenetv3, autoFeatures(mobilenetv3, 'fcc').choice);
    const labels = featureLabels(mobilenetv3, stacked.features);
    const k = physicsLabels.length;
    const few = archs(20, 5);
    const x = stacked.encodeAll(few);
    const xTestStacked = stacked.encodeAll(test);
    let model: BaseModelJson;
    /** The prior's intercept, and its physics part and its rest per row of `m`. */
    let parts: (m: Matrix) => { physics: Float64Array; rest: Float64Array };
    let intercept: number;

    beforeAll(async () => {
      const ridge = createRidge({ target: 'linear' });
      const subnetsA = archs(600, 1);
      await ridge.fit(stacked.encodeAll(subnetsA), latencies(subnetsA, undefined, 2));
      const json = ridge.toJSON();
      model = json;
      const coefs = rawWeights(json);
      intercept = coefs.reduce(
        (a, c, j) => a - c * (json.standardiser.means[j] as number),
        json.intercept,
      );
      parts = (m) => {
        const physics = new Float64Array(m.rows);
        const rest = new Float64Array(m.rows);
        for (let i = 0; i < m.rows; i++) {
          coefs.forEach((c, j) => {
            const v = c * (m.data[i * m.cols + j] as number);
            if (j < k) physics[i] = (physics[i] as number) + v;
            else rest[i] = (rest[i] as number) + v;
          });
        }
        return { physics, rest };
      };
    });

    const fitOn = async (basis: string, y: (m: Matrix) => Float64Array) => {
      const bases = priorPartBases(model, labels).filter((b) => b.name === basis);
      const prior = regressorFromJson(model);
      const fit = fitCorrection(x, await prior.predict(x), y(x), {
        spaces: ['ms'],
        slopePenalties: [null],
        featurePenalties: [1e-8],
        bases,
        robust: false,
      });
      const predicted = applyCorrection(
        fit.correction,
        xTestStacked,
        await prior.predict(xTestStacked),
      );
      return { fit, accuracy: accuracy(predicted, y(xTestStacked)) };
    };

    it('offers the physics shares, the two parts and physics + rest, only where the prior has the parts', () => {
      const names = (m: BaseModelJson) => priorPartBases(m, labels).map((b) => b.name);
      expect(names(model)).toEqual(['physics shares', 'parts', 'physics + rest']);
      // A prior on the physics entries only (zero weight on the rest): its shares alone.
      const physicsOnly = {
        ...(model as RidgeJson),
        weights: (model as RidgeJson).weights.map((w, j) => (j < k ? w : 0)),
      };
      expect(names(physicsOnly)).toEqual(['physics shares']);
      // An input that does not start with the physics entries: none.
      expect(priorPartBases(prior, encoder.labels)).toEqual([]);
      expect(physicsSummaryBasis(encoder.labels)).toEqual([]);
      const [summary] = physicsSummaryBasis(labels);
      const projection = summary?.projection as Matrix;
      expect([projection.rows, projection.cols]).toEqual([labels.length, 7]);
      // Every summed entry is a physics entry, and each lands in one column.
      for (let j = 0; j < labels.length; j++) {
        const row = Array.from(projection.data.subarray(j * 7, (j + 1) * 7));
        expect(row.reduce((a, v) => a + v, 0)).toBe(j < k && row.includes(1) ? 1 : 0);
        if (j >= k) expect(row.every((v) => v === 0)).toBe(true);
      }
    });

    it('`parts` learns a slope of its own for the physics part and for the rest', async () => {
      // A device whose costs the physics entries explain run 1.4x slower, the rest 0.6x.
      const y = (m: Matrix) => {
        const { physics, rest } = parts(m);
        return physics.map((p, i) => intercept + 1.4 * p + 0.6 * (rest[i] as number));
      };
      expect(Math.min(...y(xTestStacked))).toBeGreaterThan(0);
      const { fit, accuracy: a } = await fitOn('parts', y);
      expect(fit.correction.features?.basis).toBe('parts');
      expect(a).toBeGreaterThan(0.9999);
      // The same device is out of reach of one slope on the output.
      const affine = fitCorrection(x, await regressorFromJson(model).predict(x), y(x), {
        spaces: ['ms'],
        slopePenalties: [0],
        featurePenalties: [null],
        robust: false,
      });
      const predicted = applyCorrection(
        affine.correction,
        xTestStacked,
        await regressorFromJson(model).predict(xTestStacked),
      );
      expect(accuracy(predicted, y(xTestStacked))).toBeLessThan(a - 0.002);
    });

    it('`physics shares` rescales each physics coefficient of the prior by its own factor (shared scaling)', async () => {
      // Each physics entry's coefficient scaled by its own factor, 0.7x to 1.5x.
      const coefs = rawWeights(model as RidgeJson);
      const y = (m: Matrix) => {
        const { physics, rest } = parts(m);
        return physics.map((p, i) => {
          let shifted = 0;
          for (let j = 0; j < k; j++) {
            shifted +=
              (0.7 + (0.8 * j) / k - 1) * (coefs[j] as number) * (m.data[i * m.cols + j] as number);
          }
          return intercept + p + shifted + (rest[i] as number);
        });
      };
      expect(Math.min(...y(xTestStacked))).toBeGreaterThan(0);
      const { fit, accuracy: a } = await fitOn('physics shares', y);
      expect(fit.correction.features?.basis).toBe('physics shares');
      expect(a).toBeGreaterThan(0.999);
    });
  });

  it('rejects bad input with the field named', () => {
    const x = encodeAll(encoder, archs(5, 10));
    expect(() =>
      fitCorrection(x, new Float64Array(5).fill(1), new Float64Array(5).fill(-1)),
    ).toThrow(/latencyMs\[0\].*positive/);
    expect(() => fitCorrection(x, new Float64Array(4), new Float64Array(5).fill(1))).toThrow(
      /expected 5 prior predictions/,
    );
    expect(() =>
      fitCorrection(x, new Float64Array(5).fill(1), new Float64Array(5).fill(1), { spaces: [] }),
    ).toThrow(/spaces/);
  });
});

describe('a transferred predictor is one portable directory (ONNX parity)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'esm-transfer-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const model of ['mlp', 'ridge', 'auto'] as const) {
    it(`runs a ${model} prior + correction in onnxruntime within 1e-4 of the JS path, std_ms too`, async () => {
      // Prepare: a prior fitted on device A, 60 rows of device B.
      // auto cross-validates many candidates: fewer rows keep the test quick.
      const subnetsA = archs(model === 'auto' ? 150 : 400, 11);
      const yA = latencies(subnetsA, undefined, 12);
      const prior = await fitPredictor({
        space: mobilenetv3,
        rows: subnetsA.map((subnet, i) => ({ subnet, latencyMs: yA[i] as number })),
        data: source,
        model,
        train: subnetsA.length,
        options: { mlp: { maxEpochs: 8, patience: 8 } },
      });
      if (model === 'mlp') {
        const json = prior.predictor.model;
        // The MLP must carry members, so the composed graph holds more than a linear base.
        expect(json.kind === 'mlp' && json.members.length).toBeGreaterThan(0);
      }
      const subnetsB = archs(80, 13);
      const yB = latencies(subnetsB, deviceB, 14);

      // Act
      const result = await fitTransferPredictor({
        space: mobilenetv3,
        prior: prior.predictor,
        priorDir: 'prior-dir',
        rows: subnetsB.map((subnet, i) => ({ subnet, latencyMs: yB[i] as number })),
        data: source,
        train: 60,
      });
      const out = join(dir, model);
      await savePredictor(out, result.predictor);
      const loaded = await loadPredictor(out);
      const test = archs(500, 15);
      const onnx = await loaded.predictSubnetsWithStd(test);
      const x = loaded.featurizer.encodeAll(test);
      const js = await result.regressor.predict(x);
      // The stored JSON restores the same predictor (regressorFromJson), std included.
      const restored = await regressorFromJson(loaded.json.model).predictWithStd?.(x);
      await loaded.close();

      // Assess
      expect(parsePredictorJson(loaded.json).model.kind).toBe('transfer');
      expect(loaded.json.training.options.prior).toBe('prior-dir');
      expect(result.test?.n).toBe(20);
      const worst = (a: ArrayLike<number>, b: ArrayLike<number>) =>
        Array.from(b).reduce((w, v, i) => Math.max(w, Math.abs((a[i] as number) - v) / v), 0);
      expect(worst(onnx.mean, js)).toBeLessThan(1e-4);
      expect(worst(restored?.mean ?? [], js)).toBeLessThan(1e-9);
      expect(worst(onnx.std, restored?.std ?? [])).toBeLessThan(1e-4);
      expect(Math.min(...onnx.std)).toBeGreaterThan(0);
      // The correction changed the prior's output, or parity would say nothing about it.
      const priorOnly = await prior.regressor.predict(x);
      expect(accuracy(priorOnly, js)).toBeLessThan(0.95);
    }, 300_000);
  }

  it('refuses a prior of another space or a prior that is itself transferred', async () => {
    const subnets = archs(50, 16);
    const y = latencies(subnets, undefined, 17);
    const rows = subnets.map((subnet, i) => ({ subnet, latencyMs: y[i] as number }));
    const prior = await fitPredictor({ space: mobilenetv3, rows, data: source, model: 'ridge' });
    const other = { ...prior.predictor, space: { name: 'resnet50' } };
    await expect(
      fitTransferPredictor({ space: mobilenetv3, prior: other, rows, data: source }),
    ).rejects.toThrow(/--prior.*resnet50/);
    const transferred = await fitTransferPredictor({
      space: mobilenetv3,
      prior: prior.predictor,
      rows,
      data: source,
    });
    await expect(
      fitTransferPredictor({
        space: mobilenetv3,
        prior: transferred.predictor,
        rows,
        data: source,
      }),
    ).rejects.toThrow(/itself a transferred predictor/);
  });
});
