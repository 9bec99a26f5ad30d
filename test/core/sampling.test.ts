import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../core/errors.ts';
import { createRng } from '../../core/rng.ts';
import {
  allocate,
  binOf,
  binsForRange,
  depthBins,
  extensionWeights,
  poolItem,
  randomDepthDistribution,
  sampleArchitectures,
  samplePool,
} from '../../core/sampling.ts';
import { densenet } from '../../core/spaces/densenet.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { resnet50 } from '../../core/spaces/resnet50.ts';
import {
  depth,
  depthRange,
  randomSubnet,
  subnetKey,
  subnetWithDepth,
} from '../../core/spaces/subnet.ts';
import type { SearchSpace } from '../../core/spaces/types.ts';

const histogram = (bins: ReturnType<typeof depthBins>, depths: number[]) => {
  const counts = bins.map(() => 0);
  for (const d of depths) counts[binOf(bins, d)] = (counts[binOf(bins, d)] ?? 0) + 1;
  return counts;
};

/** A tiny space: 2 units of depth 1..2 with a binary choice: few architectures per depth. */
const tiny: SearchSpace = {
  ...mobilenetv3,
  name: 'tiny',
  resolutions: [32],
  units: [0, 1].map((u) => ({
    name: `u${u}`,
    minDepth: 1,
    maxDepth: 2,
    blockChoices: [
      { name: 'kernel', values: [3, 5] },
      { name: 'expand', values: [1] },
    ],
    unitChoices: [],
  })),
};

describe('depth bins', () => {
  it('covers the depth range with contiguous bins and spreads the wider ones', () => {
    // 27 depths in 10 bins: seven bins of 3 depths and three of 2, interleaved.
    const bins = depthBins(densenet, 10);
    expect(bins[0]?.lo).toBe(8);
    expect(bins[9]?.hi).toBe(34);
    for (let i = 1; i < bins.length; i++) expect(bins[i]?.lo).toBe((bins[i - 1]?.hi ?? 0) + 1);
    const widths = bins.map((b) => b.hi - b.lo + 1);
    // Bin i starts at 8 + floor(27 i / 10): 0, 2, 5, 8, 10, 13, 16, 18, 21, 24.
    expect(widths).toEqual([2, 3, 3, 2, 3, 3, 2, 3, 3, 3]);
  });

  it('caps the number of bins at the number of depths', () => {
    expect(depthBins(resnet50, 10)).toHaveLength(9);
    expect(binsForRange({ min: 10, max: 20 }, 10).map((b) => [b.lo, b.hi])[0]).toEqual([10, 10]);
    expect(() => depthBins(resnet50, 0)).toThrow(ValidationError);
  });

  it('finds the bin of a depth and rejects depths outside', () => {
    const bins = depthBins(mobilenetv3, 5);
    expect(binOf(bins, 10)).toBe(0);
    expect(binOf(bins, 20)).toBe(4);
    expect(() => binOf(bins, 21)).toThrow(/depth: depth 21 is outside the bins \(10..20\)/);
  });
});

describe('sampleArchitectures', () => {
  it('balanced gives every bin the same count, the remainder spread one each', () => {
    const bins = depthBins(densenet, 10);
    const subnets = sampleArchitectures(densenet, {
      n: 503,
      strategy: 'balanced',
      bins,
      rng: createRng(1),
    });
    const counts = histogram(bins, subnets.map(depth));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(503);
    for (const c of counts) expect([50, 51]).toContain(c);
    expect(counts.filter((c) => c === 51)).toHaveLength(3);
  });

  it('random gives a bell-shaped depth histogram', () => {
    const bins = depthBins(mobilenetv3, 11);
    const subnets = sampleArchitectures(mobilenetv3, {
      n: 2000,
      strategy: 'random',
      bins,
      rng: createRng(2),
    });
    const counts = histogram(bins, subnets.map(depth));
    // Depth 15 has probability 51/243 (0.21), depths 10 and 20 have 1/243 each.
    expect(counts[5]).toBeGreaterThan(10 * ((counts[0] ?? 0) + (counts[10] ?? 0)));
    expect(counts[5]).toBeGreaterThan(counts[3] ?? 0);
    expect(counts[3]).toBeGreaterThan(counts[1] ?? 0);
  });

  it('returns no duplicates and nothing from the exclude set', () => {
    const rng = createRng(3);
    const exclude = new Set<string>();
    // Depth 2 of the tiny space has only 4 architectures: make collisions certain.
    const first = sampleArchitectures(tiny, {
      n: 6,
      strategy: 'balanced',
      bins: depthBins(tiny, 3),
      rng,
    });
    for (const s of first) exclude.add(subnetKey(s));
    expect(exclude.size).toBe(6);
    const second = sampleArchitectures(tiny, {
      n: 10,
      strategy: 'random',
      bins: depthBins(tiny, 3),
      rng,
      exclude,
    });
    const keys = second.map(subnetKey);
    expect(new Set(keys).size).toBe(10);
    for (const k of keys) expect(exclude.has(k)).toBe(false);
  });

  it('fails with a clear error when a bin is exhausted', () => {
    // Depth 2 (both units of depth 1) has 2 x 2 = 4 architectures.
    const bins = depthBins(tiny, 3);
    expect(() =>
      sampleArchitectures(tiny, {
        n: 15,
        strategy: 'balanced',
        bins,
        rng: createRng(4),
        maxTries: 200,
      }),
    ).toThrow(/n: no unmeasured architecture left in depth bin 2..2 of space tiny/);
  });

  it('follows bin weights in the extension step', () => {
    const bins = depthBins(mobilenetv3, 4);
    const weights = extensionWeights([true, false, false, true], 3);
    expect(weights).toEqual([1, 3, 3, 1]);
    for (const strategy of ['balanced', 'random'] as const) {
      const subnets = sampleArchitectures(mobilenetv3, {
        n: 80,
        strategy,
        bins,
        rng: createRng(5),
        binWeights: weights,
      });
      expect(histogram(bins, subnets.map(depth))).toEqual([10, 30, 30, 10]);
    }
  });

  it('is reproducible from the seed', () => {
    const run = (seed: number) =>
      sampleArchitectures(resnet50, { n: 20, strategy: 'balanced', rng: createRng(seed) }).map(
        subnetKey,
      );
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
  });

  it('rejects bad options by name', () => {
    const rng = createRng(6);
    expect(() => sampleArchitectures(resnet50, { n: -1, strategy: 'random', rng })).toThrow(/^n: /);
    expect(() =>
      sampleArchitectures(resnet50, { n: 1, strategy: 'uniform' as 'random', rng }),
    ).toThrow('strategy: got "uniform", allowed values are random, balanced');
    expect(() =>
      sampleArchitectures(resnet50, { n: 1, strategy: 'balanced', rng, binWeights: [1, 2] }),
    ).toThrow(/binWeights: expected one weight per bin \(9\), got 2/);
  });
});

describe('subnetWithDepth', () => {
  it('is uniform over the configurations of the depth, not over unit splits', () => {
    // Unit a: 2 settings per block, unit b: 8. Depth 3 as (2,1): 4 x 8 = 32 networks;
    // as (1,2): 2 x 64 = 128 networks, so a has one block 80 % of the time.
    const skewed: SearchSpace = {
      ...tiny,
      units: [2, 8].map((k, u) => ({
        name: `u${u}`,
        minDepth: 1,
        maxDepth: 2,
        blockChoices: [
          { name: 'kernel', values: Array.from({ length: k }, (_, i) => 2 * i + 1) },
          { name: 'expand', values: [1] },
        ],
        unitChoices: [],
      })),
    };
    const rng = createRng(12);
    let aShort = 0;
    for (let i = 0; i < 2000; i++) {
      if (subnetWithDepth(skewed, 3, rng).units[0]?.blocks.length === 1) aShort += 1;
    }
    expect(aShort / 2000).toBeGreaterThan(0.76);
    expect(aShort / 2000).toBeLessThan(0.84);
  });
});

describe('helpers', () => {
  it('allocate splits proportionally and hands the remainder to the largest fractions', () => {
    expect(allocate(10, [1, 3, 1], createRng(1))).toEqual([2, 6, 2]);
    expect(allocate(7, [2, 1], createRng(1))).toEqual([5, 2]);
    const spread = new Array(4).fill(0);
    for (let seed = 0; seed < 400; seed++) {
      allocate(1, [1, 1, 1, 1], createRng(seed)).forEach((c, i) => {
        spread[i] += c;
      });
    }
    for (const c of spread) expect(c).toBeGreaterThan(60);
  });

  it('randomDepthDistribution is the convolution of uniform unit depths', () => {
    const dist = randomDepthDistribution(mobilenetv3);
    expect(dist).toHaveLength(11);
    expect(dist.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(dist[0]).toBeCloseTo(1 / 243, 12);
    expect(dist[5]).toBeCloseTo(51 / 243, 12);
  });
});

describe('samplePool', () => {
  // A pool drawn at random, so its extreme depths are rare: the replay situation.
  const rng = createRng(11);
  const pool = Array.from({ length: 600 }, (_, id) =>
    poolItem(randomSubnet(mobilenetv3, rng), { id }),
  );
  const bins = depthBins(mobilenetv3, 5);

  it('balanced takes equal counts per bin when the pool allows', () => {
    const picked = samplePool(pool, { n: 50, strategy: 'balanced', bins, rng: createRng(1) });
    expect(
      histogram(
        bins,
        picked.map((p) => p.depth),
      ),
    ).toEqual([10, 10, 10, 10, 10]);
    expect(new Set(picked.map((p) => p.id)).size).toBe(50);
  });

  it('gives a short bin`s shortfall to the others and never repeats or reuses', () => {
    const sizes = histogram(
      bins,
      pool.map((p) => p.depth),
    );
    const n = 5 * ((sizes[0] ?? 0) + 5);
    const exclude = new Set([pool[0]?.key as string]);
    const picked = samplePool(pool, { n, strategy: 'balanced', bins, rng: createRng(2), exclude });
    const counts = histogram(
      bins,
      picked.map((p) => p.depth),
    );
    expect(picked).toHaveLength(n);
    expect(counts[0]).toBe((sizes[0] as number) - (binOf(bins, pool[0]?.depth ?? 0) === 0 ? 1 : 0));
    expect(new Set(picked.map((p) => p.key)).size).toBe(n);
    expect(picked.some((p) => p.key === pool[0]?.key)).toBe(false);
  });

  it('fails when the pool has fewer unused items than requested', () => {
    const exclude = new Set(pool.slice(0, 100).map((p) => p.key));
    expect(() =>
      samplePool(pool, { n: 550, strategy: 'random', bins, rng: createRng(3), exclude }),
    ).toThrow(/n: the pool has \d+ unused architectures, fewer than the 550 requested/);
  });

  it('respects bin weights', () => {
    const picked = samplePool(pool, {
      n: 40,
      strategy: 'random',
      bins,
      rng: createRng(4),
      binWeights: [1, 1, 6, 1, 1],
    });
    expect(
      histogram(
        bins,
        picked.map((p) => p.depth),
      ),
    ).toEqual([4, 4, 24, 4, 4]);
  });

  it('keeps depth within range for every space', () => {
    for (const space of [resnet50, densenet]) {
      const range = depthRange(space);
      const s = sampleArchitectures(space, { n: 30, strategy: 'balanced', rng: createRng(9) });
      for (const x of s) {
        expect(depth(x)).toBeGreaterThanOrEqual(range.min);
        expect(depth(x)).toBeLessThanOrEqual(range.max);
      }
    }
  });
});
