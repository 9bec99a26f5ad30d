/**
 * Statistical encoding: per model, the mean, standard deviation (population), minimum and
 * maximum of each block feature over all active blocks, then the same four statistics per
 * unit for each block choice, each unit's unit choices and depth, the total depth, the
 * global choices and the resolution. A unit without active blocks contributes zeros.
 *
 * It collides by design, in two ways (tested): blocks of a unit in a different order give
 * the same vector, and so do re-pairings of features within a unit, e.g. blocks
 * (kernel 3, expand 3) + (kernel 7, expand 6) and (kernel 3, expand 6) + (kernel 7, expand 3)
 * share every per-feature statistic. It compresses away which features occur together,
 * which is the weakness the paper's FCC encoding addresses.
 */
import type { SearchSpace, UnitDef } from '../spaces/types.ts';
import { choiceIndex, makeEncoder, tupleChoices } from './layout.ts';
import type { Encoder } from './types.ts';

const STATS = ['mean', 'std', 'min', 'max'] as const;

function writeStats(values: readonly number[], out: Float64Array, at: number): void {
  if (values.length === 0) return;
  let sum = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = sum / values.length;
  let sq = 0;
  for (const v of values) sq += (v - mean) ** 2;
  out[at] = mean;
  out[at + 1] = Math.sqrt(sq / values.length);
  out[at + 2] = min;
  out[at + 3] = max;
}

export function statisticalEncoder(space: SearchSpace): Encoder {
  const featureNames = [...space.blockChoiceNames, ...space.unitChoiceNames];
  const labels: string[] = [];
  for (const f of featureNames) for (const s of STATS) labels.push(`all.${f}.${s}`);
  const unitOffsets: number[] = [];
  space.units.forEach((unit, u) => {
    unitOffsets.push(labels.length);
    for (const c of unit.blockChoices) for (const s of STATS) labels.push(`u${u}.${c.name}.${s}`);
    for (const c of unit.unitChoices) labels.push(`u${u}.${c.name}`);
    labels.push(`u${u}.depth`);
  });
  const globalsOffset = labels.length;
  labels.push('depth');
  for (const c of space.globalChoices) labels.push(c.name);
  labels.push('resolution');

  return makeEncoder('statistical', space, labels, (subnet, out) => {
    const all: number[][] = featureNames.map(() => []);
    subnet.units.forEach((unit, u) => {
      const def = space.units[u] as UnitDef;
      const choices = tupleChoices(def);
      const perFeature: number[][] = choices.map(() => []);
      unit.blocks.forEach((block, slot) => {
        choices.forEach((c, i) => {
          const isUnitChoice = i >= def.blockChoices.length;
          const value = isUnitChoice ? unit.choices[c.name] : block[c.name];
          const field = isUnitChoice
            ? `units[${u}].${c.name}`
            : `units[${u}].blocks[${slot}].${c.name}`;
          choiceIndex(c, value, field);
          (perFeature[i] as number[]).push(value as number);
          (all[i] as number[]).push(value as number);
        });
      });
      let at = unitOffsets[u] as number;
      def.blockChoices.forEach((_, i) => {
        writeStats(perFeature[i] as number[], out, at);
        at += STATS.length;
      });
      for (const c of def.unitChoices) {
        const value = unit.choices[c.name];
        choiceIndex(c, value, `units[${u}].${c.name}`);
        out[at++] = value as number;
      }
      out[at] = unit.blocks.length;
    });
    all.forEach((values, i) => {
      writeStats(values, out, i * STATS.length);
    });
    let at = globalsOffset;
    out[at++] = subnet.units.reduce((acc, unit) => acc + unit.blocks.length, 0);
    for (const c of space.globalChoices) {
      const value = subnet.globals[c.name];
      choiceIndex(c, value, `globals.${c.name}`);
      out[at++] = value as number;
    }
    out[at] = subnet.resolution;
  });
}
