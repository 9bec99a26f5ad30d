/**
 * Exports trained regressors as ONNX graphs, so a predictor runs anywhere onnxruntime runs
 * (Python NAS code, C++, the API Lambda) with no JavaScript. Every graph takes the RAW
 * encoded vector `x` [batch, encodingLength] and returns `latency_ms` [batch, 1]:
 * standardisation is folded into the first Gemm and the inverse target transform (Exp,
 * the base model's floor) is part of the graph. A second output `std_ms` [batch, 1] is the
 * prediction's uncertainty (docs/predictor.md, "Uncertainty"), computed the way the
 * JavaScript model's `predictWithStd` does.
 *
 * Every model is written as a subgraph (`GraphWriter`, names under a prefix) returning its
 * mean and std tensors, so `auto` composes the subgraphs of its members into one graph.
 */
import {
  attr,
  ONNX_ML_DOMAIN,
  type OnnxGraph,
  type OnnxInitializer,
  type OnnxNode,
} from '../onnx/model.ts';
import {
  type AutoJson,
  type MemberModelJson,
  type ModelJson,
  mlpStateFromJson,
  modelInputs,
} from './artifact.ts';
import type { GbtJson, RfJson } from './forest.ts';
import type { LutJson } from './lut.ts';
import type { MlpState } from './mlp.ts';
import type { RidgeJson } from './ridge.ts';
import { transferToOnnxGraph } from './transfer-onnx.ts';
import type { TreeJson } from './trees.ts';

export const ONNX_INPUT = 'x';
export const ONNX_OUTPUT = 'latency_ms';
export const ONNX_STD_OUTPUT = 'std_ms';

/** The names of a model's two [batch, 1] results in a graph being written. */
export interface Outputs {
  readonly mean: string;
  readonly std: string;
}

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

  scalar(name: string, value: number): string {
    return this.constant(name, [], Float32Array.of(value));
  }

  /** `mean` x `relStd`: the uncertainty of a model that knows its relative residual. */
  relative(prefix: string, mean: string, relStd: number): string {
    const abs = this.node('Abs', [mean], `${prefix}abs_mean`);
    return this.node('Mul', [abs, this.scalar(`${prefix}rel_std`, relStd)], `${prefix}std`);
  }

  graph(name: string, cols: number, out: Outputs): OnnxGraph {
    this.node('Identity', [out.mean], ONNX_OUTPUT);
    this.node('Identity', [out.std], ONNX_STD_OUTPUT);
    return {
      name,
      nodes: this.nodes,
      initializers: this.initializers,
      inputs: [{ name: ONNX_INPUT, elemType: 'float', shape: ['batch', cols] }],
      outputs: [
        { name: ONNX_OUTPUT, elemType: 'float', shape: ['batch', 1] },
        { name: ONNX_STD_OUTPUT, elemType: 'float', shape: ['batch', 1] },
      ],
    };
  }
}

/**
 * The MLP: a single Gemm computes the base model's linear term and every member's first
 * layer from raw x, Slices split it, the members' ReLU layers follow, and
 * latency = base x exp(residualScale x mean of members). std = latency x sqrt(rel_std^2 +
 * spread^2), spread the standard deviation of the members' scaled outputs.
 */
function writeMlp(g: GraphWriter, input: string, p: string, state: MlpState): Outputs {
  const cols = state.inputMean.length;
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
  const joint = g.gemm(input, `${p}input_layer`, cols, columns.length, folded.weights, folded.bias);
  const baseLinear = g.slice(joint, `${p}base_linear`, 0, 1);

  const outputs: string[] = [];
  members.forEach((layers, m) => {
    const start = 1 + m * firstWidth;
    const pre = g.slice(joint, `${p}m${m}.l0.pre`, start, start + firstWidth);
    let h = g.node('Relu', [pre], `${p}m${m}.l0`);
    layers.slice(1).forEach((layer, index) => {
      const l = index + 1;
      h = g.gemm(h, `${p}m${m}.l${l}.pre`, layer.inputs, layer.outputs, layer.weights, layer.bias);
      if (l < layers.length - 1) h = g.node('Relu', [h], `${p}m${m}.l${l}`);
    });
    outputs.push(h);
  });

  const logCorrection = (): string => {
    const summed =
      outputs.length === 1 ? (outputs[0] as string) : g.node('Sum', outputs, `${p}members_sum`);
    const factor = g.scalar(`${p}residual_scale`, state.residualScale / outputs.length);
    return g.node('Mul', [summed, factor], `${p}log_correction`);
  };
  let latency: string;
  if (state.base.space === 'log') {
    const logLatency =
      outputs.length > 0
        ? g.node('Add', [baseLinear, logCorrection()], `${p}log_latency`)
        : baseLinear;
    latency = g.node('Exp', [logLatency], `${p}latency`);
  } else {
    const floor = g.scalar(`${p}base_floor_ms`, state.base.floorMs);
    const base = g.node('Max', [baseLinear, floor], `${p}base_ms`);
    latency =
      outputs.length > 0
        ? g.node('Mul', [base, g.node('Exp', [logCorrection()], `${p}correction`)], `${p}latency`)
        : base;
  }
  const rel = state.relStd ?? 0;
  if (outputs.length < 2) return { mean: latency, std: g.relative(p, latency, rel) };
  // Spread of the members' scaled outputs, in quadrature with the residual.
  const stacked = g.node('Concat', outputs, `${p}members`, { axis: attr.int(1) });
  const spread = spreadOf(g, `${p}members.`, stacked, state.residualScale);
  const variance = g.node(
    'Add',
    [g.node('Mul', [spread, spread], `${p}spread_sq`), g.scalar(`${p}rel_sq`, rel * rel)],
    `${p}rel_var`,
  );
  const relative = g.node('Sqrt', [variance], `${p}rel_total`);
  return { mean: latency, std: g.node('Mul', [latency, relative], `${p}std`) };
}

/** Standard deviation over axis 1 of `values` [batch, k], times `scale`: [batch, 1]. */
function spreadOf(g: GraphWriter, p: string, values: string, scale: number): string {
  const axes = { axes: attr.ints([1]), keepdims: attr.int(1) };
  const mean = g.node('ReduceMean', [values], `${p}mean`, axes);
  const centred = g.node('Sub', [values, mean], `${p}centred`);
  const squares = g.node('Mul', [centred, centred], `${p}squares`);
  const variance = g.node('ReduceMean', [squares], `${p}variance`, axes);
  const sd = g.node('Sqrt', [variance], `${p}sd`);
  return scale === 1 ? sd : g.node('Mul', [sd, g.scalar(`${p}scale`, scale)], `${p}scaled_sd`);
}

function writeRidge(g: GraphWriter, input: string, p: string, ridge: RidgeJson): Outputs {
  const cols = ridge.weights.length;
  const folded = foldStandardisation(
    [{ weights: ridge.weights, bias: ridge.intercept }],
    ridge.standardiser.means,
    ridge.standardiser.scales,
  );
  const linear = g.gemm(input, `${p}linear`, cols, 1, folded.weights, folded.bias);
  const mean = ridge.target === 'log' ? g.node('Exp', [linear], `${p}latency`) : linear;
  return { mean, std: g.relative(p, mean, ridge.rel_std ?? 0) };
}

function writeLut(g: GraphWriter, input: string, p: string, lut: LutJson): Outputs {
  const cols = lut.costs.length;
  const costs = Float32Array.from(lut.costs);
  const mean = g.gemm(input, `${p}table`, cols, 1, costs, new Float32Array(1));
  return { mean, std: g.relative(p, mean, lut.rel_std ?? 0) };
}

/**
 * ONNX-ML `TreeEnsembleRegressor` (BRANCH_LEQ: x <= threshold goes to the true branch, as in
 * trees.ts) summing the trees' leaves; with `perTree` each tree writes its own target, so the
 * output is [batch, trees] for the spread of a forest.
 */
function writeTrees(
  g: GraphWriter,
  input: string,
  name: string,
  trees: readonly TreeJson[],
  perTree: boolean,
): string {
  const n = {
    treeIds: [] as number[],
    nodeIds: [] as number[],
    featureIds: [] as number[],
    values: [] as number[],
    modes: [] as string[],
    trueIds: [] as number[],
    falseIds: [] as number[],
  };
  const t = {
    treeIds: [] as number[],
    nodeIds: [] as number[],
    ids: [] as number[],
    weights: [] as number[],
  };
  trees.forEach((tree, ti) => {
    tree.feature.forEach((f, node) => {
      const leaf = f < 0;
      n.treeIds.push(ti);
      n.nodeIds.push(node);
      n.featureIds.push(leaf ? 0 : f);
      n.values.push(leaf ? 0 : (tree.threshold[node] as number));
      n.modes.push(leaf ? 'LEAF' : 'BRANCH_LEQ');
      n.trueIds.push(leaf ? 0 : (tree.left[node] as number));
      n.falseIds.push(leaf ? 0 : (tree.right[node] as number));
      if (leaf) {
        t.treeIds.push(ti);
        t.nodeIds.push(node);
        t.ids.push(perTree ? ti : 0);
        t.weights.push(tree.value[node] as number);
      }
    });
  });
  g.nodes.push({
    op: 'TreeEnsembleRegressor',
    domain: ONNX_ML_DOMAIN,
    inputs: [input],
    outputs: [name],
    name,
    attributes: {
      n_targets: attr.int(perTree ? trees.length : 1),
      aggregate_function: attr.string('SUM'),
      post_transform: attr.string('NONE'),
      nodes_treeids: attr.ints(n.treeIds),
      nodes_nodeids: attr.ints(n.nodeIds),
      nodes_featureids: attr.ints(n.featureIds),
      nodes_values: attr.floats(n.values),
      nodes_modes: attr.strings(n.modes),
      nodes_truenodeids: attr.ints(n.trueIds),
      nodes_falsenodeids: attr.ints(n.falseIds),
      target_treeids: attr.ints(t.treeIds),
      target_nodeids: attr.ints(t.nodeIds),
      target_ids: attr.ints(t.ids),
      target_weights: attr.floats(t.weights),
    },
  });
  return name;
}

function writeRf(g: GraphWriter, input: string, p: string, rf: RfJson): Outputs {
  const perTree = writeTrees(g, input, `${p}trees`, rf.trees, true);
  const axes = { axes: attr.ints([1]), keepdims: attr.int(1) };
  const logMean = g.node('ReduceMean', [perTree], `${p}log_latency`, axes);
  const mean = g.node('Exp', [logMean], `${p}latency`);
  const sd = spreadOf(g, `${p}trees.`, perTree, 1);
  return { mean, std: g.node('Mul', [mean, sd], `${p}std`) };
}

function writeGbt(g: GraphWriter, input: string, p: string, gbt: GbtJson): Outputs {
  const folded = foldStandardisation(
    [{ weights: gbt.base.weights, bias: gbt.base.intercept }],
    gbt.base.standardiser.means,
    gbt.base.standardiser.scales,
  );
  let log = g.gemm(input, `${p}base`, gbt.inputs, 1, folded.weights, folded.bias);
  if (gbt.trees.length > 0) {
    const trees = writeTrees(g, input, `${p}trees`, gbt.trees, false);
    log = g.node('Add', [log, trees], `${p}log_latency`);
  }
  const mean = g.node('Exp', [log], `${p}latency`);
  return { mean, std: g.relative(p, mean, gbt.rel_std) };
}

/**
 * auto: each member reads its columns (a Slice of x), the means are blended with the
 * weights, std = sqrt(sum w_i (std_i^2 + (mean_i - mean)^2)): the members' own
 * uncertainties plus their disagreement.
 */
function writeAuto(g: GraphWriter, input: string, p: string, auto: AutoJson): Outputs {
  const parts = auto.members.map((member, i) => {
    const q = `${p}m${i}.`;
    const x = g.slice(input, `${q}x`, member.columns[0], member.columns[1]);
    const out = writeMember(g, x, q, member.model);
    return { ...out, weight: member.weight, q };
  });
  const weighted = (name: string, terms: { value: string; weight: number; q: string }[]) => {
    const scaled = terms.map((t) =>
      g.node('Mul', [t.value, g.scalar(`${t.q}${name}_w`, t.weight)], `${t.q}${name}_weighted`),
    );
    return scaled.length === 1 ? (scaled[0] as string) : g.node('Sum', scaled, `${p}${name}`);
  };
  const mean = weighted(
    'mean',
    parts.map((m) => ({ value: m.mean, weight: m.weight, q: m.q })),
  );
  const variance = weighted(
    'variance',
    parts.map((m) => {
      const d = g.node('Sub', [m.mean, mean], `${m.q}deviation`);
      const v = g.node(
        'Add',
        [
          g.node('Mul', [m.std, m.std], `${m.q}std_sq`),
          g.node('Mul', [d, d], `${m.q}deviation_sq`),
        ],
        `${m.q}var`,
      );
      return { value: v, weight: m.weight, q: m.q };
    }),
  );
  return { mean, std: g.node('Sqrt', [variance], `${p}std`) };
}

function writeMember(g: GraphWriter, input: string, p: string, model: MemberModelJson): Outputs {
  switch (model.kind) {
    case 'mlp':
      return writeMlp(g, input, p, mlpStateFromJson(model));
    case 'ridge':
      return writeRidge(g, input, p, model);
    case 'lut':
      return writeLut(g, input, p, model);
    case 'rf':
      return writeRf(g, input, p, model);
    case 'gbt':
      return writeGbt(g, input, p, model);
  }
}

export function mlpToOnnxGraph(state: MlpState): OnnxGraph {
  const g = new GraphWriter();
  return g.graph('esm_mlp_predictor', state.inputMean.length, writeMlp(g, ONNX_INPUT, '', state));
}

export function ridgeToOnnxGraph(ridge: RidgeJson): OnnxGraph {
  const g = new GraphWriter();
  return g.graph('esm_ridge_predictor', ridge.weights.length, writeRidge(g, ONNX_INPUT, '', ridge));
}

export function lutToOnnxGraph(lut: LutJson): OnnxGraph {
  const g = new GraphWriter();
  return g.graph('esm_lut_predictor', lut.costs.length, writeLut(g, ONNX_INPUT, '', lut));
}

/** The ONNX graph of any stored model (predictor.json's `model`). */
export function modelToOnnxGraph(model: ModelJson): OnnxGraph {
  if (model.kind === 'transfer') {
    return transferToOnnxGraph(modelToOnnxGraph(model.prior), model.correction);
  }
  const g = new GraphWriter();
  const out =
    model.kind === 'auto'
      ? writeAuto(g, ONNX_INPUT, '', model)
      : writeMember(g, ONNX_INPUT, '', model);
  return g.graph(`esm_${model.kind}_predictor`, modelInputs(model), out);
}

/** Metadata stored in the ONNX model so the file explains itself. */
export function onnxMetadata(fields: Record<string, string>): Record<string, string> {
  return {
    'esm.input': `${ONNX_INPUT}: raw encoded vector`,
    'esm.output': `${ONNX_OUTPUT}: latency in ms`,
    ...fields,
  };
}
