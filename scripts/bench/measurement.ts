/**
 * Measurement benchmarks (issue 5):
 *   stability   N separate processes each measure the reference model; prints the
 *               coefficient of variation of their medians (target <= 2 %).
 *   spaces      median latency, within-process CV and build/session overhead of the smallest
 *               and largest subnet of every built-in space.
 *   throughput  samples measured per minute by `runJob` with the default settings.
 *
 * npx tsx scripts/bench/measurement.ts stability [--processes 10] [--runs 30] [--warmup 10]
 *     [--threads 1] [--clock wall|cpu] [--pin CPU|none] [--realtime] [--model ID]
 * npx tsx scripts/bench/measurement.ts spaces [--runs 30] [--clock wall|cpu]
 * npx tsx scripts/bench/measurement.ts throughput [--samples 20] [--space mobilenetv3] [--clock wall|cpu]
 * Every mode prints the load average before and after, because this machine is shared.
 */
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createRng } from '../../core/rng.ts';
import { measurementSettings } from '../../core/schemas/protocol.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import type { SearchSpace, Subnet } from '../../core/spaces/types.ts';
import { runJob } from '../../device-client/job-runner.ts';
import { measureGraph, pinToCpus, useRealtimePriority } from '../../device-client/measure.ts';
import { defaultReferences, stabilityReference } from '../../device-client/references.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    processes: { type: 'string', default: '10' },
    runs: { type: 'string' },
    warmup: { type: 'string' },
    threads: { type: 'string', default: '1' },
    clock: { type: 'string', default: 'wall' },
    pin: { type: 'string', default: 'none' },
    realtime: { type: 'boolean', default: false },
    model: { type: 'string', default: stabilityReference.id },
    samples: { type: 'string', default: '20' },
    space: { type: 'string', default: 'mobilenetv3' },
    child: { type: 'boolean', default: false },
  },
});

const defaults = measurementSettings.parse({});
const settings = {
  ...defaults,
  runs: values.runs ? Number(values.runs) : defaults.runs,
  warmup: values.warmup ? Number(values.warmup) : defaults.warmup,
  threads: Number(values.threads),
  clock: values.clock === 'cpu' ? ('cpu' as const) : ('wall' as const),
};
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const pct = (x: number) => `${(100 * x).toFixed(2)} %`;

function cv(xs: readonly number[]): number {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1));
  return sd / mean;
}

function reference(id: string) {
  const ref = defaultReferences.find((r) => r.id === id);
  if (!ref) throw new Error(`--model: unknown reference ${id}`);
  const space = getSpace(ref.space);
  return space.layerGraph(space.parse(ref.arch));
}

/** One child process: measure the reference once and print its stats as JSON. */
async function child(): Promise<void> {
  const pinned = values.pin !== 'none' && pinToCpus(values.pin);
  const realtime = values.realtime && useRealtimePriority();
  const result = await measureGraph(reference(values.model), settings);
  process.stdout.write(`${JSON.stringify({ ...result, pinned, realtime, load: loadavg()[0] })}\n`);
}

async function stability(): Promise<void> {
  const n = Number(values.processes);
  const script = fileURLToPath(import.meta.url);
  console.log(
    `stability: ${n} processes, model ${values.model}, settings ${JSON.stringify(settings)}, pin ${values.pin}, real-time ${values.realtime}`,
  );
  console.log(`load average before: ${load()}`);
  const medians: number[] = [];
  const mins: number[] = [];
  for (let i = 0; i < n; i++) {
    const args = [
      '--import',
      'tsx',
      script,
      '--child',
      '--model',
      values.model,
      '--pin',
      values.pin,
    ];
    if (values.realtime) args.push('--realtime');
    args.push('--runs', String(settings.runs), '--warmup', String(settings.warmup));
    args.push('--threads', String(settings.threads), '--clock', settings.clock);
    const out = spawnSync(process.execPath, args, { encoding: 'utf8' });
    if (out.status !== 0) throw new Error(`child ${i} failed: ${out.stderr}`);
    const result = JSON.parse(out.stdout.trim().split('\n').at(-1) as string);
    medians.push(result.stats.median_ms);
    mins.push(result.stats.min_ms);
    console.log(
      `  process ${i + 1}: median ${result.stats.median_ms.toFixed(3)} ms, within-process CV ${pct(result.stats.std_ms / result.stats.mean_ms)}, kept ${result.stats.runs}/${settings.runs}, pinned ${result.pinned}, real-time ${result.realtime}, load ${result.load.toFixed(2)}`,
    );
  }
  console.log(`load average after: ${load()}`);
  const sorted = medians.slice().sort((a, b) => a - b);
  console.log(
    `process-to-process CV of medians: ${pct(cv(medians))} (min ${sorted[0]?.toFixed(3)} ms, max ${sorted.at(-1)?.toFixed(3)} ms)`,
  );
  console.log(`process-to-process CV of fastest runs (min_ms): ${pct(cv(mins))}`);
}

function extremes(space: SearchSpace): { name: string; subnet: Subnet }[] {
  const pick = (largest: boolean): Subnet => ({
    resolution: largest ? Math.max(...space.resolutions) : Math.min(...space.resolutions),
    globals: Object.fromEntries(
      space.globalChoices.map((c) => [
        c.name,
        largest ? Math.max(...c.values) : Math.min(...c.values),
      ]),
    ),
    units: space.units.map((u) => ({
      choices: Object.fromEntries(
        u.unitChoices.map((c) => [c.name, largest ? Math.max(...c.values) : Math.min(...c.values)]),
      ),
      blocks: Array.from({ length: largest ? u.maxDepth : u.minDepth }, () =>
        Object.fromEntries(
          u.blockChoices.map((c) => [
            c.name,
            largest ? Math.max(...c.values) : Math.min(...c.values),
          ]),
        ),
      ),
    })),
  });
  return [
    { name: 'smallest', subnet: pick(false) },
    { name: 'largest', subnet: pick(true) },
  ];
}

async function spaces(): Promise<void> {
  const pinned = values.pin !== 'none' && pinToCpus(values.pin);
  const realtime = values.realtime && useRealtimePriority();
  console.log(
    `spaces: settings ${JSON.stringify(settings)}, pinned ${pinned}, real-time ${realtime}; load average before: ${load()}`,
  );
  const { builtInSpaces } = await import('../../core/spaces/index.ts');
  for (const space of builtInSpaces.values()) {
    for (const { name, subnet } of extremes(space)) {
      const r = await measureGraph(space.layerGraph(subnet), settings);
      const s = r.stats;
      console.log(
        `  ${space.name} ${name} (r${subnet.resolution}): median ${s.median_ms.toFixed(2)} ms, CV ${pct(s.std_ms / s.mean_ms)}, build ${r.overheadMs.build.toFixed(0)} ms, session ${r.overheadMs.session.toFixed(0)} ms`,
      );
    }
  }
  console.log(`load average after: ${load()}`);
}

async function throughput(): Promise<void> {
  const space = getSpace(values.space);
  const rng = createRng(1);
  const n = Number(values.samples);
  const samples = Array.from({ length: n }, (_, i) => ({
    id: `s${i}`,
    arch: space.toNative(randomSubnet(space, rng)) as Record<string, unknown>,
  }));
  const pinned = values.pin !== 'none' && pinToCpus(values.pin);
  const realtime = values.realtime && useRealtimePriority();
  console.log(
    `throughput: ${n} random ${space.name} samples, settings ${JSON.stringify(settings)}, pinned ${pinned}, real-time ${realtime}; load average before: ${load()}`,
  );
  const start = performance.now();
  const result = await runJob(
    {
      v: 1,
      type: 'job',
      runId: 'bench',
      batchId: 'bench-1',
      space: space.name,
      samples,
      settings,
      references: [],
    },
    // One attempt, so the rate is not halved by a re-measurement on this noisy machine.
    { thing: 'bench', retryUnstable: false },
  );
  const minutes = (performance.now() - start) / 60_000;
  console.log(`load average after: ${load()}`);
  console.log(
    `  ${n} samples in ${(minutes * 60).toFixed(1)} s: ${(n / minutes).toFixed(1)} samples/min (one attempt, with the default reference checks at start and end); reference drift ${pct(result.quality.maxDrift)}, unstable ${result.quality.unstable}`,
  );
}

const mode = positionals[0] ?? 'stability';
if (values.child) await child();
else if (mode === 'stability') await stability();
else if (mode === 'spaces') await spaces();
else if (mode === 'throughput') await throughput();
else throw new Error(`unknown mode ${mode}; use stability, spaces or throughput`);
