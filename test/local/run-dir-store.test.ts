import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keys } from '../../lambdas/workflow/run-context.ts';
import { runDirPath } from '../../local/file-store.ts';
import { runFiles } from '../../local/run-store.ts';

describe('runDirPath', () => {
  it('keeps every predictor file of the Train task inside the run directory', () => {
    const dir = '/tmp/some-run';
    const id = 'run-1-i0';
    for (const key of [
      keys.predictorJson(id),
      keys.predictorOnnx(id),
      keys.predictorArchOnnx(id),
      keys.predictorArchJson(id),
    ]) {
      const file = runDirPath(dir, key);
      expect(file?.startsWith(join(dir, runFiles.predictor))).toBe(true);
    }
    expect(runDirPath(dir, keys.latest('mobilenetv3', 'local'))).toBeNull();
    expect(runDirPath(dir, 'data/x.jsonl')).toBe(resolve('data/x.jsonl'));
  });
});
