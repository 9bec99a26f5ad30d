/**
 * The ONNX graph of a transferred predictor (core/predictor/transfer.ts): the prior's graph
 * followed by the correction, on the same input. Apart from transfer.ts so that the ONNX
 * export (export-onnx.ts) can use it without importing the fitting code.
 */
import { ValidationError } from '../errors.ts';
import type { OnnxGraph, OnnxNode } from '../onnx/model.ts';
import { type CorrectionJson, PRIOR_FLOOR_MS } from './transfer-json.ts';

/**
 * The ONNX graph of a transferred predictor: the prior's graph (its names prefixed with
 * `prior.`, its output renamed) followed by the correction, on the same input `x`.
 */
export function transferToOnnxGraph(priorGraph: OnnxGraph, c: CorrectionJson): OnnxGraph {
  const input = priorGraph.inputs[0];
  const output = priorGraph.outputs[0];
  if (!input || !output || typeof input.shape[1] !== 'number') {
    throw new ValidationError(
      'prior',
      'the prior ONNX graph needs one input [batch, features] and one output',
    );
  }
  const cols = input.shape[1];
  const rename = (name: string) => (name === input.name || name === '' ? name : `prior.${name}`);
  const nodes: OnnxNode[] = priorGraph.nodes.map((node) => ({
    ...node,
    name: node.name === undefined ? undefined : rename(node.name),
    inputs: node.inputs.map(rename),
    outputs: node.outputs.map(rename),
  }));
  const initializers = priorGraph.initializers.map((t) => ({ ...t, name: rename(t.name) }));
  const node = (op: string, inputs: string[], out: string) => {
    nodes.push({ op, inputs, outputs: [out], name: out });
    return out;
  };
  const scalar = (name: string, value: number) => {
    initializers.push({ name, dims: [], data: Float32Array.of(value) });
    return name;
  };
  const priorMs = rename(output.name);
  const q =
    c.space === 'log'
      ? node(
          'Log',
          [
            node(
              'Max',
              [priorMs, scalar('correction.floor_ms', PRIOR_FLOOR_MS)],
              'correction.prior_floored',
            ),
          ],
          'correction.log_prior',
        )
      : priorMs;
  const scaled = node('Mul', [q, scalar('correction.slope', c.slope)], 'correction.scaled');
  let offset: string;
  if (c.features) {
    initializers.push(
      { name: 'correction.weight', dims: [cols, 1], data: Float32Array.from(c.features.weights) },
      { name: 'correction.bias', dims: [1], data: Float32Array.of(c.intercept) },
    );
    offset = node(
      'Gemm',
      [input.name, 'correction.weight', 'correction.bias'],
      'correction.features',
    );
  } else {
    offset = scalar('correction.intercept', c.intercept);
  }
  const t = node('Add', [scaled, offset], 'correction.target');
  const latency = c.space === 'log' ? node('Exp', [t], 'correction.latency') : t;
  node('Identity', [latency], output.name);
  return {
    name: 'esm_transfer_predictor',
    nodes,
    initializers,
    inputs: priorGraph.inputs,
    // Only the corrected latency: the prior's std_ms is the other device's uncertainty.
    outputs: [output],
  };
}
