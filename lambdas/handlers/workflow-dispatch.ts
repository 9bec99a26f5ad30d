/**
 * Dispatch task: sends the pending samples of the current iteration that no job holds, in
 * jobs of at most `chunkSize` samples sharded over the run's live devices, each holding at
 * most `maxJobsInFlight` jobs (the rest waits for the next dispatch, after a result). Every dispatch is
 * a new attempt with fresh job ids (core/loop.ts `jobId`). An interleaved run that has no
 * reference calibration yet sends one job only: its result fixes the scale that every later
 * job carries, so that all latencies of the run share one scale in both engines.
 */
import { jobId, jobsInFlight, liveDevices, shardJobs } from '../../core/loop.ts';
import type { JobPublisher } from '../../core/ports.ts';
import { type JobMessage, jobMessage } from '../../core/schemas/protocol.ts';
import type { SampleRecord } from '../../core/schemas/run.ts';
import { sortRows } from '../../core/train-iteration.ts';
import { createIotPublisher, createMqttPublisher } from '../adapters/iot-publisher.ts';
import { lazy, loadConfig, transportEnv } from '../config.ts';
import { logger, workflowTask } from '../middleware.ts';
import {
  iterationInput,
  loadRun,
  type WorkflowDeps,
  workflowDeps,
} from '../workflow/run-context.ts';

/** IoT Core in AWS; an MQTT broker when `ESM_MQTT_URL` is set (tests). */
export const publisherFromEnv = lazy((): JobPublisher => {
  const transport = transportEnv.parse(process.env);
  if (transport.ESM_MQTT_URL !== undefined)
    return createMqttPublisher({ url: transport.ESM_MQTT_URL });
  return createIotPublisher({ endpoint: loadConfig(['iotDataEndpoint']).iotDataEndpoint });
});

/**
 * Largest job message: IoT Core refuses MQTT messages over 128 KB, so a chunk that would
 * exceed this is split in halves (user-defined spaces can have large architectures).
 */
export const maxJobBytes = 120 * 1024;

export interface DispatchOptions {
  /** Largest job message in bytes. @default maxJobBytes */
  readonly maxJobBytes?: number;
}

export function createDispatchHandler(
  deps: () => WorkflowDeps = workflowDeps,
  publisher: () => JobPublisher = publisherFromEnv,
  options: DispatchOptions = {},
) {
  const jobLimit = options.maxJobBytes ?? maxJobBytes;
  return workflowTask(iterationInput, async ({ runId, iteration }) => {
    const { state, clock } = deps();
    const { run, params, things } = await loadRun(state, runId);
    // In sample order whatever order the store lists them in, so both engines form the same jobs.
    const pending = sortRows(await state.listSamples(runId, { iteration, status: 'pending' }));
    const unassigned = pending.filter((s) => s.assignedBatch === undefined);
    const attempt = (run.iteration === iteration ? run.attempts : 0) + 1;
    const base = { runId, iteration, pending: pending.length };
    if (unassigned.length === 0) return { ...base, attempt: attempt - 1, jobs: 0 };

    const live = liveDevices(things, run.silent);
    const calibrating =
      params.measurement.interleave === true && params.measurement.referenceScaleMs === undefined;
    const shards = calibrating
      ? [{ thing: live[0] as string, items: unassigned.slice(0, params.chunkSize) }]
      : shardJobs(unassigned, live, {
          chunkSize: params.chunkSize,
          inFlight: jobsInFlight(pending),
        });
    const jobs: { thing: string; job: JobMessage }[] = [];
    const addJob = (thing: string, chunk: readonly SampleRecord[]) => {
      const job = jobMessage.parse({
        v: 1,
        type: 'job',
        runId,
        batchId: jobId(runId, iteration, attempt, jobs.length),
        space: params.space,
        spaceSpec: params.spaceSpec,
        samples: chunk.map((s) => ({ id: s.id, arch: s.arch })),
        settings: params.measurement,
      });
      if (chunk.length > 1 && Buffer.byteLength(JSON.stringify(job)) > jobLimit) {
        const half = Math.ceil(chunk.length / 2);
        addJob(thing, chunk.slice(0, half));
        addJob(thing, chunk.slice(half));
      } else {
        jobs.push({ thing, job });
      }
    };
    for (const shard of shards) addJob(shard.thing, shard.items);

    // Recorded before publishing: a result may arrive before this task returns.
    const at = (clock?.now() ?? new Date()).toISOString();
    await state.assignSamples(
      runId,
      jobs.flatMap(({ thing, job }) =>
        job.samples.map((s) => ({ id: s.id, thing, batchId: job.batchId })),
      ),
      at,
    );
    await state.updateRun(runId, {
      iteration,
      attempts: attempt,
      batchId: jobs[0]?.job.batchId,
      dispatchedAt: at,
      iterationStartedAt: attempt === 1 ? at : run.iterationStartedAt,
    });
    for (const { thing, job } of jobs) await publisher().publish(thing, job);
    logger.info('batch dispatched', {
      runId,
      iteration,
      attempt,
      pending: pending.length,
      jobs: jobs.length,
      devices: [...new Set(jobs.map((j) => j.thing))],
      calibrating,
    });
    return { ...base, attempt, jobs: jobs.length, dispatched: unassigned.length };
  });
}

export const handler = createDispatchHandler();
