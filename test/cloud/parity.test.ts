/**
 * Parity of the two engines: the same seed and the same replayed dataset through `esm run`'s
 * engine (file adapters in a run directory, local/engine.ts) and through the cloud path (the
 * same definition, the same handler factories over S3 and DynamoDB on the emulator, jobs over
 * MQTT to a replay daemon, results through the ingestion handler as the IoT rule delivers
 * them) plan the same architectures in every iteration and train predictors that agree to
 * 1e-6.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateMachine } from 'aws-local-stepfunctions';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { createRng } from '../../core/rng.ts';
import { depthBins, sampleArchitectures } from '../../core/sampling.ts';
import { runParams } from '../../core/schemas/run.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { type Daemon, startDaemon } from '../../device-client/daemon.ts';
import { createMqttPublisher } from '../../lambdas/adapters/iot-publisher.ts';
import { createRunState } from '../../lambdas/adapters/run-state.ts';
import { createS3Store } from '../../lambdas/adapters/s3-store.ts';
import { createIngestHandler } from '../../lambdas/handlers/ingest-results.ts';
import { createCollectHandler } from '../../lambdas/handlers/workflow-collect.ts';
import { createDispatchHandler } from '../../lambdas/handlers/workflow-dispatch.ts';
import { createExtendHandler } from '../../lambdas/handlers/workflow-extend.ts';
import { createFailHandler } from '../../lambdas/handlers/workflow-fail.ts';
import { createInitHandler } from '../../lambdas/handlers/workflow-init.ts';
import { createTrainHandler } from '../../lambdas/handlers/workflow-train.ts';
import { buildDefinition, states, workflowTasks } from '../../lambdas/workflow/definition.ts';
import { keys } from '../../lambdas/workflow/run-context.ts';
import { runLocal } from '../../local/engine.ts';
import { type Broker, startBroker } from '../../local/mqtt-broker.ts';
import { createReplayRunner, replayFacts } from '../../local/replay.ts';
import { RunStore } from '../../local/run-store.ts';
import { asTask, lambdaContext } from '../support/local-sfn.ts';
import { type Emulator, provisionEsmResources, startEmulator } from '../support/moto.ts';

vi.hoisted(() => {
  process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
});

const space = mobilenetv3;
const dir = mkdtempSync(join(tmpdir(), 'esm-parity-'));
const datasetFile = join(dir, 'replay.jsonl');
const rng = createRng(21);
const lines = sampleArchitectures(space, {
  n: 400,
  strategy: 'balanced',
  bins: depthBins(space, 10),
  rng,
}).map((s) => ({
  arch: space.toNative(s),
  latency_ms: syntheticLatencyMs(space, s, { noise: 0.02, rng }),
}));
writeFileSync(datasetFile, lines.map((l) => JSON.stringify(l)).join('\n'));
// Both runs leave the fastest tenth of the pool out (`dropBelow`, the same filter in both).
const floor = lines.map((l) => l.latency_ms).sort((a, b) => a - b)[40] as number;

/** Everything but the devices is the same in both runs. */
const common = {
  space: 'mobilenetv3',
  model: 'mlp',
  nInit: 40,
  nStep: 20,
  accTh: 0.999,
  bins: 4,
  maxIter: 3,
  testFraction: 0.25,
  seed: 17,
  dropBelow: floor,
  chunkSize: 8,
  measurement: { warmup: 0, runs: 3 },
} as const;
// Fewer epochs keep the test short; both engines train with the same options.
const regressor = { mlp: { maxEpochs: 80 } };

let emulator: Emulator | undefined;
let broker: Broker;
let daemon: Daemon;
let bridge: mqtt.MqttClient;

beforeAll(async () => {
  emulator = await startEmulator();
  if (!emulator) return;
  await provisionEsmResources('parity');
  broker = await startBroker({ port: 0 });
  daemon = await startDaemon(
    { broker: broker.url, thing: 'cloud-replay', heartbeatSeconds: 3600, progressIntervalMs: 0 },
    {
      runJob: await createReplayRunner(datasetFile, { space }),
      facts: (t) => replayFacts(t, datasetFile),
    },
  );
});
afterAll(async () => {
  await bridge?.endAsync();
  await daemon?.stop();
  await broker?.close();
  await emulator?.stop();
});

/** Flattened numbers of a model's JSON (weights, normalisation). */
function numbers(value: unknown, out: number[] = []): number[] {
  if (typeof value === 'number') out.push(value);
  else if (Array.isArray(value)) for (const v of value) numbers(v, out);
  else if (value && typeof value === 'object')
    for (const v of Object.values(value)) numbers(v, out);
  return out;
}

describe('esm run and the cloud run the same loop', () => {
  it('plan the same architectures every iteration and train the same predictors', async ({
    skip,
  }) => {
    if (!emulator) skip();
    // The local engine, as `esm run --device dataset:FILE` runs it.
    const store = RunStore.create(
      join(dir, 'local'),
      runParams.parse({ ...common, device: `dataset:${datasetFile}` }),
    );
    const local = await runLocal(store, { regressor, pollMs: 200 });

    // The cloud path: S3 holds the dataset to replay; jobs go over MQTT to the replay daemon.
    const s3 = createS3Store({ bucket: process.env.ESM_BUCKET as string });
    await s3.put('datasets/replay.jsonl', readFileSync(datasetFile));
    const publisher = createMqttPublisher({ url: broker.url });
    const ingest = createIngestHandler();
    const ingestions: Promise<unknown>[] = [];
    bridge = await mqtt.connectAsync(broker.url, { clientId: 'parity-rule' });
    bridge.on('message', (topic, payload) => {
      const event = { ...JSON.parse(payload.toString()), topic };
      ingestions.push(ingest(event as never, lambdaContext('ingestResults') as never));
    });
    await bridge.subscribeAsync('esm/devices/+/results', { qos: 1 });
    const arns = Object.fromEntries(
      workflowTasks.map((t) => [t, `arn:aws:lambda:us-east-1:123456789012:function:${t}`]),
    ) as Record<(typeof workflowTasks)[number], string>;
    const machine = new StateMachine(buildDefinition(arns) as never);
    const runId = 'parity-cloud';
    const params = runParams.parse({
      ...common,
      device: 'thing:cloud-replay',
      pool: 'datasets/replay.jsonl',
    });
    const execution = machine.run({ runId, params } as never, {
      overrides: {
        taskResourceLocalHandlers: {
          [states.init]: asTask('workflowInit', createInitHandler()),
          [states.dispatch]: asTask(
            'workflowDispatch',
            createDispatchHandler(undefined, () => publisher),
          ),
          [states.collect]: asTask('workflowCollect', createCollectHandler()),
          [states.train]: asTask('workflowTrain', createTrainHandler(undefined, { regressor })),
          [states.extend]: asTask('workflowExtend', createExtendHandler()),
          [states.markFailed]: asTask('workflowFail', createFailHandler()),
        },
        waitTimeOverrides: { [states.wait]: 100 },
      },
    });
    const output = (await execution.result) as Record<string, unknown>;
    await Promise.all(ingestions);
    await publisher.close();
    expect(output).toMatchObject({ runId, done: true });

    const state = createRunState({
      tables: {
        runsTable: process.env.ESM_RUNS_TABLE as string,
        iterationsTable: process.env.ESM_ITERATIONS_TABLE as string,
        samplesTable: process.env.ESM_SAMPLES_TABLE as string,
      },
    });
    const cloudSamples = await state.listSamples(runId);
    const localSamples = await store.listSamples(store.state.runId);
    expect(local.iterations).toBe(3);
    const plan = (samples: typeof cloudSamples) =>
      samples.map((s) => `${s.iteration}|${s.id}|${s.key}|${s.split}|${s.latencyMs}`).sort();
    // Same architectures, same splits, same latencies, iteration by iteration.
    expect(plan(cloudSamples)).toEqual(plan(localSamples));
    expect(cloudSamples.every((s) => s.status === 'measured')).toBe(true);
    expect(Math.min(...cloudSamples.map((s) => s.latencyMs as number))).toBeGreaterThanOrEqual(
      floor,
    );

    const cloudIterations = (await state.listIterations(runId)).sort(
      (a, b) => a.iteration - b.iteration,
    );
    expect(cloudIterations.map((r) => r.iteration)).toEqual([0, 1, 2]);
    cloudIterations.forEach((r, i) => {
      const l = local.history[i];
      expect(Math.abs(r.overall.accuracy - (l?.overall.accuracy ?? Number.NaN))).toBeLessThan(1e-6);
      expect(r.nextBinWeights).toEqual(l?.nextBinWeights);
    });
    // The iteration that stops the loop scores its predictor on the pool rows no sample drew
    // (those at or above the floor), in both engines alike.
    const kept = lines.filter((l) => l.latency_ms >= floor).length;
    const localTruth = local.history[2]?.poolTruth;
    const cloudTruth = cloudIterations[2]?.poolTruth;
    expect(localTruth?.n).toBe(kept - localSamples.length);
    expect(cloudTruth?.n).toBe(localTruth?.n);
    expect(cloudTruth?.bins.map((b) => b.n)).toEqual(localTruth?.bins.map((b) => b.n));
    expect(
      Math.abs((cloudTruth?.accuracy ?? Number.NaN) - (localTruth?.accuracy ?? Number.NaN)),
    ).toBeLessThan(1e-6);
    expect(local.history[1]?.poolTruth).toBeUndefined();
    expect(cloudIterations[1]?.poolTruth).toBeUndefined();

    const localModel = JSON.parse(readFileSync(join(local.predictor, 'predictor.json'), 'utf8'));
    const cloudModel = JSON.parse(
      new TextDecoder().decode(await s3.get(keys.predictorJson(`${runId}-i2`))),
    );
    const a = numbers(localModel.model);
    const b = numbers(cloudModel.model);
    expect(a.length).toBeGreaterThan(100);
    expect(b).toHaveLength(a.length);
    const worst = Math.max(...a.map((x, i) => Math.abs(x - (b[i] as number))));
    expect(worst).toBeLessThan(1e-6);
    expect(localModel.training.seed).toBe(cloudModel.training.seed);
  }, 240_000);
});
