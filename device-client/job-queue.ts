/**
 * The daemon's job queue: jobs run one at a time in arrival order, duplicates are recognised by
 * `(runId, batchId)`, and with a journal every accepted job is on disk before the broker gets
 * its PUBACK, so a `kill -9` or a power cut never loses a job the broker considers delivered.
 *
 * Why a journal rather than holding the PUBACK until the result is sent: mqtt.js handles
 * incoming packets one at a time (`handleMessage` "always call callback, or the client will
 * hang"), so a PUBACK held for the minutes a job runs would also hold the PUBACKs of our
 * results and the keepalive answers; and a broker keeps unacknowledged messages only for its
 * session expiry (AWS IoT Core: 1 hour by default), shorter than a queue of long jobs.
 */

import { renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../core/ports.ts';
import { silentLogger } from '../core/ports.ts';
import {
  type JobMessage,
  jobMessage,
  type ResultMessage,
  type StatusErrorCode,
} from '../core/schemas/protocol.ts';
import {
  type BatchRef,
  batchFileName,
  batchKey,
  ensureFolder,
  jsonFiles,
  readJson,
  writeFileDurably,
} from './durable-file.ts';

/** How a job ended: its result, or the error status it was answered with. */
export type Outcome =
  | { result: ResultMessage; error?: undefined }
  | { error: { code: StatusErrorCode; message: string }; result?: undefined };

/** Where accepted jobs wait; see `fileJournal` and `memoryJournal`. */
export interface JobJournal {
  /** Keep `job` until `remove`; throws when it cannot (the job is then not accepted). */
  save(job: JobMessage): void;
  remove(batch: BatchRef): void;
  /** Jobs an earlier process accepted and did not finish, oldest first. */
  load(): JobMessage[];
}

/** No journal: accepted jobs live in memory and die with the process. */
export const memoryJournal = (): JobJournal => ({
  save: () => {},
  remove: () => {},
  load: () => [],
});

/**
 * A journal in `dir`: one file per job, `{seq}-{hash}.json` holding `{ seq, acceptedAt, job }`,
 * written durably (see durable-file.ts). The sequence number keeps arrival order across
 * restarts. A file that no longer parses as a job is renamed `*.corrupt` and skipped, so it is
 * kept for inspection and never blocks the start.
 */
export function fileJournal(dir: string, options: { logger?: Logger } = {}): JobJournal {
  const { logger = silentLogger } = options;
  ensureFolder(dir);
  const files = new Map<string, string>();
  let seq = 0;
  for (const name of jsonFiles(dir)) {
    const n = Number.parseInt(name, 10);
    if (Number.isFinite(n)) seq = Math.max(seq, n);
  }
  return {
    save(job) {
      seq++;
      const name = `${String(seq).padStart(12, '0')}-${batchFileName(job)}`;
      writeFileDurably(
        join(dir, name),
        JSON.stringify({ seq, acceptedAt: new Date().toISOString(), job }),
      );
      files.set(batchKey(job), name);
    },
    remove(batch) {
      const key = batchKey(batch);
      const name = files.get(key);
      if (name === undefined) return;
      files.delete(key);
      rmSync(join(dir, name), { force: true });
    },
    load() {
      const jobs: JobMessage[] = [];
      for (const name of jsonFiles(dir)) {
        const raw = readJson(dir, name) as { job?: unknown } | undefined;
        const parsed = jobMessage.safeParse(raw?.job);
        if (!parsed.success) {
          logger.warn('a saved job cannot be read; kept as .corrupt and skipped', { file: name });
          renameSync(join(dir, name), join(dir, `${name}.corrupt`));
          continue;
        }
        const key = batchKey(parsed.data);
        if (files.has(key)) {
          rmSync(join(dir, name), { force: true });
          continue;
        }
        files.set(key, name);
        jobs.push(parsed.data);
      }
      return jobs;
    },
  };
}

/** What `offer` did with a job. */
export type Offer =
  /** Accepted (and journaled): it waits at `position` (1 = next). */
  | { kind: 'queued'; position: number }
  /** The same batch is waiting or running: nothing to do. */
  | { kind: 'duplicate' }
  /** The same batch finished earlier: answer with this outcome again, do not measure again. */
  | { kind: 'finished'; outcome: Outcome }
  /** `limit` jobs wait already. */
  | { kind: 'full' };

export interface JobQueueOptions {
  /** Jobs that may wait behind the running one. */
  limit: number;
  /** Finished batches remembered for duplicate detection. @default 256 */
  remember?: number;
  /** @default memoryJournal() */
  journal?: JobJournal;
}

export interface JobQueue {
  /** Accept, recognise or refuse a job; throws when the journal cannot keep it. */
  offer(job: JobMessage): Offer;
  /** The next job to run (it becomes `running`), or undefined when none waits. */
  take(): JobMessage | undefined;
  /**
   * The running job ended. A result or a final error is remembered for duplicates and the job
   * leaves the journal; `STOPPED` is not remembered (a later delivery must measure it) and the
   * job stays in the journal until `release`, i.e. until the platform has been told.
   */
  settle(job: JobMessage, outcome: Outcome): void;
  /** Forget a stopped job for good: the platform acknowledged its `STOPPED` status. */
  release(batch: BatchRef): void;
  /** Take every waiting job out of the queue (they stay journaled until `release`). */
  drain(): JobMessage[];
  /** Remember a batch as finished (results restored from the outbox at start). */
  remember(batch: BatchRef, outcome: Outcome): void;
  /** Queue the journal's jobs of an earlier process, except finished ones; returns the count. */
  resume(): number;
  readonly running: JobMessage | undefined;
  /** Jobs waiting behind the running one. */
  readonly length: number;
}

/** Create a job queue; see `JobQueue`. */
export function createJobQueue(options: JobQueueOptions): JobQueue {
  const { limit, remember: rememberBatches = 256, journal = memoryJournal() } = options;
  const waiting: JobMessage[] = [];
  const active = new Set<string>();
  const finished = new Map<string, Outcome>();
  let running: JobMessage | undefined;

  const remember = (batch: BatchRef, outcome: Outcome) => {
    const key = batchKey(batch);
    finished.delete(key);
    finished.set(key, outcome);
    while (finished.size > rememberBatches) {
      const oldest = finished.keys().next().value;
      if (oldest === undefined) break;
      finished.delete(oldest);
    }
  };

  return {
    offer(job) {
      const key = batchKey(job);
      const done = finished.get(key);
      if (done) return { kind: 'finished', outcome: done };
      if (active.has(key)) return { kind: 'duplicate' };
      // With nothing running and nothing waiting the job runs at once, whatever the limit.
      const idle = running === undefined && waiting.length === 0;
      if (waiting.length >= limit && !idle) return { kind: 'full' };
      journal.save(job);
      active.add(key);
      waiting.push(job);
      return { kind: 'queued', position: waiting.length };
    },
    take() {
      running = waiting.shift();
      return running;
    },
    settle(job, outcome) {
      const key = batchKey(job);
      active.delete(key);
      if (running !== undefined && batchKey(running) === key) running = undefined;
      if (outcome.error?.code === 'STOPPED') return;
      remember(job, outcome);
      journal.remove(job);
    },
    release(batch) {
      journal.remove(batch);
    },
    drain() {
      const jobs = waiting.splice(0);
      for (const job of jobs) active.delete(batchKey(job));
      return jobs;
    },
    remember,
    resume() {
      let count = 0;
      for (const job of journal.load()) {
        const key = batchKey(job);
        if (finished.has(key)) {
          // Measured and in the outbox, but the crash came before the journal entry went.
          journal.remove(job);
          continue;
        }
        if (active.has(key)) continue;
        active.add(key);
        waiting.push(job);
        count++;
      }
      return count;
    },
    get running() {
      return running;
    },
    get length() {
      return waiting.length;
    },
  };
}
