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
import { cardinality, subnetKey } from '../spaces/subnet.ts';
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

/**
 * Spaces this small keep every subnet's physics once it is computed: a layer graph per subnet
 * is most of the encoding's cost, and whole-space work encodes every subnet again (a save of
 * NAS-Bench-201's 15,625 cells, after `esm fit` encoded the same cells as its dataset), keyed
 * by `subnetKey`. The bound keeps the memory small (50,000 vectors of 17 numbers: 7 MB, and
 * their keys).
 */
const MEMO_SUBNETS = 50_000n;
const memos = new WeakMap<SearchSpace, Map<string, Float64Array>>();

function memoOf(space: SearchSpace): Map<string, Float64Array> | undefined {
  if (cardinality(space) > MEMO_SUBNETS) return undefined;
  let memo = memos.get(space);
  if (!memo) {
    memo = new Map();
    memos.set(space, memo);
  }
  return memo;
}

export function physicsEncoder(space: SearchSpace): FastEncoder {
  const compiled = compileSpace(space);
  const memo = memoOf(space);
  const length = physicsLabels.length;
  return makeEncoder('physics', compiled, physicsLabels, (subnet, out, offset) => {
    checkValues(compiled, subnet);
    const key = memo ? subnetKey(subnet) : '';
    const known = memo?.get(key);
    if (known) {
      out.set(known, offset);
      return;
    }
    // Computed in double precision and then copied, so a memo filled through a float32
    // target holds what a float64 one would: the first encoding and the later ones agree.
    const vector = new Float64Array(length);
    const cost = graphCost(space.layerGraph(subnet));
    let at = 0;
    for (const k of macKinds) vector[at++] = cost.macsByKind[k] * MEGA;
    vector[at++] = cost.macs * MEGA;
    vector[at++] = cost.params * MEGA;
    vector[at++] = cost.elementwiseOps * MEGA;
    vector[at++] = cost.activationBytes * MEGA;
    vector[at++] = cost.peakActivationBytes * MEGA;
    vector[at++] = cost.weightBytes * MEGA;
    vector[at++] = cost.inputBytes * MEGA;
    vector[at++] = cost.layers;
    vector[at] = cost.nodeCount;
    out.set(vector, offset);
    memo?.set(key, vector);
  });
}
