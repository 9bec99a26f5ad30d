/**
 * Predictor benchmark: accuracy of MLP vs ridge vs LUT on synthetic-but-realistic latencies
 * (core/predictor/synthetic.ts, 1 % measurement noise), MLP training time, prediction
 * throughput (tfjs and ONNX, with and without encoding) and memory.
 *
 *   npx tsx scripts/bench/predictor.ts [--space mobilenetv3] [--encoding fcc]
 *     [--sizes 500,1000,4000] [--repeats 3] [--test 2000] [--predict 100000] [--variants all]
 *
 * One core: tfjs's WebAssembly backend runs single-threaded in Node (it reports no
 * multithread support there) and onnxruntime sessions get intraOpNumThreads = 1.
 * Results are printed as JSON and as Markdown for docs/BENCHMARKS.md. Besides wall time,
 * CPU time (user + system) of this process is reported: on a shared, oversubscribed machine
 * it is what a dedicated core would take.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createEncoder, type EncodingName } from '../../core/encodings/index.ts';
import { fitPredictor } from '../../core/predictor/index.ts';
import type { MlpOptions, MlpRegressor } from '../../core/predictor/mlp.ts';
import { predictWithTrainer } from '../../core/predictor/mlp.ts';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { defaultTrainer } from '../../core/predictor/trainer.ts';
import type { ModelKind } from '../../core/predictor/types.ts';
import { createRng } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import type { Subnet } from '../../core/spaces/types.ts';
import { loadPredictor, savePredictor } from '../../local/predictor-store.ts';
import { median } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    space: { type: 'string', default: 'mobilenetv3' },
    encoding: { type: 'string', default: 'fcc' },
    sizes: { type: 'string', default: '500,1000,4000' },
    repeats: { type: 'string', default: '3' },
    test: { type: 'string', default: '2000' },
    predict: { type: 'string', default: '100000' },
    variants: { type: 'string', default: 'all' },
  },
});
const space = getSpace(args.space);
const encoding = args.encoding as EncodingName;
const sizes = args.sizes.split(',').map(Number);
const repeats = Number(args.repeats);
const nTest = Number(args.test);
const nPredict = Number(args.predict);

interface Variant {
  readonly name: string;
  readonly model: ModelKind;
  readonly mlp?: MlpOptions;
  readonly ridge?: { target: 'log' | 'linear' };
}
const allVariants: Variant[] = [
  { name: 'mlp (default)', model: 'mlp' },
  { name: 'mlp ensemble 3', model: 'mlp', mlp: { ensemble: 3 } },
  { name: 'mlp linear base only', model: 'mlp', mlp: { ensemble: 0 } },
  { name: 'plain mlp (no base)', model: 'mlp', mlp: { base: 'none' } },
  { name: 'ridge (default: target by CV)', model: 'ridge' },
  { name: 'ridge log', model: 'ridge', ridge: { target: 'log' } },
  { name: 'ridge ms', model: 'ridge', ridge: { target: 'linear' } },
  { name: 'lut', model: 'lut' },
];
const variants =
  args.variants === 'all'
    ? allVariants
    : allVariants.filter((v) => args.variants.split(',').includes(v.name));

const mb = (bytes: number) => Math.round(bytes / 2 ** 20);

function dataset(n: number, seed: number): { subnet: Subnet; latencyMs: number }[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => {
    const subnet = randomSubnet(space, rng);
    return { subnet, latencyMs: syntheticLatencyMs(space, subnet, { noise: 0.01, rng }) };
  });
}

// 1. Accuracy and training time: train on `size` rows, test on the same held-out rows.
const accuracy: Record<
  string,
  Record<
    number,
    { accuracy: number; within5: number; seconds: number; cpuSeconds: number; epochs?: number }
  >
> = {};
let peakTrainRss = 0;
for (const size of sizes) {
  for (const variant of variants) {
    const runs: {
      accuracy: number;
      within5: number;
      seconds: number;
      cpuSeconds: number;
      epochs?: number;
    }[] = [];
    for (let r = 0; r < repeats; r++) {
      const rows = [...dataset(size, 100 + r), ...dataset(nTest, 900 + r)];
      const cpu = process.cpuUsage();
      const fitted = await fitPredictor({
        space,
        rows,
        train: size,
        model: variant.model,
        encoding,
        seed: r,
        data: { file: 'synthetic', sha256: '0'.repeat(64) },
        options: { mlp: variant.mlp, ridge: variant.ridge },
      });
      const test = fitted.test;
      if (!test) throw new Error('no test rows');
      const used = process.cpuUsage(cpu);
      runs.push({
        cpuSeconds: (used.user + used.system) / 1e6,
        accuracy: test.accuracy,
        within5: test.within5,
        seconds: fitted.train.seconds,
        epochs: fitted.predictor.training.epochs,
      });
      peakTrainRss = Math.max(peakTrainRss, process.memoryUsage().rss);
    }
    const entry = {
      accuracy: median(runs.map((x) => x.accuracy)),
      within5: median(runs.map((x) => x.within5)),
      seconds: median(runs.map((x) => x.seconds)),
      cpuSeconds: median(runs.map((x) => x.cpuSeconds)),
      epochs:
        runs[0]?.epochs === undefined ? undefined : median(runs.map((x) => x.epochs as number)),
    };
    accuracy[variant.name] ??= {};
    (accuracy[variant.name] as Record<number, typeof entry>)[size] = entry;
    process.stderr.write(`${size} ${variant.name}: ${JSON.stringify(entry)}\n`);
  }
}

// 2. Prediction throughput with a default MLP trained on 1,000 rows.
const fitted = await fitPredictor({
  space,
  rows: dataset(1000, 1),
  trainFraction: 1,
  encoding,
  data: { file: 'synthetic', sha256: '0'.repeat(64) },
});
const dir = await mkdtemp(join(tmpdir(), 'esm-bench-predictor-'));
await savePredictor(dir, fitted.predictor);
const loaded = await loadPredictor(dir, { threads: 1 });
await rm(dir, { recursive: true, force: true });
const subnets = Array.from({ length: nPredict }, (_, i) => randomSubnet(space, createRng(i)));
const archs = subnets.map((s) => space.toNative(s));
const encoder = createEncoder(space, encoding);
const cols = encoder.length;
const encoded = new Float32Array(nPredict * cols);
/** Archs per second of wall time and per second of this process's CPU time (medians). */
const time = async (fn: () => Promise<unknown> | unknown, times = 5) => {
  const seconds: number[] = [];
  const cpuSeconds: number[] = [];
  for (let i = 0; i < times; i++) {
    const t = performance.now();
    const cpu = process.cpuUsage();
    await fn();
    const used = process.cpuUsage(cpu);
    seconds.push((performance.now() - t) / 1000);
    cpuSeconds.push((used.user + used.system) / 1e6);
  }
  return { wall: nPredict / median(seconds), cpu: nPredict / median(cpuSeconds) };
};
const encodePerSecond = await time(() => {
  subnets.forEach((s, i) => {
    encoded.set(encoder.encode(s), i * cols);
  });
});
const parsePerSecond = await time(() => archs.map((a) => space.parse(a)));
const onnxPerSecond = await time(() => loaded.predictEncoded(encoded, nPredict));
const onnxWithEncodingPerSecond = await time(() => loaded.predictSubnets(subnets));
const onnxFromArchsPerSecond = await time(() => loaded.predict(archs), 3);
const trainer = await defaultTrainer();
const matrix = { rows: nPredict, cols, data: Float64Array.from(encoded) };
const state = (fitted.regressor as MlpRegressor).state;
const tfjsPerSecond = await time(() => predictWithTrainer(state, matrix, trainer), 3);
const memory = process.memoryUsage();
await loaded.close();

const results = {
  machine: {
    cpus: (await import('node:os')).cpus().length,
    node: process.version,
    backend: trainer.backend,
  },
  space: space.name,
  encoding,
  encodingLength: cols,
  repeats,
  nTest,
  accuracy,
  throughput: {
    n: nPredict,
    encodePerSecond,
    parsePerSecond,
    onnxPerSecond,
    onnxWithEncodingPerSecond,
    onnxFromArchsPerSecond,
    tfjsPerSecond,
  },
  memoryMb: { peakTrainRss: mb(peakTrainRss), rss: mb(memory.rss), heapUsed: mb(memory.heapUsed) },
};
process.stdout.write(`${JSON.stringify(results, null, 2)}\n\n`);

const pct = (v: number) => `${(100 * v).toFixed(2)} %`;
const lines = [
  `| model | ${sizes.map((s) => `${s} train`).join(' | ')} |`,
  `|---|${sizes.map(() => '---').join('|')}|`,
  ...Object.entries(accuracy).map(
    ([name, bySize]) =>
      `| ${name} | ${sizes
        .map((s) => {
          const e = bySize[s];
          return e
            ? `${pct(e.accuracy)} (${e.seconds.toFixed(1)} s wall, ${e.cpuSeconds.toFixed(1)} s CPU${e.epochs !== undefined ? `, ${e.epochs} ep` : ''})`
            : '';
        })
        .join(' | ')} |`,
  ),
  '',
  `| prediction path (${nPredict} archs, 1 thread) | per second (wall) | per CPU second |`,
  '|---|---|---|',
  ...(
    [
      [`encode only (${encoding}, JS)`, encodePerSecond],
      ['parse native arch JSON only', parsePerSecond],
      ['ONNX on encoded float32', onnxPerSecond],
      ['ONNX incl. encoding (subnets)', onnxWithEncodingPerSecond],
      ['ONNX incl. parsing + encoding (native archs)', onnxFromArchsPerSecond],
      [`tfjs (${trainer.backend}) on encoded`, tfjsPerSecond],
    ] as const
  ).map(
    ([name, rate]) =>
      `| ${name} | ${Math.round(rate.wall).toLocaleString('en')} | ${Math.round(rate.cpu).toLocaleString('en')} |`,
  ),
];
process.stdout.write(`${lines.join('\n')}\n`);
