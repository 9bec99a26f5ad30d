/**
 * Regression trees for the tree ensembles (random forest, gradient-boosted trees): CART with
 * squared error, split points found on per-feature histograms of at most `maxBins` bins
 * (quantiles of the training rows), so a node costs O(rows x features) and a 4,000-row
 * forest trains in about a second.
 *
 * Thresholds are float32 numbers and rows are compared after rounding to float32, exactly
 * as onnxruntime's `TreeEnsembleRegressor` compares its float input (mode BRANCH_LEQ: go
 * left when x <= threshold), so JavaScript and ONNX predictions take the same paths.
 */
import { z } from 'zod';
import type { Rng } from '../rng.ts';
import type { Matrix } from './types.ts';

/** A tree as flat arrays; node 0 is the root, `feature[i] < 0` marks a leaf. */
export interface Tree {
  readonly feature: Int32Array;
  readonly threshold: Float32Array;
  readonly left: Int32Array;
  readonly right: Int32Array;
  /** Leaf values (0 at internal nodes). */
  readonly value: Float64Array;
}

export const treeJson = z
  .object({
    feature: z.array(z.number().int()),
    threshold: z.array(z.number()),
    left: z.array(z.number().int()),
    right: z.array(z.number().int()),
    value: z.array(z.number()),
  })
  .refine(
    (t) =>
      [t.threshold, t.left, t.right, t.value].every((a) => a.length === t.feature.length) &&
      t.feature.length > 0,
    { message: 'feature, threshold, left, right and value must have the same, non-zero length' },
  );
export type TreeJson = z.infer<typeof treeJson>;

export function treeToJson(tree: Tree): TreeJson {
  return {
    feature: Array.from(tree.feature),
    threshold: Array.from(tree.threshold),
    left: Array.from(tree.left),
    right: Array.from(tree.right),
    value: Array.from(tree.value),
  };
}

export function treeFromJson(json: TreeJson): Tree {
  return {
    feature: Int32Array.from(json.feature),
    threshold: Float32Array.from(json.threshold),
    left: Int32Array.from(json.left),
    right: Int32Array.from(json.right),
    value: Float64Array.from(json.value),
  };
}

/** The leaf value of row `r` of `x` (compared in float32, like onnxruntime). */
export function predictTree(tree: Tree, x: Matrix, r: number): number {
  let node = 0;
  const offset = r * x.cols;
  for (;;) {
    const f = tree.feature[node] as number;
    if (f < 0) return tree.value[node] as number;
    const v = Math.fround(x.data[offset + f] as number);
    node =
      v <= (tree.threshold[node] as number)
        ? (tree.left[node] as number)
        : (tree.right[node] as number);
  }
}

/** Histogram bins of every feature of the training matrix. */
export interface Binned {
  readonly rows: number;
  readonly cols: number;
  /**
   * `bins[c * rows + r]`: the bin of row r's value of feature c (column-major: a node's
   * histogram of one feature reads one short contiguous array).
   */
  readonly bins: Uint8Array;
  /** Number of bins of each feature (1: constant, never split). */
  readonly counts: Int32Array;
  /** `edges[c][b]`: the float32 threshold between bins b and b + 1 of feature c. */
  readonly edges: readonly Float32Array[];
}

/**
 * Bins each feature: distinct (float32) values are their own bins when there are at most
 * `maxBins`, else quantile groups; each edge is the midpoint between neighbouring groups,
 * rounded to float32 and nudged so that both sides stay on their side after rounding.
 */
export function binMatrix(x: Matrix, maxBins = 64): Binned {
  const { rows, cols } = x;
  const bins = new Uint8Array(rows * cols);
  const counts = new Int32Array(cols);
  const edges: Float32Array[] = [];
  const column = new Float64Array(rows);
  for (let c = 0; c < cols; c++) {
    for (let r = 0; r < rows; r++) column[r] = Math.fround(x.data[r * cols + c] as number);
    const sorted = Float64Array.from(column).sort();
    const distinct: number[] = [];
    for (const v of sorted)
      if (distinct.length === 0 || v !== distinct[distinct.length - 1]) distinct.push(v);
    // Upper value of each bin: every distinct value, or quantile cut points.
    let uppers: number[];
    if (distinct.length <= maxBins) uppers = distinct;
    else {
      uppers = [];
      for (let b = 1; b <= maxBins; b++) {
        const v = sorted[Math.min(rows - 1, Math.ceil((b * rows) / maxBins) - 1)] as number;
        if (uppers.length === 0 || v > (uppers[uppers.length - 1] as number)) uppers.push(v);
      }
      if ((uppers[uppers.length - 1] as number) < (distinct[distinct.length - 1] as number)) {
        uppers.push(distinct[distinct.length - 1] as number);
      }
    }
    const edge = new Float32Array(Math.max(0, uppers.length - 1));
    for (let b = 0; b + 1 < uppers.length; b++) {
      const lo = uppers[b] as number;
      const next = distinct.find((v) => v > lo) as number;
      let t = Math.fround((lo + next) / 2);
      // Midpoints of adjacent float32 numbers round to one of them; keep lo <= t < next.
      if (t >= next) t = lo;
      edge[b] = t;
    }
    edges.push(edge);
    counts[c] = uppers.length;
    for (let r = 0; r < rows; r++) {
      const v = column[r] as number;
      // Binary search for the first edge >= v.
      let lo = 0;
      let hi = edge.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (v <= (edge[mid] as number)) hi = mid;
        else lo = mid + 1;
      }
      bins[c * rows + r] = lo;
    }
  }
  return { rows, cols, bins, counts, edges };
}

export interface TreeOptions {
  /** @default 8 */
  readonly maxDepth?: number;
  /** Fewest training rows (counting bootstrap repeats) in a leaf. @default 2 */
  readonly minLeaf?: number;
  /** Features tried at each node (random subset); undefined: all. @default undefined */
  readonly featuresPerNode?: number;
}

/**
 * Fits one regression tree to `y` on the rows listed in `rows` (repeats allowed: a
 * bootstrap sample). Leaves hold the mean of their rows' targets. A repeated row is kept
 * once with its count as a weight (the same sums, counts and splits): a bootstrap sample
 * holds about 63 % distinct rows, so the histograms read a third fewer rows.
 */
export function fitTree(
  binned: Binned,
  y: Float64Array,
  rows: Int32Array,
  rng: Rng,
  options: TreeOptions = {},
): Tree {
  const { maxDepth = 8, minLeaf = 2, featuresPerNode } = options;
  const { cols, rows: nRows, bins, counts, edges } = binned;
  const feature: number[] = [];
  const threshold: number[] = [];
  const left: number[] = [];
  const right: number[] = [];
  const value: number[] = [];
  const candidates = Int32Array.from({ length: cols }, (_, c) => c).filter(
    (c) => (counts[c] as number) > 1,
  );
  const maxB = Math.max(1, ...Array.from(counts));
  const sum = new Float64Array(maxB);
  const cnt = new Float64Array(maxB);
  const weight = new Float64Array(nRows);
  for (const r of rows) weight[r] = (weight[r] as number) + 1;
  const distinct = Int32Array.from({ length: nRows }, (_, r) => r).filter(
    (r) => (weight[r] as number) > 0,
  );

  const grow = (members: Int32Array, depth: number): number => {
    const id = feature.length;
    let total = 0;
    let n = 0;
    for (const r of members) {
      const w = weight[r] as number;
      total += w * (y[r] as number);
      n += w;
    }
    feature.push(-1);
    threshold.push(0);
    left.push(-1);
    right.push(-1);
    value.push(n > 0 ? total / n : 0);
    if (depth >= maxDepth || n < 2 * minLeaf || candidates.length === 0) return id;

    let tried: Int32Array = candidates;
    if (featuresPerNode !== undefined && featuresPerNode < candidates.length) {
      // Partial Fisher-Yates: the first k of a shuffled copy.
      const pool = candidates.slice();
      for (let i = 0; i < featuresPerNode; i++) {
        const j = i + rng.int(pool.length - i);
        const t = pool[i] as number;
        pool[i] = pool[j] as number;
        pool[j] = t;
      }
      tried = pool.subarray(0, featuresPerNode);
    }
    const parentScore = (total * total) / n;
    let bestGain = 1e-12 * Math.abs(parentScore);
    let bestFeature = -1;
    let bestBin = -1;
    for (const c of tried) {
      const nb = counts[c] as number;
      sum.fill(0, 0, nb);
      cnt.fill(0, 0, nb);
      const at = c * nRows;
      for (const r of members) {
        const b = bins[at + r] as number;
        const w = weight[r] as number;
        sum[b] = (sum[b] as number) + w * (y[r] as number);
        cnt[b] = (cnt[b] as number) + w;
      }
      let sl = 0;
      let nl = 0;
      for (let b = 0; b + 1 < nb; b++) {
        sl += sum[b] as number;
        nl += cnt[b] as number;
        const nr = n - nl;
        if (nl < minLeaf) continue;
        if (nr < minLeaf) break;
        const sr = total - sl;
        const gain = (sl * sl) / nl + (sr * sr) / nr - parentScore;
        if (gain > bestGain) {
          bestGain = gain;
          bestFeature = c;
          bestBin = b;
        }
      }
    }
    if (bestFeature < 0) return id;
    let nl = 0;
    const at = bestFeature * nRows;
    for (const r of members) if ((bins[at + r] as number) <= bestBin) nl++;
    const lo = new Int32Array(nl);
    const hi = new Int32Array(members.length - nl);
    let a = 0;
    let b = 0;
    for (const r of members) {
      if ((bins[at + r] as number) <= bestBin) lo[a++] = r;
      else hi[b++] = r;
    }
    feature[id] = bestFeature;
    threshold[id] = (edges[bestFeature] as Float32Array)[bestBin] as number;
    value[id] = 0;
    left[id] = grow(lo, depth + 1);
    right[id] = grow(hi, depth + 1);
    return id;
  };
  grow(distinct, 0);
  return {
    feature: Int32Array.from(feature),
    threshold: Float32Array.from(threshold),
    left: Int32Array.from(left),
    right: Int32Array.from(right),
    value: Float64Array.from(value),
  };
}
