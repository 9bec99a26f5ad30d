import { describe, expect, it } from 'vitest';
import { graphCost, nodeCost } from '../../core/spaces/cost.ts';
import { GraphBuilder } from '../../core/spaces/graph-builder.ts';
import { getSpace } from '../../core/spaces/index.ts';

/** input 3x8x8 -> conv3x3 s2 -> 4 -> depthwise 5x5 -> add(skip) -> gap -> linear 10. */
function tinyGraph() {
  const g = new GraphBuilder('tiny', 8);
  const x = g.conv(g.input(), { cout: 4, kernel: 3, stride: 2, act: 'relu' });
  const dw = g.conv(x, { cout: 4, kernel: 5, groups: 4 });
  const sum = g.add(x, dw);
  return g.build(g.linear(g.globalPool(sum), 10));
}

describe('graphCost', () => {
  it('counts MACs, parameters and elements of a hand-checked graph', () => {
    const cost = graphCost(tinyGraph());
    // conv: 4x4 outputs x 4 channels x 3 x 3x3 inputs; depthwise: 4x4 x 4 x 5x5; fc 4 x 10.
    expect(cost.macsByKind.dense_kxk).toBe(16 * 4 * 27);
    expect(cost.macsByKind.depthwise_k5).toBe(16 * 4 * 25);
    expect(cost.macsByKind.linear).toBe(40);
    expect(cost.macsByKind.depthwise_k3).toBe(0);
    expect(cost.macs).toBe(1728 + 1600 + 40);
    expect(cost.params).toBe(4 * 27 + 4 + (4 * 25 + 4) + (40 + 10));
    expect(cost.weightBytes).toBe(4 * cost.params);
    expect(cost.layers).toBe(3);
    expect(cost.nodeCount).toBe(5);
    // Outputs: 64 + 64 + 64 + 4 + 10 elements.
    expect(cost.activationBytes).toBe(4 * 206);
    expect(cost.inputBytes).toBe(4 * 192);
    // The peak is at the first conv: its input (192) and its output (64) are both live; at
    // the add only the three 64-element maps are.
    expect(cost.peakActivationBytes).toBe(4 * 256);
  });

  it('classifies convolutions by groups and kernel', () => {
    const conv = (kernel: number, groups: number, cin: number, cout: number) =>
      nodeCost({
        op: 'conv',
        id: 'c',
        input: 'input',
        resolution: 4,
        cin,
        cout,
        kernel,
        stride: 1,
        groups,
        act: 'none',
      }).macKind;
    expect(conv(1, 1, 8, 8)).toBe('dense_1x1');
    expect(conv(3, 1, 8, 8)).toBe('dense_kxk');
    expect(conv(1, 2, 8, 8)).toBe('grouped');
    expect(conv(3, 8, 8, 8)).toBe('depthwise_k3');
    expect(conv(7, 8, 8, 8)).toBe('depthwise_k7');
  });

  it('gives the OFA MobileNetV3 supernet its published size and grows with the choices', () => {
    const space = getSpace('mobilenetv3');
    const arch = (k: number, e: number, d: number, r: number) =>
      graphCost(
        space.layerGraph(
          space.parse({ ks: Array(20).fill(k), e: Array(20).fill(e), d: Array(5).fill(d), r }),
        ),
      );
    const largest = arch(7, 6, 4, 224);
    // OFA reports 7.7 M parameters for the w1.0 supernet (its largest subnet).
    expect(largest.params).toBeGreaterThan(7.5e6);
    expect(largest.params).toBeLessThan(7.8e6);
    expect(largest.macsByKind.depthwise_k7).toBeGreaterThan(0);
    expect(largest.macsByKind.depthwise_k5).toBe(0);
    const k3 = arch(3, 6, 4, 224);
    expect(k3.macs).toBeLessThan(largest.macs);
    expect(k3.params).toBeLessThan(largest.params);
    // Resolution changes MACs and activations, not parameters.
    const low = arch(7, 6, 4, 128);
    expect(low.params).toBe(largest.params);
    expect(low.macs).toBeLessThan(largest.macs);
    expect(low.peakActivationBytes).toBeLessThan(largest.peakActivationBytes);
  });
});
