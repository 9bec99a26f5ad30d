/**
 * Sizing of the training Lambda (lambdas/manifest.ts `workflowTrain`: memoryMb, timeout):
 * what the train task does per iteration (encode every measured sample, fit the default
 * MLP, predict the test split, export ONNX) at the dataset sizes a run reaches, with wall
 * time, CPU time (the honest number on a shared machine) and peak memory (RSS, sampled
 * every 20 ms). Sizes run in ascending order in one
 * process, so the peak of a size includes what the smaller ones left (the wasm heap only
 * grows), as in a warm Lambda container.
 *
 *   npx tsx scripts/bench/lambda-sizing.ts [--sizes 200,1000,4000] [--space mobilenetv3]
 */
import { encodeModel } from '../../core/onnx/model.ts';
import { modelToOnnxGraph } from '../../core/predictor/export-onnx.ts';
import { createFeaturizer, createRegressor, modelToJson } from '../../core/predictor/index.ts';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { createRng } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const sizes = option('sizes', '200,1000,4000').split(',').map(Number);
const space = getSpace(option('space', 'mobilenetv3'));
const mb = (bytes: number) => Math.round(bytes / 2 ** 20);

let peakRss = process.memoryUsage().rss;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 20);

console.log(`space ${space.name}, fcc encoding, default MLP; node ${process.version}`);
console.log(
  'samples  train_s  train_cpu_s  epochs  predict+export_s  total_s  peak_rss_mb  heap_mb',
);
for (const n of sizes) {
  const rng = createRng(n);
  const subnets = Array.from({ length: n }, () => randomSubnet(space, rng));
  const latency = Float64Array.from(subnets, (s) =>
    syntheticLatencyMs(space, s, { noise: 0.02, rng }),
  );
  const nTrain = Math.round(n * 0.8);
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const featurizer = createFeaturizer(space, { kind: 'encoding', encoding: 'fcc' });
  const regressor = createRegressor('mlp', { mlp: { seed: 1 } });
  const fit = await regressor.fit(
    featurizer.encodeAll(subnets.slice(0, nTrain)),
    latency.subarray(0, nTrain),
  );
  const trained = performance.now();
  const cpu = process.cpuUsage(cpuStarted);
  await regressor.predict(featurizer.encodeAll(subnets.slice(nTrain)));
  const onnx = encodeModel(modelToOnnxGraph(modelToJson(regressor)));
  const done = performance.now();
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  console.log(
    [
      String(n).padStart(7),
      ((trained - started) / 1000).toFixed(1).padStart(8),
      ((cpu.user + cpu.system) / 1e6).toFixed(1).padStart(12),
      String(fit.epochs ?? '-').padStart(7),
      ((done - trained) / 1000).toFixed(2).padStart(17),
      ((done - started) / 1000).toFixed(1).padStart(8),
      String(mb(peakRss)).padStart(12),
      String(mb(process.memoryUsage().heapUsed)).padStart(8),
    ].join(' '),
    `(onnx ${onnx.length} bytes)`,
  );
}
clearInterval(sampler);
