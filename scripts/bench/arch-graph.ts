/**
 * Throughput of the arch-in graph (predictor-arch.onnx: arch rows in, latency out, the
 * encoding computed by onnxruntime) against the encode-in-JavaScript path (predictor.onnx
 * after the JS encoder, what `esm predict` does), both from onnxruntime-node with one
 * intra-op thread, in batches and one arch at a time (an evolution search asking for one
 * candidate's latency).
 *
 *   npx tsx scripts/bench/arch-graph.ts [--space mobilenetv3] [--encoding fcc] [--model mlp]
 *     [--n 100000] [--single 5000] [--runs 5] [--general] [--fast]
 *
 * `--space` and `--model` take comma-separated lists (every combination is measured, one
 * after the other, with a summary table at the end). predictor-arch.onnx is the folded graph
 * where the model allows it (core/onnx/arch-fold.ts; the output says which); `--general`
 * also measures the general graph of the same predictor (archFiles with fold: false).
 * `--fast` measures only the arch graph's batch and single rows (not the JS paths).
 *
 * Paths (median of `--runs` runs; archs per wall second and per CPU second of the process):
 * - JS encode + predictor.onnx, batch: `predictSubnets(subnets)` (chunks of 4,096 rows);
 * - arch graph, batch, rows given: int64 rows already built (what a Python or C++ caller
 *   holds), `session.run` in chunks of 4,096 rows;
 * - arch graph, batch, from Subnet objects: `archRowsInt64` + the same runs;
 * - one at a time, both ways: `--single` calls with a batch of 1.
 *
 * Prints the machine's load average before and after (the machine is often shared: the
 * per-CPU-second rates are the comparable numbers there), the graph kind, its node count and
 * file size, and the largest relative difference from the JS path on 1,000 archs.
 */
import { readFile, rm } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import type { EncodingName } from '../../core/encodings/index.ts';
import { archFiles } from '../../core/onnx/arch-graph-files.ts';
import {
  ARCH_JSON,
  ARCH_ONNX,
  archRowLayout,
  archRowsInt64,
} from '../../core/onnx/arch-graph-layout.ts';
import { decodeModel } from '../../core/onnx/model.ts';
import { fitPredictor } from '../../core/predictor/index.ts';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import type { ModelKind } from '../../core/predictor/types.ts';
import { createRng } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import type { SearchSpace, Subnet } from '../../core/spaces/types.ts';
import { loadPredictor, savePredictor } from '../../local/predictor-store.ts';

const { values: args } = parseArgs({
  options: {
    space: { type: 'string', default: 'mobilenetv3' },
    encoding: { type: 'string', default: 'fcc' },
    model: { type: 'string', default: 'mlp' },
    n: { type: 'string', default: '100000' },
    single: { type: 'string', default: '5000' },
    runs: { type: 'string', default: '5' },
    general: { type: 'boolean', default: false },
    fast: { type: 'boolean', default: false },
  },
});
const n = Number(args.n);
const single = Number(args.single);
const runs = Number(args.runs);
const CHUNK = 4096;

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

async function rate(count: number, fn: () => Promise<unknown>) {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < runs; r++) {
    const started = performance.now();
    const cpuStarted = process.cpuUsage();
    await fn();
    const used = process.cpuUsage(cpuStarted);
    wall.push((performance.now() - started) / 1000);
    cpu.push((used.user + used.system) / 1e6);
  }
  return {
    wall: Math.round(count / median(wall)),
    cpu: Math.round(count / median(cpu)),
    usPerArch: Number(((1e6 * median(wall)) / count).toFixed(2)),
  };
}

type Rate = { wall: number; cpu: number; usPerArch: number };
const summary: string[] = [];

async function session(bytes: Uint8Array) {
  return ort.InferenceSession.create(bytes, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  });
}

async function runRows(s: ort.InferenceSession, rows: BigInt64Array, L: number, count: number) {
  for (let start = 0; start < count; start += CHUNK) {
    const m = Math.min(CHUNK, count - start);
    await s.run({
      arch: new ort.Tensor('int64', rows.subarray(start * L, (start + m) * L), [m, L]),
    });
  }
}

/** Batch and one-at-a-time rates of an arch graph on int64 rows (chunks of 4,096). */
async function graphRates(bytes: Uint8Array, rows: BigInt64Array, L: number) {
  const s = await session(bytes);
  await runRows(s, rows, L, Math.min(n, 2 * CHUNK));
  const batch = await rate(n, () => runRows(s, rows, L, n));
  const one = await rate(single, async () => {
    for (let i = 0; i < single; i++) {
      await s.run({ arch: new ort.Tensor('int64', rows.subarray(i * L, (i + 1) * L), [1, L]) });
    }
  });
  await s.release();
  return { batch, one };
}

async function bench(space: SearchSpace, model: string) {
  const rng = createRng(1);
  const train = Array.from({ length: 1000 }, () => randomSubnet(space, rng)).map((subnet) => ({
    subnet,
    latencyMs: syntheticLatencyMs(space, subnet, { noise: 0.01, rng }),
  }));
  const fitted = await fitPredictor({
    space,
    rows: train,
    trainFraction: 1,
    model: model as ModelKind,
    encoding: args.encoding as EncodingName,
    data: { file: 'synthetic', sha256: '0'.repeat(64) },
  });
  const dir = `/tmp/esm-bench-arch-${process.pid}`;
  await savePredictor(dir, fitted.predictor);
  const predictor = await loadPredictor(dir, { threads: 1 });
  const bytes = new Uint8Array(await readFile(join(dir, ARCH_ONNX)));
  const graphKind = JSON.parse(await readFile(join(dir, ARCH_JSON), 'utf8')).graph as string;
  const nodes = decodeModel(bytes).nodes.length;
  const L = archRowLayout(space).length;
  const subnets: Subnet[] = Array.from({ length: n }, () => randomSubnet(space, rng));
  const rows = archRowsInt64(space, subnets);
  // Same answers both ways, or the comparison means nothing.
  const check = await session(bytes);
  const js = await predictor.predictSubnets(subnets.slice(0, 1000));
  const graph = (
    await check.run({ arch: new ort.Tensor('int64', rows.subarray(0, 1000 * L), [1000, L]) })
  ).latency_ms?.data as Float32Array;
  await check.release();
  let worst = 0;
  for (let i = 0; i < 1000; i++) {
    const d = Math.abs((graph[i] as number) - (js[i] as number)) / (js[i] as number);
    worst = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(worst, d);
  }

  const loadBefore = loadavg();
  const results: Record<string, Rate> = {};
  if (!args.fast) {
    results['batch: JS encode + predictor.onnx (predictSubnets)'] = await rate(n, () =>
      predictor.predictSubnets(subnets),
    );
  }
  const arch = await graphRates(bytes, rows, L);
  results[`batch: predictor-arch.onnx (${graphKind}), int64 rows given`] = arch.batch;
  if (!args.fast) {
    const s = await session(bytes);
    results['batch: predictor-arch.onnx, rows built from Subnet objects'] = await rate(n, () =>
      runRows(s, archRowsInt64(space, subnets), L, n),
    );
    await s.release();
  }
  let general: Awaited<ReturnType<typeof graphRates>> | undefined;
  let generalNodes = 0;
  if (args.general && graphKind === 'folded') {
    const files = archFiles(space, fitted.predictor, undefined, { fold: false });
    if (files) {
      generalNodes = decodeModel(files.onnx).nodes.length;
      general = await graphRates(files.onnx, rows, L);
      results['batch: predictor-arch.onnx (general), int64 rows given'] = general.batch;
    }
  }
  const few = subnets.slice(0, single);
  if (!args.fast) {
    results['one at a time: JS encode + predictor.onnx'] = await rate(single, async () => {
      for (const s of few) await predictor.predictSubnets([s]);
    });
  }
  results[`one at a time: predictor-arch.onnx (${graphKind}), row given`] = arch.one;
  if (general) results['one at a time: predictor-arch.onnx (general), row given'] = general.one;
  await predictor.close();
  await rm(dir, { recursive: true, force: true });

  const machine = { cpus: cpus().length, node: process.version, loadBefore, loadAfter: loadavg() };
  const model_ = `${model}${fitted.predictor.training.chosen ? ` (chose ${fitted.predictor.training.chosen.map((c) => c.name).join('+')})` : ''}`;
  process.stdout.write(
    `${JSON.stringify({ machine, date: new Date().toISOString(), space: space.name, encoding: args.encoding, model: model_, features: fitted.predictor.features.length, graph: graphKind, nodes, generalNodes: generalNodes || undefined, bytes: bytes.length, rowLength: L, n, single, runs, maxRelativeDifference: worst, results }, null, 2)}\n\n`,
  );
  const lines = [
    `| path (${space.name}, ${model_}, ${args.encoding}) | archs/s (wall) | archs per CPU second | us per arch (wall) |`,
    '|---|---|---|---|',
    ...Object.entries(results).map(
      ([name, r]) =>
        `| ${name} | ${r.wall.toLocaleString('en')} | ${r.cpu.toLocaleString('en')} | ${r.usPerArch} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n\n`);
  const load = `${loadBefore.map((l) => l.toFixed(1)).join(' ')} / ${machine.loadAfter.map((l) => l.toFixed(1)).join(' ')}`;
  summary.push(
    `| ${space.name} | ${model_} | ${graphKind} (${nodes} nodes) | ${arch.batch.cpu.toLocaleString('en')} | ${arch.batch.wall.toLocaleString('en')} | ${arch.one.usPerArch} | ${general ? general.batch.cpu.toLocaleString('en') : '-'} | ${worst.toExponential(1)} | ${load} |`,
  );
}

for (const name of args.space.split(',')) {
  for (const model of args.model.split(',')) await bench(getSpace(name), model);
}
process.stdout.write(
  `${[
    '| space | model | graph | batch archs per CPU s | batch archs/s (wall) | one at a time, us (wall) | general graph, batch archs per CPU s | max rel. diff vs JS | load before / after |',
    '|---|---|---|---|---|---|---|---|---|',
    ...summary,
  ].join('\n')}\n`,
);
