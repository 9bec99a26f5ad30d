/**
 * FCC (Feature Combination Count), the ESM paper's encoding: for every unit, how many of its
 * active blocks use each combination of the block's features (block choices and the unit's
 * own choices, e.g. kernel x expand = 9 combinations in OFA MobileNetV3).
 *
 * Choices made here (the paper is silent on them; docs/encodings.md gives the reasoning):
 * - Counts are per unit, not global: a block's latency depends on its unit's width and
 *   input resolution, so a (kernel 7, expand 6) block costs very different amounts in
 *   unit 1 and unit 5; global counts would merge them.
 * - A unit's first block is counted apart from the others: it changes the stride and the
 *   channel count, so its cost differs from the same tuple later in the unit, and swapping
 *   it with a later block changes latency. Blocks after the first have identical shapes, so
 *   their order carries no latency information and is deliberately not encoded. The
 *   paper's plain per-unit count is the sum of the two sections, which any model can form.
 * - Global features: per-unit depth, total depth, global choices, the resolution and its
 *   square relative to the space's largest resolution.
 * - Resolution-scaled counts: every count again, multiplied by (r / r_max)^2. A block's
 *   cost grows with its input area, so latency ~ sum of counts x cost x (r / r_max)^2;
 *   with these entries a linear model can represent that interaction directly.
 */
import type { SearchSpace, UnitDef } from '../spaces/types.ts';
import {
  choiceIndex,
  combinationCount,
  combinationIndex,
  combinations,
  makeEncoder,
  maxResolution,
  tupleChoices,
} from './layout.ts';
import type { Encoder } from './types.ts';

export interface FccOptions {
  /**
   * Append the resolution-scaled copy of every count.
   * @default true
   */
  readonly resolutionScaled?: boolean;
}

export function fccEncoder(space: SearchSpace, options: FccOptions = {}): Encoder {
  const { resolutionScaled = true } = options;
  const rMax = maxResolution(space);
  const countLabels: string[] = [];
  const unitOffsets: number[] = [];
  space.units.forEach((unit, u) => {
    unitOffsets.push(countLabels.length);
    const names = tupleChoices(unit).map((c) => c.name);
    const tuples = combinations(unit).map((t) => t.map((v, i) => `${names[i]}=${v}`).join(','));
    for (const section of ['first', 'rest']) {
      for (const t of tuples) countLabels.push(`u${u}.${section}.${t}`);
    }
  });
  const labels = [...countLabels];
  const globalsOffset = labels.length;
  for (let u = 0; u < space.units.length; u++) labels.push(`u${u}.depth`);
  labels.push('depth');
  for (const c of space.globalChoices) labels.push(c.name);
  labels.push('resolution', 'resolution_sq');
  const scaledOffset = labels.length;
  if (resolutionScaled) for (const l of countLabels) labels.push(`${l}*res_sq`);

  return makeEncoder('fcc', space, labels, (subnet, out) => {
    const scale = (subnet.resolution / rMax) ** 2;
    let at = globalsOffset;
    let total = 0;
    subnet.units.forEach((unit, u) => {
      const def = space.units[u] as UnitDef;
      const offset = unitOffsets[u] as number;
      const unitValues = def.unitChoices.map((c) => {
        const value = unit.choices[c.name];
        choiceIndex(c, value, `units[${u}].${c.name}`);
        return value as number;
      });
      unit.blocks.forEach((block, slot) => {
        const values = [...def.blockChoices.map((c) => block[c.name] as number), ...unitValues];
        const index = combinationIndex(def, values, `units[${u}].blocks[${slot}]`);
        const section = slot === 0 ? 0 : combinationCount(def);
        out[offset + section + index] = (out[offset + section + index] as number) + 1;
      });
      out[at++] = unit.blocks.length;
      total += unit.blocks.length;
    });
    out[at++] = total;
    for (const c of space.globalChoices) {
      const value = subnet.globals[c.name];
      choiceIndex(c, value, `globals.${c.name}`);
      out[at++] = value as number;
    }
    out[at++] = subnet.resolution;
    out[at] = scale;
    if (resolutionScaled) {
      for (let i = 0; i < countLabels.length; i++)
        out[scaledOffset + i] = (out[i] as number) * scale;
    }
  });
}
