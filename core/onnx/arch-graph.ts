/**
 * The arch-in predictor graph: an encoding subgraph that turns arch rows (int64 [batch, L],
 * `arch-graph-layout.ts`) into the predictor's input vector with plain ONNX operators
 * (table lookups by Gather, one-hots by Equal, depth masks by Less, per-unit ReduceSum /
 * ReduceMin / ReduceMax, area scaling by looked-up factors), composed in front of whatever
 * model graph predictor.onnx holds. The model graph is not inspected, so every model kind
 * (and every kind added later) gets an arch-in graph without code of its own.
 *
 * The encoding is computed in float64 and cast to float32 at the end, the same arithmetic as
 * the JavaScript encoders (they compute in float64 and store float32), so the model sees the
 * vectors `esm encode` writes: bit for bit for onehot, feature and fcc, and to the last float64
 * bit of a sum (summation order) for statistical and the LUT rows.
 *
 * Inside, the batch is the LAST axis ([features, batch]): the graph reorders and selects
 * whole feature rows (Gather on axis 0 copies contiguous blocks of `batch` values), where
 * selecting columns of [batch, features] copies one value at a time and cost 3x more.
 *
 * A row the space does not allow (a value outside its choice, a depth outside the unit's
 * range) cannot throw inside onnxruntime, so such a row predicts NaN; inactive slots are
 * ignored like the native parsers ignore them.
 */
import { fccEncoder } from '../encodings/fcc.ts';
import { featureEncoder } from '../encodings/feature.ts';
import { combinations, compileSpace, unitAreaScales } from '../encodings/layout.ts';
import { onehotEncoder } from '../encodings/onehot.ts';
import { physicsLabels } from '../encodings/physics.ts';
import { statisticalEncoder } from '../encodings/statistical.ts';
import { ArchGraphUnsupportedError, ValidationError } from '../errors.ts';
import type { FeaturesJson } from '../predictor/artifact.ts';
import { bucketScales, lutLayout, resolutionBuckets } from '../predictor/lut.ts';
import { macKinds } from '../spaces/cost.ts';
import { type SearchSpace, SKIP_CHOICE } from '../spaces/types.ts';
import {
  ARCH_INPUT,
  type ArchRowEntry,
  type ArchRowLayout,
  archRowLayout,
} from './arch-graph-layout.ts';
import { type ChainTables, physicsTables, SUM_COLUMNS, type WholeTables } from './arch-physics.ts';
import { attr, type OnnxGraph, type OnnxInitializer, type OnnxNode } from './model.ts';

/** ONNX TensorProto data types used by Cast. */
export const TYPE = { float: 1, int32: 6, int64: 7, bool: 9, double: 11 } as const;
const PREFIX = 'arch/';

/** Appends nodes and constants with unique names under the `arch/` prefix. */
export class Builder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxInitializer[] = [];
  private count = 0;

  private fresh(hint: string): string {
    this.count += 1;
    return `${PREFIX}${hint}_${this.count}`;
  }

  i64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const name = this.fresh('i64');
    this.initializers.push({ name, dims, data: BigInt64Array.from(values, (v) => BigInt(v)) });
    return name;
  }

  i32(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const name = this.fresh('i32');
    this.initializers.push({ name, dims, data: Int32Array.from(values) });
    return name;
  }

  i32col(values: readonly number[]): string {
    return this.i32(values, [values.length, 1]);
  }

  f32(values: ArrayLike<number>, dims: readonly number[] = [values.length]): string {
    const name = this.fresh('f32');
    this.initializers.push({ name, dims, data: Float32Array.from(values) });
    return name;
  }

  f64(values: ArrayLike<number>, dims: readonly number[] = [values.length]): string {
    const name = this.fresh('f64');
    this.initializers.push({ name, dims, data: Float64Array.from(values) });
    return name;
  }

  op(type: string, inputs: readonly string[], attributes?: OnnxNode['attributes'], out?: string) {
    const output = out ?? this.fresh(type.toLowerCase());
    this.nodes.push({ op: type, inputs, outputs: [output], name: output, attributes });
    return output;
  }

  cast(x: string, to: keyof typeof TYPE): string {
    return this.op('Cast', [x], { to: attr.int(TYPE[to]) });
  }

  /** An int64 constant shaped [k, 1], broadcasting one value per feature row over the batch. */
  i64col(values: readonly number[]): string {
    return this.i64(values, [values.length, 1]);
  }

  f64col(values: ArrayLike<number>): string {
    return this.f64(values, [values.length, 1]);
  }

  /** Feature rows `indices` of a [k, batch] tensor. */
  rows(x: string, indices: readonly number[]): string {
    return this.op('Gather', [x, this.i64(indices)], { axis: attr.int(0) });
  }

  /**
   * A 1-D table looked up at every element of an index tensor (int32 or int64), shaped as
   * the indices. By GatherElements on the indices flattened, not Gather: onnxruntime's
   * Gather costs about 8 ns per index whatever it copies, GatherElements about 1 ns per
   * element (this machine's onnxruntime-node, tables and indices of the arch graphs' sizes).
   */
  lookup(table: string, indices: string): string {
    const got = this.op('GatherElements', [table, this.reshape(indices, [-1])], {
      axis: attr.int(0),
    });
    // allowzero: an empty batch's 0 is a length, not "copy this dimension".
    return this.op('Reshape', [got, this.op('Shape', [indices])], { allowzero: attr.int(1) });
  }

  reshape(x: string, shape: readonly number[]): string {
    return this.op('Reshape', [x, this.i64(shape)]);
  }

  /** [d0, ..., dk, batch] -> [d0 * ... * dk, batch]. */
  flatten(x: string, rank: number): string {
    return this.op('Flatten', [x], { axis: attr.int(rank - 1) });
  }

  concat(inputs: readonly string[], axis: number): string {
    return inputs.length === 1
      ? (inputs[0] as string)
      : this.op('Concat', inputs, { axis: attr.int(axis) });
  }

  reduce(kind: 'Sum' | 'Min' | 'Max', x: string, axes: readonly number[], keepdims: boolean) {
    // Opset 17: ReduceSum takes its axes as an input, ReduceMin / ReduceMax as an attribute.
    return kind === 'Sum'
      ? this.op('ReduceSum', [x, this.i64(axes)], { keepdims: attr.int(keepdims ? 1 : 0) })
      : this.op(`Reduce${kind}`, [x], {
          axes: attr.ints(axes),
          keepdims: attr.int(keepdims ? 1 : 0),
        });
  }

  /** Split along `axis` into pieces of `sizes` (one node, several outputs). */
  split(x: string, axis: number, sizes: readonly number[]): string[] {
    const outputs = sizes.map(() => this.fresh('split'));
    this.nodes.push({
      op: 'Split',
      inputs: [x, this.i64(sizes)],
      outputs,
      name: outputs[0],
      attributes: { axis: attr.int(axis) },
    });
    return [...outputs];
  }

  slice(x: string, axis: number, start: number, end: number): string {
    return this.op('Slice', [x, this.i64([start]), this.i64([end]), this.i64([axis])]);
  }
}

/** What the front part computes once for every encoding. */
interface Front {
  readonly b: Builder;
  readonly space: SearchSpace;
  readonly layout: ArchRowLayout;
  /** int32 [L, N]: index of each column's value in its choice (depth: the depth), -1 if invalid. */
  readonly idx: string;
  /** float64 [L, N]: each column's value, 0 for an inactive slot. */
  readonly value: string;
  /** bool [L, N]: false for inactive slots. */
  readonly active: string;
  /** bool [N, 1]: every active column holds an allowed value. */
  readonly valid: string;
  /** int32 [1, N]: index of the row's resolution. */
  readonly ri: string;
}

function maxCode(entry: ArchRowEntry): number {
  return Math.max(...entry.codes);
}

function buildFront(b: Builder, space: SearchSpace): Front {
  const layout = archRowLayout(space);
  const { entries } = layout;
  // One table segment per column: [code < 0, code 0 .. max, code > max] -> index / value.
  const offsets: number[] = [];
  const highs: number[] = [];
  const indexTable: number[] = [];
  const valueTable: number[] = [];
  for (const entry of entries) {
    const max = maxCode(entry);
    offsets.push(indexTable.length + 1);
    highs.push(max + 1);
    const segment = new Array<number>(max + 3).fill(-1);
    const values = new Array<number>(max + 3).fill(0);
    entry.codes.forEach((code, i) => {
      segment[code + 1] = entry.kind === 'depth' ? (entry.values[i] as number) : i;
      values[code + 1] = entry.values[i] as number;
    });
    indexTable.push(...segment);
    valueTable.push(...values);
  }
  // Codes are small: int32 from here on halves the memory traffic (and ORT transposes
  // 4-byte elements faster than 8-byte ones). Values past int32 are clipped first.
  const bounded = b.op('Min', [b.op('Max', [ARCH_INPUT, b.i64([-1], [])]), b.i64([2 ** 30], [])]);
  const input = b.op('Transpose', [b.cast(bounded, 'int32')], { perm: attr.ints([1, 0]) });
  const clipped = b.op('Min', [input, b.i32col(highs)]);
  const flat = b.op('Add', [clipped, b.i32col(offsets)]);
  const idx = b.lookup(b.i32(indexTable), flat);
  const raw = b.lookup(b.f64(valueTable), flat);

  const depthOf = entries.map((e) =>
    e.kind === 'block' ? layout.depthColumn(e.unit as number) : 0,
  );
  // -2 < any looked-up depth (>= -1): columns other than block slots are always active.
  const slotOf = entries.map((e) => (e.kind === 'block' ? (e.slot as number) : -2));
  const slotActive = b.op('Less', [b.i32col(slotOf), b.rows(idx, depthOf)]);
  // In a layer-wise unit (a `skip` block choice) a skip slot's other choices mean nothing:
  // they count as inactive, like the encoders skip them. `skip` itself stays active.
  const skipChoice = space.blockChoiceNames.indexOf(SKIP_CHOICE);
  const skipSrc = entries.map((e) =>
    skipChoice >= 0 && e.kind === 'block' && e.choice !== SKIP_CHOICE
      ? layout.blockColumn(skipChoice, e.unit as number, e.slot as number)
      : 0,
  );
  // Dependent columns are layers when their skip kind is 0 (< 1); the others always (< 2^30).
  const skipLimit = entries.map((e) =>
    skipChoice >= 0 && e.kind === 'block' && e.choice !== SKIP_CHOICE ? 1 : 2 ** 30,
  );
  const active = b.op('And', [
    slotActive,
    b.op('Less', [b.rows(idx, skipSrc), b.i32col(skipLimit)]),
  ]);
  const allowed = b.op('Less', [b.i32([-1], []), idx]);
  const ok = b.op('Or', [b.op('Not', [active]), allowed]);
  const validRow = b.reduce('Min', b.cast(ok, 'double'), [0], true);
  const valid = b.cast(b.op('Transpose', [validRow], { perm: attr.ints([1, 0]) }), 'bool');
  const value = b.op('Where', [active, raw, b.f64([0], [])]);
  const ri = b.rows(idx, [layout.resolutionColumn]);
  return { b, space, layout, idx, value, active, valid, ri };
}

/**
 * Subgraphs several feature parts share (auto stacks physics, an encoding and the LUT rows,
 * each of which needs the slots' tuples), built once per graph: onnxruntime's cost per call
 * grows with the node count, which is what one-at-a-time callers pay.
 */
const shared = new WeakMap<Front, Map<string, unknown>>();
function once<T>(f: Front, key: string, build: () => T): T {
  let memo = shared.get(f);
  if (!memo) {
    memo = new Map();
    shared.set(f, memo);
  }
  if (!memo.has(key)) memo.set(key, build());
  return memo.get(key) as T;
}

/** Checks that the graph's entries are in the encoder's order, so a layout change fails loudly. */
function checkLabels(name: string, mine: readonly string[], theirs: readonly string[]): void {
  const i = mine.findIndex((l, k) => l !== theirs[k]);
  if (mine.length !== theirs.length || i >= 0) {
    throw new ValidationError(
      'features',
      `the arch-in graph's ${name} layout (${mine.length} entries) differs from the encoder's (${theirs.length}) at entry ${i}: ${mine[i]} vs ${theirs[i]}; update core/onnx/arch-graph.ts`,
    );
  }
}

/** The pool's feature rows in `order`. */
function ordered(f: Front, pool: string, order: readonly number[]): string {
  return f.b.rows(pool, order);
}

function onehot(f: Front): { x: string; labels: string[] } {
  const { b, space, layout } = f;
  const labels: string[] = [];
  const src: number[] = [];
  const index: number[] = [];
  const add = (label: string, column: number, i: number) => {
    labels.push(label);
    src.push(column);
    index.push(i);
  };
  space.units.forEach((unit, u) => {
    for (let slot = 0; slot < unit.maxDepth; slot++) {
      unit.blockChoices.forEach((c, ci) => {
        c.values.forEach((v, i) => {
          add(`u${u}.b${slot}.${c.name}=${v}`, layout.blockColumn(ci, u, slot), i);
        });
      });
    }
    unit.unitChoices.forEach((c, ci) => {
      c.values.forEach((v, i) => {
        add(`u${u}.${c.name}=${v}`, layout.unitColumn(ci, u), i);
      });
    });
  });
  space.globalChoices.forEach((c, g) => {
    c.values.forEach((v, i) => {
      add(`${c.name}=${v}`, layout.globalColumn(g), i);
    });
  });
  space.resolutions.forEach((r, i) => {
    add(`resolution=${r}`, layout.resolutionColumn, i);
  });
  const hit = b.op('Equal', [b.rows(f.idx, src), b.i32col(index)]);
  const x = b.cast(b.op('And', [hit, b.rows(f.active, src)]), 'double');
  return { x, labels };
}

function feature(f: Front): { x: string; labels: string[] } {
  const { b, space, layout } = f;
  const labels: string[] = [];
  const src: number[] = [];
  space.units.forEach((unit, u) => {
    for (let slot = 0; slot < unit.maxDepth; slot++) {
      unit.blockChoices.forEach((c, ci) => {
        labels.push(`u${u}.b${slot}.${c.name}`);
        src.push(layout.blockColumn(ci, u, slot));
      });
    }
    unit.unitChoices.forEach((c, ci) => {
      labels.push(`u${u}.${c.name}`);
      src.push(layout.unitColumn(ci, u));
    });
    // The unit's layers (skips left out), after the row's own columns in the pool.
    labels.push(`u${u}.depth`);
    src.push(layout.length + u);
  });
  space.globalChoices.forEach((c, g) => {
    labels.push(c.name);
    src.push(layout.globalColumn(g));
  });
  labels.push('resolution');
  src.push(layout.resolutionColumn);
  return { x: b.rows(b.concat([f.value, unitDepths(f)], 0), src), labels };
}

/** Largest unit depth: per-unit tensors are padded to it. */
export const maxDepthOf = (space: SearchSpace) => Math.max(...space.units.map((u) => u.maxDepth));

/**
 * float64 [U, N]: each unit's number of layers: its active slots that are not skips (in units
 * without a `skip` choice, its depth).
 */
function unitDepths(f: Front): string {
  return once(f, 'unitDepths', () => unitDepthsGraph(f));
}

function unitDepthsGraph(f: Front): string {
  const { b, space, layout } = f;
  const U = space.units.length;
  const D = maxDepthOf(space);
  const skipChoice = space.blockChoiceNames.indexOf(SKIP_CHOICE);
  const slots: number[] = [];
  const depthSrc: number[] = [];
  const skipSrc: number[] = [];
  const skipLimit: number[] = [];
  space.units.forEach((unit, u) => {
    for (let slot = 0; slot < D; slot++) {
      const real = slot < unit.maxDepth;
      slots.push(real ? slot : 2 ** 30);
      depthSrc.push(layout.depthColumn(u));
      skipSrc.push(real && skipChoice >= 0 ? layout.blockColumn(skipChoice, u, slot) : 0);
      skipLimit.push(real && skipChoice >= 0 ? 1 : 2 ** 30);
    }
  });
  const layer = b.op('And', [
    b.op('Less', [b.i32col(slots), b.rows(f.idx, depthSrc)]),
    b.op('Less', [b.rows(f.idx, skipSrc), b.i32col(skipLimit)]),
  ]);
  return b.reduce('Sum', b.reshape(b.cast(layer, 'double'), [U, D, -1]), [1], false);
}

/**
 * Mean, population std, min and max from count, sum, sum of squares, min and max, with the
 * JavaScript encoder's arithmetic (std = sqrt(max(0, sq / n - mean^2))); zeros where n = 0.
 */
function moments(b: Builder, n: string, sum: string, sq: string, min: string, max: string) {
  const nSafe = b.op('Max', [n, b.f64([1], [])]);
  const mean = b.op('Div', [sum, nSafe]);
  const variance = b.op('Sub', [b.op('Div', [sq, nSafe]), b.op('Mul', [mean, mean])]);
  const std = b.op('Sqrt', [b.op('Max', [variance, b.f64([0], [])])]);
  const has = b.op('Less', [b.f64([0], []), n]);
  const zero = b.f64([0], []);
  return [mean, std, min, max].map((s) => b.op('Where', [has, s, zero]));
}

/**
 * Stacks same-shaped tensors [..., batch] (rank `rank`) on a new axis before the batch and
 * flattens all but the batch axis.
 */
function stackFlat(b: Builder, parts: readonly string[], rank: number): string {
  const axis = b.i64([rank - 1]);
  return b.flatten(
    b.concat(
      parts.map((p) => b.op('Unsqueeze', [p, axis])),
      rank - 1,
    ),
    rank + 1,
  );
}

/**
 * The sum over `axis` (of size `size`) added in order, first to last, like the JavaScript
 * encoders' running sums: CumSum is sequential by definition where ReduceSum may pair terms,
 * and a fractional value (ResNet50's widths) summed in another order differs in the last bit,
 * enough to flip a tree's split. Zeros of inactive slots leave a running sum unchanged.
 */
function sequentialSum(b: Builder, x: string, axis: number, size: number): string {
  const running = b.op('CumSum', [x, b.i64([axis], [])]);
  return b.op('Squeeze', [b.slice(running, axis, size - 1, size), b.i64([axis])]);
}

function statistical(f: Front): { x: string; labels: string[] } {
  const { b, space, layout } = f;
  const U = space.units.length;
  const D = maxDepthOf(space);
  const Cb = space.blockChoiceNames.length;
  const Cw = space.unitChoiceNames.length;
  const featureNames = [...space.blockChoiceNames, ...space.unitChoiceNames];
  const inf = b.f64([Number.POSITIVE_INFINITY], []);
  const negInf = b.f64([Number.NEGATIVE_INFINITY], []);
  const depths = unitDepths(f);
  const n = b.reshape(depths, [U, 1, -1]);
  const total = b.reduce('Sum', depths, [0], true);

  const pool: string[] = [];
  let width = 0;
  const push = (x: string, size: number): number => {
    pool.push(x);
    width += size;
    return width - size;
  };

  // Per-unit block choice statistics over slots, padded to D slots.
  const overallParts: {
    count: string[];
    sum: string[];
    sq: string[];
    min: string[];
    max: string[];
  } = {
    count: [],
    sum: [],
    sq: [],
    min: [],
    max: [],
  };
  let perUnitAt = -1;
  if (Cb > 0) {
    const src: number[] = [];
    const pad: number[] = [];
    space.units.forEach((unit, u) => {
      for (let slot = 0; slot < D; slot++) {
        for (let c = 0; c < Cb; c++) {
          src.push(slot < unit.maxDepth ? layout.blockColumn(c, u, slot) : 0);
          pad.push(slot < unit.maxDepth ? 1 : 0);
        }
      }
    });
    const shape = [U, D, Cb, -1];
    const padding = b.f64col(pad);
    const v = b.reshape(b.op('Mul', [b.rows(f.value, src), padding]), shape);
    const mask = b.reshape(b.op('Mul', [b.cast(b.rows(f.active, src), 'double'), padding]), shape);
    const m = b.cast(mask, 'bool');
    // [U, D, Cb, N] -> [U, Cb, N] over the slots. Each feature has its own count: in a
    // layer-wise unit `skip` counts every slot, the other choices only the layers.
    const count = b.reduce('Sum', mask, [1], false);
    const sum = sequentialSum(b, v, 1, D);
    const sq = sequentialSum(b, b.op('Mul', [v, v]), 1, D);
    const min = b.reduce('Min', b.op('Where', [m, v, inf]), [1], false);
    const max = b.reduce('Max', b.op('Where', [m, v, negInf]), [1], false);
    perUnitAt = push(stackFlat(b, moments(b, count, sum, sq, min, max), 3), U * Cb * 4);
    overallParts.count.push(b.reduce('Sum', count, [0], false));
    // Over all blocks of the model in order: [U, D, Cb, N] -> [U * D, Cb, N].
    const flatV = b.reshape(v, [U * D, Cb, -1]);
    overallParts.sum.push(sequentialSum(b, flatV, 0, U * D));
    overallParts.sq.push(sequentialSum(b, b.op('Mul', [flatV, flatV]), 0, U * D));
    overallParts.min.push(b.reduce('Min', min, [0], false));
    overallParts.max.push(b.reduce('Max', max, [0], false));
  }
  let unitRawAt = -1;
  if (Cw > 0) {
    const src: number[] = [];
    space.units.forEach((_, u) => {
      for (let c = 0; c < Cw; c++) src.push(layout.unitColumn(c, u));
    });
    const raw = b.rows(f.value, src);
    unitRawAt = push(raw, U * Cw);
    // A unit choice counts once per block of its unit.
    const w = b.reshape(raw, [U, Cw, -1]);
    const has = b.op('Less', [b.f64([0], []), n]);
    // Every unit choice counts the model's layers: total x ones [Cw, 1].
    overallParts.count.push(b.op('Mul', [total, b.f64col(new Array(Cw).fill(1))]));
    // JS adds a unit's value once per layer, in order: [U, D, Cw, N] with the value where
    // k < the unit's layers and 0 elsewhere, summed sequentially.
    const k = b.f64(
      Array.from({ length: D }, (_, i) => i),
      [1, D, 1, 1],
    );
    const perLayer = b.op('Less', [k, b.reshape(n, [U, 1, 1, -1])]);
    const wk = b.op('Where', [perLayer, b.reshape(w, [U, 1, Cw, -1]), b.f64([0], [])]);
    const flatW = b.reshape(wk, [U * D, Cw, -1]);
    overallParts.sum.push(sequentialSum(b, flatW, 0, U * D));
    overallParts.sq.push(sequentialSum(b, b.op('Mul', [flatW, flatW]), 0, U * D));
    overallParts.min.push(b.reduce('Min', b.op('Where', [has, w, inf]), [0], false));
    overallParts.max.push(b.reduce('Max', b.op('Where', [has, w, negInf]), [0], false));
  }
  let overallAt = -1;
  if (featureNames.length > 0) {
    const [count, sum, sq, min, max] = (['count', 'sum', 'sq', 'min', 'max'] as const).map((k) =>
      b.concat(overallParts[k], 0),
    ) as [string, string, string, string, string];
    overallAt = push(
      stackFlat(b, moments(b, count, sum, sq, min, max), 2),
      featureNames.length * 4,
    );
  }
  const depthAt = push(depths, U);
  const totalAt = push(total, 1);
  const globalAt = space.globalChoices.length
    ? push(
        b.rows(
          f.value,
          space.globalChoices.map((_, g) => layout.globalColumn(g)),
        ),
        space.globalChoices.length,
      )
    : -1;
  const resolutionAt = push(b.rows(f.value, [layout.resolutionColumn]), 1);

  const STATS = ['mean', 'std', 'min', 'max'];
  const labels: string[] = [];
  const order: number[] = [];
  featureNames.forEach((name, k) => {
    STATS.forEach((s, si) => {
      labels.push(`all.${name}.${s}`);
      order.push(overallAt + k * 4 + si);
    });
  });
  space.units.forEach((unit, u) => {
    unit.blockChoices.forEach((c, ci) => {
      STATS.forEach((s, si) => {
        labels.push(`u${u}.${c.name}.${s}`);
        order.push(perUnitAt + (u * Cb + ci) * 4 + si);
      });
    });
    unit.unitChoices.forEach((c, ci) => {
      labels.push(`u${u}.${c.name}`);
      order.push(unitRawAt + u * Cw + ci);
    });
    labels.push(`u${u}.depth`);
    order.push(depthAt + u);
  });
  labels.push('depth');
  order.push(totalAt);
  space.globalChoices.forEach((c, g) => {
    labels.push(c.name);
    order.push(globalAt + g);
  });
  labels.push('resolution');
  order.push(resolutionAt);
  return { x: ordered(f, b.concat(pool, 0), order), labels };
}

/**
 * Each slot's feature tuple in the encoders' numbering, int32 [U * D, 1, N] (units x slots,
 * padded to the largest unit's D slots), whether the slot is active, bool [U * D, N], and the
 * largest unit's tuple count.
 */
function slotTuples(f: Front): { tuple: string; slotActive: string; cmax: number } {
  return once(f, 'slotTuples', () => slotTuplesGraph(f));
}

function slotTuplesGraph(f: Front): { tuple: string; slotActive: string; cmax: number } {
  const { b, space, layout } = f;
  const U = space.units.length;
  const D = maxDepthOf(space);
  const Cb = space.blockChoiceNames.length;
  const Cw = space.unitChoiceNames.length;
  // The encoders' own tuple numbering (compileSpace): mixed radix over the block choices then
  // the unit choices, the last varying fastest; `skip` takes no digit, and a skip of kind k
  // is tuple skipBase + (k - 1) x unitCombinations + the unit choices' offset.
  const compiled = compileSpace(space);
  const skipChoice = space.blockChoiceNames.indexOf(SKIP_CHOICE);
  const cmax = Math.max(...compiled.units.map((unit) => unit.combinations));
  const blockSrc: number[] = [];
  const blockRadix: number[] = [];
  const unitSrc: number[] = [];
  const unitRadix: number[] = [];
  const kindSrc: number[] = [];
  const kindOn: number[] = [];
  const skipBase: number[] = [];
  const skipStep: number[] = [];
  const slots: number[] = [];
  const depthSrc: number[] = [];
  compiled.units.forEach((unit, u) => {
    const hasSkip = unit.skip !== undefined && skipChoice >= 0;
    for (let slot = 0; slot < D; slot++) {
      const real = slot < unit.def.maxDepth;
      for (let c = 0; c < Cb; c++) {
        blockSrc.push(real ? layout.blockColumn(c, u, slot) : 0);
        blockRadix.push(real ? (unit.blockRadix[c] as number) : 0);
      }
      for (let c = 0; c < Cw; c++) {
        unitSrc.push(layout.unitColumn(c, u));
        unitRadix.push(real ? (unit.unitRadix[c] as number) : 0);
      }
      kindSrc.push(real && hasSkip ? layout.blockColumn(skipChoice, u, slot) : 0);
      kindOn.push(real && hasSkip ? 1 : 0);
      skipBase.push(unit.skipBase - unit.unitCombinations);
      skipStep.push(unit.unitCombinations);
      // Padded slots never count: no looked-up depth reaches 2^30.
      slots.push(real ? slot : 2 ** 30);
      depthSrc.push(layout.depthColumn(u));
    }
  });
  const digits = (src: number[], radix: number[], width: number) =>
    b.reduce(
      'Sum',
      b.reshape(b.op('Mul', [b.rows(f.idx, src), b.i32col(radix)]), [U * D, width, -1]),
      [1],
      true,
    );
  const blockPart = Cb > 0 ? digits(blockSrc, blockRadix, Cb) : undefined;
  const unitPart = Cw > 0 ? digits(unitSrc, unitRadix, Cw) : undefined;
  const parts = [blockPart, unitPart].filter((x): x is string => x !== undefined);
  const layerTuple = parts.length === 2 ? b.op('Add', parts) : (parts[0] as string);
  let tuple = layerTuple;
  if (kindOn.some((k) => k > 0)) {
    const kind = b.op('Unsqueeze', [
      b.op('Mul', [b.rows(f.idx, kindSrc), b.i32col(kindOn)]),
      b.i64([1]),
    ]);
    const col = (values: number[]) => b.i32(values, [values.length, 1, 1]);
    let skipTuple = b.op('Add', [col(skipBase), b.op('Mul', [kind, col(skipStep)])]);
    if (unitPart) skipTuple = b.op('Add', [skipTuple, unitPart]);
    tuple = b.op('Where', [b.op('Less', [b.i32([0], []), kind]), skipTuple, layerTuple]);
  }
  const slotActive = b.op('Less', [b.i32col(slots), b.rows(f.idx, depthSrc)]);
  return { tuple, slotActive, cmax };
}

/**
 * int32 [1, N]: the row of a whole-space table (arch-physics.ts): each slot's tuple times its
 * mixed-radix multiplier, summed; clipped into the table (rows the space does not allow are
 * NaN'ed by the validity guard, but must not index outside it).
 */
function wholeRow(f: Front, tables: WholeTables): string {
  const { b, space } = f;
  const D = maxDepthOf(space);
  const { tuple } = slotTuples(f);
  const src: number[] = [];
  space.units.forEach((unit, u) => {
    for (let slot = 0; slot < unit.maxDepth; slot++) src.push(u * D + slot);
  });
  const flat = b.reshape(tuple, [space.units.length * D, -1]);
  const row = b.reduce(
    'Sum',
    b.op('Mul', [b.rows(flat, src), b.i32col(tables.slotRadix)]),
    [0],
    true,
  );
  return b.op('Min', [b.op('Max', [row, b.i32([0], [])]), b.i32([tables.rows - 1], [])]);
}

/** float64 [k, N]: rows of a [rows, k] float64 table at int32 row indices [1, N]. */
function tableRows(f: Front, table: Float64Array, width: number, row: string): string {
  const { b } = f;
  const picked = b.op('Gather', [b.f64(table, [table.length / width, width]), row], {
    axis: attr.int(0),
  });
  // [1, N, k] -> [k, N]
  return b.op('Transpose', [b.op('Squeeze', [picked, b.i64([0])])], { perm: attr.ints([1, 0]) });
}

/**
 * int32 [P, N]: the table row of every part of a chain space (stem, per unit its transition
 * and slots, head; arch-physics.ts), the idle row for inactive slots.
 */
function chainRows(f: Front, tables: ChainTables): string {
  const { b, space, layout } = f;
  const U = space.units.length;
  const D = maxDepthOf(space);
  const R = space.resolutions.length;
  const compiled = compileSpace(space);
  const { tuple, slotActive } = slotTuples(f);
  const rowOf = (base: number[], key: string) =>
    b.op('Add', [b.op('Add', [b.i32col(base), b.op('Mul', [key, b.i32([R], [])])]), f.ri]);
  const zero = b.op('Mul', [f.ri, b.i32([0], [])]);
  // Stem: keyed by the global choices (mixed radix, last fastest).
  const stemPart = tables.parts[0] as ChainTables['parts'][number];
  const G = space.globalChoices.length;
  const globalKey = G
    ? b.reduce(
        'Sum',
        b.op('Mul', [
          b.rows(
            f.idx,
            space.globalChoices.map((_, g) => layout.globalColumn(g)),
          ),
          b.i32col(tables.globalRadix),
        ]),
        [0],
        true,
      )
    : zero;
  const stem = rowOf([stemPart.base], globalKey);
  // Transitions: keyed by the unit choices.
  const Cw = space.unitChoiceNames.length;
  const preParts = tables.parts.filter((p) => p.kind === 'pre');
  let unitKey = b.op('Add', [b.i32col(new Array(U).fill(0)), zero]);
  if (Cw > 0) {
    const src: number[] = [];
    const radix: number[] = [];
    compiled.units.forEach((cu, u) => {
      for (let c = 0; c < Cw; c++) {
        src.push(layout.unitColumn(c, u));
        radix.push(cu.unitRadix[c] as number);
      }
    });
    unitKey = b.reduce(
      'Sum',
      b.reshape(b.op('Mul', [b.rows(f.idx, src), b.i32col(radix)]), [U, Cw, -1]),
      [1],
      false,
    );
  }
  const pre = rowOf(
    preParts.map((p) => p.base),
    unitKey,
  );
  // Slots: keyed by their tuple, idle when inactive.
  const slotParts = tables.parts.filter((p) => p.kind === 'slot');
  const src = slotParts.map((p) => p.unit * D + p.slot);
  const tuples = b.rows(b.reshape(tuple, [U * D, -1]), src);
  const slots = b.op('Where', [
    b.rows(slotActive, src),
    rowOf(
      slotParts.map((p) => p.base),
      tuples,
    ),
    b.i32([tables.rows - 1], []),
  ]);
  const headPart = tables.parts[tables.parts.length - 1] as ChainTables['parts'][number];
  const head = b.op('Add', [f.ri, b.i32([headPart.base], [])]);
  // In part order: stem, then per unit its transition and slots, then head.
  const pool = b.concat([stem, pre, slots, head], 0);
  let preAt = 0;
  let slotAt = 0;
  const order = tables.parts.map((p) => {
    if (p.kind === 'stem') return 0;
    if (p.kind === 'head') return 1 + U + slotParts.length;
    if (p.kind === 'pre') return 1 + preAt++;
    return 1 + U + slotAt++;
  });
  const rows = b.rows(pool, order);
  return b.op('Min', [b.op('Max', [rows, b.i32([0], [])]), b.i32([tables.rows - 1], [])]);
}

/** float64 [P, N, k]: a polynomial table [rows, k] looked up at `rows` and evaluated at `c`. */
function polyAt(
  f: Front,
  poly: ChainTables['sums'],
  k: number,
  rows: string,
  c: string | undefined,
  quadratic: boolean,
): string {
  const { b } = f;
  const look = (t: Float64Array) =>
    b.op('Gather', [b.f64(t, [t.length / k, k]), rows], { axis: attr.int(0) });
  const a = look(poly.a);
  if (!c) return a;
  const inner = quadratic
    ? b.op('Add', [look(poly.b), b.op('Mul', [c, look(poly.g)])])
    : look(poly.b);
  return b.op('Round', [b.op('Add', [a, b.op('Mul', [c, inner])])]);
}

/**
 * The physics encoding in the graph (arch-physics.ts): per part of the layer graph, its counts
 * looked up (polynomials in the width it reads), summed over the parts; the peak is the largest
 * live memory at any node or of the input. Same arithmetic as graphCost and the encoder: the
 * counts are exact integers in float64, scaled at the end in the encoder's order.
 */
function physics(f: Front): string {
  const { b, space } = f;
  // The entries assembled below, in order; an encoder that grew another entry (or reordered
  // them) gets no graph rather than a wrong one, and its predictors still save.
  const mine = [
    ...macKinds.map((k) => `macs_${k}`),
    'macs',
    'params',
    'elementwise_ops',
    'activation_mb',
    'peak_activation_mb',
    'weight_mb',
    'input_mb',
    'layers',
    'nodes',
  ];
  if (mine.join() !== physicsLabels.join()) {
    throw new ArchGraphUnsupportedError(
      'features.encoding',
      `the physics encoding's entries (${physicsLabels.join(', ')}) differ from what the arch-in graph computes; update core/onnx/arch-graph.ts`,
    );
  }
  const tables = physicsTables(space);
  if (tables.kind === 'whole') {
    return tableRows(f, tables.physics, physicsLabels.length, wholeRow(f, tables));
  }
  let rows = chainRows(f, tables);
  const P = tables.parts.length;
  let c: string | undefined;
  if (tables.byWidth) {
    // Some rows are looked up by the width they read: each part's row is known only once
    // its width is, so the rows and the widths are found part by part.
    const { widths, first } = tables.byWidth;
    const total = tables.out.a.length;
    const top = Math.max(...widths);
    const widthIndex = new Array<number>(top + 2).fill(0);
    widths.forEach((w, i) => {
      widthIndex[w] = i;
    });
    // Every table once, read by every part.
    const shift = b.i32(Array.from(first, (at, r) => (at < 0 ? 0 : at - r)));
    const byWidth = b.i32(Array.from(first, (at) => (at < 0 ? 0 : 1)));
    const indexOfWidth = b.i32(widthIndex);
    const lo = b.i32([0], []);
    const hi = b.i32([top + 1], []);
    const outA = b.f64(tables.out.a, [total]);
    const outB = b.f64(tables.out.b, [total]);
    const outG = tables.quadratic ? b.f64(tables.out.g, [total]) : undefined;
    let width = b.op('Mul', [b.cast(f.ri, 'double'), b.f64([0], [])]);
    const widthsRead = [width];
    const finals: string[] = [];
    for (let p = 0; p < P; p++) {
      const base = b.rows(rows, [p]);
      const wi = b.lookup(indexOfWidth, b.op('Clip', [b.cast(width, 'int32'), lo, hi]));
      const row = b.op('Add', [
        b.op('Add', [base, b.lookup(shift, base)]),
        b.op('Mul', [b.lookup(byWidth, base), wi]),
      ]);
      finals.push(row);
      if (p === P - 1) break;
      const inner = outG
        ? b.op('Add', [b.lookup(outB, row), b.op('Mul', [width, b.lookup(outG, row)])])
        : b.lookup(outB, row);
      width = b.op('Round', [b.op('Add', [b.lookup(outA, row), b.op('Mul', [width, inner])])]);
      widthsRead.push(width);
    }
    rows = b.concat(finals, 0);
    c = b.op('Unsqueeze', [b.concat(widthsRead, 0), b.i64([2])]);
  } else if (tables.usesC) {
    // The width each part reads, carried part to part: c' = out(row, c), 0 into the stem.
    const outA = polyAt(f, tables.out, 1, rows, undefined, false);
    const at = (t: string, p: number) => b.op('Squeeze', [b.rows(t, [p]), b.i64([2])]);
    const outB = b.op('Gather', [b.f64(tables.out.b, [tables.out.b.length, 1]), rows], {
      axis: attr.int(0),
    });
    const outG = tables.quadratic
      ? b.op('Gather', [b.f64(tables.out.g, [tables.out.g.length, 1]), rows], {
          axis: attr.int(0),
        })
      : undefined;
    let width = b.op('Mul', [b.cast(f.ri, 'double'), b.f64([0], [])]);
    const widths = [width];
    for (let p = 0; p < P - 1; p++) {
      const inner = outG
        ? b.op('Add', [at(outB, p), b.op('Mul', [width, at(outG, p)])])
        : at(outB, p);
      width = b.op('Round', [b.op('Add', [at(outA, p), b.op('Mul', [width, inner])])]);
      widths.push(width);
    }
    c = b.op('Unsqueeze', [b.concat(widths, 0), b.i64([2])]);
  }
  const F = SUM_COLUMNS.length;
  // [P, N, F] -> [N, F]: exact integer sums, so the order of the additions does not matter.
  const sums = b.reduce('Sum', polyAt(f, tables.sums, F, rows, c, tables.quadratic), [0], false);
  const live = polyAt(f, tables.live, tables.pieces, rows, c, tables.quadratic);
  const input = b.op('Transpose', [b.lookup(b.f64(tables.inputElements), f.ri)], {
    perm: attr.ints([1, 0]),
  });
  const peak = b.op('Max', [
    b.reduce('Max', live, [0, 2], false),
    b.op('Squeeze', [input, b.i64([1])]),
  ]);
  const col = (k: number) => b.slice(sums, 1, k, k + 1);
  const M = F - 6;
  const x = b.concat(
    [
      b.slice(sums, 1, 0, M + 4),
      b.op('Unsqueeze', [peak, b.i64([1])]),
      col(M + 1),
      input,
      b.slice(sums, 1, M + 4, M + 6),
    ],
    1,
  );
  // The encoder's arithmetic: counts x MEGA, bytes (elements x 4) x MEGA, layer counts as is.
  const bytes = physicsLabels.map((l) => (/_mb$/.test(l) ? 4 : 1));
  const mega = physicsLabels.map((l) => (/^(layers|nodes)$/.test(l) ? 1 : 1e-6));
  const scaled = b.op('Mul', [b.op('Mul', [x, b.f64(bytes)]), b.f64(mega)]);
  return b.op('Transpose', [scaled], { perm: attr.ints([1, 0]) });
}

/**
 * Per unit, how many of its blocks use each feature tuple, the first block apart:
 * float64 [U, 2, Cmax, N] (section 0 = first block, 1 = the others), tuples in the
 * encoders' mixed-radix order and padded to the largest unit's tuple count.
 */
function tupleCounts(f: Front): { counts: string; cmax: number } {
  return once(f, 'tupleCounts', () => tupleCountsGraph(f));
}

function tupleCountsGraph(f: Front): { counts: string; cmax: number } {
  const { b, space } = f;
  const U = space.units.length;
  const D = maxDepthOf(space);
  const { tuple, slotActive, cmax } = slotTuples(f);
  const range = b.i32(
    Array.from({ length: cmax }, (_, i) => i),
    [1, cmax, 1],
  );
  const hit = b.op('And', [
    b.op('Equal', [tuple, range]),
    b.op('Unsqueeze', [slotActive, b.i64([1])]),
  ]);
  const perSlot = b.reshape(b.cast(hit, 'double'), [U, D, cmax, -1]);
  const first = b.slice(perSlot, 1, 0, 1);
  const rest =
    D > 1
      ? b.reduce('Sum', b.slice(perSlot, 1, 1, D), [1], true)
      : b.op('Mul', [first, b.f64([0], [])]);
  return { counts: b.concat([first, rest], 1), cmax };
}

/** float64 [U, 1, 1, N]: a per-(resolution, unit) factor looked up at the row's resolution. */
function unitFactor(f: Front, table: ArrayLike<number>): string {
  const { b } = f;
  const U = f.space.units.length;
  const at = b.op('Add', [
    b.op('Mul', [f.ri, b.i32([U], [])]),
    b.i32col(Array.from({ length: U }, (_, u) => u)),
  ]);
  return b.reshape(b.lookup(b.f64(table), at), [U, 1, 1, -1]);
}

/**
 * The fcc pool (what `fcc` concatenates before reordering): the tuple counts [U, 2, cmax]
 * flattened, their area-scaled copy when the space has several resolutions, the unit depths,
 * the total depth, the global values, the resolution and (r / r_max)^2; `order[i]` is the
 * pool position of the encoder's entry i. Shared with the folded graph (arch-fold.ts).
 */
export function fccPool(space: SearchSpace) {
  const U = space.units.length;
  const G = space.globalChoices.length;
  const cmax = Math.max(...compileSpace(space).units.map((unit) => unit.combinations));
  const countWidth = U * 2 * cmax;
  // fccEncoder's default: no area-scaled copy where the space has one resolution.
  const scaledCopy = space.resolutions.length > 1;
  const tail = (scaledCopy ? 2 : 1) * countWidth;
  const order = [
    ...countOrder(space, cmax, 0),
    ...Array.from({ length: U + 1 + G + 2 }, (_, i) => tail + i),
    ...(scaledCopy ? countOrder(space, cmax, countWidth) : []),
  ];
  return { cmax, countWidth, scaledCopy, tail, order };
}

/**
 * The LUT pool: per bucket k, [counts x unit scale (U x 2 x cmax), stem scale] at k x width
 * (zero unless the row's resolution is in bucket k), then a 1 (the overhead); with
 * lutLayout's bucket scales (lut.ts `bucketScales`). `order` as in `fccPool`.
 */
export function lutPool(space: SearchSpace, bucketCount: number) {
  const U = space.units.length;
  const buckets = resolutionBuckets(space, bucketCount);
  const { bucketOf, unitScale } = bucketScales(space, buckets);
  const stemScale = space.resolutions.map((r, i) => {
    const bucket = buckets[bucketOf[i] as number] as { ref: number };
    return (r / bucket.ref) ** 2;
  });
  const cmax = Math.max(...compileSpace(space).units.map((unit) => unit.combinations));
  const width = U * 2 * cmax + 1;
  const order: number[] = [];
  buckets.forEach((_, k) => {
    order.push(...countOrder(space, cmax, k * width), k * width + width - 1);
  });
  order.push(buckets.length * width);
  return { buckets, bucketOf, unitScale, stemScale, cmax, width, order };
}

/** Pool positions of each unit's real tuples (first section, then rest) in a [U, 2, cmax] block. */
function countOrder(space: SearchSpace, cmax: number, base: number): number[] {
  const order: number[] = [];
  space.units.forEach((unit, u) => {
    const c = combinations(unit).length;
    for (let section = 0; section < 2; section++) {
      for (let t = 0; t < c; t++) order.push(base + (u * 2 + section) * cmax + t);
    }
  });
  return order;
}

function fcc(f: Front): string {
  const { b, space, layout } = f;
  // Space-specific features (NAS-Bench-201's live-path analysis) are JavaScript functions:
  // the graph looks them up in a table of the whole space, where the space is that small.
  let extra: string | undefined;
  if (space.combinationFeatures) {
    const tables = wholeSpaceTables(space);
    if (!tables?.combination) {
      throw new ArchGraphUnsupportedError(
        'features.encoding',
        `the arch-in graph cannot compute fcc's ${space.name}-specific combination features (the space is too large to tabulate whole); use predictor.onnx with esm encode, or another encoding`,
      );
    }
    const width = space.combinationFeatures.labels.length;
    extra = tableRows(f, tables.combination, width, wholeRow(f, tables));
  }
  const { counts } = tupleCounts(f);
  const { scaledCopy, order } = fccPool(space);
  const rMax = Math.max(...space.resolutions);
  const rsq = b.lookup(b.f64(space.resolutions.map((r) => (r / rMax) ** 2)), f.ri);
  const depths = unitDepths(f);
  const globals = space.globalChoices.length
    ? [
        b.rows(
          f.value,
          space.globalChoices.map((_, g) => layout.globalColumn(g)),
        ),
      ]
    : [];
  const pool = b.concat(
    [
      b.flatten(counts, 4),
      ...(scaledCopy
        ? [b.flatten(b.op('Mul', [counts, unitFactor(f, unitAreaScales(space))]), 4)]
        : []),
      depths,
      b.reduce('Sum', depths, [0], true),
      ...globals,
      b.rows(f.value, [layout.resolutionColumn]),
      rsq,
    ],
    0,
  );
  const x = ordered(f, pool, order);
  return extra ? b.concat([x, extra], 0) : x;
}

/** The whole-space tables of a small space, undefined for a chain space. */
function wholeSpaceTables(space: SearchSpace): WholeTables | undefined {
  try {
    const tables = physicsTables(space);
    return tables.kind === 'whole' ? tables : undefined;
  } catch (error) {
    if (error instanceof ArchGraphUnsupportedError) return undefined;
    throw error;
  }
}

function lut(f: Front, bucketCount: number): string {
  const { b } = f;
  const { buckets, bucketOf, unitScale, stemScale, order } = lutPool(f.space, bucketCount);
  const { counts } = tupleCounts(f);
  const stem = b.lookup(b.f64(stemScale), f.ri);
  const piece = b.concat([b.flatten(b.op('Mul', [counts, unitFactor(f, unitScale)]), 4), stem], 0);
  const rowBucket = b.lookup(b.i64(bucketOf), f.ri);
  const parts = buckets.map((_, k) =>
    b.op('Mul', [piece, b.cast(b.op('Equal', [rowBucket, b.i64([k], [])]), 'double')]),
  );
  const ones = b.op('Add', [b.op('Mul', [stem, b.f64([0], [])]), b.f64([1], [])]);
  return ordered(f, b.concat([...parts, ones], 0), order);
}

/**
 * A concatenation of feature blocks (the `stack` features of combined models): each part as
 * a features description of its own. Typed structurally, so the graph follows the feature
 * kinds predictor.json allows without depending on their exact union.
 */
interface StackFeatures {
  readonly kind: 'stack';
  readonly parts: readonly FeaturesJson[];
  readonly length: number;
}

/** float64 [features.length, N]: the model's input vector, feature rows first. */
function featureRows(f: Front, features: FeaturesJson | StackFeatures): string {
  const { b, space } = f;
  if (features.kind === 'stack') {
    return b.concat(
      features.parts.map((part) => featureRows(f, part)),
      0,
    );
  }
  if (features.kind === 'lut') {
    const layout = lutLayout(space, { buckets: features.buckets });
    if (layout.length !== features.length) {
      throw new ValidationError(
        'features.length',
        `is ${features.length}, the LUT layout has ${layout.length}`,
      );
    }
    return lut(f, features.buckets);
  }
  if (features.kind !== 'encoding') {
    throw new ArchGraphUnsupportedError(
      'features.kind',
      `the arch-in graph has no ${(features as { kind: string }).kind} features yet; use predictor.onnx`,
    );
  }
  switch (features.encoding) {
    case 'onehot': {
      const r = onehot(f);
      checkLabels('onehot', r.labels, onehotEncoder(space).labels);
      return r.x;
    }
    case 'feature': {
      const r = feature(f);
      checkLabels('feature', r.labels, featureEncoder(space).labels);
      return r.x;
    }
    case 'statistical': {
      const r = statistical(f);
      checkLabels('statistical', r.labels, statisticalEncoder(space).labels);
      return r.x;
    }
    case 'physics': {
      const x = physics(f);
      if (physicsLabels.length !== features.length) {
        throw new ValidationError(
          'features.length',
          `is ${features.length}, physics has ${physicsLabels.length}`,
        );
      }
      return x;
    }
    case 'fcc': {
      const x = fcc(f);
      if (fccEncoder(space).length !== features.length) {
        throw new ValidationError(
          'features.length',
          `is ${features.length}, fcc has ${fccEncoder(space).length}`,
        );
      }
      return x;
    }
    default:
      throw new ArchGraphUnsupportedError(
        'features.encoding',
        `the arch-in graph has no ${features.encoding} encoding yet; use predictor.onnx with esm encode`,
      );
  }
}

/**
 * The encoding subgraph alone: input `arch` int64 [batch, L], output `x` float32 [batch,
 * features.length], the vector predictor.onnx takes; plus the validity flag of each row.
 * Throws `ArchGraphUnsupportedError` for features it cannot compute yet.
 */
export function encodingGraph(
  space: SearchSpace,
  features: FeaturesJson,
): { graph: OnnxGraph; valid: string } {
  const b = new Builder();
  const f = buildFront(b, space);
  const x = featureRows(f, features as FeaturesJson | StackFeatures);
  const x32 = b.cast(x, 'float');
  b.op('Transpose', [x32], { perm: attr.ints([1, 0]) }, 'x');
  return {
    graph: {
      name: 'esm_arch_encoding',
      nodes: b.nodes,
      initializers: b.initializers,
      inputs: [{ name: ARCH_INPUT, elemType: 'int64', shape: ['batch', f.layout.length] }],
      outputs: [{ name: 'x', elemType: 'float', shape: ['batch', features.length] }],
    },
    valid: f.valid,
  };
}

/**
 * The arch-in predictor: the encoding subgraph composed in front of `model` (any graph
 * with one float input [batch, features.length], e.g. what predictor.onnx holds). Every
 * output of the model is kept under its name, NaN for rows the space does not allow.
 */
export function archInGraph(
  space: SearchSpace,
  features: FeaturesJson,
  model: OnnxGraph,
): OnnxGraph {
  const modelInput = model.inputs[0];
  if (!modelInput || model.inputs.length !== 1) {
    throw new ValidationError('model', 'the model graph must have exactly one input');
  }
  const { graph: front, valid } = encodingGraph(space, features);
  const encoded = `${PREFIX}x`;
  const frontNodes = front.nodes.map((n) =>
    n.outputs[0] === 'x' ? { ...n, outputs: [encoded], name: encoded } : n,
  );
  const renamed = new Map<string, string>([[modelInput.name, encoded]]);
  for (const o of model.outputs) renamed.set(o.name, `model/${o.name}`);
  const rename = (name: string) => renamed.get(name) ?? name;
  // Spread, so fields this writer does not know (an operator domain) survive.
  const modelNodes = model.nodes.map((n) => ({
    ...n,
    inputs: n.inputs.map(rename),
    outputs: n.outputs.map(rename),
  }));
  const nan = `${PREFIX}nan`;
  const guards: OnnxNode[] = model.outputs.map((o) => ({
    op: 'Where',
    inputs: [valid, rename(o.name), nan],
    outputs: [o.name],
    name: `${PREFIX}guard_${o.name}`,
  }));
  return {
    name: `${model.name}_arch_in`,
    nodes: [...frontNodes, ...modelNodes, ...guards],
    initializers: [
      ...front.initializers,
      { name: nan, dims: [], data: Float32Array.of(Number.NaN) },
      ...model.initializers,
    ],
    inputs: front.inputs,
    outputs: model.outputs,
  };
}
