/**
 * Exports trained regressors as ONNX graphs, so a predictor runs anywhere onnxruntime runs
 * (Python NAS code, C++, the API Lambda) with no JavaScript. Every graph takes the RAW
 * encoded vector `x` [batch, encodingLength] and returns `latency_ms` [batch, 1]:
 * standardisation is folded into the first Gemm and the inverse target transform (Exp,
 * the base model's floor) is part of the graph.
 */
import type { OnnxGraph, OnnxInitializer, OnnxNode } from '../onnx/model.ts';
import { type ModelJson, mlpStateFromJson } from './artifact.ts';
import type { LutJson } from './lut.ts';
import type { MlpState } from './mlp.ts';
import type { RidgeJson } from './ridge.ts';
import { transferToOnnxGraph } from './transfer-onnx.ts';

export const ONNX_INPUT = 'x';
export const ONNX_OUTPUT = 'latency_ms';

/** `w` [inputs x outputs] applied to (x - mean) / scale, as weights and bias on raw x. */
function foldStandardisation(
  columns: readonly { weights: ArrayLike<number>; bias: number }[],
  mean: ArrayLike<number>,
  scale: ArrayLike<number>,
): { weights: Float32Array; bias: Float32Array } {
  const inputs = mean.length;
  const outputs = columns.length;
  const weights = new Float32Array(inputs * outputs);
  const bias = new Float32Array(outputs);
  columns.forEach((column, j) => {
    let b = column.bias;
    for (let i = 0; i < inputs; i++) {
      const w = (column.weights[i] as number) / (scale[i] as number);
      weights[i * outputs + j] = w;
      b -= w * (mean[i] as number);
    }
    bias[j] = b;
  });
  return { weights, bias };
}

class GraphWriter {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxInitializer[] = [];

  constant(name: string, dims: readonly number[], data: Float32Array | BigInt64Array): string {
    this.initializers.push({ name, dims, data });
    return name;
  }

  node(op: string, inputs: readonly string[], output: string, attributes?: OnnxNode['attributes']) {
    this.nodes.push({ op, inputs, outputs: [output], name: output, attributes });
    return output;
  }

  gemm(
    input: string,
    name: string,
    inputs: number,
    outputs: number,
    w: Float32Array,
    b: Float32Array,
  ) {
    const wName = this.constant(`${name}.weight`, [inputs, outputs], w);
    const bName = this.constant(`${name}.bias`, [outputs], b);
    return this.node('Gemm', [input, wName, bName], name);
  }

  slice(input: string, name: string, start: number, end: number): string {
    const starts = this.constant(`${name}.starts`, [1], BigInt64Array.of(BigInt(start)));
    const ends = this.constant(`${name}.ends`, [1], BigInt64Array.of(BigInt(end)));
    const axes = this.constant(`${name}.axes`, [1], BigInt64Array.of(1n));
    return this.node('Slice', [input, starts, ends, axes], name);
  }

  graph(name: string, cols: number, output: string): OnnxGraph {
    this.node('Identity', [output], ONNX_OUTPUT);
    return {
      name,
      nodes: this.nodes,
      initializers: this.initializers,
      inputs: [{ name: ONNX_INPUT, elemType: 'float', shape: ['batch', cols] }],
      outputs: [{ name: ONNX_OUTPUT, elemType: 'float', shape: ['batch', 1] }],
    };
  }
}

/**
 * The MLP as one graph: a single Gemm computes the base model's linear term and every
 * member's first layer from raw x, Slices split it, the members' ReLU layers follow, and
 * latency = base x exp(residualScale x mean of members).
 */
export function mlpToOnnxGraph(state: MlpState): OnnxGraph {
  const cols = state.inputMean.length;
  const g = new GraphWriter();
  const members = state.members;
  const firstWidth = members[0]?.[0]?.outputs ?? 0;
  const columns: { weights: ArrayLike<number>; bias: number }[] = [
    { weights: state.base.weights, bias: state.base.bias },
  ];
  for (const layers of members) {
    const first = layers[0];
    if (!first) continue;
    for (let j = 0; j < first.outputs; j++) {
      const weights = new Float64Array(first.inputs);
      for (let i = 0; i < first.inputs; i++)
        weights[i] = first.weights[i * first.outputs + j] as number;
      columns.push({ weights, bias: first.bias[j] as number });
    }
  }
  const folded = foldStandardisation(columns, state.inputMean, state.inputScale);
  const joint = g.gemm(
    ONNX_INPUT,
    'input_layer',
    cols,
    columns.length,
    folded.weights,
    folded.bias,
  );
  const baseLinear = g.slice(joint, 'base_linear', 0, 1);

  const outputs: string[] = [];
  members.forEach((layers, m) => {
    const start = 1 + m * firstWidth;
    let h = g.node('Relu', [g.slice(joint, `m${m}.l0.pre`, start, start + firstWidth)], `m${m}.l0`);
    layers.slice(1).forEach((layer, index) => {
      const l = index + 1;
      h = g.gemm(h, `m${m}.l${l}.pre`, layer.inputs, layer.outputs, layer.weights, layer.bias);
      if (l < layers.length - 1) h = g.node('Relu', [h], `m${m}.l${l}`);
    });
    outputs.push(h);
  });

  const logCorrection = (): string => {
    const summed =
      outputs.length === 1 ? (outputs[0] as string) : g.node('Sum', outputs, 'members_sum');
    const factor = g.constant(
      'residual_scale',
      [],
      Float32Array.of(state.residualScale / outputs.length),
    );
    return g.node('Mul', [summed, factor], 'log_correction');
  };
  let latency: string;
  if (state.base.space === 'log') {
    const logLatency =
      outputs.length > 0 ? g.node('Add', [baseLinear, logCorrection()], 'log_latency') : baseLinear;
    latency = g.node('Exp', [logLatency], 'latency');
  } else {
    const floor = g.constant('base_floor_ms', [], Float32Array.of(state.base.floorMs));
    const base = g.node('Max', [baseLinear, floor], 'base_ms');
    latency =
      outputs.length > 0
        ? g.node('Mul', [base, g.node('Exp', [logCorrection()], 'correction')], 'latency')
        : base;
  }
  return g.graph('esm_mlp_predictor', cols, latency);
}

/** The ridge baseline as Gemm (+ Exp for a log target) on raw x. */
export function ridgeToOnnxGraph(ridge: RidgeJson): OnnxGraph {
  const g = new GraphWriter();
  const cols = ridge.weights.length;
  const folded = foldStandardisation(
    [{ weights: ridge.weights, bias: ridge.intercept }],
    ridge.standardiser.means,
    ridge.standardiser.scales,
  );
  const linear = g.gemm(ONNX_INPUT, 'linear', cols, 1, folded.weights, folded.bias);
  const latency = ridge.target === 'log' ? g.node('Exp', [linear], 'latency') : linear;
  return g.graph('esm_ridge_predictor', cols, latency);
}

/** The LUT baseline: a MatMul of table-entry counts with the fitted costs. */
export function lutToOnnxGraph(lut: LutJson): OnnxGraph {
  const g = new GraphWriter();
  const cols = lut.costs.length;
  const latency = g.gemm(
    ONNX_INPUT,
    'table',
    cols,
    1,
    Float32Array.from(lut.costs),
    new Float32Array(1),
  );
  return g.graph('esm_lut_predictor', cols, latency);
}

/** The ONNX graph of any stored model (predictor.json's `model`). */
export function modelToOnnxGraph(model: ModelJson): OnnxGraph {
  switch (model.kind) {
    case 'mlp':
      return mlpToOnnxGraph(mlpStateFromJson(model));
    case 'ridge':
      return ridgeToOnnxGraph(model);
    case 'lut':
      return lutToOnnxGraph(model);
    case 'transfer':
      return transferToOnnxGraph(modelToOnnxGraph(model.prior), model.correction);
  }
}

/** Metadata stored in the ONNX model so the file explains itself. */
export function onnxMetadata(fields: Record<string, string>): Record<string, string> {
  return {
    'esm.input': `${ONNX_INPUT}: raw encoded vector`,
    'esm.output': `${ONNX_OUTPUT}: latency in ms`,
    ...fields,
  };
}
