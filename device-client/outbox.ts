/**
 * The durable outbox of measured results. A result is kept (on disk with a folder) from the
 * moment it is measured until the broker acknowledges it (PUBACK), published again after every
 * reconnect until then, and never sent in parts. Acknowledged results move to a bounded `sent`
 * ledger, so that a job delivered again, even after a restart, is answered with the same result
 * byte for byte instead of being measured twice.
 *
 * Folder layout (`dir`): `outbox/{hash}.json` not yet acknowledged, `sent/{hash}.json`
 * acknowledged; each file is one result message as published.
 */
import { rmSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../core/ports.ts';
import { silentLogger } from '../core/ports.ts';
import { type ResultMessage, resultMessage } from '../core/schemas/protocol.ts';
import {
  batchFileName,
  batchKey,
  ensureFolder,
  jsonFiles,
  moveDurably,
  readJson,
  writeFileDurably,
} from './durable-file.ts';

export interface OutboxOptions {
  /** Folder for the results; memory only when absent. @default none */
  dir?: string;
  /** Results of other things found in `dir` are ignored (a folder shared by mistake). */
  thing: string;
  /** Publish one result (QoS 1); resolves on its PUBACK, rejects when it was not delivered. */
  send: (result: ResultMessage) => Promise<void>;
  /** Acknowledged results kept on disk for duplicate detection. @default 256 */
  keepSent?: number;
  /** @default silentLogger */
  logger?: Logger;
}

export interface Outbox {
  /** Results found on disk at start: `pending` still to send, `sent` acknowledged earlier. */
  readonly restored: { pending: ResultMessage[]; sent: ResultMessage[] };
  /**
   * Keep `result` (durably with a folder; throws when the disk refuses) and send it. Call
   * before the job leaves the journal, so that a crash in between keeps one of the two.
   */
  add(result: ResultMessage): void;
  /** Send a result again for a duplicate job (no new entry on disk). */
  resend(result: ResultMessage): void;
  /** Send every result neither acknowledged nor in flight (after a reconnect). */
  flush(): void;
  /** Results not acknowledged yet. */
  readonly pending: number;
  /** Resolves with the number still pending once none is, or after `timeoutMs`. */
  settled(timeoutMs: number): Promise<number>;
}

interface Entry {
  result: ResultMessage;
  inFlight: boolean;
}

/** Create an outbox; results restored from `dir` are sent by the first `flush`. */
export function createOutbox(options: OutboxOptions): Outbox {
  const { dir, thing, send, keepSent = 256, logger = silentLogger } = options;
  const outboxDir = dir ? ensureFolder(join(dir, 'outbox')) : undefined;
  const sentDir = dir ? ensureFolder(join(dir, 'sent')) : undefined;
  const pending = new Map<string, Entry>();
  const waiters = new Set<() => void>();
  /** File names in `sent/`, oldest first, for pruning. */
  const sentNames: string[] = [];

  const restore = (folder: string | undefined): ResultMessage[] => {
    if (!folder) return [];
    const found: { result: ResultMessage; name: string; mtime: number }[] = [];
    for (const name of jsonFiles(folder)) {
      const parsed = resultMessage.safeParse(readJson(folder, name));
      if (!parsed.success || parsed.data.thing !== thing) {
        logger.warn('ignoring a saved file that is not a result of this thing', { file: name });
        continue;
      }
      found.push({ result: parsed.data, name, mtime: statSync(join(folder, name)).mtimeMs });
    }
    found.sort((a, b) => a.mtime - b.mtime);
    if (folder === sentDir) sentNames.push(...found.map((f) => f.name));
    return found.map((f) => f.result);
  };
  const restored = { pending: restore(outboxDir), sent: restore(sentDir) };
  for (const result of restored.pending) {
    pending.set(batchKey(result), { result, inFlight: false });
    logger.info('result from a previous run will be sent', { batchId: result.batchId });
  }

  const prune = () => {
    while (sentDir && sentNames.length > keepSent) {
      const oldest = sentNames.shift();
      if (oldest !== undefined) rmSync(join(sentDir, oldest), { force: true });
    }
  };

  const acknowledged = (entry: Entry) => {
    const key = batchKey(entry.result);
    if (pending.get(key) !== entry) return;
    pending.delete(key);
    logger.info('result acknowledged', { batchId: entry.result.batchId });
    if (outboxDir && sentDir) {
      const name = batchFileName(entry.result);
      try {
        moveDurably(join(outboxDir, name), join(sentDir, name));
        const now = new Date();
        utimesSync(join(sentDir, name), now, now);
        sentNames.push(name);
        prune();
      } catch (error) {
        logger.warn('cannot move an acknowledged result to sent/', {
          file: name,
          error: (error as Error).message,
        });
      }
    }
    if (pending.size === 0) for (const wake of waiters) wake();
  };

  const transmit = (entry: Entry) => {
    entry.inFlight = true;
    send(entry.result).then(
      () => acknowledged(entry),
      () => {
        entry.inFlight = false;
      },
    );
  };

  return {
    restored,
    add(result) {
      if (outboxDir) {
        writeFileDurably(join(outboxDir, batchFileName(result)), JSON.stringify(result));
      }
      const entry = { result, inFlight: false };
      pending.set(batchKey(result), entry);
      transmit(entry);
    },
    resend(result) {
      const key = batchKey(result);
      if (pending.has(key)) return; // still pending: it goes out anyway
      send(result).catch(() => {});
    },
    flush() {
      for (const entry of pending.values()) if (!entry.inFlight) transmit(entry);
    },
    get pending() {
      return pending.size;
    },
    async settled(timeoutMs) {
      if (pending.size === 0) return 0;
      await new Promise<void>((resolve) => {
        const wake = () => {
          waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, timeoutMs);
        timer.unref();
        waiters.add(wake);
      });
      return pending.size;
    },
  };
}
