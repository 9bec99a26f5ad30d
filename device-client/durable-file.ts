/**
 * The daemon's disk primitives: files that are whole or absent after a crash or power cut,
 * named so that any run or batch id fits in a file name.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';

/** A batch as the daemon names it: `(runId, batchId)` is unique per job (docs/protocol.md). */
export interface BatchRef {
  runId: string;
  batchId: string;
}

/** The key of a batch in maps and ledgers. */
export const batchKey = (batch: BatchRef): string => `${batch.runId}\u0000${batch.batchId}`;

/**
 * A file name for a batch: ids may be 200 characters each and hold any character, more than a
 * file name can (255 bytes), so the name is a hash and the ids live inside the file.
 */
export function batchFileName(batch: BatchRef): string {
  return `${createHash('sha256').update(batchKey(batch)).digest('hex').slice(0, 40)}.json`;
}

function fsyncPath(path: string, flags: string): void {
  const fd = openSync(path, flags);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Write `text` to `file` so that after a crash the file holds either its old content or all of
 * `text`: write a temporary file, flush it to the disk, rename it over `file`, flush the folder
 * (the rename itself lives in the folder). Throws when the disk refuses (full, read-only).
 */
export function writeFileDurably(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  syncFolder(dirname(file));
}

/** Move `from` to `to` (same file system) and make the move survive a power cut. */
export function moveDurably(from: string, to: string): void {
  renameSync(from, to);
  syncFolder(dirname(to));
  if (dirname(from) !== dirname(to)) syncFolder(dirname(from));
}

function syncFolder(dir: string): void {
  try {
    fsyncPath(dir, 'r');
  } catch {
    // Some file systems (and Windows) cannot open a folder for fsync; the rename still happened.
  }
}

/** Create `dir` when missing and return it. */
export function ensureFolder(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** `.json` files of `dir` (leftover `.tmp` files of an interrupted write are not listed). */
export function jsonFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort();
}

/** Parsed JSON of `dir/name`, or undefined when it cannot be read or parsed. */
export function readJson(dir: string, name: string): unknown {
  try {
    return JSON.parse(readFileSync(join(dir, name), 'utf8'));
  } catch {
    return undefined;
  }
}
