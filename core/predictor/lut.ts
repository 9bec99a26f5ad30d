/**
 * Lookup-table baseline in the style of Once-for-All: a network's latency is the sum of
 * its blocks' costs plus a stem/head cost and a fixed overhead. Unlike OFA, which times
 * every block in isolation, the table is fitted from whole-network measurements by
 * non-negative, ridge-regularised least squares, so it needs the same data as every other
 * predictor and no per-block measurement mode on the device.
 *
 * Table keys are (resolution bucket, unit, first-or-later block, block feature tuple). A
 * unit's first block is keyed apart because it carries the stride and the channel change.
 * Within a bucket a key's cost is scaled by its unit's feature-map area relative to the
 * bucket's mean area for that unit (`unitAreaScales`; the stem/head by (r / r_ref)^2, r_ref
 * the bucket's mean resolution), because a block's work grows with its input area; with one
 * bucket the table is a pure area model, with one bucket per resolution it is OFA's
 * per-resolution table.
 *
 * Only sums are identified: every unit has exactly one first block (when its minimum depth
 * is at least 1), so the stem/head cost can trade against the first-block costs; the ridge
 * term picks the smallest such table.
 */
import { z } from 'zod';
import {
  blockTupleIndex,
  type CompiledUnit,
  checkShape,
  combinationLabels,
  compileSpace,
  resolutionIndex,
  unitAreaScales,
  unitTupleOffset,
} from '../encodings/layout.ts';
import { ValidationError } from '../errors.ts';
import type { SearchSpace, Subnet } from '../spaces/types.ts';
import { solveSpd } from './ridge.ts';
import type { FitReport, Matrix, PredictionWithStd, Regressor } from './types.ts';

/** Resolutions `lo`..`hi` (inclusive) share table entries, scaled relative to `ref`. */
export interface ResolutionBucket {
  readonly lo: number;
  readonly hi: number;
  readonly ref: number;
}

export interface LutLayoutOptions {
  /**
   * Number of resolution buckets (clipped to the number of resolutions of the space). One
   * bucket (a pure area model) fitted best in docs/BENCHMARKS.md; each extra bucket gives
   * every entry only part of the data.
   * @default 1
   */
  readonly buckets?: number;
}

/** Turns a subnet into its LUT design row: how often each table entry occurs, area-scaled. */
export interface LutLayout {
  readonly space: SearchSpace;
  readonly buckets: readonly ResolutionBucket[];
  readonly length: number;
  readonly labels: readonly string[];
  encode(subnet: Subnet): Float64Array;
}

/** Contiguous buckets of nearly equal numbers of the space's resolutions. */
export function resolutionBuckets(space: SearchSpace, count: number): ResolutionBucket[] {
  const sorted = [...space.resolutions].sort((a, b) => a - b);
  const n = Math.max(1, Math.min(Math.floor(count), sorted.length));
  const out: ResolutionBucket[] = [];
  for (let b = 0; b < n; b++) {
    const group = sorted.slice(
      Math.floor((b * sorted.length) / n),
      Math.floor(((b + 1) * sorted.length) / n),
    );
    const lo = group[0] as number;
    const hi = group[group.length - 1] as number;
    out.push({ lo, hi, ref: group.reduce((a, r) => a + r, 0) / group.length });
  }
  return out;
}

/**
 * Each resolution's bucket, and the entry scale of unit u at resolution index i
 * (`unitScale[i * units + u]`): its area over the bucket's mean area. The LUT's encoder and
 * its in-graph form (core/onnx/arch-graph.ts) share it.
 */
export function bucketScales(
  space: SearchSpace,
  buckets: readonly ResolutionBucket[],
): { bucketOf: number[]; unitScale: Float64Array } {
  const bucketOf = space.resolutions.map((r) => buckets.findIndex((k) => r >= k.lo && r <= k.hi));
  const nUnits = space.units.length;
  const areas = unitAreaScales(space);
  const unitScale = new Float64Array(areas.length);
  buckets.forEach((_, b) => {
    const members = space.resolutions.map((_, i) => i).filter((i) => bucketOf[i] === b);
    for (let u = 0; u < nUnits; u++) {
      const mean =
        members.reduce((acc, i) => acc + (areas[i * nUnits + u] as number), 0) / members.length;
      for (const i of members) unitScale[i * nUnits + u] = (areas[i * nUnits + u] as number) / mean;
    }
  });
  return { bucketOf, unitScale };
}

export function lutLayout(space: SearchSpace, options: LutLayoutOptions = {}): LutLayout {
  const { buckets: count = 1 } = options;
  if (!Number.isInteger(count) || count < 1) {
    throw new ValidationError('buckets', `must be a positive integer, got ${count}`);
  }
  const compiled = compileSpace(space);
  const buckets = resolutionBuckets(space, count);
  const { bucketOf, unitScale } = bucketScales(space, buckets);
  const nUnits = space.units.length;
  const perBucketLabels: string[] = [];
  const unitOffsets: number[] = [];
  space.units.forEach((unit, u) => {
    unitOffsets.push(perBucketLabels.length);
    const tuples = combinationLabels(unit);
    for (const section of ['first', 'rest']) {
      for (const t of tuples) perBucketLabels.push(`u${u}.${section}.${t}`);
    }
  });
  perBucketLabels.push('stem_head');
  const width = perBucketLabels.length;
  const labels = [
    ...buckets.flatMap((b) => perBucketLabels.map((l) => `r${b.lo}-${b.hi}.${l}`)),
    'overhead',
  ];
  return {
    space,
    buckets,
    length: labels.length,
    labels,
    encode(subnet: Subnet): Float64Array {
      checkShape(compiled, subnet);
      const out = new Float64Array(labels.length);
      const ri = resolutionIndex(compiled, subnet);
      const b = bucketOf[ri] as number;
      const scale = (subnet.resolution / (buckets[b] as ResolutionBucket).ref) ** 2;
      const base = b * width;
      for (let u = 0; u < compiled.units.length; u++) {
        const unit = compiled.units[u] as CompiledUnit;
        const sub = subnet.units[u] as (typeof subnet.units)[number];
        const unitOffset = unitTupleOffset(unit, sub.choices, u);
        const first = base + (unitOffsets[u] as number);
        const blockScale = unitScale[ri * nUnits + u] as number;
        for (let slot = 0; slot < sub.blocks.length; slot++) {
          const block = sub.blocks[slot] as (typeof sub.blocks)[number];
          const at =
            (slot === 0 ? first : first + unit.combinations) +
            blockTupleIndex(unit, block, unitOffset, u, slot);
          out[at] = (out[at] as number) + blockScale;
        }
      }
      out[base + width - 1] = scale;
      out[labels.length - 1] = 1;
      return out;
    },
  };
}

/** The LUT design row of one subnet (see `lutLayout`). */
export function lutFeatures(
  space: SearchSpace,
  subnet: Subnet,
  options: LutLayoutOptions = {},
): Float64Array {
  return lutLayout(space, options).encode(subnet);
}

export interface LutOptions {
  /**
   * Ridge penalty per sample on the table entries (in ms^2): pulls rarely seen entries
   * towards 0 and picks one table among those with equal sums.
   * @default 1e-6
   */
  readonly lambda?: number;
  /**
   * Active-set iterations for the non-negativity constraint (each solves one linear
   * system of the entries in use).
   * @default 200
   */
  readonly maxIterations?: number;
}

export const lutJson = z.object({
  kind: z.literal('lut'),
  lambda: z.number().nonnegative(),
  costs: z.array(z.number().nonnegative()),
  /**
   * In-sample relative RMS error, inflated by sqrt(n / (n - k)) for the k non-zero entries
   * (twice the in-sample error when n <= 2k): `std_ms` = rel_std x prediction.
   */
  rel_std: z.number().nonnegative().optional(),
});
export type LutJson = z.infer<typeof lutJson>;

export interface LutModel extends Regressor {
  readonly kind: 'lut';
  predictWithStd(x: Matrix): Promise<PredictionWithStd>;
  /** Fitted cost per table entry in ms (at the bucket's reference resolution). */
  readonly costs: Float64Array | undefined;
  toJSON(): LutJson;
}

/** Sparse accumulation of X^T X and X^T y: LUT rows have a handful of non-zeros. */
function normalEquations(x: Matrix, y: Float64Array) {
  const p = x.cols;
  const gram = new Float64Array(p * p);
  const rhs = new Float64Array(p);
  const nz: number[] = [];
  for (let i = 0; i < x.rows; i++) {
    nz.length = 0;
    for (let j = 0; j < p; j++) if (x.data[i * p + j] !== 0) nz.push(j);
    for (const j of nz) {
      const xj = x.data[i * p + j] as number;
      rhs[j] = (rhs[j] as number) + xj * (y[i] as number);
      for (const k of nz)
        gram[j * p + k] = (gram[j * p + k] as number) + xj * (x.data[i * p + k] as number);
    }
  }
  return { gram, rhs };
}

/** Solves gram[P, P] z = rhs[P] for the index set P (Cholesky). */
function solveSubset(gram: Float64Array, rhs: Float64Array, p: number, set: readonly number[]) {
  const k = set.length;
  const a = new Float64Array(k * k);
  const b = new Float64Array(k);
  set.forEach((i, r) => {
    b[r] = rhs[i] as number;
    set.forEach((j, c) => {
      a[r * k + c] = gram[i * p + j] as number;
    });
  });
  return solveSpd(a, b, k);
}

/**
 * Minimises |Xw - y|^2 + lambda n |w|^2 subject to w >= 0 by the Lawson-Hanson active-set
 * method on the normal equations, warm-started with the entries that are positive in the
 * unconstrained solution. The table is nearly rank-deficient (only sums are identified), so
 * first-order methods crawl along the flat directions; the active-set method is exact and
 * usually needs a handful of steps from the warm start.
 */
function nonNegativeRidge(
  x: Matrix,
  y: Float64Array,
  lambda: number,
  maxIterations: number,
): Float64Array {
  const full = normalEquations(x, y);
  // Entries no training row uses stay at cost 0 and are left out of the solve.
  const seen: number[] = [];
  for (let j = 0; j < x.cols; j++) if ((full.gram[j * x.cols + j] as number) > 0) seen.push(j);
  const p = seen.length;
  const gram = new Float64Array(p * p);
  const rhs = new Float64Array(p);
  seen.forEach((j, a) => {
    rhs[a] = full.rhs[j] as number;
    seen.forEach((k, b) => {
      gram[a * p + b] = full.gram[j * x.cols + k] as number;
    });
  });
  const penalty = Math.max(lambda * x.rows, 1e-9);
  for (let j = 0; j < p; j++) gram[j * p + j] = (gram[j * p + j] as number) + penalty;

  const w = new Float64Array(p);
  const passive = new Uint8Array(p);
  const unconstrained = solveSpd(gram, rhs, p);
  unconstrained.forEach((v, j) => {
    if (v > 0) passive[j] = 1;
  });
  const tolerance = 1e-10 * Math.max(...rhs.map(Math.abs), 1e-12);
  const members = () => Array.from({ length: p }, (_, j) => j).filter((j) => passive[j] === 1);
  for (let iteration = 0; ; iteration++) {
    // Inner loop: move from w towards the passive-set solution, dropping entries that hit 0.
    for (;;) {
      const set = members();
      const z = set.length > 0 ? solveSubset(gram, rhs, p, set) : new Float64Array(0);
      let alpha = 1;
      set.forEach((j, r) => {
        const zj = z[r] as number;
        if (zj <= 0) alpha = Math.min(alpha, (w[j] as number) / ((w[j] as number) - zj));
      });
      set.forEach((j, r) => {
        w[j] = (w[j] as number) + alpha * ((z[r] as number) - (w[j] as number));
        if (alpha < 1 && (w[j] as number) <= 1e-15) {
          w[j] = 0;
          passive[j] = 0;
        }
      });
      if (alpha === 1) break;
    }
    if (iteration >= maxIterations) break;
    // Outer loop: add the active entry whose cost most wants to grow, if any.
    let best = -1;
    let bestGradient = tolerance;
    for (let j = 0; j < p; j++) {
      if (passive[j] === 1) continue;
      let g = rhs[j] as number;
      for (let k = 0; k < p; k++) g -= (gram[j * p + k] as number) * (w[k] as number);
      if (g > bestGradient) {
        best = j;
        bestGradient = g;
      }
    }
    if (best < 0) break;
    passive[best] = 1;
  }
  const costs = new Float64Array(x.cols);
  seen.forEach((j, a) => {
    costs[j] = w[a] as number;
  });
  return costs;
}

export function createLut(options: LutOptions = {}): LutModel {
  const { lambda = 1e-6, maxIterations = 200 } = options;
  if (!(lambda >= 0)) throw new ValidationError('lambda', `must be >= 0, got ${lambda}`);
  return lutModel(lambda, maxIterations);
}

function lutModel(
  lambda: number,
  maxIterations: number,
  fitted?: Float64Array,
  fittedRelStd = 0,
): LutModel {
  let costs = fitted;
  let relStd = fittedRelStd;
  const predictRows = (x: Matrix): Float64Array => {
    if (!costs) throw new ValidationError('lut', 'predict called before fit');
    if (x.cols !== costs.length) {
      throw new ValidationError(
        'x',
        `has ${x.cols} columns, the table has ${costs.length}; use lutLayout rows`,
      );
    }
    const out = new Float64Array(x.rows);
    for (let i = 0; i < x.rows; i++) {
      let sum = 0;
      for (let j = 0; j < x.cols; j++)
        sum += (x.data[i * x.cols + j] as number) * (costs[j] as number);
      out[i] = sum;
    }
    return out;
  };
  return {
    kind: 'lut',
    get costs() {
      return costs;
    },
    async fit(x: Matrix, latencyMs: Float64Array): Promise<FitReport> {
      const started = performance.now();
      if (latencyMs.length !== x.rows) {
        throw new ValidationError('latencyMs', `has ${latencyMs.length} values for ${x.rows} rows`);
      }
      latencyMs.forEach((v, i) => {
        if (!(v > 0)) throw new ValidationError(`latencyMs[${i}]`, `must be positive, got ${v}`);
      });
      costs = nonNegativeRidge(x, latencyMs, lambda, maxIterations);
      const fitted = predictRows(x);
      let square = 0;
      latencyMs.forEach((m, i) => {
        square += (((fitted[i] as number) - m) / m) ** 2;
      });
      const k = costs.reduce((n, c) => n + (c > 0 ? 1 : 0), 0);
      const n = x.rows;
      const inflation = n > 2 * k ? Math.sqrt(n / (n - k)) : 2;
      relStd = inflation * Math.sqrt(square / n);
      return { seconds: (performance.now() - started) / 1000 };
    },
    async predict(x: Matrix): Promise<Float64Array> {
      return predictRows(x);
    },
    async predictWithStd(x: Matrix): Promise<PredictionWithStd> {
      const mean = predictRows(x);
      return { mean, std: mean.map((m) => m * relStd) };
    },
    toJSON(): LutJson {
      if (!costs) throw new ValidationError('lut', 'toJSON called before fit');
      return { kind: 'lut', lambda, costs: Array.from(costs), rel_std: relStd };
    },
  };
}

/** Restores a fitted table from `toJSON` output. */
export function lutFromJSON(json: unknown): LutModel {
  const result = lutJson.safeParse(json);
  if (!result.success) {
    throw new ValidationError(
      'lut',
      result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
    );
  }
  return lutModel(
    result.data.lambda,
    0,
    Float64Array.from(result.data.costs),
    result.data.rel_std ?? 0,
  );
}
