import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { esm } from '../support/cli.ts';
import { sharedDataAvailable, sharedDataPath } from '../support/shared-data.ts';

// HELP's FBNet archs have 13..22 layers of the space's 0..22: bins over the whole range could
// never be filled from that pool, so a replay would never converge.
const file = 'help-fbnet/titan_rtx_64.jsonl';
const data = sharedDataPath(file);
const dir = mkdtempSync(join(tmpdir(), 'esm-replay-bins-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!sharedDataAvailable(file))('esm run --device dataset:FILE', () => {
  it('bins over the depths the pool holds and converges on a dataset that covers part of the space', async () => {
    // Prepare
    const out = join(dir, 'run');
    // Act
    const run = await esm(
      'run',
      ...['--space', 'fbnet', '--device', `dataset:${data}`, '--model', 'ridge'],
      ...['--out', out, '--json'],
    );
    // Assess
    expect(run.code, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout) as {
      converged: boolean;
      bins: { lo: number; hi: number; n: number }[];
    };
    expect(summary.bins[0]?.lo).toBe(13);
    expect(summary.bins[summary.bins.length - 1]?.hi).toBe(22);
    expect(summary.bins.every((b) => b.n > 0)).toBe(true);
    expect(summary.converged).toBe(true);
  }, 600_000);

  it('is binned by esm fit on the same file alike, with no bin empty for want of data', async () => {
    // Act
    const run = await esm(
      'run',
      ...['--space', 'fbnet', '--device', `dataset:${data}`, '--model', 'ridge'],
      ...['--n-init', '20', '--max-iter', '1', '--out', join(dir, 'short'), '--json'],
    );
    const fit = await esm(
      'fit',
      ...['--space', 'fbnet', '--data', data, '--model', 'ridge', '--train', '20', '--json'],
    );
    // Assess
    expect(run.code, run.stderr).toBe(0);
    expect(fit.code, fit.stderr).toBe(0);
    const span = (bins: { lo: number; hi: number }[]) => bins.map((b) => `${b.lo}-${b.hi}`);
    const fitted = JSON.parse(fit.stdout).bins as { lo: number; hi: number; n: number }[];
    expect(span(fitted)).toEqual(span(JSON.parse(run.stdout).bins));
    expect(fitted[0]?.lo).toBe(13);
    expect(fitted.every((b) => b.n > 0)).toBe(true);
  }, 600_000);
});
