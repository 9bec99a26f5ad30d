/**
 * `esm run --device dataset:FILE --metric NAME`: the replay device answers the metric from
 * the dataset's lines, so a metric run can be replayed like a latency run; a line without
 * the metric fails the run with the reason instead of training on nothing.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRng } from '../../core/rng.ts';
import { esm } from '../support/cli.ts';
import { jsonl, syntheticLines } from '../support/synthetic-data.ts';

const dir = mkdtempSync(join(tmpdir(), 'esm-replay-metric-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Memory that grows with the latency but is not it, so a mix-up shows.
const lines = syntheticLines(300, createRng(7), { noise: 0.002 }).map((l) => ({
  ...l,
  peak_memory_mb: 60 + 4 * l.latency_ms,
}));
const memoryOf = new Map(lines.map((l) => [JSON.stringify(l.arch), l.peak_memory_mb]));

describe('esm run --device dataset:FILE --metric peak_memory_mb', () => {
  it('replays the metric from the dataset and converges on it', async () => {
    const data = join(dir, 'with-memory.jsonl');
    writeFileSync(data, jsonl(lines));
    const out = join(dir, 'run');
    const run = await esm(
      'run',
      ...['--space', 'mobilenetv3', '--device', `dataset:${data}`],
      ...['--metric', 'peak_memory_mb', '--model', 'ridge', '--out', out, '--json'],
    );
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).converged).toBe(true);
    const measured = readFileSync(join(out, 'dataset.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(measured.length).toBeGreaterThan(0);
    for (const line of measured) {
      expect(line.peak_memory_mb).toBe(memoryOf.get(JSON.stringify(line.arch)));
      expect(line.peak_memory_mb).not.toBe(line.latency_ms);
    }
  }, 300_000);

  it('fails with the reason when the dataset lacks the metric', async () => {
    const data = join(dir, 'latency-only.jsonl');
    writeFileSync(data, jsonl(lines.map(({ arch, latency_ms }) => ({ arch, latency_ms }))));
    const run = await esm(
      'run',
      ...['--space', 'mobilenetv3', '--device', `dataset:${data}`],
      ...['--metric', 'peak_memory_mb', '--out', join(dir, 'no-memory')],
    );
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(
      /could not measure peak_memory_mb: the replayed dataset .* has no peak_memory_mb/,
    );
  }, 300_000);
});
