/**
 * The folded arch-in graph: where the model reads its input only through affine maps (Gemm:
 * ridge, the LUT, `auto` blends of those, a transfer correction on top of one) and every
 * feature is a sum over the architecture's parts, the encoding and those maps fold into one
 * table per part:
 *
 *   z = bias + sum over parts p of T_p[key_p(arch)]  (+ w_peak x max over parts of M_p[key_p])
 *
 * where z is what the model's Gemms compute ([batch, K]: 1 for a ridge, one per linear
 * member of a blend), a part is a pair of block slots (or one), a unit or the global part
 * (stem, head, global choices, resolution), and key_p is a mixed-radix number of the few
 * arch-row columns the part depends on: its slots' own choices, its unit's choices, the
 * unit's depth (whether the slots are active) and the resolution. The rest of the model graph
 * (Exp of a log target, the std output, the blend) runs unchanged on z. The graph is a few
 * dozen nodes: each column's digit by arithmetic (keysGraph), the keys of all parts at once
 * (one Gemm: every key is linear in the digits), the table lookups (GatherElements, one per
 * value a key holds) and a ReduceSum, where the general graph (arch-graph.ts) computes every
 * feature first. Every lookup costs per key, so the fewer keys per arch the better: hence the
 * pairs of slots.
 *
 * The tables are built from the features' own structure, the model's weights read off its
 * ONNX graph (so a change in how a model is fitted needs nothing here), and then checked
 * against the JavaScript encoders on random subnets: a feature that is not a sum over the
 * parts (statistical's means, physics where a block's cost depends on the width earlier
 * blocks wrote) fails the check or is refused up front, and `archGraphOf`
 * (arch-graph-files.ts) falls back to the general graph (`archInGraph`). A code off its
 * column's grid sends its part to the NaN row, and a digit the column does not allow has NaN
 * entries, so a row the space does not allow predicts NaN as in the general graph; an
 * inactive slot's entries are 0 whatever its columns hold.
 */

import { featureEncoder } from '../encodings/feature.ts';
import { combinations, compileSpace, unitAreaScales } from '../encodings/layout.ts';
import { onehotEncoder } from '../encodings/onehot.ts';
import { physicsLabels } from '../encodings/physics.ts';
import { ArchGraphUnsupportedError } from '../errors.ts';
import type { FeaturesJson } from '../predictor/artifact.ts';
import { createFeaturizer, featureChoiceOf } from '../predictor/index.ts';
import { createRng } from '../rng.ts';
import { macKinds } from '../spaces/cost.ts';
import { randomSubnet } from '../spaces/subnet.ts';
import { type SearchSpace, SKIP_CHOICE, type Subnet } from '../spaces/types.ts';
import { Builder, fccPool, lutPool } from './arch-graph.ts';
import { ARCH_INPUT, archRow, archRowLayout } from './arch-graph-layout.ts';
import { type ChainTables, physicsTables, SUM_COLUMNS, wholeRows } from './arch-physics.ts';
import { attr, type OnnxGraph, type OnnxInitializer, type OnnxNode } from './model.ts';

/** Largest table (rows x K float64 entries, 8 bytes each) the folded graph may hold. */
const MAX_TABLE_ENTRIES = 1 << 20;
/**
 * Keys at or above this are off the grid (a code the space does not allow), below it exact
 * integers in float32.
 */
const KEY_LIMIT = 2 ** 23;
/** A code off its column's grid: its digit, which lifts every key that reads it past KEY_LIMIT. */
const MISS = 2 ** 24;
/**
 * Largest space tabulated whole (wholeZ: every architecture encoded once per save, about
 * 90 us each: 4.5 CPU s at this size; NAS-Bench-201 has 15,625).
 */
const MAX_WHOLE_CELLS = 50_000;
/** Random subnets the finished tables must reproduce (z to 1e-9 of its terms' scale). */
const CHECK_SUBNETS = 400;

/** Why a model or its features do not fold (the general graph is used instead). */
export class NotFoldableError extends ArchGraphUnsupportedError {}

/** A slot's width out is not whole numbers times its width in: its parts stay single slots. */
class UnpairableError extends Error {
  override readonly name = 'UnpairableError';
}

const refuse = (why: string) => new NotFoldableError('model', why);

// ---------------------------------------------------------------------------------------
// The model's affine prefix

/** What the model computes from its input before anything non-linear: z = x W + b. */
interface AffinePrefix {
  readonly inputs: number;
  /** Columns of z. */
  readonly k: number;
  /** [inputs, k] row-major. */
  readonly weights: Float64Array;
  readonly bias: Float64Array;
  /** Each folded Gemm's output is z[:, start:end]. */
  readonly gemms: readonly { output: string; start: number; end: number }[];
  /** The model's other nodes, which read z through the Gemms' outputs. */
  readonly rest: readonly OnnxNode[];
}

function constInts(model: OnnxGraph, name: string | undefined): number[] | undefined {
  const init = model.initializers.find((t) => t.name === name);
  if (!init) return undefined;
  return Array.from(init.data as ArrayLike<number | bigint>, (v) => Number(v));
}

/**
 * The model's Gemms that read its input (directly or through a column Slice), as one affine
 * map. Refused when anything else reads the input (a tree ensemble) or a Gemm is transposed
 * or scaled.
 */
export function affinePrefix(model: OnnxGraph): AffinePrefix {
  const input = model.inputs[0];
  const inputs = input?.shape[1];
  if (!input || model.inputs.length !== 1 || typeof inputs !== 'number') {
    throw refuse('the model graph must have one input [batch, features]');
  }
  const readers = (name: string) => model.nodes.filter((n) => n.inputs.includes(name));
  const removed = new Set<OnnxNode>();
  const found: { node: OnnxNode; start: number; end: number }[] = [];
  const gemmOf = (node: OnnxNode, from: string, start: number, end: number) => {
    const plain = Object.entries(node.attributes ?? {}).every(
      ([k, a]) =>
        (k === 'alpha' || k === 'beta' ? a.value === 1 : a.value === 0) &&
        ['alpha', 'beta', 'transA', 'transB'].includes(k),
    );
    if (node.op !== 'Gemm' || node.inputs[0] !== from || node.inputs.indexOf(from, 1) > 0) {
      throw refuse(`the model reads its input with ${node.op}, not only with Gemm`);
    }
    if (!plain) throw refuse('a Gemm of the model is transposed or scaled');
    found.push({ node, start, end });
    removed.add(node);
  };
  for (const node of readers(input.name)) {
    if (node.op !== 'Slice') {
      gemmOf(node, input.name, 0, inputs);
      continue;
    }
    const [starts, ends, axes, steps] = [1, 2, 3, 4].map((i) => constInts(model, node.inputs[i]));
    const axis = axes?.[0] ?? 0;
    if (
      node.inputs[0] !== input.name ||
      starts?.length !== 1 ||
      ends?.length !== 1 ||
      (axis !== 1 && axis !== -1) ||
      (steps !== undefined && steps[0] !== 1)
    ) {
      throw refuse('the model slices its input other than by a range of columns');
    }
    const clamp = (v: number) => Math.max(0, Math.min(inputs, v < 0 ? v + inputs : v));
    removed.add(node);
    const out = node.outputs[0] as string;
    for (const reader of readers(out)) {
      gemmOf(reader, out, clamp(starts[0] as number), clamp(ends[0] as number));
    }
  }
  if (found.length === 0) throw refuse('the model has no Gemm reading its input');
  const tensor = (name: string | undefined) => model.initializers.find((t) => t.name === name);
  const shapes = found.map(({ node, start, end }) => {
    const w = tensor(node.inputs[1]);
    const cols = w?.dims[1];
    if (w?.dims.length !== 2 || w.dims[0] !== end - start || typeof cols !== 'number') {
      throw refuse('a Gemm of the model has no constant weight of the input’s width');
    }
    const c = node.inputs[2] === undefined ? undefined : tensor(node.inputs[2]);
    if (node.inputs[2] !== undefined && (!c || c.data.length !== cols)) {
      throw refuse('a Gemm of the model has a bias that is not one constant per output');
    }
    return { w, c, cols };
  });
  const k = shapes.reduce((n, s) => n + s.cols, 0);
  const weights = new Float64Array(inputs * k);
  const bias = new Float64Array(k);
  const gemms: { output: string; start: number; end: number }[] = [];
  let at = 0;
  found.forEach(({ node, start, end }, i) => {
    const { w, c, cols } = shapes[i] as (typeof shapes)[number];
    for (let r = start; r < end; r++) {
      for (let j = 0; j < cols; j++) {
        weights[r * k + at + j] = Number(w.data[(r - start) * cols + j]);
      }
    }
    for (let j = 0; j < cols; j++) bias[at + j] = c ? Number(c.data[j]) : 0;
    gemms.push({ output: node.outputs[0] as string, start: at, end: at + cols });
    at += cols;
  });
  return { inputs, k, weights, bias, gemms, rest: model.nodes.filter((n) => !removed.has(n)) };
}

// ---------------------------------------------------------------------------------------
// Parts, keys and the features' additive form

/**
 * One arch-row column in a part's key: the digit is (code - first) / step, the column's codes
 * being first + step x (0 .. radix - 1) with step their greatest common divisor (an evenly
 * spaced choice such as growth 16, 24, 32 has no digit left over; 3, 4, 6 leaves 5, which means
 * "not allowed"). A code off that grid (outside it or between its points) sends the part to the
 * NaN row; the graph computes the digit by arithmetic, not by a lookup per column. A choice a
 * skip voids (FBNet's op under a skip) cannot send its part there, since under a skip any code
 * is allowed: its digit is the code clipped to [least - 1, greatest + 1] (step 1), both ends and
 * the codes between that the choice lacks meaning "not allowed" (NaN for a layer).
 */
interface Digit {
  readonly column: number;
  readonly radix: number;
  readonly first: number;
  readonly step: number;
  /** The clipped kind: every code has a digit, off-grid codes the end ones. */
  readonly clipped: boolean;
  /**
   * A column of the second slot of a pair part that some depths leave inactive (its misses
   * count only where it is active).
   */
  readonly second?: boolean;
  /** Per digit value, the index of the value in the column's choice, -1 where not allowed. */
  readonly meaning: Int32Array;
}

interface Part {
  readonly kind: 'slot' | 'unit' | 'global';
  readonly unit: number;
  /** A slot part's (first) slot. */
  readonly slot: number;
  /** Slots of a slot part: 2 for a pair (slot and slot + 1, one key and one table row). */
  readonly slots: number;
  /** First digit fastest. */
  readonly digits: readonly Digit[];
  /** First table row. */
  readonly base: number;
  /** Keys of the digits; a pair whose second slot some depths leave inactive has twice as
   * many rows, the second half for the first slot alone. */
  readonly space: number;
  readonly size: number;
  /** A slot that some depths leave inactive: its unit's depth column; else undefined. */
  readonly depthColumn?: number;
}

/** A block slot as the encoders see it (only for an active slot with allowed values). */
interface SlotView {
  readonly u: number;
  readonly s: number;
  readonly ri: number;
  /** The encoders' feature tuple (compileSpace numbering). */
  readonly tuple: number;
  /** Whether it is a layer (not a skip). */
  readonly layer: boolean;
  /** Per block choice (blockChoiceNames order): its value index, -1 where a skip voids it. */
  readonly block: readonly number[];
}

interface UnitView {
  readonly u: number;
  readonly ri: number;
  /** Mixed-radix number of the unit choices (compileSpace's unit radix). */
  readonly unitKey: number;
  readonly choices: readonly number[];
}

interface GlobalView {
  readonly ri: number;
  readonly choices: readonly number[];
}

/** Receives one part's feature contributions; `peak` offers a value to the max feature. */
interface Sink {
  add(feature: number, value: number): void;
  /**
   * A contribution a + c (b + c g) in the width `c` the part reads (physics in spaces whose
   * blocks read what earlier blocks wrote: DenseNet, ResNet-50); `c` is carried part to part
   * through `out`.
   */
  poly(feature: number, a: number, b: number, g: number): void;
  /** A candidate for the max feature (physics' peak), a + c (b + c g). */
  peak(a: number, b?: number, g?: number): void;
  /** The width the part writes, round(a + c (b + c g)) (default: the width it reads). */
  out(a: number, b: number, g: number): void;
}

/** A feature part written as a sum over parts (offsets already applied). */
interface Additive {
  slot(v: SlotView, sink: Sink): void;
  unit(v: UnitView, sink: Sink): void;
  global(v: GlobalView, sink: Sink): void;
}

const none = () => {};

/**
 * Adds a value to the feature at pool position `pos`, where `order[i]` is the pool position
 * of entry i (fccPool, lutPool); positions the encoder drops add nothing.
 */
function pooled(order: readonly number[], offset: number) {
  const at = new Map(order.map((pos, i) => [pos, i]));
  return (sink: Sink, pos: number, value: number) => {
    const i = at.get(pos);
    if (i !== undefined) sink.add(offset + i, value);
  };
}

function fccAdditive(space: SearchSpace, offset: number, length: number): Additive {
  if (space.combinationFeatures) {
    throw refuse(`fcc's ${space.name}-specific combination features are not a sum over blocks`);
  }
  const { cmax, countWidth, scaledCopy, tail, order } = fccPool(space);
  if (order.length !== length) throw refuse('the fcc layout differs from the encoder’s');
  const put = pooled(order, offset);
  const U = space.units.length;
  const G = space.globalChoices.length;
  const areas = scaledCopy ? unitAreaScales(space) : undefined;
  const rMax = Math.max(...space.resolutions);
  return {
    slot(v, sink) {
      const pos = (v.u * 2 + (v.s === 0 ? 0 : 1)) * cmax + v.tuple;
      put(sink, pos, 1);
      if (areas) put(sink, countWidth + pos, areas[v.ri * U + v.u] as number);
      if (v.layer) {
        put(sink, tail + v.u, 1);
        put(sink, tail + U, 1);
      }
    },
    unit: none,
    global(v, sink) {
      space.globalChoices.forEach((c, g) => {
        put(sink, tail + U + 1 + g, c.values[v.choices[g] as number] as number);
      });
      const r = space.resolutions[v.ri] as number;
      put(sink, tail + U + 1 + G, r);
      put(sink, tail + U + 2 + G, (r / rMax) ** 2);
    },
  };
}

function lutAdditive(
  space: SearchSpace,
  buckets: number,
  offset: number,
  length: number,
): Additive {
  const { bucketOf, unitScale, stemScale, cmax, width, order } = lutPool(space, buckets);
  if (order.length !== length) throw refuse('the LUT layout differs from lutLayout’s');
  const put = pooled(order, offset);
  const U = space.units.length;
  const B = Math.max(...bucketOf) + 1;
  return {
    slot(v, sink) {
      const k = bucketOf[v.ri] as number;
      const pos = k * width + (v.u * 2 + (v.s === 0 ? 0 : 1)) * cmax + v.tuple;
      put(sink, pos, unitScale[v.ri * U + v.u] as number);
    },
    unit: none,
    global(v, sink) {
      const k = bucketOf[v.ri] as number;
      put(sink, k * width + width - 1, stemScale[v.ri] as number);
      put(sink, B * width, 1);
    },
  };
}

/** onehot and feature: entries found by the encoders' own labels. */
function labelledAdditive(
  space: SearchSpace,
  encoding: 'onehot' | 'feature',
  offset: number,
): Additive {
  const labels = (encoding === 'onehot' ? onehotEncoder(space) : featureEncoder(space)).labels;
  const index = new Map(labels.map((l, i) => [l, i]));
  const put = (sink: Sink, label: string, value: number) => {
    const i = index.get(label);
    if (i === undefined) throw refuse(`the ${encoding} encoder has no entry ${label}`);
    sink.add(offset + i, value);
  };
  const one = encoding === 'onehot';
  const entry = (sink: Sink, name: string, value: number) => {
    if (one) put(sink, `${name}=${value}`, 1);
    else put(sink, name, value);
  };
  return {
    slot(v, sink) {
      const unit = space.units[v.u] as SearchSpace['units'][number];
      unit.blockChoices.forEach((c, ci) => {
        const i = v.block[ci] as number;
        if (i >= 0) entry(sink, `u${v.u}.b${v.s}.${c.name}`, c.values[i] as number);
      });
      if (!one && v.layer) put(sink, `u${v.u}.depth`, 1);
    },
    unit(v, sink) {
      const unit = space.units[v.u] as SearchSpace['units'][number];
      unit.unitChoices.forEach((c, ci) => {
        entry(sink, `u${v.u}.${c.name}`, c.values[v.choices[ci] as number] as number);
      });
    },
    global(v, sink) {
      space.globalChoices.forEach((c, g) => {
        entry(sink, c.name, c.values[v.choices[g] as number] as number);
      });
      entry(sink, 'resolution', space.resolutions[v.ri] as number);
    },
  };
}

const MACS = macKinds.length;
const MEGA = 1e-6;

function physicsAdditive(space: SearchSpace, offset: number): Additive {
  let tables: ReturnType<typeof physicsTables>;
  try {
    tables = physicsTables(space);
  } catch (error) {
    if (error instanceof ArchGraphUnsupportedError) throw refuse(error.message);
    throw error;
  }
  if (tables.kind !== 'chain') throw refuse(`space ${space.name}'s physics is tabulated whole`);
  if (tables.byWidth) {
    // Its keys would need the width, known only after the lookup: the general graph does it.
    throw refuse(
      `space ${space.name}'s physics looks some costs up by a block's input width (no polynomial in it)`,
    );
  }
  if (SUM_COLUMNS.length !== MACS + 6 || physicsLabels.length !== MACS + 9) {
    throw refuse('the physics entries differ from what the folded graph computes');
  }
  const t: ChainTables = tables;
  const R = space.resolutions.length;
  const F = SUM_COLUMNS.length;
  const find = (kind: string, unit: number, slot: number) =>
    t.parts.find((p) => p.kind === kind && p.unit === unit && p.slot === slot);
  // The encoder's arithmetic per entry: counts x MEGA, bytes (elements x 4) x MEGA, layers.
  const entries: [number, number, number][] = [
    ...Array.from({ length: MACS + 1 }, (_, k): [number, number, number] => [k, k, MEGA]),
    [MACS + 1, MACS + 1, MEGA],
    [MACS + 2, MACS + 2, MEGA],
    [MACS + 3, MACS + 3, 4 * MEGA],
    [MACS + 5, MACS + 1, 4 * MEGA],
    [MACS + 7, MACS + 4, 1],
    [MACS + 8, MACS + 5, 1],
  ];
  /** A part's counts at the width it reads (`atZero`: the stem, which reads nothing). */
  const row = (sink: Sink, r: number, atZero: boolean) => {
    for (const [entry, column, scale] of entries) {
      const at = r * F + column;
      const [a, b, g] = [t.sums.a[at], t.sums.b[at], t.sums.g[at]] as number[];
      if (atZero) sink.add(offset + entry, Math.round(a as number) * scale);
      else
        sink.poly(
          offset + entry,
          (a as number) * scale,
          (b as number) * scale,
          (g as number) * scale,
        );
    }
    for (let k = 0; k < t.pieces; k++) {
      const at = r * t.pieces + k;
      const [a, b, g] = [t.live.a[at], t.live.b[at], t.live.g[at]] as number[];
      if (atZero) sink.peak(Math.round(a as number) * 4 * MEGA);
      else sink.peak((a as number) * 4 * MEGA, (b as number) * 4 * MEGA, (g as number) * 4 * MEGA);
    }
  };
  const out = (sink: Sink, r: number) => {
    sink.out(t.out.a[r] as number, t.out.b[r] as number, t.out.g[r] as number);
  };
  return {
    slot(v, sink) {
      const p = find('slot', v.u, v.s);
      if (!p) throw refuse(`the physics tables have no part for unit ${v.u} block ${v.s}`);
      row(sink, p.base + v.tuple * R + v.ri, false);
      out(sink, p.base + v.tuple * R + v.ri);
    },
    unit(v, sink) {
      const p = find('pre', v.u, -1);
      if (!p) throw refuse(`the physics tables have no transition of unit ${v.u}`);
      row(sink, p.base + v.unitKey * R + v.ri, false);
      out(sink, p.base + v.unitKey * R + v.ri);
    },
    global(v, sink) {
      // The global part is the stem (reading nothing: its width out starts the chain) and the
      // head (reading the last width: the global part's c is that one).
      const stem = find('stem', -1, -1);
      const head = find('head', -1, -1);
      if (!stem || !head) throw refuse('the physics tables have no stem or head');
      let g = 0;
      v.choices.forEach((i, k) => {
        g += i * (t.globalRadix[k] as number);
      });
      const stemRow = stem.base + g * R + v.ri;
      row(sink, stemRow, true);
      row(sink, head.base + v.ri, false);
      sink.out(Math.round(t.out.a[stemRow] as number), 0, 0);
      const input = (t.inputElements[v.ri] as number) * 4 * MEGA;
      sink.add(offset + MACS + 6, input);
      sink.peak(input);
    },
  };
}

/** The model's input as additive parts; the index of the max feature (physics' peak), if any. */
function additiveFeatures(
  space: SearchSpace,
  features: FeaturesJson,
): { parts: Additive[]; peak: number | undefined } {
  const list = features.kind === 'stack' ? features.parts : [features];
  const parts: Additive[] = [];
  let peak: number | undefined;
  let offset = 0;
  for (const f of list) {
    if (f.kind === 'lut') parts.push(lutAdditive(space, f.buckets, offset, f.length));
    else if (f.encoding === 'fcc') parts.push(fccAdditive(space, offset, f.length));
    else if (f.encoding === 'onehot' || f.encoding === 'feature') {
      parts.push(labelledAdditive(space, f.encoding, offset));
    } else if (f.encoding === 'physics') {
      if (peak !== undefined) throw refuse('the features hold physics twice');
      parts.push(physicsAdditive(space, offset));
      peak = offset + MACS + 4;
    } else {
      throw refuse(`the ${f.encoding} encoding is not a sum over blocks`);
    }
    offset += f.length;
  }
  if (offset !== features.length) throw refuse('the feature parts do not add up to its length');
  return { parts, peak };
}

// ---------------------------------------------------------------------------------------
// Tables

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

function digitOf(space: SearchSpace, column: number): Digit {
  const layout = archRowLayout(space);
  const { codes, kind, choice } = layout.entries[column] as (typeof layout.entries)[number];
  const clipped =
    kind === 'block' && choice !== SKIP_CHOICE && space.blockChoiceNames.includes(SKIP_CHOICE);
  const first = Math.min(...codes) - (clipped ? 1 : 0);
  const step = clipped ? 1 : codes.reduce((g, c) => gcd(g, c - first), 0) || 1;
  const radix = (Math.max(...codes) - first) / step + (clipped ? 2 : 1);
  const meaning = Int32Array.from({ length: radix }, (_, d) => codes.indexOf(first + d * step));
  return { column, radix, first, step, clipped, meaning };
}

/**
 * Every part of `space` with its key's columns: per unit its choices, per slot (or, with
 * `pairs`, per two slots: half the parts, each key's table row holding both slots' share, so
 * half the lookups), global.
 */
function spaceParts(space: SearchSpace, pairs: boolean): Part[] {
  const layout = archRowLayout(space);
  const parts: Part[] = [];
  // Row 0 of every table is the idle row (an inactive slot: nothing counted, the width
  // passed through), so the keys of inactive slots point there and no table needs a mask;
  // row 1 is the NaN row, where the key of a part with a code the space does not allow points.
  let base = FIRST_ROW;
  const add = (
    kind: Part['kind'],
    unit: number,
    slot: number,
    columns: number[],
    second: number[] = [],
  ) => {
    const def = space.units[unit];
    const slots = second.length > 0 ? 2 : 1;
    const masked = kind === 'slot' && def !== undefined && slot + slots - 1 >= def.minDepth;
    const halves = slots === 2 && masked ? 2 : 1;
    const digits = [
      ...columns.map((c) => digitOf(space, c)),
      ...second.map((c) => ({ ...digitOf(space, c), second: halves === 2 })),
    ];
    const keys = digits.reduce((n, d) => n * d.radix, 1);
    parts.push({
      kind,
      unit,
      slot,
      slots,
      digits,
      base,
      space: keys,
      size: keys * halves,
      ...(masked ? { depthColumn: layout.depthColumn(unit) } : {}),
    });
    base += keys * halves;
  };
  const res = layout.resolutionColumn;
  space.units.forEach((unit, u) => {
    const unitColumns = space.unitChoiceNames.map((_, c) => layout.unitColumn(c, u));
    // The depth's digit in the unit's key makes a depth the space does not allow NaN.
    add('unit', u, -1, [res, layout.depthColumn(u), ...unitColumns]);
    const blockColumns = (s: number) =>
      space.blockChoiceNames.map((_, c) => layout.blockColumn(c, u, s));
    for (let s = 0; s < unit.maxDepth; s += pairs ? 2 : 1) {
      // Whether the slot is active is a mask beside the keys (keysGraph), not a digit: a
      // depth digit would make each slot's table as many times larger as it has depths.
      const second = pairs && s + 1 < unit.maxDepth ? blockColumns(s + 1) : [];
      add('slot', u, s, [res, ...blockColumns(s), ...unitColumns], second);
    }
  });
  add('global', -1, -1, [res, ...space.globalChoices.map((_, g) => layout.globalColumn(g))]);
  return parts;
}

const IDLE_ROW = 0;
const NAN_ROW = 1;
const FIRST_ROW = 2;

type View =
  | { readonly kind: 'nan' }
  | { readonly kind: 'idle' }
  | { readonly kind: 'slot'; readonly v: SlotView }
  | { readonly kind: 'unit'; readonly v: UnitView }
  | { readonly kind: 'global'; readonly v: GlobalView };

const NAN: View = { kind: 'nan' };
const IDLE: View = { kind: 'idle' };

/** The row columns `viewOf` reads for one part: fixed per part, so worked out once. */
interface PartColumns {
  readonly res: number;
  readonly globals: readonly number[];
  readonly units: readonly number[];
  readonly depth: number;
  /** Whether the part's key holds the unit's depth (then an inactive slot is idle). */
  readonly hasDepth: boolean;
  readonly depthValues: readonly number[];
  /** The skip choice's index among the block choices, -1 where the space has none. */
  readonly skip: number;
  readonly blocks: readonly number[];
}

function partColumns(space: SearchSpace, part: Part): PartColumns {
  const layout = archRowLayout(space);
  const u = part.unit;
  const isUnitPart = part.kind === 'slot' || part.kind === 'unit';
  const depth = isUnitPart ? layout.depthColumn(u) : -1;
  return {
    res: layout.resolutionColumn,
    globals: space.globalChoices.map((_, g) => layout.globalColumn(g)),
    units: isUnitPart ? space.unitChoiceNames.map((_, c) => layout.unitColumn(c, u)) : [],
    depth,
    hasDepth: isUnitPart && part.digits.some((d) => d.column === depth),
    depthValues: isUnitPart ? (layout.entries[depth]?.values ?? []) : [],
    skip: space.blockChoiceNames.indexOf(SKIP_CHOICE),
    blocks:
      part.kind === 'slot'
        ? space.blockChoiceNames.map((_, c) => layout.blockColumn(c, u, part.slot))
        : [],
  };
}

/** Whether column value index `i` is one the column does not allow (-1, or no value). */
const bad = (i: number | undefined): boolean => !((i as number) >= 0);

/**
 * What a part is for the column value indices `idx` (-1: a value the column does not allow),
 * with the arithmetic of the general graph's front part (arch-graph.ts). It runs for every
 * key of every part, so it makes no closure or array it can avoid: tsx names every closure.
 */
function viewOf(
  compiled: ReturnType<typeof compileSpace>,
  part: Part,
  cols: PartColumns,
  idx: readonly number[],
): View {
  if (bad(idx[cols.res])) return NAN;
  const ri = idx[cols.res] as number;
  if (part.kind === 'global') {
    const choices: number[] = [];
    for (const c of cols.globals) {
      if (bad(idx[c])) return NAN;
      choices.push(idx[c] as number);
    }
    return { kind: 'global', v: { ri, choices } };
  }
  const u = part.unit;
  const cu = compiled.units[u] as (typeof compiled.units)[number];
  const choices: number[] = [];
  let unitKey = 0;
  for (let c = 0; c < cols.units.length; c++) {
    const i = idx[cols.units[c] as number];
    if (bad(i)) return NAN;
    choices.push(i as number);
    unitKey += (i as number) * (cu.unitRadix[c] as number);
  }
  if (cols.hasDepth && bad(idx[cols.depth])) return NAN;
  if (part.kind === 'unit') return { kind: 'unit', v: { u, ri, unitKey, choices } };
  const s = part.slot;
  if (cols.hasDepth && s >= (cols.depthValues[idx[cols.depth] as number] as number)) return IDLE;
  const { skip, blocks } = cols;
  let kind = 0;
  if (skip >= 0) {
    if (bad(idx[blocks[skip] as number])) return NAN;
    kind = idx[blocks[skip] as number] as number;
  }
  const block: number[] = [];
  for (let c = 0; c < blocks.length; c++) {
    const i = idx[blocks[c] as number];
    // Under a skip the other choices mean nothing, whatever the row holds.
    if (c !== skip && skip >= 0 && kind >= 1) block.push(-1);
    else if (bad(i)) return NAN;
    else block.push(i as number);
  }
  let tuple = unitKey;
  if (cu.skip !== undefined && skip >= 0 && kind > 0) {
    tuple = cu.skipBase - cu.unitCombinations + kind * cu.unitCombinations + unitKey;
  } else {
    for (let c = 0; c < block.length; c++) {
      tuple += Math.max(block[c] as number, 0) * (cu.blockRadix[c] as number);
    }
  }
  return { kind: 'slot', v: { u, s, ri, tuple, layer: skip < 0 || kind < 1, block } };
}

/**
 * Physics in spaces whose blocks read the width earlier ones wrote (DenseNet's growing
 * concatenation, ResNet-50's unit widths): each key's share of z is A + c (B + c G) in the
 * width c its part reads, and c is carried part to part in layer-graph order, c' = round(a +
 * c (b + c g)) (arch-physics.ts's tables, looked up by the same keys).
 */
interface Carried {
  /** [rows, k] B and G (G undefined where no count is quadratic in c). */
  readonly b: Float64Array;
  readonly g: Float64Array | undefined;
  /** [rows] the width each key writes. */
  readonly outA: Float64Array;
  readonly outB: Float64Array;
  readonly outG: Float64Array | undefined;
  /** Parts (indices into `parts`) in layer-graph order, the global part (its stem) first. */
  readonly chain: readonly number[];
  /** [peak rows, pieces] peak candidates a + c (b + c g), 0 past a key's own. */
  readonly liveA: Float64Array;
  readonly liveB: Float64Array;
  readonly liveG: Float64Array | undefined;
  readonly pieces: number;
}

interface Tables {
  /** The parts, those that can hold the max feature's maximum first. */
  readonly parts: readonly Part[];
  readonly rows: number;
  /** [rows, k]: each key's share of z (A where widths are carried). */
  readonly sums: Float64Array;
  /** Parts (the first ones) whose keys can hold the max feature's maximum. */
  readonly peakParts: number;
  /** [rows of the peak parts]: each key's candidate for the max feature (physics' peak). */
  readonly peaks: Float64Array | undefined;
  /** [k]: the max feature's weights. */
  readonly peakWeights: Float64Array | undefined;
  readonly carried: Carried | undefined;
}

/**
 * Least and greatest of a + c (b + c g) over c in [lo, hi]. No closure or array inside:
 * envelope calls it for every pair of a row's pieces, and tsx names every closure it makes.
 */
function polyRange(a: number, b: number, g: number, lo: number, hi: number): [number, number] {
  const atLo = a + lo * (b + lo * g);
  const atHi = a + hi * (b + hi * g);
  let least = Math.min(atLo, atHi);
  let most = Math.max(atLo, atHi);
  if (g !== 0) {
    const vertex = -b / (2 * g);
    if (vertex > lo && vertex < hi) {
      const atVertex = a + vertex * (b + vertex * g);
      least = Math.min(least, atVertex);
      most = Math.max(most, atVertex);
    }
  }
  return [least, most];
}

/**
 * The pieces (a, b, g triples, flattened) of which none other is at least as large at every
 * width in [lo, hi]: the others can never be the maximum.
 */
function envelope(pieces: readonly number[], lo: number, hi: number): number[] {
  const n = pieces.length / 3;
  const kept: number[] = [];
  for (let i = 0; i < n; i++) {
    let dominated = false;
    for (let j = 0; j < n && !dominated; j++) {
      if (j === i) continue;
      // The difference piece j - piece i over [lo, hi]: at least 0 everywhere (and, for
      // equal pieces, j the earlier one).
      const [dl, dh] = polyRange(
        (pieces[3 * j] as number) - (pieces[3 * i] as number),
        (pieces[3 * j + 1] as number) - (pieces[3 * i + 1] as number),
        (pieces[3 * j + 2] as number) - (pieces[3 * i + 2] as number),
        lo,
        hi,
      );
      dominated = dl >= 0 && (dh > 0 || j < i);
    }
    if (!dominated)
      kept.push(pieces[3 * i] as number, pieces[3 * i + 1] as number, pieces[3 * i + 2] as number);
  }
  return kept;
}

function buildTables(
  space: SearchSpace,
  features: FeaturesJson,
  prefix: AffinePrefix,
  pairs: boolean,
): Tables {
  if (prefix.inputs !== features.length) {
    throw refuse(`the model reads ${prefix.inputs} inputs, the features have ${features.length}`);
  }
  const { parts: additive, peak } = additiveFeatures(space, features);
  const natural = spaceParts(space, pairs);
  const lastPart = natural[natural.length - 1] as Part;
  const rows = lastPart.base + lastPart.size;
  const { k, weights, bias } = prefix;
  if (rows * k > MAX_TABLE_ENTRIES || rows >= KEY_LIMIT) {
    throw refuse(`its tables would hold ${rows} x ${k} entries (at most ${MAX_TABLE_ENTRIES})`);
  }
  const layout = archRowLayout(space);
  const R = space.resolutions.length;
  const sums = new Float64Array(rows * k);
  const sumsB = new Float64Array(rows * k);
  const sumsG = new Float64Array(rows * k);
  const outA = new Float64Array(rows);
  const outB = new Float64Array(rows).fill(1);
  const outG = new Float64Array(rows);
  sums.fill(Number.NaN, NAN_ROW * k, NAN_ROW * k + k);
  // Rows share one empty list until they get their own (no list is changed in place).
  const live = new Array<number[]>(rows).fill([]);
  /** Each row's resolution index; -1 for a row that counts nothing (NaN or idle). */
  const rowRi = new Int32Array(rows).fill(-1);
  const x = new Float64Array(prefix.inputs);
  const xb = new Float64Array(prefix.inputs);
  const xg = new Float64Array(prefix.inputs);
  const mark = new Uint8Array(prefix.inputs);
  const touched: number[] = [];
  let candidates: number[] = [];
  let wrote: [number, number, number] | undefined;
  const sink: Sink = {
    add(feature, value) {
      sink.poly(feature, value, 0, 0);
    },
    poly(feature, a, b, g) {
      if (a === 0 && b === 0 && g === 0) return;
      if (!mark[feature]) {
        mark[feature] = 1;
        touched.push(feature);
      }
      x[feature] = (x[feature] as number) + a;
      xb[feature] = (xb[feature] as number) + b;
      xg[feature] = (xg[feature] as number) + g;
    },
    peak(a, b = 0, g = 0) {
      candidates.push(a, b, g);
    },
    out(a, b, g) {
      wrote = [a, b, g];
    },
  };
  const idx = new Array<number>(layout.length).fill(-1);
  const compiled = compileSpace(space);
  /** A part's share of z (A, B, G: polynomial in the width it reads), width out, peak pieces. */
  interface Share {
    readonly a: Float64Array;
    readonly b: Float64Array;
    readonly g: Float64Array;
    readonly out: [number, number, number] | undefined;
    readonly live: number[];
  }
  const share = (view: View): Share => {
    candidates = [];
    wrote = undefined;
    for (const a of additive) {
      if (view.kind === 'slot') a.slot(view.v, sink);
      else if (view.kind === 'unit') a.unit(view.v, sink);
      else if (view.kind === 'global') a.global(view.v, sink);
    }
    const out = { a: new Float64Array(k), b: new Float64Array(k), g: new Float64Array(k) };
    for (let j = 0; j < k; j++) {
      let za = view.kind === 'global' ? (bias[j] as number) : 0;
      let zb = 0;
      let zg = 0;
      for (const f of touched) {
        const w = weights[f * k + j] as number;
        za += (x[f] as number) * w;
        zb += (xb[f] as number) * w;
        zg += (xg[f] as number) * w;
      }
      out.a[j] = za;
      out.b[j] = zb;
      out.g[j] = zg;
    }
    for (const f of touched) {
      x[f] = 0;
      xb[f] = 0;
      xg[f] = 0;
      mark[f] = 0;
    }
    touched.length = 0;
    // (the additive parts wrote it; the compiler cannot see that through the closure)
    return { ...out, out: wrote as [number, number, number] | undefined, live: candidates };
  };
  // A slot's share depends on its unit, slot, resolution and tuple only: a pair's rows are
  // made of the shares of its two slots, each computed once.
  const slotShares = new Map<number, Share>();
  const slots = Math.max(...space.units.map((u) => u.maxDepth));
  const slotShare = (view: View): Share => {
    if (view.kind !== 'slot') return share(view);
    const { u, s, ri, tuple } = view.v;
    const id = ((u * slots + s) * space.resolutions.length + ri) * rows + tuple;
    let got = slotShares.get(id);
    if (!got) {
      got = share(view);
      slotShares.set(id, got);
    }
    return got;
  };
  natural.forEach((part) => {
    const firstSlot = part.slots === 2 ? { ...part, digits: [] } : part;
    const secondSlot = { ...part, slot: part.slot + 1, digits: [] };
    const firstColumns = partColumns(space, firstSlot);
    const secondColumns = part.kind === 'slot' ? partColumns(space, secondSlot) : firstColumns;
    for (let key = 0; key < part.size; key++) {
      let rest = key % part.space;
      const alone = key >= part.space;
      for (const d of part.digits) {
        idx[d.column] = d.meaning[rest % d.radix] as number;
        rest = Math.floor(rest / d.radix);
      }
      const view = viewOf(compiled, firstSlot, firstColumns, idx);
      const next =
        part.slots === 2 && !alone ? viewOf(compiled, secondSlot, secondColumns, idx) : undefined;
      const row = part.base + key;
      if (view.kind === 'nan' || next?.kind === 'nan') {
        sums.fill(Number.NaN, row * k, row * k + k);
      } else if (view.kind !== 'idle') {
        const one = slotShare(view);
        let out = one.out;
        let pieces = one.live;
        sums.set(one.a, row * k);
        sumsB.set(one.b, row * k);
        sumsG.set(one.g, row * k);
        if (next) {
          // The second slot reads r = s + t c, what the first wrote (whole numbers: no
          // rounding between them): its share in r written as a polynomial in c.
          const [s, t, g] = one.out ?? [0, 1, 0];
          if (g !== 0 || !Number.isInteger(s) || !Number.isInteger(t)) {
            throw new UnpairableError();
          }
          const two = slotShare(next);
          // a + r (b + r c) = (a + s (b + s c)) + c' (t (b + 2 s c) + c' t^2 c), inline: this
          // runs for every row of every pair.
          for (let j = 0; j < k; j++) {
            const a = two.a[j] as number;
            const b = two.b[j] as number;
            const c = two.g[j] as number;
            sums[row * k + j] = (sums[row * k + j] as number) + a + s * (b + s * c);
            sumsB[row * k + j] = (sumsB[row * k + j] as number) + t * (b + 2 * s * c);
            sumsG[row * k + j] = (sumsG[row * k + j] as number) + t * t * c;
          }
          const [oa, ob, og] = two.out ?? [0, 1, 0];
          out = [oa + s * (ob + s * og), t * (ob + 2 * s * og), t * t * og];
          const l = two.live;
          if (l.length > 0) pieces = one.live.slice();
          for (let i = 0; i < l.length; i += 3) {
            const a = l[i] as number;
            const b = l[i + 1] as number;
            const c = l[i + 2] as number;
            pieces.push(a + s * (b + s * c), t * (b + 2 * s * c), t * t * c);
          }
        }
        rowRi[row] = idx[layout.resolutionColumn] as number;
        if (out) [outA[row], outB[row], outG[row]] = out;
        live[row] = pieces;
      }
      for (const d of part.digits) idx[d.column] = -1;
    }
  });
  const any = (a: Float64Array) => a.some((v) => v !== 0);
  let liveUsesC = false;
  for (const l of live) {
    for (let i = 0; i < l.length && !liveUsesC; i++) liveUsesC = i % 3 !== 0 && l[i] !== 0;
  }
  const carriedWidth = any(sumsB) || any(sumsG) || (peak !== undefined && liveUsesC);

  // The width range each part reads, per resolution (interval arithmetic along the chain),
  // so that the max feature need only look at parts that can beat the global part.
  const globalAt = natural.findIndex((p) => p.kind === 'global');
  const chain = [globalAt, ...natural.map((_, p) => p).filter((p) => p !== globalAt)];
  const reads = natural.map(() => Array.from({ length: R }, () => [0, 0] as [number, number]));
  if (carriedWidth) {
    for (let ri = 0; ri < R; ri++) {
      let range: [number, number] = [0, 0];
      for (const p of chain) {
        const part = natural[p] as Part;
        if (part.kind !== 'global') (reads[p] as [number, number][])[ri] = range;
        let lo = part.depthColumn === undefined ? Number.POSITIVE_INFINITY : range[0];
        let hi = part.depthColumn === undefined ? Number.NEGATIVE_INFINITY : range[1];
        for (let row = part.base; row < part.base + part.size; row++) {
          if (rowRi[row] !== ri) continue;
          const [l, h] = polyRange(
            outA[row] as number,
            outB[row] as number,
            outG[row] as number,
            range[0],
            range[1],
          );
          lo = Math.min(lo, Math.floor(l));
          hi = Math.max(hi, Math.ceil(h));
        }
        if (lo <= hi) range = [lo, hi];
      }
      (reads[globalAt] as [number, number][])[ri] = range;
    }
  }
  const most = natural.map(() => new Float64Array(R));
  const least = new Float64Array(R).fill(Number.POSITIVE_INFINITY);
  natural.forEach((part, p) => {
    for (let row = part.base; row < part.base + part.size; row++) {
      const ri = rowRi[row] as number;
      if (ri < 0) continue;
      const l = live[row] as number[];
      const [lo, hi] = (reads[p] as [number, number][])[ri] as [number, number];
      let upper = 0;
      let constant = 0;
      for (let i = 0; i < l.length; i += 3) {
        const [a, b, g] = [l[i], l[i + 1], l[i + 2]] as number[];
        upper = Math.max(upper, polyRange(a as number, b as number, g as number, lo, hi)[1]);
        if (b === 0 && g === 0) constant = Math.max(constant, a as number);
      }
      const m = most[p] as Float64Array;
      m[ri] = Math.max(m[ri] as number, upper);
      if (part.kind === 'global') least[ri] = Math.min(least[ri] as number, constant);
    }
  });
  // Parts that can never beat the global part (input, stem) at any resolution need no place
  // in the max: they go last, and the max reads the keys of the others only.
  const candidate = natural.map(
    (part, p) =>
      peak !== undefined &&
      (part.kind === 'global' ||
        (most[p] as Float64Array).some((v, ri) => v > (least[ri] as number))),
  );
  const order = [
    ...natural.map((_, p) => p).filter((p) => candidate[p]),
    ...natural.map((_, p) => p).filter((p) => !candidate[p]),
  ];
  const place = new Map(order.map((p, i) => [p, i]));
  const moved = <T extends Float64Array>(from: T, width: number): T => {
    const to = new (from.constructor as new (n: number) => T)(from.length);
    to.set(from.subarray(0, FIRST_ROW * width));
    let base = FIRST_ROW;
    for (const p of order) {
      const part = natural[p] as Part;
      to.set(from.subarray(part.base * width, (part.base + part.size) * width), base * width);
      base += part.size;
    }
    return to;
  };
  let base = FIRST_ROW;
  const parts = order.map((p) => {
    const part = natural[p] as Part;
    const at = { ...part, base };
    base += part.size;
    return at;
  });
  const peakParts = candidate.filter(Boolean).length;
  const peakRows = parts.slice(0, peakParts).reduce((n, part) => n + part.size, FIRST_ROW);
  const sortedLive = moved(
    Float64Array.from({ length: rows }, (_, r) => r),
    1,
  );
  let peaks: Float64Array | undefined;
  let carried: Carried | undefined;
  if (peak !== undefined && !carriedWidth) {
    peaks = new Float64Array(peakRows);
    for (let r = 0; r < peakRows; r++) {
      const l = live[sortedLive[r] as number] as number[];
      let top = 0;
      for (let i = 0; i < l.length; i += 3) top = Math.max(top, l[i] as number);
      peaks[r] = top;
    }
  }
  if (carriedWidth) {
    // Only a row's pieces that can be its largest at some width it may read: the peak
    // lookup's size (and its Split) scales with the most pieces of any row.
    natural.forEach((part, p) => {
      if (!candidate[p]) return;
      for (let row = part.base; row < part.base + part.size; row++) {
        const ri = rowRi[row] as number;
        if (ri < 0) continue;
        const [lo, hi] = (reads[p] as [number, number][])[ri] as [number, number];
        live[row] = envelope(live[row] as number[], lo, hi);
      }
    });
    let pieces = 1;
    for (let r = 0; r < peakRows; r++) {
      pieces = Math.max(pieces, (live[sortedLive[r] as number] as number[]).length / 3);
    }
    const liveA = new Float64Array(peakRows * pieces);
    const liveB = new Float64Array(peakRows * pieces);
    const liveG = new Float64Array(peakRows * pieces);
    for (let r = 0; r < peakRows; r++) {
      const l = live[sortedLive[r] as number] as number[];
      for (let i = 0; i < l.length / 3; i++) {
        liveA[r * pieces + i] = l[3 * i] as number;
        liveB[r * pieces + i] = l[3 * i + 1] as number;
        liveG[r * pieces + i] = l[3 * i + 2] as number;
      }
    }
    carried = {
      b: moved(sumsB, k),
      g: any(sumsG) ? moved(sumsG, k) : undefined,
      outA: moved(outA, 1),
      outB: moved(outB, 1),
      outG: any(outG) ? moved(outG, 1) : undefined,
      chain: chain.map((p) => place.get(p) as number),
      liveA,
      liveB,
      liveG: any(liveG) ? liveG : undefined,
      pieces,
    };
  }
  const tables: Tables = {
    parts,
    rows,
    sums: moved(sums, k),
    peakParts,
    peaks,
    peakWeights: peak === undefined ? undefined : weights.slice(peak * k, peak * k + k),
    carried,
  };
  checkTables(space, features, prefix, tables);
  return tables;
}

/** The digit of `code` in a key, -1 off the column's grid. */
function digitValue(d: Digit, code: number): number {
  if (d.clipped) return Math.min(Math.max(code - d.first, 0), d.radix - 1);
  const t = (code - d.first) / d.step;
  return Number.isInteger(t) && t >= 0 && t < d.radix ? t : -1;
}

/** z of one arch row from the tables, in float64: what the folded graph computes. */
function foldedZ(space: SearchSpace, tables: Tables, k: number, row: readonly number[]) {
  const layout = archRowLayout(space);
  const P = tables.parts.length;
  const at = new Array<number>(P);
  const active = new Array<boolean>(P);
  tables.parts.forEach((part, p) => {
    active[p] = true;
    let alone = false;
    if (part.depthColumn !== undefined) {
      const depth = row[part.depthColumn] as number;
      // A depth the space does not allow is NaN through its unit's part.
      if (layout.entries[part.depthColumn]?.codes.includes(depth)) {
        active[p] = part.slot < depth;
        alone = part.size > part.space && part.slot + 1 >= depth;
      }
    }
    let key = alone ? part.space : 0;
    let mult = 1;
    let off = false;
    for (const d of part.digits) {
      const digit = digitValue(d, row[d.column] as number);
      // An inactive second slot's codes mean nothing (its rows repeat for every digit).
      if (!(alone && d.second)) off ||= digit < 0;
      key += Math.max(digit, 0) * mult;
      mult *= d.radix;
    }
    at[p] = !active[p] ? IDLE_ROW : off ? NAN_ROW : part.base + key;
  });
  const c = new Array<number>(P).fill(0);
  const cv = tables.carried;
  if (cv) {
    let width = 0;
    for (const p of cv.chain) {
      const r = at[p] as number;
      if (tables.parts[p]?.kind !== 'global') c[p] = width;
      const g = cv.outG ? (cv.outG[r] as number) : 0;
      width = Math.round((cv.outA[r] as number) + width * ((cv.outB[r] as number) + width * g));
    }
    c[cv.chain[0] as number] = width;
  }
  const z = new Float64Array(k);
  let top = 0;
  for (let p = 0; p < P; p++) {
    const r = at[p] as number;
    const cp = c[p] as number;
    for (let j = 0; j < k; j++) {
      let v = tables.sums[r * k + j] as number;
      if (cv)
        v += cp * ((cv.b[r * k + j] as number) + cp * (cv.g ? (cv.g[r * k + j] as number) : 0));
      z[j] = (z[j] as number) + v;
    }
    if (p >= tables.peakParts) continue;
    if (tables.peaks) top = Math.max(top, tables.peaks[r] as number);
    if (cv) {
      for (let i = 0; i < cv.pieces; i++) {
        const q = r * cv.pieces + i;
        const g = cv.liveG ? (cv.liveG[q] as number) : 0;
        top = Math.max(top, (cv.liveA[q] as number) + cp * ((cv.liveB[q] as number) + cp * g));
      }
    }
  }
  if (tables.peakWeights) {
    for (let j = 0; j < k; j++) z[j] = (z[j] as number) + top * (tables.peakWeights[j] as number);
  }
  return z;
}

/**
 * The tables against the encoders and the model's weights on random subnets (a quarter of
 * them with every unit at its least or greatest depth); refuses the fold on any difference
 * beyond rounding.
 */
function checkTables(
  space: SearchSpace,
  features: FeaturesJson,
  prefix: AffinePrefix,
  tables: Tables,
): void {
  const featurizer = createFeaturizer(space, featureChoiceOf(features));
  const rng = createRng(20261201);
  const { k, weights, bias } = prefix;
  for (let n = 0; n < CHECK_SUBNETS; n++) {
    const subnet = randomSubnet(space, rng);
    if (n % 4 === 1) {
      const deepest = n % 8 === 1;
      subnet.units.forEach((unit, u) => {
        const def = space.units[u] as SearchSpace['units'][number];
        const depth = deepest ? def.maxDepth : def.minDepth;
        const blocks = unit.blocks as Record<string, number>[];
        while (blocks.length > depth) blocks.pop();
        while (blocks.length < depth) {
          blocks.push(randomSubnet(space, rng).units[u]?.blocks[0] as Record<string, number>);
        }
      });
    }
    let x: Float64Array;
    try {
      x = featurizer.encode(subnet);
    } catch {
      // A depth pattern the space refuses (a layer-wise unit's own rules): not a row.
      continue;
    }
    const got = foldedZ(space, tables, k, archRow(space, subnet));
    for (let j = 0; j < k; j++) {
      let want = bias[j] as number;
      let scale = Math.abs(want);
      x.forEach((v, f) => {
        const term = v * (weights[f * k + j] as number);
        want += term;
        scale += Math.abs(term);
      });
      const diff = Math.abs((got[j] as number) - want);
      if (!(diff <= 1e-9 * scale + 1e-12)) {
        throw refuse(
          `its features are not a sum over the blocks (output ${j}: ${got[j]} from the tables, ${want} from the encoder)`,
        );
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// The graph

/**
 * int32 table rows of every part from the arch rows, [N, P] (or [P, N] with `batchLast`): the
 * idle row for a slot at or past its unit's depth (whatever its columns hold, values the space
 * does not allow too), the NaN row for an active part with a code off its digits' grid. int32,
 * not int64: the keys' last Where on float32 and one Cast, the lookups' indices at half the
 * bytes.
 *
 * Every column's digit is read from one table, [codes, L], by one GatherElements on the codes
 * clipped to [-1, greatest + 1] (-1 reads the last row, as greatest + 1 does): the digit where
 * the code is on the column's grid, else MISS, which lifts its parts' keys past KEY_LIMIT (a
 * clipped digit never misses: its table holds the clipped digit). Codes are at most 4,096
 * (archRowLayout), so the table is small. Not arithmetic ((code - first) / step, clipped,
 * rounded, its miss measured: about ten elementwise nodes on [N, L], 40 % more time on
 * DenseNet), and not a Gather (onnxruntime's Gather costs about 8 ns per index,
 * GatherElements about 1 ns). The keys are then one Gemm of the digits; a pair whose second
 * slot may be inactive has a second key from the first slot's digits alone, in the table's
 * second half, read where that slot is inactive (its codes, misses too, mean nothing there).
 */
function keysGraph(
  b: Builder,
  space: SearchSpace,
  parts: readonly Part[],
  batchLast: boolean,
): string {
  const layout = archRowLayout(space);
  const L = layout.length;
  const P = parts.length;
  const top = Math.max(...layout.entries.flatMap((e) => e.codes)) + 1;
  // [top + 1, L]: the digit of code r in column c at r x L + c; row `top` for every code
  // outside 0..top - 1.
  const digitTable = new Float32Array((top + 1) * L);
  // [P, L] each: the digit multipliers of each part, and of each part's first slot alone.
  const weights = new Float32Array(P * L);
  const aloneWeights = new Float32Array(P * L);
  const base = parts.map((part) => part.base);
  const aloneBase = parts.map((part) => part.base + part.space);
  const filled = new Set<number>();
  parts.forEach((part, p) => {
    let mult = 1;
    for (const d of part.digits) {
      if (!filled.has(d.column)) {
        filled.add(d.column);
        for (let r = 0; r <= top; r++) {
          const digit = digitValue(d, r);
          digitTable[r * L + d.column] = digit < 0 ? MISS : digit;
        }
      }
      weights[p * L + d.column] = mult;
      if (!d.second) aloneWeights[p * L + d.column] = mult;
      mult *= d.radix;
    }
  });
  const bounded = b.op('Clip', [b.cast(ARCH_INPUT, 'float'), b.f32([-1], []), b.f32([top], [])]);
  const digits = b.op(
    'GatherElements',
    [b.f32(digitTable, [top + 1, L]), b.cast(bounded, 'int32')],
    {
      axis: attr.int(0),
    },
  );
  const paired = parts.flatMap((part, p) => (part.size > part.space ? [p] : []));
  const pairs = paired.length > 0;
  // digits [N, L] times [Q, L] matrices: [N, Q], or [Q, N] batch last; with pairs, the first
  // slots' keys alone are more rows of the one Gemm: batch last only the pairs' (DenseNet: 13
  // of 22 parts), read back per part by a Gather of rows (a copy of P rows), else all P of
  // them, taken apart by Slice (a Gather across the batch costs per element).
  const aloneRows = !pairs ? [] : batchLast ? paired : parts.map((_, p) => p);
  const m = new Float32Array((P + aloneRows.length) * L);
  m.set(weights);
  aloneRows.forEach((p, i) => {
    m.set(aloneWeights.subarray(p * L, (p + 1) * L), (P + i) * L);
  });
  const bias = [...base, ...aloneRows.map((p) => aloneBase[p] as number)];
  const Q = bias.length;
  const both = batchLast
    ? b.op('Gemm', [b.f32(m, [Q, L]), digits, b.f32(bias, [Q, 1])], { transB: attr.int(1) })
    : b.op('Gemm', [digits, b.f32(m, [Q, L]), b.f32(bias, [Q])], { transB: attr.int(1) });
  const axis = batchLast ? 0 : 1;
  const offGrid = (x: string) =>
    b.op('Where', [b.op('Less', [x, b.f32([KEY_LIMIT], [])]), x, b.f32([NAN_ROW], [])]);
  if (!parts.some((part) => part.depthColumn !== undefined)) {
    return b.cast(offGrid(both), 'int32');
  }
  // A slot is active where its unit's depth digit is above `below` (the slot's own digit):
  // `over` = depth digit - below > 0. A pair's second slot is active where over > 1 / step.
  // From the digits as the keys read them (a depth off its grid makes the unit's own part
  // NaN, whatever the slots do).
  const below = new Float32Array(P).fill(-1);
  const alone = new Float32Array(P).fill(Number.NEGATIVE_INFINITY);
  const depthColumns: number[] = [];
  parts.forEach((part, p) => {
    if (part.depthColumn === undefined) return;
    const c = part.depthColumn;
    const d = digitOf(space, c);
    depthColumns.push(c);
    below[p] = (part.slot - d.first) / d.step;
    // over takes values 1 apart: halfway between 1 / step and the next one up.
    if (part.size > part.space) alone[p] = 1 / d.step + 0.5;
  });
  // The depths from the span of depth columns only (DenseNet: 4 of 107 columns), a Gemm a
  // tenth the size of the keys' one, not P more rows of it.
  const lo = Math.min(...depthColumns);
  const span = Math.max(...depthColumns) + 1 - lo;
  const depthOfSpan = new Float32Array(P * span);
  parts.forEach((part, p) => {
    if (part.depthColumn !== undefined) depthOfSpan[p * span + part.depthColumn - lo] = 1;
  });
  const depths = b.slice(digits, 1, lo, lo + span);
  const negBelow = below.map((v) => -v);
  const over = batchLast
    ? b.op('Gemm', [b.f32(depthOfSpan, [P, span]), depths, b.f32(negBelow, [P, 1])], {
        transB: attr.int(1),
      })
    : b.op('Gemm', [depths, b.f32(depthOfSpan, [P, span]), b.f32(negBelow, [P])], {
        transB: attr.int(1),
      });
  let keys = pairs ? b.slice(both, axis, 0, P) : both;
  if (pairs) {
    keys = b.op('Where', [
      b.op('Less', [over, b.f32(alone, batchLast ? [P, 1] : [P])]),
      batchLast
        ? b.op('Gather', [both, b.i64(parts.map((_, p) => P + Math.max(paired.indexOf(p), 0)))], {
            axis: attr.int(0),
          })
        : b.slice(both, axis, P, 2 * P),
      keys,
    ]);
  }
  const active = b.op('Less', [b.f32([0], []), over]);
  return b.cast(b.op('Where', [active, offGrid(keys), b.f32([IDLE_ROW], [])]), 'int32');
}

/**
 * Each of `tables` ([rows, width], rows past its data 0) at `keys` ([a, b] int32, either
 * of them the batch: `shape` gives the other, the batch -1), each [a, b, width]. A table of
 * one value per key by GatherElements on the flattened keys; a wider one (ResNet-50's peak
 * pieces, a blend's k values) by Gather. Not the tables side by side in one Gather and a
 * Split: onnxruntime's Gather costs about 8 ns per index whatever it copies, its
 * GatherElements about 1 ns per element (measured on this machine's onnxruntime-node), so
 * several one-value lookups cost less than one wide one; but GatherElements needs its
 * indices as wide as the table, and expanding them cost more than Gather's 8 ns.
 */
function lookupEach(
  b: Builder,
  rows: number,
  tables: readonly { data: Float64Array; width: number }[],
  keys: string,
  shape: readonly [number, number],
): string[] {
  let flat: string | undefined;
  return tables.map(({ data, width }) => {
    const padded = new Float64Array(rows * width);
    padded.set(data.subarray(0, Math.min(data.length, padded.length)));
    if (width > 1) {
      return b.op('Gather', [b.f64(padded, [rows, width]), keys], { axis: attr.int(0) });
    }
    flat ??= b.reshape(keys, [-1]);
    const got = b.op('GatherElements', [b.f64(padded, [rows]), flat], { axis: attr.int(0) });
    return b.reshape(got, [...shape, 1]);
  });
}

/**
 * Each key's share of z as A + c (B + c G) and the width its part writes as
 * outA + c (outB + c outG), for the width c it reads: one lookup per table (batch last:
 * [P, N, k] and [P, N, 1] pieces). G, outB and outG only for the `special` parts, in that
 * order ([S, N, ...]): the rest have no quadratic term and write their width in plus outA
 * (DenseNet: 6 of 22 parts, the stem, the transitions and the first unit's; a lookup less
 * of all the keys for each of those tables).
 */
interface CarriedLookup {
  readonly A: string;
  readonly B: string;
  readonly outA: string;
  readonly special: readonly number[];
  readonly G: string | undefined;
  readonly outB: string;
  readonly outG: string | undefined;
}

function carriedLookup(
  b: Builder,
  tables: Tables,
  cv: Carried,
  k: number,
  keysT: string,
  special: readonly number[],
): CarriedLookup {
  const P = tables.parts.length;
  const [A, B, outA] = lookupEach(
    b,
    tables.rows,
    [
      { data: tables.sums, width: k },
      { data: cv.b, width: k },
      { data: cv.outA, width: 1 },
    ],
    keysT,
    [P, -1],
  ) as [string, string, string];
  const keysS = special.length === P ? keysT : b.rows(keysT, special);
  const got = lookupEach(
    b,
    tables.rows,
    [
      ...(cv.g ? [{ data: cv.g, width: k }] : []),
      { data: cv.outB, width: 1 },
      ...(cv.outG ? [{ data: cv.outG, width: 1 }] : []),
    ],
    keysS,
    [special.length, -1],
  );
  const next = () => got.shift() as string;
  const G = cv.g ? next() : undefined;
  const outB = next();
  const outG = cv.outG ? next() : undefined;
  return { A, B, outA, special, G, outB, outG };
}

/**
 * The parts whose G, outB and outG the graph reads: with the widths by runs (`anchors`), the
 * runs' starts and every part with a quadratic term (G not 0 where its share is a number);
 * carried part to part, every part.
 */
function specialParts(
  tables: Tables,
  cv: Carried,
  k: number,
  anchors: readonly number[] | null,
): number[] {
  const P = tables.parts.length;
  if (!anchors) return Array.from({ length: P }, (_, p) => p);
  const { g } = cv;
  const quadratic = (p: number) => {
    if (!g) return false;
    const part = tables.parts[p] as Part;
    for (let i = part.base * k; i < (part.base + part.size) * k; i++) {
      const v = g[i] as number;
      if (v !== 0 && !(Number.isNaN(v) && Number.isNaN(tables.sums[i] as number))) return true;
    }
    return false;
  };
  return Array.from({ length: P }, (_, p) => p).filter((p) => anchors.includes(p) || quadratic(p));
}

/** The width part `p` (a special part) writes, `outA + c (outB + c outG)`, rounded. */
function widthOut(b: Builder, looked: CarriedLookup, c: string, p: number): string {
  const row = (x: string, at: number) => b.slice(x, 0, at, at + 1);
  const s = looked.special.indexOf(p);
  const { outA, outB, outG } = looked;
  const inner = outG ? b.op('Add', [row(outB, s), b.op('Mul', [c, row(outG, s)])]) : row(outB, s);
  return b.op('Round', [b.op('Add', [row(outA, p), b.op('Mul', [c, inner])])]);
}

/**
 * The width each part reads ([P, N, 1]), carried in layer-graph order part to part (a few
 * nodes per part). The idle row passes the width through: c' = 0 + c (1 + c 0).
 */
function chainedReads(b: Builder, cv: Carried, P: number, looked: CarriedLookup): string {
  const [stem, ...rest] = cv.chain as [number, ...number[]];
  const widths = new Array<string>(P);
  let c = b.slice(looked.outA, 0, stem, stem + 1);
  for (const p of rest) {
    widths[p] = c;
    c = widthOut(b, looked, c, p);
  }
  widths[stem] = c;
  return b.concat(widths, 0);
}

/**
 * The parts, in layer-graph order from the global part on, that start a run of widths: the
 * global part (its stem), and every part whose width out is not its width in plus a whole
 * number of its key (DenseNet's transitions, which halve it; every ResNet-50 block). Between
 * two of them the widths only grow by what each part adds (DenseNet's growths; an idle slot
 * adds 0), so a part reads its run's start plus the sum of what the parts before it in the
 * run added: a MatMul, not a chain of nodes per part.
 */
function anchorsOf(tables: Tables, cv: Carried): number[] {
  const adds = (p: number) => {
    const part = tables.parts[p] as Part;
    for (let r = part.base; r < part.base + part.size; r++) {
      const a = cv.outA[r] as number;
      if (cv.outB[r] !== 1 || (cv.outG?.[r] ?? 0) !== 0 || !Number.isInteger(a)) return false;
    }
    return true;
  };
  return cv.chain.filter((p, i) => i === 0 || !adds(p));
}

/**
 * The width each part reads ([P, N, 1]) where few parts start a run of widths (anchorsOf):
 * what each run's parts add before each part by one MatMul, plus the runs' starts in order
 * (a few nodes each).
 */
function anchoredReads(
  b: Builder,
  cv: Carried,
  P: number,
  looked: CarriedLookup,
  anchors: readonly number[],
): string {
  const S = looked.special.length;
  const flat = (x: string, rows = P) => b.reshape(x, [rows, -1]);
  const flatLooked: CarriedLookup = {
    ...looked,
    outA: flat(looked.outA),
    outB: flat(looked.outB, S),
    outG: looked.outG ? flat(looked.outG, S) : undefined,
  };
  // Runs in layer-graph order (the global part, read last as the head, closes the last one):
  // adds[p, q] = 1 where q adds to what p reads; from[p, j] = 1 where p reads in run j.
  const adds = new Float64Array(P * P);
  const from = new Float64Array(P * anchors.length);
  const order = [...cv.chain.slice(1), cv.chain[0] as number];
  let run = 0;
  let since: number[] = [];
  for (const p of order) {
    from[p * anchors.length + run] = 1;
    for (const q of since) adds[p * P + q] = 1;
    if (anchors.includes(p)) {
      run = anchors.indexOf(p);
      since = [];
    } else {
      since.push(p);
    }
  }
  const added = b.op('MatMul', [b.f64(adds, [P, P]), flatLooked.outA]);
  const row = (x: string, p: number) => b.slice(x, 0, p, p + 1);
  const starts = [row(flatLooked.outA, anchors[0] as number)];
  for (let j = 1; j < anchors.length; j++) {
    const p = anchors[j] as number;
    const c = b.op('Add', [starts[j - 1] as string, row(added, p)]);
    starts.push(widthOut(b, flatLooked, c, p));
  }
  const widths = b.op('Add', [
    added,
    b.op('MatMul', [b.f64(from, [P, anchors.length]), b.concat(starts, 0)]),
  ]);
  return b.reshape(widths, [P, -1, 1]);
}

/**
 * z from the keys ([P, N]) where widths are carried: one lookup of each key's A, B, G and the
 * width it writes (carriedLookup), the width each part reads (by runs where `anchors` are
 * given, else part to part), z = sum over parts of A + c (B + c G), and the peak over the
 * candidate parts' pieces evaluated at their widths.
 */
function carriedGraph(
  b: Builder,
  tables: Tables,
  cv: Carried,
  k: number,
  keysT: string,
  anchors: readonly number[] | null,
): string {
  const P = tables.parts.length;
  const special = specialParts(tables, cv, k, anchors);
  const looked = carriedLookup(b, tables, cv, k, keysT, special);
  const reads = anchors ? anchoredReads(b, cv, P, looked, anchors) : chainedReads(b, cv, P, looked);
  const { A, B, G } = looked;
  // z = sum over parts of A + c B, plus c^2 G over the special parts.
  let z = b.reduce('Sum', b.op('Add', [A, b.op('Mul', [reads, B])]), [0], false);
  if (G) {
    const c = special.length === P ? reads : b.rows(reads, special);
    z = b.op('Add', [z, b.reduce('Sum', b.op('Mul', [b.op('Mul', [c, c]), G]), [0], false)]);
  }
  if (tables.peakWeights) {
    const Q = tables.peakParts;
    const W = cv.pieces;
    const q = (x: string) => (Q === P ? x : b.slice(x, 0, 0, Q));
    const peakRows = cv.liveA.length / W;
    const pieces = [
      { data: cv.liveA, width: W },
      { data: cv.liveB, width: W },
      ...(cv.liveG ? [{ data: cv.liveG, width: W }] : []),
    ];
    const [la, lb, lg] = lookupEach(b, peakRows, pieces, q(keysT), [Q, -1]) as [
      string,
      string,
      string | undefined,
    ];
    const cq = q(reads);
    const lin = lg ? b.op('Add', [lb, b.op('Mul', [cq, lg])]) : lb;
    const v = b.op('Add', [la, b.op('Mul', [cq, lin])]);
    // [Q, N, W] -> [N] -> [N, 1]
    const top = b.op('Unsqueeze', [
      b.reduce('Max', b.reduce('Max', v, [2], false), [0], false),
      b.i64([1]),
    ]);
    z = b.op('Add', [z, b.op('Mul', [top, b.f64(tables.peakWeights, [1, k])])]);
  }
  return z;
}

/**
 * The tables with slots in pairs where they fit and every slot's width out is s + t x its
 * width in for whole numbers s and t (so no rounding falls between the two; half the lookups:
 * DenseNet's 34 slots, 39 parts, become 17 pairs and 22 parts), else single slots.
 */
function pairedTables(space: SearchSpace, features: FeaturesJson, prefix: AffinePrefix): Tables {
  const rows = spaceParts(space, true).reduce((n, part) => n + part.size, FIRST_ROW);
  if (rows * prefix.k <= MAX_TABLE_ENTRIES && rows < KEY_LIMIT) {
    try {
      return buildTables(space, features, prefix, true);
    } catch (error) {
      // Refused with pairs (a slot's width out, or the check): single slots may still fold;
      // what refuses them too is thrown below.
      if (!(error instanceof UnpairableError || error instanceof NotFoldableError)) throw error;
    }
  }
  return buildTables(space, features, prefix, false);
}

// ---------------------------------------------------------------------------------------
// A space small enough to tabulate whole

/**
 * z of a space small enough to tabulate whole (fixed depths, one resolution, no unit or
 * global choices: NAS-Bench-201's 15,625 cells), [N, k] float64: z of every architecture in
 * one table, computed by the encoder itself, so any features fold, sums over blocks or not
 * (NAS-Bench-201's fcc cell features and physics are not). An arch's row in it is the sum
 * over its slots of the slot's block (its index in `combinations`) times the slot's
 * mixed-radix multiplier: each slot's key (its block columns' digits, keysGraph) reads that
 * share from a small table, and one more part, of the depth and resolution columns (one code
 * each), adds 0 or a miss. A share of `cells` (the table's NaN row) marks a key the space
 * does not allow; a sum at or past it is that row.
 */
function wholeZ(
  b: Builder,
  space: SearchSpace,
  features: FeaturesJson,
  prefix: AffinePrefix,
): string {
  const { k, weights, bias } = prefix;
  if (prefix.inputs !== features.length) {
    throw refuse(`the model reads ${prefix.inputs} inputs, the features have ${features.length}`);
  }
  const layout = archRowLayout(space);
  const slots: { u: number; columns: number[] }[] = [];
  space.units.forEach((unit, u) => {
    for (let s = 0; s < unit.maxDepth; s++) {
      const columns = unit.blockChoices.map((c) =>
        layout.blockColumn(space.blockChoiceNames.indexOf(c.name), u, s),
      );
      slots.push({ u, columns });
    }
  });
  const combos = space.units.map((unit) => combinations(unit));
  // Each unit's block tuples by their index in `combos` (the encoders' canonical tuples).
  const tupleIndex = combos.map((list) => new Map(list.map((t, at) => [t.join(','), at])));
  // First slot fastest.
  const radix: number[] = [];
  let cells = 1;
  for (const { u } of slots) {
    radix.push(cells);
    cells *= (combos[u] as number[][]).length;
  }
  const parts: Part[] = [];
  let base = FIRST_ROW;
  const add = (kind: Part['kind'], unit: number, slot: number, columns: readonly number[]) => {
    const digits = columns.map((c) => digitOf(space, c));
    const keys = digits.reduce((n, d) => n * d.radix, 1);
    parts.push({ kind, unit, slot, slots: 1, digits, base, space: keys, size: keys });
    base += keys;
  };
  slots.forEach(({ u, columns }, i) => {
    add('slot', u, i, columns);
  });
  add('global', -1, -1, [
    layout.resolutionColumn,
    ...space.units.map((_, u) => layout.depthColumn(u)),
  ]);
  const shares = new Float32Array(base);
  shares[NAN_ROW] = cells;
  slots.forEach(({ u }, i) => {
    const part = parts[i] as Part;
    const unit = space.units[u] as SearchSpace['units'][number];
    const index = tupleIndex[u] as Map<string, number>;
    const skipAt = unit.blockChoices.findIndex((c) => c.name === SKIP_CHOICE);
    for (let key = 0; key < part.space; key++) {
      let rest = key;
      const picked = part.digits.map((d) => {
        const at = d.meaning[rest % d.radix] as number;
        rest = Math.floor(rest / d.radix);
        return at;
      });
      const kind = skipAt < 0 ? 0 : (unit.blockChoices[skipAt]?.values[picked[skipAt] ?? -1] ?? -1);
      // A skip voids the slot's other choices (the encoders' canonical tuple: their firsts).
      const tuple =
        kind > 0
          ? unit.blockChoices.map((c, i) => (i === skipAt ? kind : (c.values[0] as number)))
          : picked.every((at) => at >= 0)
            ? unit.blockChoices.map((c, i) => c.values[picked[i] as number] as number)
            : undefined;
      const t = tuple === undefined || kind < 0 ? undefined : index.get(tuple.join(','));
      shares[part.base + key] = t === undefined ? cells : t * (radix[i] as number);
    }
  });
  // z of every cell, and NaN in the row past them.
  const x = wholeEncodings(space, features, slots, combos, radix, cells);
  const F = features.length;
  const zs = new Float64Array((cells + 1) * k).fill(Number.NaN, cells * k);
  for (let cell = 0; cell < cells; cell++) {
    for (let j = 0; j < k; j++) {
      let z = bias[j] as number;
      for (let f = 0; f < F; f++) z += (x[cell * F + f] as number) * (weights[f * k + j] as number);
      zs[cell * k + j] = z;
    }
  }
  checkWhole(space, parts, shares, cells, tupleIndex);
  const keys = keysGraph(b, space, parts, false);
  const summed = b.reduce(
    'Sum',
    b.reshape(
      b.op('GatherElements', [b.f32(shares), b.reshape(keys, [-1])], { axis: attr.int(0) }),
      [-1, parts.length],
    ),
    [1],
    true,
  );
  const cell = b.reshape(b.cast(b.op('Min', [summed, b.f32([cells], [])]), 'int32'), [-1]);
  if (k > 1) return b.op('Gather', [b.f64(zs, [cells + 1, k]), cell], { axis: attr.int(0) });
  return b.reshape(
    b.op('GatherElements', [b.f64(zs, [cells + 1]), cell], { axis: attr.int(0) }),
    [-1, 1],
  );
}

/**
 * Each feature part's whole-space encodings, per space: saves re-export the same parts often
 * (every iteration of `esm run`; auto's stack holds physics, the slowest to encode, beside
 * other parts). At most WHOLE_CACHE_BYTES a space, the oldest part dropped first.
 */
const encodedParts = new WeakMap<SearchSpace, Map<string, Float64Array>>();
const WHOLE_CACHE_BYTES = 64 * 2 ** 20;

/** [cells, features] the encoder's vector of every cell (first slot fastest). */
function wholeEncodings(
  space: SearchSpace,
  features: FeaturesJson,
  slots: readonly { u: number }[],
  combos: readonly (readonly number[][])[],
  radix: readonly number[],
  cells: number,
): Float64Array {
  if (features.kind !== 'stack') return wholePart(space, features, slots, combos, radix, cells);
  const F = features.length;
  const x = new Float64Array(cells * F);
  let offset = 0;
  for (const part of features.parts) {
    const px = wholePart(space, part, slots, combos, radix, cells);
    const L = part.length;
    for (let cell = 0; cell < cells; cell++) {
      x.set(px.subarray(cell * L, cell * L + L), cell * F + offset);
    }
    offset += L;
  }
  return x;
}

/** [cells, part length] one feature part's vector of every cell, cached (read only). */
function wholePart(
  space: SearchSpace,
  part: Exclude<FeaturesJson, { kind: 'stack' }>,
  slots: readonly { u: number }[],
  combos: readonly (readonly number[][])[],
  radix: readonly number[],
  cells: number,
): Float64Array {
  const key = JSON.stringify(part);
  let cache = encodedParts.get(space);
  if (!cache) {
    cache = new Map<string, Float64Array>();
    encodedParts.set(space, cache);
  }
  const cached = cache.get(key);
  if (cached) return cached;
  const featurizer = createFeaturizer(space, featureChoiceOf(part));
  const x = new Float64Array(cells * part.length);
  for (let cell = 0; cell < cells; cell++) {
    const units = space.units.map(() => ({ choices: {}, blocks: [] as Record<string, number>[] }));
    slots.forEach(({ u }, i) => {
      const unit = space.units[u] as SearchSpace['units'][number];
      const list = combos[u] as number[][];
      const tuple = list[Math.floor(cell / (radix[i] as number)) % list.length] as number[];
      units[u]?.blocks.push(
        Object.fromEntries(unit.blockChoices.map((c, j) => [c.name, tuple[j] as number])),
      );
    });
    const subnet: Subnet = { resolution: space.resolutions[0] as number, globals: {}, units };
    featurizer.encodeInto(subnet, x, cell * part.length);
  }
  // A part larger than the whole bound is not kept, and evicts nothing.
  if (x.byteLength > WHOLE_CACHE_BYTES) return x;
  let bytes = x.byteLength;
  for (const held of cache.values()) bytes += held.byteLength;
  for (const [old, held] of cache) {
    if (bytes <= WHOLE_CACHE_BYTES) break;
    cache.delete(old);
    bytes -= held.byteLength;
  }
  cache.set(key, x);
  return x;
}

/**
 * The whole-space keys and shares against the arch rows of random subnets: each must read
 * the row of its own cell (the one `wholeZ` encoded from the same tuples), computed here from
 * the subnet's blocks, not from the row. Refuses the fold on any difference.
 */
function checkWhole(
  space: SearchSpace,
  parts: readonly Part[],
  shares: Float32Array,
  cells: number,
  tupleIndex: readonly ReadonlyMap<string, number>[],
) {
  const rng = createRng(20261202);
  for (let n = 0; n < CHECK_SUBNETS; n++) {
    const subnet = randomSubnet(space, rng);
    const row = archRow(space, subnet);
    let got = 0;
    for (const part of parts) {
      let key = 0;
      let mult = 1;
      let off = false;
      for (const d of part.digits) {
        const digit = digitValue(d, row[d.column] as number);
        off ||= digit < 0;
        key += Math.max(digit, 0) * mult;
        mult *= d.radix;
      }
      got += off ? cells : (shares[part.base + key] as number);
    }
    let want = 0;
    let mult = 1;
    subnet.units.forEach((unit, u) => {
      const def = space.units[u] as SearchSpace['units'][number];
      const index = tupleIndex[u] as ReadonlyMap<string, number>;
      for (const block of unit.blocks) {
        const kind = block[SKIP_CHOICE] ?? 0;
        const tuple = def.blockChoices.map((c) =>
          kind > 0 && c.name !== SKIP_CHOICE ? c.values[0] : block[c.name],
        );
        want += (index.get(tuple.join(',')) ?? -1) * mult;
        mult *= index.size;
      }
    });
    if (got !== want) {
      throw refuse(`a subnet's arch row reads cell ${got} of the whole-space table, not ${want}`);
    }
  }
}

/** Row-wise ops that turn a NaN input into NaN outputs (IEEE arithmetic, no clamps). */
const NAN_PASSING = new Set([
  'Identity',
  'Slice',
  'Gemm',
  'MatMul',
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Abs',
  'Neg',
  'Sqrt',
  'Exp',
  'Log',
  'Concat',
  'Reshape',
  'Unsqueeze',
  'Squeeze',
]);

/**
 * Whether NaN in z reaches every model output without a guard: the remaining nodes all pass
 * NaN on, and every output is computed from z.
 */
function passesNaN(prefix: AffinePrefix, outputs: readonly string[]): boolean {
  if (!prefix.rest.every((n) => NAN_PASSING.has(n.op))) return false;
  const fromZ = new Set(prefix.gemms.map((g) => g.output));
  for (const n of prefix.rest) {
    if (n.inputs.some((i) => fromZ.has(i))) for (const o of n.outputs) fromZ.add(o);
  }
  return outputs.every((o) => fromZ.has(o));
}

/** z [N, k] float64 from per-part tables (sums over the blocks of a space of any size). */
function partsZ(b: Builder, space: SearchSpace, features: FeaturesJson, prefix: AffinePrefix) {
  const tables = pairedTables(space, features, prefix);
  const { k } = prefix;
  const { rows } = tables;
  const P = tables.parts.length;
  const keys = keysGraph(b, space, tables.parts, tables.carried !== undefined);
  let z: string;
  if (tables.carried) {
    // Few runs (DenseNet: the stem and three transitions for 39 parts): the widths by MatMul;
    // else (ResNet-50: every block sets its own width) carried part to part.
    const anchors = anchorsOf(tables, tables.carried);
    const byRuns = 3 * anchors.length <= tables.parts.length;
    z = carriedGraph(b, tables, tables.carried, k, keys, byRuns ? anchors : null);
  } else if (tables.peaks && tables.peakWeights) {
    // Each key's share of z [N, P, k] and its peak candidate [N, P, 1].
    const [sums, peaks] = lookupEach(
      b,
      rows,
      [
        { data: tables.sums, width: k },
        { data: tables.peaks, width: 1 },
      ],
      keys,
      [-1, P],
    ) as [string, string];
    const top = b.reduce('Max', peaks, [1], false);
    z = b.op('Add', [
      b.reduce('Sum', sums, [1], false),
      b.op('Mul', [top, b.f64(tables.peakWeights, [1, k])]),
    ]);
  } else {
    const [sums] = lookupEach(b, rows, [{ data: tables.sums, width: k }], keys, [-1, P]) as [
      string,
    ];
    z = b.reduce('Sum', sums, [1], false);
  }
  return z;
}

/**
 * The folded arch-in graph of `model` (what predictor.onnx holds) on `features`, with the
 * same inputs and outputs as the general `archInGraph`. Throws `NotFoldableError` (naming
 * why) where the model or the features do not fold; the caller falls back to `archInGraph`.
 */
export function foldedArchInGraph(
  space: SearchSpace,
  features: FeaturesJson,
  model: OnnxGraph,
): OnnxGraph {
  const prefix = affinePrefix(model);
  const { k } = prefix;
  const b = new Builder();
  const cells = wholeRows(space);
  const z =
    cells <= MAX_WHOLE_CELLS && cells * k <= MAX_TABLE_ENTRIES
      ? wholeZ(b, space, features, prefix)
      : partsZ(b, space, features, prefix);
  const z32 = b.cast(z, 'float');
  for (const g of prefix.gemms) {
    if (g.start === 0 && g.end === k) b.op('Identity', [z32], undefined, g.output);
    else b.op('Slice', [z32, b.i64([g.start]), b.i64([g.end]), b.i64([1])], undefined, g.output);
  }
  // NaN from the tables: a row the space does not allow. Guarded where the model's own nodes
  // (a Max with a floor) may turn NaN into a number; ridge's (Gemm, Abs, Mul, Sqrt ...) pass
  // it on to every output, and their guards would cost 3 % of DenseNet's graph.
  const guarded = !passesNaN(
    prefix,
    model.outputs.map((o) => o.name),
  );
  const renamed = new Map(
    guarded ? model.outputs.map((o) => [o.name, `model/${o.name}`] as const) : [],
  );
  const rename = (name: string) => renamed.get(name) ?? name;
  const rest = prefix.rest.map((n) => ({
    ...n,
    inputs: n.inputs.map(rename),
    outputs: n.outputs.map(rename),
  }));
  const guards: OnnxNode[] = [];
  if (guarded) {
    const bad = b.op('IsNaN', [k === 1 ? z32 : b.reduce('Sum', z32, [1], true)]);
    const nan = b.f32(Float32Array.of(Number.NaN), []);
    for (const o of model.outputs) {
      guards.push({
        op: 'Where',
        inputs: [bad, nan, rename(o.name)],
        outputs: [o.name],
        name: `arch/guard_${o.name}`,
      });
    }
  }
  // The model's constants its remaining nodes still read (the folded Gemms' weights are gone).
  const used = new Set(rest.flatMap((n) => n.inputs));
  const kept: OnnxInitializer[] = model.initializers.filter((t) => used.has(t.name));
  return {
    name: `${model.name}_arch_folded`,
    nodes: [...b.nodes, ...rest, ...guards],
    initializers: [...b.initializers, ...kept],
    inputs: [
      { name: ARCH_INPUT, elemType: 'int64', shape: ['batch', archRowLayout(space).length] },
    ],
    outputs: model.outputs,
  };
}

/** Whether `graph` is a folded arch-in graph (for metadata and benchmarks). */
export const isFolded = (graph: OnnxGraph): boolean => graph.name.endsWith('_arch_folded');
