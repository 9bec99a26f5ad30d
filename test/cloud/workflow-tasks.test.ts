/**
 * The workflow tasks one by one against the emulator: a retried init plans the same batch
 * once, dispatch publishes only unmeasured samples in chunks with per-attempt job ids, and
 * collect re-dispatches an unstable batch once before failing with UnstableDeviceError.
 * Jobs are captured by a recording `JobPublisher` (the IoT publisher itself is exercised
 * in adapters.test.ts and e2e.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { JobMessage, ResultMessage } from '../../core/schemas/protocol.ts';
import type { JobPublisher } from '../../lambdas/adapters/iot-publisher.ts';
import { createRunState } from '../../lambdas/adapters/run-state.ts';
import { handler as collect } from '../../lambdas/handlers/workflow-collect.ts';
import { createDispatchHandler } from '../../lambdas/handlers/workflow-dispatch.ts';
import { handler as init } from '../../lambdas/handlers/workflow-init.ts';
import { lambdaContext } from '../support/local-sfn.ts';
import {
  type Emulator,
  type EsmResources,
  provisionEsmResources,
  startEmulator,
} from '../support/moto.ts';

vi.hoisted(() => {
  process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
});

let emulator: Emulator | undefined;
let resources: EsmResources;
const published: { thing: string; job: JobMessage }[] = [];
const recorder: JobPublisher = {
  publish: async (thing, job) => {
    published.push({ thing, job });
  },
};
const dispatch = createDispatchHandler(undefined, () => recorder);

const invoke = (handler: unknown, event: unknown) =>
  (handler as (e: unknown, c: unknown) => Promise<Record<string, unknown>>)(
    event,
    lambdaContext('task'),
  );

function resultFor(job: JobMessage, unstable: boolean, only?: number): ResultMessage {
  const samples = job.samples.slice(0, only ?? job.samples.length);
  return {
    v: 1,
    type: 'result',
    runId: job.runId,
    batchId: job.batchId,
    thing: 'pi-7',
    samples: samples.map((s, i) => ({
      id: s.id,
      stats: { median_ms: 5 + i, mean_ms: 5 + i, std_ms: 0.1, min_ms: 4, max_ms: 9, runs: 3 },
    })),
    references: [],
    quality: { maxDrift: unstable ? 0.2 : 0.01, unstable },
    device: {
      thing: 'pi-7',
      cpu: 'x',
      cores: 1,
      accelerator: null,
      os: 'linux',
      node: 'v20',
      onnxruntime: '1.30',
      executionProvider: 'cpu',
    },
    settings: job.settings,
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:00:01.000Z',
  };
}

beforeAll(async () => {
  emulator = await startEmulator();
  if (emulator) resources = await provisionEsmResources('tasks');
});
afterAll(async () => {
  await emulator?.stop();
});

describe('workflow tasks', () => {
  const params = {
    space: 'mobilenetv3',
    device: 'thing:pi-7',
    nInit: 12,
    chunkSize: 5,
    seed: 3,
    measurement: { warmup: 0, runs: 3 },
  };

  it('plans once, dispatches unmeasured samples, re-dispatches unstable once, then fails', async ({
    skip,
  }) => {
    if (!emulator) skip();
    const state = createRunState({ tables: resources });
    const input = { runId: 'tasks-1', params };
    expect(await invoke(init, input)).toEqual({ runId: 'tasks-1', iteration: 0 });
    const planned = await state.listSamples('tasks-1');
    // A retried init (Lambda retry, redriven execution) plans the same samples, once.
    await invoke(init, input);
    const replanned = await state.listSamples('tasks-1');
    expect(planned).toHaveLength(12);
    expect(replanned.map((s) => [s.id, s.key])).toEqual(planned.map((s) => [s.id, s.key]));

    const first = await invoke(dispatch, { runId: 'tasks-1', iteration: 0 });
    expect(first).toMatchObject({ attempt: 1, pending: 12 });
    expect(published.map((p) => [p.thing, p.job.batchId, p.job.samples.length])).toEqual([
      ['pi-7', 'i0-a1-c0', 5],
      ['pi-7', 'i0-a1-c1', 5],
      ['pi-7', 'i0-a1-c2', 2],
    ]);
    const [job0, job1] = published.map((p) => p.job) as [JobMessage, JobMessage];
    expect(job0.settings).toMatchObject({ warmup: 0, runs: 3 });

    // Job 0 answered fully, job 1 partly; still measuring.
    await state.recordResult(resultFor(job0, false));
    await state.recordResult(resultFor(job1, false, 2));
    expect(await invoke(collect, { runId: 'tasks-1', iteration: 0 })).toMatchObject({
      batch: 'measuring',
      pending: 5,
    });

    // The last job comes back unstable: publish again, only what is unmeasured.
    await state.recordResult(resultFor(published[2]?.job as JobMessage, true));
    expect(await invoke(collect, { runId: 'tasks-1', iteration: 0 })).toMatchObject({
      batch: 'redispatch',
    });
    published.length = 0;
    expect(await invoke(dispatch, { runId: 'tasks-1', iteration: 0 })).toMatchObject({
      attempt: 2,
      pending: 5,
    });
    expect(published.map((p) => p.job.batchId)).toEqual(['i0-a2-c0']);
    const remaining = published[0]?.job.samples.map((s) => s.id).sort();
    expect(remaining).toEqual(
      (await state.listSamples('tasks-1', { status: 'pending' })).map((s) => s.id).sort(),
    );

    // Unstable again: the run must not train on drifting measurements.
    await state.recordResult(resultFor(published[0]?.job as JobMessage, true));
    await expect(invoke(collect, { runId: 'tasks-1', iteration: 0 })).rejects.toMatchObject({
      name: 'UnstableDeviceError',
    });
    expect((await state.getRun('tasks-1'))?.measured).toBe(7);
  });

  it('splits a chunk whose job message would exceed the IoT Core message size', async ({
    skip,
  }) => {
    if (!emulator) skip();
    published.length = 0;
    // 120 KB in production; a small limit keeps the test fast, the splitting is the same.
    const limit = 2048;
    const smallJobs = createDispatchHandler(undefined, () => recorder, { maxJobBytes: limit });
    await invoke(init, { runId: 'tasks-2', params: { ...params, nInit: 30, chunkSize: 30 } });
    await invoke(smallJobs, { runId: 'tasks-2', iteration: 0 });
    const sizes = published.map((p) => Buffer.byteLength(JSON.stringify(p.job)));
    expect(published.length).toBeGreaterThan(2);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(limit);
    const ids = published.flatMap((p) => p.job.samples.map((s) => s.id));
    expect(new Set(ids).size).toBe(30);
    expect(new Set(published.map((p) => p.job.batchId)).size).toBe(published.length);
  });
});
