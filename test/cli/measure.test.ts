import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { latencyStats } from '../../core/schemas/dataset.ts';
import { deviceFacts } from '../../core/schemas/protocol.ts';
import { esm } from '../support/cli.ts';

const quick = ['--runs', '5', '--warmup', '1', '--json'];

describe('esm measure', () => {
  it('measures the smallest and the largest MobileNetV3 subnet, as JSON', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'esm-measure-'));
    const largest = { ks: Array(20).fill(7), e: Array(20).fill(6), d: [4, 4, 4, 4, 4], r: 224 };
    await writeFile(join(dir, 'large.json'), JSON.stringify(largest));

    const small = await esm('measure', '--space', 'mobilenetv3', '--arch', 'smallest', ...quick);
    const large = await esm(
      'measure',
      '--space',
      'mobilenetv3',
      '--arch',
      `@${join(dir, 'large.json')}`,
      ...quick,
    );

    expect(small.code).toBe(0);
    expect(large.code).toBe(0);
    const s = JSON.parse(small.stdout);
    const l = JSON.parse(large.stdout);
    expect(latencyStats.safeParse(s.stats).success).toBe(true);
    expect(deviceFacts.safeParse(s.device).success).toBe(true);
    expect(l.arch).toEqual(largest);
    expect(s.settings).toMatchObject({ runs: 5, warmup: 1, threads: 1, batchSize: 1 });
    expect(s.overheadMs.session).toBeGreaterThan(0);
    expect(latencyStats.safeParse(l.stats).success).toBe(true);
    expect(l.stats.min_ms).toBeLessThanOrEqual(l.stats.median_ms);
  });

  it('prints a readable summary with the CPU clock', async () => {
    const { code, stdout } = await esm(
      'measure',
      '--space',
      'resnet50',
      '--arch',
      'smallest',
      '--runs',
      '3',
      '--warmup',
      '1',
      '--clock',
      'cpu',
    );
    expect(code).toBe(0);
    expect(stdout).toMatch(/resnet50 at 128x128, batch 1, 1 thread\(s\), cpu, cpu clock/);
    expect(stdout).toMatch(/median \d+\.\d+ ms/);
    expect(stdout).toMatch(/overhead \(not timed\): build \d/);
  });

  it('names the bad field of an invalid arch and exits 2', async () => {
    const { code, stderr } = await esm(
      'measure',
      '--space',
      'mobilenetv3',
      '--arch',
      '{"ks":[3],"e":[],"d":[]}',
    );
    expect(code).toBe(2);
    expect(stderr).toMatch(/^error: ks: /);
  });

  it('rejects the CPU clock with several threads', async () => {
    const { code, stderr } = await esm(
      'measure',
      '--space',
      'mobilenetv3',
      '--arch',
      'smallest',
      '--threads',
      '2',
      '--clock',
      'cpu',
    );
    expect(code).toBe(2);
    expect(stderr).toMatch(/clock: "cpu" needs threads 1/);
  });
});
