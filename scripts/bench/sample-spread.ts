/**
 * Does a sample's own spread tell when its interleaved median is wrong? Measures --n balanced
 * MobileNetV3 archs --passes times each, interleaved with the small default reference as the
 * embedded device does (5 warm-up and 15 timed runs, one thread, cpu clock), every pass in a
 * fresh order. Each measurement is compared with the median of the arch's other passes: its
 * error, and its relative spread std/median. Prints, per spread limit, how many measurements
 * would be re-measured and how many of the bad ones (error above --bad) that catches.
 *
 *   npx tsx scripts/bench/sample-spread.ts [--n 80] [--passes 3] [--bad 0.15] [--out FILE]
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createRng, shuffled } from '../../core/rng.ts';
import { sampleArchitectures } from '../../core/sampling.ts';
import type { LatencyStats } from '../../core/schemas/dataset.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { spread } from '../../core/stats.ts';
import { type Scale, timeInterleaved } from '../../device-client/job-runner.ts';
import { ModelSession } from '../../device-client/measure.ts';
import { defaultReferences } from '../../device-client/references.ts';
import { median } from './stats.ts';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '80' },
    passes: { type: 'string', default: '3' },
    bad: { type: 'string', default: '0.15' },
    seed: { type: 'string', default: '0' },
    out: { type: 'string' },
  },
});
const n = Number(values.n);
const passes = Number(values.passes);
const bad = Number(values.bad);
const settings = { warmup: 5, runs: 15, threads: 1, batchSize: 1, clock: 'cpu' } as const;

const space = getSpace('mobilenetv3');
const rng = createRng(Number(values.seed));
const archs = sampleArchitectures(space, { n, strategy: 'balanced', rng });
const ref = defaultReferences[0];
if (!ref) throw new Error('expected a default reference');
const scaleSession = await ModelSession.open(space.layerGraph(space.parse(ref.arch)), settings);
await scaleSession.measure(settings);
const scale: Scale = {
  session: scaleSession,
  scaleMs: (await scaleSession.measure(settings)).median_ms,
};

const measured: LatencyStats[][] = archs.map(() => []);
const started = Date.now();
for (let p = 0; p < passes; p++) {
  for (const i of shuffled(
    archs.map((_, j) => j),
    rng,
  )) {
    const model = await ModelSession.open(space.layerGraph(archs[i] as never), settings);
    try {
      (measured[i] as LatencyStats[]).push(await timeInterleaved(model, scale, settings));
    } finally {
      await model.release();
    }
  }
  process.stderr.write(
    `pass ${p + 1}/${passes} done, ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
  );
}
await scaleSession.release();

// Each measurement against the median of the same arch's other passes.
const rows = measured.flatMap((stats, i) =>
  stats.map((s, p) => {
    const others = stats.filter((_, q) => q !== p).map((o) => o.median_ms);
    return {
      arch: i,
      pass: p,
      median_ms: s.median_ms,
      spread: spread(s),
      error: s.median_ms / median(others) - 1,
    };
  }),
);
if (values.out) writeFileSync(values.out, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);

const bads = rows.filter((r) => Math.abs(r.error) > bad);
process.stdout.write(
  `${n} archs x ${passes} passes, load average ${loadavg()[0]?.toFixed(2)}, ${((Date.now() - started) / 1000).toFixed(0)} s\n` +
    `|error| median ${(100 * median(rows.map((r) => Math.abs(r.error)))).toFixed(1)} %, ` +
    `above ${100 * bad} %: ${bads.length} of ${rows.length}\n` +
    `spread median ${(100 * median(rows.map((r) => r.spread))).toFixed(1)} %\n` +
    'spread limit | flagged | bad caught | |error| median of flagged, of the rest\n',
);
for (const limit of [0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5]) {
  const flagged = rows.filter((r) => r.spread > limit);
  const rest = rows.filter((r) => r.spread <= limit);
  const caught = bads.filter((r) => r.spread > limit).length;
  const pct = (xs: typeof rows) =>
    xs.length ? (100 * median(xs.map((r) => Math.abs(r.error)))).toFixed(1) : '-';
  process.stdout.write(
    `${String(limit).padEnd(12)} | ${String(flagged.length).padStart(7)} | ${`${caught}/${bads.length}`.padStart(10)} | ${pct(flagged)} %, ${pct(rest)} %\n`,
  );
}
