/**
 * A replay of a dataset smaller than the run would measure: the first batch must fit in it
 * (refused before a run directory exists, naming --n-init), the last extension draws what is
 * left, and the loop then stops as `pool-exhausted` with its predictor, not as a failure.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRng } from '../../core/rng.ts';
import { esmIn } from '../support/cli.ts';
import { jsonl, syntheticLines } from '../support/synthetic-data.ts';

describe('esm run --device dataset:FILE on a small dataset', () => {
  let dir: string;
  let data: string;
  const replay = (...args: string[]) =>
    esmIn(dir, 'run', '--space', 'mobilenetv3', '--device', `dataset:${data}`, ...args);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'esm-pool-exhausted-'));
    data = join(dir, 'pool.jsonl');
    await writeFile(data, jsonl(syntheticLines(70, createRng(43), { noise: 0.05 })));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a first batch larger than the dataset before it starts', async () => {
    const out = join(dir, 'too-big');
    const result = await replay('--n-init', '80', '--out', out);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      `error: --n-init: the first batch of 80 is more than the 70 rows of ${data}; lower it to 70 or fewer`,
    );
    expect(existsSync(out)).toBe(false);
  });

  it('measures the whole dataset, then stops as pool-exhausted with a predictor', async () => {
    const out = join(dir, 'run');
    // 40, then 20, then the 10 left; AccTH 0.9999 is out of reach, max-iter is not the limit.
    const args = ['--model', 'ridge', '--n-init', '40', '--n-step', '20', '--acc-th', '0.9999'];
    const result = await replay(...args, '--max-iter', '10', '--out', out, '--json');
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary).toMatchObject({
      status: 'pool-exhausted',
      converged: false,
      iterations: 3,
      samples: 70,
    });
    expect(summary.history.map((r: { reason: string | null }) => r.reason)).toEqual([
      null,
      null,
      'pool-exhausted',
    ]);
    // Nothing is left undrawn to score the predictor on.
    expect(summary.pool).toBeUndefined();
    const state = JSON.parse(await readFile(join(out, 'state.json'), 'utf8'));
    expect(state.status).toBe('pool-exhausted');
    expect(existsSync(join(out, 'predictor', 'predictor.onnx'))).toBe(true);
    expect(await readFile(join(out, 'report.html'), 'utf8')).toContain(
      'every architecture of the replayed pool measured (3 iterations)',
    );

    // The run directory is not itself a predictor directory; the error names the one inside.
    const predicted = await esmIn(dir, 'predict', '--predictor', out, '--in', data);
    expect(predicted.code).toBe(2);
    expect(predicted.stderr).toContain(
      `${out} is an esm run directory: pass ${join(out, 'predictor')}`,
    );

    // More iterations cannot help: a resume stops the same way, and says why.
    const resumed = await esmIn(dir, 'run', '--resume', out, '--max-iter', '20');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(
      'not converged after 3 iterations: every architecture of the replayed dataset is measured',
    );
  }, 120_000);
});
