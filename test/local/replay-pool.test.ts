/**
 * The pool a replay run samples from (lambdas/workflow/run-context.ts `loadPool`, used by the
 * local loop and the cloud's Init and Extend tasks alike): `dropBelow` leaves the rows whose
 * metric is under it out, keeps rows without a value of the metric, and is refused where it
 * would leave fewer than two rows or where there is no pool to filter.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRng } from '../../core/rng.ts';
import { runParams } from '../../core/schemas/run.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { subnetKey } from '../../core/spaces/subnet.ts';
import { loadPool } from '../../lambdas/workflow/run-context.ts';
import { createRunDirStore } from '../../local/file-store.ts';
import { jsonl, syntheticLines } from '../support/synthetic-data.ts';

const dir = mkdtempSync(join(tmpdir(), 'esm-replay-pool-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const lines = syntheticLines(60, createRng(3), { noise: 0.01 });
const file = join(dir, 'replay.jsonl');
writeFileSync(file, jsonl(lines));
const store = createRunDirStore(join(dir, 'run'));
const paramsOf = (extra: Record<string, unknown>) =>
  runParams.parse({ space: 'mobilenetv3', device: `dataset:${file}`, ...extra });
const keyOf = (arch: unknown) => subnetKey(mobilenetv3.parse(arch));
const keysOf = (entries: readonly { key: string }[] | undefined) =>
  new Set((entries ?? []).map((e) => e.key));

describe('loadPool with dropBelow', () => {
  it('leaves out exactly the rows under the floor', async () => {
    // Prepare: a floor between the smallest and largest latencies.
    const sorted = lines.map((l) => l.latency_ms).sort((a, b) => a - b);
    const floor = sorted[20] as number;
    const expected = new Set(lines.filter((l) => l.latency_ms >= floor).map((l) => keyOf(l.arch)));
    // Act
    const all = await loadPool(store, paramsOf({}), mobilenetv3);
    const kept = await loadPool(store, paramsOf({ dropBelow: floor }), mobilenetv3);
    // Assess
    expect(all?.length).toBe(lines.length);
    expect(kept?.length).toBe(expected.size);
    expect(expected.size).toBeLessThan(lines.length);
    expect(keysOf(kept)).toEqual(expected);
  });

  it("reads the run's metric, and keeps rows without a value of it", async () => {
    // Prepare: peak memory falls as latency rises, so a mix-up of the two shows.
    const withMemory = lines.map((l, i) =>
      i % 10 === 0 ? l : { ...l, peak_memory_mb: 1000 / l.latency_ms },
    );
    const memoryFile = join(dir, 'memory.jsonl');
    writeFileSync(memoryFile, jsonl(withMemory));
    const floor = [...withMemory.map((l) => ('peak_memory_mb' in l ? l.peak_memory_mb : 0))].sort(
      (a, b) => a - b,
    )[30] as number;
    const expected = new Set(
      withMemory
        .filter((l) => !('peak_memory_mb' in l) || l.peak_memory_mb >= floor)
        .map((l) => keyOf(l.arch)),
    );
    const params = runParams.parse({
      space: 'mobilenetv3',
      device: `dataset:${memoryFile}`,
      metric: 'peak_memory_mb',
      dropBelow: floor,
    });
    // Act
    const kept = await loadPool(store, params, mobilenetv3);
    // Assess
    expect(keysOf(kept)).toEqual(expected);
    for (const line of withMemory.filter((l) => !('peak_memory_mb' in l))) {
      expect(keysOf(kept).has(keyOf(line.arch))).toBe(true);
    }
  });

  it('refuses a floor that leaves fewer than two rows, naming the field', async () => {
    const top = Math.max(...lines.map((l) => l.latency_ms));
    await expect(loadPool(store, paramsOf({ dropBelow: top + 1 }), mobilenetv3)).rejects.toThrow(
      /dropBelow: leaves 0 rows of .*replay\.jsonl; lower it/,
    );
  });

  it('refuses a floor without a pool to leave rows out of', async () => {
    const params = runParams.parse({ space: 'mobilenetv3', device: 'local', dropBelow: 1 });
    await expect(loadPool(store, params, mobilenetv3)).rejects.toThrow(
      /dropBelow: leaves rows out of a replay pool; give it with a pool/,
    );
  });
});
