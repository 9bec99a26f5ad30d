/**
 * The folded arch-in graph: where the model reads its input only through affine maps (Gemm:
 * ridge, the LUT, `auto` blends of those, a transfer correction on top of one) and every
 * feature is a sum over the architecture's parts, the encoding and those maps fold into one
 * table per part:
 *
 *   z = bias + sum over parts p of T_p[key_p(arch)]  (+ w_peak x max over parts of M_p[key_p])
 *
 * where z is what the model's Gemms compute ([batch, K]: 1 for a ridge, one per linear
 * member of a blend), a part is a block slot, a unit or the global part (stem, head, global
 * choices, resolution), and key_p is a mixed-radix number of the few arch-row columns the
 * part depends on: a slot's own choices, its unit's choices, the unit's depth (whether the
 * slot is active) and the resolution. The rest of the model graph (Exp of a log target, the
 * std output, the blend) runs unchanged on z. The graph is about ten nodes: a value-to-index
 * lookup (Gather), the keys of all parts at once (one MatMul: every key is linear in the
 * column indices), the table lookup (Gather) and a ReduceSum, where the general graph
 * (arch-graph.ts) computes every feature first.
 *
 * The tables are built from the features' own structure, the model's weights read off its
 * ONNX graph (so a change in how a model is fitted needs nothing here), and then checked
 * against the JavaScript encoders on random subnets: a feature that is not a sum over the
 * parts (statistical's means, physics where a block's cost depends on the width earlier
 * blocks wrote) fails the check or is refused up front, and `archInGraph` falls back to the
 * general graph. Every column index has one extra value, "not allowed", whose table entries
 * are NaN, so a row the space does not allow predicts NaN as in the general graph; an
 * inactive slot's entries are 0 whatever its columns hold.
 */

import { featureEncoder } from '../encodings/feature.ts';
import { compileSpace, unitAreaScales } from '../encodings/layout.ts';
import { onehotEncoder } from '../encodings/onehot.ts';
import { physicsLabels } from '../encodings/physics.ts';
import { ArchGraphUnsupportedError } from '../errors.ts';
import type { FeaturesJson } from '../predictor/artifact.ts';
import { createFeaturizer, featureChoiceOf } from '../predictor/index.ts';
import { createRng } from '../rng.ts';
import { macKinds } from '../spaces/cost.ts';
import { randomSubnet } from '../spaces/subnet.ts';
import { type SearchSpace, SKIP_CHOICE } from '../spaces/types.ts';
import { Builder, fccPool, lutPool } from './arch-graph.ts';
import { ARCH_INPUT, archRow, archRowLayout } from './arch-graph-layout.ts';
import { type ChainTables, physicsTables, SUM_COLUMNS } from './arch-physics.ts';
import type { OnnxGraph, OnnxInitializer, OnnxNode } from './model.ts';

/** Largest table (rows x K float64 entries, 8 bytes each) the folded graph may hold. */
const MAX_TABLE_ENTRIES = 1 << 20;
/** Random subnets the finished tables must reproduce (z to 1e-9 of its terms' scale). */
const CHECK_SUBNETS = 400;

/** Why a model or its features do not fold (the general graph is used instead). */
export class NotFoldableError extends ArchGraphUnsupportedError {}

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
 * One arch-row column in a part's key. `direct`: the digit is the code itself, clipped to
 * [lo, lo + radix - 1] (lo one below the least code, the top one above the greatest, so both
 * ends and every code between that the column does not allow mean "not allowed"); else the
 * digit is the value's index, radix - 1 for a value the column does not allow.
 */
interface Digit {
  readonly column: number;
  readonly radix: number;
  readonly direct: boolean;
  readonly lo: number;
  /** Per digit value, the index of the value in the column's choice, -1 where not allowed. */
  readonly meaning: Int32Array;
}

interface Part {
  readonly kind: 'slot' | 'unit' | 'global';
  readonly unit: number;
  readonly slot: number;
  /** First digit fastest. */
  readonly digits: readonly Digit[];
  /** First table row. */
  readonly base: number;
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
  peak(value: number): void;
}

/** A feature part written as a sum over parts (offsets already applied). */
interface Additive {
  slot(v: SlotView, sink: Sink): void;
  unit(v: UnitView, sink: Sink): void;
  global(v: GlobalView, sink: Sink): void;
}

const none = () => {};

function inverse(order: readonly number[]): Map<number, number> {
  return new Map(order.map((pos, i) => [pos, i]));
}

function fccAdditive(space: SearchSpace, offset: number, length: number): Additive {
  if (space.combinationFeatures) {
    throw refuse(`fcc's ${space.name}-specific combination features are not a sum over blocks`);
  }
  const { cmax, countWidth, scaledCopy, tail, order } = fccPool(space);
  if (order.length !== length) throw refuse('the fcc layout differs from the encoder’s');
  const at = inverse(order);
  const U = space.units.length;
  const G = space.globalChoices.length;
  const areas = scaledCopy ? unitAreaScales(space) : undefined;
  const rMax = Math.max(...space.resolutions);
  const put = (sink: Sink, pos: number, value: number) => {
    const i = at.get(pos);
    if (i !== undefined) sink.add(offset + i, value);
  };
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
  const at = inverse(order);
  const U = space.units.length;
  const B = Math.max(...bucketOf) + 1;
  const put = (sink: Sink, pos: number, value: number) => {
    const i = at.get(pos);
    if (i !== undefined) sink.add(offset + i, value);
  };
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
  if (tables.usesC) {
    throw refuse(
      `in space ${space.name} a block's cost depends on the width earlier blocks wrote, not a sum over blocks`,
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
  const row = (sink: Sink, r: number) => {
    const s = (k: number) => t.sums.a[r * F + k] as number;
    for (let k = 0; k <= MACS; k++) sink.add(offset + k, s(k) * MEGA);
    sink.add(offset + MACS + 1, s(MACS + 1) * MEGA);
    sink.add(offset + MACS + 2, s(MACS + 2) * MEGA);
    sink.add(offset + MACS + 3, s(MACS + 3) * 4 * MEGA);
    sink.add(offset + MACS + 5, s(MACS + 1) * 4 * MEGA);
    sink.add(offset + MACS + 7, s(MACS + 4));
    sink.add(offset + MACS + 8, s(MACS + 5));
    let live = 0;
    for (let k = 0; k < t.pieces; k++) live = Math.max(live, t.live.a[r * t.pieces + k] as number);
    sink.peak(live * 4 * MEGA);
  };
  return {
    slot(v, sink) {
      const p = find('slot', v.u, v.s);
      if (!p) throw refuse(`the physics tables have no part for unit ${v.u} block ${v.s}`);
      row(sink, p.base + v.tuple * R + v.ri);
    },
    unit(v, sink) {
      const p = find('pre', v.u, -1);
      if (!p) throw refuse(`the physics tables have no transition of unit ${v.u}`);
      row(sink, p.base + v.unitKey * R + v.ri);
    },
    global(v, sink) {
      const stem = find('stem', -1, -1);
      const head = find('head', -1, -1);
      if (!stem || !head) throw refuse('the physics tables have no stem or head');
      let g = 0;
      v.choices.forEach((i, k) => {
        g += i * (t.globalRadix[k] as number);
      });
      row(sink, stem.base + g * R + v.ri);
      row(sink, head.base + v.ri);
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

/**
 * How the keys read the row: `direct` (the codes themselves, the resolution's index apart
 * where its codes are far apart: one cast, no lookup per column) or `indexed` (every column's
 * value index first, by one lookup over the row: smaller tables, for codes too sparse).
 */
type KeyMode = 'direct' | 'indexed';

function digitOf(layout: ReturnType<typeof archRowLayout>, column: number, mode: KeyMode): Digit {
  const entry = layout.entries[column] as (typeof layout.entries)[number];
  const k = entry.values.length;
  const lo = Math.min(...entry.codes) - 1;
  const span = Math.max(...entry.codes) - lo + 2;
  // The resolution (codes 128..224 in steps of 4) by index: a direct digit would make every
  // slot's table nearly 4x larger, for one small lookup.
  const direct = mode === 'direct' && !(column === layout.resolutionColumn && span > 2 * (k + 1));
  if (!direct) {
    return {
      column,
      radix: k + 1,
      direct,
      lo: 0,
      meaning: Int32Array.from({ length: k + 1 }, (_, i) => (i < k ? i : -1)),
    };
  }
  const meaning = Int32Array.from({ length: span }, (_, d) => entry.codes.indexOf(lo + d));
  return { column, radix: span, direct, lo, meaning };
}

/** Every part of `space` with its key's columns: per unit its choices, per slot, global. */
function spaceParts(space: SearchSpace, mode: KeyMode): Part[] {
  const layout = archRowLayout(space);
  const parts: Part[] = [];
  let base = 0;
  const add = (kind: Part['kind'], unit: number, slot: number, columns: number[]) => {
    const digits = columns.map((c) => digitOf(layout, c, mode));
    const size = digits.reduce((n, d) => n * d.radix, 1);
    const def = space.units[unit];
    const masked = kind === 'slot' && def !== undefined && slot >= def.minDepth;
    parts.push({
      kind,
      unit,
      slot,
      digits,
      base,
      size,
      ...(masked ? { depthColumn: layout.depthColumn(unit) } : {}),
    });
    base += size;
  };
  const res = layout.resolutionColumn;
  space.units.forEach((unit, u) => {
    const unitColumns = space.unitChoiceNames.map((_, c) => layout.unitColumn(c, u));
    // The depth's digit in the unit's key makes a depth the space does not allow NaN.
    add('unit', u, -1, [res, layout.depthColumn(u), ...unitColumns]);
    for (let s = 0; s < unit.maxDepth; s++) {
      // Whether the slot is active is a mask beside the keys (`Part.from`), not a digit:
      // a depth digit would make each slot's table as many times larger as it has depths.
      add('slot', u, s, [
        res,
        ...space.blockChoiceNames.map((_, c) => layout.blockColumn(c, u, s)),
        ...unitColumns,
      ]);
    }
  });
  add('global', -1, -1, [res, ...space.globalChoices.map((_, g) => layout.globalColumn(g))]);
  return parts;
}

type View =
  | { readonly kind: 'nan' }
  | { readonly kind: 'idle' }
  | { readonly kind: 'slot'; readonly v: SlotView }
  | { readonly kind: 'unit'; readonly v: UnitView }
  | { readonly kind: 'global'; readonly v: GlobalView };

const NAN: View = { kind: 'nan' };
const IDLE: View = { kind: 'idle' };

/**
 * What a part is for the column value indices `idx` (-1: a value the column does not allow),
 * with the arithmetic of the general graph's front part (arch-graph.ts).
 */
function viewOf(
  space: SearchSpace,
  compiled: ReturnType<typeof compileSpace>,
  part: Part,
  idx: readonly number[],
): View {
  const layout = archRowLayout(space);
  const bad = (column: number) => !((idx[column] as number) >= 0);
  const res = layout.resolutionColumn;
  if (bad(res)) return NAN;
  const ri = idx[res] as number;
  if (part.kind === 'global') {
    const cols = space.globalChoices.map((_, g) => layout.globalColumn(g));
    if (cols.some(bad)) return NAN;
    return { kind: 'global', v: { ri, choices: cols.map((c) => idx[c] as number) } };
  }
  const u = part.unit;
  const cu = compiled.units[u] as (typeof compiled.units)[number];
  const unitCols = space.unitChoiceNames.map((_, c) => layout.unitColumn(c, u));
  if (unitCols.some(bad)) return NAN;
  const choices = unitCols.map((c) => idx[c] as number);
  let unitKey = 0;
  choices.forEach((i, c) => {
    unitKey += i * (cu.unitRadix[c] as number);
  });
  const depthCol = layout.depthColumn(u);
  const hasDepth = part.digits.some((d) => d.column === depthCol);
  if (hasDepth && bad(depthCol)) return NAN;
  if (part.kind === 'unit') return { kind: 'unit', v: { u, ri, unitKey, choices } };
  const s = part.slot;
  if (hasDepth) {
    const depth = layout.entries[depthCol]?.values[idx[depthCol] as number] as number;
    if (s >= depth) return IDLE;
  }
  const skipChoice = space.blockChoiceNames.indexOf(SKIP_CHOICE);
  const blockCols = space.blockChoiceNames.map((_, c) => layout.blockColumn(c, u, s));
  let kind = 0;
  if (skipChoice >= 0) {
    if (bad(blockCols[skipChoice] as number)) return NAN;
    kind = idx[blockCols[skipChoice] as number] as number;
  }
  const block: number[] = [];
  for (let c = 0; c < blockCols.length; c++) {
    const col = blockCols[c] as number;
    // Under a skip the other choices mean nothing, whatever the row holds.
    if (c !== skipChoice && skipChoice >= 0 && kind >= 1) block.push(-1);
    else if (bad(col)) return NAN;
    else block.push(idx[col] as number);
  }
  let tuple = unitKey;
  if (cu.skip !== undefined && skipChoice >= 0 && kind > 0) {
    tuple = cu.skipBase - cu.unitCombinations + kind * cu.unitCombinations + unitKey;
  } else {
    block.forEach((i, c) => {
      tuple += Math.max(i, 0) * (cu.blockRadix[c] as number);
    });
  }
  return { kind: 'slot', v: { u, s, ri, tuple, layer: skipChoice < 0 || kind < 1, block } };
}

interface Tables {
  readonly mode: KeyMode;
  /** The parts, those that can hold the max feature's maximum first. */
  readonly parts: readonly Part[];
  readonly rows: number;
  /** [rows, k]: each key's share of z. */
  readonly sums: Float64Array;
  /** Parts (the first ones) whose keys can hold the max feature's maximum. */
  readonly peakParts: number;
  /** [rows of the peak parts]: each key's candidate for the max feature (physics' peak). */
  readonly peaks: Float64Array | undefined;
  /** [k]: the max feature's weights. */
  readonly peakWeights: Float64Array | undefined;
}

function buildTables(
  space: SearchSpace,
  features: FeaturesJson,
  prefix: AffinePrefix,
  mode: KeyMode,
): Tables {
  if (prefix.inputs !== features.length) {
    throw refuse(`the model reads ${prefix.inputs} inputs, the features have ${features.length}`);
  }
  const { parts: additive, peak } = additiveFeatures(space, features);
  const natural = spaceParts(space, mode);
  const lastPart = natural[natural.length - 1] as Part;
  const rows = lastPart.base + lastPart.size;
  const { k, weights, bias } = prefix;
  if (rows * k > MAX_TABLE_ENTRIES || rows >= 2 ** 24) {
    throw refuse(`its tables would hold ${rows} x ${k} entries (at most ${MAX_TABLE_ENTRIES})`);
  }
  const layout = archRowLayout(space);
  const R = space.resolutions.length;
  const sums = new Float64Array(rows * k);
  const peaks = peak === undefined ? undefined : new Float64Array(rows);
  // Per part and resolution the largest peak candidate; the global part's smallest.
  const most = natural.map(() => new Float64Array(R));
  const least = new Float64Array(R).fill(Number.POSITIVE_INFINITY);
  const x = new Float64Array(prefix.inputs);
  const touched: number[] = [];
  let top = 0;
  const sink: Sink = {
    add(feature, value) {
      if (value === 0) return;
      if (x[feature] === 0) touched.push(feature);
      x[feature] = (x[feature] as number) + value;
    },
    peak(value) {
      top = Math.max(top, value);
    },
  };
  const idx = new Array<number>(layout.length).fill(-1);
  const compiled = compileSpace(space);
  natural.forEach((part, p) => {
    for (let key = 0; key < part.size; key++) {
      let rest = key;
      for (const d of part.digits) {
        idx[d.column] = d.meaning[rest % d.radix] as number;
        rest = Math.floor(rest / d.radix);
      }
      const view = viewOf(space, compiled, part, idx);
      const row = part.base + key;
      top = 0;
      if (view.kind === 'nan') {
        sums.fill(Number.NaN, row * k, row * k + k);
      } else if (view.kind !== 'idle') {
        for (const a of additive) {
          if (view.kind === 'slot') a.slot(view.v, sink);
          else if (view.kind === 'unit') a.unit(view.v, sink);
          else a.global(view.v, sink);
        }
        for (let j = 0; j < k; j++) {
          let z = view.kind === 'global' ? (bias[j] as number) : 0;
          for (const f of touched) z += (x[f] as number) * (weights[f * k + j] as number);
          sums[row * k + j] = z;
        }
      }
      if (peaks) {
        peaks[row] = top;
        const ri = idx[layout.resolutionColumn] as number;
        if (view.kind !== 'nan' && ri >= 0) {
          const m = most[p] as Float64Array;
          m[ri] = Math.max(m[ri] as number, top);
          if (part.kind === 'global') least[ri] = Math.min(least[ri] as number, top);
        }
      }
      for (const f of touched) x[f] = 0;
      touched.length = 0;
      for (const d of part.digits) idx[d.column] = -1;
    }
  });
  // Parts that can never beat the global part (input, stem, head) at any resolution need no
  // place in the max: they go last, and the max reads the keys of the others only.
  const candidate = natural.map(
    (part, p) =>
      peaks !== undefined &&
      (part.kind === 'global' ||
        (most[p] as Float64Array).some((v, ri) => v > (least[ri] as number))),
  );
  const order = [
    ...natural.filter((_, p) => candidate[p]),
    ...natural.filter((_, p) => !candidate[p]),
  ];
  const sorted = new Float64Array(rows * k);
  const sortedPeaks = peaks ? new Float64Array(rows) : undefined;
  let base = 0;
  const parts = order.map((part) => {
    sorted.set(sums.subarray(part.base * k, (part.base + part.size) * k), base * k);
    sortedPeaks?.set((peaks as Float64Array).subarray(part.base, part.base + part.size), base);
    const moved = { ...part, base };
    base += part.size;
    return moved;
  });
  const peakParts = candidate.filter(Boolean).length;
  const peakRows = parts.slice(0, peakParts).reduce((n, part) => n + part.size, 0);
  const tables: Tables = {
    mode,
    parts,
    rows,
    sums: sorted,
    peakParts,
    peaks: sortedPeaks?.slice(0, peakRows),
    peakWeights: peak === undefined ? undefined : weights.slice(peak * k, peak * k + k),
  };
  checkTables(space, features, prefix, tables);
  return tables;
}

/** The digit of `code` in a key. */
function digitValue(d: Digit, code: number, codes: readonly number[]): number {
  if (d.direct) return Math.min(Math.max(code, d.lo), d.lo + d.radix - 1) - d.lo;
  const i = codes.indexOf(code);
  return i < 0 ? d.radix - 1 : i;
}

/** z of one arch row from the tables, in float64: what the folded graph computes. */
function foldedZ(space: SearchSpace, tables: Tables, k: number, row: readonly number[]) {
  const layout = archRowLayout(space);
  const z = new Float64Array(k);
  let top = 0;
  tables.parts.forEach((part, p) => {
    if (part.depthColumn !== undefined) {
      const depth = row[part.depthColumn] as number;
      const allowed = layout.entries[part.depthColumn]?.codes.includes(depth);
      // A depth the space does not allow is NaN through its unit's part.
      if (allowed && part.slot >= depth) return;
    }
    let key = 0;
    let mult = 1;
    for (const d of part.digits) {
      const codes = layout.entries[d.column]?.codes ?? [];
      key += digitValue(d, row[d.column] as number, codes) * mult;
      mult *= d.radix;
    }
    const at = part.base + key;
    for (let j = 0; j < k; j++) z[j] = (z[j] as number) + (tables.sums[at * k + j] as number);
    if (tables.peaks && p < tables.peakParts) top = Math.max(top, tables.peaks[at] as number);
  });
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
 * int64 [N, P] keys of every part from the arch rows, and bool [N, P] whether each part is
 * active (a slot below its unit's depth; every other part always), when some slot may not be.
 */
function keysGraph(
  b: Builder,
  space: SearchSpace,
  tables: Tables,
): { keys: string; active: string | undefined } {
  const layout = archRowLayout(space);
  const L = layout.length;
  const P = tables.parts.length;
  const multipliers = new Float32Array(L * P);
  const base = tables.parts.map((part) => part.base);
  const resMult = new Float32Array(P);
  tables.parts.forEach((part, p) => {
    let mult = 1;
    for (const d of part.digits) {
      if (!d.direct && tables.mode === 'direct') resMult[p] = mult;
      else multipliers[d.column * P + p] = mult;
      if (d.direct) base[p] = (base[p] as number) - d.lo * mult;
      mult *= d.radix;
    }
  });
  let codes: string;
  if (tables.mode === 'direct') {
    // Each column clipped to its digit's range (a column outside every key, such as the
    // resolution read by index, to 0): exact small integers in float32.
    const lo = new Float32Array(L);
    const hi = new Float32Array(L);
    for (const part of tables.parts) {
      for (const d of part.digits) {
        if (!d.direct) continue;
        lo[d.column] = d.lo;
        hi[d.column] = d.lo + d.radix - 1;
      }
    }
    codes = b.op('Min', [b.op('Max', [b.cast(ARCH_INPUT, 'float'), b.f32(lo)]), b.f32(hi)]);
  } else {
    codes = indexLookup(
      b,
      layout,
      Array.from({ length: L }, (_, c) => c),
    );
  }
  let keys = b.op('Add', [b.op('MatMul', [codes, b.f32(multipliers, [L, P])]), b.f32(base)]);
  if (resMult.some((m) => m !== 0)) {
    const r = layout.resolutionColumn;
    const ri = indexLookup(b, layout, [r], b.slice(ARCH_INPUT, 1, r, r + 1));
    keys = b.op('Add', [keys, b.op('Mul', [ri, b.f32(resMult)])]);
  }
  // The depth each part's slot compares with: the depth's code (direct) or its index.
  const depthOf = new Float32Array(L * P);
  const below = new Float32Array(P).fill(-1);
  tables.parts.forEach((part, p) => {
    if (part.depthColumn === undefined) return;
    depthOf[part.depthColumn * P + p] = 1;
    const def = space.units[part.unit] as SearchSpace['units'][number];
    below[p] = tables.mode === 'direct' ? part.slot : part.slot - def.minDepth;
  });
  const active = tables.parts.some((part) => part.depthColumn !== undefined)
    ? b.op('Less', [b.f32(below), b.op('MatMul', [codes, b.f32(depthOf, [L, P])])])
    : undefined;
  return { keys: b.cast(keys, 'int64'), active };
}

/**
 * float32 [N, columns.length]: each column's value index (its choice's size where the value
 * is not allowed), by one lookup: a segment per column, [code -1, codes 0 .. max, max + 1].
 */
function indexLookup(
  b: Builder,
  layout: ReturnType<typeof archRowLayout>,
  columns: readonly number[],
  input: string = ARCH_INPUT,
): string {
  const entries = columns.map((c) => layout.entries[c] as (typeof layout.entries)[number]);
  const maxCode = Math.max(...entries.flatMap((e) => e.codes));
  const segment = maxCode + 3;
  if (columns.length * segment > 1 << 22) {
    throw refuse(`its codes reach ${maxCode}, too large to look up`);
  }
  const table = new Float32Array(columns.length * segment);
  entries.forEach((entry, i) => {
    table.fill(entry.values.length, i * segment, (i + 1) * segment);
    entry.codes.forEach((code, j) => {
      table[i * segment + code + 1] = j;
    });
  });
  const clipped = b.op('Clip', [input, b.i64([-1], []), b.i64([maxCode + 1], [])]);
  const offsets = b.i64(Array.from({ length: columns.length }, (_, i) => i * segment + 1));
  return b.lookup(b.f32(table), b.op('Add', [clipped, offsets]));
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
  let tables: Tables;
  try {
    tables = buildTables(space, features, prefix, 'direct');
  } catch (error) {
    // Codes too sparse for direct keys: look the value indices up first.
    if (!(error instanceof NotFoldableError) || !/entries/.test(error.message)) throw error;
    tables = buildTables(space, features, prefix, 'indexed');
  }
  const { k } = prefix;
  const b = new Builder();
  const { keys, active } = keysGraph(b, space, tables);
  const zero = b.f64([0], []);
  // An inactive slot's entries (whatever its columns hold, NaN included) count 0.
  const masked = (x: string, mask: string | undefined) =>
    mask ? b.op('Where', [mask, x, zero]) : x;
  let sums = b.lookup(b.f64(tables.sums, k === 1 ? [tables.rows] : [tables.rows, k]), keys);
  if (active) sums = masked(sums, k === 1 ? active : b.op('Unsqueeze', [active, b.i64([2])]));
  let z = b.reduce('Sum', sums, [1], k === 1);
  if (tables.peaks && tables.peakWeights) {
    const all = tables.peakParts === tables.parts.length;
    const someKeys = all ? keys : b.slice(keys, 1, 0, tables.peakParts);
    const someActive = active && !all ? b.slice(active, 1, 0, tables.peakParts) : active;
    const peaks = masked(b.lookup(b.f64(tables.peaks), someKeys), someActive);
    const top = b.reduce('Max', peaks, [1], true);
    z = b.op('Add', [z, b.op('Mul', [top, b.f64(tables.peakWeights, [1, k])])]);
  }
  const z32 = b.cast(z, 'float');
  for (const g of prefix.gemms) {
    if (g.start === 0 && g.end === k) b.op('Identity', [z32], undefined, g.output);
    else b.op('Slice', [z32, b.i64([g.start]), b.i64([g.end]), b.i64([1])], undefined, g.output);
  }
  // NaN from the tables: a row the space does not allow. Guarded, since the model's own
  // nodes (a Max with a floor) may turn NaN into a number.
  const bad = b.op('IsNaN', [k === 1 ? z32 : b.reduce('Sum', z32, [1], true)]);
  const renamed = new Map(model.outputs.map((o) => [o.name, `model/${o.name}`]));
  const rename = (name: string) => renamed.get(name) ?? name;
  const rest = prefix.rest.map((n) => ({
    ...n,
    inputs: n.inputs.map(rename),
    outputs: n.outputs.map(rename),
  }));
  const nan = b.f32(Float32Array.of(Number.NaN), []);
  const guards: OnnxNode[] = model.outputs.map((o) => ({
    op: 'Where',
    inputs: [bad, nan, rename(o.name)],
    outputs: [o.name],
    name: `arch/guard_${o.name}`,
  }));
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
