/**
 * What a network costs to run, counted from its layer graph (`LayerGraph`, built by every
 * space, spec spaces included): multiply-accumulates split by the kind of layer, parameters,
 * activation and weight bytes, layer count and peak live activation memory. The physics
 * encoding (core/encodings/physics.ts) turns these into predictor features; resource bounds
 * (largest subnet's parameters, MACs, activation memory) read them too.
 *
 * Counts are per image (batch 1) at inference, batch norm folded into its convolution (so a
 * conv's bias is counted). Elementwise work (activations of bn/add, pooling, SE's scaling)
 * is counted apart as `elementwiseOps`, not as MACs.
 */
import type { LayerGraph, LayerNode } from './types.ts';

/**
 * How a layer's MACs are classified. A depthwise convolution has groups = cin = cout; a
 * grouped one has 1 < groups < cin; dense ones are split by kernel (1x1 convolutions are
 * matrix multiplications, k x k ones are not, and devices run them at different speeds).
 */
export type MacKind =
  | 'dense_1x1'
  | 'dense_kxk'
  | 'grouped'
  | 'depthwise_k3'
  | 'depthwise_k5'
  | 'depthwise_k7'
  | 'linear'
  | 'se'
  | 'none';

export const macKinds: readonly Exclude<MacKind, 'none'>[] = [
  'dense_1x1',
  'dense_kxk',
  'grouped',
  'depthwise_k3',
  'depthwise_k5',
  'depthwise_k7',
  'linear',
  'se',
];

export interface NodeCost {
  readonly id: string;
  readonly op: LayerNode['op'];
  readonly macKind: MacKind;
  /** Kernel size of a convolution or pooling window; 0 otherwise. */
  readonly kernel: number;
  readonly macs: number;
  readonly params: number;
  /** Work that is not a MAC: activations of bn/add, pooling, SE's channel scaling. */
  readonly elementwiseOps: number;
  /** Elements of the node's output tensor. */
  readonly outputElements: number;
}

export interface GraphCost {
  readonly nodes: readonly NodeCost[];
  readonly macs: number;
  /** MACs by kind; every kind present (0 when the graph has none). */
  readonly macsByKind: Readonly<Record<Exclude<MacKind, 'none'>, number>>;
  readonly params: number;
  readonly elementwiseOps: number;
  /** Bytes of every node's output: the activation traffic one inference writes. */
  readonly activationBytes: number;
  /** Bytes of the input image. */
  readonly inputBytes: number;
  /** Bytes of the weights (parameters x bytes per element). */
  readonly weightBytes: number;
  /**
   * Largest sum of live tensors at any node (inputs still needed later plus the output being
   * written), in bytes: the activation memory a runtime needs without in-place tricks.
   */
  readonly peakActivationBytes: number;
  /** Convolutions and linear layers (the layers that hold weights, SE's two FCs not counted). */
  readonly layers: number;
  /** Every node of the graph. */
  readonly nodeCount: number;
}

export interface GraphCostOptions {
  /** Bytes per tensor element. @default 4 (float32) */
  readonly bytesPerElement?: number;
}

/** Depthwise kernels above 7 count as 7 and below 3 as 3: the closest bucket there is. */
function depthwiseKind(kernel: number): MacKind {
  if (kernel <= 3) return 'depthwise_k3';
  if (kernel <= 5) return 'depthwise_k5';
  return 'depthwise_k7';
}

/** One shape for every `NodeCost` (V8 keeps a monomorphic object, encoding stays fast). */
function cost(
  node: LayerNode,
  macKind: MacKind,
  kernel: number,
  macs: number,
  params: number,
  elementwiseOps: number,
  outputElements: number,
): NodeCost {
  return {
    id: node.id,
    op: node.op,
    macKind,
    kernel,
    macs,
    params,
    elementwiseOps,
    outputElements,
  };
}

/** The cost of one node of a layer graph. */
export function nodeCost(node: LayerNode): NodeCost {
  const area = node.resolution * node.resolution;
  switch (node.op) {
    case 'conv': {
      const out = Math.ceil(node.resolution / node.stride);
      const outputs = out * out * node.cout;
      const perOutput = (node.cin / node.groups) * node.kernel * node.kernel;
      const depthwise = node.groups > 1 && node.groups === node.cin && node.cin === node.cout;
      const kind: MacKind = depthwise
        ? depthwiseKind(node.kernel)
        : node.groups > 1
          ? 'grouped'
          : node.kernel === 1
            ? 'dense_1x1'
            : 'dense_kxk';
      const activation = node.act === 'none' ? 0 : outputs;
      const params = node.cout * perOutput + node.cout;
      return cost(node, kind, node.kernel, outputs * perOutput, params, activation, outputs);
    }
    case 'se': {
      const c = node.channels;
      const params = c * node.mid + node.mid + node.mid * c + c;
      // Global pooling reads the map once, the scaling multiplies it once.
      return cost(node, 'se', 0, 2 * c * node.mid, params, 2 * area * c, area * c);
    }
    case 'bn':
    case 'add': {
      const elements = area * node.channels;
      const params = node.op === 'bn' ? 2 * node.channels : 0;
      const ops = (node.act === 'none' ? 1 : 2) * elements;
      return cost(node, 'none', 0, 0, params, ops, elements);
    }
    case 'concat':
      return cost(node, 'none', 0, 0, 0, 0, area * node.channels);
    case 'pool': {
      const global = node.kind === 'global_avg';
      const out = global ? 1 : Math.ceil(node.resolution / node.stride);
      const outputs = out * out * node.channels;
      const ops = global ? area * node.channels : outputs * node.kernel * node.kernel;
      return cost(node, 'none', node.kernel, 0, 0, ops, outputs);
    }
    case 'shuffle':
    case 'zero':
      // Data movement (a transpose, or the input times zero): no MACs, one pass over the map.
      return cost(node, 'none', 0, 0, 0, area * node.channels, area * node.channels);
    case 'act': {
      const elements = area * node.channels;
      return cost(node, 'none', 0, 0, 0, node.act === 'none' ? 0 : elements, elements);
    }
    case 'linear': {
      const activation = node.act === 'none' ? 0 : node.cout;
      const params = node.cin * node.cout + node.cout;
      return cost(node, 'linear', 0, node.cin * node.cout, params, activation, node.cout);
    }
  }
}

/** Per-node and whole-graph cost of a layer graph. */
export function graphCost(graph: LayerGraph, options: GraphCostOptions = {}): GraphCost {
  const { bytesPerElement = 4 } = options;
  const nodes = graph.nodes.map(nodeCost);
  const macsByKind = Object.fromEntries(macKinds.map((k) => [k, 0])) as Record<
    Exclude<MacKind, 'none'>,
    number
  >;
  let macs = 0;
  let params = 0;
  let elementwiseOps = 0;
  let outputElements = 0;
  let layers = 0;
  for (const c of nodes) {
    macs += c.macs;
    params += c.params;
    elementwiseOps += c.elementwiseOps;
    outputElements += c.outputElements;
    if (c.macKind !== 'none') macsByKind[c.macKind] += c.macs;
    if (c.op === 'conv' || c.op === 'linear') layers++;
  }
  const inputElements = graph.resolution * graph.resolution * graph.inputChannels;

  // Liveness: a tensor lives from the node that writes it to its last reader (the output
  // to the end), so the peak is the largest sum of live sizes over the topological order.
  // Tensors are numbered by position (the input is -1), so the pass allocates two arrays.
  const n = graph.nodes.length;
  const position = new Map<string, number>([['input', -1]]);
  graph.nodes.forEach((node, i) => {
    position.set(node.id, i);
  });
  const lastUse = new Int32Array(n + 1).fill(-2);
  const at = (id: string) => (position.get(id) ?? -2) + 1;
  graph.nodes.forEach((node, i) => {
    if ('inputs' in node) for (const input of node.inputs) lastUse[at(input)] = i;
    else lastUse[at(node.input)] = i;
  });
  lastUse[at(graph.output)] = n;
  const sizeOf = (k: number) =>
    k === 0 ? inputElements : (nodes[k - 1] as NodeCost).outputElements;
  let live = inputElements;
  let peak = live;
  for (let i = 0; i < n; i++) {
    const node = graph.nodes[i] as LayerNode;
    live += sizeOf(i + 1);
    if (live > peak) peak = live;
    const inputs = 'inputs' in node ? node.inputs : [node.input];
    inputs.forEach((input, j) => {
      const k = at(input);
      // A tensor read twice by the same node is freed once.
      if (lastUse[k] === i && inputs.indexOf(input) === j) live -= sizeOf(k);
    });
    if ((lastUse[i + 1] as number) < i) live -= sizeOf(i + 1);
  }

  return {
    nodes,
    macs,
    macsByKind,
    params,
    elementwiseOps,
    activationBytes: outputElements * bytesPerElement,
    inputBytes: inputElements * bytesPerElement,
    weightBytes: params * bytesPerElement,
    peakActivationBytes: peak * bytesPerElement,
    layers,
    nodeCount: nodes.length,
  };
}
