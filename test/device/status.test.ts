/**
 * The status publisher: progress throttling on a test clock (no wall-clock assertions), state
 * messages and heartbeats. `publish` records what would go to the broker.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type StatusMessage, statusMessage } from '../../core/schemas/protocol.ts';
import { type Activity, createStatusPublisher } from '../../device-client/status.ts';

function setup(options: { progressIntervalMs?: number; heartbeatSeconds?: number } = {}) {
  let now = Date.parse('2026-12-01T10:00:00Z');
  const published: { message: StatusMessage; qos: number; retain: boolean }[] = [];
  let activity: Activity = { queue: 0 };
  const status = createStatusPublisher({
    thing: 'dev-1',
    clock: { now: () => new Date(now) },
    ...options,
    activity: () => activity,
    publish: async (message, opts) => {
      published.push({ message, qos: opts.qos, retain: opts.retain ?? false });
    },
  });
  return {
    status,
    published,
    advance: (ms: number) => {
      now += ms;
    },
    setActivity: (a: Activity) => {
      activity = a;
    },
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('status publisher', () => {
  it('sends progress at most once per interval, but always the first and the last', () => {
    const { status, published, advance } = setup({ progressIntervalMs: 5000 });
    const sent: number[] = [];
    for (let done = 1; done <= 20; done++) {
      if (status.progress('b1', done, 20)) sent.push(done);
      advance(1000); // one sample a second
    }
    expect(sent).toEqual([1, 6, 11, 16, 20]);
    expect(published.every((p) => p.qos === 0 && p.message.state === 'busy')).toBe(true);
    // A new job's first progress goes out at once.
    expect(status.progress('b2', 1, 5)).toBe(true);
  });

  it('sends every progress with interval 0', () => {
    const { status } = setup({ progressIntervalMs: 0 });
    expect([1, 2, 3].map((d) => status.progress('b', d, 3))).toEqual([true, true, true]);
  });

  it('publishes valid state messages: retained idle/busy, errors naming the batch', async () => {
    const { status, published, setActivity } = setup();
    await status.state();
    setActivity({ batchId: 'b7', progress: { done: 2, total: 9 }, queue: 3 });
    await status.state();
    await status.error('QUEUE_FULL', 'queue full', 'b8');
    await status.offline();
    for (const p of published) statusMessage.parse(p.message);
    expect(published.map((p) => [p.message.state, p.qos, p.retain])).toEqual([
      ['idle', 1, true],
      ['busy', 1, true],
      ['error', 1, false],
      ['offline', 1, true],
    ]);
    expect(published[1]?.message).toMatchObject({ batchId: 'b7', queue: 3, progress: { done: 2 } });
    expect(published[2]?.message.error).toEqual({
      code: 'QUEUE_FULL',
      message: 'queue full',
      batchId: 'b8',
    });
  });

  it('beats every heartbeatSeconds with the current state until stopped', () => {
    vi.useFakeTimers();
    const { status, published } = setup({ heartbeatSeconds: 60 });
    status.start();
    vi.advanceTimersByTime(180_000);
    status.stop();
    vi.advanceTimersByTime(180_000);
    expect(published.map((p) => [p.message.state, p.qos])).toEqual([
      ['idle', 0],
      ['idle', 0],
      ['idle', 0],
    ]);
  });
});
