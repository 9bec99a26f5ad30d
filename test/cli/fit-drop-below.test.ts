/**
 * `esm fit --drop-below VALUE`: rows whose metric is below VALUE leave before the split (the
 * NAS-Bench-201 cells without an input-output path, ../shared/data/README.md), with the
 * count on stderr; a floor that leaves nothing is refused naming the flag. Without it, `esm
 * fit` and a replaying `esm run` note how many rows lie under a tenth of the median.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { median } from '../../core/stats.ts';
import { esm } from '../support/cli.ts';
import { sharedDataAvailable, sharedDataPath } from '../support/shared-data.ts';

const file = 'nb201/pixel3.jsonl';
const data = sharedDataPath(file);

/** The latency_ms of every line of a JSONL dataset. */
function latencies(path: string): number[] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).latency_ms as number);
}

describe.skipIf(!sharedDataAvailable(file))('esm fit --drop-below', () => {
  it('drops the rows under the floor before the split and says how many', async () => {
    const values = latencies(data);
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

  it('without the flag, names the rows under a tenth of the median and the floor that leaves exactly them out', async () => {
    // Prepare
    const values = latencies(data);
    // The floor the note names: a tenth of the median, to three significant digits.
    const floor = Number((0.1 * median([...values].sort((a, b) => a - b))).toPrecision(3));
    const tiny = values.filter((v) => v < floor).length;
    expect(tiny).toBeGreaterThan(0);
    const args = ['fit', '--space', 'nasbench201', '--data', data, '--model', 'ridge'];
    // Act
    const warned = await esm(...args, '--train', '20', '--json');
    const followed = await esm(...args, '--train', '20', '--drop-below', String(floor), '--json');
    // Assess
    expect(warned.code, warned.stderr).toBe(0);
    expect(warned.stderr).toContain(
      `note: ${tiny} of ${values.length} rows have latency_ms under ${floor}, a tenth of its median`,
    );
    expect(warned.stderr).toContain(`--drop-below ${floor}`);
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stderr).toContain(`dropped ${tiny} of ${values.length} rows`);
    expect(followed.stderr).not.toContain('note:');
  }, 120_000);

  it.skipIf(!sharedDataAvailable('nb201/fpga.jsonl'))(
    'says nothing of the kind where no row is that small (the FPGA estimates)',
    async () => {
      const fpga = sharedDataPath('nb201/fpga.jsonl');
      const fit = await esm(
        'fit',
        '--space',
        'nasbench201',
        '--data',
        fpga,
        '--model',
        'ridge',
        '--train',
        '20',
      );
      expect(fit.code, fit.stderr).toBe(0);
      expect(fit.stdout).toMatch(/accuracy/);
      expect(fit.stderr).not.toContain('note:');
    },
    120_000,
  );

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

describe.skipIf(!sharedDataAvailable(file))(
  'esm run --device dataset:FILE with tiny values',
  () => {
    it('notes them before the run, and not for a dataset without them', async () => {
      // Prepare
      const values = latencies(data);
      const dir = await mkdtemp(join(tmpdir(), 'esm-run-tiny-'));
      const tiny = ['--n-init', '20', '--max-iter', '1', '--model', 'ridge', '--json'];
      const replay = (f: string, out: string) =>
        esm('run', '--space', 'nasbench201', '--device', `dataset:${f}`, ...tiny, '--out', out);
      try {
        // Act
        const noted = await replay(data, join(dir, 'pixel3'));
        const quiet = sharedDataAvailable('nb201/fpga.jsonl')
          ? await replay(sharedDataPath('nb201/fpga.jsonl'), join(dir, 'fpga'))
          : undefined;
        // Assess: the count the note gives is the file's, under the floor it names.
        const match =
          /note: (\d+) of (\d+) rows of .*pixel3\.jsonl have latency_ms under ([\d.]+), a tenth of its median/.exec(
            noted.stderr,
          );
        expect(match, noted.stderr).not.toBeNull();
        const floor = Number(match?.[3]);
        expect(Number(match?.[1])).toBe(values.filter((v) => v < floor).length);
        expect(Number(match?.[2])).toBe(values.length);
        expect(noted.stderr).toContain(`Leave them out of the pool with --drop-below ${floor}`);
        expect(JSON.parse(noted.stdout).samples).toBe(20);
        if (quiet) {
          expect(quiet.code, quiet.stderr).toBe(0);
          expect(quiet.stderr).not.toContain('note:');
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }, 120_000);

    it('with --drop-below, leaves those rows out of the pool and says how many', async () => {
      // Prepare
      const values = latencies(data);
      const floor = 1.07;
      const below = values.filter((v) => v < floor).length;
      expect(below).toBeGreaterThan(0);
      const dir = await mkdtemp(join(tmpdir(), 'esm-run-drop-'));
      const out = join(dir, 'run');
      try {
        // Act: a first batch of 150 of 15,625 cells holds about 3 tiny ones at random.
        const run = await esm(
          ...['run', '--space', 'nasbench201', '--device', `dataset:${data}`],
          ...['--n-init', '150', '--max-iter', '1', '--model', 'ridge', '--json'],
          ...['--sampling', 'random', '--drop-below', String(floor), '--out', out],
        );
        // Assess
        expect(run.code, run.stderr).toBe(0);
        expect(run.stderr).toContain(
          `--drop-below ${floor}: left ${below} of ${values.length} rows of ${data} with latency_ms below it out of the pool`,
        );
        expect(run.stderr).not.toContain('note:');
        const measured = latencies(join(out, 'dataset.jsonl'));
        expect(measured).toHaveLength(150);
        expect(Math.min(...measured)).toBeGreaterThanOrEqual(floor);
        // The report says what the pool left out.
        expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain(
          `rows with latency_ms under ${floor} left out (--drop-below)`,
        );
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }, 120_000);

    it('refuses --drop-below without a replayed dataset, naming the flag', async () => {
      const run = await esm('run', '--space', 'mobilenetv3', '--drop-below', '1');
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(
        /--drop-below: leaves rows out of a replayed dataset; give it with --device dataset:FILE/,
      );
    }, 120_000);
  },
);
