/**
 * The arch-in predictor graph (predictor-arch.onnx) against the JavaScript path, run with
 * onnxruntime-node: its encoding subgraph gives the vectors the encoders write, and the whole
 * graph predicts what `loadPredictor(...).predict` (the code behind `esm predict`) does, for
 * every built-in space, three spec spaces, every encoding (physics included) and every model
 * kind (auto, the default, included).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { combinations } from '../../core/encodings/layout.ts';
import { encodingNames } from '../../core/encodings/types.ts';
import { ArchGraphUnsupportedError } from '../../core/errors.ts';
import { encodingGraph } from '../../core/onnx/arch-graph.ts';
import { archFiles } from '../../core/onnx/arch-graph-files.ts';
import {
  ARCH_JSON,
  ARCH_ONNX,
  archRow,
  archRowLayout,
  archRowsInt64,
} from '../../core/onnx/arch-graph-layout.ts';
import { physicsTables } from '../../core/onnx/arch-physics.ts';
import { encodeModel } from '../../core/onnx/model.ts';
import { createFeaturizer, type FeatureChoice, fitPredictor } from '../../core/predictor/index.ts';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { modelKinds } from '../../core/predictor/types.ts';
import { createRng } from '../../core/rng.ts';
import { builtInSpaces } from '../../core/spaces/index.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { spaceFromSpec } from '../../core/spaces/spec.ts';
import type { SearchSpace, Subnet } from '../../core/spaces/types.ts';
import { loadPredictor, savePredictor } from '../../local/predictor-store.ts';
import { randomSubnets, runArchGraph } from '../support/arch-graph.ts';
import { exampleSpecSpaces } from '../support/spec-spaces.ts';

const specs = new Map<string, unknown>();
const spaces: SearchSpace[] = [...builtInSpaces.values()];
beforeAll(async () => {
  for (const { space, spec } of await exampleSpecSpaces()) {
    specs.set(space.name, spec);
    spaces.push(space);
  }
});

/** Subnets whose blocks all have tuple j (the same choices), at min and max depth, every r. */
function uniformSubnets(space: SearchSpace): Subnet[] {
  const tuples = space.units.map((unit) => combinations(unit));
  const most = Math.max(...tuples.map((t) => t.length));
  const out: Subnet[] = [];
  for (const resolution of space.resolutions) {
    for (let j = 0; j < most; j++) {
      for (const deepest of [false, true]) {
        out.push({
          resolution,
          globals: Object.fromEntries(
            space.globalChoices.map((c) => [c.name, c.values[j % c.values.length] as number]),
          ),
          units: space.units.map((unit, u) => {
            const all = tuples[u] as number[][];
            const tuple = all[j % all.length] as number[];
            const block = Object.fromEntries(unit.blockChoices.map((c, i) => [c.name, tuple[i]]));
            const choices = Object.fromEntries(
              unit.unitChoices.map((c, i) => [c.name, tuple[unit.blockChoices.length + i]]),
            );
            const depth = deepest ? unit.maxDepth : unit.minDepth;
            return { choices, blocks: Array.from({ length: depth }, () => ({ ...block })) };
          }),
        } as Subnet);
      }
    }
  }
  return out;
}

const run = (bytes: Uint8Array, space: SearchSpace, rows: readonly Subnet[]) =>
  runArchGraph(bytes, archRowsInt64(space, rows), rows.length, archRowLayout(space).length);

const choices: FeatureChoice[] = [
  ...encodingNames.map((encoding) => ({ kind: 'encoding' as const, encoding })),
  { kind: 'lut', buckets: 1 },
  { kind: 'lut', buckets: 3 },
];

/**
 * A spec space whose physics is no polynomial in a block's input width: the second unit's
 * expansion width, make_divisible(round(3 c)), is not one in the first unit's width choice c
 * (10, 20, 30, 40 give 32, 64, 88, 120), so its MACs are not one of degree 2; the tables look
 * those rows up by the width instead.
 */
const irregularSpec = {
  name: 'irregular-widths',
  resolutions: [64],
  stem: { width: 16, kernel: 3, stride: 2 },
  units: [
    { block: 'conv', minDepth: 1, maxDepth: 1, width: [10, 20, 30, 40], stride: 1 },
    {
      block: 'mbconv',
      minDepth: 1,
      maxDepth: 2,
      width: 48,
      stride: 2,
      choices: { kernel: [3], expand: [3] },
    },
  ],
  head: { classes: 10 },
};

/** The irregular space with a head whose width grows with the first unit's width choice. */
function leakySpace(): SearchSpace {
  const base = spaceFromSpec(irregularSpec);
  return {
    ...base,
    name: 'leaky',
    layerGraph: (subnet) => {
      const graph = base.layerGraph(subnet);
      const first = subnet.units[0]?.choices.width as number;
      const last = graph.nodes[graph.nodes.length - 1];
      if (last?.op !== 'linear') return graph;
      return {
        ...graph,
        nodes: [...graph.nodes.slice(0, -1), { ...last, cout: last.cout + first }],
      };
    },
  };
}

describe('arch-in encoding subgraph', () => {
  it('computes the encoders’ vectors for every space and encoding', async () => {
    let cases = 0;
    for (const space of spaces) {
      for (const choice of choices) {
        // Prepare
        const featurizer = createFeaturizer(space, choice);
        const batch = randomSubnets(space, 150, 3);
        const cols = featurizer.features.length;
        const expected = new Float32Array(batch.length * cols);
        batch.forEach((s, i) => {
          featurizer.encodeInto(s, expected, i * cols);
        });
        // Act
        const { graph } = encodingGraph(space, featurizer.features);
        const x = (await run(encodeModel(graph), space, batch)).x?.data as Float32Array;
        // Assess
        expect(x.length, `${space.name} ${JSON.stringify(choice)}`).toBe(expected.length);
        let worst = 0;
        for (let i = 0; i < x.length; i++) {
          worst = Math.max(worst, Math.abs((x[i] as number) - (expected[i] as number)));
        }
        // Bit for bit: the graph sums in the encoders' order (a tree's split can sit between
        // two neighbouring floats).
        expect(worst, `${space.name} ${JSON.stringify(choice)}`).toBe(0);
        cases += 1;
      }
    }
    // physics and fcc on every space, NAS-Bench-201's cell features included.
    expect(cases).toBe(spaces.length * choices.length);
  }, 120_000);

  it('computes physics exactly on many random subnets of every space', async () => {
    for (const space of spaces) {
      // Prepare: other seeds than the tables' own probes and check, plus the extremes: every
      // block the same tuple (the largest and the smallest of each choice) at the least and
      // the greatest depths, at every resolution.
      const featurizer = createFeaturizer(space, { kind: 'encoding', encoding: 'physics' });
      const batch = [...randomSubnets(space, 1500, 101), ...uniformSubnets(space)];
      const cols = featurizer.features.length;
      const expected = new Float32Array(batch.length * cols);
      batch.forEach((s, i) => {
        featurizer.encodeInto(s, expected, i * cols);
      });
      // Act
      const { graph } = encodingGraph(space, featurizer.features);
      const x = (await run(encodeModel(graph), space, batch)).x?.data as Float32Array;
      // Assess: every entry equal, peak activation (a max, not a sum) included.
      const wrong = [...x].findIndex((v, i) => v !== expected[i]);
      expect(wrong, `${space.name} entry ${wrong % cols}`).toBe(-1);
    }
  }, 120_000);

  it('computes physics exactly where a cost is no polynomial in a block’s input width', async () => {
    // Prepare
    const space = spaceFromSpec(irregularSpec);
    const featurizer = createFeaturizer(space, { kind: 'encoding', encoding: 'physics' });
    const batch = [...randomSubnets(space, 400, 13), ...uniformSubnets(space)];
    const cols = featurizer.features.length;
    const expected = new Float32Array(batch.length * cols);
    batch.forEach((s, i) => {
      featurizer.encodeInto(s, expected, i * cols);
    });
    const tables = physicsTables(space);
    // Act
    const { graph } = encodingGraph(space, featurizer.features);
    const x = (await run(encodeModel(graph), space, batch)).x?.data as Float32Array;
    // Assess: the rows after the width choice are looked up by width, every entry equal.
    expect(tables.kind === 'chain' && tables.byWidth?.widths).toEqual([10, 20, 30, 40]);
    const wrong = [...x].findIndex((v, i) => v !== expected[i]);
    expect(wrong, `entry ${wrong % cols}`).toBe(-1);
    expect(new Set(batch.map((s) => s.units[0]?.choices.width)).size).toBe(4);
  });

  it('refuses physics where a block’s cost depends on more than its choices and input width', () => {
    // Prepare: a space whose head reads a choice of its first unit.
    const space = leakySpace();
    const featurizer = createFeaturizer(space, { kind: 'encoding', encoding: 'physics' });
    // Act / Assess
    expect(() => encodingGraph(space, featurizer.features)).toThrow(ArchGraphUnsupportedError);
    expect(() => encodingGraph(space, featurizer.features)).toThrow(/leaky: .*head/);
  });

  it('lays out a MobileNetV3 row as [ks x 20, e x 20, d x 5, r] and ignores inactive slots', async () => {
    // Prepare: unit 0 has 2 active blocks; its inactive slots carry other values natively.
    const native = {
      ks: [3, 5, 7, 7, 5, 5, 5, 5, 7, 7, 7, 7, 3, 3, 3, 3, 5, 7, 3, 5],
      e: [4, 6, 6, 6, 3, 3, 3, 3, 6, 6, 6, 6, 4, 4, 4, 4, 3, 4, 6, 3],
      d: [2, 3, 4, 4, 4],
      r: 176,
    };
    const subnet = mobilenetv3.parse(native);
    // Act
    const row = archRow(mobilenetv3, subnet);
    // Assess: inactive slots get the choice's first value (kernel 3, expand 3).
    const ks = [...native.ks];
    const e = [...native.e];
    for (const i of [2, 3, 7]) {
      ks[i] = 3;
      e[i] = 3;
    }
    expect(row).toEqual([...ks, ...e, ...native.d, native.r]);
    expect(
      archRowLayout(mobilenetv3)
        .entries.map((x) => x.label)
        .slice(0, 2),
    ).toEqual(['u0.b0.kernel', 'u0.b1.kernel']);
  });
});

describe('predictor-arch.onnx', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'esm-arch-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('predicts what esm predict does (1e-5 relative) for every space, encoding and model kind', async () => {
    let cases = 0;
    const autoStack = new Set<string>();
    for (const space of spaces) {
      const rng = createRng(11);
      const rows = randomSubnets(space, 120, 5).map((subnet) => ({
        subnet,
        latencyMs: syntheticLatencyMs(space, subnet, { noise: 0.02, rng }),
      }));
      const probe = randomSubnets(space, 100, 9);
      for (const model of modelKinds) {
        // auto chooses its own (stacked) features; lut has its table rows.
        const single = model === 'lut' || model === 'auto';
        for (const encoding of single ? (['fcc'] as const) : encodingNames) {
          // Prepare
          const { predictor } = await fitPredictor({
            space,
            spaceSpec: specs.get(space.name),
            rows,
            data: { file: 'synthetic', sha256: '0'.repeat(64) },
            model,
            encoding,
            options: { mlp: { maxEpochs: 3, hidden: [16, 16] } },
          });
          const out = join(dir, `${space.name}-${model}-${encoding}`);
          await savePredictor(out, predictor);
          // Every predictor has its arch-in graph, auto's stacked physics features included.
          expect(existsSync(join(out, ARCH_ONNX)), `${space.name} ${model} ${encoding}`).toBe(true);
          if (model === 'auto') autoStack.add(predictor.features.kind);
          const loaded = await loadPredictor(out);
          const expected = await loaded.predict(probe.map((s) => space.toNative(s)));
          await loaded.close();
          // Act
          const result = await run(await readFile(join(out, ARCH_ONNX)), space, probe);
          const got = result.latency_ms?.data as Float32Array;
          // Assess
          const label = `${space.name} ${model} ${encoding}`;
          expect(got.length, label).toBe(probe.length);
          for (let i = 0; i < probe.length; i++) {
            const e = expected[i] as number;
            expect(Math.abs((got[i] as number) - e) / Math.abs(e), label).toBeLessThanOrEqual(1e-5);
          }
          if ((model === 'auto' || model === 'rf') && encoding === 'fcc') {
            // An empty batch answers empty outputs, folded (auto) and general (rf) alike.
            const none = await run(await readFile(join(out, ARCH_ONNX)), space, []);
            expect(none.latency_ms?.dims, `${label} empty`).toEqual([0, 1]);
          }
          const layout = JSON.parse(await readFile(join(out, ARCH_JSON), 'utf8'));
          expect(layout.length, label).toBe(archRowLayout(space).length);
          // Every kind has the uncertainty output too (std_ms), guarded like latency_ms.
          expect(layout.outputs[0], label).toBe('latency_ms');
          for (const name of layout.outputs) {
            expect(((result[name]?.data ?? []) as Float32Array).length, `${label} ${name}`).toBe(
              probe.length,
            );
          }
          cases += 1;
        }
      }
    }
    // Every kind on every encoding (lut and auto once each) on every space.
    const kinds = modelKinds.length;
    expect(cases).toBe(spaces.length * ((kinds - 2) * encodingNames.length + 2));
    expect([...autoStack]).toEqual(['stack']);
  }, 600_000);

  it('gives a spec space whose physics is no polynomial in a width its graph, with esm predict’s answers', async () => {
    const space = spaceFromSpec(irregularSpec);
    const rng = createRng(1);
    const rows = randomSubnets(space, 60, 6).map((subnet) => ({
      subnet,
      latencyMs: syntheticLatencyMs(space, subnet, { noise: 0.02, rng }),
    }));
    const probe = randomSubnets(space, 200, 8);
    const graphs: string[] = [];
    for (const [model, encoding] of [
      ['ridge', 'physics'],
      ['auto', 'fcc'],
      ['ridge', 'fcc'],
    ] as const) {
      // Prepare
      const { predictor } = await fitPredictor({
        space,
        spaceSpec: irregularSpec,
        rows,
        data: { file: 'synthetic', sha256: '0'.repeat(64) },
        model,
        encoding,
      });
      const out = join(dir, `irregular-${model}-${encoding}`);
      await savePredictor(out, predictor);
      const loaded = await loadPredictor(out);
      const expected = await loaded.predict(probe.map((s) => space.toNative(s)));
      await loaded.close();
      // Act
      const got = (await run(await readFile(join(out, ARCH_ONNX)), space, probe)).latency_ms
        ?.data as Float32Array;
      // Assess
      graphs.push(JSON.parse(await readFile(join(out, ARCH_JSON), 'utf8')).graph);
      for (let i = 0; i < probe.length; i++) {
        const e = expected[i] as number;
        expect(Math.abs((got[i] as number) - e) / e, `${model} ${encoding}`).toBeLessThan(1e-5);
      }
    }
    // Physics looked up by width has the general graph; fcc alone folds.
    expect(graphs).toEqual(['general', 'general', 'folded']);
  });

  it('builds no arch-in files for features with no in-graph form', async () => {
    // Prepare: the head of this space reads a choice of its first unit.
    const space = leakySpace();
    const { predictor } = await fitPredictor({
      space,
      rows: randomSubnets(space, 40, 6).map((subnet) => ({
        subnet,
        latencyMs: syntheticLatencyMs(space, subnet, { noise: 0.02, rng: createRng(1) }),
      })),
      data: { file: 'synthetic', sha256: '0'.repeat(64) },
      model: 'ridge',
      encoding: 'physics',
    });
    // Act / Assess
    expect(archFiles(space, predictor)).toBeUndefined();
  });

  it('answers NaN for a row the space does not allow, and a number for the others', async () => {
    // Prepare
    const { predictor } = await fitPredictor({
      space: mobilenetv3,
      rows: randomSubnets(mobilenetv3, 60, 2).map((subnet) => ({
        subnet,
        latencyMs: 10 + subnet.resolution / 100,
      })),
      data: { file: 'synthetic', sha256: '0'.repeat(64) },
      model: 'ridge',
    });
    const out = join(dir, 'nan');
    await savePredictor(out, predictor);
    const session = await ort.InferenceSession.create(await readFile(join(out, ARCH_ONNX)));
    const good = archRow(mobilenetv3, randomSubnets(mobilenetv3, 1, 4)[0] as Subnet);
    const rows = [
      good,
      good.map((v, i) => (i === 0 ? 4 : v)), // kernel 4 in an active slot
      good.map((v, i) => (i === 40 ? 5 : v)), // depth 5 > 4
      good.map((v, i) => (i === 45 ? 225 : v)), // resolution 225
      good.map((v, i) => (i === 3 ? 99 : v)), // slot 3 of unit 0: inactive when d[0] < 4
    ];
    // Act
    const input = new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [
      rows.length,
      46,
    ]);
    const y = (await session.run({ arch: input })).latency_ms?.data as Float32Array;
    await session.release();
    // Assess
    expect(Number.isFinite(y[0])).toBe(true);
    expect([y[1], y[2], y[3]].every((v) => Number.isNaN(v))).toBe(true);
    const slot3Active = (good[40] as number) === 4;
    expect(Number.isNaN(y[4] as number)).toBe(slot3Active);
  });
});
