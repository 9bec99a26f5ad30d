/**
 * Dispatch task: publishes the still-unmeasured samples of the current iteration to the
 * device, in jobs of `chunkSize` samples. Each publication is one attempt with its own job
 * ids (`i{iteration}-a{attempt}-c{chunk}`), so results of an unstable or late attempt can be
 * told apart; samples already measured are never sent again.
 */
import { type JobMessage, jobMessage } from '../../core/schemas/protocol.ts';
import {
  createIotPublisher,
  createMqttPublisher,
  type JobPublisher,
} from '../adapters/iot-publisher.ts';
import { lazy, loadConfig, transportEnv } from '../config.ts';
import { logger, workflowTask } from '../middleware.ts';
import {
  iterationInput,
  loadRun,
  type WorkflowDeps,
  workflowDeps,
} from '../workflow/run-context.ts';

/** IoT Core in AWS; an MQTT broker when `ESM_MQTT_URL` is set (local mode, tests). */
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

/** Prefix of the job ids of one publication of an iteration's batch. */
export const attemptPrefix = (iteration: number, attempt: number) => `i${iteration}-a${attempt}-`;

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
    const { state } = deps();
    const { run, params } = await loadRun(state, runId);
    const pending = await state.listSamples(runId, { iteration, status: 'pending' });
    const attempt = (run.iteration === iteration ? run.attempts : 0) + 1;
    const prefix = attemptPrefix(iteration, attempt);
    const jobs: JobMessage[] = [];
    const addJobs = (chunk: typeof pending) => {
      const job = jobMessage.parse({
        v: 1,
        type: 'job',
        runId,
        batchId: `${prefix}c${jobs.length}`,
        space: params.space,
        spaceSpec: params.spaceSpec,
        samples: chunk.map((s) => ({ id: s.id, arch: s.arch })),
        settings: params.measurement,
      });
      if (chunk.length > 1 && Buffer.byteLength(JSON.stringify(job)) > jobLimit) {
        const half = Math.ceil(chunk.length / 2);
        addJobs(chunk.slice(0, half));
        addJobs(chunk.slice(half));
      } else {
        jobs.push(job);
      }
    };
    for (let start = 0; start < pending.length; start += params.chunkSize) {
      addJobs(pending.slice(start, start + params.chunkSize));
    }
    // Recorded before publishing: a result may arrive before this task returns.
    const at = new Date().toISOString();
    await state.updateRun(runId, {
      iteration,
      attempts: attempt,
      batchId: `${prefix}c0`,
      dispatchedAt: at,
      iterationStartedAt: attempt === 1 ? at : run.iterationStartedAt,
    });
    for (const job of jobs) await publisher().publish(run.thing, job);
    logger.info('batch dispatched', {
      runId,
      iteration,
      attempt,
      pending: pending.length,
      jobs: jobs.length,
    });
    return { runId, iteration, attempt, pending: pending.length };
  });
}

export const handler = createDispatchHandler();
