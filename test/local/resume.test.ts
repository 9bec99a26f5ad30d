/**
 * Kill `esm run` with SIGKILL in the middle of a batch, then `--resume` it: every result
 * stored before the kill is kept unchanged, nothing is measured twice, and the run finishes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { createRng } from '../../core/rng.ts';
import { depthBins, sampleArchitectures } from '../../core/sampling.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';

const esm = join(import.meta.dirname, '..', '..', 'bin', 'esm.js');
const dir = mkdtempSync(join(tmpdir(), 'esm-resume-'));
const datasetFile = join(dir, 'replay.jsonl');
const runDir = join(dir, 'run');

const rng = createRng(5);
const subnets = sampleArchitectures(mobilenetv3, {
  n: 200,
  strategy: 'balanced',
  bins: depthBins(mobilenetv3, 10),
  rng,
});
writeFileSync(
  datasetFile,
  subnets
    .map((s) =>
      JSON.stringify({
        arch: mobilenetv3.toNative(s),
        latency_ms: syntheticLatencyMs(mobilenetv3, s),
      }),
    )
    .join('\n'),
);

const args = [
  'run',
  '--space',
  'mobilenetv3',
  '--device',
  `dataset:${datasetFile}`,
  '--n-init',
  '40',
  '--n-step',
  '20',
  '--max-iter',
  '2',
  '--acc-th',
  '0.999',
  '--chunk-size',
  '2',
  '--out',
  runDir,
];

const lines = (file: string) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.trim())
    : [];

describe('esm run --resume after SIGKILL', () => {
  it('keeps every stored result and measures nothing again', async () => {
    const datasetOut = join(runDir, 'dataset.jsonl');
    // Slow replay (40 ms per sample) so the kill lands inside the first batch.
    const child = spawn(process.execPath, [esm, ...args], {
      env: { ...process.env, ESM_REPLAY_DELAY_MS: '40' },
      stdio: 'ignore',
    });
    const deadline = Date.now() + 60_000;
    while (lines(datasetOut).length < 10 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const before = lines(datasetOut);
    expect(before.length).toBeGreaterThanOrEqual(10);
    expect(before.length).toBeLessThan(40);
    expect(lines(join(runDir, 'iterations.jsonl'))).toHaveLength(0);

    const resumed = spawnSync(process.execPath, [esm, 'run', '--resume', runDir, '--json'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(resumed.stderr).not.toMatch(/error/);
    expect(resumed.status).toBe(0);
    const summary = JSON.parse(resumed.stdout);
    expect(summary).toMatchObject({ converged: false, iterations: 2, samples: 60 });

    const after = lines(datasetOut);
    // What was stored before the kill is still there, byte for byte, and first.
    expect(after.slice(0, before.length)).toEqual(before);
    const ids = after.map((l) => JSON.parse(l).id as string);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(60);
  }, 180_000);

  it('refuses settings that change what was measured, and continues with a larger --max-iter', () => {
    const refused = spawnSync(
      process.execPath,
      [esm, 'run', '--resume', runDir, '--n-init', '50', '--sampling', 'random'],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(
      /--n-init: cannot change on --resume.*--max-drift, --result-timeout, --max-iter and --acc-th/,
    );

    const more = spawnSync(
      process.execPath,
      [esm, 'run', '--resume', runDir, '--max-iter', '3', '--json'],
      { encoding: 'utf8', timeout: 120_000 },
    );
    expect(more.stderr).not.toMatch(/error/);
    expect(more.status).toBe(0);
    expect(JSON.parse(more.stdout)).toMatchObject({ iterations: 3, samples: 80 });
    const ids = lines(join(runDir, 'dataset.jsonl')).map((l) => JSON.parse(l).id as string);
    expect(new Set(ids).size).toBe(80);
  }, 180_000);
});
