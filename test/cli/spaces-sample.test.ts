import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { binOf, depthBins } from '../../core/sampling.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { depth } from '../../core/spaces/subnet.ts';

const run = promisify(execFile);

async function esm(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('node', ['bin/esm.js', ...args], { cwd: process.cwd() });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('esm sample', () => {
  it('prints N distinct valid native archs, balanced over the depth bins', async () => {
    const { code, stdout } = await esm(
      'sample',
      '--space',
      'densenet',
      '--n',
      '40',
      '--sampling',
      'balanced',
      '--bins',
      '4',
      '--seed',
      '3',
    );
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(40);
    expect(new Set(lines).size).toBe(40);
    const space = getSpace('densenet');
    const bins = depthBins(space, 4);
    const counts = [0, 0, 0, 0];
    for (const line of lines) {
      const b = binOf(bins, depth(space.parse(JSON.parse(line))));
      counts[b] = (counts[b] ?? 0) + 1;
    }
    expect(counts).toEqual([10, 10, 10, 10]);
  });

  it('is reproducible with the default seed and differs with another', async () => {
    const a = await esm('sample', '--space', 'resnet50', '--n', '5');
    const b = await esm('sample', '--space', 'resnet50', '--n', '5', '--seed', '0');
    const c = await esm('sample', '--space', 'resnet50', '--n', '5', '--seed', '1');
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout).not.toBe(c.stdout);
  });

  it('never repeats archs of the --exclude file (dataset lines or bare archs)', async () => {
    const first = await esm('sample', '--space', 'resnet50', '--n', '5', '--seed', '4');
    const archs = first.stdout.trim().split('\n');
    const dir = await mkdtemp(join(tmpdir(), 'esm-exclude-'));
    const file = join(dir, 'measured.jsonl');
    // Two as dataset lines, three bare: both forms are excluded.
    const lines = archs.map((a, i) => (i < 2 ? `{"arch":${a},"latency_ms":${i + 1}}` : a));
    await writeFile(file, `${lines.join('\n')}\n`);
    const again = await esm(
      'sample',
      '--space',
      'resnet50',
      '--n',
      '5',
      '--seed',
      '4',
      '--exclude',
      file,
    );
    expect(again.code).toBe(0);
    const fresh = again.stdout.trim().split('\n');
    expect(fresh).toHaveLength(5);
    for (const a of fresh) expect(archs).not.toContain(a);
    await writeFile(file, '{"arch":{"d":[1]},"latency_ms":2}\n');
    const bad = await esm('sample', '--space', 'resnet50', '--n', '1', '--exclude', file);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('measured.jsonl:1: d: expected an array of 5 numbers');
  });

  it('rejects bad flags and unknown spaces with a clear message', async () => {
    const bad = await esm('sample', '--space', 'mobilenetv3', '--n', '5', '--sampling', 'uniform');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--sampling.*expected one of random, balanced, got "uniform"/);
    const zero = await esm('sample', '--space', 'mobilenetv3', '--n', '0');
    expect(zero.stderr).toMatch(/--n.*expected an integer in 1\.\./);
    const unknown = await esm('sample', '--space', 'vgg', '--n', '1');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/space: unknown space "vgg"; use one of mobilenetv3, resnet50/);
  });
});

describe('esm sample --from (replay a dataset)', () => {
  it('picks distinct dataset lines as written, balanced over the bins', async () => {
    const space = getSpace('mobilenetv3');
    const drawn = await esm('sample', '--space', 'mobilenetv3', '--n', '60', '--seed', '9');
    const dir = await mkdtemp(join(tmpdir(), 'esm-pool-'));
    const file = join(dir, 'dataset.jsonl');
    const pool = drawn.stdout
      .trim()
      .split('\n')
      .map((a, i) => `{"arch":${a},"latency_ms":${10 + i}}`);
    await writeFile(file, `${pool.join('\n')}\n`);
    const args = [
      '--space',
      'mobilenetv3',
      '--from',
      file,
      '--sampling',
      'balanced',
      '--bins',
      '2',
    ];
    const picked = await esm('sample', ...args, '--n', '10');
    expect(picked.code).toBe(0);
    const lines = picked.stdout.trim().split('\n');
    expect(new Set(lines).size).toBe(10);
    for (const l of lines) expect(pool).toContain(l);
    const bins = depthBins(space, 2);
    const counts = [0, 0];
    for (const l of lines) {
      const b = binOf(bins, depth(space.parse(JSON.parse(l).arch)));
      counts[b] = (counts[b] ?? 0) + 1;
    }
    expect(counts).toEqual([5, 5]);
    const tooMany = await esm('sample', ...args, '--n', '61');
    expect(tooMany.code).toBe(2);
    expect(tooMany.stderr).toContain('n: the pool has 60 unused architectures, fewer than the 61');
  });
});

describe('esm spaces and spec files', () => {
  it('lists the built-in spaces with exact cardinalities', async () => {
    const { code, stdout } = await esm('spaces', '--json');
    expect(code).toBe(0);
    const spaces = JSON.parse(stdout) as {
      name: string;
      cardinality: string;
      depth: object;
      globalChoices: Record<string, number[]>;
    }[];
    const byName = new Map(spaces.map((s) => [s.name, s]));
    expect(byName.get('mobilenetv3')?.cardinality).toBe((7371n ** 5n * 25n).toString());
    expect(byName.get('resnet50')?.depth).toEqual({ min: 10, max: 18 });
    expect(byName.get('densenet')?.depth).toEqual({ min: 8, max: 34 });
    expect(byName.get('resnet50')?.globalChoices).toEqual({
      stemSkip: [0, 1],
      stemMid: [24, 32],
      stemOut: [40, 48, 64],
    });
  });

  it('samples from the example spec file and reports spec errors by field', async () => {
    const ok = await esm('sample', '--space', 'examples/spaces/tiny-mbconv.json', '--n', '3');
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim().split('\n')).toHaveLength(3);
    const dir = await mkdtemp(join(tmpdir(), 'esm-spec-'));
    const file = join(dir, 'bad.json');
    await writeFile(
      file,
      JSON.stringify({
        name: 'bad',
        resolutions: [224],
        units: [{ minDepth: 3, maxDepth: 2, width: 16, stride: 1, block: 'conv' }],
      }),
    );
    const bad = await esm('spaces', '--space', file);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/units\[0\]\.maxDepth/);
  });
});
