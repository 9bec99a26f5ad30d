/**
 * Choosing which architectures to measure: the paper's `random` and `balanced` strategies,
 * weighting towards failing depth bins in the extension step, sampling without replacement
 * against what is already measured, and the same from a finite pool (a measured dataset) to
 * replay the loop offline. Pure and seeded: every draw comes from the caller's `Rng`.
 */
import { ValidationError } from './errors.ts';
import { type Rng, shuffled } from './rng.ts';
import {
  depth,
  depthRange,
  randomSubnet,
  skipKinds,
  subnetKey,
  subnetWithDepth,
  unitDepthDistribution,
} from './spaces/subnet.ts';
import type { SearchSpace, Subnet } from './spaces/types.ts';

export const samplingStrategies = ['random', 'balanced'] as const;
export type SamplingStrategy = (typeof samplingStrategies)[number];

/** A depth bin: the inclusive range of depths `lo..hi`. */
export interface DepthBin {
  readonly lo: number;
  readonly hi: number;
}

/**
 * `nBins` equal-width bins over the integer depth range `min..max` (K = max - min + 1
 * depths). Bin i holds depths `min + floor(i*K/n) .. min + floor((i+1)*K/n) - 1`, so when K is
 * not a multiple of n the wider bins are spread evenly over the range instead of piling up
 * at one end. `nBins` is capped at K so that no bin is empty.
 */
export function binsForRange(range: { min: number; max: number }, nBins: number): DepthBin[] {
  if (!Number.isInteger(nBins) || nBins < 1) {
    throw new ValidationError('bins', `expected a positive integer, got ${nBins}`);
  }
  const k = range.max - range.min + 1;
  const n = Math.min(nBins, k);
  return Array.from({ length: n }, (_, i) => ({
    lo: range.min + Math.floor((i * k) / n),
    hi: range.min + Math.floor(((i + 1) * k) / n) - 1,
  }));
}

/** Depth bins over a space's depth range; see `binsForRange` for the layout. */
export function depthBins(space: SearchSpace, nBins: number): DepthBin[] {
  return binsForRange(depthRange(space), nBins);
}

/**
 * The depths a replay pool actually holds. A measured dataset need not cover its space's depth
 * range (HELP's FBNet archs are uniform over ops: 13..22 layers of 0..22), and a bin the pool
 * cannot fill would keep the loop from ever converging.
 */
export function poolDepthRange(pool: readonly { readonly depth: number }[]): {
  min: number;
  max: number;
} {
  if (pool.length === 0) throw new ValidationError('pool', 'the replay pool is empty');
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const item of pool) {
    if (item.depth < min) min = item.depth;
    if (item.depth > max) max = item.depth;
  }
  return { min, max };
}

/** Depth bins over the depths a replay pool holds (`poolDepthRange`). */
export function poolDepthBins(
  pool: readonly { readonly depth: number }[],
  nBins: number,
): DepthBin[] {
  return binsForRange(poolDepthRange(pool), nBins);
}

/** A run's depth bins: over its `depthRange` where it has one, else the space's whole range. */
export function runBins(
  space: SearchSpace,
  params: { readonly bins: number; readonly depthRange?: { min: number; max: number } },
): DepthBin[] {
  return params.depthRange
    ? binsForRange(params.depthRange, params.bins)
    : depthBins(space, params.bins);
}

/** Index of the bin holding `d`; throws `ValidationError` when no bin does. */
export function binOf(bins: readonly DepthBin[], d: number): number {
  const index = bins.findIndex((b) => d >= b.lo && d <= b.hi);
  if (index < 0) {
    const span = bins.length ? `${bins[0]?.lo}..${bins[bins.length - 1]?.hi}` : 'empty';
    throw new ValidationError('depth', `depth ${d} is outside the bins (${span})`);
  }
  return index;
}

/**
 * Bin weights for the extension step: `w1` for a bin that has not passed (below `accTh`, or
 * judged on too few test samples: core/loop.ts `passes`), 1 for a passing bin.
 */
export function extensionWeights(passed: readonly boolean[], w1: number): number[] {
  if (!(w1 > 0)) throw new ValidationError('w1', `expected a positive weight, got ${w1}`);
  return passed.map((p) => (p ? 1 : w1));
}

/**
 * Splits `n` over bins in proportion to `weights` (largest remainder). Remainder units go to
 * the largest fractional parts; ties (always the case for equal weights) are broken at
 * random, so no bin is favoured across calls.
 */
export function allocate(n: number, weights: readonly number[], rng: Rng): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  if (weights.some((w) => !(w >= 0)) || !(total > 0)) {
    throw new ValidationError(
      'binWeights',
      `expected non-negative weights with a positive sum, got [${weights.join(', ')}]`,
    );
  }
  const quotas = weights.map((w) => (n * w) / total);
  const counts = quotas.map(Math.floor);
  let left = n - counts.reduce((a, b) => a + b, 0);
  const order = shuffled(
    weights.map((_, i) => i),
    rng,
  ).sort(
    (a, b) =>
      (quotas[b] as number) -
      (counts[b] as number) -
      ((quotas[a] as number) - (counts[a] as number)),
  );
  for (const i of order) {
    if (left <= 0) break;
    counts[i] = (counts[i] as number) + 1;
    left -= 1;
  }
  return counts;
}

/**
 * Distribution of depth under `random` sampling: the convolution of the units' uniform
 * depth distributions. Index i is the probability of depth `min + i`.
 */
export function randomDepthDistribution(space: SearchSpace): number[] {
  let dist = [1];
  for (const unit of space.units) {
    if (skipKinds(unit) > 0) {
      // Layer-wise units (FBNet): a binomial layer count, not a uniform one.
      const own = unitDepthDistribution(unit);
      const next = new Array(dist.length + own.length - 1).fill(0);
      dist.forEach((p, i) => {
        own.forEach((q, k) => {
          next[i + k] += p * q;
        });
      });
      dist = next;
      continue;
    }
    const width = unit.maxDepth - unit.minDepth + 1;
    const next = new Array(dist.length + width - 1).fill(0);
    dist.forEach((p, i) => {
      for (let k = 0; k < width; k++) next[i + k] += p / width;
    });
    dist = next;
  }
  return dist;
}

export interface SampleOptions {
  /** Number of architectures to return. */
  n: number;
  /** `random`: every choice uniform. `balanced`: equal counts per depth bin. */
  strategy: SamplingStrategy;
  rng: Rng;
  /** Depth bins. @default depthBins(space, 10) */
  bins?: readonly DepthBin[];
  /** `subnetKey`s that must not be returned (already measured). @default empty */
  exclude?: ReadonlySet<string>;
  /**
   * Per-bin weights (see `extensionWeights`): counts per bin are allocated in proportion.
   * With `random`, a bin's depth then follows the random strategy's depth distribution
   * restricted to the bin; with `balanced`, it is uniform over the bin's depths.
   * @default none: `random` samples freely, `balanced` gives every bin the same count
   */
  binWeights?: readonly number[];
  /** Draws per architecture before a bin counts as exhausted. @default 1000 */
  maxTries?: number;
}

function checkCommon(
  n: number,
  strategy: string,
  bins: readonly DepthBin[],
  binWeights: readonly number[] | undefined,
): void {
  if (!Number.isInteger(n) || n < 0) {
    throw new ValidationError('n', `expected a non-negative integer, got ${n}`);
  }
  if (!(samplingStrategies as readonly string[]).includes(strategy)) {
    throw new ValidationError(
      'strategy',
      `got "${strategy}", allowed values are ${samplingStrategies.join(', ')}`,
    );
  }
  if (bins.length === 0) throw new ValidationError('bins', 'expected at least one depth bin');
  if (binWeights && binWeights.length !== bins.length) {
    throw new ValidationError(
      'binWeights',
      `expected one weight per bin (${bins.length}), got ${binWeights.length}`,
    );
  }
}

/**
 * Samples `n` distinct architectures of `space` that are not in `exclude`.
 * Throws `ValidationError` naming the bin when one has no unmeasured architecture left
 * within `maxTries` draws (only small user-defined spaces get there).
 */
export function sampleArchitectures(space: SearchSpace, options: SampleOptions): Subnet[] {
  const { n, strategy, rng, exclude = new Set<string>(), binWeights, maxTries = 1000 } = options;
  const bins = options.bins ?? depthBins(space, 10);
  checkCommon(n, strategy, bins, binWeights);
  const range = depthRange(space);
  const seen = new Set<string>();
  const out: Subnet[] = [];

  const accept = (draw: () => Subnet, what: string): void => {
    for (let t = 0; t < maxTries; t++) {
      const subnet = draw();
      const key = subnetKey(subnet);
      if (exclude.has(key) || seen.has(key)) continue;
      seen.add(key);
      out.push(subnet);
      return;
    }
    throw new ValidationError(
      'n',
      `no unmeasured architecture left in ${what} of space ${space.name} after ${maxTries} draws; ask for fewer samples or fewer bins`,
    );
  };

  if (strategy === 'random' && !binWeights) {
    for (let i = 0; i < n; i++) accept(() => randomSubnet(space, rng), 'the space');
    return out;
  }

  const randomDist = strategy === 'random' ? randomDepthDistribution(space) : undefined;
  const counts = allocate(n, binWeights ?? bins.map(() => 1), rng);
  bins.forEach((bin, b) => {
    const lo = Math.max(bin.lo, range.min);
    const hi = Math.min(bin.hi, range.max);
    if (lo > hi) {
      if ((counts[b] as number) > 0) {
        throw new ValidationError('bins', `bin ${bin.lo}..${bin.hi} is outside the depth range`);
      }
      return;
    }
    const depths = Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
    const weights = depths.map((d) => (randomDist ? (randomDist[d - range.min] as number) : 1));
    for (let i = 0; i < (counts[b] as number); i++) {
      accept(
        () => subnetWithDepth(space, depths[pickWeighted(weights, rng)] as number, rng),
        `depth bin ${bin.lo}..${bin.hi}`,
      );
    }
  });
  // Bins are filled in order; shuffle so a prefix of the result is not biased to shallow nets.
  return shuffled(out, rng);
}

function pickWeighted(weights: readonly number[], rng: Rng): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let r = rng.next() * total;
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i] as number;
    if (r < 0) return i;
  }
  return weights.length - 1;
}

/** What `samplePool` needs of a pool item; anything else on the item is returned as is. */
export interface PoolItem {
  readonly depth: number;
  readonly key: string;
}

export type PoolSampleOptions = Omit<SampleOptions, 'maxTries' | 'bins'> & {
  /** Depth bins; required since a pool has no space to derive them from. */
  bins: readonly DepthBin[];
};

/** A `PoolItem` for a subnet, for building a pool from a dataset. */
export function poolItem<T extends object>(subnet: Subnet, extra: T): T & PoolItem {
  return { ...extra, depth: depth(subnet), key: subnetKey(subnet) };
}

/** The distinct architectures of `pool` whose key is not in `exclude`: what a replay can still draw. */
export function poolLeft(
  pool: readonly PoolItem[],
  exclude: ReadonlySet<string> = new Set(),
): number {
  const left = new Set<string>();
  for (const item of pool) if (!exclude.has(item.key)) left.add(item.key);
  return left.size;
}

/**
 * `sampleArchitectures` over a finite pool (a measured dataset), for replaying the loop.
 * `random` draws uniformly among the pool's unused items (so it keeps the pool's own depth
 * distribution). `balanced` and `binWeights` allocate counts per bin as
 * `sampleArchitectures` does, then pick a depth uniformly among the bin's depths that still
 * have items and an item of that depth. A bin with too few items gives its shortfall to the
 * other bins (in proportion to their weights), because replay should use the data it has. Items
 * whose key is in `exclude`, and repeated keys, are never returned. Throws `ValidationError`
 * when the pool has fewer than `n` usable items.
 */
export function samplePool<T extends PoolItem>(
  pool: readonly T[],
  options: PoolSampleOptions,
): T[] {
  const { n, strategy, rng, bins, exclude = new Set<string>(), binWeights } = options;
  checkCommon(n, strategy, bins, binWeights);
  const seen = new Set<string>(exclude);
  const usable: T[] = [];
  for (const item of pool) {
    if (seen.has(item.key)) continue;
    seen.add(item.key);
    usable.push(item);
  }
  if (usable.length < n) {
    throw new ValidationError(
      'n',
      `the pool has ${usable.length} unused architectures, fewer than the ${n} requested`,
    );
  }
  if (strategy === 'random' && !binWeights) return shuffled(usable, rng).slice(0, n);

  // byBin[b]: depth -> items, shuffled so popping is a uniform draw.
  const byBin = bins.map(() => new Map<number, T[]>());
  for (const item of shuffled(usable, rng)) {
    const b = binOf(bins, item.depth);
    const group = byBin[b] as Map<number, T[]>;
    const list = group.get(item.depth) ?? [];
    list.push(item);
    group.set(item.depth, list);
  }
  const sizes = byBin.map((g) => [...g.values()].reduce((s, l) => s + l.length, 0));
  const counts = allocate(n, binWeights ?? bins.map(() => 1), rng);
  let shortfall = 0;
  counts.forEach((c, b) => {
    const size = sizes[b] as number;
    if (c > size) {
      shortfall += c - size;
      counts[b] = size;
    }
  });
  while (shortfall > 0) {
    // Spread the shortfall over the bins with spare items, in proportion to their weights.
    const spare = counts.map((c, b) => (sizes[b] as number) - c);
    const weights = spare.map((s, b) => (s > 0 ? (binWeights?.[b] ?? 1) || 1 : 0));
    const extra = allocate(shortfall, weights, rng);
    extra.forEach((e, b) => {
      const given = Math.min(e, spare[b] as number);
      counts[b] = (counts[b] as number) + given;
      shortfall -= given;
    });
  }

  const out: T[] = [];
  byBin.forEach((group, b) => {
    for (let i = 0; i < (counts[b] as number); i++) {
      const depths = [...group.keys()].filter((d) => (group.get(d) as T[]).length > 0);
      let d: number;
      if (strategy === 'random') {
        // Keep the pool's own depth distribution inside the bin.
        const lists = depths.map((x) => (group.get(x) as T[]).length);
        d = depths[pickWeighted(lists, rng)] as number;
      } else {
        d = rng.pick(depths);
      }
      out.push((group.get(d) as T[]).pop() as T);
    }
  });
  return shuffled(out, rng);
}

/**
 * Sampling strategies of the ESM loop: the two above, and `active` (beyond the paper): each
 * extension's training picks are, within every depth bin, the candidates the current
 * predictor is least sure about (`selectActive`); the initial batch and the test share of
 * every batch stay balanced and uniform, so per-bin test accuracy remains unbiased.
 */
export const loopSamplingStrategies = [...samplingStrategies, 'active'] as const;
export type LoopSamplingStrategy = (typeof loopSamplingStrategies)[number];

export interface SelectActiveOptions<T> {
  /** Depth bins the counts refer to. */
  readonly bins: readonly DepthBin[];
  /** How many items to pick in each bin. */
  readonly counts: readonly number[];
  /**
   * Uncertainty of every candidate, larger = less sure (e.g. an ensemble's relative spread,
   * std / mean). Called once, with all usable candidates.
   */
  readonly uncertainty: (items: readonly T[]) => ArrayLike<number>;
  /** Breaks ties between equally uncertain candidates. */
  readonly rng: Rng;
  /** `key`s that must not be returned (already measured or planned). @default empty */
  readonly exclude?: ReadonlySet<string>;
}

/**
 * Picks, in every bin, its `counts[b]` most uncertain candidates. A bin with too few
 * candidates gives its shortfall to the most uncertain candidates left in any bin, so the
 * batch keeps its size while candidates last. Excluded and repeated keys are skipped.
 * Throws `ValidationError` when fewer usable candidates than requested exist.
 */
export function selectActive<T extends PoolItem>(
  candidates: readonly T[],
  options: SelectActiveOptions<T>,
): T[] {
  const { bins, counts, rng, exclude = new Set<string>() } = options;
  if (counts.length !== bins.length) {
    throw new ValidationError(
      'counts',
      `expected one count per bin (${bins.length}), got ${counts.length}`,
    );
  }
  if (counts.some((c) => !Number.isInteger(c) || c < 0)) {
    throw new ValidationError(
      'counts',
      `expected non-negative integers, got [${counts.join(', ')}]`,
    );
  }
  const n = counts.reduce((a, b) => a + b, 0);
  const seen = new Set<string>(exclude);
  const usable: T[] = [];
  // Shuffled first, so that the stable sort below breaks ties at random.
  for (const item of shuffled(candidates, rng)) {
    if (seen.has(item.key)) continue;
    seen.add(item.key);
    usable.push(item);
  }
  if (usable.length < n) {
    throw new ValidationError(
      'n',
      `only ${usable.length} unmeasured candidates for ${n} active picks; use a larger candidate pool`,
    );
  }
  const scores = options.uncertainty(usable);
  if (scores.length !== usable.length) {
    throw new ValidationError(
      'uncertainty',
      `returned ${scores.length} values for ${usable.length} candidates`,
    );
  }
  const score = (i: number) => {
    const s = scores[i] as number;
    return Number.isFinite(s) ? s : Number.NEGATIVE_INFINITY;
  };
  const order = usable.map((_, i) => i).sort((a, b) => score(b) - score(a));
  const left = [...counts];
  const picked: number[] = [];
  const rest: number[] = [];
  for (const i of order) {
    const b = binOf(bins, (usable[i] as T).depth);
    if ((left[b] as number) > 0) {
      left[b] = (left[b] as number) - 1;
      picked.push(i);
    } else {
      rest.push(i);
    }
  }
  const shortfall = left.reduce((a, b) => a + b, 0);
  picked.push(...rest.slice(0, shortfall));
  return picked.map((i) => usable[i] as T);
}
