/**
 * The device daemon against the embedded aedes broker over real TCP connections, measuring
 * real ONNX models with the real job runner (tiny MobileNetV3 subnets at resolution 128).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../core/errors.ts';
import { resultMessage, statusMessage, topics } from '../../core/schemas/protocol.ts';
import { loadConfig } from '../../device-client/config.ts';
import {
  backoffDelay,
  createDaemon,
  type Daemon,
  type DaemonDeps,
  startDaemon,
} from '../../device-client/daemon.ts';
import { runJob } from '../../device-client/job-runner.ts';
import { type Broker, startBroker } from '../../local/mqtt-broker.ts';
import {
  cuttableProxy,
  field,
  type Received,
  type Recorder,
  recorder,
  tinyJob,
} from '../support/mqtt.ts';

let broker: Broker;
let platform: Recorder;
const daemons: Daemon[] = [];

const isStatus = (thing: string, pred: (m: Received) => boolean) => (m: Received) =>
  m.topic === topics.status(thing) && pred(m);
const isResult = (thing: string, batchId: string) => (m: Received) =>
  m.topic === topics.results(thing) && field(m, 'batchId') === batchId;
const errorCode = (thing: string, code: string) =>
  isStatus(thing, (m) => field(m, 'state') === 'error' && field(m, 'error', 'code') === code);

async function daemon(thing: string, extra: Record<string, unknown> = {}, deps: DaemonDeps = {}) {
  const d = await startDaemon(
    { broker: broker.url, thing, reconnectMinMs: 50, reconnectMaxMs: 200, ...extra },
    deps,
  );
  daemons.push(d);
  return d;
}

function publishJob(thing: string, job: unknown) {
  const payload = typeof job === 'string' ? job : JSON.stringify(job);
  return platform.client.publishAsync(topics.jobs(thing), payload, { qos: 1 });
}

beforeAll(async () => {
  broker = await startBroker();
  platform = await recorder(broker.url, ['esm/devices/+/results', 'esm/devices/+/status']);
});

afterEach(async () => {
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
});

afterAll(async () => {
  await platform.close();
  await broker.close();
});

describe('esm-device daemon over aedes', () => {
  it('measures a job from a plain MQTT client and returns a valid result', async () => {
    const thing = 'e2e-1';
    await daemon(thing);
    const online = await platform.next(isStatus(thing, (m) => field(m, 'state') === 'online'));
    expect(statusMessage.parse(online.json).device?.cores).toBeGreaterThan(0);

    await publishJob(thing, tinyJob('b-e2e', { samples: 2 }));
    const reply = await platform.next(isResult(thing, 'b-e2e'), 60_000);

    const result = resultMessage.parse(reply.json);
    expect(result.thing).toBe(thing);
    expect(result.samples.map((s) => s.id)).toEqual(['b-e2e-s0', 'b-e2e-s1']);
    for (const s of result.samples) expect(s.stats.median_ms).toBeGreaterThan(0);
    expect(result.device.thing).toBe(thing);
    expect(result.device.onnxruntime).toMatch(/^\d+\.\d+/);
    expect(result.device.node).toBe(process.version);
    expect(result.references[0]?.checks.length).toBeGreaterThanOrEqual(2);
    const busy = platform.messages.find(isStatus(thing, (m) => field(m, 'state') === 'busy'));
    expect(field(busy as Received, 'batchId')).toBe('b-e2e');
    await platform.next(isStatus(thing, (m) => field(m, 'state') === 'idle' && m !== online));
  });

  it('answers malformed, unknown-version and invalid jobs with an error and keeps serving', async () => {
    const thing = 'bad-input-1';
    await daemon(thing);
    await publishJob(thing, '{"v":1, not json');
    const notJson = await platform.next(errorCode(thing, 'MALFORMED_JSON'));
    expect(String(field(notJson, 'error', 'message'))).toContain('not JSON');

    await publishJob(thing, { ...tinyJob('b-v2'), v: 2 });
    const v2 = await platform.next(errorCode(thing, 'UNSUPPORTED_VERSION'));
    expect(field(v2, 'batchId')).toBe('b-v2');
    expect(String(field(v2, 'error', 'message'))).toMatch(/^v: /);

    await publishJob(thing, { ...tinyJob('b-empty'), samples: [] });
    const empty = await platform.next(errorCode(thing, 'INVALID_JOB'));
    expect(String(field(empty, 'error', 'message'))).toMatch(/^samples: /);

    const badArch = tinyJob('b-arch');
    (badArch.samples[0] as { arch: Record<string, unknown> }).arch.r = 131;
    await publishJob(thing, badArch);
    const arch = await platform.next(
      isStatus(thing, (m) => field(m, 'error', 'batchId') === 'b-arch'),
      30_000,
    );
    expect(field(arch, 'error', 'code')).toBe('INVALID_JOB');
    expect(String(field(arch, 'error', 'message'))).toContain('samples[0].arch');

    await publishJob(thing, { type: 'job', batchId: 'b-nov' });
    const noVersion = await platform.next(
      isStatus(thing, (m) => field(m, 'error', 'batchId') === 'b-nov'),
    );
    expect(field(noVersion, 'error', 'code')).toBe('INVALID_JOB');
    expect(String(field(noVersion, 'error', 'message'))).toMatch(/^v: missing/);

    await publishJob(thing, tinyJob('b-after'));
    const ok = await platform.next(isResult(thing, 'b-after'), 60_000);
    expect(resultMessage.parse(ok.json).samples).toHaveLength(1);
  });

  it('sends heartbeats with its current state', async () => {
    const thing = 'heartbeat-1';
    await daemon(thing, { heartbeatSeconds: 1 });
    const idle = isStatus(thing, (m) => field(m, 'state') === 'idle');
    const first = await platform.next(idle);
    const beat = await platform.next((m) => idle(m) && m !== first, 5000);
    expect(statusMessage.parse(beat.json).queue).toBe(0);
  });

  it('keeps trying to reach an unreachable broker with backoff and stops promptly', async () => {
    const closed = await startBroker();
    const url = closed.url;
    await closed.close();
    const attempts: number[] = [];
    const logger = {
      debug: () => {},
      info: (message: string, fields?: Record<string, unknown>) => {
        if (message === 'reconnecting') attempts.push(Number(fields?.delayMs));
      },
      warn: () => {},
      error: () => {},
    };
    const d = createDaemon(
      { broker: url, thing: 'unreachable-1', reconnectMinMs: 20, reconnectMaxMs: 160 },
      { logger },
    );
    // Wait for three attempts, not a fixed time: a loaded machine may run the timers late.
    while (attempts.length < 3) await new Promise((r) => setTimeout(r, 20));
    // Stopping must not wait for a broker that never answers (the test's timeout catches a hang).
    await d.stop();

    expect(d.connected).toBe(false);
    expect(attempts.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...attempts)).toBeLessThanOrEqual(160);
    expect(attempts[2]).toBeGreaterThanOrEqual(40); // 20 * 2^2 with at least half kept
  });

  it('recognises duplicate deliveries by batch id', async () => {
    const thing = 'dup-1';
    let runs = 0;
    await daemon(
      thing,
      {},
      {
        runJob: (job, o) => {
          runs++;
          return runJob(job, o);
        },
      },
    );
    const job = tinyJob('b-dup');
    await publishJob(thing, job);
    await publishJob(thing, job); // while queued or running: ignored
    const first = await platform.next(isResult(thing, 'b-dup'), 60_000);
    await publishJob(thing, job); // finished: the same result again
    await platform.next((m) => isResult(thing, 'b-dup')(m) && m !== first);

    const copies = platform.messages.filter(isResult(thing, 'b-dup'));
    expect(runs).toBe(1);
    expect(copies).toHaveLength(2);
    expect(copies[1]?.text).toBe(copies[0]?.text);
  });

  it('refuses jobs beyond the queue limit with QUEUE_FULL and runs the others', async () => {
    const thing = 'queue-1';
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const started: string[] = [];
    await daemon(
      thing,
      { queueLimit: 1 },
      {
        runJob: async (job, o) => {
          started.push(job.batchId);
          await gate;
          return runJob(job, o);
        },
      },
    );
    await publishJob(thing, tinyJob('q-1'));
    await platform.next(isStatus(thing, (m) => field(m, 'batchId') === 'q-1'));
    await publishJob(thing, tinyJob('q-2'));
    await publishJob(thing, tinyJob('q-3'));
    const full = await platform.next(errorCode(thing, 'QUEUE_FULL'));
    expect(field(full, 'batchId')).toBe('q-3');

    release();
    await platform.next(isResult(thing, 'q-1'), 60_000);
    await platform.next(isResult(thing, 'q-2'), 60_000);
    expect(started).toEqual(['q-1', 'q-2']);
  });

  it('reports a failing job as JOB_FAILED and survives it', async () => {
    const thing = 'fail-1';
    let calls = 0;
    await daemon(
      thing,
      {},
      {
        runJob: async (job, o) => {
          calls++;
          if (calls === 1) throw new Error('onnxruntime exploded');
          return runJob(job, o);
        },
      },
    );
    await publishJob(thing, tinyJob('f-1'));
    const failed = await platform.next(errorCode(thing, 'JOB_FAILED'));
    expect(field(failed, 'error', 'message')).toBe('onnxruntime exploded');
    await publishJob(thing, tinyJob('f-2'));
    await platform.next(isResult(thing, 'f-2'), 60_000);
  });

  it('re-publishes a result measured during a network outage after reconnecting', async () => {
    const thing = 'outage-1';
    const proxy = await cuttableProxy(broker.port);
    let finished: () => void = () => {};
    const measured = new Promise<void>((resolve) => {
      finished = resolve;
    });
    let cut = false;
    const d = await daemon(
      thing,
      { broker: `mqtt://127.0.0.1:${proxy.port}`, progressIntervalSeconds: 0 },
      {
        runJob: async (job, o) => {
          const result = await runJob(job, {
            ...o,
            onProgress: (done, total) => {
              // Drop the link in the middle of the job, as a Wi-Fi outage would.
              if (!cut) {
                cut = true;
                proxy.cut();
              }
              o.onProgress?.(done, total);
            },
          });
          finished();
          return result;
        },
      },
    );
    await publishJob(thing, tinyJob('b-outage', { samples: 2 }));
    await measured;
    expect(cut).toBe(true);
    expect(d.connected).toBe(false);
    expect(platform.messages.some(isResult(thing, 'b-outage'))).toBe(false);

    proxy.restore();
    const reply = await platform.next(isResult(thing, 'b-outage'), 30_000);
    expect(resultMessage.parse(reply.json).samples).toHaveLength(2);
    const isOnline = isStatus(thing, (m) => field(m, 'state') === 'online');
    const firstOnline = platform.messages.find(isOnline);
    await platform.next((m) => isOnline(m) && m !== firstOnline);
    await d.stop();
    expect(d.unacknowledged).toBe(0);
    await proxy.close();
  });

  it('keeps an unacknowledged result on disk and sends it after a restart', async () => {
    const thing = 'disk-1';
    const dir = mkdtempSync(join(tmpdir(), 'esm-device-state-'));
    const proxy = await cuttableProxy(broker.port);
    let finished: () => void = () => {};
    const measured = new Promise<void>((resolve) => {
      finished = resolve;
    });
    const first = await daemon(
      thing,
      { broker: `mqtt://127.0.0.1:${proxy.port}`, stateDir: dir },
      {
        flushTimeoutMs: 300,
        runJob: async (job, o) => {
          proxy.cut(); // the device loses the network (or power) before it can report
          const result = await runJob(job, o);
          finished();
          return result;
        },
      },
    );
    await publishJob(thing, tinyJob('b-disk'));
    await measured;
    await first.stop();
    expect(first.unacknowledged).toBe(1);
    const outbox = join(dir, 'outbox');
    expect(readdirSync(outbox)).toHaveLength(1);
    expect(readdirSync(join(dir, 'jobs'))).toEqual([]); // measured: the job left the journal
    expect(platform.messages.some(isResult(thing, 'b-disk'))).toBe(false);

    await daemon(thing, { stateDir: dir });
    const reply = await platform.next(isResult(thing, 'b-disk'), 30_000);
    expect(resultMessage.parse(reply.json).samples).toHaveLength(1);
    const deadline = Date.now() + 5000;
    while (readdirSync(outbox).length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(readdirSync(outbox)).toEqual([]);
    expect(readdirSync(join(dir, 'sent'))).toHaveLength(1); // kept for duplicate detection
    await proxy.close();
  });

  it('subscribes again after a broker restart that lost its session', async () => {
    const own = await startBroker();
    const port = own.port;
    const d = await daemon('restart-1', { broker: own.url });
    await own.close();
    const again = await startBroker({ port });
    try {
      const watcher = await recorder(again.url, [topics.results('restart-1')]);
      const online = await recorder(again.url, [topics.status('restart-1')]);
      await online.next((m) => field(m, 'state') === 'idle', 10_000);
      await watcher.client.publishAsync(
        topics.jobs('restart-1'),
        JSON.stringify(tinyJob('b-restart')),
        { qos: 1 },
      );
      const reply = await watcher.next((m) => field(m, 'batchId') === 'b-restart', 60_000);
      expect(resultMessage.parse(reply.json).thing).toBe('restart-1');
      await Promise.all([watcher.close(), online.close()]);
    } finally {
      await d.stop();
      await again.close();
    }
  });

  it('stops cleanly on SIGTERM after the current sample and publishes offline', async () => {
    const thing = 'sigterm-1';
    const child = spawn(
      process.execPath,
      ['bin/esm-device.js', '--broker', broker.url, '--thing', thing, '--progress-interval', '0'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, XDG_STATE_HOME: mkdtempSync(join(tmpdir(), 'esm-xdg-')) },
      },
    );
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await platform.next(
      isStatus(thing, (m) => field(m, 'state') === 'online'),
      30_000,
    );
    await publishJob(thing, tinyJob('b-term', { samples: 30, runs: 20 }));
    await platform.next(
      isStatus(thing, (m) => field(m, 'progress', 'done') === 1),
      60_000,
    );
    child.kill('SIGTERM');

    const stopped = await platform.next(errorCode(thing, 'STOPPED'), 30_000);
    expect(field(stopped, 'batchId')).toBe('b-term');
    await platform.next(
      isStatus(thing, (m) => field(m, 'state') === 'offline'),
      30_000,
    );
    expect(await exited, output).toBe(0);
    expect(platform.messages.some(isResult(thing, 'b-term'))).toBe(false);
    expect(output).toContain('stopping after the current sample');
  });
});

describe('daemon configuration', () => {
  it('merges flags over environment over config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'esm-device-'));
    const file = join(dir, 'device.json');
    writeFileSync(
      file,
      JSON.stringify({ broker: 'mqtt://file:1883', thing: 'from-file', queueLimit: 3 }),
    );
    const config = loadConfig({
      configFile: file,
      env: { ESM_THING: 'from-env', ESM_HEARTBEAT_SECONDS: '5' },
      flags: { queueLimit: '2' },
    });
    expect(config).toMatchObject({
      broker: 'mqtt://file:1883',
      thing: 'from-env',
      queueLimit: 2,
      heartbeatSeconds: 5,
      executionProvider: 'cpu',
    });
  });

  it('fails fast naming the bad variable, flag or file key', () => {
    const fail = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        expect(error).toBeInstanceOf(ValidationError);
        return (error as ValidationError).field;
      }
      throw new Error('expected a ValidationError');
    };
    expect(fail(() => loadConfig({ env: { ESM_BROKER: 'http://x', ESM_THING: 'a' } }))).toBe(
      'ESM_BROKER',
    );
    expect(fail(() => loadConfig({ env: {}, flags: { broker: 'mqtt://h:1' } }))).toBe(
      '--thing (or ESM_THING)',
    );
    expect(fail(() => loadConfig({ env: {}, flags: { broker: 'mqtt://h:1', thing: 'a/b' } }))).toBe(
      '--thing',
    );
    expect(
      fail(() =>
        loadConfig({ env: { ESM_CERT: 'c.pem' }, flags: { broker: 'mqtt://h', thing: 'a' } }),
      ),
    ).toBe('--key (or ESM_KEY)');
    const dir = mkdtempSync(join(tmpdir(), 'esm-device-'));
    const file = join(dir, 'device.json');
    writeFileSync(file, JSON.stringify({ broker: 'mqtt://h:1', thing: 'a', queue: 3 }));
    expect(fail(() => loadConfig({ env: {}, configFile: file }))).toBe(`${file}: queue`);
  });

  it('backs off exponentially up to the maximum, with a floor', () => {
    expect(backoffDelay(0, 1000, 60_000, 0)).toBe(500);
    expect(backoffDelay(0, 1000, 60_000, 1)).toBe(1000);
    expect(backoffDelay(3, 1000, 60_000, 1)).toBe(8000);
    expect(backoffDelay(20, 1000, 60_000, 0.5)).toBe(45_000);
  });
});
