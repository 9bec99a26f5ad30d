import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SyntheticDevice, syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { createRng } from '../../core/rng.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';

const run = promisify(execFile);

const bin = resolve('bin/esm.js');
let cwd = '.';

/** esm in the test's directory: a local run also writes ./predictors/ (the engine's store). */
async function esm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('node', [bin, ...args], { maxBuffer: 1 << 24, cwd });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A second device: every operator type faster by a different factor, more overhead. */
const deviceB: SyntheticDevice = {
  overheadMs: 0.03,
  denseMacsPerMs: 2.6e7,
  depthwiseMacsPerMs: 1.8e6,
  elementsPerMs: 2.4e6,
};

describe('esm run --prior DIR and --sampling active (replayed device)', () => {
  let dir: string;
  let dataB: string;
  let priorDir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'esm-run-prior-'));
    cwd = dir;
    const rng = createRng(31);
    const dataset = (n: number, device?: SyntheticDevice) =>
      Array.from({ length: n }, () => {
        const subnet = randomSubnet(mobilenetv3, rng);
        const latency = syntheticLatencyMs(mobilenetv3, subnet, { device, noise: 0.002, rng });
        return JSON.stringify({ arch: mobilenetv3.toNative(subnet), latency_ms: latency });
      }).join('\n');
    const dataA = join(dir, 'a.jsonl');
    dataB = join(dir, 'b.jsonl');
    await writeFile(dataA, dataset(300));
    await writeFile(dataB, dataset(400, deviceB));
    priorDir = join(dir, 'prior');
    const fit = await esm([
      'fit',
      '--space',
      'mobilenetv3',
      '--data',
      dataA,
      '--model',
      'ridge',
      '--out',
      priorDir,
    ]);
    expect(fit.code).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('starts from the prior with a small first batch and stops once every bin passes', async () => {
    const out = join(dir, 'run-prior');
    const result = await esm([
      'run',
      '--space',
      'mobilenetv3',
      '--device',
      `dataset:${dataB}`,
      '--prior',
      priorDir,
      '--bins',
      '5',
      '--acc-th',
      '0.98',
      '--n-step',
      '10',
      '--max-iter',
      '6',
      '--out',
      out,
      '--json',
    ]);
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.converged).toBe(true);
    // The first batch is 20 (the default N_I with a prior), and it was enough here.
    expect(summary.history[0].samples.train + summary.history[0].samples.test).toBe(20);
    expect(summary.samples).toBeLessThanOrEqual(40);
    const predictor = JSON.parse(await readFile(join(summary.predictor, 'predictor.json'), 'utf8'));
    expect(predictor.model.kind).toBe('transfer');
    expect(predictor.model.prior.kind).toBe('ridge');
  }, 180_000);

  it('plans extensions by uncertainty with --sampling active, and refuses --model with --prior', async () => {
    const out = join(dir, 'run-active');
    const result = await esm([
      'run',
      '--space',
      'mobilenetv3',
      '--device',
      `dataset:${dataB}`,
      '--sampling',
      'active',
      '--model',
      'ridge',
      '--bins',
      '5',
      '--acc-th',
      '0.999',
      '--n-init',
      '30',
      '--n-step',
      '20',
      '--max-iter',
      '2',
      '--out',
      out,
      '--json',
    ]);
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.iterations).toBe(2);
    expect(summary.samples).toBe(50);
    const both = await esm([
      'run',
      '--space',
      'mobilenetv3',
      '--device',
      `dataset:${dataB}`,
      '--prior',
      priorDir,
      '--model',
      'mlp',
    ]);
    expect(both.code).not.toBe(0);
    expect(both.stderr).toMatch(/--model.*cannot be combined with --prior/);
  }, 180_000);
});
