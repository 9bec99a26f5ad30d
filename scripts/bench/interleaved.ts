/**
 * Does timing a model interleaved, run by run, with a reference model, and reporting the
 * ratio, cancel the speed changes of a shared machine? Spawns N processes (pinned to one
 * core with real-time priority when `taskset` and `chrt` work); each times model X and the
 * reference R alternately and reports X's raw median, the median of the per-run ratios X/R,
 * and the ratio of the medians; then measures X once more through the product's path,
 * `runJob` with `settings.interleave` and a fixed `referenceScaleMs` (what `esm run
 * --interleave` sends after its first job). Prints the process-to-process CV of each.
 *
 *   npx tsx scripts/bench/interleaved.ts [--processes 10] [--runs 100] [--clock wall|cpu]
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { runJob } from '../../device-client/job-runner.ts';
import { ModelSession } from '../../device-client/measure.ts';
import { stabilityReference } from '../../device-client/references.ts';

const { values } = parseArgs({
  options: {
    child: { type: 'boolean', default: false },
    processes: { type: 'string', default: '10' },
    runs: { type: 'string', default: '100' },
    clock: { type: 'string', default: 'wall' },
  },
});
const clock = values.clock === 'cpu' ? 'cpu' : 'wall';
const runs = Number(values.runs);

/** A larger MobileNetV3 subnet than the reference (k7 e6 d3, r192). */
const modelX = { ks: Array(20).fill(7), e: Array(20).fill(6), d: Array(5).fill(3), r: 192 };

const median = (a: readonly number[]) => {
  const s = [...a].sort((p, q) => p - q);
  return s[Math.floor(s.length / 2)] as number;
};
const cv = (a: readonly number[]) => {
  const m = a.reduce((p, q) => p + q, 0) / a.length;
  return Math.sqrt(a.reduce((p, q) => p + (q - m) ** 2, 0) / (a.length - 1)) / m;
};

async function child(): Promise<void> {
  const graph = (arch: unknown) => mobilenetv3.layerGraph(mobilenetv3.parse(arch));
  const settings = { warmup: 10, runs: 1, threads: 1, batchSize: 1, clock } as const;
  const x = await ModelSession.open(graph(modelX), settings);
  const r = await ModelSession.open(graph(stabilityReference.arch), settings);
  await x.warmup(10);
  await r.warmup(10);
  const tx: number[] = [];
  const tr: number[] = [];
  for (let i = 0; i < runs; i++) {
    tx.push((await x.time(1))[0] as number);
    tr.push((await r.time(1))[0] as number);
  }
  const ratio = median(tx.map((v, i) => v / (tr[i] as number)));
  await x.release();
  await r.release();
  const result = await runJob(
    {
      v: 1,
      type: 'job',
      runId: 'bench',
      batchId: 'interleaved',
      space: 'mobilenetv3',
      samples: [{ id: 'x', arch: modelX }],
      settings: {
        ...settings,
        runs,
        referenceEvery: 0,
        maxReferenceDrift: 1,
        interleave: true,
        referenceScaleMs: 5,
      },
      references: [
        { id: stabilityReference.id, space: 'mobilenetv3', arch: stabilityReference.arch },
      ],
    },
    { thing: 'bench', retryUnstable: false },
  );
  const runJobMs = result.samples[0]?.stats.median_ms as number;
  process.stdout.write(
    `${JSON.stringify({ raw: median(tx), ratio, ratioOfMedians: median(tx) / median(tr), runJobMs })}\n`,
  );
}

function parent(): void {
  const script = fileURLToPath(import.meta.url);
  const args = ['--import', 'tsx', script, '--child', '--runs', String(runs), '--clock', clock];
  const canPin = (() => {
    try {
      execFileSync('taskset', ['-c', '1', 'chrt', '-f', '10', 'true']);
      return true;
    } catch {
      return false;
    }
  })();
  const rows: { raw: number; ratio: number; ratioOfMedians: number; runJobMs: number }[] = [];
  const loadBefore = loadavg()[0]?.toFixed(2);
  for (let i = 0; i < Number(values.processes); i++) {
    const out = canPin
      ? execFileSync('taskset', ['-c', '1', 'chrt', '-f', '10', process.execPath, ...args])
      : execFileSync(process.execPath, args);
    rows.push(JSON.parse(out.toString().trim().split('\n').pop() as string));
  }
  console.log(
    `${rows.length} processes, ${runs} interleaved runs each, ${clock} clock, pinned + real-time: ${canPin}, load ${loadBefore} -> ${loadavg()[0]?.toFixed(2)}`,
  );
  for (const key of ['raw', 'ratio', 'ratioOfMedians', 'runJobMs'] as const) {
    const v = rows.map((r) => r[key]);
    console.log(
      `  ${key}: CV ${(cv(v) * 100).toFixed(2)} % (${v.map((x) => x.toFixed(3)).join(' ')})`,
    );
  }
}

if (values.child) await child();
else parent();
