/**
 * Batch prediction throughput with encoding included (issue 2 target: above 1 M
 * architectures/s): a default MLP predictor saved with `savePredictor`, loaded with
 * `loadPredictor(dir, { threads: 1 })`, then timed on random subnets of the space.
 *
 *   npx tsx scripts/bench/throughput.ts [--space mobilenetv3] [--encoding fcc] [--n 100000]
 *     [--runs 5] [--workers 2]
 *
 * Paths, each the median of `--runs` runs over the same `--n` archs per thread:
 * - encode only: `featurizer.encodeInto` into one float32 buffer (JS, no ONNX);
 * - ONNX only: `predictEncoded` on already encoded float32 rows;
 * - from Subnet objects: `predictSubnets(subnets)` (encoding + ONNX);
 * - from native arch JSON: `predict(archs)` (space.parse + encoding + ONNX);
 * - the same from Subnet objects with `loadPredictor(dir, { threads: 2 })`: JS encodes on
 *   one thread, onnxruntime's matrix products use two;
 * - W workers: W worker_threads, each with its own predictor and its own `--n` Subnet
 *   objects, all running `predictSubnets` at once; archs/s = W x n / wall time of the run.
 * Rates are per wall second and per CPU second (user + system of the whole process, all
 * threads), because the development machine is shared.
 */
import { rm } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { EncodingName } from '../../core/encodings/index.ts';
import { fitPredictor } from '../../core/predictor/index.ts';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { createRng } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import type { SearchSpace, Subnet } from '../../core/spaces/types.ts';
import { loadPredictor, savePredictor } from '../../local/predictor-store.ts';
import { median } from './stats.ts';

interface WorkerInput {
  readonly dir: string;
  readonly space: string;
  readonly n: number;
  readonly seed: number;
}

function randomSubnets(space: SearchSpace, n: number, seed: number): Subnet[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => randomSubnet(space, rng));
}

/** Median archs per wall second and per CPU second of `fn`, which handles `n` archs. */
async function rate(n: number, runs: number, fn: () => Promise<unknown> | unknown) {
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
  return { wall: Math.round(n / median(wall)), cpu: Math.round(n / median(cpu)) };
}

if (!isMainThread) {
  // Worker: load the predictor, build its own subnets, then predict them on each 'run'.
  const input = workerData as WorkerInput;
  const space = getSpace(input.space);
  const predictor = await loadPredictor(input.dir, { threads: 1 });
  const subnets = randomSubnets(space, input.n, input.seed);
  const port = parentPort as NonNullable<typeof parentPort>;
  port.on('message', async (message: string) => {
    if (message === 'close') {
      await predictor.close();
      port.close();
      return;
    }
    await predictor.predictSubnets(subnets);
    port.postMessage('done');
  });
  port.postMessage('ready');
} else {
  const { values: args } = parseArgs({
    options: {
      space: { type: 'string', default: 'mobilenetv3' },
      encoding: { type: 'string', default: 'fcc' },
      n: { type: 'string', default: '100000' },
      runs: { type: 'string', default: '5' },
      workers: { type: 'string', default: '2' },
    },
  });
  const space = getSpace(args.space);
  const n = Number(args.n);
  const runs = Number(args.runs);
  const nWorkers = Number(args.workers);

  const trainRng = createRng(1);
  const rows = randomSubnets(space, 1000, 1).map((subnet) => ({
    subnet,
    latencyMs: syntheticLatencyMs(space, subnet, { noise: 0.01, rng: trainRng }),
  }));
  const fitted = await fitPredictor({
    space,
    rows,
    trainFraction: 1,
    encoding: args.encoding as EncodingName,
    data: { file: 'synthetic', sha256: '0'.repeat(64) },
  });
  const dir = `/tmp/esm-bench-throughput-${process.pid}`;
  await savePredictor(dir, fitted.predictor);
  const predictor = await loadPredictor(dir, { threads: 1 });
  const { featurizer } = predictor;
  const cols = featurizer.features.length;
  const subnets = randomSubnets(space, n, 2);
  const archs = subnets.map((s) => space.toNative(s));
  const encoded = new Float32Array(n * cols);
  const encodeOnly = () => {
    for (let i = 0; i < n; i++) featurizer.encodeInto(subnets[i] as Subnet, encoded, i * cols);
  };
  encodeOnly();

  const results: Record<string, { wall: number; cpu: number }> = {};
  results[`encode only (${args.encoding}, JS, into float32)`] = await rate(n, runs, encodeOnly);
  results['ONNX only, on encoded float32'] = await rate(n, runs, () =>
    predictor.predictEncoded(encoded, n),
  );
  results['ONNX incl. encoding, from Subnet objects, 1 thread'] = await rate(n, runs, () =>
    predictor.predictSubnets(subnets),
  );
  results['ONNX incl. parse + encoding, from native arch JSON, 1 thread'] = await rate(
    n,
    runs,
    () => predictor.predict(archs),
  );
  await predictor.close();
  const twoOrt = await loadPredictor(dir, { threads: 2 });
  results['ONNX incl. encoding, from Subnet objects, 1 JS thread + 2 onnxruntime threads'] =
    await rate(n, runs, () => twoOrt.predictSubnets(subnets));
  await twoOrt.close();

  if (nWorkers > 0) {
    const workers = Array.from(
      { length: nWorkers },
      (_, w) =>
        // Workers do not inherit tsx's loader hooks: register them, then load this file.
        new Worker(
          `import('tsx/esm/api').then((tsx) => tsx.tsImport(${JSON.stringify(import.meta.url)}, ${JSON.stringify(import.meta.url)}))`,
          {
            eval: true,
            workerData: { dir, space: space.name, n, seed: 10 + w } satisfies WorkerInput,
          },
        ),
    );
    const next = (worker: Worker) =>
      new Promise<void>((resolve, reject) => {
        worker.once('message', () => resolve());
        worker.once('error', reject);
      });
    await Promise.all(workers.map(next));
    const runAll = () =>
      Promise.all(
        workers.map((w) => {
          const done = next(w);
          w.postMessage('run');
          return done;
        }),
      );
    await runAll();
    results[`ONNX incl. encoding, from Subnet objects, ${nWorkers} worker threads`] = await rate(
      nWorkers * n,
      runs,
      runAll,
    );
    for (const w of workers) w.postMessage('close');
  }
  await rm(dir, { recursive: true, force: true });

  const machine = { cpus: cpus().length, node: process.version, loadavg: loadavg() };
  process.stdout.write(
    `${JSON.stringify({ machine, space: space.name, encoding: args.encoding, cols, n, runs, results }, null, 2)}\n\n`,
  );
  const lines = [
    `| path (${args.space}, ${args.encoding}, ${cols} features, ${n.toLocaleString('en')} archs per thread) | archs/s (wall) | archs per CPU second |`,
    '|---|---|---|',
    ...Object.entries(results).map(
      ([name, r]) => `| ${name} | ${r.wall.toLocaleString('en')} | ${r.cpu.toLocaleString('en')} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
