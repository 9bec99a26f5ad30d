/**
 * Fan-out benchmark: the whole ESM loop (`esm run`'s engine, local/engine.ts) over 1, 2 and 4
 * replayed devices that each take a fixed time per sample (a sleep, so the result means the
 * same on a loaded machine: wall time is dominated by the devices, not by this CPU). Every
 * batch is sharded over the devices; with N identical devices, measuring should take about
 * 1/N of the time.
 *
 *   npx tsx scripts/bench/fanout.ts [--devices 1,2,4] [--repeats 3] [--ms-per-sample 150]
 *     [--n-init 80] [--n-step 40] [--iterations 2] [--chunk-size 5] [--json out.json]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { createRng } from '../../core/rng.ts';
import { depthBins, sampleArchitectures } from '../../core/sampling.ts';
import { runParams } from '../../core/schemas/run.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { type Daemon, startDaemon } from '../../device-client/daemon.ts';
import { startBroker } from '../../local/mqtt-broker.ts';
import { createReplayRunner, replayFacts } from '../../local/replay.ts';
import { RunStore } from '../../local/run-store.ts';
import { median } from './stats.ts';

// The workflow handlers log with the Lambda logger, created when they are imported.
process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
const { runWorkflow } = await import('../../local/engine.ts');

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '1,2,4' },
    repeats: { type: 'string', default: '3' },
    'ms-per-sample': { type: 'string', default: '150' },
    'n-init': { type: 'string', default: '80' },
    'n-step': { type: 'string', default: '40' },
    iterations: { type: 'string', default: '2' },
    'chunk-size': { type: 'string', default: '5' },
    json: { type: 'string' },
  },
});
const deviceCounts = (values.devices as string).split(',').map(Number);
const repeats = Number(values.repeats);
const msPerSample = Number(values['ms-per-sample']);
const space = mobilenetv3;

const dir = mkdtempSync(join(tmpdir(), 'esm-bench-fanout-'));
const datasetFile = join(dir, 'replay.jsonl');
const rng = createRng(3);
writeFileSync(
  datasetFile,
  sampleArchitectures(space, { n: 1000, strategy: 'balanced', bins: depthBins(space, 10), rng })
    .map((s) =>
      JSON.stringify({
        arch: space.toNative(s),
        latency_ms: syntheticLatencyMs(space, s, { rng }),
      }),
    )
    .join('\n'),
);

interface Row {
  devices: number;
  samples: number;
  wallSeconds: number[];
  medianSeconds: number;
  /** Measuring phase only (first dispatch to last result, summed over iterations). */
  measuringSeconds: number[];
  medianMeasuring: number;
  perDevice: Record<string, number>;
}

const rows: Row[] = [];
for (const n of deviceCounts) {
  const broker = await startBroker({ port: 0 });
  const things = Array.from({ length: n }, (_, i) => `bench-${i}`);
  const daemons: Daemon[] = [];
  for (const thing of things) {
    daemons.push(
      await startDaemon(
        { broker: broker.url, thing, heartbeatSeconds: 3600, progressIntervalMs: 500 },
        {
          runJob: await createReplayRunner(datasetFile, { space, delayMs: msPerSample }),
          facts: (t) => replayFacts(t, datasetFile),
        },
      ),
    );
  }
  const wall: number[] = [];
  const measuring: number[] = [];
  let samples = 0;
  let perDevice: Record<string, number> = {};
  for (let r = 0; r < repeats; r++) {
    const store = RunStore.create(
      join(dir, `run-${n}-${r}`),
      runParams.parse({
        space: 'mobilenetv3',
        device: things.map((t) => `thing:${t}`).join(','),
        broker: broker.url,
        pool: datasetFile,
        model: 'ridge',
        nInit: Number(values['n-init']),
        nStep: Number(values['n-step']),
        // Never converges: every run does the same number of iterations.
        accTh: 0.9999,
        maxIter: Number(values.iterations),
        chunkSize: Number(values['chunk-size']),
        seed: r + 1,
      }),
    );
    const started = performance.now();
    const summary = await runWorkflow({ store, brokerUrl: broker.url });
    wall.push((performance.now() - started) / 1000);
    measuring.push(summary.history.reduce((sum, r) => sum + r.secondsMeasuring, 0));
    samples = summary.samples;
    perDevice = {};
    for (const line of store.measurements()) {
      const t = line.thing ?? '?';
      perDevice[t] = (perDevice[t] ?? 0) + 1;
    }
  }
  for (const d of daemons) await d.stop();
  await broker.close();
  const row = {
    devices: n,
    samples,
    wallSeconds: wall,
    medianSeconds: median(wall),
    measuringSeconds: measuring,
    medianMeasuring: median(measuring),
    perDevice,
  };
  rows.push(row);
  console.log(
    `${n} device(s): ${samples} samples, wall ${wall.map((w) => w.toFixed(2)).join(' / ')} s, median ${row.medianSeconds.toFixed(2)} s, per device ${JSON.stringify(perDevice)}`,
  );
}
const base = rows[0]?.medianSeconds ?? Number.NaN;
const baseMeasuring = rows[0]?.medianMeasuring ?? Number.NaN;
console.log(
  '\n| devices | samples | run wall time (median) | speed-up | measuring phase (median) | speed-up | samples per device |',
);
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.devices} | ${r.samples} | ${r.medianSeconds.toFixed(2)} s | ${(base / r.medianSeconds).toFixed(2)}x | ${r.medianMeasuring.toFixed(2)} s | ${(baseMeasuring / r.medianMeasuring).toFixed(2)}x | ${Object.values(r.perDevice).join(' / ')} |`,
  );
}
if (values.json) writeFileSync(values.json, JSON.stringify({ msPerSample, rows }, null, 2));
rmSync(dir, { recursive: true, force: true });
