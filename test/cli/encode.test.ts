import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createEncoder, encodingNames } from '../../core/encodings/index.ts';
import { createRng } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import { esm } from '../support/cli.ts';

describe('esm encode', () => {
  it('encodes bare archs and dataset lines of a file, one vector per line', async () => {
    const space = getSpace('resnet50');
    const rng = createRng(12);
    const subnets = [randomSubnet(space, rng), randomSubnet(space, rng), randomSubnet(space, rng)];
    const dir = await mkdtemp(join(tmpdir(), 'esm-encode-'));
    const file = join(dir, 'archs.jsonl');
    const lines = subnets.map((s, i) =>
      JSON.stringify(i === 1 ? { arch: space.toNative(s), latency_ms: 12 } : space.toNative(s)),
    );
    await writeFile(file, `${lines.join('\n')}\n`);
    const { code, stdout } = await esm(
      'encode',
      '--space',
      'resnet50',
      '--encoding',
      'fcc',
      '--in',
      file,
    );
    expect(code).toBe(0);
    const vectors = stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { vector: number[] }).vector);
    const encoder = createEncoder(space, 'fcc');
    expect(vectors).toEqual(subnets.map((s) => Array.from(encoder.encode(s))));
  });

  it('prints the labels of an encoding', async () => {
    const { code, stdout } = await esm(
      'encode',
      '--space',
      'mobilenetv3',
      '--encoding',
      'onehot',
      '--labels',
    );
    expect(code).toBe(0);
    const out = JSON.parse(stdout) as { encoding: string; length: number; labels: string[] };
    expect(out.encoding).toBe('onehot');
    expect(out.labels).toHaveLength(out.length);
    expect(out.labels[0]).toBe('u0.b0.kernel=3');
  });

  it('names the file, line and field of a bad arch, and rejects an unknown encoding', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'esm-encode-'));
    const file = join(dir, 'bad.jsonl');
    const good = {
      ks: new Array(20).fill(3),
      e: new Array(20).fill(3),
      d: [2, 2, 2, 2, 2],
      r: 224,
    };
    await writeFile(file, `${JSON.stringify(good)}\n${JSON.stringify({ ...good, r: 225 })}\n`);
    const bad = await esm('encode', '--space', 'mobilenetv3', '--in', file);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`${file}:2: r: got 225`);
    const unknown = await esm('encode', '--space', 'mobilenetv3', '--encoding', 'zip', '--labels');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain(`expected one of ${encodingNames.join(', ')}, got "zip"`);
  });
});
