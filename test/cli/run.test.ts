/**
 * `esm run` end to end through the CLI: a tiny run on the embedded device (broker, daemon and
 * real onnxruntime timing in-process), and the JSON contract of `--json`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePredictorJson } from '../../core/predictor/artifact.ts';
import { startDaemon } from '../../device-client/daemon.ts';
import { startBroker } from '../../local/mqtt-broker.ts';
import { esm as esmAsync } from '../support/cli.ts';

const esm = join(import.meta.dirname, '..', '..', 'bin', 'esm.js');
const dir = mkdtempSync(join(tmpdir(), 'esm-cli-run-'));

function run(args: string[]) {
  return spawnSync(process.execPath, [esm, ...args], { encoding: 'utf8', timeout: 170_000 });
}

describe('esm run --device local', () => {
  it('measures real ONNX models over MQTT, trains, and writes predictor and report', () => {
    const out = join(dir, 'local');
    // Tiny budget: 8 + 4 networks at small resolution through the whole loop.
    const result = run([
      'run',
      '--space',
      'mobilenetv3',
      '--n-init',
      '12',
      '--n-step',
      '4',
      '--max-iter',
      '2',
      '--bins',
      '2',
      '--test-fraction',
      '0.25',
      '--runs',
      '3',
      '--warmup',
      '1',
      '--max-drift',
      '1',
      '--chunk-size',
      '8',
      '--out',
      out,
      '--json',
    ]);
    expect(result.stderr).not.toMatch(/^error/m);
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(Object.keys(summary).sort()).toEqual([
      'bins',
      'converged',
      'history',
      'iterations',
      'predictor',
      'samples',
      'status',
    ]);
    expect(summary.status).toBe(summary.converged ? 'converged' : 'max-iter');
    expect(summary.samples).toBeGreaterThanOrEqual(12);
    expect(summary.bins).toHaveLength(2);
    for (const b of summary.bins)
      expect(Object.keys(b).sort()).toEqual(['accuracy', 'hi', 'lo', 'n']);
    expect(summary.history).toHaveLength(summary.iterations);
    expect(summary.predictor).toBe(join(out, 'predictor'));
    // The embedded device interleaves by default, calibrated once for the whole run.
    const { measurement } = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')).params;
    expect(measurement.interleave).toBe(true);
    expect(measurement.referenceScaleMs).toBeGreaterThan(0);
    // ...and measures a sample again when its runs spread widely (docs/measurement.md).
    expect(measurement.maxSampleSpread).toBe(0.3);

    const dataset = readFileSync(join(out, 'dataset.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(dataset).toHaveLength(summary.samples);
    for (const line of dataset) {
      expect(line.latency_ms).toBeGreaterThan(0);
      expect(line.device).toMatch(/onnxruntime/);
    }
    const predictor = parsePredictorJson(
      JSON.parse(readFileSync(join(summary.predictor, 'predictor.json'), 'utf8')),
    );
    expect(predictor.space.name).toBe('mobilenetv3');
    expect(existsSync(join(summary.predictor, 'predictor.onnx'))).toBe(true);
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('data-chart="scatter"');
  }, 180_000);

  it('measures on a remote daemon with thing:NAME --broker URL', async () => {
    const broker = await startBroker({ port: 0 });
    const daemon = await startDaemon({ broker: broker.url, thing: 'bench-box' });
    try {
      const out = join(dir, 'thing');
      // Async (execFile): the daemon in this process must keep answering while the CLI runs.
      const { code, stdout, stderr } = await esmAsync(
        'run',
        '--space',
        'mobilenetv3',
        '--device',
        'thing:bench-box',
        '--broker',
        broker.url,
        '--n-init',
        '10',
        '--max-iter',
        '1',
        '--runs',
        '3',
        '--warmup',
        '1',
        // CPU time: wall-clock reference checks of a loaded machine drifted 74 % in one batch
        // (stress-ng --cpu 4), and a drift over --max-drift fails the run with exit 2.
        '--clock',
        'cpu',
        '--max-drift',
        '1',
        '--out',
        out,
        '--json',
      );
      expect({ code, stderr: stderr.slice(-2000) }).toMatchObject({ code: 0 });
      expect(JSON.parse(stdout).samples).toBe(10);
      const lines = readFileSync(join(out, 'dataset.jsonl'), 'utf8').trim().split('\n');
      expect(JSON.parse(lines[0] as string).device).toMatch(/^bench-box: /);
      // A dedicated device measures every sample once unless --max-spread asks otherwise.
      const state = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8'));
      expect(state.params.measurement.maxSampleSpread).toBeUndefined();
    } finally {
      await daemon.stop();
      await broker.close();
    }
  }, 120_000);

  it.skipIf(existsSync('/sys/class/powercap/intel-rapl:0/energy_uj'))(
    'fails at once, with the reason, when the remote device cannot measure the --metric',
    async () => {
      // This machine has no energy counter, so its daemon answers energy_mj: null with the
      // reason. The run must stop on that answer, not wait out the one-hour result timeout.
      const broker = await startBroker({ port: 0 });
      const daemon = await startDaemon({ broker: broker.url, thing: 'no-rapl' });
      try {
        const out = join(dir, 'no-energy');
        const { code, stderr } = await esmAsync(
          'run',
          '--space',
          'mobilenetv3',
          '--device',
          'thing:no-rapl',
          '--broker',
          broker.url,
          '--metric',
          'energy_mj',
          '--n-init',
          '4',
          '--max-iter',
          '1',
          '--runs',
          '1',
          '--warmup',
          '0',
          '--max-drift',
          '1',
          '--result-timeout',
          '3600',
          '--out',
          out,
        );
        expect(code).not.toBe(0);
        expect(stderr).toMatch(/no-rapl could not measure energy_mj: .*no energy counter/);
        expect(stderr).toMatch(/METRIC_UNAVAILABLE/);
      } finally {
        await daemon.stop();
        await broker.close();
      }
    },
    120_000,
  );

  it('with --interleave keeps the reference calibration of the first job for the whole run', () => {
    const out = join(dir, 'interleaved');
    const args = ['run', '--space', 'mobilenetv3', '--n-init', '10', '--n-step', '2'];
    const tiny = ['--max-iter', '2', '--bins', '1', '--runs', '3', '--warmup', '1'];
    const result = run([
      ...args,
      ...tiny,
      // Unreachable, so the run always measures its second iteration: with a reachable one,
      // whether it stopped after 10 samples depended on this machine's noise.
      '--acc-th',
      '0.9999',
      '--max-drift',
      '1',
      '--chunk-size',
      '2',
      '--interleave',
      '--out',
      out,
    ]);
    expect(result.stderr).not.toMatch(/^error/m);
    expect(result.status).toBe(0);

    // The header names the model the run trains: the default auto, with its features.
    expect(result.stderr).toMatch(/sampling, auto model \(physics \+ fcc \+ LUT counts\), seed/);
    const state = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8'));
    expect(state.params.measurement.interleave).toBe(true);
    expect(state.params.measurement.referenceScaleMs).toBeGreaterThan(0);
    const dataset = readFileSync(join(out, 'dataset.jsonl'), 'utf8').trim().split('\n');
    expect(dataset).toHaveLength(12);
  }, 120_000);

  it('rejects a bad flag with the flag and the fix, and an unknown device', () => {
    const bad = run(['run', '--space', 'mobilenetv3', '--sampling', 'uniform']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--sampling.*random, balanced/);
    const clock = run(['run', '--space', 'mobilenetv3', '--clock', 'tsc']);
    expect(clock.status).not.toBe(0);
    expect(clock.stderr).toMatch(/--clock.*wall, cpu/);
    const spread = run(['run', '--space', 'mobilenetv3', '--max-spread', '0']);
    expect(spread.status).not.toBe(0);
    expect(spread.stderr).toMatch(/--max-spread/);
    const device = run([
      'run',
      '--space',
      'mobilenetv3',
      '--device',
      'gpu0',
      '--out',
      join(dir, 'bad'),
    ]);
    expect(device.status).toBe(2);
    expect(device.stderr).toMatch(/device: unknown device "gpu0"; use local, dataset:FILE/);
  });

  it('refuses to resume a directory that is not a run', () => {
    const result = run(['run', '--resume', dir]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/resume: .* has no state.json/);
  });
});
