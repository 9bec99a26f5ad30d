/**
 * `esm cloud` end to end against the AWS emulator, with the real device daemon over MQTT:
 * devices register -> run start -> run wait -> predictor pull -> `esm predict` on the pulled
 * directory equals `esm cloud predict` to 1e-4 -> devices delete leaves no thing,
 * certificate or row. Every step is the CLI as a user runs it (child processes), signing
 * with SigV4 against a local API that verifies signatures and serves the real handlers;
 * POST /runs starts the real state machine definition in-process (test/support/cloud-loop.ts).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DescribeThingCommand, type IoTClient, ListCertificatesCommand } from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { createRng } from '../../core/rng.ts';
import { depthBins, sampleArchitectures } from '../../core/sampling.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import { type Daemon, startDaemon } from '../../device-client/daemon.ts';
import { createS3Store } from '../../lambdas/adapters/s3-store.ts';
import { createStartRunHandler, startRunDeps } from '../../lambdas/handlers/api-start-run.ts';
import { publisherFromEnv } from '../../lambdas/handlers/workflow-dispatch.ts';
import { envNames } from '../../lambdas/manifest.ts';
import { type Broker, startBroker } from '../../local/mqtt-broker.ts';
import { type LocalApi, startLocalApi } from '../support/api-gateway.ts';
import { esm } from '../support/cli.ts';
import { localStarter, replayJob, startResultsBridge } from '../support/cloud-loop.ts';
import { type Emulator, type EsmResources, scanAll, startIotTestbed } from '../support/moto.ts';

vi.hoisted(() => {
  process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
});

const thing = 'cli-e2e-pi';
let emulator: Emulator | undefined;
let resources: EsmResources;
let broker: Broker;
let bridge: Awaited<ReturnType<typeof startResultsBridge>>;
let daemon: Daemon | undefined;
let api: LocalApi;
let iot: IoTClient;
let dir: string;
const executions = new Map<string, Promise<unknown>>();

beforeAll(async () => {
  // Without an emulator with IoT these tests skip (printed reason).
  const testbed = await startIotTestbed('cli');
  if (!testbed) return;
  ({ emulator, resources, iot } = testbed);
  process.env[envNames.stateMachineArn] = 'arn:aws:states:us-east-1:123456789012:stateMachine:esm';
  broker = await startBroker({ port: 0 });
  process.env.ESM_MQTT_URL = broker.url;
  bridge = await startResultsBridge(broker.url);
  const startRun = createStartRunHandler(() => ({
    ...startRunDeps(),
    start: localStarter(executions),
  }));
  api = await startLocalApi({ overrides: { apiStartRun: startRun } });
  dir = mkdtempSync(path.join(tmpdir(), 'esm-cloud-cli-'));
}, 120_000);

afterAll(async () => {
  await daemon?.stop();
  await bridge?.close();
  if (broker) await (publisherFromEnv() as { close?: () => Promise<void> }).close?.();
  await broker?.close();
  await api?.close();
  iot?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
  await emulator?.stop();
});

const cloud = (...args: string[]) => esm('cloud', ...args, '--api-url', api.url);

/** Parses a command's JSON output, failing with its stderr when it did not succeed. */
function ok(result: { code: number; stdout: string; stderr: string }): Record<string, unknown> {
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

describe('esm cloud: register, run, wait, pull, predict, delete', () => {
  it('gives the same latencies from the pulled predictor as from the API, and deletes cleanly', async ({
    skip,
  }) => {
    if (!emulator) skip();
    // Register: key and CSR made here (the "device"), certificate back.
    const deviceDir = path.join(dir, thing);
    const registered = ok(await cloud('devices', 'register', thing, '--dir', deviceDir));
    const config = JSON.parse(readFileSync(String(registered.configFile), 'utf8')) as {
      thing: string;
    };
    expect(config.thing).toBe(thing);
    // The daemon as the device runs it; IoT Core's part is played by the local broker.
    daemon = await startDaemon(
      { broker: broker.url, thing: config.thing, heartbeatSeconds: 3600 },
      { runJob: replayJob },
    );

    // The run replays a pool kept in S3, so the iteration that stops it also scores its
    // predictor on the rows it did not draw, and `run wait` says so.
    const space = getSpace('mobilenetv3');
    const poolRng = createRng(5);
    const pool = sampleArchitectures(space, {
      n: 300,
      strategy: 'balanced',
      bins: depthBins(space, 3),
      rng: poolRng,
    }).map((s) => ({
      arch: space.toNative(s),
      latency_ms: syntheticLatencyMs(space, s, { noise: 0.01, rng: poolRng }),
    }));
    await createS3Store({ bucket: resources.bucket }).put(
      'datasets/cli-pool.jsonl',
      `${pool.map((line) => JSON.stringify(line)).join('\n')}\n`,
    );
    // The four fastest rows stay out of the pool, as `run start` says before the run.
    const dropBelow = pool.map((line) => line.latency_ms).sort((a, b) => a - b)[4] as number;
    const params = {
      pool: 'datasets/cli-pool.jsonl',
      dropBelow,
      sampling: 'balanced',
      encoding: 'fcc',
      nInit: 60,
      nStep: 30,
      accTh: 0.9,
      bins: 3,
      maxIter: 6,
      testFraction: 0.25,
      minTestPerBin: 1,
      chunkSize: 20,
      measurement: { warmup: 0, runs: 3 },
    };
    const runStart = (...args: string[]) =>
      cloud('run', 'start', '--space', 'mobilenetv3', '--device', `thing:${thing}`, ...args);
    const start = await runStart('--seed', '11', '--params', JSON.stringify(params));
    const started = ok(start);
    // A prior the API cannot find is refused before a run starts, naming the field.
    const noPrior = await runStart('--prior', 'mobilenetv3/nobody');
    expect(noPrior.code).not.toBe(0);
    expect(noPrior.stderr).toMatch(
      /HTTP 400 \(body\.prior\): .*no predictor for space "mobilenetv3" on device "nobody"/,
    );
    const runId = String(started.runId);
    expect(started.status).toBe('running');
    expect(started.poolFloor).toEqual({ rows: 300, leftOut: 4 });
    expect(start.stderr.trim()).toBe(
      `dropBelow ${dropBelow}: left 4 of 300 rows of datasets/cli-pool.jsonl with latency_ms below it out of the pool`,
    );

    const waited = await cloud('run', 'wait', runId, '--interval', '1', '--timeout', '240');
    const final = ok(waited);
    expect(final.status).toBe('converged');
    // Progress while waiting: at least the first and the last state, one line each, then
    // the predictor on the pool rows the run did not draw (the last record's poolTruth).
    const progress = waited.stderr.trim().split('\n');
    const truth = (final.history as { poolTruth?: { n: number; accuracy: number } }[]).at(
      -1,
    )?.poolTruth;
    expect(truth?.n).toBe(296 - Number(final.measured));
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(progress[progress.length - 2]).toMatch(
      new RegExp(`^${runId}: converged, iteration \\d+, \\d+ measured, lowest bin accuracy 0\\.9`),
    );
    expect(progress[progress.length - 1]).toMatch(
      new RegExp(
        `^on the ${truth?.n} rows of the pool this run did not draw: accuracy ${((truth?.accuracy ?? 0) * 100).toFixed(1)}%`,
      ),
    );
    await bridge.settled();

    // The run is listed with where it ended; a status filter leaves it out.
    const runs = ok(await cloud('run', 'list', '--thing', thing)).runs as {
      runId: string;
      status: string;
    }[];
    expect(runs.find((r) => r.runId === runId)).toMatchObject({ status: 'converged' });
    expect(ok(await cloud('run', 'list', '--status', 'failed')).runs).toEqual([]);
    const badStatus = await cloud('run', 'list', '--status', 'done');
    expect(badStatus.code).toBe(2);
    expect(badStatus.stderr).toMatch(/--status.*Allowed choices are running, converged/);

    // The run's predictor is listed as its device's newest, and filters apply.
    const listed = ok(await cloud('predictor', 'list', '--thing', thing)).predictors as {
      id: string;
      latest: boolean;
    }[];
    expect(listed.find((p) => p.latest)?.id).toBe(final.predictor);
    expect(ok(await cloud('predictor', 'list', '--space', 'resnet50')).predictors).toEqual([]);

    const predictorDir = path.join(dir, 'predictor');
    const pulled = ok(await cloud('predictor', 'pull', runId, '--out', predictorDir));
    expect(pulled.predictor).toBe(final.predictor);
    expect(pulled.files).toEqual(expect.arrayContaining(['predictor.json', 'predictor.onnx']));

    const rng = createRng(99);
    const archsFile = path.join(dir, 'archs.jsonl');
    writeFileSync(
      archsFile,
      Array.from({ length: 40 }, () => JSON.stringify(space.toNative(randomSubnet(space, rng))))
        .join('\n')
        .concat('\n'),
    );
    const local = await esm('predict', '--predictor', predictorDir, '--in', archsFile);
    expect(local.code, local.stderr).toBe(0);
    const remote = await cloud(
      'predict',
      '--predictor',
      String(final.predictor),
      '--in',
      archsFile,
    );
    expect(remote.code, remote.stderr).toBe(0);
    const latencies = (text: string) =>
      text
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { latency_ms: number }).latency_ms);
    const [mine, theirs] = [latencies(local.stdout), latencies(remote.stdout)];
    expect(mine).toHaveLength(40);
    expect(theirs).toHaveLength(40);
    mine.forEach((ms, i) => {
      expect(Math.abs(ms - (theirs[i] as number)) / ms).toBeLessThan(1e-4);
    });
    // The uncertainty comes along too, as esm predict prints it.
    const stds = (text: string) =>
      text
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { std_ms: number | null }).std_ms);
    const [myStd, theirStd] = [stds(local.stdout), stds(remote.stdout)];
    theirStd.forEach((std, i) => {
      expect(std).not.toBeNull();
      expect(Math.abs((std as number) - (myStd[i] as number)) / (myStd[i] as number)).toBeLessThan(
        1e-3,
      );
    });

    await daemon.stop();
    daemon = undefined;
    const deleted = ok(await cloud('devices', 'delete', thing));
    expect(deleted.deleted).toMatchObject({ thing: true, record: true });
    await expect(iot.send(new DescribeThingCommand({ thingName: thing }))).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
    });
    const certificates = (await iot.send(new ListCertificatesCommand({}))).certificates ?? [];
    expect(certificates.map((c) => c.certificateId)).not.toContain(registered.certificateId);
    expect(registered.certificateId).toEqual(expect.any(String));
    expect(await scanAll(resources.devicesTable)).toEqual([]);
  }, 300_000);
});
