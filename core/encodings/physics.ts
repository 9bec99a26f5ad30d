/**
 * Physics encoding: what the network costs to run, counted from its layer graph
 * (`graphCost`, core/spaces/cost.ts), so it works for every space that builds a layer graph,
 * spec spaces included. Latency on most devices is close to a weighted sum of these counts
 * (each kind of layer runs at its own speed: 1x1 convolutions are matrix multiplications,
 * depthwise ones are memory-bound, and their cost per MAC grows with the kernel), plus a
 * per-layer launch overhead. A linear model on a few of these numbers therefore needs few
 * measurements; FCC adds what they miss (docs/encodings.md).
 *
 * Units keep the entries readable (and models standardise them anyway): MACs and element
 * counts in millions, bytes in MB (float32), counts of layers as is.
 */
import { graphCost, macKinds } from '../spaces/cost.ts';
import type { SearchSpace, Subnet } from '../spaces/types.ts';
import {
  blockChoiceIndex,
  type CompiledChoice,
  type CompiledSpace,
  compileSpace,
  type FastEncoder,
  globalChoiceIndex,
  makeEncoder,
  resolutionIndex,
  unitChoiceIndex,
} from './layout.ts';

const MEGA = 1e-6;

/** Entry names, in order (docs/encodings.md describes each). */
export const physicsLabels: readonly string[] = [
  ...macKinds.map((k) => `macs_${k}`),
  'macs',
  'params',
  'elementwise_ops',
  'activation_mb',
  'peak_activation_mb',
  'weight_mb',
  'input_mb',
  'layers',
  'nodes',
];

/**
 * Every choice value must be one of the space's: a layer graph would happily build a kernel
 * 9 convolution, and the encoding must fail on it like the other encodings do.
 */
function checkValues(compiled: CompiledSpace, subnet: Subnet): void {
  resolutionIndex(compiled, subnet);
  for (const c of compiled.globalChoices) globalChoiceIndex(c, subnet);
  compiled.units.forEach((unit, u) => {
    const sub = subnet.units[u] as Subnet['units'][number];
    for (const c of unit.unitChoices) unitChoiceIndex(c, sub.choices, u);
    sub.blocks.forEach((block, slot) => {
      for (const c of unit.blockChoices) blockChoiceIndex(c as CompiledChoice, block, u, slot);
    });
  });
}

export function physicsEncoder(space: SearchSpace): FastEncoder {
  const compiled = compileSpace(space);
  return makeEncoder('physics', compiled, physicsLabels, (subnet, out, offset) => {
    checkValues(compiled, subnet);
    const cost = graphCost(space.layerGraph(subnet));
    let at = offset;
    for (const k of macKinds) out[at++] = cost.macsByKind[k] * MEGA;
    out[at++] = cost.macs * MEGA;
    out[at++] = cost.params * MEGA;
    out[at++] = cost.elementwiseOps * MEGA;
    out[at++] = cost.activationBytes * MEGA;
    out[at++] = cost.peakActivationBytes * MEGA;
    out[at++] = cost.weightBytes * MEGA;
    out[at++] = cost.inputBytes * MEGA;
    out[at++] = cost.layers;
    out[at] = cost.nodeCount;
  });
}
