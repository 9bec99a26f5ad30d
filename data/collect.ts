/**
 * Measures a dataset for replay (`esm run --device dataset:FILE`) and the sampling benchmark:
 * `n` architectures sampled balanced over 10 depth bins (so replay can emulate both random and
 * balanced sampling), each timed with the device client's measurer (the same code the daemon
 * runs), appended to `out` one JSON line per architecture. Re-running appends more
 * architectures and skips those already in the file.
 *
 *   npx tsx data/collect.ts SPACE N OUT.jsonl RESOLUTIONS|all SEED
 *   (env CLOCK=cpu|wall, default cpu)
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { createRng } from '../core/rng.ts';
import { depthBins, sampleArchitectures } from '../core/sampling.ts';
import { getSpace } from '../core/spaces/index.ts';
import { subnetKey } from '../core/spaces/subnet.ts';
import type { SearchSpace } from '../core/spaces/types.ts';
import { measureGraph } from '../device-client/measure.ts';

const [spaceName = 'mobilenetv3', nText = '100', out = 'out.jsonl', resText = 'all', seedText = '1'] =
  process.argv.slice(2);
const base = getSpace(spaceName);
// A fixed (reduced) resolution keeps the dataset about depth, kernels and widths.
const space: SearchSpace =
  resText === 'all' ? base : { ...base, resolutions: resText.split(',').map(Number) };
const clock = (process.env.CLOCK ?? 'cpu') as 'cpu' | 'wall';
const settings = { warmup: 5, runs: 15, threads: 1, batchSize: 1, clock };
const exclude = new Set<string>();
if (existsSync(out)) {
  for (const line of readFileSync(out, 'utf8').split('\n')) {
    if (line.trim()) exclude.add(subnetKey(base.parse(JSON.parse(line).arch)));
  }
}
const subnets = sampleArchitectures(space, {
  n: Number(nText),
  strategy: 'balanced',
  rng: createRng(Number(seedText)),
  bins: depthBins(space, 10),
  exclude,
});
let done = 0;
for (const subnet of subnets) {
  const { stats } = await measureGraph(base.layerGraph(subnet), settings);
  const line = {
    arch: base.toNative(subnet),
    latency_ms: stats.median_ms,
    std_ms: stats.std_ms,
    runs: stats.runs,
    mean_ms: stats.mean_ms,
    min_ms: stats.min_ms,
    max_ms: stats.max_ms,
    device: `${os.cpus()[0]?.model} (1 thread, ${clock} clock)`,
    space: base.name,
    measured_at: new Date().toISOString(),
    load1: os.loadavg()[0],
  };
  appendFileSync(out, `${JSON.stringify(line)}\n`);
  done++;
  if (done % 50 === 0) process.stderr.write(`${new Date().toISOString()} ${done} load ${os.loadavg()[0]}\n`);
}
