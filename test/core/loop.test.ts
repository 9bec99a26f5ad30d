import { describe, expect, it } from 'vitest';
import {
  assignSplits,
  batchBinWeights,
  binCounts,
  type Candidate,
  decide,
  iterationSeed,
  planExtension,
  planInitialBatch,
  randomBinMass,
  summariseIteration,
} from '../../core/loop.ts';
import { createRng } from '../../core/rng.ts';
import { depthBins, poolItem, poolLeft } from '../../core/sampling.ts';
import { runParams } from '../../core/schemas/run.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { randomSubnet, subnetWithDepth } from '../../core/spaces/subnet.ts';

const params = runParams.parse({ space: 'mobilenetv3', device: 'local' });
const bins = depthBins(mobilenetv3, 5);

describe('assignSplits', () => {
  it('holds out the test fraction inside every bin', () => {
    const candidates: Candidate[] = [];
    for (let d = 10; d <= 20; d++) {
      for (let i = 0; i < 40; i++) candidates.push({ arch: {}, key: `${d}-${i}`, depth: d });
    }
    const planned = assignSplits(candidates, {
      bins,
      testFraction: 0.25,
      iteration: 2,
      rng: createRng(1),
    });
    const counts = binCounts(planned, bins);
    for (const c of counts) {
      const total = c.train + c.test;
      expect(c.test).toBeGreaterThanOrEqual(Math.floor(total * 0.25));
      expect(c.test).toBeLessThanOrEqual(Math.ceil(total * 0.25));
    }
    expect(planned.every((p) => p.iteration === 2 && p.id.startsWith('i2-'))).toBe(true);
    expect(new Set(planned.map((p) => p.id)).size).toBe(planned.length);
  });

  it('rounds small bins stochastically so the expected test share is kept', () => {
    const candidates: Candidate[] = [{ arch: {}, key: 'a', depth: 12 }];
    let tests = 0;
    for (let seed = 0; seed < 400; seed++) {
      const [p] = assignSplits(candidates, {
        bins,
        testFraction: 0.2,
        iteration: 0,
        rng: createRng(seed),
      });
      if (p?.split === 'test') tests++;
    }
    expect(tests / 400).toBeGreaterThan(0.13);
    expect(tests / 400).toBeLessThan(0.27);
  });
});

describe('planInitialBatch and planExtension', () => {
  it('balanced initial batch fills every bin equally and is reproducible', () => {
    const plan = () =>
      planInitialBatch({
        source: { kind: 'space', space: mobilenetv3 },
        params: { ...params, nInit: 100 },
        bins,
        rng: createRng(iterationSeed(7, 0)),
      });
    const a = plan();
    expect(a).toHaveLength(100);
    const perBin = binCounts(a, bins).map((c) => c.train + c.test);
    expect(perBin).toEqual([20, 20, 20, 20, 20]);
    expect(plan()).toEqual(a);
    for (const p of a) expect(mobilenetv3.parse(p.arch)).toBeTruthy();
  });

  it('extension favours failing bins and never repeats a measured architecture', () => {
    const first = planInitialBatch({
      source: { kind: 'space', space: mobilenetv3 },
      params: { ...params, nInit: 50 },
      bins,
      rng: createRng(1),
    });
    const exclude = new Set(first.map((p) => p.key));
    const next = planExtension({
      source: { kind: 'space', space: mobilenetv3 },
      params: { ...params, nStep: 60 },
      bins,
      iteration: 1,
      rng: createRng(2),
      exclude,
      binWeights: [1, 1, 4, 1, 1],
    });
    expect(next).toHaveLength(60);
    const perBin = binCounts(next, bins).map((c) => c.train + c.test);
    expect(perBin[2]).toBe(30);
    expect(next.some((p) => exclude.has(p.key))).toBe(false);
  });

  it('draws from a pool when replaying a dataset', () => {
    const rng = createRng(3);
    const pool = Array.from({ length: 300 }, () => {
      const s = randomSubnet(mobilenetv3, rng);
      return poolItem(s, { arch: mobilenetv3.toNative(s) as unknown as Record<string, unknown> });
    });
    const keys = new Set(pool.map((p) => p.key));
    const batch = planInitialBatch({
      source: { kind: 'pool', pool, space: mobilenetv3 },
      params: { ...params, nInit: 40 },
      bins,
      rng: createRng(4),
    });
    expect(batch).toHaveLength(40);
    expect(batch.every((b) => keys.has(b.key))).toBe(true);
  });

  it('draws what is left of a pool in its last extension, and refuses a first batch larger than the pool', () => {
    const rng = createRng(5);
    const pool = Array.from({ length: 60 }, () => {
      const s = randomSubnet(mobilenetv3, rng);
      return poolItem(s, { arch: mobilenetv3.toNative(s) as unknown as Record<string, unknown> });
    });
    const source = { kind: 'pool', pool, space: mobilenetv3 } as const;
    const first = planInitialBatch({ source, params: { ...params, nInit: 40 }, bins, rng });
    const exclude = new Set(first.map((p) => p.key));
    expect(poolLeft(pool, exclude)).toBe(20);
    const last = planExtension({
      source,
      params: { ...params, nStep: 50 },
      bins,
      iteration: 1,
      rng,
      exclude,
      binWeights: [1, 1, 1, 1, 1],
    });
    expect(last).toHaveLength(20);
    expect(poolLeft(pool, new Set([...exclude, ...last.map((p) => p.key)]))).toBe(0);
    expect(() => planInitialBatch({ source, params: { ...params, nInit: 61 }, bins, rng })).toThrow(
      /^nInit: the pool has 60 architectures, fewer than the first batch of 61/,
    );
  });
});

describe('batchBinWeights', () => {
  it('keeps the bell-shaped depth distribution for random sampling, even from a balanced pool', () => {
    const mass = randomBinMass(mobilenetv3, bins);
    expect(mass.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 10);
    // Middle depths are far more likely than the extremes under uniform per-unit depths.
    expect(mass[2]).toBeGreaterThan(3 * (mass[0] as number));
    const weights = batchBinWeights(mobilenetv3, { sampling: 'random' }, bins, [1, 1, 1, 1, 3]);
    expect(weights?.[4]).toBeCloseTo(3 * (mass[4] as number), 12);
    expect(batchBinWeights(mobilenetv3, { sampling: 'balanced' }, bins)).toBeUndefined();

    const rng = createRng(8);
    const pool = Array.from({ length: 2000 }, (_, i) => {
      const s = subnetWithDepth(mobilenetv3, 10 + (i % 11), rng);
      return poolItem(s, { arch: mobilenetv3.toNative(s) as unknown as Record<string, unknown> });
    });
    const batch = planInitialBatch({
      source: { kind: 'pool', pool, space: mobilenetv3 },
      params: { ...params, sampling: 'random', nInit: 200 },
      bins,
      rng,
    });
    const perBin = binCounts(batch, bins).map((c) => c.train + c.test);
    perBin.forEach((n, b) => {
      expect(Math.abs(n - 200 * (mass[b] as number))).toBeLessThanOrEqual(1);
    });
  });
});

describe('decide', () => {
  const base = { accTh: 0.9, iteration: 0, maxIter: 3, w1: 5 };
  it('converges only when every bin reaches the threshold', () => {
    expect(decide({ ...base, binAccuracies: [0.95, 0.91, 0.9] })).toMatchObject({
      converged: true,
      stop: true,
      reason: 'converged',
    });
    const d = decide({ ...base, binAccuracies: [0.95, 0.85, null] });
    expect(d).toMatchObject({ converged: false, stop: false, reason: null });
    expect(d.binWeights).toEqual([1, 5, 5]);
  });
  it('fails a bin judged on fewer than minTest test samples', () => {
    const d = decide({
      ...base,
      binAccuracies: [0.95, 0.99, 0.93],
      binTestCounts: [10, 1, 4],
      minTest: 3,
    });
    expect(d).toMatchObject({ converged: false, stop: false });
    expect(d.binWeights).toEqual([1, 5, 1]);
    expect(
      decide({ ...base, binAccuracies: [0.95, 0.99, 0.93], binTestCounts: [10, 3, 4], minTest: 3 })
        .converged,
    ).toBe(true);
  });
  it('stops at max iterations', () => {
    expect(decide({ ...base, iteration: 2, binAccuracies: [0.5, 0.5, 0.5] })).toMatchObject({
      converged: false,
      stop: true,
      reason: 'max-iter',
      binWeights: [],
    });
  });
  it('stops a replay whose pool is used up, before max-iter, unless it converged', () => {
    const failing = { ...base, binAccuracies: [0.5, 0.5, 0.5] };
    expect(decide({ ...failing, poolLeft: 0 })).toMatchObject({
      converged: false,
      stop: true,
      reason: 'pool-exhausted',
      binWeights: [],
    });
    expect(decide({ ...failing, iteration: 2, poolLeft: 0 }).reason).toBe('pool-exhausted');
    expect(decide({ ...failing, poolLeft: 1 })).toMatchObject({ stop: false, reason: null });
    expect(decide({ ...base, binAccuracies: [0.95, 0.95, 0.95], poolLeft: 0 }).reason).toBe(
      'converged',
    );
  });
});

describe('summariseIteration', () => {
  it('reports per-bin accuracy on test samples only and the bin-balanced mean', () => {
    const samples = [
      { depth: 10, split: 'train' as const, latencyMs: 5 },
      { depth: 10, split: 'test' as const, latencyMs: 10 },
      { depth: 10, split: 'test' as const, latencyMs: 10 },
      { depth: 20, split: 'test' as const, latencyMs: 20 },
    ];
    const record = summariseIteration({
      iteration: 0,
      bins,
      samples,
      predictedTest: [9, 11, 20],
      params: { accTh: 0.95, maxIter: 2, w1: 2 },
      secondsMeasuring: 1,
      secondsTraining: 2,
      quality: { maxDrift: 0.01, remeasured: 0 },
      finishedAt: '2026-01-01T00:00:00Z',
    });
    expect(record.samples).toEqual({ train: 1, test: 3 });
    expect(record.bins[0]).toMatchObject({ train: 1, test: 2 });
    expect(record.bins[0]?.accuracy).toBeCloseTo(0.9, 10);
    expect(record.bins[4]).toMatchObject({ test: 1, accuracy: 1 });
    expect(record.bins[1]?.accuracy).toBeNull();
    expect(record.overall.binBalancedAccuracy).toBeCloseTo(0.95, 10);
    expect(record.overall.accuracy).toBeCloseTo((0.9 + 0.9 + 1) / 3, 10);
    expect(record.converged).toBe(false);
    expect(record.nextBinWeights).toEqual([2, 2, 2, 2, 1]);
  });
});
