/**
 * Helpers the encoders share: the per-unit feature tuple layout (block choices then unit
 * choices, the order of `blockTuples`) and value-to-index lookups that fail loudly on values
 * outside the space instead of silently encoding garbage.
 */
import { ArchValidationError } from '../errors.ts';
import type { ChoiceDef, SearchSpace, Subnet, UnitDef } from '../spaces/types.ts';
import type { Encoder, EncodingName } from './types.ts';

/** The choices that make up one block's feature tuple in `unit`, in `blockTuples` order. */
export function tupleChoices(unit: UnitDef): readonly ChoiceDef[] {
  return [...unit.blockChoices, ...unit.unitChoices];
}

/** Index of `value` in `choice.values`; throws `ArchValidationError` naming `field`. */
export function choiceIndex(choice: ChoiceDef, value: number | undefined, field: string): number {
  const index = value === undefined ? -1 : choice.values.indexOf(value);
  if (index < 0) {
    throw new ArchValidationError(
      field,
      `got ${value}, allowed values are ${choice.values.join(', ')}`,
    );
  }
  return index;
}

/** Number of distinct feature tuples of a block in `unit` (product of the choice sizes). */
export function combinationCount(unit: UnitDef): number {
  return tupleChoices(unit).reduce((acc, c) => acc * c.values.length, 1);
}

/** Every feature tuple of `unit` in mixed-radix order (the last choice varies fastest). */
export function combinations(unit: UnitDef): number[][] {
  let out: number[][] = [[]];
  for (const choice of tupleChoices(unit)) {
    out = out.flatMap((prefix) => choice.values.map((v) => [...prefix, v]));
  }
  return out;
}

/** Mixed-radix index of a block's feature tuple within its unit's `combinations`. */
export function combinationIndex(unit: UnitDef, values: readonly number[], field: string): number {
  let index = 0;
  tupleChoices(unit).forEach((choice, i) => {
    index =
      index * choice.values.length + choiceIndex(choice, values[i], `${field}.${choice.name}`);
  });
  return index;
}

/** Throws unless the subnet has one entry per unit of the space, within the depth limits. */
export function checkShape(space: SearchSpace, subnet: Subnet): void {
  if (subnet.units.length !== space.units.length) {
    throw new ArchValidationError(
      'units',
      `expected ${space.units.length} units for space ${space.name}, got ${subnet.units.length}`,
    );
  }
  subnet.units.forEach((unit, u) => {
    const def = space.units[u] as UnitDef;
    if (unit.blocks.length < def.minDepth || unit.blocks.length > def.maxDepth) {
      throw new ArchValidationError(
        `units[${u}].depth`,
        `got ${unit.blocks.length}, allowed ${def.minDepth}..${def.maxDepth}`,
      );
    }
  });
  if (!space.resolutions.includes(subnet.resolution)) {
    throw new ArchValidationError(
      'resolution',
      `got ${subnet.resolution}, allowed values are ${space.resolutions.join(', ')}`,
    );
  }
}

/** Largest resolution of the space: the reference for resolution-scaled features. */
export function maxResolution(space: SearchSpace): number {
  return Math.max(...space.resolutions);
}

/**
 * Builds an `Encoder` from a label list and a fill function that writes into a zeroed
 * vector, so each encoding only states its layout.
 */
export function makeEncoder(
  name: EncodingName,
  space: SearchSpace,
  labels: readonly string[],
  fill: (subnet: Subnet, out: Float64Array) => void,
): Encoder {
  return {
    name,
    space,
    length: labels.length,
    labels,
    encode(subnet: Subnet): Float64Array {
      checkShape(space, subnet);
      const out = new Float64Array(labels.length);
      fill(subnet, out);
      return out;
    },
  };
}
