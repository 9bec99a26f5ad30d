/**
 * A replay scores its final predictor on the rows of the dataset it did not draw
 * (core/pool-truth.ts, in the workflow's Train task): `esm run --json` gives them as `pool`,
 * the last line of iterations.jsonl keeps them, report.html shows them, and a bin the loop
 * passed that is under AccTH on the rest is named in a warning.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRng } from '../../core/rng.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { subnetKey } from '../../core/spaces/subnet.ts';
import { esmIn } from '../support/cli.ts';
import { jsonl, type SyntheticLine, syntheticLines } from '../support/synthetic-data.ts';

const keyOf = (arch: unknown) => subnetKey(mobilenetv3.parse(arch));

describe('esm run --device dataset:FILE scores its predictor on the rest of the pool', () => {
  let dir: string;
  let data: string;
  let out: string;
  let lines: SyntheticLine[];
  let summary: {
    samples: number;
    pool: {
      n: number;
      accuracy: number;
      bins: { lo: number; hi: number; n: number; accuracy: number | null; passedByRun: boolean }[];
    };
  };

  /** The pool lines the run did not draw: those not in its dataset.jsonl. */
  async function undrawn(): Promise<SyntheticLine[]> {
    const drawn = (await readFile(join(out, 'dataset.jsonl'), 'utf8'))
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => keyOf(JSON.parse(l).arch));
    const taken = new Set(drawn);
    return lines.filter((l) => !taken.has(keyOf(l.arch)));
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'esm-pool-truth-'));
    lines = syntheticLines(300, createRng(41), { noise: 0.002 });
    data = join(dir, 'pool.jsonl');
    await writeFile(data, jsonl(lines));
    out = join(dir, 'run');
    const result = await esmIn(
      dir,
      'run',
      '--space',
      'mobilenetv3',
      '--device',
      `dataset:${data}`,
      '--model',
      'ridge',
      '--n-init',
      '40',
      '--acc-th',
      '0.5',
      '--max-iter',
      '1',
      '--out',
      out,
      '--json',
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    summary = JSON.parse(result.stdout);
  }, 120_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('gives the accuracy that esm predict reproduces on the undrawn rows', async () => {
    // Prepare: the rows the run did not draw, predicted by the saved predictor via esm predict.
    const rest = await undrawn();
    const restFile = join(dir, 'rest.jsonl');
    await writeFile(restFile, jsonl(rest));
    // Act
    const predicted = await esmIn(
      dir,
      'predict',
      '--predictor',
      join(out, 'predictor'),
      '--in',
      restFile,
    );
    // Assess
    expect(predicted.code).toBe(0);
    const latencies = predicted.stdout
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l).latency_ms as number);
    expect(latencies).toHaveLength(rest.length);
    const accuracy =
      rest.reduce((sum, l, i) => {
        const p = latencies[i] as number;
        return sum + 1 - Math.abs(p - l.latency_ms) / l.latency_ms;
      }, 0) / rest.length;
    expect(summary.pool.n).toBe(lines.length - summary.samples);
    expect(rest).toHaveLength(summary.pool.n);
    expect(summary.pool.bins.reduce((n, b) => n + b.n, 0)).toBe(summary.pool.n);
    // esm predict prints 7 significant digits.
    expect(summary.pool.accuracy).toBeCloseTo(accuracy, 5);
    expect(summary.pool.bins.every((b) => b.passedByRun)).toBe(true);
  });

  it('keeps it in the last iteration record and shows it in report.html', async () => {
    const records = (await readFile(join(out, 'iterations.jsonl'), 'utf8'))
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l));
    expect(records.at(-1).poolTruth).toEqual(summary.pool);
    const html = await readFile(join(out, 'report.html'), 'utf8');
    expect(html).toContain('On the rest of the pool');
    expect(html).toContain(`on the ${summary.pool.n} rows of the replayed dataset`);
  });

  it('names the bins that passed on their test samples but not on the rest', async () => {
    // Prepare: the undrawn rows become three times slower, so the predictor is ~33 % accurate
    // on them while every bin passed AccTH 0.5 on its test samples.
    const rest = new Set((await undrawn()).map((l) => keyOf(l.arch)));
    const slower = lines.map((l) =>
      rest.has(keyOf(l.arch)) ? { ...l, latency_ms: 3 * l.latency_ms } : l,
    );
    await writeFile(data, jsonl(slower));
    // Act: a resume with another --acc-th measures nothing, trains the last iteration again
    // and scores it on the pool as the file is now.
    const result = await esmIn(dir, 'run', '--resume', out, '--acc-th', '0.51');
    // Assess
    expect(result.code).toBe(0);
    const output = result.stdout + result.stderr;
    expect(output).toMatch(
      new RegExp(
        `on the ${summary.pool.n} rows of the pool this run did not draw: accuracy (3\\d)\\.\\d%`,
      ),
    );
    const bins = summary.pool.bins.map((b) => (b.lo === b.hi ? `${b.lo}` : `${b.lo}-${b.hi}`));
    expect(output).toContain(
      `warning: bins ${bins.join(', ')} passed --acc-th 51.0% on their test samples but not on the rest of the pool`,
    );
    const last = (await readFile(join(out, 'iterations.jsonl'), 'utf8')).trim().split('\n').at(-1);
    expect(JSON.parse(last as string).poolTruth.accuracy).toBeLessThan(0.5);
    const html = await readFile(join(out, 'report.html'), 'utf8');
    expect(html).toContain('passed by the loop, under AccTH here');
  }, 60_000);

  it('names a damaged iterations.jsonl line instead of a stack trace', async () => {
    // Prepare: a copy of the run whose iteration record was overwritten with garbage.
    const copy = join(dir, 'damaged');
    await cp(out, copy, { recursive: true });
    const file = join(copy, 'iterations.jsonl');
    await writeFile(file, '{"iteration":0,"samples":\n');
    // Act
    const report = await esmIn(dir, 'report', copy);
    // Assess
    expect(report.code).toBe(2);
    expect(report.stderr).toContain(`error: ${file}:1: is not valid JSON (a damaged file)`);
    expect(report.stderr).not.toContain('    at ');
  });
});
