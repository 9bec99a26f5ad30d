/**
 * `esm fit --metric NAME` trains on another measured field of the dataset lines, leaves out
 * lines where it is null (not measurable on that device), refuses bad values naming the
 * line, and `esm predict` prints the field the predictor was trained on.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRng } from '../../core/rng.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { depth, randomSubnet } from '../../core/spaces/subnet.ts';
import { esm } from '../support/cli.ts';

describe('esm fit --metric', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'esm-metric-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('trains on peak_memory_mb, skipping null lines, and esm predict prints that field', async () => {
    // Prepare: memory grows with depth and resolution; latency is unrelated noise.
    const rng = createRng(5);
    const lines = Array.from({ length: 120 }, (_, i) => {
      const s = randomSubnet(mobilenetv3, rng);
      const memory = 20 + 2 * depth(s) + (s.resolution / 224) ** 2 * 30;
      return JSON.stringify({
        arch: mobilenetv3.toNative(s),
        latency_ms: 1 + rng.next(),
        peak_memory_mb: i % 10 === 0 ? null : memory,
        ...(i % 10 === 0 ? { metric_notes: { peak_memory_mb: 'probe failed' } } : {}),
      });
    });
    const data = join(dir, 'm.jsonl');
    await writeFile(data, `${lines.join('\n')}\n`);
    const out = join(dir, 'p');
    // Act
    const fit = await esm(
      'fit',
      '--space',
      'mobilenetv3',
      '--data',
      data,
      '--model',
      'ridge',
      '--metric',
      'peak_memory_mb',
      '--out',
      out,
    );
    const predicted = await esm('predict', '--predictor', out, '--in', data);
    // Assess
    expect(fit.code, fit.stderr).toBe(0);
    expect(fit.stdout).toMatch(
      /trained ridge \(peak_memory_mb\) on 86 rows .*12 lines without peak_memory_mb left out/,
    );
    const accuracy = Number(/accuracy ([\d.]+) %/.exec(fit.stdout)?.[1]);
    // Latency is noise here: a predictor of it would score far lower on memory.
    expect(accuracy).toBeGreaterThan(95);
    const json = JSON.parse(await readFile(join(out, 'predictor.json'), 'utf8'));
    expect(json.metric).toBe('peak_memory_mb');
    const first = JSON.parse(predicted.stdout.split('\n')[1] ?? '{}');
    // esm predict echoes the arch and prints the field the predictor was trained on.
    expect(Object.keys(first)).toEqual(expect.arrayContaining(['arch', 'peak_memory_mb']));
    expect(Object.keys(first)).not.toContain('latency_ms');
    expect(first.peak_memory_mb).toBeCloseTo(JSON.parse(lines[1] ?? '{}').peak_memory_mb, 0);
  }, 60_000);

  it('refuses a metric no line has, and a bad value, naming the file, line and field', async () => {
    const s = mobilenetv3.toNative(randomSubnet(mobilenetv3, createRng(1)));
    const noneFile = join(dir, 'none.jsonl');
    await writeFile(
      noneFile,
      `${JSON.stringify({ arch: s, latency_ms: 2, energy_mj: null, metric_notes: { energy_mj: 'no energy counter' } })}\n${JSON.stringify({ arch: { ...s, r: 160 }, latency_ms: 3 })}\n`,
    );
    const data = join(dir, 'bad.jsonl');
    await writeFile(
      data,
      `${JSON.stringify({ arch: s, latency_ms: 2, peak_memory_mb: 30 })}\n${JSON.stringify({ arch: { ...s, r: 160 }, latency_ms: 2, peak_memory_mb: -1 })}\n`,
    );
    const none = await esm(
      'fit',
      '--space',
      'mobilenetv3',
      '--data',
      noneFile,
      '--metric',
      'energy_mj',
    );
    const bad = await esm(
      'fit',
      '--space',
      'mobilenetv3',
      '--data',
      data,
      '--metric',
      'peak_memory_mb',
    );
    const name = await esm('fit', '--space', 'mobilenetv3', '--data', data, '--metric', 'Peak-MB');
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(
      /--metric: no line of .* has a value for energy_mj \(the lines say: no energy counter\)/,
    );
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/bad\.jsonl:2: field peak_memory_mb: .*>=0/);
    expect(name.code).not.toBe(0);
    expect(name.stderr).toMatch(/--metric: "Peak-MB" is not a dataset field name/);
  }, 60_000);
});
