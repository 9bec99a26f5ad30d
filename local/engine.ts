/**
 * The local engine of the ESM loop: `esm run` executes THE workflow definition
 * (lambdas/workflow/definition.ts, the one CDK deploys) with aws-local-stepfunctions, its Task
 * states mapped to the same handler factories the Lambdas use, over local adapters:
 *
 * - run state: the run directory (local/run-store.ts, a `RunStateStore`);
 * - datasets and predictors: files in the run directory (local/file-store.ts);
 * - jobs: the MQTT publisher of the Lambdas, pointed at the embedded broker or `--broker`;
 * - results and progress: every message on the broker's results and status topics goes
 *   through the ingestion handlers that the IoT rules invoke in the cloud.
 *
 * Waits are event-driven: the Wait state is shortened to nothing and the Collect task first
 * waits for the next result (or `pollMs`), so a batch is collected as soon as it arrives.
 * Progress bars and iteration summaries come from the execution's event log.
 */
import './sfn.ts';
import { StateMachine } from 'aws-local-stepfunctions';
import mqtt from 'mqtt';
import {
  EsmError,
  MeasurementTimeoutError,
  UnstableDeviceError,
  ValidationError,
} from '../core/errors.ts';
import { runOfJob } from '../core/loop.ts';
import type { RegressorOptions } from '../core/predictor/index.ts';
import { topics } from '../core/schemas/protocol.ts';
import type { IterationRecord, RunParams, RunState } from '../core/schemas/run.ts';
import { createMqttPublisher } from '../lambdas/adapters/iot-publisher.ts';
import { createIngestHandler } from '../lambdas/handlers/ingest-results.ts';
import { createIngestStatusHandler } from '../lambdas/handlers/ingest-status.ts';
import { createCollectHandler } from '../lambdas/handlers/workflow-collect.ts';
import { createDispatchHandler } from '../lambdas/handlers/workflow-dispatch.ts';
import { createExtendHandler } from '../lambdas/handlers/workflow-extend.ts';
import { createFailHandler } from '../lambdas/handlers/workflow-fail.ts';
import { createInitHandler } from '../lambdas/handlers/workflow-init.ts';
import { createTrainHandler } from '../lambdas/handlers/workflow-train.ts';
import {
  buildDefinition,
  states,
  type WorkflowTask,
  workflowTasks,
} from '../lambdas/workflow/definition.ts';
import type { WorkflowDeps } from '../lambdas/workflow/run-context.ts';
import { createRunDirStore } from './file-store.ts';
import type { RunStore } from './run-store.ts';
import { asTask, lambdaContext } from './sfn.ts';

/** What the loop reports while it works (progress bars, logs). */
export type RunEvent =
  | { type: 'batch'; iteration: number; total: number; done: number }
  | { type: 'measured'; iteration: number; total: number; done: number }
  | { type: 'unstable'; iteration: number; batches: readonly string[] }
  | { type: 'redispatch'; iteration: number; silent: readonly string[] }
  | { type: 'rejected'; message: string }
  | { type: 'training'; iteration: number; rows: number }
  | { type: 'epoch'; iteration: number; epoch: number; maxEpochs: number }
  | { type: 'iteration'; record: IterationRecord }
  | { type: 'interrupted'; iteration: number };

export interface RunSummary {
  readonly runId: string;
  readonly status: RunState['status'];
  readonly converged: boolean;
  readonly iterations: number;
  readonly samples: number;
  /** Per bin: measured samples (train + test) and the last test accuracy. */
  readonly bins: { lo: number; hi: number; n: number; accuracy: number | null }[];
  readonly history: IterationRecord[];
  /** Directory of the final predictor. */
  readonly predictor: string;
  /** True when the loop stopped on request (Ctrl-C) before finishing. */
  readonly interrupted: boolean;
}

/** The run's summary as `esm run --json` prints it, from what the store holds. */
export function summarise(store: RunStore, interrupted = false): RunSummary {
  const state = store.state;
  const history = store.iterations();
  const last = history[history.length - 1];
  return {
    runId: state.runId,
    status: state.status,
    converged: state.status === 'converged',
    iterations: history.length,
    samples: store.measurements().length,
    bins: (last?.bins ?? []).map((b) => ({
      lo: b.lo,
      hi: b.hi,
      n: b.train + b.test,
      accuracy: b.accuracy,
    })),
    history,
    predictor: store.path('predictor'),
    interrupted,
  };
}

export interface RunWorkflowOptions {
  readonly store: RunStore;
  /** The broker the devices listen on. */
  readonly brokerUrl: string;
  /** Regressor options (tests shorten training). @default the model's defaults */
  readonly regressor?: RegressorOptions;
  /** Longest wait between two Collect steps when nothing arrives. @default 1000 */
  readonly pollMs?: number;
  /** Aborting stops the execution; everything done so far is kept for `--resume`. */
  readonly signal?: AbortSignal;
  readonly onEvent?: (event: RunEvent) => void;
}

const localArns = Object.fromEntries(
  workflowTasks.map((t) => [t, `arn:aws:lambda:us-east-1:000000000000:function:esm-${t}`]),
) as Record<WorkflowTask, string>;

/**
 * Settings a resume may change (core/schemas/run.ts `resumableParams`, plus the measurement's
 * `maxReferenceDrift`), given as the flags of `esm run`.
 */
export interface ResumeChanges {
  readonly maxIter?: number;
  readonly accTh?: number;
  readonly resultTimeoutSeconds?: number;
  readonly maxDrift?: number;
}

/**
 * Prepares a run directory for another execution: applies the allowed changes, and sets a
 * failed or stopped run running again with fresh retry counters; its unmeasured samples are
 * released, so the first dispatch sends them again under new job ids (a device's duplicate
 * detection must not answer them from its cache). Returns false when there is nothing to do
 * (a finished run whose stopping rule did not change).
 */
export async function prepareResume(store: RunStore, changes: ResumeChanges): Promise<boolean> {
  const state = store.state;
  const params: RunParams = {
    ...state.params,
    ...(changes.maxIter !== undefined && { maxIter: changes.maxIter }),
    ...(changes.accTh !== undefined && { accTh: changes.accTh }),
    ...(changes.resultTimeoutSeconds !== undefined && {
      resultTimeoutSeconds: changes.resultTimeoutSeconds,
    }),
    measurement: {
      ...state.params.measurement,
      ...(changes.maxDrift !== undefined && { maxReferenceDrift: changes.maxDrift }),
    },
  };
  const stopRuleChanged =
    params.maxIter !== state.params.maxIter || params.accTh !== state.params.accTh;
  if (state.status !== 'running' && state.status !== 'failed' && !stopRuleChanged) return false;
  const pending = await store.listSamples(state.runId, { status: 'pending' });
  await store.releaseSamples(
    state.runId,
    pending.map((s) => s.id),
  );
  await store.updateRun(state.runId, {
    params,
    status: 'running',
    unstableRetries: 0,
    redispatches: 0,
    silent: [],
  });
  store.clearError();
  return true;
}

/** The error a failed execution recorded on the run, as the class the task threw. */
function failure(store: RunStore): Error {
  const { error = 'the workflow failed', errorName } = store.state;
  const resume = `esm run --resume ${store.dir}`;
  switch (errorName) {
    case 'UnstableDeviceError':
      return new UnstableDeviceError(`${error}: ${resume} --max-drift X`);
    case 'MeasurementTimeoutError':
      return new MeasurementTimeoutError(`${error}: ${resume}`);
    case 'ValidationError':
    case 'ArchValidationError':
    case 'UnknownSpaceError':
      return new ValidationError(
        error.split(':')[0] ?? 'run',
        error.split(': ').slice(1).join(': '),
      );
    default:
      return new EsmError(`${errorName ?? 'Error'}: ${error} (continue with: ${resume})`);
  }
}

/** Runs (or resumes) the loop of `store` until it converges, fails, or is aborted. */
export async function runWorkflow(options: RunWorkflowOptions): Promise<RunSummary> {
  const { store, brokerUrl, pollMs = 1000 } = options;
  const emit = options.onEvent ?? (() => {});
  const runId = store.state.runId;
  const deps = (): WorkflowDeps => ({ state: store, store: createRunDirStore(store.dir) });
  const depsOnce = deps();
  const publisher = createMqttPublisher({
    url: brokerUrl,
    clientId: `esm-run-jobs-${process.pid}`,
  });

  // Activity wakes a waiting Collect step: a result ingested (or the poll interval).
  let generation = 0;
  let seen = 0;
  let wake: (() => void) | undefined;
  const bump = () => {
    generation += 1;
    wake?.();
  };
  const waitForActivity = () =>
    generation > seen
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pollMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });

  // Results and progress reach the same ingestion handlers as the IoT rules' messages.
  const ingest = createIngestHandler(() => depsOnce);
  const ingestStatus = createIngestStatusHandler(
    () => undefined,
    () => store,
  );
  const inFlight = new Map<string, number>();
  let current: { iteration: number; total: number } | undefined;
  const measuredIn = (iteration: number) =>
    store.state.samples.filter((s) => s.iteration === iteration && s.status === 'measured').length;
  const showProgress = () => {
    if (!current) return;
    const running = [...inFlight.values()].reduce((a, b) => a + b, 0);
    const done = Math.min(current.total, measuredIn(current.iteration) + running);
    emit({ type: 'measured', iteration: current.iteration, total: current.total, done });
  };

  const client = await mqtt.connectAsync(brokerUrl, {
    // A persistent session per run: results published while `esm run` was down (a resume on
    // an external broker) are delivered when it is back.
    clientId: `esm-run-${runId}`.slice(0, 128),
    clean: false,
    reconnectPeriod: 1000,
  });
  let queue = Promise.resolve();
  client.on('message', (topic, payload) => {
    queue = queue.then(async () => {
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(payload.toString()) as Record<string, unknown>;
      } catch {
        emit({ type: 'rejected', message: `a message on ${topic} is not JSON; ignored` });
        return;
      }
      const batchId = typeof message.batchId === 'string' ? message.batchId : undefined;
      const ours =
        message.runId === runId || (batchId !== undefined && runOfJob(batchId) === runId);
      if (!ours) return;
      try {
        if (topic.endsWith('/results')) {
          const outcome = (await ingest(
            { ...message, topic } as never,
            lambdaContext('ingestResults'),
          )) as { rejected: readonly string[] };
          if (batchId) inFlight.delete(batchId);
          if (outcome.rejected.length > 0) {
            emit({
              type: 'rejected',
              message: `result ${batchId} from ${String(message.thing)}: ignored ${outcome.rejected.length} samples that were not sent in that job`,
            });
          }
          bump();
          showProgress();
        } else if (topic.endsWith('/status')) {
          await ingestStatus({ ...message, topic } as never, lambdaContext('ingestStatus'));
          const progress = message.progress as { done?: number } | undefined;
          if (batchId && typeof progress?.done === 'number') {
            inFlight.set(batchId, progress.done);
            showProgress();
          }
        }
      } catch (error) {
        emit({ type: 'rejected', message: `${topic}: ${(error as Error).message}` });
      }
    });
  });
  await client.subscribeAsync({
    [topics.results('+')]: { qos: 1 },
    [topics.status('+')]: { qos: 1 },
  });

  const collect = createCollectHandler(deps);
  const train = createTrainHandler(deps, {
    regressor: options.regressor,
    onEpoch: ({ iteration, epoch, maxEpochs }) =>
      emit({ type: 'epoch', iteration, epoch, maxEpochs }),
  });
  const machine = new StateMachine(buildDefinition(localArns) as never);
  const execution = machine.run({ runId, params: store.state.params, limits: {} } as never, {
    noThrowOnAbort: true,
    overrides: {
      taskResourceLocalHandlers: {
        [states.init]: asTask('workflowInit', createInitHandler(deps)),
        [states.dispatch]: asTask(
          'workflowDispatch',
          createDispatchHandler(deps, () => publisher),
        ),
        [states.collect]: async (input) => {
          await waitForActivity();
          seen = generation;
          wake = undefined;
          return asTask('workflowCollect', collect)(input);
        },
        [states.train]: async (input) => {
          const iteration = (input as { iteration: number }).iteration;
          const rows = store.state.samples.filter(
            (s) => s.status === 'measured' && s.split === 'train',
          ).length;
          emit({ type: 'training', iteration, rows });
          return asTask('workflowTrain', train)(input);
        },
        [states.extend]: asTask('workflowExtend', createExtendHandler(deps)),
        [states.markFailed]: asTask('workflowFail', createFailHandler(deps)),
      },
      waitTimeOverrides: { [states.wait]: 0 },
    },
  });
  const onAbort = () => execution.abort();
  options.signal?.addEventListener('abort', onAbort);

  const events = (async () => {
    for await (const event of execution.eventLogs) {
      if (event.type !== 'StateExited') continue;
      const output = (event.state.output ?? {}) as Record<string, unknown>;
      const iteration = output.iteration as number;
      if (event.state.name === states.dispatch) {
        if (current?.iteration !== iteration) {
          const total = store.state.samples.filter((s) => s.iteration === iteration).length;
          current = { iteration, total };
          inFlight.clear();
          emit({ type: 'batch', iteration, total, done: measuredIn(iteration) });
        }
      } else if (event.state.name === states.collect) {
        if (output.reason === 'unstable') {
          emit({ type: 'unstable', iteration, batches: output.unstable as string[] });
        } else if (output.reason === 'timeout') {
          emit({ type: 'redispatch', iteration, silent: output.silent as string[] });
        }
        showProgress();
      } else if (event.state.name === states.train) {
        const record = store.iterations().find((r) => r.iteration === iteration);
        if (record) emit({ type: 'iteration', record });
      }
    }
  })();

  let aborted = false;
  try {
    const result = await execution.result;
    aborted = result === null;
  } catch {
    await events.catch(() => {});
    throw failure(store);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    await queue.catch(() => {});
    await client.endAsync();
    await publisher.close();
  }
  // An aborted execution's event log may never end: only a finished one is drained.
  if (!aborted) await events;
  if (aborted) emit({ type: 'interrupted', iteration: store.state.iteration });
  return summarise(store, aborted);
}

export interface RunLocalOptions extends Omit<RunWorkflowOptions, 'store' | 'brokerUrl'> {
  /** MQTT broker of `thing:` devices. @default the run's `broker` parameter */
  readonly broker?: string;
  /** Replay devices wait this long per sample. @default 0 */
  readonly replayDelayMs?: number;
}

/** Opens the run's devices (local/devices.ts), runs the workflow, closes them. */
export async function runLocal(
  store: RunStore,
  options: RunLocalOptions = {},
): Promise<RunSummary> {
  const { openDevices } = await import('./devices.ts');
  const { spaceOf } = await import('../lambdas/workflow/run-context.ts');
  const params = store.state.params;
  const devices = await openDevices(params.device, {
    space: spaceOf(params),
    broker: options.broker ?? params.broker,
    replayDelayMs: options.replayDelayMs,
  });
  try {
    return await runWorkflow({ ...options, store, brokerUrl: devices.brokerUrl });
  } finally {
    await devices.close();
  }
}
