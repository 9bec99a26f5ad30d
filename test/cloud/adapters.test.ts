/**
 * The AWS adapters against a real emulator over HTTP (moto server or LocalStack): S3 store,
 * DynamoDB run state with its conditional writes, IoT data-plane publish.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResultMessage } from '../../core/schemas/protocol.ts';
import type { PlannedSample } from '../../core/schemas/run.ts';
import { createIotPublisher } from '../../lambdas/adapters/iot-publisher.ts';
import { createRunState } from '../../lambdas/adapters/run-state.ts';
import { createS3Store, getJson, putJson } from '../../lambdas/adapters/s3-store.ts';
import {
  type Emulator,
  type EsmResources,
  provisionEsmResources,
  scanAll,
  startEmulator,
} from '../support/moto.ts';

let emulator: Emulator | undefined;
let resources: EsmResources;

beforeAll(async () => {
  emulator = await startEmulator();
  if (emulator) resources = await provisionEsmResources('adapters');
});
afterAll(async () => {
  await emulator?.stop();
});

const stats = (median: number) => ({
  median_ms: median,
  mean_ms: median * 1.01,
  std_ms: 0.1,
  min_ms: median * 0.95,
  max_ms: median * 1.2,
  runs: 10,
});

function result(runId: string, batchId: string, samples: [string, number][]): ResultMessage {
  return {
    v: 1,
    type: 'result',
    runId,
    batchId,
    thing: 'pi-1',
    samples: samples.map(([id, median]) => ({ id, stats: stats(median) })),
    references: [],
    quality: { maxDrift: 0.01, unstable: false },
    device: {
      thing: 'pi-1',
      cpu: 'test',
      cores: 4,
      accelerator: null,
      os: 'linux',
      node: 'v20',
      onnxruntime: '1.30',
      executionProvider: 'cpu',
    },
    settings: {
      warmup: 1,
      runs: 10,
      threads: 1,
      batchSize: 1,
      referenceEvery: 0,
      maxReferenceDrift: 0.03,
    },
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:00:01.000Z',
  };
}

const planned = (ids: string[]): PlannedSample[] =>
  ids.map((id, i) => ({
    id,
    key: `k-${id}`,
    iteration: 0,
    split: i % 4 === 0 ? 'test' : 'train',
    bin: i % 2,
    depth: 10 + i,
    arch: { d: [2, 3, 4], r: 224 },
  }));

describe('S3 dataset store', () => {
  it('puts, gets and lists objects; a missing key is undefined', async ({ skip }) => {
    if (!emulator) skip();
    const store = createS3Store({ bucket: resources.bucket });
    await store.put('runs/r1/dataset.jsonl', '{"a":1}\n');
    await putJson(store, 'runs/r1/plan.json', { ids: ['s1', 's2'] });
    await store.put('predictors/p1/predictor.onnx', new Uint8Array([8, 1, 2, 255]));

    expect(new TextDecoder().decode(await store.get('runs/r1/dataset.jsonl'))).toBe('{"a":1}\n');
    expect(await getJson(store, 'runs/r1/plan.json')).toEqual({ ids: ['s1', 's2'] });
    expect([...((await store.get('predictors/p1/predictor.onnx')) ?? [])]).toEqual([8, 1, 2, 255]);
    expect(await store.get('runs/r1/missing.json')).toBeUndefined();
    expect((await store.list('runs/r1/')).sort()).toEqual([
      'runs/r1/dataset.jsonl',
      'runs/r1/plan.json',
    ]);
    expect(await store.list('nothing/')).toEqual([]);
  });
});

/** Results only measure samples that were dispatched in their job (issue 10): send them first. */
const sent = (
  state: ReturnType<typeof createRunState>,
  runId: string,
  ids: string[],
  batchId = 'b0',
) =>
  state.assignSamples(
    runId,
    ids.map((id) => ({ id, thing: 'pi-1', batchId })),
    '2026-01-01T00:00:00.000Z',
  );

describe('DynamoDB run state', () => {
  it('creates a run once; a second create with the same id writes nothing', async ({ skip }) => {
    if (!emulator) skip();
    const state = createRunState({ tables: resources });
    const run = { runId: 'once', thing: 'pi-1', space: 'mobilenetv3', params: { seed: 1 } };
    expect(await state.createRun(run)).toBe(true);
    expect(await state.createRun({ ...run, params: { seed: 2 } })).toBe(false);
    const stored = await state.getRun('once');
    expect(stored?.params).toEqual({ seed: 1 });
    expect(stored?.status).toBe('running');
    expect(stored?.measured).toBe(0);
  });

  it('ingests a result once: a duplicate delivery never double-counts', async ({ skip }) => {
    if (!emulator) skip();
    const state = createRunState({ tables: resources });
    await state.createRun({ runId: 'dup', thing: 'pi-1', space: 'mobilenetv3', params: {} });
    expect(await state.putSamples('dup', planned(['s1', 's2', 's3']))).toBe(3);
    // A retried planning task must not overwrite anything.
    expect(await state.putSamples('dup', planned(['s1']))).toBe(0);
    await sent(state, 'dup', ['s1', 's2', 's3']);

    const first = await state.recordResult(
      result('dup', 'b0', [
        ['s1', 5],
        ['s2', 6],
      ]),
    );
    const again = await state.recordResult(
      result('dup', 'b0', [
        ['s1', 50],
        ['s2', 60],
      ]),
    );

    expect(first).toMatchObject({ recorded: 2, duplicates: 0, rejected: [] });
    expect(again).toMatchObject({ recorded: 0, duplicates: 2, rejected: [] });
    expect((await state.getRun('dup'))?.measured).toBe(2);
    const measured = await state.listSamples('dup', { status: 'measured' });
    expect(measured.map((s) => [s.id, s.latencyMs]).sort()).toEqual([
      ['s1', 5],
      ['s2', 6],
    ]);
    expect((await state.listSamples('dup', { status: 'pending' })).map((s) => s.id)).toEqual([
      's3',
    ]);
  });

  it('keeps which samples a device timed a second time for spread', async ({ skip }) => {
    if (!emulator) skip();
    const state = createRunState({ tables: resources });
    await state.createRun({ runId: 'again', thing: 'pi-1', space: 'mobilenetv3', params: {} });
    await state.putSamples('again', planned(['s1', 's2']));
    await sent(state, 'again', ['s1', 's2']);
    const message = result('again', 'b0', [
      ['s1', 5],
      ['s2', 6],
    ]);
    message.samples = message.samples.map((s) => (s.id === 's2' ? { ...s, remeasured: true } : s));

    expect(await state.recordResult(message)).toMatchObject({ recorded: 2 });
    const measured = await state.listSamples('again', { status: 'measured' });
    expect(measured.map((s) => [s.id, s.remeasured]).sort()).toEqual([
      ['s1', false],
      ['s2', true],
    ]);
  });

  it('counts concurrent duplicate deliveries once', async ({ skip }) => {
    if (!emulator) skip();
    const state = createRunState({ tables: resources });
    await state.createRun({ runId: 'race', thing: 'pi-1', space: 'mobilenetv3', params: {} });
    const ids = Array.from({ length: 12 }, (_, i) => `r${i}`);
    await state.putSamples('race', planned(ids));
    await sent(state, 'race', ids);
    const message = result(
      'race',
      'b0',
      ids.map((id, i) => [id, i + 1]),
    );

    const outcomes = await Promise.all([1, 2, 3].map(() => state.recordResult(message)));

    expect(outcomes.reduce((n, o) => n + o.recorded, 0)).toBe(12);
    expect(outcomes.reduce((n, o) => n + o.duplicates, 0)).toBe(24);
    expect((await state.getRun('race'))?.measured).toBe(12);
    expect(await state.listSamples('race', { status: 'pending' })).toEqual([]);
  });

  it('rejects samples that are not part of the run and results of unknown runs', async ({
    skip,
  }) => {
    if (!emulator) skip();
    const state = createRunState({ tables: resources });
    await state.createRun({ runId: 'rej', thing: 'pi-1', space: 'mobilenetv3', params: {} });
    await state.putSamples('rej', planned(['a']));
    await sent(state, 'rej', ['a']);
    const before = (await scanAll(resources.samplesTable)).length;

    const outcome = await state.recordResult(
      result('rej', 'b0', [
        ['a', 3],
        ['intruder', 4],
      ]),
    );
    expect(outcome).toMatchObject({ recorded: 1, rejected: ['intruder'] });
    expect((await state.getRun('rej'))?.measured).toBe(1);
    await expect(state.recordResult(result('no-such-run', 'b0', [['a', 1]]))).rejects.toThrow(
      /runId: result for unknown run "no-such-run"/,
    );
    const foreign = { ...result('rej', 'b0', [['a', 1]]), thing: 'pi-2' };
    await expect(state.recordResult(foreign)).rejects.toThrow(/^thing: result from "pi-2"/);
    expect((await scanAll(resources.samplesTable)).length).toBe(before);
  });

  it('records an unstable batch by its job id only, idempotently', async ({ skip }) => {
    if (!emulator) skip();
    const state = createRunState({ tables: resources });
    await state.createRun({ runId: 'unst', thing: 'pi-1', space: 'mobilenetv3', params: {} });
    await state.putSamples('unst', planned(['x']));
    const unstable = {
      ...result('unst', 'b0a1', [['x', 3]]),
      quality: { maxDrift: 0.2, unstable: true },
    };
    expect((await state.recordResult(unstable)).unstable).toBe(true);
    await state.recordResult(unstable);
    const run = await state.getRun('unst');
    expect(run?.unstableBatches).toEqual(['b0a1']);
    expect(run?.measured).toBe(0);
    expect(await state.listSamples('unst', { status: 'measured' })).toEqual([]);
  });

  it('updates runs, lists samples per iteration and stores iterations', async ({ skip }) => {
    if (!emulator) skip();
    const state = createRunState({ tables: resources });
    await state.createRun({ runId: 'upd', thing: 'pi-1', space: 'mobilenetv3', params: {} });
    await state.putSamples('upd', planned(['i0']));
    await state.putSamples('upd', [{ ...planned(['i1'])[0], iteration: 1 } as PlannedSample]);
    await state.updateRun('upd', { iteration: 1, batchId: 'b1a0', attempts: 1 });
    await expect(state.updateRun('missing', { iteration: 1 })).rejects.toThrow(/runId: no run/);
    expect(await state.getRun('upd')).toMatchObject({ iteration: 1, batchId: 'b1a0', attempts: 1 });
    expect((await state.listSamples('upd', { iteration: 1 })).map((s) => s.id)).toEqual(['i1']);
    const record = {
      runId: 'upd',
      predictorId: 'upd',
      samples: { train: 3, test: 1 },
      bins: [{ lo: 10, hi: 12, train: 3, test: 1, accuracy: 0.97 }],
      overall: {
        n: 1,
        accuracy: 0.97,
        binBalancedAccuracy: 0.97,
        within5: 1,
        within10: 1,
        rmse_ms: 0.1,
        spearman: null,
      },
      secondsMeasuring: 3,
      secondsTraining: 1.5,
      quality: { maxDrift: 0.01, remeasured: 0 },
      converged: true,
      stop: true,
      reason: 'converged' as const,
      nextBinWeights: [],
      finishedAt: '2026-01-01T00:00:00.000Z',
    };
    await state.putIteration({ ...record, iteration: 1 });
    await state.putIteration({ ...record, iteration: 0 });
    expect((await state.listIterations('upd')).map((r) => r.iteration)).toEqual([0, 1]);
  });
});

describe('IoT data-plane publisher', () => {
  it('publishes a job to the device jobs topic (the emulator accepts it)', async ({ skip }) => {
    if (!emulator) skip();
    const publisher = createIotPublisher({ endpoint: 'ignored.iot.example.com' });
    await expect(
      publisher.publish('pi-1', {
        v: 1,
        type: 'job',
        runId: 'r',
        batchId: 'b',
        space: 'mobilenetv3',
        samples: [{ id: 's', arch: { d: [2] } }],
        settings: {
          warmup: 1,
          runs: 3,
          threads: 1,
          batchSize: 1,
          referenceEvery: 0,
          maxReferenceDrift: 0.03,
        },
        references: [],
      }),
    ).resolves.toBeUndefined();
  });
});
