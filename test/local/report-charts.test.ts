/**
 * report.html's convergence curve, samples per bin per iteration, latency distribution,
 * device facts, "use this predictor" snippet, units and bin labels (local/report.ts).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type IterationRecord,
  measurementDefaults,
  type RunParams,
  runParams,
} from '../../core/schemas/run.ts';
import { binLabel, latencyUnit, measuredAgain, renderReport } from '../../local/report.ts';
import { RunStore } from '../../local/run-store.ts';

const params = runParams.parse({
  space: 'mobilenetv3',
  device: 'dataset:x.jsonl',
  bins: 2,
  accTh: 0.9,
});

function record(iteration: number, perBin: number[], accuracies: number[]): IterationRecord {
  const bins = [
    { lo: 10, hi: 10 },
    { lo: 11, hi: 14 },
  ].map((b, i) => ({
    ...b,
    train: (perBin[i] as number) - 1,
    test: 1,
    accuracy: accuracies[i] ?? null,
  }));
  const n = perBin.reduce((a, b) => a + b, 0);
  return {
    iteration,
    samples: { train: n - 2, test: 2 },
    bins,
    overall: {
      n: 2,
      accuracy: 0.9,
      binBalancedAccuracy: (accuracies.reduce((a, b) => a + b, 0) / accuracies.length) as number,
      within5: 0.5,
      within10: 0.8,
      rmse_ms: 1,
      spearman: 0.9,
    },
    secondsMeasuring: 1,
    secondsTraining: 1,
    quality: { maxDrift: 0.01, remeasured: 0 },
    converged: false,
    stop: false,
    reason: null,
    nextBinWeights: [],
    finishedAt: '2026-01-01T00:00:00Z',
  };
}

const iterations = [
  record(0, [5, 5], [0.8, 0.7]),
  record(1, [8, 12], [0.92, 0.88]),
  record(2, [10, 20], [0.95, 0.93]),
];
const measurements = [
  ...Array.from({ length: 25 }, (_, i) => ({
    latency_ms: 2 + i / 10,
    device: 'pi-a: Cortex-A72',
    iteration: 0,
  })),
  ...Array.from({ length: 5 }, () => ({ latency_ms: 9, device: 'pi-b: Cortex-A76', iteration: 1 })),
];
/** A state of the current schema, whatever its shape: made by the run store itself. */
const stateOf = (p: RunParams) =>
  RunStore.create(join(mkdtempSync(join(tmpdir(), 'esm-rc-')), 'run'), p).state;

const count = (html: string, pattern: RegExp) => (html.match(pattern) ?? []).length;
function chart(html: string, kind: string): string {
  const match = html.match(new RegExp(`<svg data-chart="${kind}"[\\s\\S]*?</svg>`));
  expect(match, `chart ${kind}`).not.toBeNull();
  return match?.[0] ?? '';
}

describe('report.html', () => {
  const html = renderReport({
    state: stateOf(params),
    iterations,
    points: [],
    samples: measurements.length,
    measurements,
    predictorDir: '/runs/r1/predictor',
  });

  it('draws the convergence curve: one point per iteration and series, at the samples measured so far', () => {
    const svg = chart(html, 'convergence');
    expect(count(svg, /class="convergence-point" data-series="balanced"/g)).toBe(3);
    expect(count(svg, /class="convergence-point" data-series="worst"/g)).toBe(3);
    const samples = [...svg.matchAll(/iteration (\d+), (\d+) samples: worst bin ([\d.]+) %/g)].map(
      (m) => [Number(m[1]), Number(m[2]), Number(m[3])],
    );
    expect(samples).toEqual([
      [0, 10, 70],
      [1, 20, 88],
      [2, 30, 93],
    ]);
    expect(svg).toContain('measured samples (train + test)');
    expect(svg).toContain('class="threshold"');
  });

  it('draws the samples of every bin after every iteration', () => {
    const svg = chart(html, 'bin-samples');
    expect(count(svg, /class="bin-iter-bar"/g)).toBe(6);
    expect(svg).toContain('<title>depth 11-14, iteration 2: 20 samples</title>');
    expect(svg).toContain('<title>depth 10, iteration 0: 5 samples</title>');
  });

  it('histograms every measured latency, in the run unit', () => {
    const svg = chart(html, 'latencies');
    expect(count(svg, /class="lbar"/g)).toBe(20);
    const counts = [...svg.matchAll(/ ms: (\d+)<\/title>/g)].map((m) => Number(m[1]));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(measurements.length);
    expect(svg).toContain('measured latency (ms)');
  });

  it('lists the devices that measured, with their sample counts', () => {
    expect(html).toMatch(/<td>pi-a: Cortex-A72<\/td><td>25<\/td>/);
    expect(html).toMatch(/<td>pi-b: Cortex-A76<\/td><td>5<\/td>/);
  });

  it('shows how to use the predictor from the CLI and from Python', () => {
    expect(html).toContain('npx esm predict --predictor /runs/r1/predictor --in archs.jsonl');
    expect(html).toContain('ort.InferenceSession(&#34;/runs/r1/predictor/predictor.onnx&#34;)');
    expect(html).toContain('--encoding fcc');
  });

  it('labels a bin of one depth "depth 10", never "depth 10-10"', () => {
    expect(binLabel({ lo: 10, hi: 10 })).toBe('depth 10');
    expect(binLabel({ lo: 10, hi: 13 })).toBe('depth 10-13');
    expect(html).not.toContain('10-10');
    expect(html).toContain('<th>depth 10</th>');
  });
});

describe("the spread of each sample's timed runs", () => {
  const local = runParams.parse({
    space: 'mobilenetv3',
    device: 'local',
    measurement: measurementDefaults('local'),
  });
  // Spreads 0.1, 0.2, 0.4 and 0.5 (std / median), and one line without a std.
  const lines = [
    { latency_ms: 4, std_ms: 0.4, iteration: 0 },
    { latency_ms: 5, std_ms: 1, iteration: 0 },
    { latency_ms: 2, std_ms: 0.8, iteration: 0 },
    { latency_ms: 2, std_ms: 1, iteration: 1 },
    { latency_ms: 3, iteration: 1 },
  ];
  const page = (p: RunParams, measurements: typeof lines) =>
    renderReport({
      state: stateOf(p),
      iterations,
      points: [],
      samples: measurements.length,
      measurements,
    });

  it('gives the median and the largest, and how many stayed above the re-measure limit', () => {
    expect(local.measurement.maxSampleSpread).toBe(0.3);
    expect(page(local, lines)).toContain(
      "Spread of each sample's timed runs (std / median), over 4 samples: median 30.0 %, largest 50.0 %; 2 still above the re-measure limit of 30.0 %.",
    );
  });

  it('says nothing of a limit where none applied, and nothing at all without a std', () => {
    const remote = runParams.parse({ space: 'mobilenetv3', device: 'thing:pi' });
    expect(page(remote, lines)).toContain('over 4 samples: median 30.0 %, largest 50.0 %.</p>');
    const replay = runParams.parse({
      space: 'mobilenetv3',
      device: 'dataset:x.jsonl',
      measurement: { maxSampleSpread: 0.3 },
    });
    expect(page(replay, lines)).not.toContain('re-measure limit');
    expect(page(local, [{ latency_ms: 3, iteration: 0 }])).not.toContain('class="spread"');
  });
});

describe('what an iteration measured a second time', () => {
  const quality = (remeasured: number, samplesRemeasured?: number) => ({
    maxDrift: 0.012,
    remeasured,
    ...(samplesRemeasured !== undefined && { samplesRemeasured }),
  });

  it('names drifted jobs and widely spread samples, in the iteration table', () => {
    expect(measuredAgain(quality(1, 3))).toBe(
      '1 job whose references drifted, 3 samples whose runs spread widely',
    );
    expect(measuredAgain(quality(2, 1))).toBe(
      '2 jobs whose references drifted, 1 sample whose runs spread widely',
    );
    const html = renderReport({
      state: stateOf(params),
      iterations: [{ ...record(0, [5, 5], [0.8, 0.7]), quality: quality(0, 4) }],
      points: [],
      samples: 0,
      measurements: [],
    });
    expect(html).toContain('<td>1.2 % (measured again: 4 samples whose runs spread widely)</td>');
  });

  it('says nothing when nothing was, and for records written before samples were counted', () => {
    expect(measuredAgain(quality(0, 0))).toBe('');
    expect(measuredAgain(quality(0))).toBe('');
    expect(measuredAgain(quality(1))).toBe('1 job whose references drifted');
  });
});

describe('latency units', () => {
  it('names reference-calibrated ms for interleaved runs, CPU ms and wall-clock ms otherwise', () => {
    const local = runParams.parse({
      space: 'mobilenetv3',
      device: 'local',
      measurement: { clock: 'cpu', interleave: true, referenceScaleMs: 3.15 },
    });
    const cpu = runParams.parse({
      space: 'mobilenetv3',
      device: 'thing:pi',
      measurement: { clock: 'cpu' },
    });
    const wall = runParams.parse({ space: 'mobilenetv3', device: 'thing:pi' });

    expect(latencyUnit(local).axis).toBe('calibrated ms');
    expect(latencyUnit(local).note).toMatch(
      /reference-calibrated milliseconds: each sample's CPU time .*\(3\.15 ms\)/,
    );
    expect(latencyUnit(cpu).axis).toBe('CPU ms');
    expect(latencyUnit(wall)).toEqual({
      axis: 'ms',
      note: 'Latencies are absolute wall-clock milliseconds per inference.',
    });

    const page = renderReport({
      state: stateOf(local),
      iterations,
      points: [{ id: 'a', depth: 10, bin: 0, measured: 3, predicted: 3.1 }],
      samples: 1,
      measurements: [{ latency_ms: 3, iteration: 0 }],
    });
    expect(chart(page, 'scatter')).toContain('measured latency (calibrated ms)');
    expect(chart(page, 'latencies')).toContain('measured latency (calibrated ms)');
    expect(page).toContain('class="unit">Latencies are reference-calibrated milliseconds');
  });

  it('labels the test-set scatter with the metric a --metric run learns', () => {
    const memory = runParams.parse({
      space: 'mobilenetv3',
      device: 'local',
      metric: 'peak_memory_mb',
      measurement: { metrics: ['peak_memory_mb'] },
    });
    const page = renderReport({
      state: stateOf(memory),
      iterations,
      points: [{ id: 'a', depth: 10, bin: 0, measured: 70, predicted: 71 }],
      samples: 1,
      measurements: [{ latency_ms: 3, iteration: 0 }],
    });
    expect(chart(page, 'scatter')).toContain('measured peak memory (MB)');
    expect(chart(page, 'scatter')).toContain('Predicted vs measured peak memory');
    // The latency histogram stays latency: the lines keep latency_ms beside the metric.
    expect(chart(page, 'latencies')).toContain('measured latency (');
  });
});
