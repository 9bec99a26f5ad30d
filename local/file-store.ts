/**
 * `DatasetStore` (core/ports.ts) in a run directory: the workflow's S3 keys mapped onto the
 * files of a run (local/run-store.ts `runFiles`), so that the Train task writes the dataset,
 * predictor and test predictions where `esm run` has always kept them. The latest-predictor
 * pointer of the cloud has no local counterpart (the run directory keeps only the latest
 * predictor) and is dropped. Any other key is a file path (the dataset a replay run samples
 * from), resolved against the working directory.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { DatasetStore } from '../core/ports.ts';
import { runFiles, writeFileAtomic } from './run-store.ts';

/** The run-directory file of a workflow key, `null` for keys that are not kept locally. */
export function runDirPath(dir: string, key: string): string | null {
  const run = key.match(/^runs\/[^/]+\/(dataset\.jsonl|test-predictions\.json)$/);
  if (run) return join(dir, run[1] === 'dataset.jsonl' ? runFiles.dataset : runFiles.predictions);
  if (key.startsWith('predictors/latest/')) return null;
  const predictor = key.match(/^predictors\/[^/]+\/(predictor\.(?:json|onnx))$/);
  if (predictor) return join(dir, runFiles.predictor, predictor[1] as string);
  return resolve(key);
}

export function createRunDirStore(dir: string): DatasetStore {
  return {
    async get(key) {
      const file = runDirPath(dir, key);
      if (file === null || !existsSync(file)) return undefined;
      return readFileSync(file);
    },
    async put(key, body) {
      const file = runDirPath(dir, key);
      if (file === null) return;
      mkdirSync(dirname(file), { recursive: true });
      writeFileAtomic(file, body);
    },
    async list(prefix) {
      const base = resolve(dir, prefix);
      if (!existsSync(base)) return [];
      return readdirSync(base, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => join(prefix, e.parentPath.slice(base.length), e.name));
    },
  };
}
