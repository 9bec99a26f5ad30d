import { describe, expect, it } from 'vitest';
import { encodeAll } from '../../core/encodings/index.ts';
import { unitAreaScales } from '../../core/encodings/layout.ts';
import { ValidationError } from '../../core/errors.ts';
import { createLut, lutFromJSON, lutLayout, resolutionBuckets } from '../../core/predictor/lut.ts';
import { createRidge, dualRidge, ridgeFromJSON, solveSpd } from '../../core/predictor/ridge.ts';
import {
  fitStandardiser,
  parseStandardiser,
  standardise,
} from '../../core/predictor/standardise.ts';
import type { Matrix } from '../../core/predictor/types.ts';
import { createRng, type Rng } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';

function randomMatrix(rows: number, cols: number, rng: Rng): Matrix {
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = rng.normal() * 3 + 1;
  return { rows, cols, data };
}

function linear(x: Matrix, weights: readonly number[], bias: number): Float64Array {
  const out = new Float64Array(x.rows);
  for (let i = 0; i < x.rows; i++) {
    let sum = bias;
    for (let j = 0; j < x.cols; j++)
      sum += (x.data[i * x.cols + j] as number) * (weights[j] as number);
    out[i] = sum;
  }
  return out;
}

describe('standardiser', () => {
  it('centres and scales each column; a constant column maps to 0', () => {
    const x: Matrix = { rows: 4, cols: 2, data: Float64Array.from([1, 5, 2, 5, 3, 5, 4, 5]) };
    const s = fitStandardiser(x);
    expect(s.means).toEqual([2.5, 5]);
    expect(s.scales[0]).toBeCloseTo(Math.sqrt(1.25), 12);
    expect(s.scales[1]).toBe(1);
    const z = standardise(s, x);
    expect(Array.from(z.data.filter((_, i) => i % 2 === 1))).toEqual([0, 0, 0, 0]);
    expect(z.data[0]).toBeCloseTo(-1.5 / Math.sqrt(1.25), 12);
    expect(parseStandardiser(JSON.parse(JSON.stringify(s)))).toEqual(s);
    expect(() => standardise(s, { rows: 1, cols: 3, data: new Float64Array(3) })).toThrow(
      /has 3 columns but the standardiser was fitted on 2/,
    );
    expect(() => parseStandardiser({ means: [0], scales: [0] })).toThrow(ValidationError);
  });
});

describe('ridge', () => {
  it('recovers a known linear function of the features (linear target)', async () => {
    const rng = createRng(1);
    const weights = [2, -1, 0.5, 0, 3];
    const x = randomMatrix(300, weights.length, rng);
    const y = linear(x, weights, 100);
    const model = createRidge({ target: 'linear', lambda: 0 });
    await model.fit(x, y);
    const test = randomMatrix(50, weights.length, rng);
    const predicted = await model.predict(test);
    const expected = linear(test, weights, 100);
    predicted.forEach((p, i) => {
      expect(p).toBeCloseTo(expected[i] as number, 6);
    });
  });

  it('recovers a log-linear function with the log target and picks it under auto', async () => {
    const rng = createRng(2);
    const weights = [0.2, -0.1, 0.05];
    const x = randomMatrix(400, weights.length, rng);
    const y = linear(x, weights, 2).map(Math.exp);
    const model = createRidge();
    await model.fit(x, y);
    expect(model.target).toBe('log');
    expect(model.lambda).toBeLessThanOrEqual(1e-3);
    const test = randomMatrix(50, weights.length, rng);
    const expected = linear(test, weights, 2).map(Math.exp);
    const predicted = await model.predict(test);
    predicted.forEach((p, i) => {
      expect(p / (expected[i] as number)).toBeCloseTo(1, 4);
    });
  });

  it('chooses a larger penalty when features are mostly noise', async () => {
    const rng = createRng(3);
    const x = randomMatrix(60, 40, rng);
    // Only the first feature matters; the target is noisy.
    const y = Float64Array.from(
      { length: 60 },
      (_, i) => 50 + (x.data[i * 40] as number) + 5 * rng.normal(),
    );
    const model = createRidge({ target: 'linear' });
    await model.fit(x, y);
    expect(model.lambda).toBeGreaterThanOrEqual(0.1);
  });

  it('survives a JSON round trip with identical predictions', async () => {
    const rng = createRng(4);
    const x = randomMatrix(100, 6, rng);
    const y = linear(x, [1, 2, 3, 4, 5, 6], 80);
    const model = createRidge();
    await model.fit(x, y);
    const restored = ridgeFromJSON(JSON.parse(JSON.stringify(model.toJSON())));
    expect(Array.from(await restored.predict(x))).toEqual(Array.from(await model.predict(x)));
    expect(() => ridgeFromJSON({ kind: 'ridge' })).toThrow(ValidationError);
  });

  it('keeps a robust relative fit through a JSON round trip (stored as a linear target)', async () => {
    const rng = createRng(6);
    const x = randomMatrix(40, 4, rng);
    const y = linear(x, [1, 2, 3, 4], 80).map((v, i) => (i === 5 ? 3 * v : v));
    const model = createRidge({ robust: true, target: 'linear' });
    await model.fit(x, y);
    expect(model.loss).toBe('huber-relative');
    const json = JSON.parse(JSON.stringify(model.toJSON()));
    expect(json).toMatchObject({ target: 'linear', loss: 'huber-relative' });
    const restored = ridgeFromJSON(json);
    expect(restored.loss).toBe('huber-relative');
    expect(Array.from(await restored.predict(x))).toEqual(Array.from(await model.predict(x)));
    // The tripled row does not pull the fit: the other rows are matched almost exactly.
    const p = await model.predict(x);
    const worst = Math.max(
      ...Array.from(p, (v, i) => (i === 5 ? 0 : Math.abs(v / (y[i] as number) - 1))),
    );
    expect(worst).toBeLessThan(0.01);
  });

  it('solves wide systems exactly (4-row Gram passes and the unrolled Cholesky, remainders included)', async () => {
    const rng = createRng(7);
    const weights = Array.from({ length: 31 }, (_, j) => (j % 5) - 2 + 0.1 * j);
    const x = randomMatrix(301, weights.length, rng);
    const y = linear(x, weights, 500);
    const model = createRidge({ target: 'linear', lambda: 0 });
    await model.fit(x, y);
    const test = randomMatrix(20, weights.length, rng);
    const expected = linear(test, weights, 500);
    (await model.predict(test)).forEach((p, i) => {
      expect(p).toBeCloseTo(expected[i] as number, 6);
    });
  });

  it('solves fewer rows than columns in the dual form with the primal coefficients', () => {
    const rng = createRng(9);
    const z = randomMatrix(40, 70, rng);
    const y = Float64Array.from({ length: z.rows }, () => rng.normal() * 5 + 20);
    const rows = Int32Array.from({ length: 31 }, (_, i) => i + (i >= 12 ? 9 : 0));
    // Small scales let a column grow freely (auto's physics columns in ridge-both).
    const scaled = Array.from({ length: z.cols }, (_, j) => (j < 10 ? 1e-3 : 1));
    for (const scales of [undefined, scaled]) {
      for (const lambda of [1e-6, 1e-4, 0.1, 10]) {
        // The primal system, written out: [Z 1]^T [Z 1] + diag(penalty, 0) over the rows.
        const p = z.cols + 1;
        const a = new Float64Array(p * p);
        const b = new Float64Array(p);
        for (const r of rows) {
          const v = [...z.data.subarray(r * z.cols, (r + 1) * z.cols), 1];
          for (let i = 0; i < p; i++) {
            b[i] = (b[i] as number) + (v[i] as number) * (y[r] as number);
            for (let j = 0; j < p; j++) {
              a[i * p + j] = (a[i * p + j] as number) + (v[i] as number) * (v[j] as number);
            }
          }
        }
        for (let j = 0; j < z.cols; j++) {
          a[j * p + j] = (a[j * p + j] as number) + lambda * rows.length * (scales?.[j] ?? 1);
        }
        const primal = solveSpd(a, b, p);
        // Act
        const dual = dualRidge(z, rows, scales)(lambda)(y);
        // Assess
        const size = Math.max(...primal.map(Math.abs));
        const worst = Math.max(...dual.map((c, j) => Math.abs(c - (primal[j] as number))));
        const label = `lambda ${lambda} scales ${scales ? 'some' : 'none'}`;
        // (rounding: at lambda 1e-6 the system's condition is near 1e9 either way)
        expect(worst / size, label).toBeLessThan(lambda < 1e-4 ? 1e-7 : 1e-9);
      }
    }
    // A column all but unpenalised (the floor of the primal form) is left to the primal form.
    const free = scaled.map((s, j) => (j === 0 ? 0 : s));
    expect(() => dualRidge(z, rows, free)(0.1)).toThrow(/primal form/);
    expect(() => dualRidge(z, rows)(0)).toThrow(/primal form/);
  });

  it('skips the residual cross-validation only when told and nothing is left to choose', async () => {
    const rng = createRng(8);
    const x = randomMatrix(80, 5, rng);
    const y = linear(x, [1, -2, 3, 0.5, 1], 60).map((v) => v + rng.normal());
    const cv = createRidge({ target: 'linear', lambda: 0.01 });
    const inSample = createRidge({ target: 'linear', lambda: 0.01, uncertainty: 'in-sample' });
    await cv.fit(x, y);
    await inSample.fit(x, y);
    // The same coefficients; the uncertainty is the doubled in-sample relative RMS.
    expect(inSample.toJSON().weights).toEqual(cv.toJSON().weights);
    const p = await inSample.predict(x);
    const rms = Math.sqrt(
      Array.from(p).reduce((s, v, i) => s + (v / (y[i] as number) - 1) ** 2, 0) / x.rows,
    );
    expect(inSample.toJSON().rel_std).toBeCloseTo(2 * rms, 12);
    expect(cv.toJSON().rel_std).not.toBeCloseTo(2 * rms, 6);
    // With a penalty to choose, cross-validation runs anyway and chooses the same one.
    const chosen = createRidge({ target: 'linear', uncertainty: 'in-sample' });
    const reference = createRidge({ target: 'linear' });
    await chosen.fit(x, y);
    await reference.fit(x, y);
    expect(chosen.toJSON()).toEqual(reference.toJSON());
  });

  it('rejects non-positive latencies and predict before fit', async () => {
    const x = randomMatrix(3, 2, createRng(5));
    await expect(createRidge().fit(x, Float64Array.from([1, 0, 2]))).rejects.toThrow(
      /latencyMs\[1\]/,
    );
    await expect(createRidge().predict(x)).rejects.toThrow(/before fit/);
  });
});

describe('lookup table', () => {
  const space = getSpace('mobilenetv3');

  it('splits resolutions into contiguous buckets of near-equal size', () => {
    const buckets = resolutionBuckets(space, 4);
    expect(buckets.map((b) => [b.lo, b.hi])).toEqual([
      [128, 148],
      [152, 172],
      [176, 196],
      [200, 224],
    ]);
    expect(buckets[0]?.ref).toBeCloseTo((128 + 148) / 2, 12);
    expect(resolutionBuckets(space, 100)).toHaveLength(25);
  });

  it('writes area-scaled counts per unit into the bucket of the resolution', () => {
    const layout = lutLayout(space, { buckets: 2 });
    const areas = unitAreaScales(space);
    const units = space.units.length;
    for (const subnet of Array.from({ length: 20 }, (_, i) => randomSubnet(space, createRng(i)))) {
      const row = layout.encode(subnet);
      const b = layout.buckets.findIndex(
        (k) => subnet.resolution >= k.lo && subnet.resolution <= k.hi,
      );
      const bucket = layout.buckets[b] as { lo: number; hi: number; ref: number };
      const members = space.resolutions
        .map((r, i) => ({ r, i }))
        .filter(({ r }) => r >= bucket.lo && r <= bucket.hi);
      const ri = space.resolutions.indexOf(subnet.resolution);
      const prefix = `r${bucket.lo}-${bucket.hi}.`;
      subnet.units.forEach((unit, u) => {
        const mean =
          members.reduce((acc, { i }) => acc + (areas[i * units + u] as number), 0) /
          members.length;
        const expected = (unit.blocks.length * (areas[ri * units + u] as number)) / mean;
        const sum = layout.labels.reduce(
          (acc, label, i) => (label.startsWith(`${prefix}u${u}.`) ? acc + (row[i] as number) : acc),
          0,
        );
        expect(sum).toBeCloseTo(expected, 12);
      });
      layout.labels.forEach((label, i) => {
        if (!label.startsWith(prefix)) expect(row[i], label).toBe(label === 'overhead' ? 1 : 0);
      });
      expect(row[layout.labels.indexOf(`${prefix}stem_head`)]).toBeCloseTo(
        (subnet.resolution / bucket.ref) ** 2,
        12,
      );
    }
  });

  it('recovers known per-block costs from whole-network latencies', async () => {
    const rng = createRng(8);
    const layout = lutLayout(space, { buckets: 2 });
    // Ground truth: a cost per table entry, drawn at random; latency is the table sum.
    const truth = Float64Array.from(layout.labels, () => 0.2 + rng.next());
    const subnets = Array.from({ length: 2500 }, () => randomSubnet(space, rng));
    const x = encodeAll(layout, subnets);
    const y = linear(x, Array.from(truth), 0);
    const model = createLut({ lambda: 0 });
    await model.fit(x, y);
    const costs = model.costs as Float64Array;
    expect(costs.every((c) => c >= 0)).toBe(true);
    // Stem/head and first-block costs trade against each other (docs), so compare what is
    // identified: differences between entries of the same unit, section and bucket ...
    const groups = new Map<string, number[]>();
    layout.labels.forEach((label, i) => {
      const group = label.replace(/\.[^.]*=.*$/, '');
      if (group !== label) groups.set(group, [...(groups.get(group) ?? []), i]);
    });
    for (const [group, indices] of groups) {
      const [first, ...others] = indices as [number, ...number[]];
      for (const i of others) {
        const fitted = (costs[i] as number) - (costs[first] as number);
        expect(fitted, `${group}: ${layout.labels[i]}`).toBeCloseTo(
          (truth[i] as number) - (truth[first] as number),
          3,
        );
      }
    }
    // ... and predictions of unseen networks.
    const test = Array.from({ length: 200 }, () => randomSubnet(space, rng));
    const tx = encodeAll(layout, test);
    const predicted = await model.predict(tx);
    const expected = linear(tx, Array.from(truth), 0);
    predicted.forEach((p, i) => {
      expect(p / (expected[i] as number)).toBeCloseTo(1, 5);
    });
  });

  it('keeps costs non-negative and survives a JSON round trip', async () => {
    const rng = createRng(9);
    const layout = lutLayout(space, { buckets: 1 });
    const subnets = Array.from({ length: 300 }, () => randomSubnet(space, rng));
    const x = encodeAll(layout, subnets);
    // Noise unrelated to the blocks: about half of the unconstrained least-squares costs are
    // negative on this data.
    const y = Float64Array.from(subnets, (s) => 5 + 0.1 * s.units.length + Math.abs(rng.normal()));
    const model = createLut();
    await model.fit(x, y);
    expect((model.costs as Float64Array).every((c) => c >= 0)).toBe(true);
    const restored = lutFromJSON(JSON.parse(JSON.stringify(model.toJSON())));
    expect(Array.from(await restored.predict(x))).toEqual(Array.from(await model.predict(x)));
    await expect(restored.predict({ rows: 1, cols: 3, data: new Float64Array(3) })).rejects.toThrow(
      /use lutLayout rows/,
    );
  });
});
