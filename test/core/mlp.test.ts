import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../core/errors.ts';
import { fitPredictor } from '../../core/predictor/index.ts';
import { createMlp, predictWithState } from '../../core/predictor/mlp.ts';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import type { Matrix } from '../../core/predictor/types.ts';
import { createRng } from '../../core/rng.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';

/** A known latency-like function with interactions a linear model cannot represent. */
function knownFunction(n: number, seed: number): { x: Matrix; y: Float64Array } {
  const rng = createRng(seed);
  const cols = 6;
  const data = new Float64Array(n * cols);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = Array.from({ length: cols }, () => rng.next() * 2 - 1);
    data.set(v, i * cols);
    const [a, b, c, d] = v as [number, number, number, number];
    y[i] = 20 + 6 * a * b + 4 * c * c + 3 * Math.abs(d) + 2 * a;
  }
  return { x: { rows: n, cols, data }, y };
}

const accuracy = (predicted: Float64Array, measured: Float64Array) =>
  predicted.reduce(
    (sum, p, i) => sum + 1 - Math.abs(p - (measured[i] as number)) / (measured[i] as number),
    0,
  ) / predicted.length;

describe('MLP regressor', () => {
  it('learns a known non-linear function to > 99 % accuracy on held-out data, beyond its linear base', async () => {
    const train = knownFunction(600, 1);
    const test = knownFunction(500, 2);
    // Default 3 x 64 network; a higher rate and a cap on epochs keep the test to seconds.
    const mlp = createMlp({ seed: 3, learningRate: 0.01, batchSize: 64, maxEpochs: 100 });
    const linearOnly = createMlp({ seed: 3, ensemble: 0 });

    const report = await mlp.fit(train.x, train.y);
    await linearOnly.fit(train.x, train.y);

    const mlpAccuracy = accuracy(await mlp.predict(test.x), test.y);
    const linearAccuracy = accuracy(await linearOnly.predict(test.x), test.y);
    expect(mlpAccuracy).toBeGreaterThan(0.99);
    expect(mlpAccuracy).toBeGreaterThan(linearAccuracy + 0.02);
    expect(report.epochs).toBeGreaterThan(1);
  }, 180_000);

  it('does not lose to the ridge baseline on the same realistic data and split', async () => {
    const rng = createRng(21);
    const rows = Array.from({ length: 700 }, () => {
      const subnet = randomSubnet(mobilenetv3, rng);
      return { subnet, latencyMs: syntheticLatencyMs(mobilenetv3, subnet, { noise: 0.01, rng }) };
    });
    const common = {
      space: mobilenetv3,
      rows,
      train: 400,
      data: { file: 'synthetic', sha256: '0'.repeat(64) },
    };

    const mlp = await fitPredictor({ ...common, model: 'mlp' });
    const ridge = await fitPredictor({ ...common, model: 'ridge' });

    expect(mlp.test?.accuracy).toBeGreaterThanOrEqual((ridge.test?.accuracy as number) - 1e-3);
    expect(mlp.test?.accuracy).toBeGreaterThan(0.95);
  }, 120_000);

  it('gives the same predictor for the same data and seed, a different one for another seed', async () => {
    const { x, y } = knownFunction(200, 4);
    const options = { maxEpochs: 5, hidden: [16, 16] };
    const a = createMlp({ ...options, seed: 7 });
    const b = createMlp({ ...options, seed: 7 });
    const c = createMlp({ ...options, seed: 8 });
    await a.fit(x, y);
    await b.fit(x, y);
    await c.fit(x, y);

    const pa = await a.predict(x);
    expect(await b.predict(x)).toEqual(pa);
    expect(await c.predict(x)).not.toEqual(pa);
    expect(a.state.members[0]?.[0]?.weights).toEqual(b.state.members[0]?.[0]?.weights);
  });

  it('rejects bad training data with the field to fix', async () => {
    const { x, y } = knownFunction(20, 5);
    await expect(createMlp().fit(x, y.slice(0, 10))).rejects.toThrow(
      /latencyMs: has 10 values for 20 rows/,
    );
    const negative = Float64Array.from(y, (v, i) => (i === 3 ? -1 : v));
    await expect(createMlp().fit(x, negative)).rejects.toThrow(ValidationError);
    await expect(
      createMlp().fit({ ...x, rows: 4, data: x.data.subarray(0, 24) }, y.slice(0, 4)),
    ).rejects.toThrow(/at least 8 samples/);
    expect(() => createMlp().state).toThrow(/not trained yet/);
  });

  it('rejects inputs of the wrong width at prediction', async () => {
    const { x, y } = knownFunction(50, 6);
    const mlp = createMlp({ maxEpochs: 1 });
    await mlp.fit(x, y);
    expect(() =>
      predictWithState(mlp.state, { rows: 1, cols: 5, data: new Float64Array(5) }),
    ).toThrow(/expected 6 columns/);
  });
});
