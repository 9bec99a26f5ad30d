/**
 * How to fit a linear model on the 17 physics features from few rows (issue 13), judged by
 * mean relative error on held-out rows, with fewshot.ts's splits (seed s: createRng(1000 + s),
 * test on up to --test other rows). Each method is a self-contained re-implementation here
 * (weighted least squares by coordinate descent, optional non-negative coefficients, IRLS
 * for Huber or absolute relative loss, the penalty chosen by 5-fold or leave-one-out CV on
 * relative error), except `ridge plain (before)` and `ridge robust (now)`, which are
 * core/predictor/ridge.ts without and with `robust`. Prints per method the median, mean and
 * minimum accuracy over seeds, the median of the first 3 seeds and every seed.
 *
 *   npx tsx scripts/bench/physics-fit.ts [--files a.jsonl,b.jsonl] [--sizes 20,50,100]
 *       [--seeds 0,1,...,9] [--methods "name;name"] [--test 2000]
 *
 * DEBUG=1 prints every CV score and the worst test rows.
 */
import { parseArgs } from 'node:util';
import { createEncoder, encodeAll } from '../../core/encodings/index.ts';
import { physicsLabels } from '../../core/encodings/physics.ts';
import { createRidge, solveSpd } from '../../core/predictor/ridge.ts';
import { physicsSummaryGroups } from '../../core/predictor/transfer.ts';
import { type Matrix, selectRows } from '../../core/predictor/types.ts';
import { createRng, shuffled } from '../../core/rng.ts';
import { loadBenchFile } from './bench-data.ts';
import { median } from './stats.ts';

const { values } = parseArgs({
  options: {
    files: {
      type: 'string',
      default:
        '../shared/data/help-ofa-mbv3/2080ti_64.jsonl,../shared/data/help-ofa-mbv3/titan_xp_32.jsonl',
    },
    sizes: { type: 'string', default: '20,50,100' },
    seeds: { type: 'string', default: '0,1,2,3,4,5,6,7,8,9' },
    test: { type: 'string', default: '2000' },
    methods: { type: 'string' },
  },
});

const LAMBDAS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10];

interface Fit {
  predict(z: Matrix): Float64Array;
}

/** Column means and scales of z. */
function scaler(x: Matrix) {
  const means = new Float64Array(x.cols);
  const scales = new Float64Array(x.cols);
  for (let j = 0; j < x.cols; j++) {
    let s = 0;
    for (let i = 0; i < x.rows; i++) s += x.data[i * x.cols + j] as number;
    const m = s / x.rows;
    let q = 0;
    for (let i = 0; i < x.rows; i++) q += ((x.data[i * x.cols + j] as number) - m) ** 2;
    means[j] = m;
    const sd = Math.sqrt(q / x.rows);
    scales[j] = sd > 1e-12 ? sd : 1;
  }
  return { means, scales };
}

/**
 * Weighted, penalised least squares on standardised columns, with b_j >= 0 where nonNeg
 * (coordinate descent on the normal equations), free intercept.
 */
function wls(
  x: Matrix,
  t: Float64Array,
  v: Float64Array,
  lambda: number,
  nonNeg: boolean,
  prior?: { means: Float64Array; scales: Float64Array },
) {
  const s = prior ?? scaler(x);
  const p = x.cols + 1;
  const g = new Float64Array(p * p);
  const h = new Float64Array(p);
  const row = new Float64Array(p);
  let vs = 0;
  for (let i = 0; i < x.rows; i++) vs += v[i] as number;
  for (let i = 0; i < x.rows; i++) {
    for (let j = 0; j < x.cols; j++)
      row[j] =
        ((x.data[i * x.cols + j] as number) - (s.means[j] as number)) / (s.scales[j] as number);
    row[x.cols] = 1;
    const w = ((v[i] as number) * x.rows) / vs;
    for (let j = 0; j < p; j++) {
      h[j] = (h[j] as number) + w * (row[j] as number) * (t[i] as number);
      for (let k = 0; k < p; k++)
        g[j * p + k] = (g[j * p + k] as number) + w * (row[j] as number) * (row[k] as number);
    }
  }
  for (let j = 0; j < p - 1; j++)
    g[j * p + j] = (g[j * p + j] as number) + Math.max(lambda * x.rows, 1e-9);
  let b: Float64Array;
  if (!nonNeg) b = solveSpd(g, h, p);
  else {
    b = new Float64Array(p);
    for (let sweep = 0; sweep < 2000; sweep++) {
      let change = 0;
      for (let j = 0; j < p; j++) {
        let grad = -(h[j] as number);
        for (let k = 0; k < p; k++) grad += (g[j * p + k] as number) * (b[k] as number);
        let nb = (b[j] as number) - grad / (g[j * p + j] as number);
        if (j < p - 1 && nb < 0) nb = 0;
        change = Math.max(change, Math.abs(nb - (b[j] as number)));
        b[j] = nb;
      }
      if (change < 1e-10) break;
    }
  }
  return {
    predictRaw(z: Matrix) {
      const out = new Float64Array(z.rows);
      for (let i = 0; i < z.rows; i++) {
        let sum = b[p - 1] as number;
        for (let j = 0; j < z.cols; j++)
          sum +=
            (((z.data[i * z.cols + j] as number) - (s.means[j] as number)) /
              (s.scales[j] as number)) *
            (b[j] as number);
        out[i] = sum;
      }
      return out;
    },
  };
}

type Target = 'log' | 'ms';
interface Spec {
  target: Target;
  weight: 'none' | 'rel';
  nonNeg: boolean;
  /** IRLS: 'l2' plain, 'huber', 'l1' (least absolute relative error). */
  loss: 'l2' | 'huber' | 'l1';
  /** Huber threshold in robust standard deviations. */
  c?: number;
  minLambda?: number;
  /** Columns used (all when undefined). */
  cols?: number[];
  /**
   * Standardise with every arch of the file (its physics entries need no measurement, as a
   * NAS pool's do not) instead of the training rows: steadier penalty scales at 20 rows?
   */
  pool?: boolean;
}

function pick(x: Matrix, cols: number[] | undefined): Matrix {
  if (!cols) return x;
  const data = new Float64Array(x.rows * cols.length);
  for (let i = 0; i < x.rows; i++)
    cols.forEach((c, j) => {
      data[i * cols.length + j] = x.data[i * x.cols + c] as number;
    });
  return { rows: x.rows, cols: cols.length, data };
}

function fitSpec(x0: Matrix, y: Float64Array, lambda: number, spec: Spec) {
  const x = pick(x0, spec.cols);
  const t = spec.target === 'log' ? y.map(Math.log) : y;
  const base =
    spec.target === 'ms' && spec.weight === 'rel' ? y.map((m) => 1 / (m * m)) : y.map(() => 1);
  let v = base.slice();
  const scales = spec.pool ? pool.scaler : undefined;
  let model = wls(x, t, v, lambda, spec.nonNeg, scales);
  const toMs = (r: Float64Array) => (spec.target === 'log' ? r.map(Math.exp) : r);
  if (spec.loss !== 'l2') {
    for (let it = 0; it < 20; it++) {
      const p = toMs(model.predictRaw(x));
      const rel = y.map((m, i) => Math.abs((p[i] as number) - m) / m);
      const sorted = [...rel].sort((a, b) => a - b);
      const mad = (sorted[Math.floor(sorted.length / 2)] as number) / 0.6745;
      const delta = (spec.c ?? 1.345) * Math.max(mad, 1e-4);
      v = base.map((b, i) => {
        const r = rel[i] as number;
        if (spec.loss === 'l1') return b / Math.max(r, 1e-4);
        return b * (r <= delta ? 1 : delta / r);
      });
      model = wls(x, t, v, lambda, spec.nonNeg, scales);
    }
  }
  return { predict: (z: Matrix) => toMs(model.predictRaw(pick(z, spec.cols))) };
}

const mre = (p: Float64Array, y: Float64Array) => {
  let s = 0;
  y.forEach((m, i) => {
    s += Math.abs((p[i] as number) - m) / m;
  });
  return s / y.length;
};

/** CV over lambdas and specs by mean relative error; folds interleaved or leave-one-out. */
function cvFit(x: Matrix, y: Float64Array, specs: Spec[], folds: number | 'loo', se = 0): Fit {
  const n = x.rows;
  const k = folds === 'loo' ? n : Math.min(folds, n);
  let best = { err: Infinity, spec: specs[0] as Spec, lambda: LAMBDAS[0] as number };
  const table: { err: number; spec: Spec; lambda: number; rows: Float64Array }[] = [];
  for (const spec of specs) {
    for (const lambda of LAMBDAS) {
      if (spec.minLambda !== undefined && lambda < spec.minLambda) continue;
      let err = 0;
      const rowErr = new Float64Array(n);
      for (let f = 0; f < k; f++) {
        const tr: number[] = [];
        const te: number[] = [];
        for (let i = 0; i < n; i++) (i % k === f ? te : tr).push(i);
        const m = fitSpec(
          selectRows(x, tr),
          Float64Array.from(tr, (i) => y[i] as number),
          lambda,
          spec,
        );
        const p = m.predict(selectRows(x, te));
        te.forEach((i, j) => {
          const e = Math.abs((p[j] as number) - (y[i] as number)) / (y[i] as number);
          err += e;
          rowErr[i] = e;
        });
      }
      if (process.env.DEBUG)
        process.stderr.write(`${spec.target} ${spec.loss} ${lambda} cv ${(err / n).toFixed(4)}\n`);
      table.push({ err, spec, lambda, rows: rowErr });
      if (err < best.err - 1e-12) best = { err, spec, lambda };
    }
  }
  if (se > 0) {
    const b = table.find((t) => t.err === best.err) as (typeof table)[number];
    const m = b.err / n;
    const sd = Math.sqrt(b.rows.reduce((s, v) => s + (v - m) ** 2, 0) / (n - 1) / n);
    const ok = table.filter((t) => t.err / n <= m + se * sd && (se < 0 || true));
    const pickT = ok.reduce((a, t) => (t.lambda > a.lambda ? t : a));
    best = { err: pickT.err, spec: pickT.spec, lambda: pickT.lambda };
  }
  return fitSpec(x, y, best.lambda, best.spec);
}

const S = (
  target: Target,
  weight: Spec['weight'],
  nonNeg: boolean,
  loss: Spec['loss'] = 'l2',
): Spec => ({
  target,
  weight,
  nonNeg,
  loss,
});

/** x's physics entries summed into transfer.ts's 7 costs (`physicsSummaryGroups`). */
function summed(x: Matrix): Matrix {
  const k = physicsSummaryGroups.length;
  const data = new Float64Array(x.rows * k);
  for (let i = 0; i < x.rows; i++)
    physicsSummaryGroups.forEach((group, g) => {
      for (const label of group)
        data[i * k + g] =
          (data[i * k + g] as number) +
          (x.data[i * x.cols + physicsLabels.indexOf(label)] as number);
    });
  return { rows: x.rows, cols: k, data };
}

/** The column statistics of the current file's every arch, for `Spec.pool`. */
const pool: { scaler?: ReturnType<typeof scaler> } = {};

const METHODS: Record<string, (x: Matrix, y: Float64Array) => Promise<Fit> | Fit> = {
  'ridge plain (before)': async (x, y) => {
    const r = createRidge();
    await r.fit(x, y);
    const p = await r.predict(x);
    void p;
    return { predict: (z) => r.predict(z) as unknown as Float64Array };
  },
  'ridge robust (now)': async (x, y) => {
    const r = createRidge({ robust: true });
    await r.fit(x, y);
    return { predict: (z) => r.predict(z) as unknown as Float64Array };
  },
  // The robust ridge without its log target: physics entries add up, so log misfits them.
  'ridge robust, ms only': async (x, y) => {
    const r = createRidge({ robust: true, target: 'linear' });
    await r.fit(x, y);
    return { predict: (z) => r.predict(z) as unknown as Float64Array };
  },
  // Fewer weights: transfer's 7 summed costs (`summed` above), and the average of both fits.
  'ridge robust, 7 sums': async (x, y) => {
    const r = createRidge({ robust: true });
    await r.fit(summed(x), y);
    return { predict: (z) => r.predict(summed(z)) as unknown as Float64Array };
  },
  'ridge robust, 17 and 7 sums averaged': async (x, y) => {
    const full = createRidge({ robust: true });
    const sums = createRidge({ robust: true });
    await full.fit(x, y);
    await sums.fit(summed(x), y);
    // predict is awaited by the caller (ridge predictions are promises, as above).
    const average = async (z: Matrix) => {
      const [a, b] = await Promise.all([full.predict(z), sums.predict(summed(z))]);
      return Float64Array.from(a, (v, i) => 0.5 * (v + (b[i] as number)));
    };
    return { predict: (z) => average(z) as unknown as Float64Array };
  },
  // Is CV's penalty the 20-row weakness? The robust ridge with each fixed penalty instead.
  ...Object.fromEntries(
    [1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1].map((lambda) => [
      `ridge robust, lambda ${lambda}`,
      async (x: Matrix, y: Float64Array): Promise<Fit> => {
        const r = createRidge({ robust: true, lambda });
        await r.fit(x, y);
        return { predict: (z) => r.predict(z) as unknown as Float64Array };
      },
    ]),
  ),
  'cv: log | ms (re-impl)': (x, y) =>
    cvFit(x, y, [S('log', 'none', false), S('ms', 'none', false)], 5),
  'log only': (x, y) => cvFit(x, y, [S('log', 'none', false)], 5),
  'ms only': (x, y) => cvFit(x, y, [S('ms', 'none', false)], 5),
  'ms 1/y^2': (x, y) => cvFit(x, y, [S('ms', 'rel', false)], 5),
  'ms 1/y^2 nonneg': (x, y) => cvFit(x, y, [S('ms', 'rel', true)], 5),
  'ms nonneg': (x, y) => cvFit(x, y, [S('ms', 'none', true)], 5),
  'log nonneg': (x, y) => cvFit(x, y, [S('log', 'none', true)], 5),
  'ms 1/y^2 huber': (x, y) => cvFit(x, y, [S('ms', 'rel', false, 'huber')], 5),
  'ms 1/y^2 nonneg huber': (x, y) => cvFit(x, y, [S('ms', 'rel', true, 'huber')], 5),
  'ms 1/y^2 l1': (x, y) => cvFit(x, y, [S('ms', 'rel', false, 'l1')], 5),
  'ms 1/y^2 nonneg l1': (x, y) => cvFit(x, y, [S('ms', 'rel', true, 'l1')], 5),
  'log huber': (x, y) => cvFit(x, y, [S('log', 'none', false, 'huber')], 5),
  'cv: log | ms 1/y^2 | nonneg': (x, y) =>
    cvFit(x, y, [S('log', 'none', false), S('ms', 'rel', false), S('ms', 'rel', true)], 5),
  'cv: log | ms huber': (x, y) =>
    cvFit(x, y, [S('log', 'none', false), S('ms', 'rel', false, 'huber')], 5),
  'cv: log | ms | ms huber': (x, y) =>
    cvFit(
      x,
      y,
      [S('log', 'none', false), S('ms', 'none', false), S('ms', 'rel', false, 'huber')],
      5,
    ),
  'cv3 huber>=1e-4': (x, y) =>
    cvFit(
      x,
      y,
      [
        S('log', 'none', false),
        S('ms', 'none', false),
        { ...S('ms', 'rel', false, 'huber'), minLambda: 1e-4 },
      ],
      5,
    ),
  'cv3 huber>=1e-3': (x, y) =>
    cvFit(
      x,
      y,
      [
        S('log', 'none', false),
        S('ms', 'none', false),
        { ...S('ms', 'rel', false, 'huber'), minLambda: 1e-3 },
      ],
      5,
    ),
  'cv3 1se': (x, y) =>
    cvFit(
      x,
      y,
      [S('log', 'none', false), S('ms', 'none', false), S('ms', 'rel', false, 'huber')],
      5,
      1,
    ),
  'cv3 0.5se': (x, y) =>
    cvFit(
      x,
      y,
      [S('log', 'none', false), S('ms', 'none', false), S('ms', 'rel', false, 'huber')],
      5,
      0.5,
    ),
  'huber c=0.7': (x, y) => cvFit(x, y, [{ ...S('ms', 'rel', false, 'huber'), c: 0.7 }], 5),
  'huber c=2': (x, y) => cvFit(x, y, [{ ...S('ms', 'rel', false, 'huber'), c: 2 }], 5),
  'huber 7 cols': (x, y) =>
    cvFit(x, y, [{ ...S('ms', 'rel', false, 'huber'), cols: [0, 1, 3, 4, 5, 11, 15] }], 5),
  'huber nonneg 7 cols': (x, y) =>
    cvFit(x, y, [{ ...S('ms', 'rel', true, 'huber'), cols: [0, 1, 3, 4, 5, 11, 15] }], 5),
  'huber 10 cols': (x, y) =>
    cvFit(
      x,
      y,
      [{ ...S('ms', 'rel', false, 'huber'), cols: [0, 1, 3, 4, 5, 7, 10, 11, 12, 15] }],
      5,
    ),
  'huber | huber 7 cols': (x, y) =>
    cvFit(
      x,
      y,
      [
        S('ms', 'rel', false, 'huber'),
        { ...S('ms', 'rel', false, 'huber'), cols: [0, 1, 3, 4, 5, 11, 15] },
      ],
      5,
    ),
  'pool-standardised cv3 huber>=1e-3': (x, y) =>
    cvFit(
      x,
      y,
      [
        { ...S('log', 'none', false), pool: true },
        { ...S('ms', 'none', false), pool: true },
        { ...S('ms', 'rel', false, 'huber'), minLambda: 1e-3, pool: true },
      ],
      5,
    ),
  'pool-standardised ms 1/y^2 huber': (x, y) =>
    cvFit(x, y, [{ ...S('ms', 'rel', false, 'huber'), pool: true }], 5),
  'pool-standardised ms 1/y^2': (x, y) =>
    cvFit(x, y, [{ ...S('ms', 'rel', false), pool: true }], 5),
  'pool-standardised ms 1/y^2 nonneg': (x, y) =>
    cvFit(x, y, [{ ...S('ms', 'rel', true), pool: true }], 5),
  'ms 1/y^2 nonneg loo': (x, y) => cvFit(x, y, [S('ms', 'rel', true)], 'loo'),
  'ms 1/y^2 loo': (x, y) => cvFit(x, y, [S('ms', 'rel', false)], 'loo'),
};

const sizes = values.sizes.split(',').map(Number);
const seeds = values.seeds.split(',').map(Number);
const methods = values.methods ? values.methods.split(';') : Object.keys(METHODS);

for (const file of values.files.split(',')) {
  const { space, rows } = loadBenchFile(file);
  const x = encodeAll(
    createEncoder(space, 'physics'),
    rows.map((r) => r.subnet),
  );
  const y = Float64Array.from(rows, (r) => r.latencyMs);
  pool.scaler = scaler(x);
  for (const n of sizes.filter((s) => s < rows.length)) {
    const acc = new Map<string, number[]>();
    for (const seed of seeds) {
      const order = shuffled(
        rows.map((_, i) => i),
        createRng(1000 + seed),
      );
      const tr = order.slice(0, n);
      const te = order.slice(n, n + Number(values.test));
      const xt = selectRows(x, tr);
      const yt = Float64Array.from(tr, (i) => y[i] as number);
      const xe = selectRows(x, te);
      const ye = Float64Array.from(te, (i) => y[i] as number);
      for (const name of methods) {
        const fit = await (METHODS[name] as (typeof METHODS)[string])(xt, yt);
        const p = await fit.predict(xe);
        if (process.env.DEBUG) {
          const rel = Array.from(
            p,
            (v, i) => Math.abs(v - (ye[i] as number)) / (ye[i] as number),
          ).sort((a, b) => b - a);
          process.stderr.write(
            `${name} seed ${seed}: test mre ${mre(p, ye).toFixed(4)} min pred ${Math.min(...p).toFixed(3)} worst rel ${rel.slice(0, 5).map((v) => v.toFixed(2))}\n`,
          );
        }
        acc.set(name, [...(acc.get(name) ?? []), 1 - mre(p, ye)]);
      }
    }
    process.stdout.write(`\n${file} n=${n} (${seeds.length} seeds)\n`);
    for (const [name, a] of acc) {
      const med3 = median(a.slice(0, 3));
      const mean = a.reduce((s, v) => s + v, 0) / a.length;
      process.stdout.write(
        `${name.padEnd(30)} median ${(100 * median(a)).toFixed(2)}  mean ${(100 * mean).toFixed(2)}  min ${(100 * Math.min(...a)).toFixed(2)}  med3 ${(100 * med3).toFixed(2)}  | ${a.map((v) => (100 * v).toFixed(1)).join(' ')}\n`,
      );
    }
  }
}
