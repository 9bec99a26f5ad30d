import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRng } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { depth, randomSubnet } from '../../core/spaces/subnet.ts';
import { esm } from '../support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'esm-domain-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('esm predict outside the training domain', () => {
  it('warns about archs at a resolution the predictor never saw, and not about the others', async () => {
    // Prepare: a predictor trained at resolution 128 only.
    const space = getSpace('mobilenetv3');
    const rng = createRng(3);
    const archs = Array.from({ length: 40 }, () => {
      const native = space.toNative(randomSubnet(space, rng)) as Record<string, unknown>;
      return { ...native, r: 128 };
    });
    const data = join(dir, 'r128.jsonl');
    writeFileSync(
      data,
      archs
        .map((arch) => JSON.stringify({ arch, latency_ms: 2 + depth(space.parse(arch)) / 4 }))
        .join('\n'),
    );
    const out = join(dir, 'predictor');
    const fit = await esm(
      ...['fit', '--space', 'mobilenetv3', '--data', data, '--model', 'ridge'],
      ...['--train-fraction', '1', '--out', out],
    );
    expect(fit.code, fit.stderr).toBe(0);
    expect(fit.stdout).toContain(
      `predictor written to ${out} (predictor.json, predictor.onnx, predictor-arch.onnx, predictor-arch.json)`,
    );
    const inside = join(dir, 'inside.jsonl');
    const outside = join(dir, 'outside.jsonl');
    writeFileSync(inside, `${JSON.stringify(archs[0])}\n`);
    writeFileSync(
      outside,
      `${JSON.stringify(archs[0])}\n${JSON.stringify({ ...archs[1], r: 224 })}\n`,
    );
    // Act
    const ok = await esm('predict', '--predictor', out, '--in', inside);
    const warned = await esm('predict', '--predictor', out, '--in', outside);
    // Assess: predictions are still printed; only the out-of-domain input warns.
    expect(ok.code).toBe(0);
    expect(ok.stderr).not.toMatch(/warning/);
    expect(warned.code).toBe(0);
    expect(warned.stdout.trim().split('\n')).toHaveLength(2);
    expect(warned.stderr).toMatch(
      /warning: 1 of 2 archs lie outside what the predictor was trained on.*arch 2: resolution 224 \(trained on 128\.\.128\)/,
    );
  }, 600_000);
});
