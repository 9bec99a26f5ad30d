/**
 * The user's path end to end with the real CLI: `esm fit --out` (the default model, auto)
 * writes predictor-arch.onnx,
 * `esm encode --arch-tensor` prints its rows, and those rows through onnxruntime give what
 * `esm predict` prints.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archRow } from '../../core/onnx/arch-graph-layout.ts';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { createRng } from '../../core/rng.ts';
import { resnet50 } from '../../core/spaces/resnet50.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import { esm } from '../support/cli.ts';

const lines = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

describe('esm encode --arch-tensor and predictor-arch.onnx', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'esm-arch-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints rows that predictor-arch.onnx turns into the latencies esm predict prints', async () => {
    // Prepare: a ResNet50 dataset (fractional expand and width choices: index-coded).
    const rng = createRng(3);
    const subnets = Array.from({ length: 80 }, () => randomSubnet(resnet50, rng));
    const data = join(dir, 'data.jsonl');
    await writeFile(
      data,
      subnets
        .map((s) =>
          JSON.stringify({
            arch: resnet50.toNative(s),
            latency_ms: syntheticLatencyMs(resnet50, s, { noise: 0.01, rng }),
          }),
        )
        .join('\n'),
    );
    const out = join(dir, 'p');
    const fit = await esm('fit', '--space', 'resnet50', '--data', data, '--out', out);
    expect(fit.code, fit.stderr).toBe(0);
    // The default model (auto, physics features stacked) ships its arch-in graph.
    expect(JSON.parse(await readFile(join(out, 'predictor.json'), 'utf8')).model.kind).toBe('auto');
    // Act
    const encoded = await esm('encode', '--space', 'resnet50', '--arch-tensor', '--in', data);
    const predicted = await esm('predict', '--predictor', out, '--in', data);
    // Assess
    expect(encoded.code, encoded.stderr).toBe(0);
    const rows = lines(encoded.stdout).map((l) => l.row as number[]);
    expect(rows).toEqual(subnets.map((s) => archRow(resnet50, s)));
    const session = await ort.InferenceSession.create(
      await readFile(join(out, 'predictor-arch.onnx')),
    );
    const input = new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [
      rows.length,
      rows[0]?.length ?? 0,
    ]);
    const got = (await session.run({ arch: input })).latency_ms?.data as Float32Array;
    await session.release();
    const expected = lines(predicted.stdout).map((l) => l.latency_ms as number);
    expect(expected).toHaveLength(rows.length);
    expected.forEach((e, i) => {
      expect(Math.abs((got[i] as number) - e) / e).toBeLessThanOrEqual(1e-5);
    });
  }, 60_000);

  it('prints the layout with --labels', async () => {
    const r = await esm('encode', '--space', 'mobilenetv3', '--arch-tensor', '--labels');
    expect(r.code, r.stderr).toBe(0);
    const layout = JSON.parse(r.stdout);
    expect(layout.length).toBe(46);
    expect(layout.labels.slice(40)).toEqual([
      'u0.depth',
      'u1.depth',
      'u2.depth',
      'u3.depth',
      'u4.depth',
      'resolution',
    ]);
  });
});
