import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createRng } from '../../core/rng.ts';
import {
  depthBins,
  poolDepthBins,
  randomDepthDistribution,
  sampleArchitectures,
} from '../../core/sampling.ts';
import { FBNET_OPS, fbnet, fbnetImagenet } from '../../core/spaces/fbnet.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { cellLiveness, NB201_OPS, nasbench201 } from '../../core/spaces/nasbench201.ts';
import { spaceFromSpec } from '../../core/spaces/spec.ts';
import {
  cardinality,
  depth,
  depthRange,
  randomSubnet,
  subnetKey,
  subnetWithDepth,
} from '../../core/spaces/subnet.ts';
import type { LayerGraph } from '../../core/spaces/types.ts';
import { buildOnnxGraph, countParameters } from '../../device-client/onnx-builder.ts';
import { sharedDataAvailable, sharedDataPath } from '../support/shared-data.ts';

const helpFbnet = sharedDataAvailable('help-fbnet/titan_rtx_64.jsonl');
const nb201Pixel3 = sharedDataAvailable('nb201/pixel3.jsonl');

const dataLines = (file: string, n: number): { arch: unknown; latency_ms: number }[] =>
  readFileSync(sharedDataPath(file), 'utf8')
    .trim()
    .split('\n')
    .slice(0, n)
    .map((l) => JSON.parse(l));

const params = (graph: LayerGraph) => countParameters(buildOnnxGraph(graph));
/** A conv with bias (batch norm folded into it). */
const conv = (cin: number, cout: number, k: number, groups = 1) =>
  cout * (cin / groups) * k * k + cout;

describe('fbnet', () => {
  it('has 9^22 architectures, 22 layers in 7 stages, depth 0..22', () => {
    expect(cardinality(fbnet)).toBe(9n ** 22n);
    expect(cardinality(fbnetImagenet)).toBe(9n ** 22n);
    expect(fbnet.units.map((u) => u.maxDepth)).toEqual([1, 4, 4, 4, 4, 4, 1]);
    expect(depthRange(fbnet)).toEqual({ min: 0, max: 22 });
    expect(getSpace('fbnet')).toBe(fbnet);
    expect(getSpace('fbnet-imagenet')).toBe(fbnetImagenet);
  });

  it.skipIf(!helpFbnet)(
    'reads every HELP FBNet arch and writes it back unchanged; depth counts non-skip layers',
    () => {
      const lines = dataLines('help-fbnet/titan_rtx_64.jsonl', 500);
      for (const { arch } of lines) {
        const subnet = fbnet.parse(arch);
        expect(fbnet.toNative(subnet)).toEqual(arch);
        const ops = (arch as { ops: number[] }).ops;
        expect(depth(subnet)).toBe(ops.filter((o) => o !== 8).length);
      }
      const named = fbnet.parse({ ops: new Array(22).fill('k5_e1_g2') });
      expect(fbnet.toNative(named).ops).toEqual(new Array(22).fill(FBNET_OPS.indexOf('k5_e1_g2')));
    },
  );

  it('names the wrong field with the allowed ops', () => {
    const ops = new Array(22).fill(0);
    expect(() => fbnet.parse({ ops: ops.slice(1) })).toThrow(/^ops: expected an array of 22/);
    expect(() => fbnet.parse({ ops: [...ops.slice(1), 9] })).toThrow(
      /^ops\[21\]: got 9, allowed values are 0..8 \(0 k3_e1, 1 k3_e1_g2, .*8 skip\)/,
    );
    expect(() => fbnet.parse({ ops: [...ops.slice(1), 'k7_e6'] })).toThrow(
      /^ops\[21\]: got "k7_e6"/,
    );
    expect(() => fbnet.parse({ ops, r: 32 })).toThrow(
      /^r: unknown field; a fbnet arch has only ops/,
    );
  });

  it('samples every op uniformly (random) and every depth exactly (balanced)', () => {
    const rng = createRng(4);
    const counts = new Array(9).fill(0);
    for (let i = 0; i < 2000; i++) {
      for (const op of fbnet.toNative(randomSubnet(fbnet, rng)).ops) counts[op] += 1;
    }
    // 44,000 draws: each op 1/9 (4889) within 5 %.
    for (const c of counts) expect(Math.abs(c / 44000 - 1 / 9)).toBeLessThan(0.005);
    for (let d = 0; d <= 22; d++) expect(depth(subnetWithDepth(fbnet, d, rng))).toBe(d);
    const bins = depthBins(fbnet, 10);
    const balanced = sampleArchitectures(fbnet, { n: 100, strategy: 'balanced', rng, bins });
    const perBin = bins.map((b) => balanced.filter((s) => depth(s) >= b.lo && depth(s) <= b.hi));
    expect(perBin.map((l) => l.length)).toEqual(new Array(10).fill(10));
    // Random depth is binomial(22, 8/9): mean 22 * 8 / 9.
    const dist = randomDepthDistribution(fbnet);
    expect(dist.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(dist.reduce((a, p, d) => a + p * d, 0)).toBeCloseTo((22 * 8) / 9, 10);
  });

  it.skipIf(!helpFbnet)(
    'bins a replay pool over the depths it holds (HELP: 13..22 of 0..22)',
    () => {
      const pool = dataLines('help-fbnet/titan_rtx_64.jsonl', 5000).map(({ arch }) => ({
        depth: depth(fbnet.parse(arch)),
      }));
      const bins = poolDepthBins(pool, 5);
      expect(bins[0]?.lo).toBe(Math.min(...pool.map((p) => p.depth)));
      expect(bins.at(-1)?.hi).toBe(22);
      expect(bins).toHaveLength(5);
      expect(depthBins(fbnet, 5)[0]).toEqual({ lo: 0, hi: 3 });
      expect(() => poolDepthBins([], 5)).toThrow(/^pool: the replay pool is empty/);
    },
  );

  it('has the parameters of hand arithmetic: all skips, and all k5_e6 / k3_e1_g2', () => {
    // All skips: stem, one 1x1 conv + ReLU where each stage widens, head 1x1, FC 100.
    const allSkip =
      conv(3, 16, 3) +
      conv(16, 24, 1) +
      conv(24, 32, 1) +
      conv(32, 64, 1) +
      conv(64, 112, 1) +
      conv(112, 184, 1) +
      conv(184, 352, 1) +
      conv(352, 1504, 1) +
      (1504 * 100 + 100);
    expect(allSkip).toBe(778372);
    expect(params(fbnet.layerGraph(fbnet.parse({ ops: new Array(22).fill(8) })))).toBe(allSkip);

    const layer = (cin: number, cout: number, k: number, e: number, g: number) =>
      conv(cin, cin * e, 1, g) + conv(cin * e, cin * e, k, cin * e) + conv(cin * e, cout, 1, g);
    const stack = (k: number, e: number, g: number) => {
      let total = conv(3, 16, 3);
      let cin = 16;
      [1, 4, 4, 4, 4, 4, 1].forEach((n, s) => {
        const cout = [16, 24, 32, 64, 112, 184, 352][s] as number;
        for (let i = 0; i < n; i++) {
          total += layer(cin, cout, k, e, g);
          cin = cout;
        }
      });
      return total;
    };
    const k5e6 = stack(5, 6, 1) + conv(352, 1504, 1) + 1504 * 100 + 100;
    expect(params(fbnet.layerGraph(fbnet.parse({ ops: new Array(22).fill(7) })))).toBe(k5e6);
    const k3g2 = stack(3, 1, 2) + conv(352, 1984, 1) + 1984 * 1000 + 1000;
    const imagenet = fbnetImagenet.parse({ ops: new Array(22).fill(1) });
    expect(params(fbnetImagenet.layerGraph(imagenet))).toBe(k3g2);
  });

  it('builds grouped 1x1 convs with a channel shuffle, residuals where the shape allows', () => {
    const graph = fbnet.layerGraph(fbnet.parse({ ops: new Array(22).fill(1) }));
    const shuffles = graph.nodes.filter((n) => n.op === 'shuffle');
    expect(shuffles).toHaveLength(22);
    expect(shuffles.every((n) => n.op === 'shuffle' && n.groups === 2)).toBe(true);
    const grouped = graph.nodes.filter((n) => n.op === 'conv' && n.kernel === 1 && n.groups === 2);
    expect(grouped).toHaveLength(44);
    // A residual in every layer that keeps the shape: 22 minus the first layers of stages 2-7,
    // which widen (stage 1 keeps 16 channels).
    expect(graph.nodes.filter((n) => n.op === 'add')).toHaveLength(16);
    // CIFAR: 32 -> 16 -> 8 -> 4 (stages 3, 4 and 6 stride); ImageNet: 224 / 2 / 2^4 = 7.
    const last = (g: LayerGraph) => g.nodes.filter((n) => n.op === 'pool').at(-1)?.resolution;
    expect(last(graph)).toBe(4);
    expect(
      last(fbnetImagenet.layerGraph(fbnetImagenet.parse({ ops: new Array(22).fill(1) }))),
    ).toBe(7);
  });
});

describe('nasbench201', () => {
  const ALL = (op: string) => `|${op}~0|+|${op}~0|${op}~1|+|${op}~0|${op}~1|${op}~2|`;

  it.skipIf(!nb201Pixel3)(
    'has 15,625 cells and reads all of HW-NAS-Bench`s, writing each back unchanged',
    () => {
      expect(cardinality(nasbench201)).toBe(15625n);
      expect(depthRange(nasbench201)).toEqual({ min: 0, max: 6 });
      const lines = dataLines('nb201/pixel3.jsonl', 20000);
      expect(lines).toHaveLength(15625);
      const keys = new Set<string>();
      for (const { arch } of lines) {
        const subnet = nasbench201.parse(arch);
        expect(nasbench201.toNative(subnet)).toEqual(arch);
        keys.add(subnetKey(subnet));
      }
      expect(keys.size).toBe(15625);
    },
  );

  it('depth counts the edges that compute (conv or pool), not none or skip_connect', () => {
    const parse = (s: string) => nasbench201.parse({ arch_str: s });
    expect(depth(parse(ALL('none')))).toBe(0);
    expect(depth(parse(ALL('skip_connect')))).toBe(0);
    expect(depth(parse(ALL('avg_pool_3x3')))).toBe(6);
    const mixed = '|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|';
    expect(depth(parse(mixed))).toBe(3);
    const rng = createRng(2);
    for (let d = 0; d <= 6; d++) expect(depth(subnetWithDepth(nasbench201, d, rng))).toBe(d);
  });

  it('names what is wrong in an arch string', () => {
    const bad = (arch_str: unknown) => () => nasbench201.parse({ arch_str });
    expect(bad(5)).toThrow(/^arch_str: expected the NAS-Bench-201 string/);
    expect(bad('|none~0|+|none~0|none~1|')).toThrow(/^arch_str: expected 3 node groups/);
    expect(bad('|none~0|+|none~0|+|none~0|none~1|none~2|')).toThrow(
      /^arch_str node 2: expected 2 edges/,
    );
    expect(bad('|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|')).toThrow(
      /^arch_str node 1 edge 0: unknown op "conv"; allowed ops are none, skip_connect/,
    );
    expect(bad('|none~1|+|none~0|none~1|+|none~0|none~1|none~2|')).toThrow(
      /^arch_str node 1 edge 0: "none~1" must come from node 0/,
    );
    expect(NB201_OPS).toHaveLength(5);
  });

  it('finds effective edges, live paths and dead cells', () => {
    // 0->1 conv, 1->3 none, 1->2 none: node 1 reaches nothing, so edge 0->1 is not effective.
    // 2->3 conv is effective (it feeds the output) though node 2 is zero (no input reaches it).
    const ops = [3, 0, 0, 0, 0, 3];
    expect(cellLiveness(ops)).toEqual({
      effective: [false, false, false, false, false, true],
      live: [false, false, false, false, false, false],
      dead: true,
    });
    const skipPath = cellLiveness([1, 0, 0, 0, 3, 0]);
    expect(skipPath.dead).toBe(false);
    expect(skipPath.live).toEqual([true, false, false, false, true, false]);
  });

  it('has the parameters of hand arithmetic, and NAS-Bench-201`s published 1.53 M for all-3x3', () => {
    const graphOf = (s: string) => nasbench201.layerGraph(nasbench201.parse({ arch_str: s }));
    // Stem, two reduction blocks (conv_a, conv_b, 1x1 shortcut), final BN (2 x 64), FC 10.
    const macro =
      conv(3, 16, 3) +
      conv(16, 32, 3) +
      conv(32, 32, 3) +
      conv(16, 32, 1) +
      conv(32, 64, 3) +
      conv(64, 64, 3) +
      conv(32, 64, 1) +
      2 * 64 +
      (64 * 10 + 10);
    expect(params(graphOf(ALL('none')))).toBe(macro);
    expect(params(graphOf(ALL('skip_connect')))).toBe(macro);
    expect(params(graphOf(ALL('avg_pool_3x3')))).toBe(macro);
    const cells = [16, 32, 64].reduce((s, c) => s + 5 * 6 * conv(c, c, 3), 0);
    const ours = macro + cells;
    expect(params(graphOf(ALL('nor_conv_3x3')))).toBe(ours);
    // PyTorch counts BN as 2C where we fold it into a C-long conv bias; the two 1x1 shortcut
    // convs have neither. Converted, ours gives NAS-Bench-201's 1.531546 MB.
    const bnConvs = 1 + 2 + 2 + 15 * 6;
    const channels = 16 + (32 + 32) + (64 + 64) + 6 * 5 * (16 + 32 + 64);
    expect(bnConvs).toBe(95);
    expect(ours + channels - (32 + 64)).toBe(1531546);
  });

  it('builds only effective edges; a cell without inputs to its output is zeros', () => {
    const graphOf = (s: string) => nasbench201.layerGraph(nasbench201.parse({ arch_str: s }));
    const count = (g: LayerGraph, op: string) => g.nodes.filter((n) => n.op === op).length;
    const dead = graphOf(ALL('none'));
    expect(count(dead, 'zero')).toBe(15);
    // Only the stem and the reduction blocks' convs.
    expect(count(dead, 'conv')).toBe(7);
    const partial = graphOf('|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|');
    // Per cell: the 2->3 conv on node 2's zeros, never the 0->1 conv (it reaches nothing).
    expect(count(partial, 'conv')).toBe(7 + 15);
    expect(count(partial, 'zero')).toBe(15);
    const full = graphOf(ALL('nor_conv_3x3'));
    expect(count(full, 'conv')).toBe(7 + 90);
    // Node j sums j inputs: 0 + 1 + 2 adds per cell, plus one per reduction block.
    expect(count(full, 'add')).toBe(15 * 3 + 2);
  });
});

describe('spec spaces: layer-wise units and fbnet blocks', () => {
  const spec = JSON.parse(
    readFileSync(new URL('../../examples/spaces/layerwise-fbnet.json', import.meta.url), 'utf8'),
  );
  const space = spaceFromSpec(spec);

  it('counts (layer configurations + 1)^slots per layer-wise unit', () => {
    // s1: 2 x 3 x 2 + skip = 13 per slot, 3 slots; s2: 2 x 2 x 2 + 1 = 9, 4 slots;
    // s3: trailing depth 1..2 of 4 configurations; 2 resolutions.
    expect(cardinality(space)).toBe(13n ** 3n * 9n ** 4n * (4n + 16n) * 2n);
    expect(depthRange(space)).toEqual({ min: 1, max: 9 });
  });

  it('reads a skip anywhere as {"skip": 1} and builds grouped convs with a shuffle', () => {
    const layer = { kernel: 5, expand: 6, groups: 2 };
    const arch = {
      d: [3, 4, 1],
      blocks: [
        [{ skip: 1 }, layer, { skip: 1 }],
        [layer, layer, { skip: 1 }, layer],
        [{ kernel: 3, expand: 4 }],
      ],
      r: 64,
    };
    const subnet = space.parse(arch);
    expect(depth(subnet)).toBe(1 + 3 + 1);
    expect(space.toNative(subnet)).toEqual(arch);
    const graph = space.layerGraph(subnet);
    // A skip at a stage's first slot is a 1x1 conv (stride 2, 16 -> 24); later ones vanish.
    const first = graph.nodes.find((n) => n.op === 'conv' && n.cin === 16 && n.cout === 24);
    expect(first).toMatchObject({ kernel: 1, stride: 2 });
    expect(graph.nodes.filter((n) => n.op === 'shuffle')).toHaveLength(4);
    buildOnnxGraph(graph);
  });

  it('rejects skips in units without "skip": true, elastic layer-wise units and bad groups', () => {
    const l = { kernel: 3, expand: 1, groups: 1 };
    const arch = { d: [3, 4, 1], blocks: [[l, l, l], [l, l, l, l], [{ skip: 1 }]], r: 64 };
    expect(() => space.parse(arch)).toThrow(/^blocks\[2\]\[0\]\.skip: not a feature of mbconv/);
    expect(() => space.parse(arch)).toThrow(/set "skip": true on the unit/);
    const units = spec.units as Record<string, unknown>[];
    const elastic = { ...spec, units: [{ ...units[0], maxDepth: 4 }, ...units.slice(1)] };
    expect(() => spaceFromSpec(elastic)).toThrow(/^units\[0\]\.skip: a layer-wise unit/);
    const odd = {
      ...spec,
      units: [{ ...units[0], width: 25 }, ...units.slice(1)],
    };
    expect(() => spaceFromSpec(odd)).toThrow(
      /^units\[0\]\.choices\.groups: groups 2 must divide the unit's input and output channels, not 25/,
    );
  });
});
