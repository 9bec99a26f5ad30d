import { describe, expect, it } from 'vitest';
import { bootstrapUncertainty } from '../../core/active.ts';
import { createEncoder, encodeAll } from '../../core/encodings/index.ts';
import { type Candidate, planActiveExtension, planExtension } from '../../core/loop.ts';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { createRng } from '../../core/rng.ts';
import { binOf, depthBins, selectActive } from '../../core/sampling.ts';
import { runParams } from '../../core/schemas/run.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import {
  depth,
  depthRange,
  randomSubnet,
  subnetKey,
  subnetWithDepth,
} from '../../core/spaces/subnet.ts';

const bins = depthBins(mobilenetv3, 5);

function pool(n: number, seed: number) {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => {
    const subnet = randomSubnet(mobilenetv3, rng);
    return {
      arch: mobilenetv3.toNative(subnet) as unknown as Record<string, unknown>,
      key: subnetKey(subnet),
      depth: depth(subnet),
      subnet,
      score: rng.next(),
    };
  });
}

describe('selectActive (core/sampling.ts)', () => {
  it('picks the most uncertain candidates of every bin, in the requested counts', () => {
    const items = pool(400, 1);
    const counts = [2, 3, 0, 4, 1];
    const picked = selectActive(items, {
      bins,
      counts,
      rng: createRng(2),
      uncertainty: (xs) => xs.map((x) => x.score),
    });
    expect(picked).toHaveLength(10);
    counts.forEach((count, b) => {
      const inBin = items.filter((x) => binOf(bins, x.depth) === b);
      const chosen = picked.filter((x) => binOf(bins, x.depth) === b);
      expect(chosen).toHaveLength(count);
      const best = [...inBin].sort((p, q) => q.score - p.score).slice(0, count);
      expect(new Set(chosen.map((x) => x.key))).toEqual(new Set(best.map((x) => x.key)));
    });
  });

  it("skips excluded keys, gives a short bin's picks to the most uncertain elsewhere, and says when candidates run out", () => {
    const items = pool(200, 3);
    const lastBin = items.filter((x) => binOf(bins, x.depth) === 4);
    const top = [...items].sort((p, q) => q.score - p.score)[0];
    const exclude = new Set([top?.key as string]);
    const counts = [0, 0, 0, 0, lastBin.length + 3];
    const picked = selectActive(items, {
      bins,
      counts,
      rng: createRng(4),
      exclude,
      uncertainty: (xs) => xs.map((x) => x.score),
    });
    expect(picked).toHaveLength(lastBin.length + 3);
    expect(picked.some((x) => x.key === top?.key)).toBe(false);
    expect(() =>
      selectActive(items.slice(0, 5), {
        bins,
        counts: [10, 0, 0, 0, 0],
        rng: createRng(5),
        uncertainty: (xs) => xs.map(() => 1),
      }),
    ).toThrow(/only 5 unmeasured candidates for 10 active picks/);
    expect(() =>
      selectActive(items, { bins, counts: [1], rng: createRng(5), uncertainty: () => [] }),
    ).toThrow(/one count per bin/);
  });
});

describe('bootstrapUncertainty (core/active.ts)', () => {
  it('is larger for architectures unlike the training rows', async () => {
    const encoder = createEncoder(mobilenetv3, 'fcc');
    const rng = createRng(6);
    const { min, max } = depthRange(mobilenetv3);
    const shallow = Array.from({ length: 40 }, () =>
      subnetWithDepth(mobilenetv3, min + rng.int(3), rng),
    );
    const y = Float64Array.from(shallow, (s) =>
      syntheticLatencyMs(mobilenetv3, s, { noise: 0.01, rng }),
    );
    const uncertainty = await bootstrapUncertainty(encodeAll(encoder, shallow), y, {
      rng: createRng(7),
    });
    const like = Array.from({ length: 30 }, () =>
      subnetWithDepth(mobilenetv3, min + rng.int(3), rng),
    );
    const unlike = Array.from({ length: 30 }, () => subnetWithDepth(mobilenetv3, max, rng));
    const mean = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => a + b, 0) / xs.length;
    const u1 = mean(await uncertainty(encodeAll(encoder, like)));
    const u2 = mean(await uncertainty(encodeAll(encoder, unlike)));
    expect(u1).toBeGreaterThan(0);
    expect(u2).toBeGreaterThan(1.2 * u1);
  });
});

describe('planActiveExtension (core/loop.ts)', () => {
  const params = runParams.parse({
    space: 'mobilenetv3',
    device: 'local',
    sampling: 'active',
    nStep: 40,
    bins: 5,
  });

  it('keeps the balanced test share and picks the training share by uncertainty, per bin', async () => {
    const items = pool(1500, 8);
    const score = new Map(items.map((x) => [x.key, x.score]));
    const exclude = new Set(items.slice(0, 100).map((x) => x.key));
    const options = {
      source: { kind: 'pool' as const, pool: items, space: mobilenetv3 },
      params,
      bins,
      iteration: 2,
      exclude,
      binWeights: [3, 1, 1, 1, 3],
    };
    const batch = await planActiveExtension({
      ...options,
      rng: createRng(9),
      uncertainty: async (cs: readonly Candidate[]) => cs.map((c) => score.get(c.key) as number),
    });
    const balanced = planExtension({
      ...options,
      params: { ...params, sampling: 'balanced' },
      rng: createRng(9),
    });

    expect(batch).toHaveLength(40);
    expect(new Set(batch.map((s) => s.id)).size).toBe(40);
    expect(new Set(batch.map((s) => s.key)).size).toBe(40);
    expect(batch.some((s) => exclude.has(s.key))).toBe(false);
    // Same test share and per-bin counts as the balanced plan drawn from the same seed.
    expect(batch.filter((s) => s.split === 'test').map((s) => s.key)).toEqual(
      balanced.filter((s) => s.split === 'test').map((s) => s.key),
    );
    for (let b = 0; b < bins.length; b++) {
      const train = batch.filter((s) => s.split === 'train' && s.bin === b);
      expect(train).toHaveLength(balanced.filter((s) => s.split === 'train' && s.bin === b).length);
      // Every training pick is at least as uncertain as any unpicked candidate of its bin.
      const taken = new Set(batch.map((s) => s.key));
      const others = items.filter(
        (x) => binOf(bins, x.depth) === b && !taken.has(x.key) && !exclude.has(x.key),
      );
      const lowest = Math.min(...train.map((s) => score.get(s.key) as number));
      if (train.length > 0)
        expect(Math.max(...others.map((x) => x.score))).toBeLessThanOrEqual(lowest);
    }
  });

  it('draws its candidates from the space when there is no pool, and planExtension refuses active', async () => {
    const batch = await planActiveExtension({
      source: { kind: 'space', space: mobilenetv3 },
      params,
      bins,
      iteration: 1,
      rng: createRng(10),
      binWeights: [1, 1, 1, 1, 1],
      activePool: 5,
      uncertainty: async (cs) => cs.map((c) => c.depth),
    });
    expect(batch).toHaveLength(40);
    expect(() =>
      planExtension({
        source: { kind: 'space', space: mobilenetv3 },
        params,
        bins,
        iteration: 1,
        rng: createRng(10),
        binWeights: [1, 1, 1, 1, 1],
      }),
    ).toThrow(/planActiveExtension/);
  });
});
