import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRng } from '../../core/rng.ts';
import { esm } from '../support/cli.ts';
import { deviceB, jsonl, type SyntheticLine, syntheticLines } from '../support/synthetic-data.ts';

describe('esm fit --prior DIR', () => {
  let dir: string;
  let dataA: string;
  let dataB: string;
  let linesB: SyntheticLine[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'esm-fit-prior-'));
    const rng = createRng(21);
    linesB = syntheticLines(220, rng, { device: deviceB, noise: 0.002 });
    dataA = join(dir, 'a.jsonl');
    dataB = join(dir, 'b.jsonl');
    await writeFile(dataA, jsonl(syntheticLines(400, rng, { noise: 0.002 })));
    await writeFile(dataB, jsonl(linesB));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('corrects a prior of device A with 20 rows of device B into one predictor directory', async () => {
    const priorDir = join(dir, 'prior');
    const prior = await esm(
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
    expect(prior.code).toBe(0);

    const out = join(dir, 'b');
    const fit = await esm(
      'fit',
      '--space',
      'mobilenetv3',
      '--data',
      dataB,
      '--prior',
      priorDir,
      '--train',
      '20',
      '--out',
      out,
      '--json',
    );
    expect(fit.stderr).toBe('');
    expect(fit.code).toBe(0);
    const result = JSON.parse(fit.stdout);
    expect(Object.keys(result).sort()).toEqual(['bins', 'model', 'prior', 'test', 'train']);
    expect(result.train.n).toBe(20);
    expect(result.test.n).toBe(200);
    expect(result.test.accuracy).toBeGreaterThan(0.99);
    expect(result.prior.dir).toBe(priorDir);
    expect(['log', 'ms']).toContain(result.prior.correction.space);

    const stored = JSON.parse(await readFile(join(out, 'predictor.json'), 'utf8'));
    expect(stored.model.kind).toBe('transfer');
    expect(stored.model.prior.kind).toBe('ridge');
    expect(stored.model.prior_source.n_train).toBe(320);

    // esm predict runs the composed ONNX graph: same accuracy on device B's archs.
    const input = join(dir, 'archs.jsonl');
    await writeFile(input, `${linesB.map((l) => JSON.stringify(l.arch)).join('\n')}\n`);
    const predicted = await esm('predict', '--predictor', out, '--in', input);
    expect(predicted.code).toBe(0);
    const values = predicted.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).latency_ms as number);
    const accuracy =
      values.reduce(
        (s, v, i) =>
          s +
          1 -
          Math.abs(v - (linesB[i]?.latency_ms as number)) / (linesB[i]?.latency_ms as number),
        0,
      ) / values.length;
    expect(accuracy).toBeGreaterThan(0.99);

    // The human-readable report says what was corrected and how.
    const text = await esm(
      'fit',
      '--space',
      'mobilenetv3',
      '--data',
      dataB,
      '--prior',
      priorDir,
      '--train',
      '20',
    );
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/corrected the prior .* with 20 rows of .*(log-)?affine, slope \d/);
  }, 180_000);

  it('refuses --model with --prior and a missing prior directory, naming the flag', async () => {
    const withModel = await esm(
      'fit',
      '--space',
      'mobilenetv3',
      '--data',
      dataB,
      '--prior',
      dir,
      '--model',
      'mlp',
    );
    expect(withModel.code).not.toBe(0);
    expect(withModel.stderr).toMatch(/--model.*cannot be combined with --prior/);
    const missing = await esm(
      'fit',
      '--space',
      'mobilenetv3',
      '--data',
      dataB,
      '--prior',
      join(dir, 'nope'),
    );
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/cannot read .*nope.*predictor\.json/);
  }, 60_000);
});
