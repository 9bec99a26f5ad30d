/**
 * The job queue and its file journal: duplicates, the limit, and what a restart (a new queue on
 * the same folder) finds. Real files in a temporary folder.
 */
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ResultMessage } from '../../core/schemas/protocol.ts';
import { createJobQueue, fileJournal, type Outcome } from '../../device-client/job-queue.ts';
import { tinyJob } from '../support/mqtt.ts';

const folder = () => mkdtempSync(join(tmpdir(), 'esm-journal-'));
const resultOf = (batchId: string) =>
  ({ runId: 'run-test', batchId, thing: 't' }) as unknown as ResultMessage;
const done = (batchId: string): Outcome => ({ result: resultOf(batchId) });

describe('job queue', () => {
  it('runs jobs in arrival order and recognises duplicates while queued, running and finished', () => {
    const queue = createJobQueue({ limit: 4 });
    expect(queue.offer(tinyJob('a'))).toEqual({ kind: 'queued', position: 1 });
    expect(queue.offer(tinyJob('b'))).toEqual({ kind: 'queued', position: 2 });
    expect(queue.offer(tinyJob('a'))).toEqual({ kind: 'duplicate' });

    const a = queue.take();
    expect(a?.batchId).toBe('a');
    expect(queue.running?.batchId).toBe('a');
    expect(queue.offer(tinyJob('a'))).toEqual({ kind: 'duplicate' });
    queue.settle(a as NonNullable<typeof a>, done('a'));
    expect(queue.running).toBeUndefined();
    expect(queue.offer(tinyJob('a'))).toEqual({ kind: 'finished', outcome: done('a') });
    expect(queue.take()?.batchId).toBe('b');
  });

  it('refuses beyond the limit but always takes a job when idle', () => {
    const queue = createJobQueue({ limit: 0 });
    expect(queue.offer(tinyJob('a')).kind).toBe('queued');
    expect(queue.offer(tinyJob('b')).kind).toBe('full');
    queue.take();
    expect(queue.offer(tinyJob('b')).kind).toBe('full');
  });

  it('forgets a stopped job so that a later delivery measures it', () => {
    const queue = createJobQueue({ limit: 4 });
    queue.offer(tinyJob('a'));
    const a = queue.take() as NonNullable<ReturnType<typeof queue.take>>;
    queue.settle(a, { error: { code: 'STOPPED', message: 'stopped' } });
    expect(queue.offer(tinyJob('a')).kind).toBe('queued');
  });

  it('remembers a bounded number of finished batches', () => {
    const queue = createJobQueue({ limit: 4, remember: 2 });
    for (const id of ['a', 'b', 'c']) queue.remember(resultOf(id), done(id));
    expect(queue.offer(tinyJob('a')).kind).toBe('queued');
    expect(queue.offer(tinyJob('c')).kind).toBe('finished');
  });
});

describe('file journal across a restart', () => {
  it('resumes accepted jobs in arrival order and drops finished ones', () => {
    const dir = folder();
    const before = createJobQueue({ limit: 8, journal: fileJournal(dir) });
    for (const id of ['j1', 'j2', 'j3']) before.offer(tinyJob(id));
    const j1 = before.take() as NonNullable<ReturnType<typeof before.take>>;
    before.settle(j1, done('j1'));
    before.take(); // j2 is running when the process dies
    expect(readdirSync(dir)).toHaveLength(2);

    const after = createJobQueue({ limit: 8, journal: fileJournal(dir) });
    expect(after.resume()).toBe(2);
    expect([after.take()?.batchId, after.take()?.batchId]).toEqual(['j2', 'j3']);

    // A job measured into the outbox just before the crash is finished, not resumed.
    const again = createJobQueue({ limit: 8, journal: fileJournal(dir) });
    again.remember(resultOf('j2'), done('j2'));
    expect(again.resume()).toBe(1);
    expect(again.take()?.batchId).toBe('j3');
    expect(readdirSync(dir)).toHaveLength(1);
  });

  it('keeps a stopped job until the platform has been told, then forgets it', () => {
    const dir = folder();
    const queue = createJobQueue({ limit: 8, journal: fileJournal(dir) });
    queue.offer(tinyJob('s1'));
    queue.offer(tinyJob('s2'));
    const s1 = queue.take() as NonNullable<ReturnType<typeof queue.take>>;
    queue.settle(s1, { error: { code: 'STOPPED', message: 'stopped' } });
    const [s2] = queue.drain();
    expect(s2?.batchId).toBe('s2');
    expect(readdirSync(dir)).toHaveLength(2);
    queue.release(s1);
    expect(readdirSync(dir)).toHaveLength(1);
    // s2's STOPPED never reached the platform: the next start runs it.
    const next = createJobQueue({ limit: 8, journal: fileJournal(dir) });
    expect(next.resume()).toBe(1);
    expect(next.take()?.batchId).toBe('s2');
  });

  it('keeps an unreadable journal file aside instead of failing the start', () => {
    const dir = folder();
    writeFileSync(join(dir, '000000000001-broken.json'), '{"job": {"v": 1');
    const queue = createJobQueue({ limit: 8, journal: fileJournal(dir) });
    expect(queue.resume()).toBe(0);
    expect(readdirSync(dir)).toEqual(['000000000001-broken.json.corrupt']);
    queue.offer(tinyJob('fresh'));
    expect(readdirSync(dir).filter((n) => n.endsWith('.json'))).toHaveLength(1);
  });

  it('stores jobs whose ids are too long for a file name', () => {
    const dir = folder();
    const job = { ...tinyJob('x'), runId: 'r'.repeat(200), batchId: '/'.repeat(200) };
    const queue = createJobQueue({ limit: 8, journal: fileJournal(dir) });
    expect(queue.offer(job).kind).toBe('queued');
    const next = createJobQueue({ limit: 8, journal: fileJournal(dir) });
    expect(next.resume()).toBe(1);
    expect(next.take()?.batchId).toBe(job.batchId);
  });
});
