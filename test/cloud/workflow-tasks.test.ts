/**
 * The workflow tasks one by one against the emulator: a retried init plans the same batch
 * once, dispatch publishes only unmeasured samples in chunks with per-attempt job ids,
 * collect re-dispatches an unstable batch once (fresh ids) before failing with
 * UnstableDeviceError, a silent device's share goes to the others, and ingestion refuses
 * samples of jobs that never carried them.
 * Jobs are captured by a recording `JobPublisher` (the IoT publisher itself is exercised
 * in adapters.test.ts and e2e.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { JobMessage, ResultMessage } from '../../core/schemas/protocol.ts';
import type { JobPublisher } from '../../lambdas/adapters/iot-publisher.ts';
import { createRunState } from '../../lambdas/adapters/run-state.ts';
import {
  handler as collect,
  createCollectHandler,
} from '../../lambdas/handlers/workflow-collect.ts';
import { createDispatchHandler } from '../../lambdas/handlers/workflow-dispatch.ts';
import { handler as init } from '../../lambdas/handlers/workflow-init.ts';
import { workflowDeps } from '../../lambdas/workflow/run-context.ts';
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

function resultFor(
  job: JobMessage,
  unstable: boolean,
  only?: number,
  thing = 'pi-7',
): ResultMessage {
  const samples = job.samples.slice(0, only ?? job.samples.length);
  return {
    v: 1,
    type: 'result',
    runId: job.runId,
    batchId: job.batchId,
    thing,
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
      ['pi-7', 'tasks-1/i0-a1-c0', 5],
      ['pi-7', 'tasks-1/i0-a1-c1', 5],
      ['pi-7', 'tasks-1/i0-a1-c2', 2],
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
    const job2 = published[2]?.job as JobMessage;
    const job2Ids = job2.samples.map((s) => s.id).sort();
    await state.recordResult(resultFor(job2, true));
    expect(await invoke(collect, { runId: 'tasks-1', iteration: 0 })).toMatchObject({
      batch: 'redispatch',
    });
    published.length = 0;
    expect(await invoke(dispatch, { runId: 'tasks-1', iteration: 0 })).toMatchObject({
      attempt: 2,
      pending: 5,
      dispatched: 2,
    });
    // Only the unstable job's samples are sent again, under a fresh id.
    expect(published.map((p) => p.job.batchId)).toEqual(['tasks-1/i0-a2-c0']);
    const remaining = published[0]?.job.samples.map((s) => s.id).sort();
    expect(remaining).toEqual(job2Ids);

    // Unstable again: the run must not train on drifting measurements.
    await state.recordResult(resultFor(published[0]?.job as JobMessage, true));
    await expect(invoke(collect, { runId: 'tasks-1', iteration: 0 })).rejects.toMatchObject({
      name: 'UnstableDeviceError',
    });
    expect((await state.getRun('tasks-1'))?.measured).toBe(7);
  });

  it('shards over three devices, refuses foreign samples, and re-sends a silent share once', async ({
    skip,
  }) => {
    if (!emulator) skip();
    published.length = 0;
    let now = new Date('2026-01-01T00:00:00.000Z');
    const clock = { now: () => now };
    const deps = () => ({ ...workflowDeps(), clock });
    const fanDispatch = createDispatchHandler(deps, () => recorder);
    const fanCollect = createCollectHandler(deps);
    const state = createRunState({ tables: resources });
    const fan = {
      ...params,
      device: 'thing:pi-a,thing:pi-b,thing:pi-c',
      things: ['pi-a', 'pi-b', 'pi-c'],
      resultTimeoutSeconds: 60,
    };
    await invoke(init, { runId: 'tasks-fan', params: fan });
    await invoke(fanDispatch, { runId: 'tasks-fan', iteration: 0 });
    // 12 samples, chunks of at most 5 but no more than an equal share: one job of 4 each.
    expect(published.map((p) => [p.thing, p.job.samples.length])).toEqual([
      ['pi-a', 4],
      ['pi-b', 4],
      ['pi-c', 4],
    ]);
    const [jobA, jobB, jobC] = published.map((p) => p.job) as [JobMessage, JobMessage, JobMessage];

    // pi-b answering for pi-a's job: nothing of it is recorded.
    const foreign = await state.recordResult(resultFor(jobA, false, undefined, 'pi-b'));
    expect(foreign.recorded).toBe(0);
    expect([...foreign.rejected].sort()).toEqual(jobA.samples.map((s) => s.id).sort());
    await state.recordResult(resultFor(jobB, false, undefined, 'pi-b'));
    await state.recordResult(resultFor(jobC, false, undefined, 'pi-c'));

    // pi-a reported progress 30 s in: not silent yet at 70 s (timeout counts from progress).
    await state.recordProgress('tasks-fan', 'pi-a', '2026-01-01T00:00:30.000Z');
    now = new Date('2026-01-01T00:01:10.000Z');
    expect(await invoke(fanCollect, { runId: 'tasks-fan', iteration: 0 })).toMatchObject({
      batch: 'measuring',
      pending: 4,
    });
    // Silent for more than 60 s: its share goes to the two others.
    now = new Date('2026-01-01T00:01:40.000Z');
    expect(await invoke(fanCollect, { runId: 'tasks-fan', iteration: 0 })).toMatchObject({
      batch: 'redispatch',
      reason: 'timeout',
      silent: ['pi-a'],
    });
    published.length = 0;
    await invoke(fanDispatch, { runId: 'tasks-fan', iteration: 0 });
    expect(published.map((p) => [p.thing, p.job.samples.length])).toEqual([
      ['pi-b', 2],
      ['pi-c', 2],
    ]);
    // pi-a finishes late after all: recorded once; the re-sent jobs then add nothing.
    expect(await state.recordResult(resultFor(jobA, false, undefined, 'pi-a'))).toMatchObject({
      recorded: 4,
    });
    for (const p of published) {
      expect(await state.recordResult(resultFor(p.job, false, undefined, p.thing))).toMatchObject({
        recorded: 0,
        duplicates: 2,
      });
    }
    const measured = await state.listSamples('tasks-fan', { status: 'measured' });
    expect(measured).toHaveLength(12);
    const byThing = Object.fromEntries(
      ['pi-a', 'pi-b', 'pi-c'].map((t) => [t, measured.filter((s) => s.thing === t).length]),
    );
    expect(byThing).toEqual({ 'pi-a': 4, 'pi-b': 4, 'pi-c': 4 });
    expect((await state.getRun('tasks-fan'))?.measured).toBe(12);
    expect(await invoke(fanCollect, { runId: 'tasks-fan', iteration: 0 })).toMatchObject({
      batch: 'complete',
    });
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
