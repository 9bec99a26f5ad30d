/**
 * `esm run`'s engine: the workflow definition executed locally over the run directory, with
 * replay devices (the real device daemon answering from a dataset) on an embedded broker.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { UnstableDeviceError } from '../../core/errors.ts';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { createRng } from '../../core/rng.ts';
import { depthBins, sampleArchitectures } from '../../core/sampling.ts';
import type { JobMessage, ResultMessage } from '../../core/schemas/protocol.ts';
import { type RunParamsInput, runParams } from '../../core/schemas/run.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { type Daemon, startDaemon } from '../../device-client/daemon.ts';
import { prepareResume, runLocal, runWorkflow } from '../../local/engine.ts';
import { runDirPath } from '../../local/file-store.ts';
import { type Broker, startBroker } from '../../local/mqtt-broker.ts';
import { RunStore } from '../../local/run-store.ts';

vi.hoisted(() => {
  process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
});

const space = mobilenetv3;

/** A measured-looking dataset: every depth covered, latency from the synthetic CPU model. */
function writeDataset(
  file: string,
  options: { n: number; seed: number; noiseOnly?: boolean },
): void {
  const rng = createRng(options.seed);
  const subnets = sampleArchitectures(space, {
    n: options.n,
    strategy: 'balanced',
    bins: depthBins(space, 10),
    rng,
  });
  const lines = subnets.map((s) => {
    // noiseOnly: latency unrelated to the architecture, so no predictor can reach the threshold.
    const latency = options.noiseOnly
      ? 1 + 99 * rng.next()
      : syntheticLatencyMs(space, s, { noise: 0.01, rng });
    return JSON.stringify({ arch: space.toNative(s), latency_ms: latency });
  });
  writeFileSync(file, `${lines.join('\n')}\n`);
}

const dir = mkdtempSync(join(tmpdir(), 'esm-engine-'));
const clean = join(dir, 'clean.jsonl');
const noisy = join(dir, 'noisy.jsonl');
writeDataset(clean, { n: 500, seed: 1 });
writeDataset(noisy, { n: 400, seed: 2, noiseOnly: true });

function params(device: string, extra: Partial<RunParamsInput> = {}) {
  return runParams.parse({
    space: 'mobilenetv3',
    device,
    // Ridge trains in milliseconds; the MLP path is covered by the CLI and cloud tests.
    model: 'ridge',
    nInit: 60,
    nStep: 30,
    bins: 5,
    accTh: 0.9,
    maxIter: 5,
    testFraction: 0.25,
    seed: 3,
    ...extra,
  });
}

let runs = 0;
const newStore = (p: ReturnType<typeof params>) => RunStore.create(join(dir, `run-${runs++}`), p);
const lines = (store: RunStore) =>
  readFileSync(store.path('dataset'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { id: string; thing: string });

describe('the run directory as the dataset store', () => {
  it('keeps every workflow key inside the run directory; only other paths are files', () => {
    const run = '/r';
    expect(runDirPath(run, 'runs/x/dataset.jsonl')).toBe('/r/dataset.jsonl');
    expect(runDirPath(run, 'runs/x/test-predictions.json')).toBe('/r/test-predictions.json');
    expect(runDirPath(run, 'predictors/x-i3/predictor.onnx')).toBe('/r/predictor/predictor.onnx');
    expect(runDirPath(run, 'predictors/x-i3/predictor-arch.json')).toBe(
      '/r/predictor/predictor-arch.json',
    );
    expect(runDirPath(run, 'predictors/latest/mobilenetv3/t.json')).toBeNull();
    expect(runDirPath(run, 'runs/x/other.json')).toBe('/r/runs/x/other.json');
    expect(runDirPath(run, '/data/replay.jsonl')).toBe('/data/replay.jsonl');
  });
});

describe('the local engine on a replayed dataset', () => {
  it('converges when the latency is learnable, every bin above the threshold', async () => {
    const store = newStore(params(`dataset:${clean}`));
    const events: string[] = [];
    const summary = await runLocal(store, { onEvent: (e) => events.push(e.type) });
    expect(summary.status).toBe('converged');
    expect(summary.converged).toBe(true);
    const last = summary.history[summary.history.length - 1];
    for (const b of last?.bins ?? []) expect(b.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(store.iterations()).toHaveLength(summary.iterations);
    const ids = lines(store).map((l) => l.id);
    expect(ids).toHaveLength(summary.samples);
    expect(new Set(ids).size).toBe(ids.length);
    expect(lines(store)[0]?.thing).toBe('esm-replay');
    // Progress and summaries come from the execution's events, one iteration line each.
    expect(events.filter((t) => t === 'iteration')).toHaveLength(summary.iterations);
    expect(events.filter((t) => t === 'batch')).toHaveLength(summary.iterations);
    const predictor = JSON.parse(readFileSync(join(summary.predictor, 'predictor.json'), 'utf8'));
    expect(predictor.model.kind).toBe('ridge');
    expect(predictor.training.data.rows).toBe(summary.samples);
  });

  it('stops at max-iter when no predictor can reach the threshold', async () => {
    const store = newStore(params(`dataset:${noisy}`, { maxIter: 3 }));
    const summary = await runLocal(store);
    expect(summary.status).toBe('max-iter');
    expect(summary.converged).toBe(false);
    expect(summary.iterations).toBe(3);
    expect(summary.samples).toBe(60 + 2 * 30);
    const [first, second] = summary.history;
    expect(first?.stop).toBe(false);
    // Failing bins get weight w1 in the next extension.
    expect(first?.nextBinWeights.some((w) => w > 1)).toBe(true);
    expect((second?.samples.train ?? 0) + (second?.samples.test ?? 0)).toBe(90);
  });

  it('balanced sampling fills every depth bin equally in the initial batch', async () => {
    const store = newStore(params(`dataset:${clean}`, { maxIter: 1, nInit: 100 }));
    const summary = await runLocal(store);
    const bins = summary.history[0]?.bins ?? [];
    expect(bins).toHaveLength(5);
    for (const b of bins) {
      expect(b.train + b.test).toBe(20);
      expect(b.test).toBeGreaterThan(0);
    }
  });

  it('an aborted run resumes without measuring anything twice', async () => {
    const store = newStore(params(`dataset:${clean}`, { maxIter: 2, chunkSize: 7 }));
    const stop = new AbortController();
    const stopped = await runLocal(store, {
      replayDelayMs: 20,
      signal: stop.signal,
      onEvent: (e) => {
        if (e.type === 'measured' && e.done >= 21) stop.abort();
      },
    });
    expect(stopped.interrupted).toBe(true);
    const before = store.measurements().length;
    expect(before).toBeGreaterThanOrEqual(21);
    expect(before).toBeLessThan(60);

    const reopened = RunStore.open(store.dir);
    expect(await prepareResume(reopened, {})).toBe(true);
    const resumed = await runLocal(reopened);
    expect(resumed.iterations).toBe(2);
    const ids = lines(reopened).map((l) => l.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(60 + 30);
  });
});

describe('unstable devices', () => {
  let broker: Broker;
  let daemon: Daemon;
  const seen: JobMessage[] = [];
  /** Drifts 20 %: unstable under the default 3 %, fine when the run allows 50 %. */
  let unstableJobsLeft = 0;
  beforeAll(async () => {
    broker = await startBroker({ port: 0 });
    daemon = await startDaemon(
      { broker: broker.url, thing: 'flaky', heartbeatSeconds: 3600, progressIntervalMs: 0 },
      {
        runJob: async (job, options): Promise<ResultMessage> => {
          seen.push(job);
          const drift = unstableJobsLeft-- > 0 ? 0.2 : 0.01;
          const at = new Date().toISOString();
          return {
            v: 1,
            type: 'result',
            runId: job.runId,
            batchId: job.batchId,
            thing: options.thing,
            samples: job.samples.map((s, i) => {
              const ms = syntheticLatencyMs(space, space.parse(s.arch));
              const st = { median_ms: ms, mean_ms: ms, std_ms: 0, min_ms: ms, max_ms: ms, runs: 1 };
              // Every third sample as if its runs had spread and it was timed again.
              return i % 3 === 0
                ? { id: s.id, stats: st, remeasured: true as const }
                : { id: s.id, stats: st };
            }),
            references: [],
            quality: { maxDrift: drift, unstable: drift > job.settings.maxReferenceDrift },
            device: {
              thing: options.thing,
              cpu: 'flaky',
              cores: 1,
              accelerator: null,
              os: 'linux',
              node: process.version,
              onnxruntime: 'none',
              executionProvider: 'cpu',
            },
            settings: job.settings,
            startedAt: at,
            finishedAt: at,
          };
        },
      },
    );
  });
  afterAll(async () => {
    await daemon?.stop();
    await broker?.close();
  });
  const flakyParams = () =>
    params('thing:flaky', { maxIter: 1, nInit: 20, chunkSize: 20, broker: broker.url });

  it('measures an unstable job again once, under a fresh job id, and records it', async () => {
    seen.length = 0;
    unstableJobsLeft = 1;
    const store = newStore(flakyParams());
    const summary = await runWorkflow({ store, brokerUrl: broker.url });
    expect(seen).toHaveLength(2);
    expect(seen[0]?.batchId).not.toBe(seen[1]?.batchId);
    // Only the accepted job's samples count as measured again for spread, not the dropped one's.
    const timedAgain = (seen[1]?.samples ?? []).filter((_, i) => i % 3 === 0).map((s) => s.id);
    expect(timedAgain).toHaveLength(7);
    expect(summary.history[0]?.quality).toEqual({
      maxDrift: 0.01,
      remeasured: 1,
      samplesRemeasured: 7,
    });
    const flagged = RunStore.open(store.dir).state.samples.filter((s) => s.remeasured);
    expect(flagged.map((s) => s.id).sort()).toEqual(timedAgain.sort());
  });

  it('fails with UnstableDeviceError twice in a row, then a resume with a larger --max-drift succeeds', async () => {
    seen.length = 0;
    unstableJobsLeft = 3;
    const store = newStore(flakyParams());
    await expect(runWorkflow({ store, brokerUrl: broker.url })).rejects.toThrow(
      UnstableDeviceError,
    );
    expect(store.measurements()).toHaveLength(0);
    const failed = RunStore.open(store.dir);
    expect(failed.state.status).toBe('failed');
    expect(failed.state.error).toMatch(/drifted 20\.0 %.*--max-drift/);

    // The device still drifts 20 %; the resumed run allows 50 % and measures under new ids.
    expect(await prepareResume(failed, { maxDrift: 0.5 })).toBe(true);
    const summary = await runWorkflow({ store: failed, brokerUrl: broker.url });
    expect(summary.status).toBe('max-iter');
    expect(failed.measurements()).toHaveLength(20);
    expect(failed.state.params.measurement.maxReferenceDrift).toBe(0.5);
    const ids = seen.map((j) => j.batchId);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('a device that fails a job', () => {
  it('ends the run at once with the device and its message, not after the result timeout', async () => {
    const broker = await startBroker({ port: 0 });
    const daemon = await startDaemon(
      { broker: broker.url, thing: 'broken', heartbeatSeconds: 3600 },
      {
        runJob: async () => {
          throw new Error('cannot build the model: out of memory');
        },
      },
    );
    try {
      const store = newStore(
        params('thing:broken', {
          maxIter: 1,
          nInit: 20,
          broker: broker.url,
          resultTimeoutSeconds: 600,
        }),
      );
      await expect(runWorkflow({ store, brokerUrl: broker.url })).rejects.toThrow(
        /device: device broken reported JOB_FAILED for job .*out of memory/,
      );
      expect(RunStore.open(store.dir).state.status).toBe('failed');
    } finally {
      await daemon.stop();
      await broker.close();
    }
  }, 60_000);
});
