import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { attr, decodeModel, encodeModel, type OnnxGraph } from '../../core/onnx/model.ts';

// y = relu(x W + b) with a symbolic batch dimension.
const graph: OnnxGraph = {
  name: 'tiny',
  nodes: [
    { op: 'Gemm', inputs: ['x', 'W', 'b'], outputs: ['h'], attributes: { alpha: attr.float(1) } },
    { op: 'Relu', inputs: ['h'], outputs: ['y'] },
  ],
  initializers: [
    { name: 'W', dims: [2, 3], data: new Float32Array([1, -1, 0.5, 2, 0, -3]) },
    { name: 'b', dims: [3], data: new Float32Array([0.1, 0.2, 0.3]) },
  ],
  inputs: [{ name: 'x', elemType: 'float', shape: ['batch', 2] }],
  outputs: [{ name: 'y', elemType: 'float', shape: ['batch', 3] }],
};

describe('ONNX writer', () => {
  it('writes a model that onnxruntime runs with the expected arithmetic', async () => {
    const bytes = encodeModel(graph);
    const session = await ort.InferenceSession.create(bytes);
    const x = new ort.Tensor('float32', new Float32Array([1, 2, -1, 0]), [2, 2]);
    const { y } = await session.run({ x });
    // Row 1: [1*1+2*2+0.1, 1*-1+2*0+0.2, 1*0.5+2*-3+0.3] = [5.1, -0.8, -5.2] -> relu.
    // Row 2: [-1+0.1, 1+0.2, -0.5+0.3] = [-0.9, 1.2, -0.2] -> relu.
    expect(y?.dims).toEqual([2, 3]);
    const expected = [5.1, 0, 0, 0, 1.2, 0];
    Array.from(y?.data as Float32Array).forEach((v, i) => {
      expect(v).toBeCloseTo(expected[i] as number, 5);
    });
  });

  it('round-trips structure, attributes, initialisers and metadata', () => {
    const decoded = decodeModel(encodeModel(graph, { opset: 17, metadata: { space: 'x' } }));
    expect(decoded.opset).toBe(17);
    expect(decoded.metadata).toEqual({ space: 'x' });
    expect(decoded.nodes.map((n) => n.op)).toEqual(['Gemm', 'Relu']);
    expect(decoded.nodes[0]?.attributes).toEqual({ alpha: attr.float(1) });
    expect(Array.from(decoded.initializers[0]?.data as Float32Array)).toEqual([
      1, -1, 0.5, 2, 0, -3,
    ]);
    expect(decoded.inputs[0]).toEqual({ name: 'x', elemType: 'float', shape: ['batch', 2] });
  });
});
