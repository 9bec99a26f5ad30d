/**
 * Tree ensembles on log latency (trees.ts): a random forest (nn-Meter's model: bootstrap
 * rows, a random third of the features per node, deep trees, averaged) and gradient-boosted
 * trees on top of a linear base (a cross-validated ridge on log latency: trees learn what
 * the linear model misses, which needs far fewer trees than boosting from a constant).
 *
 * Uncertainty (`predictWithStd`): the forest reports the spread of its trees (standard
 * deviation of the trees' log predictions, times the predicted ms); boosted trees report the
 * relative RMS error on their early-stopping validation rows, times the predicted ms.
 */
import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import { createRng } from '../rng.ts';
import { createRidge } from './ridge.ts';
import { parseStandardiser, standardiserJson } from './standardise.ts';
import {
  binMatrix,
  fitTree,
  predictTree,
  type Tree,
  treeFromJson,
  treeJson,
  treeToJson,
} from './trees.ts';
import {
  type FitReport,
  type Matrix,
  type PredictionWithStd,
  type Regressor,
  selectRows,
} from './types.ts';

function checkTargets(x: Matrix, latencyMs: Float64Array): void {
  if (latencyMs.length !== x.rows) {
    throw new ValidationError('latencyMs', `has ${latencyMs.length} values for ${x.rows} rows`);
  }
  latencyMs.forEach((v, i) => {
    if (!(v > 0) || !Number.isFinite(v)) {
      throw new ValidationError(`latencyMs[${i}]`, `must be a positive number, got ${v}`);
    }
  });
}

function checkCols(x: Matrix, cols: number): void {
  if (x.cols !== cols) {
    throw new ValidationError('x', `expected ${cols} columns (the features length), got ${x.cols}`);
  }
}

// ---------------------------------------------------------------------------------------
// Random forest

export interface ForestOptions {
  /** @default 100 */
  readonly trees?: number;
  /** @default 14 */
  readonly maxDepth?: number;
  /** @default 2 */
  readonly minLeaf?: number;
  /** Share of the features tried at each node. @default 1/3 */
  readonly featureFraction?: number;
  /** Histogram bins per feature. @default 64 */
  readonly maxBins?: number;
  /** @default 0 */
  readonly seed?: number;
}

export const rfJson = z.object({
  kind: z.literal('rf'),
  /** Number of input features. */
  inputs: z.number().int().positive(),
  /** Leaf values are log latency; the prediction is exp(mean over trees). */
  trees: z.array(treeJson).min(1),
});
export type RfJson = z.infer<typeof rfJson>;

export interface ForestModel extends Regressor {
  readonly kind: 'rf';
  predictWithStd(x: Matrix): Promise<PredictionWithStd>;
  toJSON(): RfJson;
}

/** Per row: mean and standard deviation of the trees' log predictions. */
function forestLogStats(
  trees: readonly Tree[],
  x: Matrix,
): { mean: Float64Array; sd: Float64Array } {
  const mean = new Float64Array(x.rows);
  const sd = new Float64Array(x.rows);
  const values = new Float64Array(trees.length);
  for (let r = 0; r < x.rows; r++) {
    let s = 0;
    trees.forEach((t, i) => {
      const v = predictTree(t, x, r);
      values[i] = v;
      s += v;
    });
    const m = s / trees.length;
    let q = 0;
    for (const v of values) q += (v - m) * (v - m);
    mean[r] = m;
    sd[r] = Math.sqrt(q / trees.length);
  }
  return { mean, sd };
}

function forestModel(
  options: ForestOptions,
  state?: { inputs: number; trees: Tree[] },
): ForestModel {
  let trained = state;
  const need = () => {
    if (!trained) throw new ValidationError('rf', 'predict called before fit');
    return trained;
  };
  const withStd = (x: Matrix): PredictionWithStd => {
    const t = need();
    checkCols(x, t.inputs);
    const { mean, sd } = forestLogStats(t.trees, x);
    const ms = mean.map(Math.exp);
    return { mean: ms, std: ms.map((m, r) => m * (sd[r] as number)) };
  };
  return {
    kind: 'rf',
    async fit(x: Matrix, latencyMs: Float64Array): Promise<FitReport> {
      const started = performance.now();
      checkTargets(x, latencyMs);
      const {
        trees = 100,
        maxDepth = 14,
        minLeaf = 2,
        featureFraction = 1 / 3,
        maxBins = 64,
        seed = 0,
      } = options;
      const rng = createRng(seed);
      const binned = binMatrix(x, maxBins);
      const y = latencyMs.map(Math.log);
      const featuresPerNode = Math.max(1, Math.round(featureFraction * x.cols));
      const out: Tree[] = [];
      const sample = new Int32Array(x.rows);
      for (let t = 0; t < trees; t++) {
        for (let i = 0; i < x.rows; i++) sample[i] = rng.int(x.rows);
        sample.sort();
        out.push(fitTree(binned, y, sample, rng, { maxDepth, minLeaf, featuresPerNode }));
      }
      trained = { inputs: x.cols, trees: out };
      return { seconds: (performance.now() - started) / 1000 };
    },
    async predict(x: Matrix): Promise<Float64Array> {
      return withStd(x).mean;
    },
    async predictWithStd(x: Matrix): Promise<PredictionWithStd> {
      return withStd(x);
    },
    toJSON(): RfJson {
      const t = need();
      return { kind: 'rf', inputs: t.inputs, trees: t.trees.map(treeToJson) };
    },
  };
}

export function createForest(options: ForestOptions = {}): ForestModel {
  return forestModel(options);
}

export function forestFromJson(json: RfJson): ForestModel {
  return forestModel({}, { inputs: json.inputs, trees: json.trees.map(treeFromJson) });
}

// ---------------------------------------------------------------------------------------
// Gradient-boosted trees

export interface BoostingOptions {
  /** Most boosting rounds; early stopping on the validation rows picks fewer. @default 300 */
  readonly maxTrees?: number;
  /** Shrinkage of every tree. @default 0.1 */
  readonly learningRate?: number;
  /** @default 3 */
  readonly maxDepth?: number;
  /** @default 3 */
  readonly minLeaf?: number;
  /** Share of rows each round sees (stochastic boosting). @default 0.8 */
  readonly subsample?: number;
  /** Share of the features tried at each node. @default 0.3 */
  readonly featureFraction?: number;
  /** Share of the training rows held out to choose the number of rounds. @default 0.2 */
  readonly validationFraction?: number;
  /** Rounds without a better validation error before stopping. @default 30 */
  readonly patience?: number;
  /** `ridge`: boost from a cross-validated ridge on log latency; `none`: from the mean. @default 'ridge' */
  readonly base?: 'ridge' | 'none';
  /** Per-column penalty multipliers of the ridge base (ridge.ts). @default undefined */
  readonly penaltyScales?: readonly number[];
  /** Penalties the ridge base cross-validates over. @default ridge.ts's grid */
  readonly baseLambdas?: readonly number[];
  /** @default 64 */
  readonly maxBins?: number;
  /** @default 0 */
  readonly seed?: number;
}

const linearJson = z.object({
  standardiser: standardiserJson,
  intercept: z.number(),
  weights: z.array(z.number()),
});

export const gbtJson = z.object({
  kind: z.literal('gbt'),
  inputs: z.number().int().positive(),
  /** log latency = base (linear on standardised x) + sum of the trees' leaves (shrinkage folded in). */
  base: linearJson,
  trees: z.array(treeJson),
  /** Relative RMS error on the validation rows: `std_ms` = rel_std x prediction. */
  rel_std: z.number().nonnegative(),
});
export type GbtJson = z.infer<typeof gbtJson>;

export interface BoostingModel extends Regressor {
  readonly kind: 'gbt';
  predictWithStd(x: Matrix): Promise<PredictionWithStd>;
  toJSON(): GbtJson;
}

type Linear = z.infer<typeof linearJson>;

function linearLog(base: Linear, x: Matrix, r: number): number {
  let s = base.intercept;
  const o = r * x.cols;
  for (let c = 0; c < x.cols; c++) {
    s +=
      (((x.data[o + c] as number) - (base.standardiser.means[c] as number)) /
        (base.standardiser.scales[c] as number)) *
      (base.weights[c] as number);
  }
  return s;
}

/**
 * The linear base and its penalty. `lambdas` of one entry fit that penalty without
 * cross-validation (the refit on every row reuses the penalty chosen on the boosting rows:
 * it is per row, so it carries over, and the refit's own cross-validation cost as much as
 * the first, about a third of the boosted trees' fit on 300 columns).
 */
async function fitBase(
  x: Matrix,
  latencyMs: Float64Array,
  kind: 'ridge' | 'none',
  penaltyScales?: readonly number[],
  lambdas?: readonly number[],
): Promise<{ linear: Linear; lambda: number | undefined }> {
  if (kind === 'none' || x.rows < 3) {
    const mean = latencyMs.reduce((a, v) => a + Math.log(v), 0) / latencyMs.length;
    return {
      linear: {
        standardiser: { means: new Array(x.cols).fill(0), scales: new Array(x.cols).fill(1) },
        intercept: mean,
        weights: new Array(x.cols).fill(0),
      },
      lambda: undefined,
    };
  }
  const fixed = lambdas?.length === 1 ? lambdas[0] : undefined;
  const ridge =
    fixed === undefined
      ? createRidge({ target: 'log', penaltyScales, lambdas })
      : createRidge({ target: 'log', penaltyScales, lambda: fixed, uncertainty: 'in-sample' });
  await ridge.fit(x, latencyMs);
  const j = ridge.toJSON();
  return {
    linear: { standardiser: j.standardiser, intercept: j.intercept, weights: j.weights },
    lambda: ridge.lambda,
  };
}

interface BoostState {
  inputs: number;
  base: Linear;
  trees: Tree[];
  relStd: number;
}

/** Boosts `rounds` trees on `rows`; calls `after(k, tree)` after each. */
function boost(
  binned: ReturnType<typeof binMatrix>,
  y: Float64Array,
  f: Float64Array,
  rows: Int32Array,
  rounds: number,
  o: Required<
    Omit<
      BoostingOptions,
      'base' | 'maxTrees' | 'validationFraction' | 'patience' | 'penaltyScales' | 'baseLambdas'
    >
  >,
  after: (tree: Tree) => boolean,
): void {
  const rng = createRng(o.seed);
  const residual = new Float64Array(y.length);
  const take = Math.max(2 * o.minLeaf, Math.round(o.subsample * rows.length));
  const featuresPerNode = Math.max(1, Math.round(o.featureFraction * binned.cols));
  const pool = rows.slice();
  for (let k = 0; k < rounds; k++) {
    for (const r of rows) residual[r] = (y[r] as number) - (f[r] as number);
    for (let i = 0; i < take && i < pool.length; i++) {
      const j = i + rng.int(pool.length - i);
      const t = pool[i] as number;
      pool[i] = pool[j] as number;
      pool[j] = t;
    }
    const sample = pool.slice(0, Math.min(take, pool.length)).sort();
    const tree = fitTree(binned, residual, sample, rng, {
      maxDepth: o.maxDepth,
      minLeaf: o.minLeaf,
      featuresPerNode,
    });
    const scaled: Tree = { ...tree, value: tree.value.map((v) => v * o.learningRate) };
    if (!after(scaled)) return;
  }
}

function boostingModel(options: BoostingOptions, state?: BoostState): BoostingModel {
  let trained = state;
  const need = () => {
    if (!trained) throw new ValidationError('gbt', 'predict called before fit');
    return trained;
  };
  const predictLog = (s: BoostState, x: Matrix) => {
    checkCols(x, s.inputs);
    const out = new Float64Array(x.rows);
    for (let r = 0; r < x.rows; r++) {
      let v = linearLog(s.base, x, r);
      for (const t of s.trees) v += predictTree(t, x, r);
      out[r] = v;
    }
    return out;
  };
  return {
    kind: 'gbt',
    async fit(x: Matrix, latencyMs: Float64Array): Promise<FitReport> {
      const started = performance.now();
      checkTargets(x, latencyMs);
      const {
        maxTrees = 300,
        validationFraction = 0.2,
        patience = 30,
        base: baseKind = 'ridge',
      } = options;
      const o = {
        learningRate: options.learningRate ?? 0.1,
        maxDepth: options.maxDepth ?? 3,
        minLeaf: options.minLeaf ?? 3,
        subsample: options.subsample ?? 0.8,
        featureFraction: options.featureFraction ?? 0.3,
        maxBins: options.maxBins ?? 64,
        seed: options.seed ?? 0,
      };
      const y = latencyMs.map(Math.log);
      const binned = binMatrix(x, o.maxBins);
      const rng = createRng(o.seed + 1);
      const order = Int32Array.from({ length: x.rows }, (_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        const t = order[i] as number;
        order[i] = order[j] as number;
        order[j] = t;
      }
      const nVal = Math.max(2, Math.round(validationFraction * x.rows));
      const valRows = order.slice(0, nVal);
      const fitRows = order.slice(nVal).sort();

      // Rounds and the validation error: base and trees fitted on the other rows only.
      const fitX = selectRows(x, fitRows);
      const { linear: fitBaseModel, lambda } = await fitBase(
        fitX,
        pick(latencyMs, fitRows),
        baseKind,
        options.penaltyScales,
        options.baseLambdas,
      );
      const f = new Float64Array(x.rows);
      for (let r = 0; r < x.rows; r++) f[r] = linearLog(fitBaseModel, x, r);
      const valError = () => {
        let s = 0;
        for (const r of valRows) s += (Math.exp((f[r] as number) - (y[r] as number)) - 1) ** 2;
        return s / valRows.length;
      };
      let best = { rounds: 0, error: valError() };
      let k = 0;
      if (fitRows.length >= 2 * o.minLeaf) {
        boost(binned, y, f, fitRows, maxTrees, o, (tree) => {
          k++;
          for (let r = 0; r < x.rows; r++) f[r] = (f[r] as number) + predictTree(tree, x, r);
          const e = valError();
          if (e < best.error) best = { rounds: k, error: e };
          return k - best.rounds < patience;
        });
      }
      // Refit on every row with the chosen number of rounds.
      const { linear: base } = await fitBase(
        x,
        latencyMs,
        baseKind,
        options.penaltyScales,
        lambda === undefined ? options.baseLambdas : [lambda],
      );
      const all = Int32Array.from({ length: x.rows }, (_, i) => i);
      for (let r = 0; r < x.rows; r++) f[r] = linearLog(base, x, r);
      const trees: Tree[] = [];
      if (best.rounds > 0) {
        boost(binned, y, f, all, best.rounds, o, (tree) => {
          trees.push(tree);
          for (let r = 0; r < x.rows; r++) f[r] = (f[r] as number) + predictTree(tree, x, r);
          return true;
        });
      }
      trained = { inputs: x.cols, base, trees, relStd: Math.sqrt(best.error) };
      return { seconds: (performance.now() - started) / 1000 };
    },
    async predict(x: Matrix): Promise<Float64Array> {
      return predictLog(need(), x).map(Math.exp);
    },
    async predictWithStd(x: Matrix): Promise<PredictionWithStd> {
      const s = need();
      const mean = predictLog(s, x).map(Math.exp);
      return { mean, std: mean.map((m) => m * s.relStd) };
    },
    toJSON(): GbtJson {
      const s = need();
      return {
        kind: 'gbt',
        inputs: s.inputs,
        base: s.base,
        trees: s.trees.map(treeToJson),
        rel_std: s.relStd,
      };
    },
  };
}

function pick(values: Float64Array, rows: Int32Array): Float64Array {
  return Float64Array.from(rows, (r) => values[r] as number);
}

export function createBoosting(options: BoostingOptions = {}): BoostingModel {
  return boostingModel(options);
}

export function boostingFromJson(json: GbtJson): BoostingModel {
  return boostingModel(
    {},
    {
      inputs: json.inputs,
      base: { ...json.base, standardiser: parseStandardiser(json.base.standardiser) },
      trees: json.trees.map(treeFromJson),
      relStd: json.rel_std,
    },
  );
}
