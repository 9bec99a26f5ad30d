/**
 * The physics encoding (core/encodings/physics.ts) as tables the arch-in graph looks up, so
 * `predictor-arch.onnx` computes a layer graph's cost without building the layer graph.
 *
 * Chain spaces (every built-in space but NAS-Bench-201, and spec spaces): the layer graph is
 * a stem, then per unit an optional transition and its blocks in order, then a head, and each
 * part reads only the tensor the part before it wrote. So a part's cost (MACs by kind,
 * parameters, elementwise work, output elements, layers, nodes, and the live memory at each of
 * its nodes) depends on a few things only: which part it is, its block's feature tuple (the
 * encoders' tuple: block choices and unit choices), the resolution, and the channels of the
 * tensor it reads (`c`, which the dense blocks grow and the transitions halve). The tables hold,
 * for each (part, tuple, resolution), each count as a polynomial in `c` of degree <= 2 (the
 * width of a block's input enters a cost linearly, times a width that may be `c` again), and
 * the channels the part writes, also as a polynomial in `c`. The graph sums the looked-up
 * counts over the active parts, takes the largest live memory as the peak, and carries `c`
 * from part to part.
 *
 * The tables are not written by hand per space: they are read off the space's own
 * `layerGraph`, built for probe subnets with every part's nodes attributed to it (the subnet
 * handed to `layerGraph` reports which unit and block the builder is on). The table model is
 * then checked against `graphCost` on random subnets, so a space where the assumptions do not
 * hold (a cost that depends on something outside the key) is refused with
 * `ArchGraphUnsupportedError` instead of answering wrong.
 *
 * Small spaces (NAS-Bench-201: 5^6 cells, one resolution) are tabulated whole instead: one
 * table row per architecture, holding the encoding's values, and the same for fcc's
 * space-specific combination features.
 */

import {
  type CompiledSpace,
  type CompiledUnit,
  choiceIndex,
  combinations,
  compileSpace,
} from '../encodings/layout.ts';
import { physicsEncoder } from '../encodings/physics.ts';
import { ArchGraphUnsupportedError } from '../errors.ts';
import { createRng } from '../rng.ts';
import { macKinds, type NodeCost, nodeCost } from '../spaces/cost.ts';
import { GraphBuilder } from '../spaces/graph-builder.ts';
import { randomSubnet } from '../spaces/subnet.ts';
import {
  type LayerGraph,
  type LayerNode,
  type SearchSpace,
  SKIP_CHOICE,
  type Subnet,
  type SubnetUnit,
} from '../spaces/types.ts';

/** Counts summed over a graph's nodes, in table column order. */
export const SUM_COLUMNS = [
  ...macKinds,
  'macs',
  'params',
  'elementwise',
  'outputs',
  'layers',
  'nodes',
];
const F = SUM_COLUMNS.length;
const MACS = macKinds.length;

export type PartKind = 'stem' | 'pre' | 'slot' | 'head';

/** One part of a chain space's layer graph, in graph order. */
export interface Part {
  readonly kind: PartKind;
  readonly unit: number;
  readonly slot: number;
  /** First table row; the part's rows are `base + key * resolutions + resolution index`. */
  readonly base: number;
  /** Number of keys: global combinations (stem), unit-choice combinations (pre), tuples (slot), 1 (head). */
  readonly keys: number;
}

/** Polynomials in `c` (a + c (b + c g)), one table per coefficient, row-major. */
export interface Poly {
  readonly a: Float64Array;
  readonly b: Float64Array;
  readonly g: Float64Array;
}

export interface ChainTables {
  readonly kind: 'chain';
  readonly parts: readonly Part[];
  /**
   * Base rows of every table (the rows by width, if any, follow them); the last is the
   * inactive slot's: no cost, `c` passed through.
   */
  readonly rows: number;
  /** [rows, SUM_COLUMNS.length] counts. */
  readonly sums: Poly;
  /** [rows, pieces] live elements at each node of the part (0 past its nodes). */
  readonly live: Poly;
  readonly pieces: number;
  /** [rows] channels the part writes. */
  readonly out: Poly;
  /** Elements of the input image at each resolution (its live memory before the first node). */
  readonly inputElements: readonly number[];
  /** Mixed-radix multiplier of each global choice's value index (last fastest). */
  readonly globalRadix: readonly number[];
  /** Whether any count depends on `c` (else the graph need not carry it). */
  readonly usesC: boolean;
  /** Whether any polynomial has a c^2 term. */
  readonly quadratic: boolean;
  /** Rows looked up by the width they read instead of a polynomial in it (widthRows). */
  readonly byWidth?: ByWidth;
}

/**
 * Base row r with `first[r]` >= 0 is read at width c from row `first[r] + widths.indexOf(c)`
 * (the polynomial tables have those rows after the `rows` base rows).
 */
export interface ByWidth {
  readonly widths: readonly number[];
  readonly first: Int32Array;
}

export interface WholeTables {
  readonly kind: 'whole';
  /** Mixed-radix multiplier of each slot's tuple, slots in unit then slot order. */
  readonly slotRadix: readonly number[];
  readonly rows: number;
  /** [rows, physics length] the physics encoding's values (float64, before the float32 store). */
  readonly physics: Float64Array;
  /** [rows, labels] the space's combination features (fcc), when it has them. */
  readonly combination: Float64Array | undefined;
}

export type PhysicsTables = ChainTables | WholeTables;

/** Largest space tabulated whole (one row per architecture). */
const MAX_WHOLE_ROWS = 50_000;
/** Random subnets per resolution on top of the systematic probes. */
const RANDOM_PROBES = 24;
/** Random subnets the finished tables must reproduce exactly (cheap: about 0.1 ms each). */
const CHECK_SUBNETS = 256;

/** Tables, or why there are none, per space: a refused space is not probed again at every save. */
const cache = new WeakMap<SearchSpace, PhysicsTables | ArchGraphUnsupportedError>();

function unsupported(space: SearchSpace, why: string): ArchGraphUnsupportedError {
  return new ArchGraphUnsupportedError(
    'features.encoding',
    `the arch-in graph cannot compute the physics encoding of space ${space.name}: ${why}; use predictor.onnx with esm encode, or another encoding`,
  );
}

/** The tables of `space` (built once per space). Throws `ArchGraphUnsupportedError`. */
export function physicsTables(space: SearchSpace): PhysicsTables {
  const cached = cache.get(space);
  if (cached instanceof ArchGraphUnsupportedError) throw cached;
  if (cached) return cached;
  try {
    const tables = wholeRows(space) <= MAX_WHOLE_ROWS ? wholeTables(space) : chainTables(space);
    cache.set(space, tables);
    return tables;
  } catch (error) {
    if (error instanceof ArchGraphUnsupportedError) cache.set(space, error);
    throw error;
  }
}

/** Rows a whole-space table would need, or Infinity where the space has depth, unit or global choices. */
export function wholeRows(space: SearchSpace): number {
  const fixed =
    space.resolutions.length === 1 &&
    space.globalChoices.length === 0 &&
    space.unitChoiceNames.length === 0 &&
    space.units.every((u) => u.minDepth === u.maxDepth);
  if (!fixed) return Number.POSITIVE_INFINITY;
  let rows = 1;
  for (const unit of space.units) rows *= combinations(unit).length ** unit.maxDepth;
  return rows;
}

/** A block (choices by name) of tuple `t` of a unit; the unit choices of the tuple apart. */
function tupleBlock(unit: SearchSpace['units'][number], tuple: readonly number[]) {
  const block: Record<string, number> = {};
  unit.blockChoices.forEach((c, i) => {
    block[c.name] = tuple[i] as number;
  });
  const choices: Record<string, number> = {};
  unit.unitChoices.forEach((c, i) => {
    choices[c.name] = tuple[unit.blockChoices.length + i] as number;
  });
  return { block, choices };
}

function wholeTables(space: SearchSpace): WholeTables {
  const combos = space.units.map((u) => combinations(u));
  const slots: number[][][] = [];
  space.units.forEach((unit, u) => {
    for (let s = 0; s < unit.maxDepth; s++) slots.push(combos[u] as number[][]);
  });
  const slotRadix = new Array<number>(slots.length).fill(1);
  for (let i = slots.length - 2; i >= 0; i--) {
    slotRadix[i] = (slotRadix[i + 1] as number) * (slots[i + 1] as number[][]).length;
  }
  const rows = (slotRadix[0] ?? 1) * (slots[0]?.length ?? 1);
  const encoder = physicsEncoder(space);
  const extra = space.combinationFeatures;
  const physics = new Float64Array(rows * encoder.length);
  const combination = extra ? new Float64Array(rows * extra.labels.length) : undefined;
  for (let row = 0; row < rows; row++) {
    let at = 0;
    const units: SubnetUnit[] = space.units.map((unit, u) => {
      const blocks = [];
      for (let s = 0; s < unit.maxDepth; s++) {
        const t = Math.floor(row / (slotRadix[at] as number)) % (combos[u] as number[][]).length;
        at += 1;
        blocks.push(tupleBlock(unit, (combos[u] as number[][])[t] as number[]).block);
      }
      return { choices: {}, blocks };
    });
    const subnet: Subnet = { resolution: space.resolutions[0] as number, globals: {}, units };
    encoder.encodeInto(subnet, physics, row * encoder.length);
    if (extra && combination) extra.fill(subnet, combination, row * extra.labels.length);
  }
  return { kind: 'whole', slotRadix, rows, physics, combination };
}

/** Parts of a chain space in graph order, with their table rows. */
function chainParts(space: SearchSpace, globalCombos: number): Part[] {
  const R = space.resolutions.length;
  const compiled = compileSpace(space);
  const parts: Part[] = [];
  let base = 0;
  const add = (kind: PartKind, unit: number, slot: number, keys: number) => {
    parts.push({ kind, unit, slot, base, keys });
    base += keys * R;
  };
  add('stem', -1, -1, globalCombos);
  compiled.units.forEach((cu, u) => {
    add('pre', u, -1, cu.unitCombinations);
    for (let s = 0; s < cu.def.maxDepth; s++) add('slot', u, s, cu.combinations);
  });
  add('head', -1, -1, 1);
  return parts;
}

/** The encoders' tuple index of a block (compileSpace's numbering, as tupleCounts computes it). */
function tupleIndex(cu: CompiledUnit, block: Readonly<Record<string, number>>, unit: SubnetUnit) {
  let unitPart = 0;
  cu.unitChoices.forEach((c, i) => {
    unitPart += choiceIndex(c, unit.choices[c.name]) * (cu.unitRadix[i] as number);
  });
  const kind = cu.skip ? (block[SKIP_CHOICE] ?? 0) : 0;
  if (kind > 0) return cu.skipBase + (kind - 1) * cu.unitCombinations + unitPart;
  let t = unitPart;
  cu.blockChoices.forEach((c, i) => {
    t += choiceIndex(c, block[c.name]) * (cu.blockRadix[i] as number);
  });
  return t;
}

function unitPartIndex(cu: CompiledUnit, unit: SubnetUnit): number {
  let part = 0;
  cu.unitChoices.forEach((c, i) => {
    part += choiceIndex(c, unit.choices[c.name]) * (cu.unitRadix[i] as number);
  });
  return part;
}

function globalIndex(compiled: CompiledSpace, radix: readonly number[], subnet: Subnet): number {
  let g = 0;
  compiled.globalChoices.forEach((c, i) => {
    g += choiceIndex(c, subnet.globals[c.name]) * (radix[i] as number);
  });
  return g;
}

/**
 * An array whose iteration (forEach, map, for..of) calls `before(i)` ahead of element i and
 * `after()` at the end, so the layer graph builder's nodes can be attributed to the element
 * being built.
 */
function watched<T>(items: readonly T[], before: (i: number) => void, after: () => void) {
  return new Proxy(items as T[], {
    get(target, key, receiver) {
      if (key === 'forEach' || key === 'map') {
        return (fn: (v: T, i: number, a: readonly T[]) => unknown, self?: unknown) => {
          const out = target.map((v, i) => {
            before(i);
            return fn.call(self, v, i, receiver);
          });
          after();
          return key === 'map' ? out : undefined;
        };
      }
      if (key === Symbol.iterator) {
        return function* () {
          for (let i = 0; i < target.length; i++) {
            before(i);
            yield target[i] as T;
          }
          after();
        };
      }
      return Reflect.get(target, key, receiver);
    },
  });
}

/** The layer graph of `subnet` and, per node, the index of the part that built it. */
function tracedGraph(space: SearchSpace, parts: readonly Part[], subnet: Subnet) {
  const partOf: number[] = [];
  const preIndex = parts.map((p, i) => (p.kind === 'pre' ? i : -1)).filter((i) => i >= 0);
  let current = 0;
  const units = subnet.units.map((unit, u) =>
    Object.freeze({
      choices: unit.choices,
      blocks: watched(
        unit.blocks,
        (i) => {
          current = (preIndex[u] as number) + 1 + i;
        },
        () => {},
      ),
    }),
  );
  const traced: Subnet = {
    resolution: subnet.resolution,
    globals: subnet.globals,
    units: watched(
      units,
      (u) => {
        current = preIndex[u] as number;
      },
      () => {
        current = parts.length - 1;
      },
    ),
  };
  // Every node GraphBuilder makes takes exactly one fresh id, so counting ids attributes the
  // nodes without touching the spaces' code. The patch lives for this synchronous call only.
  const proto = GraphBuilder.prototype as unknown as { nextId(prefix: string): string };
  const nextId = proto.nextId;
  proto.nextId = function (this: GraphBuilder, prefix: string) {
    partOf.push(current);
    return nextId.call(this, prefix);
  };
  let graph: LayerGraph;
  try {
    graph = space.layerGraph(traced);
  } finally {
    proto.nextId = nextId;
  }
  return { graph, partOf };
}

/** Live elements after each node writes its output: graphCost's liveness walk, kept per node. */
function liveTrace(graph: LayerGraph, costs: readonly NodeCost[]): number[] {
  const n = graph.nodes.length;
  const position = new Map<string, number>([['input', -1]]);
  graph.nodes.forEach((node, i) => {
    position.set(node.id, i);
  });
  const at = (id: string) => (position.get(id) ?? -2) + 1;
  const lastUse = new Int32Array(n + 1).fill(-2);
  const inputsOf = (node: LayerNode) => ('inputs' in node ? node.inputs : [node.input]);
  graph.nodes.forEach((node, i) => {
    for (const input of inputsOf(node)) lastUse[at(input)] = i;
  });
  lastUse[at(graph.output)] = n;
  const inputElements = graph.resolution * graph.resolution * graph.inputChannels;
  const sizeOf = (k: number) =>
    k === 0 ? inputElements : (costs[k - 1] as NodeCost).outputElements;
  const out: number[] = [];
  let live = inputElements;
  for (let i = 0; i < n; i++) {
    const inputs = inputsOf(graph.nodes[i] as LayerNode);
    live += sizeOf(i + 1);
    out.push(live);
    inputs.forEach((input, j) => {
      const k = at(input);
      if (lastUse[k] === i && inputs.indexOf(input) === j) live -= sizeOf(k);
    });
    if ((lastUse[i + 1] as number) < i) live -= sizeOf(i + 1);
  }
  return out;
}

function outChannels(node: LayerNode): number {
  return node.op === 'conv' || node.op === 'linear' ? node.cout : node.channels;
}

interface Observation {
  readonly sums: readonly number[];
  readonly live: readonly number[];
  readonly out: number;
}

/** Per table row, what each input width `c` gave. */
type Observations = Map<number, Map<number, Observation>>;

function sameObservation(a: Observation, b: Observation): boolean {
  return (
    a.out === b.out &&
    a.live.length === b.live.length &&
    a.live.every((v, i) => v === b.live[i]) &&
    a.sums.every((v, i) => v === b.sums[i])
  );
}

interface ChainContext {
  readonly space: SearchSpace;
  readonly compiled: CompiledSpace;
  readonly parts: readonly Part[];
  readonly globalRadix: readonly number[];
  readonly R: number;
}

/** The table row each part of `subnet` uses, -1 for an inactive slot. */
function partRows(ctx: ChainContext, subnet: Subnet): number[] {
  const ri = ctx.space.resolutions.indexOf(subnet.resolution);
  return ctx.parts.map((p) => {
    if (p.kind === 'stem')
      return p.base + globalIndex(ctx.compiled, ctx.globalRadix, subnet) * ctx.R + ri;
    if (p.kind === 'head') return p.base + ri;
    const cu = ctx.compiled.units[p.unit] as CompiledUnit;
    const unit = subnet.units[p.unit] as SubnetUnit;
    if (p.kind === 'pre') return p.base + unitPartIndex(cu, unit) * ctx.R + ri;
    const block = unit.blocks[p.slot];
    return block ? p.base + tupleIndex(cu, block, unit) * ctx.R + ri : -1;
  });
}

function observe(ctx: ChainContext, subnet: Subnet, into: Observations): void {
  const { graph, partOf } = tracedGraph(ctx.space, ctx.parts, subnet);
  if (partOf.length !== graph.nodes.length) {
    throw unsupported(ctx.space, 'its layer graph is not built with GraphBuilder');
  }
  const costs = graph.nodes.map(nodeCost);
  const live = liveTrace(graph, costs);
  const rows = partRows(ctx, subnet);
  const byPart = ctx.parts.map(() => [] as number[]);
  partOf.forEach((p, i) => {
    (byPart[p] as number[]).push(i);
  });
  let c = 0;
  ctx.parts.forEach((_, p) => {
    const nodes = byPart[p] as number[];
    const row = rows[p] as number;
    if (row < 0) {
      if (nodes.length > 0) throw unsupported(ctx.space, 'an inactive block built layers');
      return;
    }
    const sums = new Array<number>(F).fill(0);
    for (const i of nodes) {
      const cost = costs[i] as NodeCost;
      const kind = macKinds.indexOf(cost.macKind as (typeof macKinds)[number]);
      if (kind >= 0) sums[kind] = (sums[kind] as number) + cost.macs;
      sums[MACS] = (sums[MACS] as number) + cost.macs;
      sums[MACS + 1] = (sums[MACS + 1] as number) + cost.params;
      sums[MACS + 2] = (sums[MACS + 2] as number) + cost.elementwiseOps;
      sums[MACS + 3] = (sums[MACS + 3] as number) + cost.outputElements;
      if (cost.op === 'conv' || cost.op === 'linear')
        sums[MACS + 4] = (sums[MACS + 4] as number) + 1;
      sums[MACS + 5] = (sums[MACS + 5] as number) + 1;
    }
    const last = nodes[nodes.length - 1];
    const out = last === undefined ? c : outChannels(graph.nodes[last] as LayerNode);
    const obs: Observation = { sums, live: nodes.map((i) => live[i] as number), out };
    let seen = into.get(row);
    if (!seen) {
      seen = new Map();
      into.set(row, seen);
    }
    const before = seen.get(c);
    if (before && !sameObservation(before, obs)) {
      throw unsupported(
        ctx.space,
        `the cost of its ${partName(ctx.parts[p] as Part)} depends on more than its own choices, the resolution and its input width`,
      );
    }
    seen.set(c, obs);
    c = out;
  });
}

function partName(p: Part): string {
  return p.kind === 'slot'
    ? `unit ${p.unit} block ${p.slot}`
    : p.kind === 'pre'
      ? `unit ${p.unit} transition`
      : p.kind;
}

/** Coefficients [a, b, g] of the polynomial of degree < points.length through the points. */
function fitPoly(xs: readonly number[], ys: readonly number[]): [number, number, number] {
  const [x0, x1, x2] = xs as [number, number, number];
  const [y0, y1, y2] = ys as [number, number, number];
  if (xs.length === 1) return [y0, 0, 0];
  const d01 = (y1 - y0) / (x1 - x0);
  if (xs.length === 2) return [y0 - d01 * x0, d01, 0];
  const d12 = (y2 - y1) / (x2 - x1);
  const g = (d12 - d01) / (x2 - x0);
  const b = d01 - g * (x0 + x1);
  return [y0 - b * x0 - g * x0 * x0, b, g];
}

/** The graph's arithmetic: round(a + c (b + c g)). */
export function evalPoly(a: number, b: number, g: number, c: number): number {
  return Math.round(a + c * (b + c * g));
}

/** Probe subnets: every tuple in every slot under a few prefixes, per resolution and unit choice. */
function probeSubnets(ctx: ChainContext, globalCombos: number, varied: boolean): Subnet[] {
  const { space, compiled } = ctx;
  const combos = space.units.map((u) => combinations(u));
  // Each unit's tuples grouped by their unit-choice part.
  const byPart = compiled.units.map((cu, u) => {
    const groups: number[][] = Array.from({ length: cu.unitCombinations }, () => []);
    (combos[u] as number[][]).forEach((tuple, t) => {
      const { block, choices } = tupleBlock(cu.def, tuple);
      const part = unitPartIndex(cu, { choices, blocks: [block] });
      (groups[part] as number[]).push(t);
    });
    return groups;
  });
  const maxParts = Math.max(...compiled.units.map((cu) => cu.unitCombinations));
  const maxTuples = Math.max(...byPart.flatMap((g) => g.map((x) => x.length)));
  const globalsOf = (g: number): Record<string, number> => {
    const out: Record<string, number> = {};
    compiled.globalChoices.forEach((c, i) => {
      out[c.name] = c.values[
        Math.floor(g / (ctx.globalRadix[i] as number)) % c.values.length
      ] as number;
    });
    return out;
  };
  const subnet = (
    r: number,
    g: number,
    partAt: (u: number) => number,
    tupleAt: (u: number, s: number, n: number) => number,
    depthAt: (u: number) => 'min' | 'max',
  ): Subnet => ({
    resolution: r,
    globals: globalsOf(g),
    units: space.units.map((unit, u) => {
      const groups = byPart[u] as number[][];
      const group = groups[partAt(u) % groups.length] as number[];
      const depth = depthAt(u) === 'max' ? unit.maxDepth : unit.minDepth;
      const blocks = [];
      let choices = tupleBlock(
        unit,
        (combos[u] as number[][])[group[0] as number] as number[],
      ).choices;
      for (let s = 0; s < depth; s++) {
        const t = group[tupleAt(u, s, group.length) % group.length] as number;
        const b = tupleBlock(unit, (combos[u] as number[][])[t] as number[]);
        blocks.push(b.block);
        choices = b.choices;
      }
      return { choices, blocks };
    }),
  });
  // Depth patterns: all units full, or every other unit at its least depth (so a unit's input
  // width, which earlier depths set in dense spaces, takes more than one value).
  type Depth = (u: number) => 'min' | 'max';
  const depthPatterns: Depth[] = [
    () => 'max',
    ...(varied
      ? [(u: number) => (u % 2 === 0 ? 'min' : 'max'), (u: number) => (u % 2 === 1 ? 'min' : 'max')]
      : []),
  ];
  const out: Subnet[] = [];
  const rng = createRng(20261201);
  for (const r of space.resolutions) {
    for (let g = 0; g < globalCombos; g++) {
      out.push(
        subnet(
          r,
          g,
          () => g,
          () => 0,
          () => (g % 2 === 0 ? 'max' : 'min'),
        ),
      );
    }
    for (const depthAt of depthPatterns) {
      for (let q = 0; q < maxParts; q++) {
        for (let j = 0; j < maxTuples; j++) {
          for (let p = 0; p < 3; p++) {
            // Prefixes: all the same tuple and unit choice, cycling forward, cycling backward.
            const shift = (u: number, s: number, n: number) =>
              [0, s + u, n * 64 - s - u][p] as number;
            out.push(
              subnet(
                r,
                (j + p) % globalCombos,
                (u) => q + shift(u, 0, maxParts),
                (u, s, n) => j + shift(u, s, n),
                depthAt,
              ),
            );
          }
        }
      }
    }
    if (!varied)
      for (let i = 0; i < RANDOM_PROBES; i++)
        out.push({ ...randomSubnet(space, rng), resolution: r });
  }
  return out;
}

/**
 * Random subnets through each block row seen with fewer than three input widths (a quadratic
 * count needs three to be fitted), until it has three or the tries run out; the rest of the
 * subnet random, so the earlier depths and choices (the width) vary.
 */
function targetedProbes(ctx: ChainContext, seen: Observations): void {
  const { space, compiled, parts, R } = ctx;
  const rng = createRng(424242);
  const combos = space.units.map((u) => combinations(u));
  for (const part of parts) {
    if (part.kind !== 'slot') continue;
    // Parts whose input width never varied have one width (a width set by the unit itself).
    let varies = false;
    for (let row = part.base; row < part.base + part.keys * R && !varies; row++) {
      varies = (seen.get(row)?.size ?? 0) > 1;
    }
    if (!varies) continue;
    const cu = compiled.units[part.unit] as CompiledUnit;
    const unitCombos = combos[part.unit] as number[][];
    const partOf = unitCombos.map((tuple) => {
      const { block, choices } = tupleBlock(cu.def, tuple);
      return unitPartIndex(cu, { choices, blocks: [block] });
    });
    for (let t = 0; t < part.keys; t++) {
      for (let ri = 0; ri < R; ri++) {
        const row = part.base + t * R + ri;
        for (let tries = 0; tries < 8 && (seen.get(row)?.size ?? 0) < 3; tries++) {
          const base = randomSubnet(space, rng);
          const same = unitCombos.map((_, k) => k).filter((k) => partOf[k] === partOf[t]);
          const depth = part.slot + 1 + rng.int(cu.def.maxDepth - part.slot);
          const blocks = Array.from({ length: depth }, (_, s) => {
            const k = s === part.slot ? t : (same[rng.int(same.length)] as number);
            return tupleBlock(cu.def, unitCombos[k] as number[]).block;
          });
          const { choices } = tupleBlock(cu.def, unitCombos[t] as number[]);
          const units = base.units.map((unit, u) => (u === part.unit ? { choices, blocks } : unit));
          observe(ctx, { ...base, resolution: space.resolutions[ri] as number, units }, seen);
        }
      }
    }
  }
}

function chainTables(space: SearchSpace): ChainTables {
  const compiled = compileSpace(space);
  const globalRadix = new Array<number>(compiled.globalChoices.length).fill(1);
  for (let i = globalRadix.length - 2; i >= 0; i--) {
    globalRadix[i] =
      (globalRadix[i + 1] as number) * (compiled.globalChoices[i + 1]?.values.length ?? 1);
  }
  const globalCombos = compiled.globalChoices.reduce((n, c) => n * c.values.length, 1);
  const parts = chainParts(space, globalCombos);
  const R = space.resolutions.length;
  const ctx: ChainContext = { space, compiled, parts, globalRadix, R };
  const seen: Observations = new Map();
  for (const subnet of probeSubnets(ctx, globalCombos, false)) observe(ctx, subnet, seen);
  // Where some part's input width varies, probe again with earlier depths varied too.
  const widthVaries = [...seen.values()].some((byC) => byC.size > 1);
  if (widthVaries) {
    for (const subnet of probeSubnets(ctx, globalCombos, true)) observe(ctx, subnet, seen);
    targetedProbes(ctx, seen);
  }

  const last = parts[parts.length - 1] as Part;
  const rows = last.base + last.keys * R + 1;
  let pieces = 1;
  for (const byC of seen.values())
    for (const o of byC.values()) pieces = Math.max(pieces, o.live.length);
  const poly = (n: number): Poly => ({
    a: new Float64Array(rows * n).fill(Number.NaN),
    b: new Float64Array(rows * n),
    g: new Float64Array(rows * n),
  });
  const sums = poly(F);
  const live = poly(pieces);
  const out = poly(1);
  let usesC = false;
  let quadratic = false;
  /** Rows some count of which is no polynomial in c: looked up by c instead (widthRows). */
  const irregular: number[] = [];
  const put = (p: Poly, at: number, xs: number[], ys: number[], check: [number, number][]) => {
    const [a, b, g] = fitPoly(xs, ys);
    for (const [x, y] of check) {
      if (evalPoly(a, b, g, x) !== y) return false;
    }
    p.a[at] = a;
    p.b[at] = b;
    p.g[at] = g;
    if (b !== 0 || g !== 0) usesC = true;
    if (g !== 0) quadratic = true;
    return true;
  };
  for (let row = 0; row < rows - 1; row++) {
    const byC = seen.get(row);
    if (!byC) {
      throw unsupported(space, `no probe reached table row ${row}`);
    }
    const cs = [...byC.keys()].sort((x, y) => x - y);
    const pick =
      cs.length <= 3 ? cs : ([cs[0], cs[Math.floor(cs.length / 2)], cs[cs.length - 1]] as number[]);
    const obs = cs.map((c) => byC.get(c) as Observation);
    const n = (obs[0] as Observation).live.length;
    if (obs.some((o) => o.live.length !== n)) {
      throw unsupported(
        space,
        'a block builds a different number of layers for different input widths',
      );
    }
    const column = (get: (o: Observation) => number) => ({
      ys: pick.map((c) => get(byC.get(c) as Observation)),
      check: cs.map((c, i) => [c, get(obs[i] as Observation)] as [number, number]),
    });
    const fits = [
      ...SUM_COLUMNS.map((_, k) => {
        const { ys, check } = column((o) => o.sums[k] as number);
        return put(sums, row * F + k, pick, ys, check);
      }),
      ...Array.from({ length: pieces }, (_, k) => {
        const { ys, check } = column((o) => (o.live[k] as number | undefined) ?? 0);
        return put(live, row * pieces + k, pick, ys, check);
      }),
      (() => {
        const { ys, check } = column((o) => o.out);
        return put(out, row, pick, ys, check);
      })(),
    ];
    if (fits.some((ok) => !ok)) irregular.push(row);
  }
  // The inactive slot: nothing counted, the width passed through.
  const idle = rows - 1;
  for (let k = 0; k < F; k++) sums.a[idle * F + k] = 0;
  for (let k = 0; k < pieces; k++) live.a[idle * pieces + k] = 0;
  out.a[idle] = 0;
  out.b[idle] = 1;
  const byWidth =
    irregular.length > 0 ? widthRows(ctx, seen, irregular, { sums, live, out }) : undefined;
  const inputChannels = space.layerGraph(randomSubnet(space, createRng(1))).inputChannels;
  const tables: ChainTables = {
    kind: 'chain',
    parts,
    rows,
    ...(byWidth ? byWidth.tables : { sums, live, out }),
    ...(byWidth ? { byWidth: byWidth.index } : {}),
    pieces,
    inputElements: space.resolutions.map((r) => r * r * inputChannels),
    globalRadix,
    usesC: usesC || byWidth !== undefined,
    quadratic,
  };
  checkChain(ctx, tables);
  return tables;
}

/**
 * Rows whose counts are no polynomial in the width `c` they read (an MBConv expansion
 * make_divisible(round(c x e)) after a unit with a choice of widths): each gets one row per
 * width any part can read (`widths`), holding what the probes saw at that width (constants,
 * b = g = 0), appended after the polynomial rows. The widths a part can read are followed
 * along the chain from the stem (every row of a part at every width the part before can
 * write: a superset of what subnets reach); a row whose reachable width no probe saw is
 * refused, since its costs there are unknown.
 */
function widthRows(
  ctx: ChainContext,
  seen: Observations,
  irregular: readonly number[],
  polys: { sums: Poly; live: Poly; out: Poly },
): { tables: { sums: Poly; live: Poly; out: Poly }; index: ByWidth } {
  const { space, parts, R } = ctx;
  const rows = polys.out.a.length;
  const isIrregular = new Set(irregular);
  let reads = new Set([0]);
  const reached = new Set<number>();
  for (const part of parts) {
    const writes = new Set<number>();
    const def = space.units[part.unit];
    if (part.kind === 'slot' && def && part.slot >= def.minDepth)
      for (const c of reads) writes.add(c);
    for (let row = part.base; row < part.base + part.keys * R; row++) {
      for (const c of reads) {
        if (isIrregular.has(row)) {
          const o = seen.get(row)?.get(c);
          if (!o) {
            throw unsupported(
              space,
              `its ${partName(part)}'s costs are no polynomial in its input width and no probe reached it at input width ${c}`,
            );
          }
          reached.add(c);
          writes.add(o.out);
        } else {
          const at = (p: Poly) =>
            evalPoly(p.a[row] as number, p.b[row] as number, p.g[row] as number, c);
          writes.add(at(polys.out));
        }
      }
    }
    reads = writes;
  }
  const widths = [...reached].sort((x, y) => x - y);
  const first = new Int32Array(rows).fill(-1);
  const total = rows + irregular.length * widths.length;
  const grow = (p: Poly, n: number): Poly => {
    const next = {
      a: new Float64Array(total * n).fill(Number.NaN),
      b: new Float64Array(total * n),
      g: new Float64Array(total * n),
    };
    next.a.set(p.a);
    next.b.set(p.b);
    next.g.set(p.g);
    return next;
  };
  const tables = {
    sums: grow(polys.sums, F),
    live: grow(polys.live, polys.live.a.length / rows),
    out: grow(polys.out, 1),
  };
  const pieces = polys.live.a.length / rows;
  irregular.forEach((row, i) => {
    first[row] = rows + i * widths.length;
    widths.forEach((c, wi) => {
      const o = seen.get(row)?.get(c);
      if (!o) return;
      const at = rows + i * widths.length + wi;
      o.sums.forEach((v, k) => {
        tables.sums.a[at * F + k] = v;
      });
      for (let k = 0; k < pieces; k++) tables.live.a[at * pieces + k] = o.live[k] ?? 0;
      tables.out.a[at] = o.out;
    });
  });
  return { tables, index: { widths, first } };
}

/** The table row of base row `row` read at width `c` (the row itself where it is a polynomial). */
export function rowAtWidth(tables: ChainTables, row: number, c: number): number {
  const at = tables.byWidth?.first[row] ?? -1;
  if (at < 0) return row;
  const wi = tables.byWidth?.widths.indexOf(c) ?? -1;
  // A width the chain analysis did not reach: the first unknown row (NaN costs).
  return wi < 0 ? Number.NaN : at + wi;
}

/**
 * The physics vector of `subnet` as the arch-in graph computes it from `tables`, in the
 * graph's arithmetic (float64, same operation order), for the self-check and tests.
 */
export function chainPhysics(
  space: SearchSpace,
  tables: ChainTables,
  subnet: Subnet,
): Float64Array {
  const compiled = compileSpace(space);
  const R = space.resolutions.length;
  const ctx: ChainContext = {
    space,
    compiled,
    parts: tables.parts,
    globalRadix: tables.globalRadix,
    R,
  };
  const rows = partRows(ctx, subnet).map((r) => (r < 0 ? tables.rows - 1 : r));
  const totals = new Array<number>(F).fill(0);
  let peak = tables.inputElements[space.resolutions.indexOf(subnet.resolution)] as number;
  const inputElements = peak;
  let c = 0;
  for (const base of rows) {
    const { sums, live, out, pieces } = tables;
    const row = rowAtWidth(tables, base, c);
    for (let k = 0; k < F; k++) {
      const at = row * F + k;
      totals[k] =
        (totals[k] as number) +
        evalPoly(sums.a[at] as number, sums.b[at] as number, sums.g[at] as number, c);
    }
    for (let k = 0; k < pieces; k++) {
      const at = row * pieces + k;
      peak = Math.max(
        peak,
        evalPoly(live.a[at] as number, live.b[at] as number, live.g[at] as number, c),
      );
    }
    c = evalPoly(out.a[row] as number, out.b[row] as number, out.g[row] as number, c);
  }
  const MEGA = 1e-6;
  const s = (k: number) => totals[k] as number;
  return Float64Array.from([
    ...macKinds.map((_, k) => s(k) * MEGA),
    s(MACS) * MEGA,
    s(MACS + 1) * MEGA,
    s(MACS + 2) * MEGA,
    s(MACS + 3) * 4 * MEGA,
    peak * 4 * MEGA,
    s(MACS + 1) * 4 * MEGA,
    inputElements * 4 * MEGA,
    s(MACS + 4),
    s(MACS + 5),
  ]);
}

/** The tables against the encoder on random subnets; refuses the space on any difference. */
function checkChain(ctx: ChainContext, tables: ChainTables): void {
  const encoder = physicsEncoder(ctx.space);
  const rng = createRng(7);
  for (let i = 0; i < CHECK_SUBNETS; i++) {
    const subnet = randomSubnet(ctx.space, rng);
    const want = encoder.encode(subnet);
    const got = chainPhysics(ctx.space, tables, subnet);
    const k = want.findIndex((v, j) => v !== got[j]);
    if (k >= 0) {
      throw unsupported(
        ctx.space,
        `the tables missed entry ${k} on a random subnet (${got[k]} vs ${want[k]})`,
      );
    }
  }
}
