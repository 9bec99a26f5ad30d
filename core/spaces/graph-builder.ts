/**
 * A small helper for writing layer graphs: it tracks the current tensor's id, channels and
 * resolution so a space's `layerGraph` reads like the network definition.
 */
import type { Activation, LayerGraph, LayerNode } from './types.ts';

export interface Tensor {
  readonly id: string;
  readonly channels: number;
  readonly resolution: number;
}

/** OFA's `make_divisible`: round to a multiple of `divisor`, never dropping below 90 %. */
export function makeDivisible(value: number, divisor = 8): number {
  let rounded = Math.max(divisor, Math.floor((value + divisor / 2) / divisor) * divisor);
  if (rounded < 0.9 * value) rounded += divisor;
  return rounded;
}

export class GraphBuilder {
  private readonly nodes: LayerNode[] = [];
  private counter = 0;

  constructor(
    private readonly space: string,
    private readonly resolution: number,
    private readonly inputChannels = 3,
  ) {}

  input(): Tensor {
    return { id: 'input', channels: this.inputChannels, resolution: this.resolution };
  }

  private nextId(prefix: string): string {
    this.counter += 1;
    return `${prefix}${this.counter}`;
  }

  /**
   * A node that keeps its input's shape (se, bn, act, shuffle, zero); `node` adds the op and
   * its own fields to the common ones (whose order stays op, id, input, resolution, channels:
   * layer graphs are hashed as JSON).
   */
  private sameShape(
    x: Tensor,
    prefix: string,
    node: (base: { id: string; input: string; resolution: number; channels: number }) => LayerNode,
  ): Tensor {
    const id = this.nextId(prefix);
    this.nodes.push(node({ id, input: x.id, resolution: x.resolution, channels: x.channels }));
    return { ...x, id };
  }

  conv(
    x: Tensor,
    options: { cout: number; kernel: number; stride?: number; groups?: number; act?: Activation },
  ): Tensor {
    const { cout, kernel, stride = 1, groups = 1, act = 'none' } = options;
    const id = this.nextId('conv');
    this.nodes.push({
      op: 'conv',
      id,
      input: x.id,
      resolution: x.resolution,
      cin: x.channels,
      cout,
      kernel,
      stride,
      groups,
      act,
    });
    return { id, channels: cout, resolution: Math.ceil(x.resolution / stride) };
  }

  se(x: Tensor, mid: number): Tensor {
    return this.sameShape(x, 'se', (base) => ({ op: 'se', ...base, mid }));
  }

  bn(x: Tensor, act: Activation): Tensor {
    return this.sameShape(x, 'bn', (base) => ({ op: 'bn', ...base, act }));
  }

  add(a: Tensor, b: Tensor, act: Activation = 'none'): Tensor {
    const id = this.nextId('add');
    this.nodes.push({
      op: 'add',
      id,
      inputs: [a.id, b.id],
      resolution: a.resolution,
      channels: a.channels,
      act,
    });
    return { ...a, id };
  }

  concat(inputs: readonly Tensor[]): Tensor {
    const id = this.nextId('concat');
    const channels = inputs.reduce((sum, t) => sum + t.channels, 0);
    const first = inputs[0];
    if (!first) throw new RangeError('concat needs at least one input');
    this.nodes.push({
      op: 'concat',
      id,
      inputs: inputs.map((t) => t.id),
      resolution: first.resolution,
      channels,
    });
    return { id, channels, resolution: first.resolution };
  }

  pool(x: Tensor, kind: 'avg' | 'max', kernel: number, stride: number): Tensor {
    const id = this.nextId('pool');
    this.nodes.push({
      op: 'pool',
      id,
      input: x.id,
      resolution: x.resolution,
      kind,
      kernel,
      stride,
      channels: x.channels,
    });
    return { id, channels: x.channels, resolution: Math.ceil(x.resolution / stride) };
  }

  globalPool(x: Tensor): Tensor {
    const id = this.nextId('gap');
    this.nodes.push({
      op: 'pool',
      id,
      input: x.id,
      resolution: x.resolution,
      kind: 'global_avg',
      kernel: x.resolution,
      stride: 1,
      channels: x.channels,
    });
    return { id, channels: x.channels, resolution: 1 };
  }

  shuffle(x: Tensor, groups: number): Tensor {
    return this.sameShape(x, 'shuffle', (base) => ({ op: 'shuffle', ...base, groups }));
  }

  act(x: Tensor, act: Activation): Tensor {
    return this.sameShape(x, 'act', (base) => ({ op: 'act', ...base, act }));
  }

  zero(x: Tensor): Tensor {
    return this.sameShape(x, 'zero', (base) => ({ op: 'zero', ...base }));
  }

  linear(x: Tensor, cout: number, act: Activation = 'none'): Tensor {
    const id = this.nextId('fc');
    this.nodes.push({
      op: 'linear',
      id,
      input: x.id,
      resolution: x.resolution,
      cin: x.channels,
      cout,
      act,
    });
    return { id, channels: cout, resolution: 1 };
  }

  build(output: Tensor): LayerGraph {
    return {
      space: this.space,
      resolution: this.resolution,
      inputChannels: this.inputChannels,
      nodes: this.nodes.slice(),
      output: output.id,
    };
  }
}
