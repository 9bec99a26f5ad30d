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
 *   it with a later block changes latency. Blocks after the first have identical shapes in
 *   the OFA spaces, so their order is deliberately not encoded. The paper's plain per-unit
 *   count is the sum of the two sections, which any model can form.
 * - Global features: per-unit depth, total depth, global choices, the resolution and its
 *   square relative to the space's largest resolution.
 * - Area-scaled counts: every count again, multiplied by the area of its unit's feature
 *   map relative to the same at r_max (`unitAreaScales`: about (r / r_max)^2, but following
 *   the rounding of strided resolutions). A block's cost grows with its input area, so
 *   latency ~ sum of counts x cost x area; with these entries a linear model can represent
 *   that interaction directly (left out when the space has a single resolution).
 * - Layer-wise units (FBNet): a skip is one more combination per skip kind (its other
 *   choices mean nothing), counted like a layer, so FCC sees where the skips sit (first
 *   layer of a stage or not); depth features count layers, not slots.
 * - Spaces whose topology holds combinations that unit counts cannot see (a NAS-Bench-201
 *   cell: which ops lie on live paths, which feed which node) append their own
 *   `combinationFeatures` (docs/encodings.md).
 */
import { unitDepth } from '../spaces/subnet.ts';
import type { SearchSpace } from '../spaces/types.ts';
import {
  blockTupleIndex,
  type CompiledUnit,
  combinationLabels,
  compileSpace,
  type FastEncoder,
  globalChoiceIndex,
  makeEncoder,
  resolutionIndex,
  unitAreaScales,
  unitTupleOffset,
} from './layout.ts';

export interface FccOptions {
  /**
   * Append the resolution-scaled copy of every count.
   * @default true when the space has more than one resolution (with one, the copy would
   * repeat the counts exactly)
   */
  readonly resolutionScaled?: boolean;
  /**
   * How counts are scaled: `global` by (r / r_max)^2, `unit` by the unit's own feature-map
   * area relative to r_max (see `unitAreaScales`).
   * @default 'unit'
   */
  readonly scaling?: 'global' | 'unit';
}

export function fccEncoder(space: SearchSpace, options: FccOptions = {}): FastEncoder {
  const { resolutionScaled = space.resolutions.length > 1, scaling = 'unit' } = options;
  const compiled = compileSpace(space);
  const nUnits = space.units.length;
  const areaScales = scaling === 'unit' ? unitAreaScales(space) : undefined;
  const countLabels: string[] = [];
  const unitOffsets: number[] = [];
  space.units.forEach((unit, u) => {
    unitOffsets.push(countLabels.length);
    const tuples = combinationLabels(unit);
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
  if (resolutionScaled) for (const l of countLabels) labels.push(`${l}*area`);
  const extra = space.combinationFeatures;
  const extraOffset = labels.length;
  if (extra) labels.push(...extra.labels);

  return makeEncoder('fcc', compiled, labels, (subnet, out, base) => {
    const ri = resolutionIndex(compiled, subnet);
    const scale = (subnet.resolution / compiled.maxResolution) ** 2;
    let at = base + globalsOffset;
    let total = 0;
    for (let u = 0; u < compiled.units.length; u++) {
      const unit = compiled.units[u] as CompiledUnit;
      const sub = subnet.units[u] as (typeof subnet.units)[number];
      const unitOffset = unitTupleOffset(unit, sub.choices, u);
      const unitScale = areaScales ? (areaScales[ri * nUnits + u] as number) : scale;
      const first = base + (unitOffsets[u] as number);
      const rest = first + unit.combinations;
      const nb = sub.blocks.length;
      for (let slot = 0; slot < nb; slot++) {
        const block = sub.blocks[slot] as (typeof sub.blocks)[number];
        const k = (slot === 0 ? first : rest) + blockTupleIndex(unit, block, unitOffset, u, slot);
        const count = (out[k] as number) + 1;
        out[k] = count;
        // The scaled copy is rewritten with each new count, so only non-zero entries cost
        // anything; the last write is count x scale, as if computed at the end.
        if (resolutionScaled) out[k + scaledOffset] = count * unitScale;
      }
      const layers = unit.skip ? unitDepth(sub) : nb;
      out[at++] = layers;
      total += layers;
    }
    out[at++] = total;
    for (const c of compiled.globalChoices)
      out[at++] = c.values[globalChoiceIndex(c, subnet)] as number;
    out[at++] = subnet.resolution;
    out[at] = scale;
    if (extra) extra.fill(subnet, out, base + extraOffset);
  });
}
