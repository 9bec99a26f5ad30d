/**
 * Space-independent operations on normalised subnets: depth, cardinality, uniform and
 * depth-conditioned sampling, per-block feature tuples and canonical keys.
 */
import { ArchValidationError } from '../errors.ts';
import { type Rng, shuffled } from '../rng.ts';
import {
  type ChoiceDef,
  type SearchSpace,
  SKIP_CHOICE,
  type Subnet,
  type SubnetUnit,
  type UnitDef,
} from './types.ts';

/** True for a non-layer block of a layer-wise unit (`skip` > 0; see types.ts). */
export function isSkip(block: Readonly<Record<string, number>>): boolean {
  return (block[SKIP_CHOICE] ?? 0) > 0;
}

/** The layers of a unit: its blocks that are not skips. */
export function unitDepth(unit: SubnetUnit): number {
  let n = 0;
  for (const block of unit.blocks) if (!isSkip(block)) n += 1;
  return n;
}

/**
 * Number of layers (active blocks that are not skips): the quantity ESM bins on. In units of
 * trailing depth every active block is a layer, so this is the number of active blocks.
 */
export function depth(subnet: Subnet): number {
  let total = 0;
  for (const unit of subnet.units) total += unitDepth(unit);
  return total;
}

/** The `skip` choice of a layer-wise unit; undefined for a unit of trailing depth. */
export function skipChoice(unit: UnitDef): ChoiceDef | undefined {
  return unit.blockChoices.find((c) => c.name === SKIP_CHOICE);
}

/** Kinds of non-layer a slot of `unit` can hold (0 for units without a skip choice). */
export function skipKinds(unit: UnitDef): number {
  return Math.max(0, (skipChoice(unit)?.values.length ?? 1) - 1);
}

/** The range of a unit's layer count: from 0 when every slot may be a skip. */
export function unitDepthRange(unit: UnitDef): { min: number; max: number } {
  return { min: skipKinds(unit) > 0 ? 0 : unit.minDepth, max: unit.maxDepth };
}

export function depthRange(space: SearchSpace): { min: number; max: number } {
  let min = 0;
  let max = 0;
  for (const unit of space.units) {
    const range = unitDepthRange(unit);
    min += range.min;
    max += range.max;
  }
  return { min, max };
}

const product = (choices: readonly ChoiceDef[]): bigint =>
  choices.reduce((acc, c) => acc * BigInt(c.values.length), 1n);

/** Configurations of one layer of `unit` (all block choices but `skip`). */
function layerConfigs(unit: UnitDef): bigint {
  const skip = skipChoice(unit);
  return product(unit.blockChoices.filter((c) => c !== skip));
}

function binomial(n: number, k: number): bigint {
  let out = 1n;
  for (let i = 1; i <= k; i++) out = (out * BigInt(n - k + i)) / BigInt(i);
  return out;
}

/**
 * Configurations of one unit with exactly `k` layers: over the slot counts s it allows,
 * C(s, k) placements x layer configurations^k x skip kinds^(s - k). Without skip kinds only
 * s = k contributes, i.e. block configurations^k.
 */
function unitCount(unit: UnitDef, k: number): bigint {
  const layer = layerConfigs(unit);
  const skips = BigInt(skipKinds(unit));
  let sum = 0n;
  for (let s = Math.max(k, unit.minDepth); s <= unit.maxDepth; s++) {
    sum += binomial(s, k) * layer ** BigInt(k) * skips ** BigInt(s - k);
  }
  return product(unit.unitChoices) * sum;
}

/**
 * Exact number of distinct subnets.
 * @param options.includeResolution count the elastic resolution too (default true)
 */
export function cardinality(
  space: SearchSpace,
  options: { includeResolution?: boolean } = {},
): bigint {
  const { includeResolution = true } = options;
  let total = product(space.globalChoices);
  if (includeResolution) total *= BigInt(space.resolutions.length);
  for (const unit of space.units) {
    const range = unitDepthRange(unit);
    let sum = 0n;
    for (let d = range.min; d <= range.max; d++) sum += unitCount(unit, d);
    total *= sum;
  }
  return total;
}

/** log10 of a positive bigint, accurate to double precision. */
export function log10BigInt(n: bigint): number {
  const digits = n.toString();
  const head = Number(digits.slice(0, 17));
  return Math.log10(head) + (digits.length - Math.min(17, digits.length));
}

function pickChoices(choices: readonly ChoiceDef[], rng: Rng): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of choices) out[c.name] = rng.pick(c.values);
  return out;
}

function buildUnit(unit: UnitDef, d: number, rng: Rng): SubnetUnit {
  const blocks: Record<string, number>[] = [];
  for (let i = 0; i < d; i++) blocks.push(pickChoices(unit.blockChoices, rng));
  return { choices: pickChoices(unit.unitChoices, rng), blocks };
}

/** A layer (skip 0) with every other block choice uniform. */
function pickLayer(unit: UnitDef, rng: Rng): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of unit.blockChoices) out[c.name] = c.name === SKIP_CHOICE ? 0 : rng.pick(c.values);
  return out;
}

/** The normal form of a non-layer of kind `kind` (> 0): every other choice at its first value. */
export function skipBlock(unit: UnitDef, kind: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of unit.blockChoices) {
    out[c.name] = c.name === SKIP_CHOICE ? kind : (c.values[0] as number);
  }
  return out;
}

/** A layer-wise unit of `slots` slots where each slot is uniform over its configurations. */
function randomLayerwiseUnit(unit: UnitDef, slots: number, rng: Rng): SubnetUnit {
  const layer = Number(layerConfigs(unit));
  const kinds = skipKinds(unit);
  const blocks: Record<string, number>[] = [];
  for (let i = 0; i < slots; i++) {
    const r = rng.int(layer + kinds);
    blocks.push(r < layer ? pickLayer(unit, rng) : skipBlock(unit, r - layer + 1));
  }
  return { choices: pickChoices(unit.unitChoices, rng), blocks };
}

/** A layer-wise unit with exactly `k` layers, uniform over such configurations. */
function layerwiseUnitWithDepth(unit: UnitDef, k: number, rng: Rng): SubnetUnit {
  const layer = Number(layerConfigs(unit));
  const kinds = skipKinds(unit);
  const lo = Math.max(k, unit.minDepth);
  let slots = lo;
  if (unit.maxDepth > lo) {
    const weights: number[] = [];
    for (let s = lo; s <= unit.maxDepth; s++) {
      weights.push(Number(binomial(s, k)) * layer ** k * kinds ** (s - k));
    }
    slots = lo + pickWeightedIndex(weights, rng);
  }
  const layerSlots = new Set(
    shuffled(
      Array.from({ length: slots }, (_, i) => i),
      rng,
    ).slice(0, k),
  );
  const blocks: Record<string, number>[] = [];
  for (let i = 0; i < slots; i++) {
    blocks.push(
      layerSlots.has(i) ? pickLayer(unit, rng) : skipBlock(unit, 1 + rng.int(Math.max(1, kinds))),
    );
  }
  return { choices: pickChoices(unit.unitChoices, rng), blocks };
}

function pickWeightedIndex(weights: readonly number[], rng: Rng): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let r = rng.next() * total;
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i] as number;
    if (r < 0) return i;
  }
  return weights.length - 1;
}

/**
 * The paper's "random" sampling: depths, choices and resolution uniform per choice. A slot of
 * a layer-wise unit is uniform over its configurations (FBNet: each of the 9 ops 1/9), so
 * such spaces are sampled uniformly.
 */
export function randomSubnet(space: SearchSpace, rng: Rng): Subnet {
  return {
    resolution: rng.pick(space.resolutions),
    globals: pickChoices(space.globalChoices, rng),
    units: space.units.map((unit) => {
      const slots = unit.minDepth + rng.int(unit.maxDepth - unit.minDepth + 1);
      return skipKinds(unit) > 0
        ? randomLayerwiseUnit(unit, slots, rng)
        : buildUnit(unit, slots, rng);
    }),
  };
}

/**
 * Distribution of a unit's layer count under `randomSubnet`, index i = probability of
 * `unitDepthRange(unit).min + i`: uniform for units of trailing depth, a mixture of binomials
 * over the slot counts for layer-wise units.
 */
export function unitDepthDistribution(unit: UnitDef): number[] {
  const range = unitDepthRange(unit);
  const width = unit.maxDepth - unit.minDepth + 1;
  const out = new Array(range.max - range.min + 1).fill(0);
  if (skipKinds(unit) === 0) {
    for (let d = unit.minDepth; d <= unit.maxDepth; d++) out[d - range.min] = 1 / width;
    return out;
  }
  const layer = Number(layerConfigs(unit));
  const p = layer / (layer + skipKinds(unit));
  for (let s = unit.minDepth; s <= unit.maxDepth; s++) {
    for (let k = 0; k <= s; k++) {
      out[k - range.min] += (Number(binomial(s, k)) * p ** k * (1 - p) ** (s - k)) / width;
    }
  }
  return out;
}

interface DepthTables {
  /** ways[u][d]: configurations of units u.. with d blocks in total, each row scaled to max 1. */
  readonly ways: readonly (readonly number[])[];
  /** counts[u][k]: configurations of unit u with k blocks, as floats. */
  readonly counts: readonly (readonly number[])[];
}

// Spaces are immutable, so the tables are computed once per space (balanced sampling calls
// subnetWithDepth thousands of times).
const depthTableCache = new WeakMap<SearchSpace, DepthTables>();

function depthTables(space: SearchSpace): DepthTables {
  const cached = depthTableCache.get(space);
  if (cached) return cached;
  const range = depthRange(space);
  const n = space.units.length;
  const counts = space.units.map((unit) => {
    const row: number[] = [];
    const min = unitDepthRange(unit).min;
    for (let k = 0; k <= unit.maxDepth; k++) row.push(k < min ? 0 : Number(unitCount(unit, k)));
    return row;
  });
  const ways: number[][] = Array.from({ length: n + 1 }, () => new Array(range.max + 1).fill(0));
  (ways[n] as number[])[0] = 1;
  for (let u = n - 1; u >= 0; u--) {
    const unit = space.units[u] as UnitDef;
    const row = ways[u] as number[];
    const next = ways[u + 1] as number[];
    const min = unitDepthRange(unit).min;
    for (let d = 0; d <= range.max; d++) {
      let sum = 0;
      for (let k = min; k <= Math.min(unit.maxDepth, d); k++) {
        sum += ((counts[u] as number[])[k] as number) * (next[d - k] ?? 0);
      }
      row[d] = sum;
    }
    // Only ratios within a row matter; rescaling keeps large user spaces from overflowing.
    const max = Math.max(...row);
    if (max > 0) for (let d = 0; d <= range.max; d++) row[d] = (row[d] as number) / max;
  }
  const tables = { ways, counts };
  depthTableCache.set(space, tables);
  return tables;
}

/**
 * A subnet of exactly `totalDepth` layers, uniform over all configurations of that depth:
 * per-unit depths are drawn in proportion to how many configurations each split allows.
 */
export function subnetWithDepth(space: SearchSpace, totalDepth: number, rng: Rng): Subnet {
  const range = depthRange(space);
  if (!Number.isInteger(totalDepth) || totalDepth < range.min || totalDepth > range.max) {
    throw new ArchValidationError(
      'depth',
      `${totalDepth} is outside the depth range ${range.min}..${range.max} of space ${space.name}`,
    );
  }
  const n = space.units.length;
  const { ways, counts } = depthTables(space);
  const units: SubnetUnit[] = [];
  let remaining = totalDepth;
  for (let u = 0; u < n; u++) {
    const unit = space.units[u] as UnitDef;
    const next = ways[u + 1] as number[];
    const min = unitDepthRange(unit).min;
    const weights: number[] = [];
    for (let k = min; k <= unit.maxDepth; k++) {
      const count = (counts[u] as number[])[k] as number;
      weights.push(k <= remaining ? count * (next[remaining - k] ?? 0) : 0);
    }
    const total = weights.reduce((a, b) => a + b, 0);
    let r = rng.next() * total;
    let k = min;
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i] as number;
      if (r < 0 || i === weights.length - 1) {
        k = min + i;
        if ((weights[i] as number) > 0) break;
      }
    }
    units.push(
      skipKinds(unit) > 0 ? layerwiseUnitWithDepth(unit, k, rng) : buildUnit(unit, k, rng),
    );
    remaining -= k;
  }
  return {
    resolution: rng.pick(space.resolutions),
    globals: pickChoices(space.globalChoices, rng),
    units,
  };
}

/** One active block's features: block choices then unit choices, in the space's name order. */
export interface BlockTuple {
  readonly unit: number;
  readonly position: number;
  readonly values: readonly number[];
}

export function blockTuples(space: SearchSpace, subnet: Subnet): BlockTuple[] {
  const out: BlockTuple[] = [];
  subnet.units.forEach((unit, u) => {
    unit.blocks.forEach((block, position) => {
      const values = [
        ...space.blockChoiceNames.map((name) => block[name] as number),
        ...space.unitChoiceNames.map((name) => unit.choices[name] as number),
      ];
      out.push({ unit: u, position, values });
    });
  });
  return out;
}

/** Canonical string of a subnet: equal keys iff the same network (inactive values ignored). */
export function subnetKey(subnet: Subnet): string {
  const sorted = (o: Readonly<Record<string, number>>) =>
    Object.keys(o)
      .sort()
      .map((k) => `${k}=${o[k]}`)
      .join(',');
  const units = subnet.units
    .map((u) => `${sorted(u.choices)}|${u.blocks.map((b) => sorted(b)).join(';')}`)
    .join('/');
  return `r=${subnet.resolution}#${sorted(subnet.globals)}#${units}`;
}

/** Throws `ArchValidationError` unless `value` is one of `allowed`. */
export function checkChoice(field: string, value: unknown, allowed: readonly number[]): number {
  if (typeof value !== 'number' || !allowed.includes(value)) {
    throw new ArchValidationError(
      field,
      `got ${JSON.stringify(value)}, allowed values are ${allowed.join(', ')}`,
    );
  }
  return value;
}

/** Throws `ArchValidationError` unless `value` is an array of numbers of length `length`. */
export function checkNumberArray(field: string, value: unknown, length: number): number[] {
  if (
    !Array.isArray(value) ||
    value.length !== length ||
    value.some((v) => typeof v !== 'number')
  ) {
    throw new ArchValidationError(
      field,
      `expected an array of ${length} numbers, got ${JSON.stringify(value)?.slice(0, 80)}`,
    );
  }
  return value as number[];
}

/**
 * The resolution of a native arch. OFA's own tools write it as `"r": [224]` (ArchManager) or
 * `"image_size": 224` (ResNetArchEncoder), so a one-element list and the aliases given in
 * `keys` are accepted too.
 * @param options.keys accepted field names, first is canonical (default ['r'])
 * @param options.fallback used when no key is present (default: the field is required)
 */
export function checkResolution(
  arch: Record<string, unknown>,
  allowed: readonly number[],
  options: { keys?: readonly string[]; fallback?: number } = {},
): number {
  const { keys = ['r'], fallback } = options;
  const present = keys.filter((k) => arch[k] !== undefined);
  if (present.length > 1) {
    throw new ArchValidationError(present[1] as string, `give the resolution once, as ${keys[0]}`);
  }
  const key = present[0] ?? (keys[0] as string);
  let value = present.length ? arch[key] : fallback;
  if (Array.isArray(value) && value.length === 1) value = value[0];
  return checkChoice(key, value, allowed);
}

/** Throws unless `native` is a plain object. */
export function checkObject(native: unknown, spaceName: string): Record<string, unknown> {
  if (typeof native !== 'object' || native === null || Array.isArray(native)) {
    throw new ArchValidationError(
      'arch',
      `expected a JSON object describing a ${spaceName} architecture, got ${JSON.stringify(native)?.slice(0, 80)}`,
    );
  }
  return native as Record<string, unknown>;
}
