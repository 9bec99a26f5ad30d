/**
 * Statistical encoding: per model, the mean, standard deviation (population), minimum and
 * maximum of each block feature over all active blocks, then the same four statistics per
 * unit for each block choice, each unit's unit choices and depth, the total depth, the
 * global choices and the resolution. A unit without active blocks contributes zeros. In a
 * layer-wise unit, a skip slot contributes only its `skip` value (so `skip.mean` is the
 * mean skip kind over all slots), and depth counts layers.
 *
 * It collides by design, in two ways (tested): blocks of a unit in a different order give
 * the same vector, and so do re-pairings of features within a unit, e.g. blocks
 * (kernel 3, expand 3) + (kernel 7, expand 6) and (kernel 3, expand 6) + (kernel 7, expand 3)
 * share every per-feature statistic. It compresses away which features occur together,
 * which is the weakness the paper's FCC encoding addresses.
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
  type Vector,
} from './layout.ts';

const STATS = ['mean', 'std', 'min', 'max'] as const;

/** Running count, sum, sum of squares, min and max, in slots of 5. */
class Moments {
  readonly acc: Float64Array;
  constructor(size: number) {
    this.acc = new Float64Array(size * 5);
  }
  reset(): void {
    for (let k = 0; k < this.acc.length; k += 5) {
      this.acc[k] = 0;
      this.acc[k + 1] = 0;
      this.acc[k + 2] = 0;
      this.acc[k + 3] = Number.POSITIVE_INFINITY;
      this.acc[k + 4] = Number.NEGATIVE_INFINITY;
    }
  }
  add(slot: number, v: number): void {
    const a = this.acc;
    const k = slot * 5;
    a[k] = (a[k] as number) + 1;
    a[k + 1] = (a[k + 1] as number) + v;
    a[k + 2] = (a[k + 2] as number) + v * v;
    if (v < (a[k + 3] as number)) a[k + 3] = v;
    if (v > (a[k + 4] as number)) a[k + 4] = v;
  }
  /** Writes mean, std, min, max of `slot` at `at`; leaves zeros when it saw no value. */
  write(slot: number, out: Vector, at: number): void {
    const a = this.acc;
    const k = slot * 5;
    const n = a[k] as number;
    if (n === 0) return;
    const mean = (a[k + 1] as number) / n;
    out[at] = mean;
    out[at + 1] = Math.sqrt(Math.max(0, (a[k + 2] as number) / n - mean * mean));
    out[at + 2] = a[k + 3] as number;
    out[at + 3] = a[k + 4] as number;
  }
}

export function statisticalEncoder(space: SearchSpace): FastEncoder {
  const compiled = compileSpace(space);
  const featureNames = [...space.blockChoiceNames, ...space.unitChoiceNames];
  const nBlockFeatures = space.blockChoiceNames.length;
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

  const overall = new Moments(featureNames.length);
  const perUnit = new Moments(Math.max(0, ...space.units.map((u) => u.blockChoices.length)));

  return makeEncoder('statistical', compiled, labels, (subnet, out, base) => {
    overall.reset();
    let total = 0;
    for (let u = 0; u < compiled.units.length; u++) {
      const unit = compiled.units[u] as CompiledUnit;
      const sub = subnet.units[u] as (typeof subnet.units)[number];
      perUnit.reset();
      const nb = unitDepth(sub);
      for (let slot = 0; slot < sub.blocks.length; slot++) {
        const block = sub.blocks[slot] as (typeof sub.blocks)[number];
        const skipped = unit.skip !== undefined && blockChoiceIndex(unit.skip, block, u, slot) > 0;
        for (let i = 0; i < unit.blockChoices.length; i++) {
          const c = unit.blockChoices[i] as (typeof unit.blockChoices)[number];
          // A skip's other choices are no feature of any layer; its skip kind is.
          if (skipped && c !== unit.skip) continue;
          const v = c.values[blockChoiceIndex(c, block, u, slot)] as number;
          perUnit.add(i, v);
          overall.add(i, v);
        }
      }
      let at = base + (unitOffsets[u] as number);
      for (let i = 0; i < unit.blockChoices.length; i++) {
        perUnit.write(i, out, at);
        at += STATS.length;
      }
      for (let j = 0; j < unit.unitChoices.length; j++) {
        const c = unit.unitChoices[j] as (typeof unit.unitChoices)[number];
        const v = c.values[unitChoiceIndex(c, sub.choices, u)] as number;
        out[at++] = v;
        // A unit choice applies to each of the unit's blocks, so it is weighted by depth.
        for (let k = 0; k < nb; k++) overall.add(nBlockFeatures + j, v);
      }
      out[at] = nb;
      total += nb;
    }
    for (let f = 0; f < featureNames.length; f++) overall.write(f, out, base + f * STATS.length);
    let at = base + globalsOffset;
    out[at++] = total;
    for (const c of compiled.globalChoices)
      out[at++] = c.values[globalChoiceIndex(c, subnet)] as number;
    resolutionIndex(compiled, subnet);
    out[at] = subnet.resolution;
  });
}
