import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UnstableDeviceError } from '../../core/errors.ts';
import { createRidge } from '../../core/predictor/ridge.ts';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { createRng } from '../../core/rng.ts';
import { depthBins, sampleArchitectures } from '../../core/sampling.ts';
import { type RunParamsInput, runParams } from '../../core/schemas/run.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { type Device, openDevice } from '../../local/devices.ts';
import { runLoop } from '../../local/run-loop.ts';
import { RunStore } from '../../local/run-store.ts';

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

const dir = mkdtempSync(join(tmpdir(), 'esm-run-loop-'));
const clean = join(dir, 'clean.jsonl');
const noisy = join(dir, 'noisy.jsonl');
writeDataset(clean, { n: 500, seed: 1 });
writeDataset(noisy, { n: 400, seed: 2, noiseOnly: true });

const ridge = () => createRidge();

function params(device: string, extra: Partial<RunParamsInput> = {}) {
  return runParams.parse({
    space: 'mobilenetv3',
    device,
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

describe('runLoop on a replayed dataset', () => {
  it('converges when the latency is learnable, every bin above the threshold', async () => {
    const store = newStore(params(`dataset:${clean}`));
    const device = await openDevice(store.state.params.device, { space });
    const summary = await runLoop({ store, space, device, createRegressor: ridge });
    expect(summary.status).toBe('converged');
    expect(summary.converged).toBe(true);
    const last = summary.history[summary.history.length - 1];
    for (const b of last?.bins ?? []) expect(b.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(store.iterations()).toHaveLength(summary.iterations);
    expect(store.measurements()).toHaveLength(summary.samples);
    expect(store.state.status).toBe('converged');
  });

  it('stops at max-iter when no predictor can reach the threshold', async () => {
    const store = newStore(params(`dataset:${noisy}`, { maxIter: 3 }));
    const device = await openDevice(store.state.params.device, { space });
    const summary = await runLoop({ store, space, device, createRegressor: ridge });
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
    const device = await openDevice(store.state.params.device, { space });
    const summary = await runLoop({ store, space, device, createRegressor: ridge });
    const bins = summary.history[0]?.bins ?? [];
    expect(bins).toHaveLength(5);
    for (const b of bins) {
      expect(b.train + b.test).toBe(20);
      expect(b.test).toBeGreaterThan(0);
    }
  });

  it('a stopped run resumes without measuring anything twice', async () => {
    const p = params(`dataset:${clean}`, { maxIter: 2, chunkSize: 7 });
    const store = newStore(p);
    const replay = await openDevice(p.device, { space });
    const asked: string[] = [];
    const counting: Device = {
      ...replay,
      measure: (request) => {
        asked.push(...request.samples.map((s) => s.id));
        return replay.measure(request);
      },
    };
    let jobs = 0;
    const stopped = await runLoop({
      store,
      space,
      device: counting,
      createRegressor: ridge,
      shouldStop: () => jobs++ >= 3,
    });
    expect(stopped.interrupted).toBe(true);
    expect(store.measurements()).toHaveLength(21);

    const resumed = await runLoop({
      store: RunStore.open(store.dir),
      space,
      device: counting,
      createRegressor: ridge,
    });
    expect(resumed.iterations).toBe(2);
    const ids = store.measurements().map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(60 + 30);
    expect(new Set(asked).size).toBe(asked.length);
  });
});

describe('runLoop quality assurance', () => {
  const flaky = (unstableTimes: number): Device & { calls: number } => {
    const device = {
      name: 'flaky',
      calls: 0,
      async measure(request: Parameters<Device['measure']>[0]) {
        device.calls++;
        const unstable = device.calls <= unstableTimes;
        return {
          samples: request.samples.map((s) => {
            const ms = syntheticLatencyMs(space, space.parse(s.arch));
            return {
              id: s.id,
              stats: { median_ms: ms, mean_ms: ms, std_ms: 0, min_ms: ms, max_ms: ms, runs: 1 },
            };
          }),
          quality: { maxDrift: unstable ? 0.2 : 0.01, unstable },
          device: 'flaky',
        };
      },
      close: async () => {},
    };
    return device;
  };

  it('measures an unstable job again once and records it', async () => {
    const store = newStore(params('local', { maxIter: 1, nInit: 20, chunkSize: 20 }));
    const device = flaky(1);
    const summary = await runLoop({ store, space, device, createRegressor: ridge });
    expect(device.calls).toBe(2);
    expect(summary.history[0]?.quality).toEqual({ maxDrift: 0.01, remeasured: 1 });
  });

  it('stops with UnstableDeviceError when the job is unstable twice, storing nothing of it', async () => {
    const store = newStore(params('local', { maxIter: 1, nInit: 20, chunkSize: 20 }));
    const device = flaky(2);
    await expect(runLoop({ store, space, device, createRegressor: ridge })).rejects.toThrow(
      UnstableDeviceError,
    );
    expect(store.measurements()).toHaveLength(0);
    expect(RunStore.open(store.dir).state.status).toBe('failed');
    expect(RunStore.open(store.dir).state.error).toMatch(/--max-drift/);
  });
});
