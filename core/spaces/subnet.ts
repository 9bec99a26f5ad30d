/**
 * Space-independent operations on normalised subnets: depth, cardinality, uniform and
 * depth-conditioned sampling, per-block feature tuples and canonical keys.
 */
import { ArchValidationError } from '../errors.ts';
import type { Rng } from '../rng.ts';
import type { ChoiceDef, SearchSpace, Subnet, SubnetUnit, UnitDef } from './types.ts';

/** Number of active blocks: the quantity ESM bins on. */
export function depth(subnet: Subnet): number {
  let total = 0;
  for (const unit of subnet.units) total += unit.blocks.length;
  return total;
}

export function depthRange(space: SearchSpace): { min: number; max: number } {
  let min = 0;
  let max = 0;
  for (const unit of space.units) {
    min += unit.minDepth;
    max += unit.maxDepth;
  }
  return { min, max };
}

const product = (choices: readonly ChoiceDef[]): bigint =>
  choices.reduce((acc, c) => acc * BigInt(c.values.length), 1n);

/** Configurations of one unit with exactly `d` blocks. */
function unitCount(unit: UnitDef, d: number): bigint {
  return product(unit.unitChoices) * product(unit.blockChoices) ** BigInt(d);
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
    let sum = 0n;
    for (let d = unit.minDepth; d <= unit.maxDepth; d++) sum += unitCount(unit, d);
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

/** Uniform per choice (the paper's "random" sampling): depths, choices and resolution. */
export function randomSubnet(space: SearchSpace, rng: Rng): Subnet {
  return {
    resolution: rng.pick(space.resolutions),
    globals: pickChoices(space.globalChoices, rng),
    units: space.units.map((unit) =>
      buildUnit(unit, unit.minDepth + rng.int(unit.maxDepth - unit.minDepth + 1), rng),
    ),
  };
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
    for (let k = 0; k <= unit.maxDepth; k++) {
      row.push(k < unit.minDepth ? 0 : Number(unitCount(unit, k)));
    }
    return row;
  });
  const ways: number[][] = Array.from({ length: n + 1 }, () => new Array(range.max + 1).fill(0));
  (ways[n] as number[])[0] = 1;
  for (let u = n - 1; u >= 0; u--) {
    const unit = space.units[u] as UnitDef;
    const row = ways[u] as number[];
    const next = ways[u + 1] as number[];
    for (let d = 0; d <= range.max; d++) {
      let sum = 0;
      for (let k = unit.minDepth; k <= Math.min(unit.maxDepth, d); k++) {
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
 * A subnet of exactly `totalDepth` blocks, uniform over all configurations of that depth:
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
    const weights: number[] = [];
    for (let k = unit.minDepth; k <= unit.maxDepth; k++) {
      const count = (counts[u] as number[])[k] as number;
      weights.push(k <= remaining ? count * (next[remaining - k] ?? 0) : 0);
    }
    const total = weights.reduce((a, b) => a + b, 0);
    let r = rng.next() * total;
    let k = unit.minDepth;
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i] as number;
      if (r < 0 || i === weights.length - 1) {
        k = unit.minDepth + i;
        if ((weights[i] as number) > 0) break;
      }
    }
    units.push(buildUnit(unit, k, rng));
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
