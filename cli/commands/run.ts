/**
 * `esm run`: the ESM train-evaluate-extend loop on one machine, from sampling to a trained
 * predictor and report.html, resumable with `--resume DIR`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { encodingNames } from '../../core/encodings/types.ts';
import { ValidationError } from '../../core/errors.ts';
import { samplingStrategies } from '../../core/sampling.ts';
import { type RunParams, type RunParamsInput, runParams } from '../../core/schemas/run.ts';
import { getSpace } from '../../core/spaces/index.ts';
import type { SearchSpace } from '../../core/spaces/types.ts';
import { openDevice } from '../../local/devices.ts';
import { createProgress, type ProgressBar } from '../../local/progress.ts';
import { writeReport } from '../../local/report.ts';
import { type RunEvent, runLoop, savePredictorFiles } from '../../local/run-loop.ts';
import { RunStore } from '../../local/run-store.ts';
import { parse, resolveSpace, writeJson } from '../common.ts';

interface RunOptions {
  space?: string;
  device: string;
  sampling?: RunParams['sampling'];
  encoding?: RunParams['encoding'];
  nInit?: number;
  nStep?: number;
  accTh?: number;
  bins?: number;
  w1?: number;
  maxIter?: number;
  testFraction?: number;
  minTestPerBin?: number;
  seed?: number;
  runs?: number;
  warmup?: number;
  threads?: number;
  maxDrift?: number;
  clock?: 'wall' | 'cpu';
  interleave?: boolean;
  chunkSize?: number;
  out?: string;
  resume?: string;
  broker?: string;
  json?: boolean;
}

/** Milliseconds a replay device waits per sample: `ESM_REPLAY_DELAY_MS` (tests of resume). */
function replayDelay(): number {
  const raw = process.env.ESM_REPLAY_DELAY_MS;
  if (raw === undefined || raw === '') return 0;
  const ms = Number(raw);
  if (!Number.isFinite(ms) || ms < 0) {
    throw new ValidationError('ESM_REPLAY_DELAY_MS', `expected milliseconds >= 0, got "${raw}"`);
  }
  return ms;
}

async function spaceOf(params: RunParams): Promise<SearchSpace> {
  if (!params.spaceSpec) return getSpace(params.space);
  const { spaceFromSpec } = await import('../../core/spaces/spec.ts');
  return spaceFromSpec(params.spaceSpec);
}

async function newRunParams(options: RunOptions): Promise<{ params: RunParams; out: string }> {
  if (!options.space) {
    throw new ValidationError('space', 'give --space NAME (see `esm spaces`) or --resume DIR');
  }
  await resolveSpace(options.space);
  const spaceSpec = options.space.endsWith('.json')
    ? (JSON.parse(await readFile(options.space, 'utf8')) as Record<string, unknown>)
    : undefined;
  const input: RunParamsInput = {
    space: options.space,
    spaceSpec,
    device: options.device,
    broker: options.broker,
    sampling: options.sampling,
    encoding: options.encoding,
    nInit: options.nInit,
    nStep: options.nStep,
    accTh: options.accTh,
    bins: options.bins,
    w1: options.w1,
    maxIter: options.maxIter,
    testFraction: options.testFraction,
    minTestPerBin: options.minTestPerBin,
    seed: options.seed,
    chunkSize: options.chunkSize,
  };
  const base = runParams.parse(input);
  const params = runParams.parse({
    ...base,
    measurement: {
      ...base.measurement,
      ...(options.runs !== undefined && { runs: options.runs }),
      ...(options.warmup !== undefined && { warmup: options.warmup }),
      ...(options.threads !== undefined && { threads: options.threads }),
      // The paper's 3 % holds on a dedicated device; the embedded one shares this machine's
      // cores, where reference models drift 20-30 % under load (docs/run.md).
      maxReferenceDrift: options.maxDrift ?? (base.device === 'local' ? 0.3 : 0.03),
      // The embedded device shares this machine's cores with everything else running here,
      // so it times CPU time by default; remote devices are dedicated and time wall clock.
      clock: options.clock ?? (base.device === 'local' ? 'cpu' : 'wall'),
      // Interleaving cancels the speed changes of a shared machine (docs/measurement.md): on by
      // default for the embedded device; remote devices report absolute milliseconds.
      ...((options.interleave ?? base.device === 'local') && { interleave: true }),
    },
  });
  const name = options.space.replace(/^.*\//, '').replace(/\.json$/, '');
  const out =
    options.out ??
    join(
      '.esm',
      'runs',
      `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}-${name}`,
    );
  return { params, out };
}

function pct(x: number | null): string {
  return x === null ? '  -  ' : `${(x * 100).toFixed(1)}%`;
}

export function register(program: Command): void {
  program
    .command('run')
    .description(
      'run the ESM loop (sample, measure, train, evaluate per depth bin, extend) and save a predictor',
    )
    .option('--space <name|spec.json>', 'search space (see `esm spaces`)')
    .option(
      '--device <device>',
      'local | dataset:FILE (replay a measured JSONL) | thing:NAME (with --broker)',
      'local',
    )
    .option(
      '--sampling <strategy>',
      `${samplingStrategies.join(' | ')} (default balanced)`,
      parse.oneOf(samplingStrategies),
    )
    .option(
      '--encoding <name>',
      `${encodingNames.join(' | ')} (default fcc)`,
      parse.oneOf(encodingNames),
    )
    .option(
      '--n-init <n>',
      'N_I: architectures measured first (default 100)',
      parse.int(2, 100_000),
    )
    .option(
      '--n-step <n>',
      'N_Step: architectures added per extension (default 50)',
      parse.int(1, 100_000),
    )
    .option(
      '--acc-th <x>',
      'AccTH: accuracy (1 - MAPE) every depth bin must reach (default 0.95)',
      parse.number(0.01, 0.9999),
    )
    .option('--bins <n>', 'N_Bins: depth bins (default 5)', parse.int(1, 100))
    .option(
      '--w1 <w>',
      'weight of a failing bin in the extension (default 3)',
      parse.number(0.001, 1000),
    )
    .option('--max-iter <n>', 'iterations before giving up (default 4)', parse.int(1, 1000))
    .option(
      '--test-fraction <f>',
      'share of every batch held out per bin for testing (default 0.2)',
      parse.number(0.01, 0.9),
    )
    .option(
      '--min-test-per-bin <n>',
      'test samples a bin needs before it may count as converged (default 1)',
      parse.int(1, 10_000),
    )
    .option('--seed <k>', 'random seed (default 1)', parse.int(0, 0xffffffff))
    .option('--runs <n>', 'timed runs per model on the device (default 15)', parse.int(1, 10_000))
    .option('--warmup <n>', 'untimed runs per model (default 5)', parse.int(0, 1000))
    .option('--threads <n>', 'onnxruntime threads on the device (default 1)', parse.int(1, 256))
    .option(
      '--clock <clock>',
      'what a timed run measures: wall | cpu (default cpu for local, wall otherwise)',
      parse.oneOf(['wall', 'cpu'] as const),
    )
    .option(
      '--interleave',
      'time each sample alternately with a reference model and report latency relative to it (default for local; docs/measurement.md)',
    )
    .option('--no-interleave', 'absolute latencies (the default for dataset: and thing: devices)')
    .option(
      '--max-drift <x>',
      'largest reference-model drift before a batch is unstable (default 0.3 for local, 0.03 otherwise)',
      parse.number(0.001, 1),
    )
    .option(
      '--chunk-size <n>',
      'samples per device job; results are saved per job (default 10)',
      parse.int(1, 10_000),
    )
    .option('--out <dir>', 'run directory (default .esm/runs/TIME-SPACE)')
    .option('--resume <dir>', 'continue the run in DIR (other loop options are taken from DIR)')
    .option('--broker <url>', 'MQTT broker of a thing:NAME device, e.g. mqtt://host:1883')
    .option('--json', 'print the result as JSON on stdout')
    .action(async (options: RunOptions) => {
      const resumed = options.resume ? RunStore.open(options.resume) : undefined;
      const fresh = resumed ? undefined : await newRunParams(options);
      const params = resumed?.state.params ?? (fresh as { params: RunParams }).params;
      const space = await spaceOf(params);
      const progress = createProgress({ lines: !options.json });
      let measureBar: ProgressBar | undefined;
      let trainBar: ProgressBar | undefined;
      let trainLabel = '';
      let jobBase = 0;
      // Open the device before creating the run directory, so a bad --device leaves nothing behind.
      const device = await openDevice(params.device, {
        space,
        broker: options.broker ?? params.broker,
        replayDelayMs: replayDelay(),
        onProgress: (_batchId, done) => measureBar?.update(jobBase + done),
      });
      let store: RunStore;
      try {
        store = resumed ?? RunStore.create((fresh as { out: string }).out, params);
      } catch (error) {
        await device.close();
        throw error;
      }
      let stopping = false;
      const onSigint = () => {
        if (stopping) process.exit(130);
        stopping = true;
        progress.log(
          `stopping after the current device job; continue with: esm run --resume ${store.dir}`,
        );
      };
      process.on('SIGINT', onSigint);
      progress.log(
        `run ${store.state.runId} in ${store.dir}: ${params.space} on ${params.device}, ${params.sampling} sampling, ${params.encoding} encoding, seed ${params.seed}`,
      );
      const onEvent = (event: RunEvent) => {
        switch (event.type) {
          case 'batch':
            jobBase = event.done;
            measureBar = progress.bar(`iteration ${event.iteration}: measuring`, event.total);
            measureBar.update(event.done);
            break;
          case 'measured':
            jobBase = event.done;
            measureBar?.update(event.done);
            if (event.done >= event.total) measureBar?.finish();
            break;
          case 'unstable':
            progress.log(
              `batch ${event.batchId}: reference drift ${(event.maxDrift * 100).toFixed(1)} %${event.retry ? ', measuring it again' : ''}`,
            );
            break;
          case 'training':
            measureBar?.finish();
            trainLabel = `iteration ${event.iteration}: training on ${event.rows}, epoch`;
            trainBar = undefined;
            break;
          case 'epoch':
            // Early stopping usually ends before maxEpochs; finish() then fills the bar.
            trainBar ??= progress.bar(trainLabel, event.maxEpochs);
            trainBar.update(event.epoch);
            break;
          case 'iteration': {
            trainBar?.finish();
            const r = event.record;
            progress.log(
              `iteration ${r.iteration}: ${r.samples.train} train + ${r.samples.test} test, accuracy ${pct(r.overall.accuracy)} (bin-balanced ${pct(r.overall.binBalancedAccuracy)}), ` +
                `per bin ${r.bins.map((b) => `${b.lo}-${b.hi}:${pct(b.accuracy)}`).join(' ')}; ` +
                `measuring ${r.secondsMeasuring.toFixed(0)}s, training ${r.secondsTraining.toFixed(0)}s${r.reason ? ` -> ${r.reason}` : ''}`,
            );
            break;
          }
          case 'interrupted':
            measureBar?.finish();
            break;
        }
      };
      let summary: Awaited<ReturnType<typeof runLoop>>;
      try {
        summary = await runLoop({
          store,
          space,
          device,
          savePredictor: savePredictorFiles,
          shouldStop: () => stopping,
          onEvent,
        });
      } finally {
        process.off('SIGINT', onSigint);
        await device.close();
      }
      if (summary.iterations > 0) writeReport(store);
      if (options.json) {
        const { converged, iterations, samples, bins, history, predictor } = summary;
        writeJson({ converged, iterations, samples, bins, history, predictor });
      } else if (summary.interrupted) {
        progress.log(`stopped; continue with: esm run --resume ${store.dir}`);
      } else {
        progress.log(
          `${summary.converged ? 'converged' : `not converged after ${summary.iterations} iterations (max-iter)`}: ${summary.samples} samples measured\n` +
            `predictor: ${summary.predictor}\nreport:    ${store.path('report')}`,
        );
      }
      if (summary.interrupted) process.exitCode = 130;
    });
}
