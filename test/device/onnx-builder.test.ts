import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../core/errors.ts';
import { decodeModel } from '../../core/onnx/model.ts';
import { getSpace } from '../../core/spaces/index.ts';
import type { LayerGraph } from '../../core/spaces/types.ts';
import {
  buildOnnxGraph,
  buildOnnxModel,
  countParameters,
  samePads,
} from '../../device-client/onnx-builder.ts';
import { extremeArchs } from '../../device-client/references.ts';

function graphOf(space: string, arch: Record<string, unknown>): LayerGraph {
  const s = getSpace(space);
  return s.layerGraph(s.parse(arch));
}

async function run(graph: LayerGraph, batchSize = 1): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(buildOnnxModel(graph, { batchSize }), {
    intraOpNumThreads: 1,
  });
  const r = graph.resolution;
  const input = new ort.Tensor(
    'float32',
    Float32Array.from({ length: batchSize * 3 * r * r }, (_, i) => (i % 7) / 7),
    [batchSize, 3, r, r],
  );
  const out = await session.run({ input });
  await session.release();
  return out.logits as ort.Tensor;
}

/** A conv with bias (batch norm folded into it): weights + one bias per output channel. */
const conv = (cin: number, cout: number, k: number, groups = 1) =>
  cout * (cin / groups) * k * k + cout;

/** OFA's make_divisible(v, 8), written out from once-for-all/ofa/utils. */
function makeDivisible(v: number): number {
  let r = Math.max(8, Math.floor((v + 4) / 8) * 8);
  if (r < 0.9 * v) r += 8;
  return r;
}

describe('onnx builder', () => {
  const cases = Object.entries(extremeArchs).flatMap(([space, archs]) => [
    [space, 'smallest', archs.smallest] as const,
    [space, 'largest', archs.largest] as const,
  ]);

  it.each(cases)(
    '%s %s runs in onnxruntime with finite [1, classes] logits',
    async (space, _, arch) => {
      const graph = graphOf(space, arch);
      const head = graph.nodes.find((n) => n.id === graph.output);
      const logits = await run(graph);

      expect(logits.dims).toEqual([1, head?.op === 'linear' ? head.cout : -1]);
      const data = logits.data as Float32Array;
      expect(data.every(Number.isFinite)).toBe(true);
      expect(data.some((v) => v !== 0)).toBe(true);
    },
  );

  it('honours the batch size', async () => {
    const logits = await run(graphOf('mobilenetv3', extremeArchs.mobilenetv3?.smallest ?? {}), 3);
    expect(logits.dims).toEqual([3, 1000]);
  });

  it('counts the parameters of the largest OFA MobileNetV3 subnet as the definition gives', () => {
    // Stem 3x3 s2 -> 16, first block (e1 k3, 16 -> 16): depthwise + project.
    let expected = conv(3, 16, 3) + conv(16, 16, 3, 16) + conv(16, 16, 1);
    const widths = [24, 40, 80, 112, 160];
    const se = [false, true, false, true, true];
    let cin = 16;
    widths.forEach((w, u) => {
      for (let i = 0; i < 4; i++) {
        const mid = cin * 6; // expand 6 of a multiple of 8 is already divisible by 8
        expected += conv(cin, mid, 1) + conv(mid, mid, 7, mid);
        if (se[u]) {
          const r = makeDivisible(Math.floor(mid / 4));
          expected += conv(mid, r, 1) + conv(r, mid, 1);
        }
        expected += conv(mid, w, 1);
        cin = w;
      }
    });
    expected += conv(160, 960, 1) + conv(960, 1280, 1) + (1280 * 1000 + 1000);

    const onnx = buildOnnxGraph(graphOf('mobilenetv3', extremeArchs.mobilenetv3?.largest ?? {}));

    expect(countParameters(onnx)).toBe(expected);
    expect(expected).toBeGreaterThan(7_000_000); // sanity: OFA reports ~7.7 M with BN affine
  });

  it('counts the parameters of the largest OFA ResNet50 subnet as the definition gives', () => {
    // Stem (width x1.0): 3 -> 32 s2, 32 -> 32 (residual), 32 -> 64, then max pool.
    let expected = conv(3, 32, 3) + conv(32, 32, 3) + conv(32, 64, 3);
    const widths = [256, 512, 1024, 2048];
    const depths = [4, 4, 6, 4];
    let cin = 64;
    widths.forEach((w, u) => {
      const mid = makeDivisible(Math.round(w * 0.35));
      for (let i = 0; i < (depths[u] as number); i++) {
        expected += conv(cin, mid, 1) + conv(mid, mid, 3) + conv(mid, w, 1);
        if (i === 0) expected += conv(cin, w, 1); // projection shortcut
        cin = w;
      }
    });
    expected += 2048 * 1000 + 1000;

    const onnx = buildOnnxGraph(graphOf('resnet50', extremeArchs.resnet50?.largest ?? {}));

    expect(countParameters(onnx)).toBe(expected);
  });

  it('is deterministic per seed and never all zeros', () => {
    const graph = graphOf('mobilenetv3', extremeArchs.mobilenetv3?.smallest ?? {});
    const a = buildOnnxModel(graph, { seed: 1 });
    const b = buildOnnxModel(graph, { seed: 1 });
    const c = decodeModel(buildOnnxModel(graph, { seed: 2 }));

    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    const weights = decodeModel(a).initializers[0]?.data as Float32Array;
    expect(weights.some((v) => v !== 0)).toBe(true);
    expect(Array.from(weights)).not.toEqual(Array.from(c.initializers[0]?.data as Float32Array));
    expect(decodeModel(a).opset).toBe(17);
  });

  it('pads so that every output is ceil(resolution / stride)', () => {
    for (let res = 5; res <= 40; res++) {
      for (const kernel of [1, 2, 3, 5, 7]) {
        for (const stride of [1, 2]) {
          const [top, left, bottom, right] = samePads(res, kernel, stride) as number[];
          expect(top).toBe(left);
          expect(bottom).toBe(right);
          const out =
            Math.floor((res + (top as number) + (bottom as number) - kernel) / stride) + 1;
          expect(out, `res ${res} kernel ${kernel} stride ${stride}`).toBe(Math.ceil(res / stride));
        }
      }
    }
    expect(samePads(112, 3, 2)).toEqual([1, 1, 1, 1]); // PyTorch's padding for odd kernels
  });

  it('rejects a graph whose node reads an undefined tensor, naming the node', () => {
    const graph: LayerGraph = {
      space: 'broken',
      resolution: 32,
      inputChannels: 3,
      output: 'conv1',
      nodes: [
        {
          op: 'conv',
          id: 'conv1',
          input: 'nowhere',
          resolution: 32,
          cin: 3,
          cout: 8,
          kernel: 3,
          stride: 1,
          groups: 1,
          act: 'relu',
        },
      ],
    };
    expect(() => buildOnnxGraph(graph)).toThrow(ValidationError);
    expect(() => buildOnnxGraph(graph)).toThrow(/node conv1.*nowhere/);
  });
});
