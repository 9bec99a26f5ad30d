/**
 * Feature encoding: the raw value of every block choice, slot by slot up to each unit's
 * maximum depth (0 for an inactive slot), then per unit its unit choices and its depth,
 * then the global choices and the resolution. The per-unit depth is there because a choice
 * value may itself be 0 in a user-defined space, which would make an inactive slot and an
 * active one indistinguishable. In a layer-wise unit a skip slot has only its `skip` kind,
 * and the unit's depth is its number of layers (non-skips).
 */
import { unitDepth } from '../spaces/subnet.ts';
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

export function featureEncoder(space: SearchSpace): FastEncoder {
  const compiled = compileSpace(space);
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

  return makeEncoder('feature', compiled, labels, (subnet, out, base) => {
    for (let u = 0; u < compiled.units.length; u++) {
      const unit = compiled.units[u] as CompiledUnit;
      const sub = subnet.units[u] as (typeof subnet.units)[number];
      const slotWidth = unit.blockChoices.length;
      let at = base + (unitOffsets[u] as number);
      for (let slot = 0; slot < sub.blocks.length; slot++) {
        const block = sub.blocks[slot] as (typeof sub.blocks)[number];
        const skipped = unit.skip !== undefined && blockChoiceIndex(unit.skip, block, u, slot) > 0;
        for (let i = 0; i < slotWidth; i++) {
          const c = unit.blockChoices[i] as (typeof unit.blockChoices)[number];
          // A skip's other choices stay 0, like an inactive slot's.
          if (skipped && c !== unit.skip) continue;
          out[at + slot * slotWidth + i] = c.values[blockChoiceIndex(c, block, u, slot)] as number;
        }
      }
      at += unit.def.maxDepth * slotWidth;
      for (const c of unit.unitChoices)
        out[at++] = c.values[unitChoiceIndex(c, sub.choices, u)] as number;
      out[at] = unitDepth(sub);
    }
    let at = base + globalsOffset;
    for (const c of compiled.globalChoices)
      out[at++] = c.values[globalChoiceIndex(c, subnet)] as number;
    resolutionIndex(compiled, subnet);
    out[at] = subnet.resolution;
  });
}
