/**
 * The cloud ESM loop run in-process, for end-to-end tests: the state machine definition
 * executed by aws-local-stepfunctions with every Task state mapped to its real handler, jobs
 * published to IoT (the emulator accepts them) and to an MQTT broker where a real device
 * daemon answers, and the IoT results rule played by a bridge from the broker to the
 * ingestion handler. The device measures with a replay model (synthetic latencies with
 * seeded noise), so runs converge in seconds; daemon, broker and protocol are real.
 */
import { StateMachine } from 'aws-local-stepfunctions';
import mqtt from 'mqtt';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { createRng } from '../../core/rng.ts';
import type { JobMessage, ResultMessage } from '../../core/schemas/protocol.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { createIotPublisher, fanOutPublisher } from '../../lambdas/adapters/iot-publisher.ts';
import type { ExecutionStarter } from '../../lambdas/handlers/api-start-run.ts';
import { handler as ingest } from '../../lambdas/handlers/ingest-results.ts';
import { handler as collect } from '../../lambdas/handlers/workflow-collect.ts';
import {
  createDispatchHandler,
  publisherFromEnv,
} from '../../lambdas/handlers/workflow-dispatch.ts';
import { handler as extend } from '../../lambdas/handlers/workflow-extend.ts';
import { handler as fail } from '../../lambdas/handlers/workflow-fail.ts';
import { handler as init } from '../../lambdas/handlers/workflow-init.ts';
import { createTrainHandler } from '../../lambdas/handlers/workflow-train.ts';
import { buildDefinition, states, workflowTasks } from '../../lambdas/workflow/definition.ts';
import { asTask, lambdaContext } from './local-sfn.ts';

/** A replay device's measurement: synthetic CPU latencies, 1 % seeded noise per sample. */
export async function replayJob(
  job: JobMessage,
  options: { thing: string },
): Promise<ResultMessage> {
  const space = getSpace(job.space);
  const startedAt = new Date().toISOString();
  const samples = job.samples.map(({ id, arch }) => {
    let h = 2166136261;
    for (const c of `${job.runId}/${id}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
    const ms = syntheticLatencyMs(space, space.parse(arch), { noise: 0.01, rng: createRng(h) });
    return {
      id,
      stats: {
        median_ms: ms,
        mean_ms: ms * 1.01,
        std_ms: ms * 0.02,
        min_ms: ms * 0.97,
        max_ms: ms * 1.1,
        runs: job.settings.runs,
      },
    };
  });
  return {
    v: 1,
    type: 'result',
    runId: job.runId,
    batchId: job.batchId,
    thing: options.thing,
    samples,
    references: [],
    quality: { maxDrift: 0, unstable: false },
    device: {
      thing: options.thing,
      cpu: 'synthetic',
      cores: 1,
      accelerator: null,
      os: 'linux',
      node: process.version,
      onnxruntime: 'none',
      executionProvider: 'cpu',
    },
    settings: job.settings,
    startedAt,
    finishedAt: new Date().toISOString(),
  };
}

const fakeArns = Object.fromEntries(
  workflowTasks.map((t) => [t, `arn:aws:lambda:us-east-1:123456789012:function:${t}`]),
) as Record<(typeof workflowTasks)[number], string>;

/** Starts executions of the real definition; each execution's result lands in `executions`. */
export function localStarter(executions: Map<string, Promise<unknown>>): ExecutionStarter {
  const machine = new StateMachine(buildDefinition(fakeArns, { pollSeconds: 30 }) as never);
  const dispatch = createDispatchHandler(undefined, () =>
    fanOutPublisher(createIotPublisher(), publisherFromEnv()),
  );
  // Fewer epochs than the default keep tests in seconds; the training code path is the same.
  const train = createTrainHandler(undefined, { regressor: { mlp: { maxEpochs: 150 } } });
  return async (runId, input) => {
    const execution = machine.run(input as never, {
      overrides: {
        taskResourceLocalHandlers: {
          [states.init]: asTask('workflowInit', init),
          [states.dispatch]: asTask('workflowDispatch', dispatch),
          [states.collect]: asTask('workflowCollect', collect),
          [states.train]: asTask('workflowTrain', train),
          [states.extend]: asTask('workflowExtend', extend),
          [states.markFailed]: asTask('workflowFail', fail),
        },
        waitTimeOverrides: { [states.wait]: 150 },
      },
    });
    const result = execution.result;
    result.catch(() => {});
    executions.set(runId, result);
    return `arn:aws:states:us-east-1:123456789012:execution:esm:${runId}`;
  };
}

/**
 * The IoT results rule: broker results (JSON plus `topic`) to the ingestion handler, each
 * delivered `repeat` times (QoS 1 is at-least-once: 2 proves ingestion idempotent).
 */
export async function startResultsBridge(brokerUrl: string, options: { repeat?: number } = {}) {
  const { repeat = 1 } = options;
  const ingestions: Promise<unknown>[] = [];
  const client = await mqtt.connectAsync(brokerUrl, { clientId: 'iot-rule-bridge' });
  client.on('message', (topic, payload) => {
    const event = { ...JSON.parse(payload.toString()), topic };
    for (let i = 0; i < repeat; i++) {
      ingestions.push(ingest(event as never, lambdaContext('ingestResults') as never));
    }
  });
  await client.subscribeAsync('esm/devices/+/results', { qos: 1 });
  return {
    /** Ingestions started so far (deliveries, repeats included). */
    deliveries: () => ingestions.length,
    settled: () => Promise.all(ingestions),
    close: () => client.endAsync(),
  };
}
