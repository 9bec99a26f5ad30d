/**
 * How far do the reference checks of one job drift on this machine, absolute and interleaved?
 * Opens the two default reference models once, as a job does, then checks them --checks
 * times back to back with the settings of the embedded device (`esm run --device local`:
 * 5 warm-up and 15 timed runs, one thread, the cpu clock): the small one by its own median
 * (the scale), the mid one both by its own median and interleaved with the small one (what
 * the job runner judges when `interleave` is on, scaled by the first check as a job is by its
 * calibration). Prints each series of medians and its `referenceDrift`, (max - min) / min.
 *
 *   npx tsx scripts/bench/reference-drift.ts [--checks 20] [--clock cpu|wall]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { LatencyStats } from '../../core/schemas/dataset.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { referenceDrift, type Scale, timeInterleaved } from '../../device-client/job-runner.ts';
import { ModelSession } from '../../device-client/measure.ts';
import { defaultReferences } from '../../device-client/references.ts';

const { values } = parseArgs({
  options: {
    checks: { type: 'string', default: '20' },
    clock: { type: 'string', default: 'cpu' },
  },
});
const clock = values.clock === 'wall' ? 'wall' : 'cpu';
const settings = { warmup: 5, runs: 15, threads: 1, batchSize: 1, clock } as const;

const space = getSpace('mobilenetv3');
const [small, mid] = await Promise.all(
  defaultReferences.map((r) => ModelSession.open(space.layerGraph(space.parse(r.arch)), settings)),
);
if (!small || !mid) throw new Error('expected two default references');

// Every interleaved check is scaled by the first check's median, as a job scales by its
// calibration, so all three series are what the job runner would record.
const smallOwn: LatencyStats[] = [];
const midOwn: LatencyStats[] = [];
const midInterleaved: LatencyStats[] = [];
await small.measure(settings);
await mid.measure(settings);
let scale: Scale | undefined;
for (let c = 0; c < Number(values.checks); c++) {
  const own = await small.measure(settings);
  scale ??= { session: small, scaleMs: own.median_ms };
  smallOwn.push(own);
  midOwn.push(await mid.measure(settings));
  midInterleaved.push(await timeInterleaved(mid, scale, settings));
}
await small.release();
await mid.release();

process.stdout.write(
  `${values.checks} checks, ${clock} clock, load average ${loadavg()[0]?.toFixed(2)}\n`,
);
const series = {
  'small, own median': smallOwn,
  'mid, own median': midOwn,
  'mid, interleaved': midInterleaved,
};
for (const [name, checks] of Object.entries(series)) {
  process.stdout.write(
    `${name.padEnd(26)} drift ${(100 * referenceDrift(checks)).toFixed(1).padStart(5)} %  | ${checks.map((c) => c.median_ms.toFixed(3)).join(' ')}\n`,
  );
}
