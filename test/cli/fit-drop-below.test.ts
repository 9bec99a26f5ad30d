/**
 * `esm fit --drop-below VALUE`: rows whose metric is below VALUE leave before the split (the
 * NAS-Bench-201 cells without an input-output path, ../shared/data/README.md), with the
 * count on stderr; a floor that leaves nothing is refused naming the flag.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { esm } from '../support/cli.ts';
import { sharedDataAvailable, sharedDataPath } from '../support/shared-data.ts';

const file = 'nb201/pixel3.jsonl';
const data = sharedDataPath(file);

describe.skipIf(!sharedDataAvailable(file))('esm fit --drop-below', () => {
  it('drops the rows under the floor before the split and says how many', async () => {
    const values = readFileSync(data, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).latency_ms as number);
    const below = values.filter((v) => v < 0.5).length;
    expect(below).toBeGreaterThan(0);
    const args = ['fit', '--space', 'nasbench201', '--data', data, '--model', 'ridge'];
    const fit = await esm(...args, '--train', '100', '--drop-below', '0.5', '--json');
    expect(fit.code, fit.stderr).toBe(0);
    expect(fit.stderr).toContain(
      `--drop-below 0.5: dropped ${below} of ${values.length} rows with latency_ms below it`,
    );
    const result = JSON.parse(fit.stdout);
    expect(result.train.n + result.test.n).toBe(values.length - below);
    // The relative errors of sub-millisecond cells no longer swamp the accuracy.
    expect(result.test.accuracy).toBeGreaterThan(0.5);
  }, 120_000);

  it('refuses a negative floor and one that leaves no rows, naming the flag', async () => {
    const args = ['fit', '--space', 'nasbench201', '--data', data];
    const negative = await esm(...args, '--drop-below', '-1');
    expect(negative.code).not.toBe(0);
    expect(negative.stderr).toMatch(/--drop-below .*expected a number in 0\.\.1000000, got "-1"/);
    const all = await esm(...args, '--drop-below', '1e5');
    expect(all.code).toBe(2);
    expect(all.stderr).toMatch(/--drop-below: leaves 0 rows of .*pixel3\.jsonl; lower it/);
  }, 120_000);
});
