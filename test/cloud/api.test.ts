/**
 * The API handlers and workflow tasks on bad input, against the emulator: every bad request
 * gets a 4xx naming the field, and nothing is written; tasks throw named errors (the state
 * machine's Catch matches on the name). Plus `POST /predict` on a stored predictor.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fitPredictor } from '../../core/predictor/index.ts';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { createRng } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import { createS3Store } from '../../lambdas/adapters/s3-store.ts';
import { loadConfig } from '../../lambdas/config.ts';
import { handler as getPredictor } from '../../lambdas/handlers/api-get-predictor.ts';
import { handler as getRun } from '../../lambdas/handlers/api-get-run.ts';
import { handler as listPredictors } from '../../lambdas/handlers/api-list-predictors.ts';
import { handler as listRuns } from '../../lambdas/handlers/api-list-runs.ts';
import { maxPredictBatch, handler as predict } from '../../lambdas/handlers/api-predict.ts';
import { createStartRunHandler, startRunDeps } from '../../lambdas/handlers/api-start-run.ts';
import { handler as ingest } from '../../lambdas/handlers/ingest-results.ts';
import { handler as init } from '../../lambdas/handlers/workflow-init.ts';
import { keys } from '../../lambdas/workflow/run-context.ts';
import { loadPredictor, predictorOnnxBytes, savePredictor } from '../../local/predictor-store.ts';
import { apiEvent, lambdaContext } from '../support/local-sfn.ts';
import {
  type Emulator,
  type EsmResources,
  listKeys,
  provisionEsmResources,
  scanAll,
  startEmulator,
} from '../support/moto.ts';

vi.hoisted(() => {
  process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
});

const space = getSpace('mobilenetv3');
let emulator: Emulator | undefined;
let resources: EsmResources;
const started: string[] = [];

const startRun = createStartRunHandler(() => ({
  ...startRunDeps(),
  start: async (runId) => {
    started.push(runId);
    return `arn:aws:states:us-east-1:123456789012:execution:esm:${runId}`;
  },
}));

async function call(handler: unknown, event: unknown) {
  const fn = handler as (e: unknown, c: unknown) => Promise<{ statusCode: number; body: string }>;
  const response = await fn(event, lambdaContext('api'));
  return { status: response.statusCode, body: JSON.parse(response.body) };
}

const post = (path: string, body: unknown) => apiEvent({ method: 'POST', path, body });

beforeAll(async () => {
  emulator = await startEmulator();
  if (!emulator) return;
  resources = await provisionEsmResources('api');
  process.env.ESM_STATE_MACHINE_ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:esm';
  const db = DynamoDBDocumentClient.from(new DynamoDBClient({}));
  await db.send(new PutCommand({ TableName: resources.devicesTable, Item: { thing: 'pi-1' } }));
  // Devices that reported their facts: two Raspberry Pis of one kind and a GPU box.
  const facts = (cpu: string, accelerator: string | null) => ({
    thing: 'x',
    cpu,
    cores: 4,
    accelerator,
    os: 'linux',
    node: 'v22.1.0',
    onnxruntime: '1.30.0',
    executionProvider: accelerator === null ? 'cpu' : 'cuda',
  });
  for (const [thing, cpu, accelerator] of [
    ['pi-2', 'Cortex-A76', null],
    ['pi-3', 'Cortex-A76', null],
    ['gpu-1', 'EPYC 7763', 'NVIDIA A100'],
  ] as const) {
    await db.send(
      new PutCommand({
        TableName: resources.devicesTable,
        Item: { thing, status: 'registered', facts: { ...facts(cpu, accelerator), thing } },
      }),
    );
  }
  db.destroy();
  // A small stored predictor (ridge: trains in milliseconds) as the train task writes it.
  const rng = createRng(5);
  const rows = Array.from({ length: 80 }, () => {
    const subnet = randomSubnet(space, rng);
    return { subnet, latencyMs: syntheticLatencyMs(space, subnet) };
  });
  const { predictor } = await fitPredictor({
    space,
    rows,
    model: 'ridge',
    encoding: 'fcc',
    data: { file: 'synthetic', sha256: '0'.repeat(64) },
  });
  const store = createS3Store({ bucket: resources.bucket });
  await store.put(keys.predictorJson('p-1'), JSON.stringify(predictor));
  await store.put(keys.predictorOnnx('p-1'), predictorOnnxBytes(predictor));
  await store.put(keys.latest('mobilenetv3', 'pi-1'), JSON.stringify({ id: 'p-1' }));
  // Replay pools: 40 rows of which three lie far below the others, and a damaged one.
  const poolLines = Array.from({ length: 40 }, (_, i) => {
    const subnet = randomSubnet(space, rng);
    const latency = i < 3 ? 0.05 : syntheticLatencyMs(space, subnet);
    return JSON.stringify({ arch: space.toNative(subnet), latency_ms: latency });
  });
  await store.put('datasets/pool.jsonl', `${poolLines.join('\n')}\n`);
  await store.put(
    'datasets/damaged.jsonl',
    `${poolLines[0]}\n{"arch": {"ks": [3]}, "latency_ms": 5}\n`,
  );
});

afterAll(async () => {
  await emulator?.stop();
});

describe('POST /runs', () => {
  const valid = { space: 'mobilenetv3', device: 'thing:pi-1', nInit: 20 };
  const bad: [string, unknown, string][] = [
    ['malformed JSON', '{"space": "mobilenetv3",', 'body'],
    ['a non-object body', '[1, 2]', 'body'],
    ['an unknown space', { ...valid, space: 'vgg' }, 'body.space'],
    ['a bad parameter', { ...valid, nInit: -3 }, 'body.nInit'],
    ['a bad measurement setting', { ...valid, measurement: { runs: 0 } }, 'body.measurement.runs'],
    ['a local device', { ...valid, device: 'local' }, 'body.device'],
    ['an unregistered device', { ...valid, device: 'thing:nobody' }, 'body.device'],
    ['bad limits', { ...valid, limits: { maxDispatches: 0 } }, 'body.limits.maxDispatches'],
    ['an unknown (misspelt) field', { ...valid, nInitial: 50 }, 'body.nInitial'],
    ['an unknown limit', { ...valid, limits: { timeout: 5 } }, 'body.limits.timeout'],
    ['a pool floor without a pool', { ...valid, dropBelow: 1 }, 'body.dropBelow'],
    [
      'a negative pool floor',
      { ...valid, pool: 'datasets/a.jsonl', dropBelow: -1 },
      'body.dropBelow',
    ],
    // A replay's pool is read before anything is written (not by the execution's Init task).
    ['a pool that is not in the bucket', { ...valid, pool: 'datasets/a.jsonl' }, 'body.pool'],
    ['a damaged pool', { ...valid, pool: 'datasets/damaged.jsonl' }, 'body.pool'],
    [
      'a pool floor that leaves under two rows',
      { ...valid, pool: 'datasets/pool.jsonl', dropBelow: 1e6 },
      'body.dropBelow',
    ],
    [
      'a first batch larger than the pool',
      { ...valid, pool: 'datasets/pool.jsonl', nInit: 41 },
      'body.nInit',
    ],
    // A transfer run's prior is resolved and checked before anything is written.
    ['a prior that is not stored', { ...valid, prior: 'p-none' }, 'body.prior'],
    ['a prior of a device without one', { ...valid, prior: 'mobilenetv3/ghost' }, 'body.prior'],
    ['a prior of another space', { ...valid, space: 'resnet50', prior: 'p-1' }, 'body.prior'],
    ['a model with a prior', { ...valid, prior: 'p-1', model: 'ridge' }, 'body.model'],
    [
      'an encoding the prior does not read',
      { ...valid, prior: 'p-1', encoding: 'onehot' },
      'body.encoding',
    ],
    [
      'a metric no row of the pool has',
      { ...valid, pool: 'datasets/pool.jsonl', metric: 'energy_mj' },
      'body.metric',
    ],
  ];
  for (const [what, body, field] of bad) {
    it(`answers 400 naming the field for ${what}, and writes nothing`, async ({ skip }) => {
      if (!emulator) skip();
      const response = await call(startRun, post('/runs', body));
      expect(response.status).toBe(400);
      expect(response.body.field).toBe(field);
      expect(response.body.message).toMatch(new RegExp(`^${field.replace(/[.[\]]/g, '\\$&')}: `));
      expect(await scanAll(resources.runsTable)).toEqual([]);
      expect(started).toEqual([]);
    });
  }

  it('records a valid run and starts an execution named after it', async ({ skip }) => {
    if (!emulator) skip();
    const response = await call(startRun, post('/runs', valid));
    expect(response.status).toBe(202);
    expect(started).toEqual([response.body.runId]);
    const runs = await scanAll(resources.runsTable);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ runId: response.body.runId, thing: 'pi-1', status: 'running' });
    expect(response.body.params).toMatchObject({ nInit: 20, sampling: 'balanced', seed: 1 });

    const shown = await call(
      getRun,
      apiEvent({ method: 'GET', path: '/runs/x', pathParameters: { id: response.body.runId } }),
    );
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ status: 'running', measured: 0, history: [] });
  });

  it("pins a prior given as space/thing to that device's newest predictor, with a small first batch", async ({
    skip,
  }) => {
    if (!emulator) skip();
    const { nInit: _, ...withoutBatch } = valid;
    const response = await call(
      startRun,
      post('/runs', { ...withoutBatch, prior: 'mobilenetv3/pi-1' }),
    );
    expect(response.status, JSON.stringify(response.body)).toBe(202);
    expect(response.body.params).toMatchObject({
      prior: keys.predictorJson('p-1'),
      nInit: 20,
      encoding: 'fcc',
    });
    const missing = await call(startRun, post('/runs', { ...valid, prior: 'p-none' }));
    expect(missing.body.message).toMatch(
      /^body\.prior: no predictor\.json at "predictors\/p-none\/predictor\.json"; give a predictor id/,
    );
  });

  it('names the line of a damaged pool, and where to upload a missing one', async ({ skip }) => {
    if (!emulator) skip();
    const response = await call(
      startRun,
      post('/runs', { ...valid, pool: 'datasets/damaged.jsonl' }),
    );
    expect(response.body.message).toMatch(
      /^body\.pool: datasets\/damaged\.jsonl:2: field arch\.ks: /,
    );
    const missing = await call(startRun, post('/runs', { ...valid, pool: 'datasets/a.jsonl' }));
    expect(missing.body.message).toContain(
      `aws s3 cp FILE s3://${resources.bucket}/datasets/a.jsonl`,
    );
  });

  it('says what a replay pool holds: the rows far below the others, or what dropBelow leaves out', async ({
    skip,
  }) => {
    if (!emulator) skip();
    const pool = 'datasets/pool.jsonl';
    const plain = await call(startRun, post('/runs', { ...valid, pool }));
    expect(plain.status, JSON.stringify(plain.body)).toBe(202);
    expect(plain.body.poolFloor).toMatchObject({ rows: 40, tiny: { count: 3 } });
    // The floor advised lies between the three tiny rows and the others.
    const { floor } = plain.body.poolFloor.tiny;
    expect(floor).toBeGreaterThan(0.05);
    const floored = await call(startRun, post('/runs', { ...valid, pool, dropBelow: floor }));
    expect(floored.status, JSON.stringify(floored.body)).toBe(202);
    expect(floored.body.poolFloor).toEqual({ rows: 40, leftOut: 3 });
    // A run without a pool has nothing to say about one.
    expect((await call(startRun, post('/runs', valid))).body.poolFloor).toBeUndefined();
  });
});

describe('POST /runs on several devices of one kind (fan-out)', () => {
  const base = { space: 'mobilenetv3', nInit: 20 };
  it.each([
    ['a device list', { ...base, device: 'thing:pi-2,thing:pi-3' }],
    ['a things array', { ...base, device: 'thing:pi-2', things: ['pi-2', 'pi-3'] }],
  ])('starts one run over the devices of %s', async (_what, body) => {
    if (!emulator) return;
    const before = started.length;
    const response = await call(startRun, post('/runs', body));
    expect(response.status, JSON.stringify(response.body)).toBe(202);
    expect(started).toHaveLength(before + 1);
    const runs = await scanAll(resources.runsTable);
    expect(runs.find((r) => r.runId === response.body.runId)).toMatchObject({ thing: 'pi-2' });
  });

  it.each([
    [
      'devices of different kinds',
      { ...base, device: 'thing:pi-2,thing:gpu-1' },
      'body.device',
      /one kind.*pi-2: Cortex-A76.*gpu-1: EPYC 7763/,
    ],
    [
      'an unregistered device in the list',
      { ...base, device: 'thing:pi-2', things: ['pi-2', 'ghost'] },
      'body.things',
      /"ghost"/,
    ],
    ['a device named twice', { ...base, device: 'thing:pi-2,thing:pi-2' }, 'body.device', /twice/],
    [
      'a list that disagrees with device',
      { ...base, device: 'thing:pi-2,thing:pi-3', things: ['pi-3', 'gpu-1'] },
      'body.things',
      /other devices/,
    ],
  ])('answers 400 for %s and starts nothing', async (_what, body, field, message) => {
    if (!emulator) return;
    const [before, rows] = [started.length, (await scanAll(resources.runsTable)).length];
    const response = await call(startRun, post('/runs', body));
    expect(response.status).toBe(400);
    expect(response.body.field).toBe(field);
    expect(response.body.message).toMatch(message);
    expect(started).toHaveLength(before);
    expect(await scanAll(resources.runsTable)).toHaveLength(rows);
  });
});

describe('GET /runs', () => {
  const list = (query: Record<string, string> | null) =>
    call(listRuns, { ...apiEvent({ method: 'GET', path: '/runs' }), queryStringParameters: query });

  it('lists every run started, a page at a time, each where it stands', async ({ skip }) => {
    if (!emulator) skip();
    const all = await list(null);
    expect(all.status).toBe(200);
    const ids = all.body.runs.map((r: { runId: string }) => r.runId);
    expect(ids).toEqual(expect.arrayContaining(started));
    expect(all.body.runs[0]).toEqual({
      runId: expect.any(String),
      status: 'running',
      thing: expect.any(String),
      space: expect.any(String),
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
      iteration: 0,
      measured: 0,
      predictor: null,
    });
    // One run per page, following `next`, gives the same runs.
    const paged: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await list(cursor === undefined ? { limit: '1' } : { limit: '1', cursor });
      expect(page.status).toBe(200);
      paged.push(...page.body.runs.map((r: { runId: string }) => r.runId));
      cursor = page.body.next;
    } while (cursor !== undefined);
    expect(paged.sort()).toEqual([...ids].sort());
  });

  it.each([
    ['a limit of 0', { limit: '0' }, 'query.limit'],
    ['a cursor it did not give', { cursor: 'bm90IGEga2V5' }, 'query.cursor'],
    ['an unknown parameter', { status: 'running' }, 'query.status'],
  ])('answers 400 naming the parameter for %s', async (_what, query, field) => {
    if (!emulator) return;
    const response = await list(query);
    expect(response.status).toBe(400);
    expect(response.body.field).toBe(field);
  });
});

describe('GET /runs/{id}', () => {
  it('answers 404 for an unknown run', async ({ skip }) => {
    if (!emulator) skip();
    const response = await call(
      getRun,
      apiEvent({ method: 'GET', path: '/runs/nope', pathParameters: { id: 'nope' } }),
    );
    expect(response.status).toBe(404);
    expect(response.body.message).toMatch(/no run "nope"/);
  });

  it.each([
    ['an empty id', ''],
    ['a 100,000-character id', 'r'.repeat(100_000)],
    ['an id with a slash', 'run/1'],
  ])('answers 400 naming path.id for %s', async (_what, id) => {
    if (!emulator) return;
    const response = await call(
      getRun,
      apiEvent({ method: 'GET', path: `/runs/${id}`, pathParameters: { id } }),
    );
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ error: 'ValidationError', field: 'path.id' });
  });
});

describe('POST /predict and GET /predictors', () => {
  const archs = () => {
    const rng = createRng(8);
    return Array.from({ length: 5 }, () => space.toNative(randomSubnet(space, rng)));
  };

  it('predicts like the predictor loaded locally, by id and by space/thing', async ({ skip }) => {
    if (!emulator) skip();
    const batch = archs();
    const byPair = await call(
      predict,
      post('/predict', { predictor: 'mobilenetv3/pi-1', archs: batch }),
    );
    const byId = await call(predict, post('/predict', { predictor: 'p-1', archs: batch }));
    expect(byPair.status).toBe(200);
    expect(byId.body.latency_ms).toEqual(byPair.body.latency_ms);

    const dir = await mkdtemp(join(tmpdir(), 'esm-api-'));
    const store = createS3Store({ bucket: resources.bucket });
    const json = JSON.parse(new TextDecoder().decode(await store.get(keys.predictorJson('p-1'))));
    await savePredictor(dir, json);
    const local = await loadPredictor(dir);
    const expected = await local.predict(batch);
    const expectedStd = (await local.predictSubnetsWithStd(batch.map((a) => space.parse(a)))).std;
    await local.close();
    await rm(dir, { recursive: true });
    byPair.body.latency_ms.forEach((ms: number, i: number) => {
      expect(Math.abs(ms / (expected[i] as number) - 1)).toBeLessThan(1e-4);
    });
    // The uncertainty comes back too, as the local predictor computes it.
    expect(byPair.body.std_ms).toHaveLength(batch.length);
    byPair.body.std_ms.forEach((std: number, i: number) => {
      expect(std).toBeGreaterThan(0);
      expect(Math.abs(std / (expectedStd[i] as number) - 1)).toBeLessThan(1e-3);
    });

    const listed = await call(listPredictors, apiEvent({ method: 'GET', path: '/predictors' }));
    expect(listed.body.predictors).toEqual([
      expect.objectContaining({ id: 'p-1', space: 'mobilenetv3', encoding: 'fcc', latest: true }),
    ]);
  });

  it('names the archs outside the training domain, by index and reason', async ({ skip }) => {
    if (!emulator) skip();
    // p-1 as trained at resolution 160 and depths 12..16 only (the domain is the
    // predictor.json's record of its training rows; the graph is the same).
    const store = createS3Store({ bucket: resources.bucket });
    const json = JSON.parse(new TextDecoder().decode(await store.get(keys.predictorJson('p-1'))));
    json.training.domain = { resolution: [160, 160], depth: [12, 16] };
    await store.put(keys.predictorJson('p-narrow'), JSON.stringify(json));
    await store.put(
      keys.predictorOnnx('p-narrow'),
      (await store.get(keys.predictorOnnx('p-1'))) as Uint8Array,
    );
    const inside = { ks: Array(20).fill(3), e: Array(20).fill(4), d: [3, 3, 2, 2, 2], r: 160 };
    const highRes = { ...inside, r: 224 };
    const deep = { ...inside, d: [4, 4, 4, 4, 4] };
    const response = await call(
      predict,
      post('/predict', { predictor: 'p-narrow', archs: [inside, highRes, deep] }),
    );
    expect(response.status).toBe(200);
    expect(response.body.latency_ms).toHaveLength(3);
    expect(response.body.outside_domain).toEqual([
      { index: 1, reason: 'resolution 224 (trained on 160..160)' },
      { index: 2, reason: 'depth 20 (trained on 12..16)' },
    ]);
    // Every arch of p-1's own training domain is inside it.
    const all = await call(predict, post('/predict', { predictor: 'p-1', archs: [inside] }));
    expect(all.body.outside_domain).toEqual([]);
  });

  it('hands out the files of one predictor (GET /predictors/{id}), 404 and 400 otherwise', async ({
    skip,
  }) => {
    if (!emulator) skip();
    const get = (id: string) =>
      call(
        getPredictor,
        apiEvent({ method: 'GET', path: `/predictors/${id}`, pathParameters: { id } }),
      );
    const answer = await get('p-1');
    expect(answer.status).toBe(200);
    expect(Object.keys(answer.body.files).sort()).toEqual(['predictor.json', 'predictor.onnx']);
    const store = createS3Store({ bucket: resources.bucket });
    const onnx = await store.get(keys.predictorOnnx('p-1'));
    expect(
      Buffer.from(answer.body.files['predictor.onnx'], 'base64').equals(Buffer.from(onnx ?? [])),
    ).toBe(true);
    expect((await get('p-2')).status).toBe(404);
    expect(await get('../p-1')).toMatchObject({ status: 400, body: { field: 'path.id' } });
  });

  const badPredict: [string, unknown, string | undefined, number][] = [
    ['malformed JSON', '{"predictor":', 'body', 400],
    ['no predictor', { archs: [{}] }, 'body.predictor', 400],
    ['no archs', { predictor: 'p-1', archs: [] }, 'body.archs', 400],
    [
      'an oversized batch',
      { predictor: 'p-1', archs: Array.from({ length: maxPredictBatch + 1 }, () => ({})) },
      'body.archs',
      400,
    ],
    [
      'an invalid architecture',
      { predictor: 'p-1', archs: [{ ks: [3], e: [], d: [2, 2, 2, 2, 2], r: 224 }] },
      'body.archs[0].ks',
      400,
    ],
    ['a bad predictor reference', { predictor: 'a/b/c', archs: [{}] }, 'body.predictor', 400],
    ['an unknown predictor', { predictor: 'p-404', archs: [{}] }, undefined, 404],
    ['an unknown space/thing', { predictor: 'resnet50/pi-1', archs: [{}] }, undefined, 404],
  ];
  for (const [what, body, field, status] of badPredict) {
    it(`answers ${what} with ${status} naming the field, writing nothing`, async ({ skip }) => {
      if (!emulator) skip();
      const before = (await listKeys(resources.bucket)).sort();
      const response = await call(predict, post('/predict', body));
      expect(response.status).toBe(status);
      if (field !== undefined) expect(response.body.field).toBe(field);
      expect((await listKeys(resources.bucket)).sort()).toEqual(before);
    });
  }

  it('names the space an architecture of another space fits', async ({ skip }) => {
    if (!emulator) skip();
    // An FBNet arch (22 op indices) sent to a MobileNetV3 predictor.
    const fbnetArch = { ops: Array.from({ length: 22 }, (_, i) => i % 9) };
    const response = await call(
      predict,
      post('/predict', { predictor: 'p-1', archs: [fbnetArch] }),
    );
    expect(response.status).toBe(400);
    expect(response.body.error).toBe('ArchValidationError');
    expect(response.body.field).toMatch(/^body\.archs\[0\]\./);
    expect(response.body.message).toMatch(
      /; the arch fits space fbnet \(also fbnet-imagenet\), not mobilenetv3$/,
    );
  });

  it('names the invalid architecture in a batch by its index', async ({ skip }) => {
    if (!emulator) skip();
    const batch = [...archs(), { ...(archs()[0] as object), r: 225 }];
    const response = await call(predict, post('/predict', { predictor: 'p-1', archs: batch }));
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ error: 'ArchValidationError', field: 'body.archs[5].r' });
  });
});

describe('workflow tasks and ingestion throw named errors', () => {
  it('init rejects an unknown space with UnknownSpaceError', async ({ skip }) => {
    if (!emulator) skip();
    const event = { runId: 'r-bad', params: { space: 'vgg', device: 'thing:pi-1' } };
    await expect(init(event as never, lambdaContext('init') as never)).rejects.toMatchObject({
      name: 'UnknownSpaceError',
    });
    await expect(
      init({ runId: 'r-bad' } as never, lambdaContext('init') as never),
    ).rejects.toMatchObject({ name: 'ValidationError', field: 'params' });
  });

  it('ingestion refuses a result published on another device topic', async ({ skip }) => {
    if (!emulator) skip();
    const before = await scanAll(resources.samplesTable);
    const event = {
      v: 1,
      type: 'result',
      runId: 'r',
      batchId: 'b',
      thing: 'pi-1',
      samples: [],
      quality: { maxDrift: 0, unstable: false },
      device: {
        thing: 'pi-1',
        cpu: 'x',
        cores: 1,
        accelerator: null,
        os: 'linux',
        node: 'v20',
        onnxruntime: '1',
        executionProvider: 'cpu',
      },
      settings: {},
      startedAt: 'a',
      finishedAt: 'b',
      topic: 'esm/devices/pi-2/results',
    };
    await expect(ingest(event as never, lambdaContext('ingest') as never)).rejects.toMatchObject({
      name: 'ValidationError',
      field: 'thing',
    });
    await expect(
      ingest({ v: 1, type: 'result' } as never, lambdaContext('ingest') as never),
    ).rejects.toMatchObject({ name: 'ValidationError', field: 'runId' });
    expect(await scanAll(resources.samplesTable)).toEqual(before);
  });

  it('configuration fails fast naming the missing variable', () => {
    expect(() => loadConfig(['bucket', 'runsTable'], { ESM_BUCKET: 'b' })).toThrow(
      /^ESM_RUNS_TABLE: environment variable is missing or empty/,
    );
    expect(loadConfig(['bucket'], { ESM_BUCKET: 'b' })).toEqual({ bucket: 'b' });
  });
});
