/**
 * Turns a space's layer graph into an ONNX graph (opset 17) with the exact structure of the
 * subnet, so that a device times the network the predictor is asked about. Weights are random
 * (seeded): latency does not depend on their values, only on shapes and operators, as long as
 * activations stay finite and away from denormals, which the He-style scales below ensure.
 */
import { ValidationError } from '../core/errors.ts';
import {
  attr,
  encodeModel,
  type OnnxGraph,
  type OnnxInitializer,
  type OnnxNode,
} from '../core/onnx/model.ts';
import { createRng, type Rng } from '../core/rng.ts';
import type { Activation, LayerGraph, LayerNode } from '../core/spaces/types.ts';

export const OPSET = 17;
export const INPUT_NAME = 'input';
export const OUTPUT_NAME = 'logits';

/**
 * Initializer name suffixes that hold no trainable parameters: batch-norm running statistics,
 * Reshape shapes and the zero of a `zero` node.
 */
const BUFFER_SUFFIXES = ['.running_mean', '.running_var', '.shape', '.zero'];

export interface BuildOnnxOptions {
  /** Images per inference. @default 1 */
  batchSize?: number;
  /** Seed of the random weights. @default 0 */
  seed?: number;
}

interface Value {
  name: string;
  channels: number;
  resolution: number;
  /** 2 after a linear layer ([batch, features]), 4 for feature maps. */
  rank: 2 | 4;
}

/**
 * Pads that give an output of exactly `ceil(resolution / stride)`, as the layer graph
 * promises: symmetric `kernel / 2` for odd kernels (PyTorch's padding), otherwise
 * SAME_UPPER-style explicit pads (e.g. a 2x2 stride-2 pool: none, or one at the end of an
 * odd map).
 */
export function samePads(resolution: number, kernel: number, stride: number): number[] {
  if (kernel % 2 === 1) {
    const p = (kernel - 1) / 2;
    return [p, p, p, p];
  }
  const want = Math.ceil(resolution / stride);
  const total = Math.max(0, (want - 1) * stride + kernel - resolution);
  const begin = Math.floor(total / 2);
  const end = total - begin;
  return [begin, begin, end, end];
}

/**
 * Random values are drawn once into a pool and read from seeded offsets: drawing every weight
 * from the generator took ~300 ms for a 7.6 M-parameter MobileNetV3, most of the build time.
 */
const POOL_SIZE = 1 << 16;

class OnnxGraphWriter {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxInitializer[] = [];
  private readonly names = new Set<string>();
  /** Uniform values in [-1, 1). */
  private readonly pool = new Float32Array(POOL_SIZE);

  constructor(private readonly rng: Rng) {
    for (let i = 0; i < POOL_SIZE; i++) this.pool[i] = 2 * rng.next() - 1;
  }

  private fill(size: number, scale: number): Float32Array {
    const data = new Float32Array(size);
    const pool = this.pool;
    const offset = this.rng.int(POOL_SIZE);
    for (let i = 0; i < size; i++)
      data[i] = (pool[(offset + i) & (POOL_SIZE - 1)] as number) * scale;
    return data;
  }

  unique(base: string): string {
    let name = base;
    for (let i = 1; this.names.has(name); i++) name = `${base}_${i}`;
    this.names.add(name);
    return name;
  }

  node(op: string, inputs: string[], output: string, attributes?: OnnxNode['attributes']): string {
    this.nodes.push({ op, inputs, outputs: [output], name: output, attributes });
    return output;
  }

  /**
   * Uniform weights in +-sqrt(3 * gain / fanIn), i.e. variance gain / fanIn: gain 2 (He) in
   * front of rectifiers, 1 elsewhere, so activations neither vanish nor blow up with depth.
   */
  weights(name: string, dims: number[], fanIn: number, gain: number): string {
    const size = dims.reduce((a, b) => a * b, 1);
    const bound = Math.sqrt((3 * gain) / Math.max(1, fanIn));
    this.initializers.push({ name, dims, data: this.fill(size, bound) });
    return name;
  }

  /** Small non-zero values, so that no tensor is all zeros. */
  bias(name: string, size: number): string {
    this.initializers.push({ name, dims: [size], data: this.fill(size, 0.01) });
    return name;
  }

  /** An int64 shape operand (Reshape); not a parameter, see `BUFFER_SUFFIXES`. */
  shape(name: string, dims: readonly number[]): string {
    this.initializers.push({
      name,
      dims: [dims.length],
      data: BigInt64Array.from(dims.map((d) => BigInt(d))),
    });
    return name;
  }

  constant(name: string, dims: number[], value: number): string {
    this.initializers.push({
      name,
      dims,
      data: new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(value),
    });
    return name;
  }

  activation(act: Activation, input: string, output: string): string {
    switch (act) {
      case 'relu':
        return this.node('Relu', [input], output);
      case 'h_swish':
        return this.node('HardSwish', [input], output);
      case 'none':
        return this.node('Identity', [input], output);
    }
  }
}

const gainOf = (act: Activation): number => (act === 'none' ? 1 : 2);

/**
 * The ONNX graph of a layer graph: input `input` float [batchSize, C, R, R], output `logits`
 * [batchSize, features]. Batch norm is folded into convolutions (a conv has a bias);
 * stand-alone `bn` nodes (pre-activation networks) become BatchNormalization.
 * Throws `ValidationError` when the layer graph is inconsistent (unknown input, channel
 * mismatch), naming the node.
 */
export function buildOnnxGraph(graph: LayerGraph, options: BuildOnnxOptions = {}): OnnxGraph {
  const { batchSize = 1, seed = 0 } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new ValidationError('batchSize', `must be a positive integer, got ${batchSize}`);
  }
  const w = new OnnxGraphWriter(createRng(seed));
  const values = new Map<string, Value>();
  values.set(INPUT_NAME, {
    name: w.unique(INPUT_NAME),
    channels: graph.inputChannels,
    resolution: graph.resolution,
    rank: 4,
  });
  w.unique(OUTPUT_NAME);

  const get = (node: LayerNode, id: string): Value => {
    const value = values.get(id);
    if (!value) {
      throw new ValidationError(`node ${node.id}`, `input "${id}" is not defined before it`);
    }
    return value;
  };
  const expectChannels = (node: LayerNode, value: Value, channels: number): void => {
    if (value.channels !== channels) {
      throw new ValidationError(
        `node ${node.id}`,
        `expects ${channels} input channels but its input has ${value.channels}`,
      );
    }
  };
  const spatial = (node: LayerNode, value: Value): void => {
    if (value.rank !== 4) {
      throw new ValidationError(`node ${node.id}`, `${node.op} needs a feature map, not a vector`);
    }
  };

  for (const node of graph.nodes) {
    const out = w.unique(node.id);
    let result: Value;
    switch (node.op) {
      case 'conv': {
        const x = get(node, node.input);
        spatial(node, x);
        expectChannels(node, x, node.cin);
        if (node.cin % node.groups !== 0 || node.cout % node.groups !== 0) {
          throw new ValidationError(
            `node ${node.id}`,
            `groups ${node.groups} must divide cin ${node.cin} and cout ${node.cout}`,
          );
        }
        const cinPerGroup = node.cin / node.groups;
        const fanIn = cinPerGroup * node.kernel * node.kernel;
        const weight = w.weights(
          `${out}.weight`,
          [node.cout, cinPerGroup, node.kernel, node.kernel],
          fanIn,
          gainOf(node.act),
        );
        const convOut = node.act === 'none' ? out : `${out}.conv`;
        w.node('Conv', [x.name, weight, w.bias(`${out}.bias`, node.cout)], convOut, {
          kernel_shape: attr.ints([node.kernel, node.kernel]),
          strides: attr.ints([node.stride, node.stride]),
          pads: attr.ints(samePads(x.resolution, node.kernel, node.stride)),
          group: attr.int(node.groups),
        });
        if (node.act !== 'none') w.activation(node.act, convOut, out);
        result = {
          name: out,
          channels: node.cout,
          resolution: Math.ceil(x.resolution / node.stride),
          rank: 4,
        };
        break;
      }
      case 'se': {
        const x = get(node, node.input);
        spatial(node, x);
        expectChannels(node, x, node.channels);
        const c = node.channels;
        const pooled = w.node('GlobalAveragePool', [x.name], `${out}.pool`);
        const reduce = w.node(
          'Conv',
          [
            pooled,
            w.weights(`${out}.reduce.weight`, [node.mid, c, 1, 1], c, 2),
            w.bias(`${out}.reduce.bias`, node.mid),
          ],
          `${out}.reduce`,
          { kernel_shape: attr.ints([1, 1]) },
        );
        const relu = w.node('Relu', [reduce], `${out}.relu`);
        const expand = w.node(
          'Conv',
          [
            relu,
            w.weights(`${out}.expand.weight`, [c, node.mid, 1, 1], node.mid, 1),
            w.bias(`${out}.expand.bias`, c),
          ],
          `${out}.expand`,
          { kernel_shape: attr.ints([1, 1]) },
        );
        const gate = w.node('HardSigmoid', [expand], `${out}.gate`, {
          alpha: attr.float(1 / 6),
          beta: attr.float(0.5),
        });
        w.node('Mul', [x.name, gate], out);
        result = { ...x, name: out };
        break;
      }
      case 'bn': {
        const x = get(node, node.input);
        spatial(node, x);
        expectChannels(node, x, node.channels);
        const c = node.channels;
        const scale = w.constant(`${out}.weight`, [c], 1);
        const shift = w.bias(`${out}.bias`, c);
        const mean = w.constant(`${out}.running_mean`, [c], 0);
        const variance = w.constant(`${out}.running_var`, [c], 1);
        const bnOut = node.act === 'none' ? out : `${out}.bn`;
        w.node('BatchNormalization', [x.name, scale, shift, mean, variance], bnOut, {
          epsilon: attr.float(1e-5),
        });
        if (node.act !== 'none') w.activation(node.act, bnOut, out);
        result = { ...x, name: out };
        break;
      }
      case 'add': {
        const a = get(node, node.inputs[0]);
        const b = get(node, node.inputs[1]);
        expectChannels(node, a, node.channels);
        expectChannels(node, b, node.channels);
        if (a.resolution !== b.resolution || a.rank !== b.rank) {
          throw new ValidationError(
            `node ${node.id}`,
            `adds tensors of different shapes (${a.resolution} vs ${b.resolution})`,
          );
        }
        const addOut = node.act === 'none' ? out : `${out}.add`;
        w.node('Add', [a.name, b.name], addOut);
        if (node.act !== 'none') w.activation(node.act, addOut, out);
        result = { ...a, name: out };
        break;
      }
      case 'concat': {
        const inputs = node.inputs.map((id) => get(node, id));
        const first = inputs[0];
        if (!first) throw new ValidationError(`node ${node.id}`, 'concat needs at least one input');
        for (const x of inputs) {
          spatial(node, x);
          if (x.resolution !== first.resolution) {
            throw new ValidationError(
              `node ${node.id}`,
              'concatenates feature maps of different sizes',
            );
          }
        }
        expectChannels(
          node,
          { ...first, channels: inputs.reduce((s, x) => s + x.channels, 0) },
          node.channels,
        );
        w.node(
          'Concat',
          inputs.map((x) => x.name),
          out,
          { axis: attr.int(1) },
        );
        result = { ...first, name: out, channels: node.channels };
        break;
      }
      case 'pool': {
        const x = get(node, node.input);
        spatial(node, x);
        expectChannels(node, x, node.channels);
        if (node.kind === 'global_avg') {
          w.node('GlobalAveragePool', [x.name], out);
          result = { ...x, name: out, resolution: 1 };
          break;
        }
        w.node(node.kind === 'max' ? 'MaxPool' : 'AveragePool', [x.name], out, {
          kernel_shape: attr.ints([node.kernel, node.kernel]),
          strides: attr.ints([node.stride, node.stride]),
          pads: attr.ints(samePads(x.resolution, node.kernel, node.stride)),
        });
        result = { ...x, name: out, resolution: Math.ceil(x.resolution / node.stride) };
        break;
      }
      case 'linear': {
        const x = get(node, node.input);
        const features = x.rank === 4 ? x.channels * x.resolution * x.resolution : x.channels;
        if (features !== node.cin) {
          throw new ValidationError(
            `node ${node.id}`,
            `expects ${node.cin} input features but its input has ${features}`,
          );
        }
        const flat =
          x.rank === 4
            ? w.node('Flatten', [x.name], `${out}.flatten`, { axis: attr.int(1) })
            : x.name;
        const gemmOut = node.act === 'none' ? out : `${out}.gemm`;
        w.node(
          'Gemm',
          [
            flat,
            w.weights(`${out}.weight`, [node.cout, node.cin], node.cin, gainOf(node.act)),
            w.bias(`${out}.bias`, node.cout),
          ],
          gemmOut,
          { transB: attr.int(1) },
        );
        if (node.act !== 'none') w.activation(node.act, gemmOut, out);
        result = { name: out, channels: node.cout, resolution: 1, rank: 2 };
        break;
      }
      case 'shuffle': {
        const x = get(node, node.input);
        spatial(node, x);
        expectChannels(node, x, node.channels);
        const g = node.groups;
        if (!Number.isInteger(g) || g < 1 || node.channels % g !== 0) {
          throw new ValidationError(
            `node ${node.id}`,
            `shuffle groups ${g} must divide the channels ${node.channels}`,
          );
        }
        const r = x.resolution;
        // [N, C, H, W] -> [N, g, C/g, H, W] -> swap the two channel axes -> [N, C, H, W].
        const split = w.node(
          'Reshape',
          [x.name, w.shape(`${out}.split.shape`, [batchSize, g, node.channels / g, r, r])],
          `${out}.split`,
        );
        const swapped = w.node('Transpose', [split], `${out}.transpose`, {
          perm: attr.ints([0, 2, 1, 3, 4]),
        });
        w.node(
          'Reshape',
          [swapped, w.shape(`${out}.merge.shape`, [batchSize, node.channels, r, r])],
          out,
        );
        result = { ...x, name: out };
        break;
      }
      case 'act': {
        const x = get(node, node.input);
        expectChannels(node, x, node.channels);
        w.activation(node.act, x.name, out);
        result = { ...x, name: out };
        break;
      }
      case 'zero': {
        const x = get(node, node.input);
        expectChannels(node, x, node.channels);
        // x * 0 rather than a constant: the output keeps x's shape and its data dependence.
        w.node('Mul', [x.name, w.constant(`${out}.zero`, [1], 0)], out);
        result = { ...x, name: out };
        break;
      }
    }
    values.set(node.id, result);
  }

  const last = values.get(graph.output);
  if (!last) {
    throw new ValidationError('output', `output node "${graph.output}" is not in the graph`);
  }
  const features =
    last.rank === 4 ? last.channels * last.resolution * last.resolution : last.channels;
  w.node(
    last.rank === 4 ? 'Flatten' : 'Identity',
    [last.name],
    OUTPUT_NAME,
    last.rank === 4 ? { axis: attr.int(1) } : undefined,
  );

  return {
    name: `${graph.space}_r${graph.resolution}`,
    nodes: w.nodes,
    initializers: w.initializers,
    inputs: [
      {
        name: INPUT_NAME,
        elemType: 'float',
        shape: [batchSize, graph.inputChannels, graph.resolution, graph.resolution],
      },
    ],
    outputs: [{ name: OUTPUT_NAME, elemType: 'float', shape: [batchSize, features] }],
  };
}

/** The serialised ONNX model (ModelProto bytes) of a layer graph. */
export function buildOnnxModel(graph: LayerGraph, options: BuildOnnxOptions = {}): Uint8Array {
  return encodeModel(buildOnnxGraph(graph, options), {
    opset: OPSET,
    producer: 'esm-platform',
    metadata: { space: graph.space, resolution: String(graph.resolution) },
  });
}

/**
 * Trainable parameters of an ONNX graph: all initializer elements except batch-norm running
 * statistics (counted the way PyTorch's `sum(p.numel() for p in parameters())` does).
 */
export function countParameters(graph: OnnxGraph): number {
  let total = 0;
  for (const init of graph.initializers) {
    if (BUFFER_SUFFIXES.some((s) => init.name.endsWith(s))) continue;
    total += init.dims.reduce((a, b) => a * b, 1);
  }
  return total;
}
