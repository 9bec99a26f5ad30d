/**
 * A designed first batch (issue 13): does choosing the first n measurements by the physics
 * features alone, before any latency is known, beat n random ones for ridge on physics (what
 * `auto` chooses at 20 rows)? Each seed shuffles a file (createRng(1000 + seed)), takes 4,000
 * rows as the candidate pool and the next 1,000 as test rows; each strategy picks n rows of
 * the pool, ridge on physics is fitted on them and scored on the test rows.
 *
 *   npx tsx scripts/bench/first-batch.ts [--files a.jsonl,b.jsonl] [--sizes 20,50]
 *       [--seeds 0,1,2,3,4,5] [--strategies random,dopt,fps,kmeans]
 *
 * Strategies, on the pool's physics vectors standardised column by column:
 * - random: the pool's first n rows (its order is the seed's shuffle);
 * - dopt: greedy D-optimal design, each pick the row of largest leverage x' M^-1 x,
 *   M = 0.01 I + sum over the picked rows of x x' (x with an intercept entry);
 * - fps: farthest-point (k-center greedy) from the pool's first row;
 * - kmeans: k-means with n centres (k-means++ start, 25 rounds), the pool row nearest each.
 * Prints per file, size and strategy the median, mean and least accuracy over the seeds.
 */
import { parseArgs } from 'node:util';
import { createEncoder, encodeAll } from '../../core/encodings/index.ts';
import { evaluate } from '../../core/metrics.ts';
import { createModel } from '../../core/predictor/index.ts';
import { createRng, shuffled } from '../../core/rng.ts';
import { loadBenchFile } from './bench-data.ts';
import { median } from './stats.ts';

const { values } = parseArgs({
  options: {
    files: {
      type: 'string',
      default: [
        '../shared/data/help-ofa-mbv3/2080ti_64.jsonl',
        '../shared/data/help-ofa-mbv3/titan_xp_32.jsonl',
        '../shared/data/help-ofa-mbv3/titan_rtx_1.jsonl',
      ].join(','),
    },
    sizes: { type: 'string', default: '20,50' },
    seeds: { type: 'string', default: '0,1,2,3,4,5' },
    strategies: { type: 'string', default: 'random,dopt,fps,kmeans' },
  },
});

const POOL = 4000;
const TEST = 1000;

type Point = readonly number[];
const distance2 = (a: Point, b: Point) => a.reduce((s, v, j) => s + (v - (b[j] as number)) ** 2, 0);

function standardise(x: readonly Point[]): Point[] {
  const columns = (x[0] as Point).length;
  const scale = Array.from({ length: columns }, (_, j) => {
    const column = x.map((r) => r[j] as number);
    const mean = column.reduce((s, v) => s + v, 0) / x.length;
    const variance = column.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length;
    return { mean, sd: variance > 1e-12 ? Math.sqrt(variance) : 0 };
  });
  return x.map((r) =>
    r.map((v, j) => {
      const { mean, sd } = scale[j] as { mean: number; sd: number };
      return sd > 0 ? (v - mean) / sd : 0;
    }),
  );
}

function dOptimal(x: readonly Point[], n: number): number[] {
  const z = x.map((r) => [1, ...r]);
  const d = (z[0] as number[]).length;
  // M^-1, kept up to date by Sherman-Morrison.
  let inverse: number[][] = Array.from({ length: d }, (_, i) =>
    Array.from({ length: d }, (_, j): number => (i === j ? 100 : 0)),
  );
  const times = (v: readonly number[]) =>
    inverse.map((row) => row.reduce((s, w, b) => s + w * (v[b] as number), 0));
  const picked: number[] = [];
  const taken = new Set<number>();
  for (let k = 0; k < n; k++) {
    let best = 0;
    let most = -1;
    if (k > 0) {
      z.forEach((zi, i) => {
        if (taken.has(i)) return;
        const leverage = times(zi).reduce((s, v, a) => s + v * (zi[a] as number), 0);
        if (leverage > most) [most, best] = [leverage, i];
      });
    }
    picked.push(best);
    taken.add(best);
    const zb = z[best] as number[];
    const u = times(zb);
    const denominator = 1 + zb.reduce((s, v, a) => s + v * (u[a] as number), 0);
    inverse = inverse.map((row, a) =>
      row.map((v, b) => v - ((u[a] as number) * (u[b] as number)) / denominator),
    );
  }
  return picked;
}

function farthestPoint(x: readonly Point[], n: number): number[] {
  const nearest = x.map(() => Number.POSITIVE_INFINITY);
  const picked = [0];
  while (picked.length < n) {
    const last = x[picked[picked.length - 1] as number] as Point;
    let best = -1;
    let farthest = -1;
    x.forEach((r, i) => {
      nearest[i] = Math.min(nearest[i] as number, distance2(r, last));
      if ((nearest[i] as number) > farthest && !picked.includes(i))
        [farthest, best] = [nearest[i] as number, i];
    });
    picked.push(best);
  }
  return picked;
}

function kMeans(x: readonly Point[], n: number, seed: number): number[] {
  const rng = createRng(77 + seed);
  const centres: number[][] = [[...(x[Math.floor(rng.next() * x.length)] as Point)]];
  const nearest = x.map((r) => distance2(r, centres[0] as Point));
  while (centres.length < n) {
    let t = rng.next() * nearest.reduce((s, v) => s + v, 0);
    let i = 0;
    for (; i < x.length - 1 && t > (nearest[i] as number); i++) t -= nearest[i] as number;
    const centre = [...(x[i] as Point)];
    centres.push(centre);
    x.forEach((r, k) => {
      nearest[k] = Math.min(nearest[k] as number, distance2(r, centre));
    });
  }
  const closest = (
    r: Point,
    among: readonly Point[],
    skip: (i: number) => boolean = () => false,
  ) => {
    let best = -1;
    let least = Number.POSITIVE_INFINITY;
    among.forEach((c, i) => {
      const v = distance2(r, c);
      if (v < least && !skip(i)) [least, best] = [v, i];
    });
    return best;
  };
  for (let round = 0; round < 25; round++) {
    const members = centres.map((): Point[] => []);
    for (const r of x) members[closest(r, centres)]?.push(r);
    centres.forEach((c, k) => {
      const of = members[k] as Point[];
      if (of.length === 0) return;
      for (let j = 0; j < c.length; j++)
        c[j] = of.reduce((s, r) => s + (r[j] as number), 0) / of.length;
    });
  }
  const picked: number[] = [];
  for (const c of centres) picked.push(closest(c, x, (i) => picked.includes(i)));
  return picked;
}

const percent = (v: number) => (100 * v).toFixed(2);

const sizes = (values.sizes as string).split(',').map(Number);
const seeds = (values.seeds as string).split(',').map(Number);
const strategies = (values.strategies as string).split(',');
for (const file of (values.files as string).split(',')) {
  const { space, rows } = loadBenchFile(file);
  const encoder = createEncoder(space, 'physics');
  const accuracy = new Map<string, number[]>();
  for (const seed of seeds) {
    const order = shuffled(
      rows.map((_, i) => i),
      createRng(1000 + seed),
    );
    const pool = order.slice(0, POOL).map((i) => rows[i] as (typeof rows)[number]);
    const test = order.slice(POOL, POOL + TEST).map((i) => rows[i] as (typeof rows)[number]);
    const m = encodeAll(
      encoder,
      pool.map((r) => r.subnet),
    );
    const x = standardise(
      Array.from({ length: m.rows }, (_, i) =>
        Array.from(m.data.subarray(i * m.cols, (i + 1) * m.cols)),
      ),
    );
    for (const n of sizes) {
      for (const strategy of strategies) {
        const picked =
          strategy === 'random'
            ? pool.map((_, i) => i).slice(0, n)
            : strategy === 'dopt'
              ? dOptimal(x, n)
              : strategy === 'fps'
                ? farthestPoint(x, n)
                : strategy === 'kmeans'
                  ? kMeans(x, n, seed)
                  : [];
        if (picked.length === 0)
          throw new Error(`--strategies: unknown ${strategy} (random, dopt, fps, kmeans)`);
        const train = picked.map((i) => pool[i] as (typeof pool)[number]);
        const model = createModel(space, { model: 'ridge', encoding: 'physics' });
        await model.regressor.fit(
          model.featurizer.encodeAll(train.map((r) => r.subnet)),
          Float64Array.from(train, (r) => r.latencyMs),
        );
        const predicted = await model.regressor.predict(
          model.featurizer.encodeAll(test.map((r) => r.subnet)),
        );
        const e = evaluate({ predicted, measured: test.map((r) => r.latencyMs) });
        const key = `${n}\t${strategy}`;
        accuracy.set(key, [...(accuracy.get(key) ?? []), e.accuracy]);
      }
    }
  }
  for (const [key, xs] of accuracy) {
    const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
    console.log(
      `${file}\t${key}\tmedian ${percent(median(xs))}\tmean ${percent(mean)}\tleast ${percent(Math.min(...xs))}\t(${xs.map(percent).join(' ')})`,
    );
  }
}
