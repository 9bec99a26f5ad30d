/**
 * Helpers the encoders share: the per-unit feature tuple layout (block choices then unit
 * choices, the order of `blockTuples`) compiled once per space into value-to-index maps, so
 * that encoding a subnet allocates nothing but its output vector (encoding runs before every
 * batch prediction, at millions of subnets per second). Values outside the space fail
 * loudly instead of silently encoding garbage.
 */
import { ArchValidationError } from '../errors.ts';
import {
  type ChoiceDef,
  type SearchSpace,
  SKIP_CHOICE,
  type Subnet,
  type UnitDef,
} from '../spaces/types.ts';
import type { Encoder, EncodingName } from './types.ts';

/** A choice compiled for `choiceIndex`. */
export interface CompiledChoice {
  readonly name: string;
  readonly values: readonly number[];
  /** `table[value]` = index, -1 for a value outside the choice; only when all values are small integers. */
  readonly table: Int32Array | undefined;
}

/** Largest choice value that gets a lookup table (resolutions are the largest, e.g. 224). */
const MAX_TABLE_VALUE = 4096;

export interface CompiledUnit {
  readonly def: UnitDef;
  readonly blockChoices: readonly CompiledChoice[];
  readonly unitChoices: readonly CompiledChoice[];
  /**
   * Number of distinct feature tuples of a block: the product of all choice sizes; in a
   * layer-wise unit, (layer configurations + skip kinds) x unit choice configurations, since
   * a skip has no other block choices.
   */
  readonly combinations: number;
  /** Mixed-radix multiplier of each block choice (0 for `skip`), then of each unit choice. */
  readonly blockRadix: readonly number[];
  readonly unitRadix: readonly number[];
  /** The `skip` choice of a layer-wise unit. */
  readonly skip: CompiledChoice | undefined;
  /** Tuple index of skip kind 1 with the first unit choices; kind j adds (j - 1) x `unitCombinations`. */
  readonly skipBase: number;
  readonly unitCombinations: number;
}

export interface CompiledSpace {
  readonly space: SearchSpace;
  readonly units: readonly CompiledUnit[];
  readonly globalChoices: readonly CompiledChoice[];
  readonly resolution: CompiledChoice;
  readonly maxResolution: number;
}

export function compileChoice(choice: ChoiceDef): CompiledChoice {
  const small = choice.values.every((v) => Number.isInteger(v) && v >= 0 && v <= MAX_TABLE_VALUE);
  let table: Int32Array | undefined;
  if (small) {
    table = new Int32Array(Math.max(...choice.values) + 1).fill(-1);
    choice.values.forEach((v, i) => {
      (table as Int32Array)[v] = i;
    });
  }
  return { name: choice.name, values: choice.values, table };
}

/**
 * Index of `value` among the choice's values, -1 if it is not one of them. It runs for every
 * block of every encoded subnet, and a typed-array lookup costs a fraction of a `Map.get`.
 */
export function choiceIndex(choice: CompiledChoice, value: unknown): number {
  if (typeof value !== 'number') return -1;
  // A typed array answers undefined for a fractional, negative or too large index.
  if (choice.table) return choice.table[value] ?? -1;
  return choice.values.indexOf(value);
}

/** The choices that make up one block's feature tuple in `unit`, in `blockTuples` order. */
export function tupleChoices(unit: UnitDef): readonly ChoiceDef[] {
  return [...unit.blockChoices, ...unit.unitChoices];
}

function mixedRadix(choices: readonly ChoiceDef[]): number[][] {
  let out: number[][] = [[]];
  for (const choice of choices) {
    out = out.flatMap((prefix) => choice.values.map((v) => [...prefix, v]));
  }
  return out;
}

/**
 * Every feature tuple of `unit` (values in `tupleChoices` order) in mixed-radix order, the
 * last choice varying fastest. In a layer-wise unit the layers (skip 0) come first, then
 * each skip kind with its other block choices at their first value.
 */
export function combinations(unit: UnitDef): number[][] {
  const all = tupleChoices(unit);
  const skipAt = all.findIndex((c) => c.name === SKIP_CHOICE);
  if (skipAt < 0) return mixedRadix(all);
  const skip = all[skipAt] as ChoiceDef;
  const layers = mixedRadix(all.filter((_, i) => i !== skipAt)).map((t) => [
    ...t.slice(0, skipAt),
    0,
    ...t.slice(skipAt),
  ]);
  const unitTuples = mixedRadix(unit.unitChoices);
  const firsts = unit.blockChoices.map((c) => c.values[0] as number);
  const skips = skip.values
    .filter((v) => v > 0)
    .flatMap((kind) =>
      unitTuples.map((t) => [...firsts.map((v, i) => (i === skipAt ? kind : v)), ...t]),
    );
  return [...layers, ...skips];
}

/**
 * Labels of a unit's feature tuples, e.g. `kernel=3,expand=4`, in `combinations` order. In a
 * layer-wise unit a layer's label leaves out `skip=0` and a skip's label is `skip=K` (plus
 * the unit choices), since its other block choices mean nothing.
 */
export function combinationLabels(unit: UnitDef): string[] {
  const names = tupleChoices(unit).map((c) => c.name);
  const blockNames = new Set(unit.blockChoices.map((c) => c.name));
  return combinations(unit).map((t) => {
    const kind = t[names.indexOf(SKIP_CHOICE)] ?? 0;
    return t
      .map((v, i) => ({ name: names[i] as string, v }))
      .filter(({ name }) =>
        kind > 0 ? name === SKIP_CHOICE || !blockNames.has(name) : name !== SKIP_CHOICE,
      )
      .map(({ name, v }) => `${name}=${v}`)
      .join(',');
  });
}

export function compileSpace(space: SearchSpace): CompiledSpace {
  const units = space.units.map((def): CompiledUnit => {
    const all = tupleChoices(def);
    const radix: number[] = new Array(all.length);
    let mult = 1;
    let unitCombinations = 1;
    for (let i = all.length - 1; i >= 0; i--) {
      const choice = all[i] as ChoiceDef;
      // The skip choice takes no digit: a skip's tuples follow all layer tuples.
      radix[i] = choice.name === SKIP_CHOICE && i < def.blockChoices.length ? 0 : mult;
      if (radix[i] !== 0) mult *= choice.values.length;
      if (i === def.blockChoices.length) unitCombinations = mult;
    }
    if (def.unitChoices.length === 0) unitCombinations = 1;
    const blockChoices = def.blockChoices.map(compileChoice);
    const skip = blockChoices.find((c) => c.name === SKIP_CHOICE);
    const kinds = skip ? skip.values.length - 1 : 0;
    return {
      def,
      blockChoices,
      unitChoices: def.unitChoices.map(compileChoice),
      combinations: mult + kinds * unitCombinations,
      blockRadix: radix.slice(0, def.blockChoices.length),
      unitRadix: radix.slice(def.blockChoices.length),
      skip,
      skipBase: mult,
      unitCombinations,
    };
  });
  return {
    space,
    units,
    globalChoices: space.globalChoices.map(compileChoice),
    resolution: compileChoice({ name: 'resolution', values: space.resolutions }),
    maxResolution: Math.max(...space.resolutions),
  };
}

function badValue(choice: CompiledChoice, value: unknown, field: string): ArchValidationError {
  return new ArchValidationError(
    field,
    `got ${JSON.stringify(value)}, allowed values are ${choice.values.join(', ')}`,
  );
}

/** Index of a block's choice value; the field name is only built on error. */
export function blockChoiceIndex(
  choice: CompiledChoice,
  block: Readonly<Record<string, number>>,
  u: number,
  slot: number,
): number {
  const value = block[choice.name];
  const index = choiceIndex(choice, value);
  if (index < 0) throw badValue(choice, value, `units[${u}].blocks[${slot}].${choice.name}`);
  return index;
}

/** Index of a unit choice value. */
export function unitChoiceIndex(
  choice: CompiledChoice,
  choices: Readonly<Record<string, number>>,
  u: number,
): number {
  const value = choices[choice.name];
  const index = choiceIndex(choice, value);
  if (index < 0) throw badValue(choice, value, `units[${u}].${choice.name}`);
  return index;
}

/** Index of a global choice value. */
export function globalChoiceIndex(choice: CompiledChoice, subnet: Subnet): number {
  const value = subnet.globals[choice.name];
  const index = choiceIndex(choice, value);
  if (index < 0) throw badValue(choice, value, `globals.${choice.name}`);
  return index;
}

/** Index of the subnet's resolution among the space's resolutions. */
export function resolutionIndex(compiled: CompiledSpace, subnet: Subnet): number {
  const index = choiceIndex(compiled.resolution, subnet.resolution);
  if (index < 0) throw badValue(compiled.resolution, subnet.resolution, 'resolution');
  return index;
}

/** Mixed-radix offset of the unit choices of `u`, shared by all its blocks. */
export function unitTupleOffset(
  unit: CompiledUnit,
  choices: Readonly<Record<string, number>>,
  u: number,
): number {
  let offset = 0;
  for (let i = 0; i < unit.unitChoices.length; i++) {
    offset +=
      unitChoiceIndex(unit.unitChoices[i] as CompiledChoice, choices, u) *
      (unit.unitRadix[i] as number);
  }
  return offset;
}

/** Mixed-radix index of a block's feature tuple (block choices + unit choices). */
export function blockTupleIndex(
  unit: CompiledUnit,
  block: Readonly<Record<string, number>>,
  unitOffset: number,
  u: number,
  slot: number,
): number {
  if (unit.skip) {
    const kind = blockChoiceIndex(unit.skip, block, u, slot);
    if (kind > 0) return unit.skipBase + (kind - 1) * unit.unitCombinations + unitOffset;
  }
  let index = unitOffset;
  for (let i = 0; i < unit.blockChoices.length; i++) {
    const radix = unit.blockRadix[i] as number;
    if (radix === 0) continue;
    index += blockChoiceIndex(unit.blockChoices[i] as CompiledChoice, block, u, slot) * radix;
  }
  return index;
}

/** Throws unless the subnet has one entry per unit of the space, within the depth limits. */
export function checkShape(compiled: CompiledSpace, subnet: Subnet): void {
  const { units } = compiled;
  if (subnet.units.length !== units.length) {
    throw new ArchValidationError(
      'units',
      `expected ${units.length} units for space ${compiled.space.name}, got ${subnet.units.length}`,
    );
  }
  for (let u = 0; u < units.length; u++) {
    const def = (units[u] as CompiledUnit).def;
    const d = (subnet.units[u] as Subnet['units'][number]).blocks.length;
    if (d < def.minDepth || d > def.maxDepth) {
      throw new ArchValidationError(
        `units[${u}].depth`,
        `got ${d}, allowed ${def.minDepth}..${def.maxDepth}`,
      );
    }
  }
}

/** An encoding's output buffer: float64 for the regressors, float32 straight for ONNX. */
export type Vector = Float32Array | Float64Array;

/** An encoder that can also write into a slice of a larger buffer (used by `encodeAll`). */
export interface FastEncoder extends Encoder {
  /**
   * Writes the encoding of `subnet` at `out[offset .. offset + length)`, overwriting what was
   * there. Every value is an integer count, a choice value or a product computed in float64,
   * so a float32 buffer holds exactly what `Float32Array.from(encode(subnet))` would.
   */
  encodeInto(subnet: Subnet, out: Vector, offset: number): void;
}

/**
 * Builds an `Encoder` from a label list and a fill function that writes into a zeroed slice
 * starting at `offset`, so each encoding only states its layout.
 */
export function makeEncoder(
  name: EncodingName,
  compiled: CompiledSpace,
  labels: readonly string[],
  fill: (subnet: Subnet, out: Vector, offset: number) => void,
): FastEncoder {
  const encodeInto = (subnet: Subnet, out: Vector, offset: number): void => {
    checkShape(compiled, subnet);
    out.fill(0, offset, offset + labels.length);
    fill(subnet, out, offset);
  };
  return {
    name,
    space: compiled.space,
    length: labels.length,
    labels,
    encodeInto,
    encode(subnet: Subnet): Float64Array {
      const out = new Float64Array(labels.length);
      encodeInto(subnet, out, 0);
      return out;
    },
  };
}

/**
 * For each resolution (in `space.resolutions` order) and unit, the area of the feature map
 * that the unit's later blocks run on, relative to the same at the largest resolution:
 * `scales[resolutionIndex * units + u]`. Strided resolutions round up (ceil(132 / 32) =
 * ceil(160 / 32) = 5), so this differs from (r / r_max)^2 in the deep units. The space
 * interface does not expose strides, so the resolution is read off the space's own layer
 * graph: the layers that one extra block adds to a unit all run at that unit's resolution.
 * A unit whose depth cannot grow falls back to (r / r_max)^2.
 */
export function unitAreaScales(space: SearchSpace): Float64Array {
  let scales = areaScaleCache.get(space);
  if (!scales) {
    scales = computeUnitAreaScales(space);
    areaScaleCache.set(space, scales);
  }
  return scales;
}

/** Probing builds a few hundred layer graphs; encoders are created per fit and per predict. */
const areaScaleCache = new WeakMap<SearchSpace, Float64Array>();

function computeUnitAreaScales(space: SearchSpace): Float64Array {
  const nUnits = space.units.length;
  const rMax = Math.max(...space.resolutions);
  const firstValues = (choices: readonly ChoiceDef[]) =>
    Object.fromEntries(choices.map((c) => [c.name, c.values[0] as number]));
  const baseDepths = space.units.map((u) => Math.min(u.maxDepth, Math.max(u.minDepth, 1)));
  const subnetWith = (resolution: number, grow: number): Subnet => ({
    resolution,
    globals: firstValues(space.globalChoices),
    units: space.units.map((unit, u) => ({
      choices: firstValues(unit.unitChoices),
      blocks: Array.from({ length: (baseDepths[u] as number) + (u === grow ? 1 : 0) }, () =>
        firstValues(unit.blockChoices),
      ),
    })),
  });
  const layerKeys = (subnet: Subnet) => {
    const counts = new Map<string, number>();
    for (const node of space.layerGraph(subnet).nodes) {
      const key = `${node.op}@${node.resolution}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return counts;
  };
  /** Resolution of unit u's later blocks at input resolution r; undefined if unknown. */
  const unitResolution = (r: number, u: number): number | undefined => {
    const unit = space.units[u] as UnitDef;
    if ((baseDepths[u] as number) + 1 > unit.maxDepth) return undefined;
    const base = layerKeys(subnetWith(r, -1));
    const added = new Map<number, number>();
    for (const [key, count] of layerKeys(subnetWith(r, u))) {
      const extra = count - (base.get(key) ?? 0);
      if (extra > 0) {
        const resolution = Number(key.slice(key.indexOf('@') + 1));
        added.set(resolution, (added.get(resolution) ?? 0) + extra);
      }
    }
    let best: number | undefined;
    for (const [resolution, count] of added) {
      if (best === undefined || count > (added.get(best) as number)) best = resolution;
    }
    return best;
  };
  const reference = space.units.map((_, u) => unitResolution(rMax, u));
  const scales = new Float64Array(space.resolutions.length * nUnits);
  space.resolutions.forEach((r, i) => {
    for (let u = 0; u < nUnits; u++) {
      const own = unitResolution(r, u);
      const ref = reference[u];
      scales[i * nUnits + u] = own !== undefined && ref ? (own / ref) ** 2 : (r / rMax) ** 2;
    }
  });
  return scales;
}
