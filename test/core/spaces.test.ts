import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ArchValidationError } from '../../core/errors.ts';
import { createRng } from '../../core/rng.ts';
import { densenet } from '../../core/spaces/densenet.ts';
import { builtInSpaces, getSpace } from '../../core/spaces/index.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { resnet50 } from '../../core/spaces/resnet50.ts';
import { spaceFromSpec } from '../../core/spaces/spec.ts';
import {
  cardinality,
  depth,
  depthRange,
  randomSubnet,
  subnetKey,
  subnetWithDepth,
} from '../../core/spaces/subnet.ts';
import type { LayerGraph, SearchSpace } from '../../core/spaces/types.ts';

/** Checks every edge: producers exist, channels and resolutions match; returns conv weights. */
function checkGraph(graph: LayerGraph, classes = 1000): number {
  const shapes = new Map<string, { channels: number; resolution: number }>();
  shapes.set('input', { channels: graph.inputChannels, resolution: graph.resolution });
  const producer = (id: string) => {
    const s = shapes.get(id);
    if (!s) throw new Error(`node input ${id} is not produced before use`);
    return s;
  };
  let weights = 0;
  for (const node of graph.nodes) {
    expect(shapes.has(node.id), `duplicate id ${node.id}`).toBe(false);
    switch (node.op) {
      case 'conv': {
        const p = producer(node.input);
        expect([node.id, p.channels, p.resolution]).toEqual([node.id, node.cin, node.resolution]);
        expect(node.cin % node.groups).toBe(0);
        weights += (node.cin / node.groups) * node.cout * node.kernel * node.kernel;
        const resolution = Math.ceil(node.resolution / node.stride);
        shapes.set(node.id, { channels: node.cout, resolution });
        break;
      }
      case 'linear': {
        const p = producer(node.input);
        expect([node.id, p.channels, p.resolution]).toEqual([node.id, node.cin, 1]);
        shapes.set(node.id, { channels: node.cout, resolution: 1 });
        break;
      }
      case 'pool': {
        const p = producer(node.input);
        expect([node.id, p.channels, p.resolution]).toEqual([
          node.id,
          node.channels,
          node.resolution,
        ]);
        const resolution = node.kind === 'global_avg' ? 1 : Math.ceil(p.resolution / node.stride);
        shapes.set(node.id, { channels: node.channels, resolution });
        break;
      }
      case 'se':
      case 'bn': {
        const p = producer(node.input);
        expect([node.id, p.channels, p.resolution]).toEqual([
          node.id,
          node.channels,
          node.resolution,
        ]);
        shapes.set(node.id, { channels: node.channels, resolution: node.resolution });
        break;
      }
      case 'add': {
        for (const input of node.inputs) {
          expect([node.id, producer(input)]).toEqual([
            node.id,
            { channels: node.channels, resolution: node.resolution },
          ]);
        }
        shapes.set(node.id, { channels: node.channels, resolution: node.resolution });
        break;
      }
      case 'concat': {
        const inputs = node.inputs.map(producer);
        expect(inputs.reduce((s, p) => s + p.channels, 0)).toBe(node.channels);
        for (const p of inputs) expect(p.resolution).toBe(node.resolution);
        shapes.set(node.id, { channels: node.channels, resolution: node.resolution });
        break;
      }
      case 'shuffle':
      case 'act':
      case 'zero': {
        const p = producer(node.input);
        expect([node.id, p]).toEqual([
          node.id,
          { channels: node.channels, resolution: node.resolution },
        ]);
        if (node.op === 'shuffle') expect(node.channels % node.groups).toBe(0);
        shapes.set(node.id, { channels: node.channels, resolution: node.resolution });
        break;
      }
    }
  }
  expect(producer(graph.output)).toEqual({ channels: classes, resolution: 1 });
  return weights;
}

const example = (file: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../examples/spaces/${file}`, import.meta.url), 'utf8'));

/** Classes of the spaces whose head is not ImageNet's 1000. */
const CLASSES: Record<string, number> = { fbnet: 100, nasbench201: 10, 'layerwise-fbnet': 100 };

const spaces = [
  ...builtInSpaces.values(),
  spaceFromSpec(example('layerwise-fbnet.json')),
  spaceFromSpec(example('tiny-mbconv.json')),
  spaceFromSpec(example('mixed.json')),
] as SearchSpace[];

describe.each(spaces.map((s) => [s.name, s] as const))('space %s', (_name, space) => {
  it('round-trips native archs and keeps sampled depths in range', () => {
    const rng = createRng(1);
    const range = depthRange(space);
    for (let i = 0; i < 200; i++) {
      const subnet = randomSubnet(space, rng);
      const native = JSON.parse(JSON.stringify(space.toNative(subnet)));
      const back = space.parse(native);
      expect(subnetKey(back)).toBe(subnetKey(subnet));
      expect(space.toNative(back)).toEqual(native);
      expect(depth(subnet)).toBeGreaterThanOrEqual(range.min);
      expect(depth(subnet)).toBeLessThanOrEqual(range.max);
    }
  });

  it('samples exactly the requested depth at every depth of the range', () => {
    const rng = createRng(2);
    const range = depthRange(space);
    for (let d = range.min; d <= range.max; d++) {
      expect(depth(subnetWithDepth(space, d, rng))).toBe(d);
    }
    expect(() => subnetWithDepth(space, range.max + 1, rng)).toThrow(ArchValidationError);
  });

  it('builds layer graphs whose channel bookkeeping is consistent', () => {
    const rng = createRng(3);
    for (let i = 0; i < 30; i++) {
      const graph = space.layerGraph(randomSubnet(space, rng));
      checkGraph(graph, CLASSES[space.name]);
    }
  });

  it('rejects non-objects and unknown fields by name', () => {
    expect(() => space.parse([1, 2])).toThrow(/arch: expected a JSON object/);
    const native = space.toNative(randomSubnet(space, createRng(4))) as Record<string, unknown>;
    expect(() => space.parse({ ...native, extra: 1 })).toThrow(/extra: unknown field/);
    if (space.resolutions.length > 1) {
      expect(() => space.parse({ ...native, r: 225 })).toThrow(/^r: got 225, allowed values are/);
    } else {
      expect(() => space.parse({ ...native, r: 225 })).toThrow(/^r: unknown field/);
    }
  });
});

it('registers the built-in spaces under their names', () => {
  for (const space of builtInSpaces.values()) expect(getSpace(space.name)).toBe(space);
  expect(() => getSpace('vgg')).toThrow(/space: unknown space "vgg"/);
});

describe('mobilenetv3', () => {
  it('has 7371^5 depth/kernel/expand configurations and 25 resolutions', () => {
    // Per unit: sum over d in {2,3,4} of 9^d = 81 + 729 + 6561 = 7371.
    expect(cardinality(mobilenetv3, { includeResolution: false })).toBe(7371n ** 5n);
    expect(cardinality(mobilenetv3)).toBe(7371n ** 5n * 25n);
    expect(depthRange(mobilenetv3)).toEqual({ min: 10, max: 20 });
  });

  it('reads OFA ArchManager samples: "wid": null and "r": [R]', () => {
    const native = mobilenetv3.toNative(randomSubnet(mobilenetv3, createRng(5)));
    const ofa = { wid: null, ks: native.ks, e: native.e, d: native.d, r: [native.r] };
    expect(subnetKey(mobilenetv3.parse(ofa))).toBe(subnetKey(mobilenetv3.parse(native)));
    expect(() => mobilenetv3.parse({ ...ofa, wid: 1.2 })).toThrow(/^wid: got 1.2; this space/);
    expect(() => mobilenetv3.parse({ ...ofa, r: [224, 192] })).toThrow(/^r: got \[224,192\]/);
  });

  it('reads OFA MobileNetArchEncoder samples: "image_size" as an int or a one-element list', () => {
    const native = mobilenetv3.toNative(randomSubnet(mobilenetv3, createRng(6)));
    const { r, ...rest } = native;
    const key = subnetKey(mobilenetv3.parse(native));
    expect(subnetKey(mobilenetv3.parse({ ...rest, image_size: r }))).toBe(key);
    expect(subnetKey(mobilenetv3.parse({ ...rest, image_size: [r] }))).toBe(key);
    expect(() => mobilenetv3.parse({ ...rest, image_size: 225 })).toThrow(/^image_size: got 225/);
    expect(() => mobilenetv3.parse({ ...native, image_size: r })).toThrow(
      'image_size: give the resolution once, as r',
    );
  });

  it('writes both OFA forms, and each parses back to the same subnet', () => {
    const rng = createRng(8);
    for (let i = 0; i < 20; i++) {
      const subnet = randomSubnet(mobilenetv3, rng);
      const encoder = mobilenetv3.nativeForms?.['ofa-encoder']?.(subnet) as Record<string, unknown>;
      const manager = mobilenetv3.nativeForms?.['ofa-manager']?.(subnet) as Record<string, unknown>;
      expect(encoder.image_size).toBe(subnet.resolution);
      expect(manager).toMatchObject({ wid: null, r: [subnet.resolution] });
      expect(subnetKey(mobilenetv3.parse(encoder))).toBe(subnetKey(subnet));
      expect(subnetKey(mobilenetv3.parse(manager))).toBe(subnetKey(subnet));
    }
    const r50 = randomSubnet(resnet50, rng);
    const r50Encoder = resnet50.nativeForms?.['ofa-encoder']?.(r50);
    expect(subnetKey(resnet50.parse(r50Encoder))).toBe(subnetKey(r50));
  });

  it('names the wrong block field and the allowed values', () => {
    const native = mobilenetv3.toNative(randomSubnet(mobilenetv3, createRng(5)));
    native.d = [4, 4, 4, 4, 4];
    native.ks[3] = 9;
    expect(() => mobilenetv3.parse(native)).toThrow('ks[3]: got 9, allowed values are 3, 5, 7');
  });
});

describe('resnet50', () => {
  const arch = (overrides: Partial<Record<'d' | 'e' | 'w', number[]>> & { r?: number } = {}) => ({
    d: [2, 1, 2, 2, 1],
    e: new Array(18).fill(0.25),
    w: [2, 2, 2, 2, 2, 2],
    r: 224,
    ...overrides,
  });

  it('counts its configurations exactly', () => {
    // Stage with base depth b: 3 widths x (3^b + 3^(b+1) + 3^(b+2)) expand settings.
    const stage2 = 3n * (3n ** 2n + 3n ** 3n + 3n ** 4n);
    const stage4 = 3n * (3n ** 4n + 3n ** 5n + 3n ** 6n);
    // Stem: skip or not x middle width {24, 32} x output width {40, 48, 64}.
    const stem = 2n * 2n * 3n;
    expect(cardinality(resnet50, { includeResolution: false })).toBe(stem * stage2 ** 3n * stage4);
    expect(depthRange(resnet50)).toEqual({ min: 10, max: 18 });
  });

  it('with depths 3-4-6-3, expand 0.25 and width 1.0 has the conv weights of ResNet-50', () => {
    const graph = resnet50.layerGraph(resnet50.parse(arch()));
    // torchvision ResNet-50 bottleneck convs hold 23,445,504 weights; OFA's 3-conv stem
    // (3->32, 32->32, 32->64, all 3x3) holds 864 + 9,216 + 18,432.
    expect(checkGraph(graph)).toBe(23_445_504 + 864 + 9_216 + 18_432);
  });

  it('skips the stem middle conv unless d[0] is 2', () => {
    const convs = (d0: number) =>
      resnet50
        .layerGraph(resnet50.parse(arch({ d: [d0, 1, 2, 2, 1] })))
        .nodes.filter((n) => n.op === 'conv').length;
    expect(convs(2) - convs(0)).toBe(1);
    expect(convs(1)).toBe(convs(0));
    expect(resnet50.toNative(resnet50.parse(arch({ d: [1, 1, 2, 2, 1] }))).d[0]).toBe(0);
  });

  it('maps OFA width indices to channels, merging the two equal stem widths', () => {
    const subnet = resnet50.parse(arch({ w: [1, 0, 0, 1, 2, 0] }));
    expect(subnet.globals).toEqual({ stemSkip: 0, stemMid: 24, stemOut: 40 });
    expect(subnet.units.map((u) => u.choices.width)).toEqual([0.65, 0.8, 1.0, 0.65]);
    expect(resnet50.toNative(subnet).w).toEqual([0, 0, 0, 1, 2, 0]);
    const convs = resnet50.layerGraph(subnet).nodes.filter((n) => n.op === 'conv');
    // make_divisible(256 * 0.65) = 168 and make_divisible(round(168 * 0.25)) = 40.
    expect(convs.slice(3, 7).map((c) => c.cout)).toEqual([168, 40, 40, 168]);
  });

  it('names bad fields with the allowed values', () => {
    expect(() => resnet50.parse(arch({ w: [0, 1, 2, 3, 0, 0] }))).toThrow(
      'w[3]: got 3, allowed values are 0, 1, 2',
    );
    expect(() => resnet50.parse(arch({ d: [2, 1, 3, 2, 1] }))).toThrow(
      'd[2]: got 3, allowed values are 0, 1, 2',
    );
    const e = new Array(18).fill(0.25);
    e[4] = 0.3;
    expect(() => resnet50.parse(arch({ e }))).toThrow('e[4]: got 0.3, allowed values are');
    expect(() => resnet50.parse(arch({ e: [0.25] }))).toThrow(/^e: expected an array of 18/);
  });

  it('reads the formats of OFA`s own tools: image_size, [r], 0 at inactive positions', () => {
    // As ResNetArchEncoder.feature2arch writes it: inactive expand ratios are 0.
    const e = new Array(18).fill(0.2);
    e[3] = 0;
    const fromEncoder = { d: [2, 1, 2, 2, 1], e, w: [0, 1, 2, 2, 1, 0], image_size: 160 };
    expect(resnet50.parse(fromEncoder).resolution).toBe(160);
    const { image_size: _, ...rest } = fromEncoder;
    expect(resnet50.parse({ ...rest, r: [192] }).resolution).toBe(192);
    expect(() => resnet50.parse({ ...fromEncoder, r: 160 })).toThrow(
      'image_size: give the resolution once, as r',
    );
  });

  it('ignores expand values of inactive positions', () => {
    const e = new Array(18).fill(0.25);
    e[3] = 7; // stage 1 position 3 is inactive with d[1] = 1 (3 blocks)
    expect(() => resnet50.parse(arch({ e }))).not.toThrow();
  });
});

describe('densenet', () => {
  it('counts its configurations exactly and spans 27 depths', () => {
    // 3 growth x 2 bn_size x 2 kernel = 12 settings per layer.
    const block = (max: number) => {
      let sum = 0n;
      for (let d = 2; d <= max; d++) sum += 12n ** BigInt(d);
      return sum;
    };
    expect(cardinality(densenet, { includeResolution: false })).toBe(
      block(6) * block(8) * block(12) * block(8),
    );
    expect(depthRange(densenet)).toEqual({ min: 8, max: 34 });
  });

  it('grows channels by the growth rates and halves them at transitions', () => {
    const subnet = densenet.parse({
      d: [2, 2, 2, 2],
      g: new Array(34).fill(32).map((g, i) => (i === 1 ? 16 : g)),
      b: new Array(34).fill(4),
      k: new Array(34).fill(3),
      r: 224,
    });
    const graph = densenet.layerGraph(subnet);
    checkGraph(graph);
    const concats = graph.nodes.filter((n) => n.op === 'concat').map((n) => n.channels);
    // 64 + 32 + 16 = 112 -> transition 56 -> +32 +32 = 120 -> 60 -> 124 -> 62 -> 126.
    expect(concats).toEqual([96, 112, 88, 120, 92, 124, 94, 126]);
    const pools = graph.nodes.filter((n) => n.op === 'pool').map((n) => n.resolution);
    expect(pools).toEqual([112, 56, 28, 14, 7]);
  });

  it('names bad fields with the allowed values', () => {
    const native = densenet.toNative(subnetWithDepth(densenet, 34, createRng(6)));
    expect(() => densenet.parse({ ...native, d: [2, 9, 2, 2] })).toThrow(
      'd[1]: got 9, allowed values are 2, 3, 4, 5, 6, 7, 8',
    );
    const k = native.k.slice();
    k[30] = 7;
    expect(() => densenet.parse({ ...native, k })).toThrow('k[30]: got 7, allowed values are 3, 5');
  });
});

describe('spec spaces', () => {
  const tiny = spaceFromSpec(example('tiny-mbconv.json'));
  const mixed = spaceFromSpec(example('mixed.json'));
  const spec = (units: unknown[], extra: Record<string, unknown> = {}) => ({
    name: 'test',
    resolutions: [64],
    units,
    ...extra,
  });
  const conv = { block: 'conv', minDepth: 1, maxDepth: 2, width: 16, stride: 1 };

  it('counts configurations from the units', () => {
    // 4 choices per block in s1, s2, s4 (depth 1..3), 9 in s3 (depth 2..4), 5 resolutions.
    const small = 4n + 16n + 64n;
    const s3 = 9n ** 2n + 9n ** 3n + 9n ** 4n;
    expect(cardinality(tiny)).toBe(small ** 3n * s3 * 5n);
    expect(depthRange(tiny)).toEqual({ min: 5, max: 13 });
    expect(tiny.blockChoiceNames).toEqual(['kernel', 'expand']);
  });

  it('lists every feature in every unit, foreign ones as the single value 0', () => {
    expect(mixed.blockChoiceNames).toEqual(['kernel', 'expand', 'growth', 'bnSize']);
    expect(mixed.units[0]?.blockChoices.map((c) => c.values)).toEqual([[3, 5], [0], [0], [0]]);
    const native = mixed.toNative(subnetWithDepth(mixed, 6, createRng(1)));
    expect(Object.keys(native.blocks[3]?.[0] ?? {})).toEqual(['kernel', 'growth', 'bnSize']);
  });

  it('builds the block templates: a dense unit starts with a transition to its width', () => {
    const subnet = mixed.parse({
      d: [1, 2, 1, 2],
      blocks: [
        [{ kernel: 3 }],
        [
          { kernel: 3, expand: 3 },
          { kernel: 7, expand: 6 },
        ],
        [{ kernel: 3, expand: 0.5 }],
        [
          { growth: 16, bnSize: 2 },
          { growth: 32, bnSize: 4, kernel: 3 },
        ],
      ],
      w: [32, 48, 192, 128],
      r: 128,
    });
    const graph = mixed.layerGraph(subnet);
    const concats = graph.nodes.filter((n) => n.op === 'concat').map((n) => n.channels);
    expect(concats).toEqual([128 + 16, 128 + 16 + 32]);
    expect(graph.nodes.filter((n) => n.op === 'se')).toHaveLength(2);
    // The bottleneck unit's chosen width (192 of 192, 256) feeds the dense transition.
    const transition = graph.nodes.find((n) => n.op === 'bn');
    expect(transition?.op === 'bn' && transition.channels).toBe(192);
    const last = graph.nodes[graph.nodes.length - 1];
    expect(last?.op === 'linear' && last.cout).toBe(1000);
  });

  it('makes a unit width with several values a per-unit choice, "w" in the arch', () => {
    expect(mixed.unitChoiceNames).toEqual(['width']);
    expect(mixed.units.map((u) => u.unitChoices[0]?.values)).toEqual([
      [32],
      [48],
      [192, 256],
      [128],
    ]);
    const fixed = spaceFromSpec({ ...(example('mixed.json') as object), units: [conv] });
    expect(fixed.unitChoiceNames).toEqual([]);
    const asFixed = structuredClone(example('mixed.json') as { units: { width: unknown }[] });
    (asFixed.units[2] as { width: unknown }).width = 256;
    expect(cardinality(mixed)).toBe(2n * cardinality(spaceFromSpec(asFixed)));
    const native = mixed.toNative(subnetWithDepth(mixed, 9, createRng(3)));
    expect(() => mixed.parse({ ...native, w: [32, 48, 100, 128] })).toThrow(
      'w[2]: got 100, allowed values are 192, 256',
    );
    const { w: _, ...noWidths } = native;
    expect(() => mixed.parse(noWidths)).toThrow(/^w: expected an array of 4 widths/);
    expect(() =>
      fixed.parse({ ...fixed.toNative(randomSubnet(fixed, createRng(1))), w: [1] }),
    ).toThrow(/^w: unknown field; a mixed-demo arch has d, blocks, r/);
  });

  it('names the wrong spec field', () => {
    expect(() => spaceFromSpec(spec([conv, { ...conv, maxDepth: 0 }]))).toThrow(
      /^units\[1\]\.maxDepth: /,
    );
    expect(() => spaceFromSpec(spec([{ ...conv, minDepth: 3 }]))).toThrow(
      'units[0].maxDepth: must be at least minDepth (3), got 2',
    );
    expect(() => spaceFromSpec(spec([{ ...conv, choices: { growth: [8] } }]))).toThrow(
      /^units\[0\]\.choices: Unrecognized key: "growth"/,
    );
    expect(() => spaceFromSpec(spec([{ ...conv, block: 'vgg' }]))).toThrow(/^units\[0\]\.block: /);
    expect(() => spaceFromSpec(spec([{ ...conv, choices: { kernel: [3, 4] } }]))).toThrow(
      'units[0].choices.kernel[1]: kernel sizes must be odd',
    );
    expect(() => spaceFromSpec(spec([conv], { resolutions: [] }))).toThrow(/^resolutions: /);
    expect(() => spaceFromSpec({ resolutions: [64], units: [conv] })).toThrow(/^name: /);
    expect(() => spaceFromSpec(spec([]))).toThrow(/^units: /);
    expect(() => spaceFromSpec({ ...spec([conv]), name: 'resnet50' })).toThrow(
      /^name: "resnet50" is a built-in space/,
    );
    const bottleneck = { ...conv, block: 'bottleneck', act: 'h_swish' };
    expect(() => spaceFromSpec(spec([bottleneck]))).toThrow(/^units\[0\]: Unrecognized key: "act"/);
  });

  it('names the wrong arch field', () => {
    const native = tiny.toNative(subnetWithDepth(tiny, 13, createRng(2)));
    const bad = structuredClone(native);
    (bad.blocks[1] as Record<string, number>[])[0] = { kernel: 9, expand: 3 };
    expect(() => tiny.parse(bad)).toThrow('blocks[1][0].kernel: got 9, allowed values are 3, 5');
    const foreign = structuredClone(native);
    (foreign.blocks[0] as Record<string, number>[])[0] = { kernel: 3, expand: 3, growth: 8 };
    expect(() => tiny.parse(foreign)).toThrow(/^blocks\[0\]\[0\]\.growth: not a feature of mbconv/);
    expect(() => tiny.parse({ ...native, d: [3, 3, 4, 1] })).toThrow(
      'blocks[3]: expected d[3] = 1 blocks',
    );
    expect(() => tiny.parse({ ...native, d: [3, 3, 4] })).toThrow(/^d: expected an array of 4/);
  });
});
