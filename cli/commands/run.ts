/**
 * `esm run`: the ESM train-evaluate-extend loop on one machine, from sampling to a trained
 * predictor and report.html, resumable with `--resume DIR`. It executes the workflow's
 * Step Functions definition locally (local/engine.ts) over files in the run directory.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { type DatasetRow, parseDataset } from '../../core/dataset.ts';
import { encodingNames } from '../../core/encodings/types.ts';
import { ValidationError } from '../../core/errors.ts';
import { judgedAccuracy } from '../../core/loop.ts';
import { type PoolFloor, poolFloor } from '../../core/metric-rows.ts';
import { transferModel } from '../../core/predictor/transfer.ts';
import { defaultModelKind, type ModelKind, modelKinds } from '../../core/predictor/types.ts';
import { loopSamplingStrategies } from '../../core/sampling.ts';
import {
  type BinSummary,
  measurementDefaults,
  PRIOR_N_INIT,
  type RunParams,
  type RunParamsInput,
  runParams,
} from '../../core/schemas/run.ts';
import { getSpace } from '../../core/spaces/index.ts';
import type { SearchSpace } from '../../core/spaces/types.ts';
import { checkDevice } from '../../local/devices.ts';
import type { RunEvent, RunSummary } from '../../local/engine.ts';
import { loadPredictor } from '../../local/predictor-store.ts';
import { createProgress, type ProgressBar } from '../../local/progress.ts';
import { measuredAgain } from '../../local/report.ts';
import { RunStore } from '../../local/run-store.ts';
import { parse, resolveSpace, writeJson } from '../common.ts';
import {
  depthSpan,
  describePoolExhausted,
  describePoolFloor,
  describePoolTruth,
  pct,
} from '../pool-lines.ts';

interface RunOptions {
  space?: string;
  device: string;
  sampling?: RunParams['sampling'];
  encoding?: RunParams['encoding'];
  model?: RunParams['model'];
  prior?: string;
  nInit?: number;
  nStep?: number;
  accTh?: number;
  bins?: number;
  w1?: number;
  maxIter?: number;
  testFraction?: number;
  minTestPerBin?: number;
  binAccuracy?: 'test' | 'oof';
  binAccuracyZ?: number;
  seed?: number;
  runs?: number;
  warmup?: number;
  threads?: number;
  maxDrift?: number;
  maxSpread?: number;
  resultTimeout?: number;
  clock?: 'wall' | 'cpu';
  interleave?: boolean;
  metric?: RunParams['metric'];
  dropBelow?: number;
  chunkSize?: number;
  out?: string;
  resume?: string;
  broker?: string;
  json?: boolean;
}

/**
 * The run parameters of `--prior DIR`: the prior's predictor.json (checked now, so a bad
 * directory fails before anything is measured) and its encoding, which the correction reads.
 */
async function priorParams(
  options: RunOptions,
  space: SearchSpace,
): Promise<Partial<RunParamsInput>> {
  if (options.model !== undefined) {
    throw new ValidationError(
      '--model',
      "cannot be combined with --prior: every iteration corrects the prior's model; drop the flag",
    );
  }
  const dir = options.prior as string;
  const prior = await loadPredictor(dir);
  await prior.close();
  // The checks of the Train task's correction (same space, not itself a correction), now.
  transferModel(space, prior.json);
  const features = prior.json.features;
  const encoding = features.kind === 'encoding' ? features.encoding : undefined;
  if (options.encoding !== undefined && encoding !== undefined && options.encoding !== encoding) {
    throw new ValidationError(
      '--encoding',
      `the prior reads ${encoding}; drop --encoding (or give --encoding ${encoding})`,
    );
  }
  return { prior: resolve(join(dir, 'predictor.json')), ...(encoding && { encoding }) };
}

/** Options a resume accepts: they change how to measure or when to stop, not what was measured. */
const resumable = new Set([
  'resume',
  'json',
  'broker',
  'maxDrift',
  'resultTimeout',
  'maxIter',
  'accTh',
]);

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

const replayFlags = { metric: '--metric', dropBelow: '--drop-below', nInit: '--n-init' };

/**
 * What a replay's pool floor leaves out, said before the run (core/metric-rows.ts
 * `poolFloor`). A floor that leaves fewer than two rows, or a first batch larger than the
 * pool, is refused here, before the run directory exists; a dataset that cannot be read is
 * left to the replay device, which names the problem.
 */
async function describeReplayPool(
  file: string,
  space: SearchSpace,
  { metric, dropBelow, nInit }: Pick<RunParams, 'metric' | 'dropBelow' | 'nInit'>,
): Promise<void> {
  let rows: readonly DatasetRow[];
  try {
    rows = parseDataset(await readFile(file, 'utf8'), { space, file }).rows;
  } catch {
    return;
  }
  let floor: PoolFloor;
  try {
    floor = poolFloor(rows, { metric, dropBelow, file, nInit }, replayFlags);
  } catch (error) {
    // The pool's floor and size are refused here; its other problems are the replay device's.
    const field = error instanceof ValidationError ? error.field : undefined;
    if (field === replayFlags.dropBelow || field === replayFlags.nInit) throw error;
    return;
  }
  const line = describePoolFloor(floor, { file, metric, dropBelow }, 'flags');
  if (line !== undefined) process.stderr.write(`${line}\n`);
}

/** How the loop ended, as the run's last lines say it. */
function stopLine(summary: RunSummary): string {
  if (summary.converged) return 'converged';
  if (summary.status === 'pool-exhausted')
    return describePoolExhausted(summary.iterations, 'flags');
  return `not converged after ${summary.iterations} iterations (max-iter)`;
}

async function newRunParams(options: RunOptions): Promise<{ params: RunParams; out: string }> {
  if (!options.space) {
    throw new ValidationError('space', 'give --space NAME (see `esm spaces`) or --resume DIR');
  }
  const space = await resolveSpace(options.space);
  const spaceSpec = options.space.endsWith('.json')
    ? (JSON.parse(await readFile(options.space, 'utf8')) as Record<string, unknown>)
    : undefined;
  const device = options.device;
  const input: RunParamsInput = {
    space: options.space,
    spaceSpec,
    device,
    broker: options.broker,
    // A replay run samples from the dataset it replays (absolute: resumes may run elsewhere).
    pool: device.startsWith('dataset:') ? resolve(device.slice('dataset:'.length)) : undefined,
    dropBelow: options.dropBelow,
    sampling: options.sampling,
    encoding: options.encoding,
    model: options.model,
    ...(options.prior !== undefined && (await priorParams(options, space))),
    nInit: options.nInit ?? (options.prior !== undefined ? PRIOR_N_INIT : undefined),
    nStep: options.nStep,
    accTh: options.accTh,
    bins: options.bins,
    w1: options.w1,
    maxIter: options.maxIter,
    testFraction: options.testFraction,
    minTestPerBin: options.minTestPerBin,
    binAccuracy: options.binAccuracy,
    binAccuracyZ: options.binAccuracyZ,
    seed: options.seed,
    chunkSize: options.chunkSize,
    resultTimeoutSeconds: options.resultTimeout,
    metric: options.metric,
  };
  const base = runParams.parse(input);
  const defaults = measurementDefaults(device);
  const maxSampleSpread = options.maxSpread ?? defaults.maxSampleSpread;
  const params = runParams.parse({
    ...base,
    measurement: {
      ...base.measurement,
      ...(options.runs !== undefined && { runs: options.runs }),
      ...(options.warmup !== undefined && { warmup: options.warmup }),
      ...(options.threads !== undefined && { threads: options.threads }),
      maxReferenceDrift: options.maxDrift ?? defaults.maxReferenceDrift,
      ...(maxSampleSpread !== undefined && { maxSampleSpread }),
      clock: options.clock ?? defaults.clock,
      ...((options.interleave ?? defaults.interleave) && { interleave: true }),
      // The devices measure the metric the run converges on (docs/protocol.md).
      ...(base.metric !== 'latency_ms' && { metrics: [base.metric] }),
    },
  });
  if (params.metric === 'energy_mj' && params.device === 'local') {
    // This machine is the device: without an energy counter the run could never converge.
    const { findEnergyCounter } = await import('../../device-client/metrics.ts');
    const lookup = await findEnergyCounter();
    if (!lookup.counter) {
      throw new ValidationError('--metric', `energy_mj cannot be measured here: ${lookup.reason}`);
    }
  }
  if (params.pool) {
    await describeReplayPool(params.pool, space, params);
  } else if (params.dropBelow !== undefined) {
    throw new ValidationError(
      '--drop-below',
      'leaves rows out of a replayed dataset; give it with --device dataset:FILE or drop it',
    );
  }
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

/** Refuses options that would change what a resumed run measures. */
function checkResumeOptions(options: RunOptions, command: Command): void {
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined || resumable.has(key)) continue;
    if (command.getOptionValueSource(key) === 'default') continue;
    const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    throw new ValidationError(
      flag.replace(/^--no-/, '--'),
      `cannot change on --resume: it changes what the run measures. A resume may change --max-drift, --result-timeout, --max-iter and --acc-th; start a new run (--out DIR) for other settings`,
    );
  }
}

function judgedLabel(bins: readonly BinSummary[]): string {
  const decided = bins.find((b) => b.decided !== undefined)?.decided;
  if (decided === undefined) return '';
  return decided.lowerBound === undefined ? ' (test + out-of-fold)' : ' (out-of-fold lower bound)';
}

/** The model a run trains, as its header names it (auto brings physics and LUT counts). */
function describeModel(p: { model?: ModelKind; encoding: string; prior?: string }): string {
  if (p.prior !== undefined) return `a correction of the prior ${p.prior}`;
  const model = p.model ?? defaultModelKind;
  return model === 'auto'
    ? `auto model (physics + ${p.encoding} + LUT counts)`
    : `${model} on ${p.encoding}`;
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
      'local | dataset:FILE (replay a measured JSONL) | thing:NAME or thing:A,thing:B,... (with --broker; batches are sharded over them)',
      'local',
    )
    .option(
      '--sampling <strategy>',
      `${loopSamplingStrategies.join(' | ')} (default balanced; active: docs/run.md)`,
      parse.oneOf(loopSamplingStrategies),
    )
    .option(
      '--encoding <name>',
      `${encodingNames.join(' | ')} (default fcc)`,
      parse.oneOf(encodingNames),
    )
    .option(
      '--model <kind>',
      `regressor trained every iteration: ${modelKinds.join(' | ')} (default: esm fit's default)`,
      parse.oneOf(modelKinds),
    )
    .option(
      '--prior <dir>',
      'predictor directory of another device in the same space: every iteration corrects it (transfer), the first batch is small',
    )
    .option(
      '--n-init <n>',
      `N_I: architectures measured first (default 100, ${PRIOR_N_INIT} with --prior)`,
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
    .option(
      '--bin-accuracy <rule>',
      "what a bin is judged on: test (its test samples) | oof (also auto's out-of-fold predictions of its training samples; docs/run.md) (default test)",
      parse.oneOf(['test', 'oof'] as const),
    )
    .option(
      '--bin-accuracy-z <z>',
      'with --bin-accuracy oof: a bin passes when its accuracy minus z standard errors reaches AccTH (default 0)',
      parse.number(0, 5),
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
    .option(
      '--metric <name>',
      'what the predictor learns: latency_ms (default), peak_memory_mb or energy_mj, measured by the device',
      parse.oneOf(['latency_ms', 'peak_memory_mb', 'energy_mj'] as const),
    )
    .option(
      '--drop-below <value>',
      'replay: leave the rows whose --metric is below VALUE out of the pool (NAS-Bench-201 cells without an input-output path measure a few tenths of a ms; the run notes a value)',
      parse.number(0, 1e6),
    )
    .option('--no-interleave', 'absolute latencies (the default for dataset: and thing: devices)')
    .option(
      '--max-drift <x>',
      'largest reference-model drift before a batch is unstable (default 0.3 for local, 0.03 otherwise)',
      parse.number(0.001, 1),
    )
    .option(
      '--max-spread <x>',
      "measure a sample again when its runs' std / median exceeds this (default 0.3 for local, off otherwise)",
      parse.number(0.001, 10),
    )
    .option(
      '--result-timeout <seconds>',
      'a device that reports no progress for this long has its samples sent again (default 300)',
      parse.int(1, 86_400),
    )
    .option(
      '--chunk-size <n>',
      'samples per device job; results are saved per job (default 10)',
      parse.int(1, 10_000),
    )
    .option('--out <dir>', 'run directory (default .esm/runs/TIME-SPACE)')
    .option(
      '--resume <dir>',
      'continue the run in DIR; only --max-drift, --result-timeout, --max-iter and --acc-th may change',
    )
    .option('--broker <url>', 'MQTT broker of a thing:NAME device, e.g. mqtt://host:1883')
    .option('--json', 'print the result as JSON on stdout')
    .action(async (options: RunOptions, command: Command) => {
      // The workflow's handlers log with the Lambda logger; on a terminal the progress shows.
      process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
      const { prepareResume, runWorkflow } = await import('../../local/engine.ts');
      const { openDevices } = await import('../../local/devices.ts');
      const { writeReport } = await import('../../local/report.ts');
      let resumed: RunStore | undefined;
      if (options.resume) {
        checkResumeOptions(options, command);
        resumed = RunStore.open(options.resume);
      }
      const fresh = resumed ? undefined : await newRunParams(options);
      const params = resumed?.state.params ?? (fresh as { params: RunParams }).params;
      const broker = options.broker ?? params.broker;
      checkDevice(params.device, broker);
      const space = await spaceOf(params);
      const progress = createProgress({ lines: !options.json });
      // Open the devices before creating the run directory, so a bad --device leaves nothing behind.
      const devices = await openDevices(params.device, {
        space,
        broker,
        replayDelayMs: replayDelay(),
      });
      let store: RunStore;
      let work = true;
      try {
        store = resumed ?? RunStore.create((fresh as { out: string }).out, params);
        if (resumed) {
          work = await prepareResume(resumed, {
            maxIter: options.maxIter,
            accTh: options.accTh,
            resultTimeoutSeconds: options.resultTimeout,
            maxDrift: options.maxDrift,
          });
        }
      } catch (error) {
        await devices.close();
        throw error;
      }
      const stop = new AbortController();
      const onSigint = () => {
        if (stop.signal.aborted) process.exit(130);
        progress.log(`stopping; continue with: esm run --resume ${store.dir}`);
        stop.abort();
      };
      process.on('SIGINT', onSigint);
      const p = store.state.params;
      progress.log(
        `run ${store.state.runId} in ${store.dir}: ${p.space} on ${p.device}${p.dropBelow === undefined ? '' : ` without rows under ${p.dropBelow}`}, ${p.sampling} sampling, ${describeModel(p)}, seed ${p.seed}`,
      );
      let measureBar: ProgressBar | undefined;
      let trainBar: ProgressBar | undefined;
      let trainLabel = '';
      const onEvent = (event: RunEvent) => {
        switch (event.type) {
          case 'batch':
            measureBar = progress.bar(`iteration ${event.iteration}: measuring`, event.total);
            measureBar.update(event.done);
            break;
          case 'measured':
            measureBar?.update(event.done);
            if (event.done >= event.total) measureBar?.finish();
            break;
          case 'unstable':
            progress.log(
              `job ${event.batches.join(', ')}: reference drift above ${(p.measurement.maxReferenceDrift * 100).toFixed(1)} %, measuring it again`,
            );
            break;
          case 'redispatch':
            progress.log(
              `device ${event.silent.join(', ')} sent no progress for ${p.resultTimeoutSeconds} s; sending its samples again`,
            );
            break;
          case 'rejected':
            progress.log(`warning: ${event.message}`);
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
            const again = measuredAgain(r.quality);
            progress.log(
              `iteration ${r.iteration}: ${r.samples.train} train + ${r.samples.test} test, accuracy ${pct(r.overall.accuracy)} (bin-balanced ${pct(r.overall.binBalancedAccuracy)}), ` +
                `per depth bin${judgedLabel(r.bins)} ${r.bins.map((b) => `${depthSpan(b)}:${pct(judgedAccuracy(b))}`).join(' ')}; ` +
                `measuring ${r.secondsMeasuring.toFixed(0)}s${again ? ` (measured again: ${again})` : ''}, training ${r.secondsTraining.toFixed(0)}s${r.reason ? ` -> ${r.reason}` : ''}`,
            );
            break;
          }
          case 'interrupted':
            measureBar?.finish();
            break;
        }
      };
      let summary: RunSummary;
      try {
        const { summarise } = await import('../../local/engine.ts');
        summary = work
          ? await runWorkflow({
              store,
              brokerUrl: devices.brokerUrl,
              signal: stop.signal,
              onEvent,
            })
          : summarise(store);
      } finally {
        process.off('SIGINT', onSigint);
        measureBar?.finish();
        await devices.close();
      }
      const truth = summary.interrupted ? undefined : summary.history.at(-1)?.poolTruth;
      if (summary.iterations > 0) writeReport(store);
      if (options.json) {
        const { status, converged, iterations, samples, bins, history, predictor } = summary;
        writeJson({
          status,
          converged,
          iterations,
          samples,
          bins,
          history,
          predictor,
          ...(truth && { pool: truth }),
        });
      } else if (summary.interrupted) {
        progress.log(`stopped; continue with: esm run --resume ${store.dir}`);
      } else {
        if (truth) for (const line of describePoolTruth(truth, p, 'flags')) progress.log(line);
        progress.log(
          `${stopLine(summary)}: ${summary.samples} samples measured\n` +
            `predictor: ${summary.predictor}\nreport:    ${store.path('report')}`,
        );
      }
      if (summary.interrupted) process.exitCode = 130;
    });
}
