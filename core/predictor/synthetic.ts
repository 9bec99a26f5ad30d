/**
 * A synthetic but realistic latency function for tests and benchmarks, used until measured
 * datasets exist. It walks a subnet's layer graph and sums per-layer costs the way a CPU
 * inference runtime spends time: a fixed dispatch overhead per layer, compute at a
 * throughput that depends on the operator (depthwise convolutions are memory-bound and run
 * far below dense ones), and memory traffic for element-wise layers. Latency therefore
 * depends on depth, on each block's kernel and expand ratio, and on the interaction of both
 * with the input resolution and the stage's width, which is what a predictor must learn.
 */
import type { Rng } from '../rng.ts';
import type { LayerNode, SearchSpace, Subnet } from '../spaces/types.ts';

export interface SyntheticDevice {
  /** Fixed cost of dispatching one layer, ms. @default 0.02 */
  readonly overheadMs?: number;
  /** Dense (and pointwise) convolution throughput, multiply-accumulates per ms. @default 2e7 */
  readonly denseMacsPerMs?: number;
  /** Depthwise / grouped convolution throughput, MACs per ms. @default 1.5e6 */
  readonly depthwiseMacsPerMs?: number;
  /** Memory bandwidth for element-wise layers, float32 elements per ms. @default 2e6 */
  readonly elementsPerMs?: number;
}

export interface SyntheticLatencyOptions {
  readonly device?: SyntheticDevice;
  /**
   * Relative measurement noise: latency is multiplied by (1 + noise * N(0, 1)).
   * Needs `rng` when above 0. @default 0
   */
  readonly noise?: number;
  readonly rng?: Rng;
}

function nodeCostMs(node: LayerNode, device: Required<SyntheticDevice>): number {
  const area = node.resolution * node.resolution;
  switch (node.op) {
    case 'conv': {
      const out = Math.ceil(node.resolution / node.stride) ** 2;
      const macs = (out * node.cout * node.cin * node.kernel * node.kernel) / node.groups;
      const rate = node.groups > 1 ? device.depthwiseMacsPerMs : device.denseMacsPerMs;
      // Large kernels lose cache locality: cost grows a little faster than k^2.
      const kernelPenalty = 1 + 0.02 * (node.kernel - 1);
      return device.overheadMs + (macs * kernelPenalty) / rate;
    }
    case 'se':
      return (
        3 * device.overheadMs +
        (2 * area * node.channels) / device.elementsPerMs +
        (2 * node.channels * node.mid) / device.denseMacsPerMs
      );
    case 'bn':
    case 'add':
    case 'concat':
    case 'shuffle':
    case 'act':
    case 'zero':
      return device.overheadMs + (2 * area * node.channels) / device.elementsPerMs;
    case 'pool':
      return device.overheadMs + (area * node.channels) / device.elementsPerMs;
    case 'linear':
      return device.overheadMs + (node.cin * node.cout) / device.denseMacsPerMs;
  }
}

/** Latency in ms of `subnet` on a simulated CPU; deterministic unless `noise` > 0. */
export function syntheticLatencyMs(
  space: SearchSpace,
  subnet: Subnet,
  options: SyntheticLatencyOptions = {},
): number {
  const { noise = 0, rng } = options;
  const device: Required<SyntheticDevice> = {
    overheadMs: 0.02,
    denseMacsPerMs: 2e7,
    depthwiseMacsPerMs: 1.5e6,
    elementsPerMs: 2e6,
    ...options.device,
  };
  let total = 0;
  for (const node of space.layerGraph(subnet).nodes) total += nodeCostMs(node, device);
  if (noise > 0) {
    if (!rng) throw new RangeError('syntheticLatencyMs: noise > 0 needs an rng');
    total *= Math.max(0.5, 1 + noise * rng.normal());
  }
  return total;
}
