import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRng } from '../../core/rng.ts';
import { binOf, depthBins, sampleArchitectures } from '../../core/sampling.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { depth, subnetKey } from '../../core/spaces/subnet.ts';
import { esm } from '../support/cli.ts';

// Each spawn pays the CLI's start-up (seconds on a loaded machine): independent ones run
// together, and inputs are made in-process with the same seeded core functions.
/**
 * What `esm sample --space S --n N --seed K` prints, computed in-process: balanced over 5 depth
 * bins, the defaults of `esm run`.
 */
function expectedSample(space: string, n: number, seed: number): string[] {
  const s = getSpace(space);
  const options = { n, strategy: 'balanced' as const, bins: depthBins(s, 5), rng: createRng(seed) };
  return sampleArchitectures(s, options).map((x) => JSON.stringify(s.toNative(x)));
}

async function tempFile(name: string, lines: readonly string[]): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'esm-sample-')), name);
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

describe('esm sample', () => {
  it('prints N distinct valid native archs, balanced over the depth bins', async () => {
    const args = ['--space', 'densenet', '--n', '40', '--sampling', 'balanced', '--bins', '4'];
    const { code, stdout } = await esm('sample', ...args, '--seed', '3');
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

  it('--format ofa-encoder writes OFA`s "image_size" form, the same archs as native', async () => {
    const args = ['sample', '--space', 'mobilenetv3', '--n', '4', '--seed', '2'];
    const [native, ofa, bad] = await Promise.all([
      esm(...args),
      esm(...args, '--format', 'ofa-encoder'),
      esm(...args, '--format', 'keras'),
    ]);
    expect(ofa.code).toBe(0);
    const space = getSpace('mobilenetv3');
    const ofaLines = ofa.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(ofaLines.every((a) => typeof a.image_size === 'number' && a.r === undefined)).toBe(true);
    expect(ofaLines.map((a) => subnetKey(space.parse(a)))).toEqual(
      native.stdout
        .trim()
        .split('\n')
        .map((l) => subnetKey(space.parse(JSON.parse(l)))),
    );
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(
      /--format: .*no arch form "keras"; use native, ofa-encoder, ofa-manager/,
    );
  });

  it('defaults to seed 0 and the sampling of esm run (balanced, 5 bins), as the seeded core samples', async () => {
    const { stdout } = await esm('sample', '--space', 'resnet50', '--n', '5');
    expect(stdout.trim().split('\n')).toEqual(expectedSample('resnet50', 5, 0));
  });

  it('never repeats archs of the --exclude file (dataset lines or bare archs)', async () => {
    const archs = expectedSample('resnet50', 5, 4);
    // Two as dataset lines, three bare: both forms are excluded.
    const file = await tempFile(
      'measured.jsonl',
      archs.map((a, i) => (i < 2 ? `{"arch":${a},"latency_ms":${i + 1}}` : a)),
    );
    const badFile = await tempFile('bad.jsonl', ['{"arch":{"d":[1]},"latency_ms":2}']);
    const [again, bad] = await Promise.all([
      esm('sample', '--space', 'resnet50', '--n', '5', '--seed', '4', '--exclude', file),
      esm('sample', '--space', 'resnet50', '--n', '1', '--exclude', badFile),
    ]);
    expect(again.code).toBe(0);
    const fresh = again.stdout.trim().split('\n');
    expect(fresh).toHaveLength(5);
    for (const a of fresh) expect(archs).not.toContain(a);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('bad.jsonl:1: d: expected an array of 5 numbers');
  });

  it('rejects bad flags and unknown spaces with a clear message', async () => {
    const [bad, unknown] = await Promise.all([
      esm('sample', '--space', 'mobilenetv3', '--n', '5', '--sampling', 'uniform'),
      esm('sample', '--space', 'vgg', '--n', '1'),
    ]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--sampling.*expected one of random, balanced, got "uniform"/);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/space: unknown space "vgg"; use one of mobilenetv3, resnet50/);
  });

  it('--from picks distinct dataset lines as written, balanced over the bins', async () => {
    const space = getSpace('mobilenetv3');
    const pool = expectedSample('mobilenetv3', 60, 9).map(
      (a, i) => `{"arch":${a},"latency_ms":${10 + i}}`,
    );
    const file = await tempFile('dataset.jsonl', pool);
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
    const [picked, tooMany] = await Promise.all([
      esm('sample', ...args, '--n', '10'),
      esm('sample', ...args, '--n', '61'),
    ]);
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
    expect(tooMany.code).toBe(2);
    expect(tooMany.stderr).toContain(
      `error: --n: 61 is more than the 60 distinct architectures of ${file}; give at most 60`,
    );
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
    const file = await tempFile('bad.json', [
      JSON.stringify({
        name: 'bad',
        resolutions: [224],
        units: [{ minDepth: 3, maxDepth: 2, width: 16, stride: 1, block: 'conv' }],
      }),
    ]);
    const [ok, bad] = await Promise.all([
      esm('sample', '--space', 'examples/spaces/tiny-mbconv.json', '--n', '3'),
      esm('spaces', '--space', file),
    ]);
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim().split('\n')).toHaveLength(3);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/units\[0\]\.maxDepth: must be at least minDepth \(3\), got 2/);
  });
});
