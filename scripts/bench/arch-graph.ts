/**
 * Throughput of the arch-in graph (predictor-arch.onnx: arch rows in, latency out, the
 * encoding computed by onnxruntime) against the encode-in-JavaScript path (predictor.onnx
 * after the JS encoder, what `esm predict` does), both from onnxruntime-node with one
 * intra-op thread, in batches and one arch at a time (an evolution search asking for one
 * candidate's latency).
 *
 *   npx tsx scripts/bench/arch-graph.ts [--space mobilenetv3] [--encoding fcc] [--model mlp]
 *     [--n 100000] [--single 5000] [--runs 5]
 *
 * Paths (median of `--runs` runs; archs per wall second and per CPU second of the process):
 * - JS encode + predictor.onnx, batch: `predictSubnets(subnets)` (chunks of 4,096 rows);
 * - arch graph, batch, rows given: int64 rows already built (what a Python or C++ caller
 *   holds), `session.run` in chunks of 4,096 rows;
 * - arch graph, batch, from Subnet objects: `archRowsInt64` + the same runs;
 * - one at a time, both ways: `--single` calls with a batch of 1.
 */
import { rm } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import type { EncodingName } from '../../core/encodings/index.ts';
import { ARCH_ONNX, archRowLayout, archRowsInt64 } from '../../core/onnx/arch-graph-layout.ts';
import { fitPredictor } from '../../core/predictor/index.ts';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import type { ModelKind } from '../../core/predictor/types.ts';
import { createRng } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import type { Subnet } from '../../core/spaces/types.ts';
import { loadPredictor, savePredictor } from '../../local/predictor-store.ts';

const { values: args } = parseArgs({
  options: {
    space: { type: 'string', default: 'mobilenetv3' },
    encoding: { type: 'string', default: 'fcc' },
    model: { type: 'string', default: 'mlp' },
    n: { type: 'string', default: '100000' },
    single: { type: 'string', default: '5000' },
    runs: { type: 'string', default: '5' },
  },
});
const space = getSpace(args.space);
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

const rng = createRng(1);
const train = Array.from({ length: 1000 }, () => randomSubnet(space, rng)).map((subnet) => ({
  subnet,
  latencyMs: syntheticLatencyMs(space, subnet, { noise: 0.01, rng }),
}));
const fitted = await fitPredictor({
  space,
  rows: train,
  trainFraction: 1,
  model: args.model as ModelKind,
  encoding: args.encoding as EncodingName,
  data: { file: 'synthetic', sha256: '0'.repeat(64) },
});
const dir = `/tmp/esm-bench-arch-${process.pid}`;
await savePredictor(dir, fitted.predictor);
const predictor = await loadPredictor(dir, { threads: 1 });
const session = await ort.InferenceSession.create(join(dir, ARCH_ONNX), {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  logSeverityLevel: 3,
});
const L = archRowLayout(space).length;
const subnets: Subnet[] = Array.from({ length: n }, () => randomSubnet(space, rng));
const rows = archRowsInt64(space, subnets);

const runRows = async (data: BigInt64Array, count: number) => {
  for (let start = 0; start < count; start += CHUNK) {
    const m = Math.min(CHUNK, count - start);
    await session.run({
      arch: new ort.Tensor('int64', data.subarray(start * L, (start + m) * L), [m, L]),
    });
  }
};
// Same answers both ways, or the comparison means nothing.
const js = await predictor.predictSubnets(subnets.slice(0, 1000));
const graph = (
  await session.run({ arch: new ort.Tensor('int64', rows.subarray(0, 1000 * L), [1000, L]) })
).latency_ms?.data as Float32Array;
let worst = 0;
for (let i = 0; i < 1000; i++) {
  worst = Math.max(worst, Math.abs((graph[i] as number) - (js[i] as number)) / (js[i] as number));
}

const loadBefore = loadavg();
const results: Record<string, { wall: number; cpu: number; usPerArch: number }> = {};
results['batch: JS encode + predictor.onnx (predictSubnets)'] = await rate(n, () =>
  predictor.predictSubnets(subnets),
);
results['batch: predictor-arch.onnx, int64 rows given'] = await rate(n, () => runRows(rows, n));
results['batch: predictor-arch.onnx, rows built from Subnet objects'] = await rate(n, () =>
  runRows(archRowsInt64(space, subnets), n),
);
const few = subnets.slice(0, single);
results['one at a time: JS encode + predictor.onnx'] = await rate(single, async () => {
  for (const s of few) await predictor.predictSubnets([s]);
});
results['one at a time: predictor-arch.onnx, row given'] = await rate(single, async () => {
  for (let i = 0; i < single; i++) {
    await session.run({ arch: new ort.Tensor('int64', rows.subarray(i * L, (i + 1) * L), [1, L]) });
  }
});
await predictor.close();
await session.release();
await rm(dir, { recursive: true, force: true });

const machine = { cpus: cpus().length, node: process.version, loadBefore, loadAfter: loadavg() };
process.stdout.write(
  `${JSON.stringify({ machine, space: space.name, encoding: args.encoding, model: args.model, rowLength: L, n, single, runs, maxRelativeDifference: worst, results }, null, 2)}\n\n`,
);
const lines = [
  `| path (${args.space}, ${args.model}, ${args.encoding}) | archs/s (wall) | archs per CPU second | us per arch (wall) |`,
  '|---|---|---|---|',
  ...Object.entries(results).map(
    ([name, r]) =>
      `| ${name} | ${r.wall.toLocaleString('en')} | ${r.cpu.toLocaleString('en')} | ${r.usPerArch} |`,
  ),
];
process.stdout.write(`${lines.join('\n')}\n`);
