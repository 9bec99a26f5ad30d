/**
 * Feature encoding: the raw value of every block choice, slot by slot up to each unit's
 * maximum depth (0 for an inactive slot), then per unit its unit choices and its depth,
 * then the global choices and the resolution. The per-unit depth is there because a choice
 * value may itself be 0 in a user-defined space, which would make an inactive slot and an
 * active one indistinguishable.
 */
import type { SearchSpace, UnitDef } from '../spaces/types.ts';
import { choiceIndex, makeEncoder } from './layout.ts';
import type { Encoder } from './types.ts';

export function featureEncoder(space: SearchSpace): Encoder {
  const labels: string[] = [];
  const unitOffsets: number[] = [];
  space.units.forEach((unit, u) => {
    unitOffsets.push(labels.length);
    for (let slot = 0; slot < unit.maxDepth; slot++) {
      for (const c of unit.blockChoices) labels.push(`u${u}.b${slot}.${c.name}`);
    }
    for (const c of unit.unitChoices) labels.push(`u${u}.${c.name}`);
    labels.push(`u${u}.depth`);
  });
  const globalsOffset = labels.length;
  for (const c of space.globalChoices) labels.push(c.name);
  labels.push('resolution');

  return makeEncoder('feature', space, labels, (subnet, out) => {
    subnet.units.forEach((unit, u) => {
      const def = space.units[u] as UnitDef;
      const offset = unitOffsets[u] as number;
      const slotWidth = def.blockChoices.length;
      unit.blocks.forEach((block, slot) => {
        def.blockChoices.forEach((c, i) => {
          const value = block[c.name];
          choiceIndex(c, value, `units[${u}].blocks[${slot}].${c.name}`);
          out[offset + slot * slotWidth + i] = value as number;
        });
      });
      let at = offset + def.maxDepth * slotWidth;
      for (const c of def.unitChoices) {
        const value = unit.choices[c.name];
        choiceIndex(c, value, `units[${u}].${c.name}`);
        out[at++] = value as number;
      }
      out[at] = unit.blocks.length;
    });
    let at = globalsOffset;
    for (const c of space.globalChoices) {
      const value = subnet.globals[c.name];
      choiceIndex(c, value, `globals.${c.name}`);
      out[at++] = value as number;
    }
    out[at] = subnet.resolution;
  });
}
