/**
 * The folded arch-in graph (core/onnx/arch-fold.ts: the encoding and the model's Gemms as
 * per-block tables) against `esm predict` (loadPredictor) and against the general graph, run
 * with onnxruntime-node: for every built-in space and three spec spaces, the model kinds that
 * fold (ridge, lut, auto of linear members) and the ones that must fall back (trees, a
 * statistical encoding).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EncodingName } from '../../core/encodings/types.ts';
import { affinePrefix, foldedArchInGraph, NotFoldableError } from '../../core/onnx/arch-fold.ts';
import { archFiles } from '../../core/onnx/arch-graph-files.ts';
import { ARCH_JSON, ARCH_ONNX, archRow, archRowLayout } from '../../core/onnx/arch-graph-layout.ts';
import { modelToOnnxGraph } from '../../core/predictor/export-onnx.ts';
import { fitPredictor, type RegressorOptions } from '../../core/predictor/index.ts';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { fitTransferPredictor } from '../../core/predictor/transfer.ts';
import type { ModelKind } from '../../core/predictor/types.ts';
import { createRng } from '../../core/rng.ts';
import { densenet } from '../../core/spaces/densenet.ts';
import { fbnet } from '../../core/spaces/fbnet.ts';
import { builtInSpaces } from '../../core/spaces/index.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { nasbench201 } from '../../core/spaces/nasbench201.ts';
import { resnet50 } from '../../core/spaces/resnet50.ts';
import type { SearchSpace, Subnet } from '../../core/spaces/types.ts';
import { loadPredictor, savePredictor } from '../../local/predictor-store.ts';
import { randomSubnets, runArchGraph } from '../support/arch-graph.ts';
import { exampleSpecSpaces } from '../support/spec-spaces.ts';

const specs = new Map<string, unknown>();
const spaces: SearchSpace[] = [...builtInSpaces.values()];
let dir: string;
beforeAll(async () => {
  for (const { space, spec } of await exampleSpecSpaces()) {
    specs.set(space.name, spec);
    spaces.push(space);
  }
  dir = await mkdtemp(join(tmpdir(), 'esm-fold-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function train(
  space: SearchSpace,
  model: ModelKind,
  encoding: EncodingName = 'fcc',
  options: RegressorOptions = {},
) {
  const rng = createRng(11);
  const rows = randomSubnets(space, 120, 5).map((subnet) => ({
    subnet,
    latencyMs: syntheticLatencyMs(space, subnet, { noise: 0.02, rng }),
  }));
  const { predictor } = await fitPredictor({
    space,
    spaceSpec: specs.get(space.name),
    rows,
    data: { file: 'synthetic', sha256: '0'.repeat(64) },
    model,
    encoding,
    options,
  });
  return predictor;
}

const runRows = (bytes: Uint8Array, rows: readonly (readonly number[])[], length: number) =>
  runArchGraph(bytes, BigInt64Array.from(rows.flat(), BigInt), rows.length, length);

const run = (bytes: Uint8Array, space: SearchSpace, probe: readonly Subnet[]) =>
  runRows(
    bytes,
    probe.map((s) => archRow(space, s)),
    archRowLayout(space).length,
  );

/** Largest relative difference, NaN counting as a failure. */
function worst(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let w = 0;
  for (let i = 0; i < want.length; i++) {
    const e = want[i] as number;
    const d = Math.abs((got[i] as number) - e) / Math.max(Math.abs(e), 1e-9);
    w = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(w, d);
  }
  return w;
}

describe('folded predictor-arch.onnx', () => {
  it('predicts what esm predict does (1e-5) for every space and every kind that folds', async () => {
    const folded: string[] = [];
    for (const space of spaces) {
      const probe = randomSubnets(space, 200, 9);
      const cases: [ModelKind, EncodingName][] = [
        ['ridge', 'fcc'],
        ['ridge', 'onehot'],
        ['ridge', 'feature'],
        ['ridge', 'physics'],
        ['lut', 'fcc'],
        ['auto', 'fcc'],
      ];
      for (const [model, encoding] of cases) {
        // Prepare
        const predictor = await train(space, model, encoding);
        const out = join(dir, `${space.name}-${model}-${encoding}`);
        await savePredictor(out, predictor);
        const label = `${space.name} ${model} ${encoding}`;
        const json = JSON.parse(await readFile(join(out, ARCH_JSON), 'utf8'));
        if (json.graph === 'folded') folded.push(`${space.name}:${model}:${encoding}`);
        const loaded = await loadPredictor(out);
        const expected = await loaded.predictSubnetsWithStd(probe);
        await loaded.close();
        // Act
        const result = await run(await readFile(join(out, ARCH_ONNX)), space, probe);
        // Assess: both outputs, the uncertainty (the model's own nodes on the folded z) too.
        expect(worst(result.latency_ms?.data as Float32Array, expected.mean), label).toBeLessThan(
          1e-5,
        );
        expect(worst(result.std_ms?.data as Float32Array, expected.std), label).toBeLessThan(1e-5);
      }
    }
    // Linear models fold on every space; so does the default (auto), its physics included
    // (widths carried part to part in DenseNet and ResNet-50; NAS-Bench-201, whose fcc cell
    // features and physics are no sums over blocks, as one table of the whole space).
    for (const space of spaces) {
      for (const kind of [
        'ridge:onehot',
        'ridge:feature',
        'lut:fcc',
        'ridge:fcc',
        'ridge:physics',
        'auto:fcc',
      ]) {
        expect(folded, `${space.name} ${kind}`).toContain(`${space.name}:${kind}`);
      }
    }
  }, 600_000);

  it('folds a small MLP’s first layer (z of many columns), widths carried or not', async () => {
    for (const space of [mobilenetv3, resnet50]) {
      // Prepare: the base model's column and 8 per member: z has more than one column.
      const predictor = await train(space, 'mlp', 'physics', {
        mlp: { maxEpochs: 3, hidden: [8, 8] },
      });
      const probe = randomSubnets(space, 200, 13);
      const out = join(dir, `mlp-${space.name}`);
      await savePredictor(out, predictor);
      const loaded = await loadPredictor(out);
      const expected = await loaded.predictSubnetsWithStd(probe);
      await loaded.close();
      // Act
      const json = JSON.parse(await readFile(join(out, ARCH_JSON), 'utf8'));
      const result = await run(await readFile(join(out, ARCH_ONNX)), space, probe);
      // Assess
      expect(json.graph, space.name).toBe('folded');
      expect(
        worst(result.latency_ms?.data as Float32Array, expected.mean),
        space.name,
      ).toBeLessThan(1e-5);
      expect(worst(result.std_ms?.data as Float32Array, expected.std), space.name).toBeLessThan(
        1e-5,
      );
    }
  }, 120_000);

  it('folds a transferred predictor (esm fit --prior) whose prior folds', async () => {
    // Prepare: the default (auto) on one device, corrected for a device 1.7x slower.
    const space = mobilenetv3;
    const prior = await train(space, 'auto');
    const rows = randomSubnets(space, 40, 17).map((subnet) => ({
      subnet,
      latencyMs: 1.7 * syntheticLatencyMs(space, subnet, { noise: 0.02, rng: createRng(3) }) + 0.3,
    }));
    const { predictor } = await fitTransferPredictor({
      space,
      prior,
      rows,
      data: { file: 'synthetic', sha256: '0'.repeat(64) },
    });
    const out = join(dir, 'transfer');
    await savePredictor(out, predictor);
    const probe = randomSubnets(space, 200, 19);
    const loaded = await loadPredictor(out);
    const expected = await loaded.predictSubnetsWithStd(probe);
    await loaded.close();
    // Act
    const json = JSON.parse(await readFile(join(out, ARCH_JSON), 'utf8'));
    const result = await run(await readFile(join(out, ARCH_ONNX)), space, probe);
    // Assess
    expect(predictor.model.kind).toBe('transfer');
    expect(json.graph).toBe('folded');
    expect(worst(result.latency_ms?.data as Float32Array, expected.mean)).toBeLessThan(1e-5);
    expect(worst(result.std_ms?.data as Float32Array, expected.std)).toBeLessThan(1e-5);
  }, 120_000);

  it('falls back to the general graph for trees and for a statistical encoding, with the same answers', async () => {
    const space = mobilenetv3;
    const probe = randomSubnets(space, 200, 21);
    for (const [model, encoding] of [
      ['gbt', 'fcc'],
      ['ridge', 'statistical'],
    ] as [ModelKind, EncodingName][]) {
      // Prepare
      const predictor = await train(space, model, encoding);
      const out = join(dir, `fallback-${model}-${encoding}`);
      await savePredictor(out, predictor);
      const loaded = await loadPredictor(out);
      const expected = await loaded.predictSubnets(probe);
      await loaded.close();
      // Act
      const json = JSON.parse(await readFile(join(out, ARCH_JSON), 'utf8'));
      const got = (await run(await readFile(join(out, ARCH_ONNX)), space, probe)).latency_ms
        ?.data as Float32Array;
      // Assess
      expect(json.graph, `${model} ${encoding}`).toBe('general');
      expect(worst(got, expected), `${model} ${encoding}`).toBeLessThan(1e-5);
    }
  }, 120_000);

  it('names why a model or its features do not fold', async () => {
    // Prepare
    const trees = await train(mobilenetv3, 'gbt');
    const statistical = await train(mobilenetv3, 'ridge', 'statistical');
    // Act / Assess
    expect(() => affinePrefix(modelToOnnxGraph(trees.model))).toThrow(NotFoldableError);
    expect(() => affinePrefix(modelToOnnxGraph(trees.model))).toThrow(/TreeEnsembleRegressor/);
    expect(() =>
      foldedArchInGraph(mobilenetv3, statistical.features, modelToOnnxGraph(statistical.model)),
    ).toThrow(/statistical encoding is not a sum over blocks/);
  }, 60_000);

  it.each([
    ['fbnet', fbnet, 'ridge'],
    ['nasbench201', nasbench201, 'auto'],
  ] as [string, SearchSpace, ModelKind][])(
    'gives the general graph’s answers, NaN included, on rows %s does not allow',
    async (_name, space, model) => {
      // Prepare: layer-wise spaces (a skip voids the slot's op), unit 1 slot 1; NAS-Bench-201's
      // graph is the whole-space table, FBNet's per-block tables.
      const predictor = await train(space, model);
      const general = archFiles(space, predictor, undefined, { fold: false });
      const folded = archFiles(space, predictor);
      const layout = archRowLayout(space);
      const op = layout.blockColumn(0, 1, 1);
      const skip = layout.blockColumn(1, 1, 1);
      const good = archRow(space, randomSubnets(space, 1, 4)[0] as Subnet);
      const rows = [
        good,
        good.map((v, i) => (i === skip ? 1 : i === op ? 99 : v)), // a skip: its op is ignored
        good.map((v, i) => (i === skip ? 1 : i === op ? -7 : v)), // so is a negative one
        good.map((v, i) => (i === skip ? 0 : i === op ? 99 : v)), // a layer with op 99
        good.map((v, i) => (i === skip ? 0 : i === op ? -7 : v)), // a layer with op -7
        good.map((v, i) => (i === skip ? 3 : v)), // skip kind 3 does not exist
        good.map((v, i) => (i === layout.resolutionColumn ? 33 : v)),
        good.map((v, i) => (i === layout.depthColumn(1) ? 3 : v)),
      ];
      // Act
      const a = (await runRows(folded?.onnx as Uint8Array, rows, layout.length)).latency_ms
        ?.data as Float32Array;
      const b = (await runRows(general?.onnx as Uint8Array, rows, layout.length)).latency_ms
        ?.data as Float32Array;
      // Assess
      expect(JSON.parse(folded?.json ?? '{}').graph).toBe('folded');
      expect(JSON.parse(general?.json ?? '{}').graph).toBe('general');
      expect([a[0], a[1], a[2]].every((v) => Number.isFinite(v))).toBe(true);
      expect([a[3], a[4], a[5], a[6], a[7]].every((v) => Number.isNaN(v))).toBe(true);
      for (let i = 0; i < rows.length; i++) {
        if (Number.isNaN(b[i] as number))
          expect(Number.isNaN(a[i] as number), `row ${i}`).toBe(true);
        else
          expect(Math.abs((a[i] as number) - (b[i] as number)) / (b[i] as number)).toBeLessThan(
            1e-5,
          );
      }
    },
    60_000,
  );

  it('answers NaN for a DenseNet code off its choice’s grid in an active slot, and ignores an inactive one', async () => {
    // Prepare: unit 0 at depth 3, so slot 3 (paired with the active slot 2) is inactive.
    const predictor = await train(densenet, 'auto');
    const files = archFiles(densenet, predictor);
    const layout = archRowLayout(densenet);
    const growth = (s: number) => layout.blockColumn(0, 0, s);
    const good = archRow(densenet, randomSubnets(densenet, 1, 3)[0] as Subnet).map((v, i) =>
      i === layout.depthColumn(0) ? 3 : v,
    );
    const set = (column: number, value: number) => good.map((v, i) => (i === column ? value : v));
    const rows = [
      good,
      set(growth(3), 20), // inactive: ignored
      set(growth(5), 99),
      set(growth(3), -5), // inactive, below every code: ignored
      set(growth(2), 20), // between 16 and 24
      set(growth(2), 40), // above 32
      set(growth(2), -8), // below every code
      set(growth(2), 2 ** 40), // far above every code
      set(layout.resolutionColumn, 2 ** 32 + 128), // 128 in its low 32 bits
      set(layout.resolutionColumn, 136), // between 128 and 144
      set(layout.depthColumn(0), 1), // below the least depth
    ];
    // Act
    const y = (await runRows(files?.onnx as Uint8Array, rows, layout.length)).latency_ms
      ?.data as Float32Array;
    // Assess
    expect(JSON.parse(files?.json ?? '{}').graph).toBe('folded');
    expect(Number.isFinite(y[0] as number)).toBe(true);
    expect([y[1], y[2], y[3]]).toEqual([y[0], y[0], y[0]]);
    expect([...y.slice(4)].every((v) => Number.isNaN(v))).toBe(true);
  }, 60_000);

  it('ignores whatever an inactive MobileNetV3 slot holds and answers NaN for an active one', async () => {
    // Prepare: unit 0 at depth 2, so its slots 2 and 3 are inactive; then at depth 3, so slot
    // 3 is inactive beside the active slot 2 (one key for the two where slots are paired).
    const predictor = await train(mobilenetv3, 'auto');
    const files = archFiles(mobilenetv3, predictor);
    const good = archRow(mobilenetv3, randomSubnets(mobilenetv3, 1, 8)[0] as Subnet).map((v, i) =>
      i === 40 ? 2 : v,
    );
    const three = good.map((v, i) => (i === 40 ? 3 : v));
    const rows = [
      good,
      good.map((v, i) => (i === 3 ? 99 : v)),
      good.map((v, i) => (i === 1 ? 99 : v)),
      three,
      three.map((v, i) => (i === 3 ? 99 : i === 23 ? 5 : v)),
      three.map((v, i) => (i === 2 ? 99 : v)),
      three.map((v, i) => (i === 22 ? 5 : v)),
    ];
    // Act
    const y = (await runRows(files?.onnx as Uint8Array, rows, 46)).latency_ms?.data as Float32Array;
    // Assess
    expect(JSON.parse(files?.json ?? '{}').graph).toBe('folded');
    expect(y[1]).toBe(y[0]);
    expect(Number.isNaN(y[2] as number)).toBe(true);
    expect(Number.isFinite(y[3] as number) && y[3] !== y[0]).toBe(true);
    expect(y[4]).toBe(y[3]);
    // A kernel of 99 and an expand ratio of 5 (between 4 and 6) in the active slot 2.
    expect(Number.isNaN(y[5] as number) && Number.isNaN(y[6] as number)).toBe(true);
  }, 60_000);
});
