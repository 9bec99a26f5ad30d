/**
 * One-hot encoding: for every block slot of every unit (up to the unit's maximum depth) a
 * one-hot of each block choice, all zeros for an inactive slot; then a one-hot of each unit
 * choice, of each global choice and of the resolution. Depth is implicit (an active slot
 * has exactly one 1 per choice). A skip slot of a layer-wise unit has only its `skip` kind set.
 */
import type { SearchSpace } from '../spaces/types.ts';
import {
  blockChoiceIndex,
  type CompiledUnit,
  compileSpace,
  type FastEncoder,
  globalChoiceIndex,
  makeEncoder,
  resolutionIndex,
  unitChoiceIndex,
} from './layout.ts';

export function onehotEncoder(space: SearchSpace): FastEncoder {
  const compiled = compileSpace(space);
  const labels: string[] = [];
  const unitOffsets: number[] = [];
  const slotWidths: number[] = [];
  space.units.forEach((unit, u) => {
    unitOffsets.push(labels.length);
    slotWidths.push(unit.blockChoices.reduce((acc, c) => acc + c.values.length, 0));
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

  return makeEncoder('onehot', compiled, labels, (subnet, out, base) => {
    for (let u = 0; u < compiled.units.length; u++) {
      const unit = compiled.units[u] as CompiledUnit;
      const sub = subnet.units[u] as (typeof subnet.units)[number];
      const slotWidth = slotWidths[u] as number;
      let at = base + (unitOffsets[u] as number);
      for (let slot = 0; slot < sub.blocks.length; slot++) {
        const block = sub.blocks[slot] as (typeof sub.blocks)[number];
        const skipped = unit.skip !== undefined && blockChoiceIndex(unit.skip, block, u, slot) > 0;
        let choiceAt = at + slot * slotWidth;
        for (const c of unit.blockChoices) {
          // A skip's other choices mean nothing: only its skip kind is set.
          if (!skipped || c === unit.skip) out[choiceAt + blockChoiceIndex(c, block, u, slot)] = 1;
          choiceAt += c.values.length;
        }
      }
      at += unit.def.maxDepth * slotWidth;
      for (const c of unit.unitChoices) {
        out[at + unitChoiceIndex(c, sub.choices, u)] = 1;
        at += c.values.length;
      }
    }
    let at = base + globalsOffset;
    for (const c of compiled.globalChoices) {
      out[at + globalChoiceIndex(c, subnet)] = 1;
      at += c.values.length;
    }
    out[base + resolutionOffset + resolutionIndex(compiled, subnet)] = 1;
  });
}
