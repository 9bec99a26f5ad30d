/**
 * How far do the reference checks of one job drift on this machine, absolute and interleaved?
 * Opens the two default reference models once, as a job does, then checks them --checks
 * times back to back with the settings of the embedded device (`esm run --device local`:
 * 5 warm-up and 15 timed runs, one thread, the cpu clock): the small one by its own median
 * (the scale), the mid one both by its own median and interleaved with the small one (what
 * the job runner judges when `interleave` is on). Prints each series and its drift,
 * (max - min) / min, as `referenceDrift` computes it.
 *
 *   npx tsx scripts/bench/reference-drift.ts [--checks 20] [--clock cpu|wall]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { getSpace } from '../../core/spaces/index.ts';
import { timeInterleaved } from '../../device-client/job-runner.ts';
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

const series = { 'small, own median': [] as number[], 'mid, own median': [] as number[] };
const ratios: number[] = [];
await small.measure(settings);
await mid.measure(settings);
for (let c = 0; c < Number(values.checks); c++) {
  const scaleMs = (await small.measure(settings)).median_ms;
  series['small, own median'].push(scaleMs);
  series['mid, own median'].push((await mid.measure(settings)).median_ms);
  // As the job runner checks a reference interleaved: run by run against the scale.
  const interleaved = await timeInterleaved(mid, { session: small, scaleMs }, settings);
  ratios.push(interleaved.median_ms / scaleMs);
}
await small.release();
await mid.release();

/** `referenceDrift`'s measure on a series of medians. */
const drift = (xs: number[]) => (Math.max(...xs) - Math.min(...xs)) / Math.min(...xs);
process.stdout.write(
  `${values.checks} checks, ${clock} clock, load average ${loadavg()[0]?.toFixed(2)}\n`,
);
for (const [name, xs] of Object.entries({ ...series, 'mid / small, interleaved': ratios })) {
  process.stdout.write(
    `${name.padEnd(26)} drift ${(100 * drift(xs)).toFixed(1).padStart(5)} %  | ${xs.map((v) => v.toFixed(3)).join(' ')}\n`,
  );
}
