/**
 * Accuracy of a peak-memory predictor on this machine: MobileNetV3 subnets measured with the
 * device's peak-memory probe (a child process per model, peak RSS minus RSS before the
 * session: device-client/metrics.ts), then predictors trained on 100 and 500 of them and
 * tested on the same held-out rows, over several seeded training draws.
 *
 *   npx tsx scripts/bench/peak-memory.ts [--space mobilenetv3] [--n 700] [--test 200]
 *     [--seeds 5] [--repeat 10] [--cache /tmp/esm-peak-memory-vmhwm.jsonl]
 *
 * `--repeat` archs are measured 3 times each for the probe's own repeatability. Measurements
 * are appended to `--cache` as they come (JSONL, one arch per line), so a rerun reuses them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { fitPredictor } from '../../core/predictor/index.ts';
import type { ModelKind } from '../../core/predictor/types.ts';
import { createRng, shuffled } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet, subnetKey } from '../../core/spaces/subnet.ts';
import type { Subnet } from '../../core/spaces/types.ts';
import { measurePeakMemory } from '../../device-client/metrics.ts';

const { values: args } = parseArgs({
  options: {
    space: { type: 'string', default: 'mobilenetv3' },
    n: { type: 'string', default: '700' },
    test: { type: 'string', default: '200' },
    seeds: { type: 'string', default: '5' },
    repeat: { type: 'string', default: '10' },
    cache: { type: 'string', default: '/tmp/esm-peak-memory-vmhwm.jsonl' },
  },
});
const space = getSpace(args.space);
const n = Number(args.n);
const nTest = Number(args.test);
const cache = args.cache as string;
const settings = { threads: 1, batchSize: 1 };

const rng = createRng(42);
const subnets: Subnet[] = [];
const seen = new Set<string>();
while (subnets.length < n) {
  const s = randomSubnet(space, rng);
  const key = subnetKey(s);
  if (!seen.has(key)) {
    seen.add(key);
    subnets.push(s);
  }
}
const measured = new Map<string, number>();
if (existsSync(cache)) {
  for (const line of readFileSync(cache, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const { key, mb } = JSON.parse(line) as { key: string; mb: number };
    measured.set(key, mb);
  }
}
const loadBefore = loadavg();
const cpuStart = process.cpuUsage();
let probes = 0;
for (const [i, s] of subnets.entries()) {
  const key = `${space.name}|${subnetKey(s)}`;
  if (measured.has(key)) continue;
  const r = await measurePeakMemory(space.layerGraph(s), settings);
  probes++;
  if (r.value === null) throw new Error(`probe failed: ${r.reason}`);
  measured.set(key, r.value);
  await appendFile(cache, `${JSON.stringify({ key, mb: r.value })}\n`);
  if ((i + 1) % 50 === 0) process.stderr.write(`measured ${i + 1} / ${n}\n`);
}
// Repeatability: the same arch in fresh processes.
const repeats: number[][] = [];
for (const s of subnets.slice(0, Number(args.repeat))) {
  const values = [measured.get(`${space.name}|${subnetKey(s)}`) as number];
  for (let k = 0; k < 2; k++) {
    values.push((await measurePeakMemory(space.layerGraph(s), settings)).value as number);
  }
  repeats.push(values);
}
const spread = repeats.map((v) => (Math.max(...v) - Math.min(...v)) / Math.min(...v));
const rows = subnets.map((subnet) => ({
  subnet,
  latencyMs: measured.get(`${space.name}|${subnetKey(subnet)}`) as number,
}));
const values = rows.map((r) => r.latencyMs).sort((a, b) => a - b);
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const test = rows.slice(0, nTest);
const pool = rows.slice(nTest);
const results: Record<string, Record<number, { accuracy: number[]; within5: number[] }>> = {};
for (const model of ['auto', 'ridge', 'mlp', 'lut'] as ModelKind[]) {
  for (const size of [100, 500]) {
    for (let seed = 0; seed < Number(args.seeds); seed++) {
      const train = shuffled(pool, createRng(seed)).slice(0, size);
      const fitted = await fitPredictor({
        space,
        rows: train,
        trainFraction: 1,
        model,
        seed,
        data: { file: cache, sha256: '0'.repeat(64) },
      });
      const x = fitted.featurizer.encodeAll(test.map((r) => r.subnet));
      const predicted = await fitted.regressor.predict(x);
      const errors = test.map(
        (r, i) => Math.abs((predicted[i] as number) - r.latencyMs) / r.latencyMs,
      );
      const byModel = results[model] ?? {};
      results[model] = byModel;
      const entry = byModel[size] ?? { accuracy: [], within5: [] };
      byModel[size] = entry;
      entry.accuracy.push(1 - errors.reduce((a, b) => a + b, 0) / errors.length);
      entry.within5.push(errors.filter((e) => e <= 0.05).length / errors.length);
    }
  }
}
const cpu = process.cpuUsage(cpuStart);
const summary = {
  space: space.name,
  measured: rows.length,
  probesThisRun: probes,
  test: test.length,
  peakMemoryMb: { min: values[0], median: median(values), max: values[values.length - 1] },
  repeatability: {
    archs: repeats.length,
    medianRelativeSpread: median(spread),
    max: Math.max(...spread),
  },
  loadBefore,
  loadAfter: loadavg(),
  cpuSeconds: (cpu.user + cpu.system) / 1e6,
  results: Object.fromEntries(
    Object.entries(results).map(([model, bySize]) => [
      model,
      Object.fromEntries(
        Object.entries(bySize).map(([size, r]) => [
          size,
          {
            medianAccuracy: median(r.accuracy),
            medianWithin5: median(r.within5),
            accuracy: r.accuracy,
          },
        ]),
      ),
    ]),
  ),
};
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
