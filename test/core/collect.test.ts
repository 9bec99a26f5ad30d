/**
 * The collect and dispatch decisions of the loop on plain data (core/loop.ts): timeouts count
 * from the last progress, a silent device's share is released for the others, unstable jobs
 * are measured again once, the calibration job goes first, and jobs are sharded over devices
 * with a bounded number in flight.
 */
import { describe, expect, it } from 'vitest';
import {
  type CollectOptions,
  collectDecision,
  jobId,
  liveDevices,
  runOfJob,
  shardJobs,
} from '../../core/loop.ts';
import { resumableParams, thingsOf } from '../../core/schemas/run.ts';

const t0 = '2026-01-01T00:00:00.000Z';
const at = (seconds: number) => new Date(Date.parse(t0) + seconds * 1000);

function options(extra: Partial<CollectOptions> = {}): CollectOptions {
  return {
    pending: [
      { id: 'a1', assignedThing: 'a', assignedBatch: 'r/i0-a1-c0', assignedAt: t0 },
      { id: 'b1', assignedThing: 'b', assignedBatch: 'r/i0-a1-c1', assignedAt: t0 },
    ],
    unstableBatches: [],
    unstableRetries: 0,
    progress: {},
    now: at(10),
    resultTimeoutSeconds: 60,
    redispatches: 0,
    maxRedispatches: 2,
    calibrating: false,
    live: ['a', 'b'],
    ...extra,
  };
}

describe('collectDecision', () => {
  it('is complete without pending samples and measuring while devices are within the timeout', () => {
    expect(collectDecision(options({ pending: [] }))).toEqual({ kind: 'complete' });
    expect(collectDecision(options())).toEqual({ kind: 'measuring' });
  });

  it('counts the timeout from the last progress, not from dispatch', () => {
    // 90 s after dispatch, but b reported progress 40 s ago: only a is silent.
    const decision = collectDecision(
      options({ now: at(90), progress: { b: at(50).toISOString() } }),
    );
    expect(decision).toMatchObject({
      kind: 'dispatch',
      reason: 'timeout',
      silent: ['a'],
      release: ['a1'],
    });
  });

  it('fails after the last re-dispatch, naming the silent devices', () => {
    const decision = collectDecision(options({ now: at(90), redispatches: 2 }));
    expect(decision).toMatchObject({ kind: 'timeout', things: ['a', 'b'] });
    expect((decision as { waitedSeconds: number }).waitedSeconds).toBeCloseTo(90, 5);
  });

  it('measures an unstable job again once, then gives up', () => {
    const unstable = options({ unstableBatches: ['r/i0-a1-c1'] });
    expect(collectDecision(unstable)).toMatchObject({
      kind: 'dispatch',
      reason: 'unstable',
      release: ['b1'],
      unstable: ['r/i0-a1-c1'],
    });
    expect(collectDecision({ ...unstable, unstableRetries: 1 })).toEqual({
      kind: 'unstable',
      batches: ['r/i0-a1-c1'],
    });
  });

  it('sends unassigned samples when a device has a free slot, but not before the calibration job answered', () => {
    const pending = [...options().pending, { id: 'c1' }];
    expect(collectDecision(options({ pending }))).toMatchObject({
      kind: 'dispatch',
      reason: 'new',
    });
    expect(collectDecision(options({ pending, calibrating: true }))).toEqual({ kind: 'measuring' });
    expect(collectDecision(options({ pending, maxInFlight: 1 }))).toEqual({ kind: 'measuring' });
  });
});

describe('shardJobs', () => {
  const ids = Array.from({ length: 12 }, (_, i) => i);
  it('gives every device an equal share of a small batch', () => {
    const jobs = shardJobs(ids, ['a', 'b', 'c'], { chunkSize: 10 });
    expect(jobs.map((j) => [j.thing, j.items.length])).toEqual([
      ['a', 4],
      ['b', 4],
      ['c', 4],
    ]);
  });

  it('deals chunks round-robin to free slots and keeps the rest for later', () => {
    const jobs = shardJobs(ids, ['a', 'b'], {
      chunkSize: 2,
      inFlight: new Map([['a', 2]]),
      maxInFlight: 3,
    });
    // a has one free slot, b three: four jobs of 2, the last 4 samples wait.
    expect(jobs.map((j) => j.thing)).toEqual(['a', 'b', 'b', 'b']);
    expect(jobs.flatMap((j) => j.items)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('sends to the live devices, or to all when every one is silent', () => {
    expect(liveDevices(['a', 'b', 'c'], ['b'])).toEqual(['a', 'c']);
    expect(liveDevices(['a'], ['a'])).toEqual(['a']);
  });
});

describe('job ids and devices of a run', () => {
  it('names the run in every job id, fresh per attempt', () => {
    expect(jobId('run-1', 2, 3, 4)).toBe('run-1/i2-a3-c4');
    expect(runOfJob(jobId('run-1', 2, 3, 4))).toBe('run-1');
    expect(runOfJob('i0-c0-0')).toBeUndefined();
  });

  it('reads the things of a run from things, a thing list, or the embedded devices', () => {
    expect(thingsOf({ device: 'thing:a, thing:b' })).toEqual(['a', 'b']);
    expect(thingsOf({ device: 'thing:a', things: ['x', 'y'] })).toEqual(['x', 'y']);
    expect(thingsOf({ device: 'local' })).toEqual(['esm-local']);
    expect(thingsOf({ device: 'dataset:f.jsonl' })).toEqual(['esm-replay']);
    expect(resumableParams).toContain('maxIter');
  });
});
