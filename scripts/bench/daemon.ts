/**
 * Daemon throughput benchmark (issue 5): samples measured per minute through the whole MQTT
 * path (dispatcher -> embedded broker -> `esm-device` in its own process -> result) against
 * `runJob` called directly on the same job. Rounds alternate direct and daemon so that load
 * changes hit both, after one warm-up job on each path (process start, module loading).
 * On a shared machine the two rates differ mostly by noise, so the protocol's own cost is also
 * measured directly: round trip minus the device's measuring time (`finishedAt - startedAt`).
 *
 * npx tsx scripts/bench/daemon.ts [--samples 10] [--rounds 2] [--runs 30] [--warmup 10]
 *     [--space mobilenetv3] [--seed 1]
 */
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createRng } from '../../core/rng.ts';
import { type JobMessage, measurementSettings } from '../../core/schemas/protocol.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import { runJob } from '../../device-client/job-runner.ts';
import { startBroker } from '../../local/mqtt-broker.ts';
import { createMqttDispatcher } from '../../local/mqtt-dispatcher.ts';

const { values } = parseArgs({
  options: {
    samples: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '2' },
    runs: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '10' },
    space: { type: 'string', default: 'mobilenetv3' },
    seed: { type: 'string', default: '1' },
  },
});

const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

const space = getSpace(values.space);
const rng = createRng(Number(values.seed));
const n = Number(values.samples);
const rounds = Number(values.rounds);
// No drift limit: a re-measured unstable batch would double one side's time at random.
const settings = measurementSettings.parse({
  runs: Number(values.runs),
  warmup: Number(values.warmup),
  maxReferenceDrift: 1,
});
const archs = Array.from(
  { length: n },
  () => space.toNative(randomSubnet(space, rng)) as Record<string, unknown>,
);
const jobOf = (batchId: string, count = n): JobMessage => ({
  v: 1,
  type: 'job',
  runId: 'bench-daemon',
  batchId,
  space: space.name,
  samples: archs.slice(0, count).map((arch, i) => ({ id: `${batchId}-${i}`, arch })),
  settings,
  references: [],
});

console.log(
  `daemon bench: ${n} random ${space.name} samples (seed ${values.seed}), runs ${settings.runs}, warmup ${settings.warmup}, no re-measurement, ${rounds} rounds; load average before: ${load()}`,
);

const broker = await startBroker();
const thing = 'bench-device';
const child = spawn(
  process.execPath,
  ['bin/esm-device.js', '--broker', broker.url, '--thing', thing, '--log-level', 'warn'],
  { stdio: ['ignore', 'inherit', 'inherit'] },
);
const dispatcher = createMqttDispatcher({ brokerUrl: broker.url });
await dispatcher.ready;
const deadline = Date.now() + 60_000;
while (dispatcher.lastStatus(thing)?.state !== 'idle') {
  if (Date.now() > deadline) throw new Error('the daemon did not come online within 60 s');
  await new Promise((r) => setTimeout(r, 50));
}

const median = (xs: number[]) => {
  const sorted = xs.slice().sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
const measuring = (r: { startedAt: string; finishedAt: string }) =>
  Date.parse(r.finishedAt) - Date.parse(r.startedAt);

const viaDaemon = async (job: JobMessage) => {
  const start = performance.now();
  await dispatcher.dispatch(thing, job);
  const result = await dispatcher.awaitResult(thing, job.batchId, 30 * 60_000);
  const ms = performance.now() - start;
  return { ms, overhead: ms - measuring(result) };
};
const direct = async (job: JobMessage) => {
  const start = performance.now();
  const result = await runJob(job, { thing: 'bench-direct' });
  const ms = performance.now() - start;
  return { ms, overhead: ms - measuring(result) };
};

// Warm-up: the first job of a process pays for module loading and onnxruntime start-up.
const tiny = { ...jobOf('tiny', 1), settings: { ...settings, runs: 1, warmup: 0 } };
await direct({ ...tiny, batchId: 'warm-direct' });
await viaDaemon({ ...tiny, batchId: 'warm-daemon' });

const perMinute = (ms: number) => (n / (ms / 60_000)).toFixed(1);
const times = { direct: [] as number[], daemon: [] as number[] };
const overheads = { direct: [] as number[], daemon: [] as number[] };
for (let round = 0; round < rounds; round++) {
  const a = await direct(jobOf(`direct-${round}`));
  const b = await viaDaemon(jobOf(`daemon-${round}`));
  times.direct.push(a.ms);
  times.daemon.push(b.ms);
  overheads.direct.push(a.overhead);
  overheads.daemon.push(b.overhead);
  console.log(
    `  round ${round + 1}: direct ${(a.ms / 1000).toFixed(1)} s (${perMinute(a.ms)} samples/min), daemon ${(b.ms / 1000).toFixed(1)} s (${perMinute(b.ms)} samples/min); outside measuring: direct ${a.overhead.toFixed(0)} ms, daemon ${b.overhead.toFixed(0)} ms`,
  );
}

// The smallest job shows the fixed cost per job: one sample, one run, no warm-up.
for (let i = 0; i < 5; i++) {
  overheads.direct.push((await direct({ ...tiny, batchId: `tiny-direct-${i}` })).overhead);
  overheads.daemon.push((await viaDaemon({ ...tiny, batchId: `tiny-daemon-${i}` })).overhead);
}

const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
const totalDirect = sum(times.direct);
const totalDaemon = sum(times.daemon);
console.log(`load average after: ${load()}`);
console.log(
  `  direct runJob: ${perMinute(totalDirect / rounds)} samples/min; through the daemon: ${perMinute(totalDaemon / rounds)} samples/min (reference checks included in both)`,
);
console.log(
  `  time per job outside measuring (median of ${overheads.daemon.length} jobs): daemon ${median(overheads.daemon).toFixed(0)} ms, direct ${median(overheads.direct).toFixed(0)} ms; protocol cost ${(median(overheads.daemon) - median(overheads.direct)).toFixed(0)} ms per job`,
);

child.kill('SIGTERM');
await new Promise((resolve) => child.once('exit', resolve));
await dispatcher.close();
await broker.close();
