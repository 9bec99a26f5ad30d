/**
 * One-hot encoding: for every block slot of every unit (up to the unit's maximum depth) a
 * one-hot of each block choice, all zeros for an inactive slot; then a one-hot of each unit
 * choice, of each global choice and of the resolution. Depth is implicit (an active slot
 * has exactly one 1 per choice).
 */
import type { SearchSpace, UnitDef } from '../spaces/types.ts';
import { choiceIndex, makeEncoder } from './layout.ts';
import type { Encoder } from './types.ts';

export function onehotEncoder(space: SearchSpace): Encoder {
  const labels: string[] = [];
  const unitOffsets: number[] = [];
  space.units.forEach((unit, u) => {
    unitOffsets.push(labels.length);
    for (let slot = 0; slot < unit.maxDepth; slot++) {
      for (const c of unit.blockChoices) {
        for (const v of c.values) labels.push(`u${u}.b${slot}.${c.name}=${v}`);
      }
    }
    for (const c of unit.unitChoices) {
      for (const v of c.values) labels.push(`u${u}.${c.name}=${v}`);
    }
  });
  const globalsOffset = labels.length;
  for (const c of space.globalChoices) {
    for (const v of c.values) labels.push(`${c.name}=${v}`);
  }
  const resolutionOffset = labels.length;
  for (const r of space.resolutions) labels.push(`resolution=${r}`);

  return makeEncoder('onehot', space, labels, (subnet, out) => {
    subnet.units.forEach((unit, u) => {
      const def = space.units[u] as UnitDef;
      let offset = unitOffsets[u] as number;
      const slotWidth = def.blockChoices.reduce((acc, c) => acc + c.values.length, 0);
      unit.blocks.forEach((block, slot) => {
        let at = offset + slot * slotWidth;
        for (const c of def.blockChoices) {
          out[at + choiceIndex(c, block[c.name], `units[${u}].blocks[${slot}].${c.name}`)] = 1;
          at += c.values.length;
        }
      });
      offset += def.maxDepth * slotWidth;
      for (const c of def.unitChoices) {
        out[offset + choiceIndex(c, unit.choices[c.name], `units[${u}].${c.name}`)] = 1;
        offset += c.values.length;
      }
    });
    let at = globalsOffset;
    for (const c of space.globalChoices) {
      out[at + choiceIndex(c, subnet.globals[c.name], `globals.${c.name}`)] = 1;
      at += c.values.length;
    }
    out[resolutionOffset + choiceIndex(resolutionChoice(space), subnet.resolution, 'resolution')] =
      1;
  });
}

function resolutionChoice(space: SearchSpace) {
  return { name: 'resolution', values: space.resolutions };
}
