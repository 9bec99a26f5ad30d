import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../core/spaces/graph-builder.ts';
import type { LayerGraph } from '../../core/spaces/types.ts';
import { buildOnnxModel } from '../../device-client/onnx-builder.ts';

/** Runs a layer graph in onnxruntime on `input` ([1, C, R, R], row-major). */
async function run(graph: LayerGraph, input: Float32Array): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(buildOnnxModel(graph), {
    intraOpNumThreads: 1,
  });
  const r = graph.resolution;
  const out = await session.run({
    input: new ort.Tensor('float32', input, [1, graph.inputChannels, r, r]),
  });
  await session.release();
  return out.logits?.data as Float32Array;
}

describe('onnx builder: the layer-wise and cell ops', () => {
  // 6 channels of a 2x2 map, channel c holding 10c .. 10c + 3.
  const input = Float32Array.from({ length: 24 }, (_, i) => 10 * Math.floor(i / 4) + (i % 4) - 1);

  it('shuffle interleaves the groups: channels 0..5 in 3 groups become 0,2,4,1,3,5', async () => {
    const g = new GraphBuilder('t', 2, 6);
    const out = await run(g.build(g.shuffle(g.input(), 3)), input);
    const order = [0, 2, 4, 1, 3, 5].flatMap((c) => Array.from(input.slice(4 * c, 4 * c + 4)));
    expect(Array.from(out)).toEqual(order);
    const two = new GraphBuilder('t', 2, 6);
    const halves = await run(two.build(two.shuffle(two.input(), 2)), input);
    expect(Array.from(halves.slice(0, 8))).toEqual([...input.slice(0, 4), ...input.slice(12, 16)]);
  });

  it('act applies the activation alone; zero gives zeros of the input`s shape', async () => {
    const g = new GraphBuilder('t', 2, 6);
    const relu = await run(g.build(g.act(g.input(), 'relu')), input);
    expect(Array.from(relu)).toEqual(Array.from(input, (v) => Math.max(0, v)));
    const z = new GraphBuilder('t', 2, 6);
    const zeros = await run(z.build(z.zero(z.input())), input);
    expect(zeros).toHaveLength(24);
    expect(zeros.every((v) => v === 0)).toBe(true);
  });
});
