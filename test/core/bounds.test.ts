/**
 * Resource bounds (core/spaces/bounds.ts) on every entry a network comes in by: a spec space,
 * a device job over MQTT, `POST /runs`, and the CLI. A schema-valid spec with width 4000 (which
 * took a device from 0.26 to 1.88 GB) is refused by its cost, before any model is built.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../core/errors.ts';
import { createRng } from '../../core/rng.ts';
import {
  checkSpaceBounds,
  defaultBounds,
  largestSubnet,
  largestSubnets,
  ResourceLimitError,
} from '../../core/spaces/bounds.ts';
import { graphCost } from '../../core/spaces/cost.ts';
import { builtInSpaces } from '../../core/spaces/index.ts';
import { spaceFromSpec } from '../../core/spaces/spec.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import { type Daemon, startDaemon } from '../../device-client/daemon.ts';
import { runJob } from '../../device-client/job-runner.ts';
import { extremeArchs } from '../../device-client/references.ts';
import { createStartRunHandler } from '../../lambdas/handlers/api-start-run.ts';
import { type Broker, startBroker } from '../../local/mqtt-broker.ts';
import {
  createMqttDispatcher,
  DeviceJobError,
  type MqttDispatcher,
} from '../../local/mqtt-dispatcher.ts';
import { apiEvent, lambdaContext } from '../support/local-sfn.ts';
import { mbv3, tinyJob } from '../support/mqtt.ts';

const examples = join(import.meta.dirname, '..', '..', 'examples', 'spaces');
const tinySpec = () => JSON.parse(readFileSync(join(examples, 'tiny-mbconv.json'), 'utf8'));
/** The spec of the issue: schema-valid, one unit 4000 wide (970 M parameters). */
const wideSpec = () => {
  const spec = tinySpec();
  spec.units[2].width = 4000;
  return spec;
};

describe('largestSubnets', () => {
  it('are valid subnets at the largest resolution that cost at least any sampled one, in every space', () => {
    const rng = createRng(4);
    for (const space of builtInSpaces.values()) {
      const candidates = largestSubnets(space);
      for (const c of candidates) {
        expect(space.parse(space.toNative(c)).resolution).toBe(Math.max(...space.resolutions));
      }
      const costs = candidates.map((c) => graphCost(space.layerGraph(c)));
      const top = (key: 'params' | 'macs' | 'peakActivationBytes') =>
        Math.max(...costs.map((c) => c[key]));
      expect(graphCost(space.layerGraph(largestSubnet(space))).macs).toBe(top('macs'));
      for (let i = 0; i < 20; i++) {
        const sampled = graphCost(space.layerGraph(randomSubnet(space, rng)));
        expect(sampled.params, space.name).toBeLessThanOrEqual(top('params'));
        expect(sampled.macs, space.name).toBeLessThanOrEqual(top('macs'));
        expect(sampled.peakActivationBytes, space.name).toBeLessThanOrEqual(
          top('peakActivationBytes'),
        );
      }
    }
  });
});

describe('checkSpaceBounds', () => {
  it('accepts every built-in space and example spec with room to spare', () => {
    const spaces = [...builtInSpaces.values(), spaceFromSpec(tinySpec())];
    for (const space of spaces) {
      const cost = checkSpaceBounds(space);
      expect(cost.params).toBeLessThan(defaultBounds.maxParams / 2);
      expect(cost.macs).toBeLessThan(defaultBounds.maxMacs / 2);
      expect(cost.peakActivationBytes).toBeLessThan(defaultBounds.maxActivationBytes / 10);
    }
  });

  it('refuses the width-4000 spec by its parameters, naming spaceSpec and the limit', () => {
    const error = (() => {
      try {
        spaceFromSpec(wideSpec());
      } catch (e) {
        return e;
      }
    })() as ResourceLimitError;

    expect(error).toBeInstanceOf(ResourceLimitError);
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.field).toBe('spaceSpec');
    expect(error.limit).toBe('maxParams');
    expect(error.value).toBeGreaterThan(9e8);
    expect(error.message).toMatch(
      /^spaceSpec: its largest subnet needs 9\d\d\.\d M parameters, over the limit maxParams = 100\.0 M; use narrower widths/,
    );
    // Opting out is explicit, for a caller that only samples or encodes.
    expect(spaceFromSpec(wideSpec(), { bounds: false }).name).toBe('tiny-mbconv');
  });

  it('names the MACs and activation limits, with the batch size', () => {
    const space = builtInSpaces.get('mobilenetv3');
    if (!space) throw new Error('mobilenetv3 missing');
    expect(() => checkSpaceBounds(space, { bounds: { ...defaultBounds, maxMacs: 1e8 } })).toThrow(
      /^space: its largest subnet needs 5\d\d\.\d M multiply-accumulates per image, over the limit maxMacs = 100\.0 M/,
    );
    expect(() => checkSpaceBounds(space, { field: 'settings.batchSize', batchSize: 1024 })).toThrow(
      /^settings\.batchSize: .* GiB of peak activation memory at batch size 1024, over the limit maxActivationBytes = 512\.0 MiB/,
    );
  });
});

describe('a device job', () => {
  const small = extremeArchs.mobilenetv3?.smallest ?? {};

  it('with an oversized spaceSpec is refused before anything is timed', async () => {
    let measured = 0;
    const job = tinyJob('too-wide');
    const spec = wideSpec();
    const space = spaceFromSpec(spec, { bounds: false });
    const arch = space.toNative(randomSubnet(space, createRng(1))) as unknown as Record<
      string,
      unknown
    >;
    const wide = { ...job, space: spec.name, spaceSpec: spec, samples: [{ id: 'w', arch }] };

    await expect(runJob(wide, { thing: 'd', onProgress: () => measured++ })).rejects.toThrow(
      /^spaceSpec: its largest subnet needs .* maxParams/,
    );
    expect(measured).toBe(0);
  });

  it('whose batch size would exhaust memory names settings.batchSize', async () => {
    const job = tinyJob('big-batch');
    const big = {
      ...job,
      samples: [{ id: 'l', arch: extremeArchs.mobilenetv3?.largest ?? small }],
    };
    big.settings = { ...job.settings, batchSize: 1024 };

    await expect(runJob(big, { thing: 'd' })).rejects.toThrow(
      /^settings\.batchSize: samples\[0\] needs .* at batch size 1024, over the limit maxActivationBytes/,
    );
  });

  describe('over MQTT', () => {
    let broker: Broker;
    let daemon: Daemon;
    let dispatcher: MqttDispatcher;

    beforeAll(async () => {
      broker = await startBroker();
      daemon = await startDaemon({ broker: broker.url, thing: 'bounds-1' });
      dispatcher = createMqttDispatcher({ brokerUrl: broker.url });
      await dispatcher.ready;
    });
    afterAll(async () => {
      await dispatcher.close();
      await daemon.stop();
      await broker.close();
    });

    it('the daemon answers INVALID_JOB naming the limit, and stays up for the next job', async () => {
      const spec = wideSpec();
      const space = spaceFromSpec(spec, { bounds: false });
      const arch = space.toNative(randomSubnet(space, createRng(2))) as unknown as Record<
        string,
        unknown
      >;
      const job = {
        ...tinyJob('mqtt-wide'),
        space: spec.name,
        spaceSpec: spec,
        samples: [{ id: 'w', arch }],
      };

      await dispatcher.dispatch('bounds-1', job);
      const failure = await dispatcher.awaitResult('bounds-1', 'mqtt-wide', 60_000).catch((e) => e);
      expect(failure).toBeInstanceOf(DeviceJobError);
      expect(failure.code).toBe('INVALID_JOB');
      expect(failure.message).toMatch(/spaceSpec: .*maxParams/);

      await dispatcher.dispatch('bounds-1', tinyJob('after'));
      const result = await dispatcher.awaitResult('bounds-1', 'after', 60_000);
      expect(result.samples).toHaveLength(1);
    });
  });
});

describe('POST /runs', () => {
  const startRun = createStartRunHandler(() => {
    throw new Error('an oversized run must be refused before any AWS call');
  });
  const call = async (body: unknown) => {
    const fn = startRun as unknown as (
      e: unknown,
      c: unknown,
    ) => Promise<{ statusCode: number; body: string }>;
    const response = await fn(
      apiEvent({ method: 'POST', path: '/runs', body }),
      lambdaContext('api'),
    );
    return { status: response.statusCode, body: JSON.parse(response.body) };
  };

  it('answers 400 naming body.spaceSpec for an oversized spec, body.measurement.batchSize for a huge batch', async () => {
    const wide = await call({ space: 'wide', spaceSpec: wideSpec(), device: 'thing:pi-1' });
    expect(wide.status).toBe(400);
    expect(JSON.stringify(wide.body)).toMatch(/body\.spaceSpec.*maxParams/);

    const batch = await call({
      space: 'mobilenetv3',
      device: 'thing:pi-1',
      measurement: {
        warmup: 1,
        runs: 3,
        threads: 1,
        batchSize: 1024,
        referenceEvery: 0,
        maxReferenceDrift: 0.03,
      },
    });
    expect(batch.status).toBe(400);
    expect(JSON.stringify(batch.body)).toMatch(/body\.measurement\.batchSize.*maxActivationBytes/);
  });
});

describe('the CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'esm-bounds-'));
  const esm = (...args: string[]) =>
    spawnSync(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'esm.js'), ...args], {
      encoding: 'utf8',
    });

  it('refuses an oversized spec file naming --space, and a batch size naming --batch-size', () => {
    const file = join(dir, 'wide.json');
    writeFileSync(file, JSON.stringify(wideSpec()));

    const spaces = esm('spaces', '--space', file);
    expect(spaces.status).toBe(2);
    expect(spaces.stderr).toMatch(
      /^error: --space: .*wide\.json: its largest subnet needs .* maxParams = 100\.0 M/m,
    );

    const measure = esm(
      'measure',
      '--space',
      'mobilenetv3',
      '--arch',
      'largest',
      '--batch-size',
      '1024',
    );
    expect(measure.status).toBe(2);
    expect(measure.stderr).toMatch(
      /^error: --batch-size: this architecture needs .* maxActivationBytes/m,
    );
    expect(measure.stdout).toBe('');
  });

  it('keeps a small arch at a moderate batch size measurable', () => {
    const r = esm(
      'measure',
      '--space',
      'mobilenetv3',
      '--arch',
      JSON.stringify(mbv3(3, 3, 2, 128)),
      '--batch-size',
      '2',
      '--runs',
      '1',
      '--warmup',
      '0',
      '--json',
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).settings.batchSize).toBe(2);
  });
});
