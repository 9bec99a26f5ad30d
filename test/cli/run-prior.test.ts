import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRng } from '../../core/rng.ts';
import { esmIn } from '../support/cli.ts';
import { deviceB, jsonl, syntheticLines } from '../support/synthetic-data.ts';

describe('esm run --prior DIR and --sampling active (replayed device)', () => {
  let dir: string;
  let dataB: string;
  let priorDir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'esm-run-prior-'));
    const rng = createRng(31);
    const dataA = join(dir, 'a.jsonl');
    dataB = join(dir, 'b.jsonl');
    await writeFile(dataA, jsonl(syntheticLines(300, rng, { noise: 0.002 })));
    await writeFile(dataB, jsonl(syntheticLines(400, rng, { device: deviceB, noise: 0.002 })));
    priorDir = join(dir, 'prior');
    const fit = await esmIn(
      dir,
      'fit',
      '--space',
      'mobilenetv3',
      '--data',
      dataA,
      '--model',
      'ridge',
      '--out',
      priorDir,
    );
    expect(fit.code).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('starts from the prior with a small first batch and stops once every bin passes', async () => {
    const out = join(dir, 'run-prior');
    const result = await esmIn(
      dir,
      'run',
      '--space',
      'mobilenetv3',
      '--device',
      `dataset:${dataB}`,
      '--prior',
      priorDir,
      '--bins',
      '5',
      '--acc-th',
      '0.98',
      '--n-step',
      '10',
      '--max-iter',
      '6',
      '--out',
      out,
      '--json',
    );
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.converged).toBe(true);
    // The first batch is 20 (the default N_I with a prior), and it was enough here.
    expect(summary.history[0].samples.train + summary.history[0].samples.test).toBe(20);
    expect(summary.samples).toBeLessThanOrEqual(40);
    const predictor = JSON.parse(await readFile(join(summary.predictor, 'predictor.json'), 'utf8'));
    expect(predictor.model.kind).toBe('transfer');
    expect(predictor.model.prior.kind).toBe('ridge');
  }, 180_000);

  it('plans extensions by uncertainty with --sampling active, and refuses --model with --prior', async () => {
    const out = join(dir, 'run-active');
    const result = await esmIn(
      dir,
      'run',
      '--space',
      'mobilenetv3',
      '--device',
      `dataset:${dataB}`,
      '--sampling',
      'active',
      '--model',
      'ridge',
      '--bins',
      '5',
      '--acc-th',
      '0.999',
      '--n-init',
      '30',
      '--n-step',
      '20',
      '--max-iter',
      '2',
      '--out',
      out,
      '--json',
    );
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.iterations).toBe(2);
    expect(summary.samples).toBe(50);
    const both = await esmIn(
      dir,
      'run',
      '--space',
      'mobilenetv3',
      '--device',
      `dataset:${dataB}`,
      '--prior',
      priorDir,
      '--model',
      'mlp',
    );
    expect(both.code).not.toBe(0);
    expect(both.stderr).toMatch(/--model.*cannot be combined with --prior/);
  }, 180_000);

  it('refuses a prior of another space before the run directory exists', async () => {
    const out = join(dir, 'other-space');
    const result = await esmIn(dir, 'run', '--space', 'fbnet', '--prior', priorDir, '--out', out);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      'error: --prior: the prior predicts space "mobilenetv3", the data is "fbnet"',
    );
    expect(existsSync(out)).toBe(false);
  });
});
