/**
 * `esm run --bin-accuracy oof` end to end on a replayed dataset: the summary records what each
 * bin was judged on (`decided`: its test samples plus auto's out-of-fold predictions of its
 * training samples), the progress line and report.html show that judged accuracy, and a bad
 * rule is refused naming the flag.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRng } from '../../core/rng.ts';
import { esmIn } from '../support/cli.ts';
import { jsonl, syntheticLines } from '../support/synthetic-data.ts';

describe('esm run --bin-accuracy (replayed device)', () => {
  let dir: string;
  let data: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'esm-run-bin-accuracy-'));
    data = join(dir, 'data.jsonl');
    await writeFile(data, jsonl(syntheticLines(300, createRng(41), { noise: 0.01 })));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  /** `esm run` on the replayed dataset. */
  const replay = (...args: string[]) =>
    esmIn(dir, 'run', '--space', 'mobilenetv3', '--device', `dataset:${data}`, ...args);

  it('judges every bin on its test and out-of-fold training samples, and says so', async () => {
    const result = await replay(
      '--bin-accuracy',
      'oof',
      '--bins',
      '3',
      '--acc-th',
      '0.9999',
      '--n-init',
      '30',
      '--n-step',
      '10',
      '--max-iter',
      '1',
      '--out',
      join(dir, 'run'),
    );
    expect(result.code, result.stderr).toBe(0);
    // The run directory's iteration record (what --json's history holds).
    const record = JSON.parse(
      (await readFile(join(dir, 'run', 'iterations.jsonl'), 'utf8')).split('\n')[0] as string,
    );
    const bins = record.bins as {
      train: number;
      test: number;
      decided?: { n: number; accuracy: number | null };
    }[];
    expect(bins).toHaveLength(3);
    for (const bin of bins) {
      // Out-of-fold predictions of the training samples count too: more than the test share.
      expect(bin.decided?.n).toBeGreaterThan(bin.test);
      expect(bin.decided?.n).toBeLessThanOrEqual(bin.train + bin.test);
    }
    expect(result.stderr).toMatch(/per depth bin \(test \+ out-of-fold\) /);
    // The report shows, under each bin's test accuracy, what the decision judged it on.
    const report = await readFile(join(dir, 'run', 'report.html'), 'utf8');
    for (const bin of bins) expect(report).toContain(`on ${bin.decided?.n}</span>`);
  }, 180_000);

  it('refuses an unknown rule, naming the flag', async () => {
    const result = await replay('--bin-accuracy', 'holdout');
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/--bin-accuracy/);
  }, 60_000);
});
