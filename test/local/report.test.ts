import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type IterationRecord,
  RUN_STATE_VERSION,
  runParams,
  runState,
} from '../../core/schemas/run.ts';
import { renderReport, type TestPoint, writeReport } from '../../local/report.ts';
import { RunStore, writeFileAtomic } from '../../local/run-store.ts';

const params = runParams.parse({
  space: 'mobilenetv3',
  device: 'dataset:x.jsonl',
  bins: 3,
  accTh: 0.9,
});
const bins = [
  { lo: 10, hi: 13, train: 8, test: 2 },
  { lo: 14, hi: 17, train: 6, test: 3 },
  { lo: 18, hi: 20, train: 4, test: 1 },
];

function record(iteration: number, accuracies: (number | null)[]): IterationRecord {
  return {
    iteration,
    samples: { train: 18, test: 6 },
    bins: bins.map((b, i) => ({ ...b, accuracy: accuracies[i] ?? null })),
    overall: {
      n: 6,
      accuracy: 0.9,
      binBalancedAccuracy: 0.9,
      within5: 0.5,
      within10: 0.8,
      rmse_ms: 1,
      spearman: 0.9,
    },
    secondsMeasuring: 10,
    secondsTraining: 2,
    quality: { maxDrift: 0.01, remeasured: 0 },
    converged: false,
    stop: false,
    reason: null,
    nextBinWeights: [],
    finishedAt: '2026-01-01T00:00:00Z',
  };
}

const points: TestPoint[] = [
  { id: 'a', depth: 11, bin: 0, measured: 10, predicted: 10.4 }, // +4 %
  { id: 'b', depth: 12, bin: 0, measured: 10, predicted: 9.5 }, // -5 %
  { id: 'c', depth: 15, bin: 1, measured: 20, predicted: 21.5 }, // +7.5 %
  { id: 'd', depth: 16, bin: 1, measured: 20, predicted: 19.9 }, // -0.5 %
  { id: 'e', depth: 17, bin: 1, measured: 20, predicted: 40 }, // +100 %: clamped into the last bar
  { id: 'f', depth: 19, bin: 2, measured: 30, predicted: 30.2 },
];

const count = (html: string, pattern: RegExp) => (html.match(pattern) ?? []).length;
function chart(html: string, kind: string): string {
  const match = html.match(new RegExp(`<svg data-chart="${kind}"[\\s\\S]*?</svg>`));
  expect(match, `chart ${kind}`).not.toBeNull();
  return match?.[0] ?? '';
}

describe('renderReport', () => {
  const state = runState.parse({
    version: RUN_STATE_VERSION,
    runId: 'run-test',
    params,
    thing: 'esm-local',
    space: 'mobilenetv3',
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
    status: 'max-iter',
    iteration: 2,
    attempts: 1,
    measured: 24,
    unstableRetries: 0,
  });
  const html = renderReport({
    state,
    iterations: [record(0, [0.8, 0.85, null]), record(1, [0.92, 0.88, 0.95])],
    points,
    samples: 24,
  });

  it('draws per-bin accuracy per iteration, one point per bin and iteration with a test accuracy', () => {
    const svg = chart(html, 'accuracy');
    expect(count(svg, /class="bin-point"/g)).toBe(5);
    expect(count(svg, /class="series"/g)).toBe(2);
    expect(svg).toContain('class="threshold"');
  });

  it('draws train and test bars per bin', () => {
    const svg = chart(html, 'samples');
    expect(count(svg, /class="bar train"/g)).toBe(3);
    expect(count(svg, /class="bar test"/g)).toBe(3);
  });

  it('draws one scatter point per test sample', () => {
    expect(count(chart(html, 'scatter'), /class="point"/g)).toBe(points.length);
  });

  it('histograms the relative errors, clamping outliers into the end bars', () => {
    const svg = chart(html, 'histogram');
    expect(count(svg, /class="hbar"/g)).toBe(40);
    const counts = [...svg.matchAll(/<title>(-?[\d.]+)\.\.(-?[\d.]+) %: (\d+)<\/title>/g)].map(
      (m) => ({
        lo: Number(m[1]),
        n: Number(m[3]),
      }),
    );
    expect(counts.reduce((s, c) => s + c.n, 0)).toBe(points.length);
    expect(counts.find((c) => c.lo === 19)?.n).toBe(1);
    expect(counts.find((c) => c.lo === -5)?.n).toBe(1);
  });

  it('says when latencies are relative to an interleaved reference, with the calibration', () => {
    const local = runParams.parse({
      space: 'mobilenetv3',
      device: 'local',
      measurement: { interleave: true, referenceScaleMs: 3.15 },
    });
    const page = renderReport({
      state: { ...state, params: local },
      iterations: [],
      points,
      samples: 0,
    });
    expect(page).toContain(
      'interleaved with a reference (latency relative to it x its calibration = 3.15 ms)',
    );
    expect(html).not.toContain('interleaved');
  });

  it('colours a bin as the loop judged it: at AccTH on enough test samples', () => {
    const cells = (page: string) =>
      [...page.matchAll(/<td class="(ok|bad)">([\d.]+) %/g)].map((m) => `${m[1]} ${m[2]}`);
    // Iteration 1: 92 % and 95 % pass AccTH 90 %, 88 % does not.
    expect(cells(html).slice(-3)).toEqual(['ok 92.0', 'bad 88.0', 'ok 95.0']);
    // With --min-test-per-bin 2, the last bin (1 test sample) fails at 95 %, as decide() has it.
    const strict = renderReport({
      state: { ...state, params: { ...params, minTestPerBin: 2 } },
      iterations: [record(1, [0.92, 0.88, 0.95])],
      points,
      samples: 24,
    });
    expect(cells(strict)).toEqual(['ok 92.0', 'bad 88.0', 'bad 95.0']);
  });

  it('is self-contained: no script and no external resource', () => {
    expect(html).not.toMatch(/<script|https?:\/\/|<link /);
    expect(html).toContain('not converged');
  });
});

describe('writeReport', () => {
  it('renders a run directory from its files', () => {
    const store = RunStore.create(join(mkdtempSync(join(tmpdir(), 'esm-report-')), 'run'), params);
    store.appendIteration(record(0, [0.9, 0.95, 0.99]));
    writeFileAtomic(store.path('predictions'), JSON.stringify({ iteration: 0, points }));
    const file = writeReport(store);
    const html = readFileSync(file, 'utf8');
    expect(count(chart(html, 'scatter'), /class="point"/g)).toBe(points.length);
  });
});
