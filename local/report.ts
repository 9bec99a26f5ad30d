/**
 * report.html of a run: one self-contained page (inline CSS and SVG, no script, no CDN) with
 * the convergence curve (accuracy against measured samples), per-bin accuracy per iteration,
 * samples per bin per iteration, the distribution of measured latencies, predicted vs
 * measured latency and the error histogram of the latest predictor on the test set, the
 * devices that measured, how to use the predictor, the parameters and the iteration table.
 * Every latency axis names its unit (absolute, CPU or reference-calibrated milliseconds).
 * Rendering is a pure function of the run's records; `writeReport` reads them from the run
 * directory (`esm report DIR`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { binPassed } from '../core/loop.ts';
import type {
  BinSummary,
  IterationRecord,
  PoolTruth,
  RunDatasetLine,
  RunParams,
  RunState,
} from '../core/schemas/run.ts';
import { median, spread } from '../core/stats.ts';
import { type RunStore, writeFileAtomic } from './run-store.ts';

/** One test sample scored by the latest predictor. */
export interface TestPoint {
  readonly id: string;
  readonly depth: number;
  readonly bin: number;
  readonly measured: number;
  readonly predicted: number;
}

export interface ReportData {
  readonly state: RunState;
  readonly iterations: readonly IterationRecord[];
  /** Test predictions of the latest iteration's predictor. */
  readonly points: readonly TestPoint[];
  /** Measured samples in the dataset. */
  readonly samples: number;
  /** The measured dataset lines (latency distribution, devices). @default [] */
  readonly measurements?: readonly Pick<
    RunDatasetLine,
    'latency_ms' | 'std_ms' | 'device' | 'iteration'
  >[];
  /** Where the run's predictor directory is, for the "use this predictor" snippet. */
  readonly predictorDir?: string;
}

export interface RenderOptions {
  /** Width of one histogram bar in percent of relative error. @default 1 */
  readonly histogramStep?: number;
  /** Relative errors beyond +-this percentage are clamped into the outermost bars. @default 20 */
  readonly histogramRange?: number;
}

const COLORS = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];
const color = (i: number) => COLORS[i % COLORS.length] as string;

const W = 560;
const H = 320;
const M = { left: 56, right: 16, top: 16, bottom: 44 };

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** "depth 10-13", or "depth 10" for a bin of one depth. */
export const binLabel = (b: { lo: number; hi: number }) =>
  b.lo === b.hi ? `depth ${b.lo}` : `depth ${b.lo}-${b.hi}`;

/**
 * The unit of the run's latencies: a short axis label and a sentence saying what it means.
 * Interleaved runs report reference-calibrated ms (ratio to a reference model x the
 * reference's calibrated latency), which differ from `esm measure`'s absolute wall-clock ms.
 */
export function latencyUnit(p: RunParams): { axis: string; note: string } {
  const m = p.measurement;
  if (p.device.startsWith('dataset:')) {
    return { axis: 'ms', note: 'Latencies are milliseconds as recorded in the replayed dataset.' };
  }
  const clock = m.clock === 'cpu' ? 'CPU time' : 'wall-clock time';
  if (m.interleave) {
    return {
      axis: 'calibrated ms',
      note: `Latencies are reference-calibrated milliseconds: each sample's ${clock} relative to an interleaved reference model, times the reference's calibrated latency${m.referenceScaleMs === undefined ? '' : ` (${m.referenceScaleMs} ms)`}; they rank and scale like latencies on this device but are not \`esm measure\`'s absolute wall-clock ms.`,
    };
  }
  return m.clock === 'cpu'
    ? { axis: 'CPU ms', note: 'Latencies are milliseconds of CPU time per inference (one thread).' }
    : { axis: 'ms', note: 'Latencies are absolute wall-clock milliseconds per inference.' };
}

/** What the run's predictor learns, for the test-set charts: latency, or another metric. */
export function learnedQuantity(p: RunParams): { name: string; unit: string } {
  if (p.metric === 'peak_memory_mb') return { name: 'peak memory', unit: 'MB' };
  if (p.metric === 'energy_mj') return { name: 'energy', unit: 'mJ' };
  return { name: 'latency', unit: latencyUnit(p).axis };
}

const fmt = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
const pct = (x: number | null | undefined) =>
  typeof x === 'number' ? `${(x * 100).toFixed(1)} %` : '-';

/** "Nice" tick values covering lo..hi. */
function ticks(lo: number, hi: number, count = 5): number[] {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step)
    out.push(Number(v.toFixed(10)));
  return out;
}

interface Axes {
  x: (v: number) => number;
  y: (v: number) => number;
  svg: string;
}

function axes(
  xDomain: [number, number],
  yDomain: [number, number],
  labels: { x: string; y: string },
  options: {
    xTicks?: number[];
    yFormat?: (v: number) => string;
    xFormat?: (v: number) => string;
  } = {},
): Axes {
  const [x0, x1] = xDomain;
  const [y0, y1] = yDomain;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (v: number) => M.left + ((v - x0) / (x1 - x0 || 1)) * pw;
  const y = (v: number) => M.top + ph - ((v - y0) / (y1 - y0 || 1)) * ph;
  const yf = options.yFormat ?? ((v: number) => String(v));
  const xf = options.xFormat ?? ((v: number) => String(v));
  const parts: string[] = [];
  for (const t of ticks(y0, y1)) {
    parts.push(
      `<line class="grid" x1="${M.left}" x2="${W - M.right}" y1="${y(t)}" y2="${y(t)}"/>`,
      `<text class="tick" x="${M.left - 6}" y="${y(t) + 4}" text-anchor="end">${esc(yf(t))}</text>`,
    );
  }
  for (const t of options.xTicks ?? ticks(x0, x1)) {
    parts.push(
      `<text class="tick" x="${x(t)}" y="${H - M.bottom + 16}" text-anchor="middle">${esc(xf(t))}</text>`,
    );
  }
  parts.push(
    `<line class="axis" x1="${M.left}" x2="${W - M.right}" y1="${M.top + ph}" y2="${M.top + ph}"/>`,
    `<line class="axis" x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + ph}"/>`,
    `<text class="label" x="${M.left + pw / 2}" y="${H - 6}" text-anchor="middle">${esc(labels.x)}</text>`,
    `<text class="label" transform="translate(14 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(labels.y)}</text>`,
  );
  return { x, y, svg: parts.join('') };
}

function svg(kind: string, title: string, body: string, legend = ''): string {
  return `<figure><figcaption>${esc(title)}</figcaption><svg data-chart="${kind}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">${body}</svg>${legend}</figure>`;
}

function legendOf(items: readonly { label: string; color: string }[]): string {
  return `<div class="legend">${items.map((i) => `<span><i style="background:${i.color}"></i>${esc(i.label)}</span>`).join('')}</div>`;
}

/**
 * One bin's cell of the iterations table: its test accuracy, coloured by what the loop judged
 * it on (under `--bin-accuracy oof` the test and out-of-fold samples, less `--bin-accuracy-z`
 * standard errors), which is then shown below it; a bin with fewer than `--min-test-per-bin`
 * of those samples fails whatever its accuracy, so the colours agree with the decision.
 */
function binCell(bin: BinSummary, p: RunParams): string {
  const passed = binPassed(bin, p);
  const decided = bin.decided;
  const note =
    decided === undefined
      ? ''
      : `<br><span class="sub">judged ${decided.lowerBound === undefined ? '' : `${pct(decided.lowerBound)} (lower bound), `}${pct(decided.accuracy)} on ${decided.n}</span>`;
  return `<td class="${passed ? 'ok' : 'bad'}">${pct(bin.accuracy)}${note}</td>`;
}

/** Per-bin test accuracy (lines) per iteration, with the threshold. */
function accuracyChart(iterations: readonly IterationRecord[], accTh: number): string {
  const accs = iterations
    .flatMap((r) => r.bins.map((b) => b.accuracy))
    .filter((a): a is number => a !== null);
  const lo = Math.max(0, Math.min(accTh - 0.05, ...accs));
  const a = axes(
    [0, Math.max(1, iterations.length - 1)],
    [Math.floor(lo * 20) / 20, 1],
    { x: 'iteration', y: 'test accuracy (1 - MAPE)' },
    { xTicks: iterations.map((r) => r.iteration), yFormat: (v) => `${Math.round(v * 100)}%` },
  );
  const bins = iterations[0]?.bins ?? [];
  const parts = [a.svg];
  parts.push(
    `<line class="threshold" x1="${M.left}" x2="${W - M.right}" y1="${a.y(accTh)}" y2="${a.y(accTh)}"/>`,
    `<text class="tick" x="${W - M.right}" y="${a.y(accTh) - 4}" text-anchor="end">AccTH ${pct(accTh)}</text>`,
  );
  bins.forEach((_, b) => {
    const pts = iterations
      .map((r) => ({ i: r.iteration, acc: r.bins[b]?.accuracy ?? null }))
      .filter((p): p is { i: number; acc: number } => p.acc !== null);
    if (pts.length > 1) {
      parts.push(
        `<polyline class="series" stroke="${color(b)}" points="${pts.map((p) => `${a.x(p.i)},${a.y(Math.max(p.acc, lo))}`).join(' ')}"/>`,
      );
    }
    for (const p of pts) {
      parts.push(
        `<circle class="bin-point" data-bin="${b}" cx="${a.x(p.i)}" cy="${a.y(Math.max(p.acc, lo))}" r="4" fill="${color(b)}"><title>bin ${b}, iteration ${p.i}: ${pct(p.acc)}</title></circle>`,
      );
    }
  });
  const legend = legendOf(bins.map((bin, b) => ({ label: binLabel(bin), color: color(b) })));
  return svg('accuracy', 'Per-bin test accuracy per iteration', parts.join(''), legend);
}

/** Train and test samples per depth bin after the latest iteration (stacked bars). */
function samplesChart(last: IterationRecord): string {
  const max = Math.max(1, ...last.bins.map((b) => b.train + b.test));
  const n = last.bins.length;
  const a = axes([0, n], [0, max * 1.1], { x: 'depth bin', y: 'samples' }, { xTicks: [] });
  const pw = W - M.left - M.right;
  const slot = pw / n;
  const bw = slot * 0.6;
  const parts = [a.svg];
  last.bins.forEach((b, i) => {
    const x = M.left + slot * i + (slot - bw) / 2;
    const yTrain = a.y(b.train);
    const yTest = a.y(b.train + b.test);
    parts.push(
      `<rect class="bar train" data-bin="${i}" x="${x}" y="${yTrain}" width="${bw}" height="${a.y(0) - yTrain}"><title>${binLabel(b)}: ${b.train} train</title></rect>`,
      `<rect class="bar test" data-bin="${i}" x="${x}" y="${yTest}" width="${bw}" height="${yTrain - yTest}"><title>${binLabel(b)}: ${b.test} test</title></rect>`,
      `<text class="tick" x="${x + bw / 2}" y="${H - M.bottom + 16}" text-anchor="middle">${binLabel(b).slice(6)}</text>`,
      `<text class="tick" x="${x + bw / 2}" y="${yTest - 4}" text-anchor="middle">${b.train + b.test}</text>`,
    );
  });
  const legend = legendOf([
    { label: 'train', color: '#4e79a7' },
    { label: 'test', color: '#f28e2b' },
  ]);
  return svg(
    'samples',
    `Samples per depth bin (iteration ${last.iteration})`,
    parts.join(''),
    legend,
  );
}

/** Predicted vs measured values of the test set, coloured by bin, with the y = x line. */
function scatterChart(
  points: readonly TestPoint[],
  binLabels: readonly string[],
  quantity: { name: string; unit: string },
): string {
  const { name, unit } = quantity;
  const all = points.flatMap((p) => [p.measured, p.predicted]);
  const lo = Math.min(...all);
  const hi = Math.max(...all);
  const pad = (hi - lo) * 0.05 || 1;
  const domain: [number, number] = [Math.max(0, lo - pad), hi + pad];
  const a = axes(domain, domain, {
    x: `measured ${name} (${unit})`,
    y: `predicted ${name} (${unit})`,
  });
  const parts = [
    a.svg,
    `<line class="diagonal" x1="${a.x(domain[0])}" y1="${a.y(domain[0])}" x2="${a.x(domain[1])}" y2="${a.y(domain[1])}"/>`,
  ];
  for (const p of points) {
    parts.push(
      `<circle class="point" cx="${fmt(a.x(p.measured), 2)}" cy="${fmt(a.y(p.predicted), 2)}" r="3" fill="${color(p.bin)}"><title>${esc(p.id)} depth ${p.depth}: measured ${fmt(p.measured, 2)}, predicted ${fmt(p.predicted, 2)} ${esc(unit)}</title></circle>`,
    );
  }
  const legend = legendOf(binLabels.map((label, b) => ({ label, color: color(b) })));
  return svg(
    'scatter',
    `Predicted vs measured ${name} (${points.length} test samples)`,
    parts.join(''),
    legend,
  );
}

/** Histogram of the relative error (predicted - measured) / measured in percent. */
function histogramChart(points: readonly TestPoint[], step: number, range: number): string {
  const nBars = Math.ceil((2 * range) / step);
  const counts = new Array<number>(nBars).fill(0);
  for (const p of points) {
    const e = ((p.predicted - p.measured) / p.measured) * 100;
    const i = Math.min(nBars - 1, Math.max(0, Math.floor((e + range) / step)));
    counts[i] = (counts[i] as number) + 1;
  }
  const max = Math.max(1, ...counts);
  const a = axes(
    [-range, range],
    [0, max * 1.1],
    { x: 'relative error (%), clamped at the ends', y: 'test samples' },
    {
      xFormat: (v) => `${v}`,
    },
  );
  const parts = [a.svg];
  counts.forEach((c, i) => {
    const x0 = a.x(-range + i * step);
    const x1 = a.x(Math.min(range, -range + (i + 1) * step));
    parts.push(
      `<rect class="hbar" x="${fmt(x0 + 0.5, 2)}" y="${fmt(a.y(c), 2)}" width="${fmt(Math.max(0, x1 - x0 - 1), 2)}" height="${fmt(a.y(0) - a.y(c), 2)}"><title>${fmt(-range + i * step, 1)}..${fmt(-range + (i + 1) * step, 1)} %: ${c}</title></rect>`,
    );
  });
  parts.push(`<line class="diagonal" x1="${a.x(0)}" x2="${a.x(0)}" y1="${M.top}" y2="${a.y(0)}"/>`);
  return svg('histogram', 'Relative error of the latest predictor on the test set', parts.join(''));
}

/** Accuracy against the number of measured samples: how fast the loop converged. */
function convergenceChart(iterations: readonly IterationRecord[], accTh: number): string {
  const pts = iterations.map((r) => {
    const accs = r.bins.map((b) => b.accuracy).filter((a): a is number => a !== null);
    return {
      iteration: r.iteration,
      samples: r.samples.train + r.samples.test,
      balanced: r.overall.binBalancedAccuracy,
      worst: accs.length ? Math.min(...accs) : null,
    };
  });
  const values = pts.flatMap((p) => [p.balanced, p.worst]).filter((v): v is number => v !== null);
  const lo = Math.floor(Math.max(0, Math.min(accTh - 0.05, ...values)) * 20) / 20;
  const maxSamples = Math.max(1, ...pts.map((p) => p.samples));
  const a = axes(
    [0, maxSamples * 1.05],
    [lo, 1],
    { x: 'measured samples (train + test)', y: 'test accuracy (1 - MAPE)' },
    { yFormat: (v) => `${Math.round(v * 100)}%` },
  );
  const parts = [
    a.svg,
    `<line class="threshold" x1="${M.left}" x2="${W - M.right}" y1="${a.y(accTh)}" y2="${a.y(accTh)}"/>`,
    `<text class="tick" x="${W - M.right}" y="${a.y(accTh) - 4}" text-anchor="end">AccTH ${pct(accTh)}</text>`,
  ];
  const series = [
    { key: 'balanced' as const, label: 'bin-balanced accuracy', color: '#1f77b4' },
    { key: 'worst' as const, label: 'worst bin', color: '#d62728' },
  ];
  for (const s of series) {
    const line = pts
      .filter((p) => p[s.key] !== null)
      .map((p) => ({ x: a.x(p.samples), y: a.y(Math.max(p[s.key] as number, lo)), p }));
    if (line.length > 1) {
      parts.push(
        `<polyline class="series" stroke="${s.color}" points="${line.map((l) => `${fmt(l.x, 2)},${fmt(l.y, 2)}`).join(' ')}"/>`,
      );
    }
    for (const l of line) {
      parts.push(
        `<circle class="convergence-point" data-series="${s.key}" cx="${fmt(l.x, 2)}" cy="${fmt(l.y, 2)}" r="4" fill="${s.color}"><title>iteration ${l.p.iteration}, ${l.p.samples} samples: ${s.label} ${pct(l.p[s.key])}</title></circle>`,
      );
    }
  }
  return svg(
    'convergence',
    'Convergence: accuracy against measured samples',
    parts.join(''),
    legendOf(series),
  );
}

/** Samples (train + test) per depth bin after every iteration: grouped bars, one per iteration. */
function binSamplesChart(iterations: readonly IterationRecord[]): string {
  const bins = iterations[iterations.length - 1]?.bins ?? [];
  const max = Math.max(1, ...iterations.flatMap((r) => r.bins.map((b) => b.train + b.test)));
  const a = axes(
    [0, bins.length],
    [0, max * 1.1],
    { x: 'depth bin', y: 'samples' },
    { xTicks: [] },
  );
  const slot = (W - M.left - M.right) / Math.max(1, bins.length);
  const bw = (slot * 0.8) / Math.max(1, iterations.length);
  const parts = [a.svg];
  bins.forEach((bin, b) => {
    const x0 = M.left + slot * b + slot * 0.1;
    iterations.forEach((r, k) => {
      const n = (r.bins[b]?.train ?? 0) + (r.bins[b]?.test ?? 0);
      const y = a.y(n);
      parts.push(
        `<rect class="bin-iter-bar" data-bin="${b}" data-iteration="${r.iteration}" x="${fmt(x0 + k * bw, 2)}" y="${fmt(y, 2)}" width="${fmt(Math.max(1, bw - 1), 2)}" height="${fmt(a.y(0) - y, 2)}" fill="${color(k)}"><title>${binLabel(bin)}, iteration ${r.iteration}: ${n} samples</title></rect>`,
      );
    });
    parts.push(
      `<text class="tick" x="${fmt(x0 + slot * 0.4, 2)}" y="${H - M.bottom + 16}" text-anchor="middle">${binLabel(bin).slice(6)}</text>`,
    );
  });
  const legend = legendOf(
    iterations.map((r, k) => ({ label: `iteration ${r.iteration}`, color: color(k) })),
  );
  return svg('bin-samples', 'Samples per depth bin after each iteration', parts.join(''), legend);
}

/** Histogram of every measured latency, in `unit`. */
function latencyChart(latencies: readonly number[], unit: string, nBars = 20): string {
  const lo = Math.min(...latencies);
  const hi = Math.max(...latencies);
  const step = (hi - lo) / nBars || 1;
  const counts = new Array<number>(nBars).fill(0);
  for (const v of latencies) {
    const i = Math.min(nBars - 1, Math.floor((v - lo) / step));
    counts[i] = (counts[i] as number) + 1;
  }
  const max = Math.max(1, ...counts);
  const a = axes(
    [lo, lo + nBars * step],
    [0, max * 1.1],
    { x: `measured latency (${unit})`, y: 'samples' },
    { xFormat: (v) => (hi - lo < 10 ? v.toFixed(1) : String(Math.round(v))) },
  );
  const parts = [a.svg];
  counts.forEach((c, i) => {
    const x0 = a.x(lo + i * step);
    const x1 = a.x(lo + (i + 1) * step);
    parts.push(
      `<rect class="lbar" x="${fmt(x0 + 0.5, 2)}" y="${fmt(a.y(c), 2)}" width="${fmt(Math.max(0, x1 - x0 - 1), 2)}" height="${fmt(a.y(0) - a.y(c), 2)}"><title>${fmt(lo + i * step, 2)}..${fmt(lo + (i + 1) * step, 2)} ${esc(unit)}: ${c}</title></rect>`,
    );
  });
  return svg(
    'latencies',
    `Distribution of the ${latencies.length} measured latencies`,
    parts.join(''),
  );
}

/** The devices that measured the run, with their sample counts. */
function deviceFacts(measurements: NonNullable<ReportData['measurements']>): string {
  const counts = new Map<string, number>();
  for (const m of measurements) {
    const name = m.device ?? 'unknown device';
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  if (counts.size === 0) return '<p>No sample has been measured yet.</p>';
  const rows = [...counts].map(([d, n]) => `<tr><td>${esc(d)}</td><td>${n}</td></tr>`).join('');
  return `<table class="kv devices"><thead><tr><th>device</th><th>samples</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/**
 * What an iteration measured a second time, for the run's summary line and report.html:
 * whole jobs whose references drifted, and single samples whose runs spread widely.
 * Empty when nothing was.
 */
export function measuredAgain(quality: IterationRecord['quality']): string {
  const jobs = quality.remeasured;
  const samples = quality.samplesRemeasured ?? 0;
  const parts = [
    jobs > 0 && `${jobs} ${jobs === 1 ? 'job whose references' : 'jobs whose references'} drifted`,
    samples > 0 &&
      `${samples} ${samples === 1 ? 'sample whose runs' : 'samples whose runs'} spread widely`,
  ];
  return parts.filter(Boolean).join(', ');
}

function qualityCell(quality: IterationRecord['quality']): string {
  const again = measuredAgain(quality);
  return `${fmt(quality.maxDrift * 100, 1)} %${again ? ` (measured again: ${again})` : ''}`;
}

/**
 * How widely each sample's timed runs spread (std / median of its runs, what
 * `maxSampleSpread` judges): median and largest over the samples that report a std, and how
 * many are still above the limit although the job runner measured them once more (not for a
 * replay: nothing was measured again). A dataset without std_ms gives nothing.
 */
function spreadFacts(
  measurements: NonNullable<ReportData['measurements']>,
  limit: number | undefined,
): string {
  const spreads = measurements
    .filter((m) => m.std_ms !== undefined && m.latency_ms > 0)
    // A line's latency_ms is its stats' median_ms (datasetLine), whatever the run's metric.
    .map((m) => spread({ std_ms: m.std_ms as number, median_ms: m.latency_ms }))
    .sort((a, b) => a - b);
  if (spreads.length === 0) return '';
  const above =
    limit === undefined
      ? ''
      : `; ${spreads.filter((v) => v > limit).length} still above the re-measure limit of ${pct(limit)}`;
  return `<p class="spread">Spread of each sample's timed runs (std / median), over ${spreads.length} samples: median ${pct(median(spreads))}, largest ${pct(spreads[spreads.length - 1])}${above}.</p>`;
}

/** How to use the predictor: the CLI, and onnxruntime from Python without any of our code. */
function usage(p: RunParams, dir: string): string {
  const { space } = p;
  const cli = [
    `npx esm sample --space ${space} --n 5 > archs.jsonl`,
    `npx esm predict --predictor ${dir} --in archs.jsonl`,
  ].join('\n');
  const python = [
    'import json, numpy as np, onnxruntime as ort',
    `# vectors.jsonl: npx esm encode --space ${space} --encoding ${p.encoding} --in archs.jsonl > vectors.jsonl`,
    `session = ort.InferenceSession("${dir}/predictor.onnx")`,
    'x = np.array([json.loads(l)["vector"] for l in open("vectors.jsonl")], dtype=np.float32)',
    'latency_ms = session.run(["latency_ms"], {"x": x})[0][:, 0]',
  ].join('\n');
  return `<h2>Use this predictor</h2>
<p>From the command line (one <code>{"arch", "latency_ms"}</code> line per input arch):</p>
<pre class="snippet" data-snippet="cli">${esc(cli)}</pre>
<p>From Python with onnxruntime only (docs/predictor.md):</p>
<pre class="snippet" data-snippet="python">${esc(python)}</pre>`;
}

const CSS = `body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px}.sub{color:#666}
.grid-2{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px}
figure{margin:0;border:1px solid #ddd;border-radius:6px;padding:8px;background:#fff}
figcaption{font-weight:600;margin-bottom:4px}svg{max-width:100%;height:auto}
.grid{stroke:#eee}.axis{stroke:#888}.tick{font-size:11px;fill:#555}.label{font-size:12px;fill:#333}
.threshold{stroke:#d62728;stroke-dasharray:6 4}.diagonal{stroke:#999;stroke-dasharray:4 4}
.series{fill:none;stroke-width:2}.bar.train,.legend i.train{fill:#4e79a7}.bar.test{fill:#f28e2b}.hbar{fill:#4e79a7}
.point{fill-opacity:.75}.legend{display:flex;flex-wrap:wrap;gap:12px;font-size:12px;margin-top:4px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:middle}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}.ok{color:#2ca02c}.bad{color:#d62728}
.kv td{text-align:left}.lbar{fill:#59a14f}
pre.snippet{background:#f6f8fa;border:1px solid #ddd;border-radius:6px;padding:10px;overflow:auto;font-size:12.5px}
.unit{background:#fff8e1;border-left:4px solid #f2c94c;padding:6px 10px}`;

/**
 * A replay's predictor on the rest of its pool, per bin beside the loop's verdict: a bin
 * that passed on its few test samples but not here is marked.
 */
function poolTruthTable(truth: PoolTruth, iteration: number, accTh: number): string {
  const rows = truth.bins
    .map((b) => {
      const ok = b.accuracy === null || b.accuracy >= accTh;
      const verdict = b.passedByRun
        ? ok
          ? 'passed'
          : 'passed by the loop, under AccTH here'
        : 'failed';
      return `<tr><td>${binLabel(b)}</td><td>${b.n}</td><td class="${ok ? 'ok' : 'bad'}">${pct(b.accuracy)}</td><td>${verdict}</td></tr>`;
    })
    .join('');
  return `<h2>On the rest of the pool</h2>
<p class="sub">The predictor of iteration ${iteration} on the ${truth.n} rows of the replayed dataset this run did not draw: accuracy ${pct(truth.accuracy)}, within 10 % ${pct(truth.within10)}, Spearman ${truth.spearman === null ? '-' : fmt(truth.spearman, 3)}.</p>
<table><thead><tr><th>depth bin</th><th>rows</th><th>accuracy</th><th>the run's verdict</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/** The report page; pure: the same records give the same HTML. */
export function renderReport(data: ReportData, options: RenderOptions = {}): string {
  const { histogramStep = 1, histogramRange = 20 } = options;
  const { state, iterations, points } = data;
  const p = state.params;
  const last = iterations[iterations.length - 1];
  const status =
    state.status === 'converged'
      ? `<span class="ok">converged</span> after ${iterations.length} iterations`
      : state.status === 'max-iter'
        ? `<span class="bad">not converged</span>: stopped at max-iter (${iterations.length} iterations)`
        : state.status === 'pool-exhausted'
          ? `<span class="bad">not converged</span>: every architecture of the replayed pool measured (${iterations.length} iterations)`
          : state.status === 'failed'
            ? `<span class="bad">failed</span>: ${esc(state.error ?? '')}`
            : `in progress (iteration ${state.iteration})`;
  const binLabels = (last?.bins ?? []).map(binLabel);
  const unit = latencyUnit(p);
  const measurements = data.measurements ?? [];
  const latencies = measurements.map((m) => m.latency_ms);
  const charts = last
    ? [
        convergenceChart(iterations, p.accTh),
        accuracyChart(iterations, p.accTh),
        binSamplesChart(iterations),
        samplesChart(last),
        latencies.length ? latencyChart(latencies, unit.axis) : '',
        points.length ? scatterChart(points, binLabels, learnedQuantity(p)) : '',
        points.length ? histogramChart(points, histogramStep, histogramRange) : '',
      ].join('')
    : '<p>No iteration has finished yet.</p>';
  const pool: [string, string][] =
    p.dropBelow === undefined
      ? []
      : [['pool', `rows with ${p.metric} under ${p.dropBelow} left out (--drop-below)`]];
  const params: [string, string][] = [
    ['space', p.space],
    ['device', p.device],
    ...pool,
    ['sampling', p.sampling],
    ['encoding', p.encoding],
    ['N_I / N_Step', `${p.nInit} / ${p.nStep}`],
    ['AccTH', pct(p.accTh)],
    ['depth bins', String(p.bins)],
    ['w1', String(p.w1)],
    ['max iterations', String(p.maxIter)],
    ['test fraction', String(p.testFraction)],
    ['seed', String(p.seed)],
    [
      'measurement',
      p.device.startsWith('dataset:')
        ? 'replayed: latencies as measured in the dataset'
        : `${p.measurement.warmup} warm-up + ${p.measurement.runs} timed runs, ${p.measurement.threads} thread(s), max drift ${pct(p.measurement.maxReferenceDrift)}${p.measurement.clock ? `, ${p.measurement.clock} clock` : ''}${interleaving(p.measurement)}${p.measurement.maxSampleSpread === undefined ? '' : `, a sample measured again when its std exceeds ${pct(p.measurement.maxSampleSpread)} of its median`}`,
    ],
  ];
  const rows = iterations
    .map(
      (r) =>
        `<tr><td>${r.iteration}</td><td>${r.samples.train}</td><td>${r.samples.test}</td>${r.bins
          .map((b) => binCell(b, p))
          .join(
            '',
          )}<td>${pct(r.overall.accuracy)}</td><td>${pct(r.overall.binBalancedAccuracy)}</td><td>${pct(r.overall.within10)}</td><td>${r.overall.spearman === null ? '-' : fmt(r.overall.spearman, 3)}</td><td>${fmt(r.secondsMeasuring, 0)}</td><td>${fmt(r.secondsTraining, 0)}</td><td>${qualityCell(r.quality)}</td></tr>`,
    )
    .join('');
  const binHeads = (last?.bins ?? []).map((b) => `<th>${binLabel(b)}</th>`).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ESM run ${esc(state.runId)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${CSS}</style></head>
<body>
<h1>ESM run ${esc(state.runId)}</h1>
<p class="sub">${esc(p.space)} on ${esc(p.device)}: ${status}; ${data.samples} architectures measured.</p>
<p class="unit">${esc(unit.note)}</p>
<div class="grid-2">${charts}</div>
<h2>Devices</h2>
${deviceFacts(measurements)}
${spreadFacts(measurements, p.device.startsWith('dataset:') ? undefined : p.measurement.maxSampleSpread)}
${last && data.predictorDir ? usage(p, data.predictorDir) : ''}
<h2>Iterations</h2>
<table><thead><tr><th>iteration</th><th>train</th><th>test</th>${binHeads}<th>accuracy</th><th>bin-balanced</th><th>within 10 %</th><th>Spearman</th><th>measuring (s)</th><th>training (s)</th><th>max drift</th></tr></thead><tbody>${rows}</tbody></table>
${last?.poolTruth ? poolTruthTable(last.poolTruth, last.iteration, p.accTh) : ''}
<h2>Parameters</h2>
<table class="kv"><tbody>${params.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</tbody></table>
<p class="sub">Accuracy is 1 - |predicted - measured| / measured on held-out test samples (a fixed share of every batch, drawn per depth bin); bin-balanced is the mean of the per-bin accuracies. A bin's colour says whether it passed AccTH as the loop judged it: on its test samples, or, under <code>--bin-accuracy oof</code>, on the accuracy shown below it. Created ${esc(state.createdAt)}.</p>
</body></html>
`;
}

/** Reads the run's records and writes report.html next to them; returns its path. */
export function writeReport(store: RunStore, options: RenderOptions = {}): string {
  const file = store.path('predictions');
  const points: TestPoint[] = existsSync(file)
    ? (JSON.parse(readFileSync(file, 'utf8')).points as TestPoint[])
    : [];
  const measurements = store.measurements();
  const html = renderReport(
    {
      state: store.state,
      iterations: store.iterations(),
      points,
      samples: measurements.length,
      measurements,
      predictorDir: store.path('predictor'),
    },
    options,
  );
  const out = store.path('report');
  writeFileAtomic(out, html);
  return out;
}

/** How latencies were scaled when samples were timed interleaved with a reference model. */
function interleaving(m: RunParams['measurement']): string {
  if (!m.interleave) return '';
  const scale = m.referenceScaleMs === undefined ? '' : ` = ${m.referenceScaleMs} ms`;
  return `, interleaved with a reference (latency relative to it x its calibration${scale})`;
}
