/**
 * The ESM loop on one machine: plan a batch (core/loop.ts), measure it on a device in jobs of
 * `chunkSize` samples, store every result as it arrives, train, evaluate per depth bin,
 * record the iteration, decide, repeat. All state lives in the run directory (RunStore), so
 * `runLoop` on a reopened store continues where a crash or Ctrl-C left off: planned batches
 * are kept in state.json, measured samples in dataset.jsonl, and only unmeasured samples of
 * the current batch are sent to the device again.
 */
import { createEncoder, encodeAll } from '../core/encodings/index.ts';
import { UnstableDeviceError, ValidationError } from '../core/errors.ts';
import {
  iterationSeed,
  type MeasuredSample,
  planExtension,
  planInitialBatch,
  predictorMetrics,
  summariseIteration,
} from '../core/loop.ts';
import type { Clock, Logger } from '../core/ports.ts';
import { silentLogger, systemClock } from '../core/ports.ts';
import type { PredictorJson } from '../core/predictor/artifact.ts';
import { modelToJson, predictorFrame } from '../core/predictor/index.ts';
import { createMlp } from '../core/predictor/mlp.ts';
import type { FitReport, Regressor } from '../core/predictor/types.ts';
import { createRng } from '../core/rng.ts';
import { depthBins, poolDepthBins } from '../core/sampling.ts';
import type {
  IterationRecord,
  PlannedSample,
  RunDatasetLine,
  RunParams,
  RunState,
} from '../core/schemas/run.ts';
import { subnetKey } from '../core/spaces/subnet.ts';
import type { SearchSpace } from '../core/spaces/types.ts';
import type { Device } from './devices.ts';
import { type RunStore, writeFileAtomic } from './run-store.ts';

/** What the loop reports while it works (progress bars, logs). */
export type RunEvent =
  | { type: 'batch'; iteration: number; total: number; done: number }
  | { type: 'measured'; iteration: number; total: number; done: number }
  | { type: 'unstable'; iteration: number; batchId: string; maxDrift: number; retry: boolean }
  | { type: 'training'; iteration: number; rows: number }
  | { type: 'epoch'; iteration: number; epoch: number; maxEpochs: number }
  | { type: 'iteration'; record: IterationRecord }
  | { type: 'interrupted'; iteration: number };

/** Everything a predictor needs to be saved next to the run. */
export interface TrainedPredictor {
  readonly regressor: Regressor;
  readonly space: SearchSpace;
  readonly encoding: RunState['params']['encoding'];
  readonly fit: FitReport;
  readonly record: IterationRecord;
  readonly runId: string;
  readonly trainRows: number;
  readonly seed: number;
  readonly featureLength: number;
  readonly spaceSpec: Record<string, unknown> | undefined;
  /** The run's dataset.jsonl, recorded (with its hash) as the training data. */
  readonly datasetFile: string;
}

export interface RunLoopOptions {
  readonly store: RunStore;
  readonly space: SearchSpace;
  readonly device: Device;
  /** @default an MLP (3 x 64) seeded from the run's seed */
  readonly createRegressor?: (options: {
    seed: number;
    onEpoch: (epoch: number, maxEpochs: number) => void;
  }) => Regressor;
  /** Writes the iteration's predictor into `dir`. @default none (nothing is saved) */
  readonly savePredictor?: (dir: string, predictor: TrainedPredictor) => Promise<void>;
  /** Polled between device jobs; true stops the loop with the state saved. @default never */
  readonly shouldStop?: () => boolean;
  readonly onEvent?: (event: RunEvent) => void;
  /** @default silentLogger */
  readonly logger?: Logger;
  /** @default systemClock */
  readonly clock?: Clock;
}

export interface RunSummary {
  readonly runId: string;
  readonly status: RunState['status'];
  readonly converged: boolean;
  readonly iterations: number;
  readonly samples: number;
  /** Per bin: measured samples (train + test) and the last test accuracy. */
  readonly bins: { lo: number; hi: number; n: number; accuracy: number | null }[];
  readonly history: IterationRecord[];
  /** Directory of the final predictor. */
  readonly predictor: string;
  /** True when the loop stopped on request (Ctrl-C) before finishing. */
  readonly interrupted: boolean;
}

/** The run's summary as `esm run --json` prints it, from what the store holds. */
export function summarise(store: RunStore, interrupted = false): RunSummary {
  const state = store.state;
  const history = store.iterations();
  const last = history[history.length - 1];
  return {
    runId: state.runId,
    status: state.status,
    converged: state.status === 'converged',
    iterations: history.length,
    samples: store.measurements().length,
    bins: (last?.bins ?? []).map((b) => ({
      lo: b.lo,
      hi: b.hi,
      n: b.train + b.test,
      accuracy: b.accuracy,
    })),
    history,
    predictor: store.path('predictor'),
    interrupted,
  };
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * With interleaved measurement, the first job's reference latency becomes the run's scale:
 * recorded in the parameters (so resumes keep it) and sent with every later job, so that all
 * latencies of a run are ratios to the same reference times the same number.
 */
function calibrated(params: RunParams, referenceScaleMs: number | undefined): RunParams {
  const m = params.measurement;
  if (!m.interleave || m.referenceScaleMs !== undefined || referenceScaleMs === undefined) {
    return params;
  }
  return { ...params, measurement: { ...m, referenceScaleMs } };
}

/** Runs (or resumes) the loop until it converges, reaches max-iter, or is asked to stop. */
export async function runLoop(options: RunLoopOptions): Promise<RunSummary> {
  const { store, space, device, logger = silentLogger, clock = systemClock } = options;
  const emit = options.onEvent ?? (() => {});
  const params = store.state.params;
  // Replays bin over the depths their pool holds (see poolDepthBins).
  const bins = device.pool
    ? poolDepthBins(device.pool, params.bins)
    : depthBins(space, params.bins);
  const measured = new Map<string, RunDatasetLine>(store.measurements().map((m) => [m.id, m]));
  const history = store.iterations();

  let state = store.state;
  if (state.status === 'failed') state = { ...state, status: 'running', error: undefined };
  // A crash between appending an iteration record and saving the state: the record wins.
  const lastRecord = history[history.length - 1];
  if (lastRecord && lastRecord.iteration >= state.iteration) {
    state = {
      ...state,
      iteration: lastRecord.iteration + 1,
      batch: null,
      status: lastRecord.stop ? (lastRecord.reason ?? 'max-iter') : 'running',
    };
  }
  store.save(state);

  while (state.status === 'running') {
    const iteration = state.iteration;
    if (!state.batch) {
      const rng = createRng(iterationSeed(params.seed, iteration));
      const exclude = new Set(
        [...measured.values()].map((m) => space.parse(m.arch)).map(subnetKey),
      );
      const source = device.pool
        ? ({ kind: 'pool', pool: device.pool, space } as const)
        : ({ kind: 'space', space } as const);
      const previous = history[history.length - 1];
      const batch =
        iteration === 0 || !previous
          ? planInitialBatch({ source, params, bins, rng, exclude })
          : planExtension({
              source,
              params,
              bins,
              rng,
              exclude,
              iteration,
              binWeights: previous.nextBinWeights,
            });
      state = { ...state, batch, secondsMeasuring: 0, remeasured: 0, maxDrift: 0 };
      store.save(state);
      logger.info('planned', { iteration, samples: batch.length });
    }

    const batch = state.batch as PlannedSample[];
    const pending = batch.filter((s) => !measured.has(s.id));
    let done = batch.length - pending.length;
    emit({ type: 'batch', iteration, total: batch.length, done });
    for (const [c, chunk] of chunks(pending, params.chunkSize).entries()) {
      if (options.shouldStop?.()) {
        emit({ type: 'interrupted', iteration });
        return summarise(store, true);
      }
      const started = performance.now();
      const request = {
        runId: state.runId,
        // Unique per attempt so a late duplicate of an earlier job cannot be mistaken for it.
        batchId: `i${iteration}-c${c}-${done}`,
        space: space.name,
        spaceSpec: params.spaceSpec,
        samples: chunk.map((s) => ({ id: s.id, arch: s.arch })),
        // state.params, not params: it gains the interleaving calibration after the first job.
        settings: state.params.measurement,
      };
      let outcome = await device.measure(request);
      let remeasured = 0;
      if (outcome.quality.unstable) {
        emit({
          type: 'unstable',
          iteration,
          batchId: request.batchId,
          maxDrift: outcome.quality.maxDrift,
          retry: true,
        });
        logger.warn('unstable batch, measuring again', {
          batchId: request.batchId,
          maxDrift: outcome.quality.maxDrift,
        });
        remeasured = 1;
        outcome = await device.measure({ ...request, batchId: `${request.batchId}-retry` });
      }
      const seconds = (performance.now() - started) / 1000;
      if (outcome.quality.unstable) {
        emit({
          type: 'unstable',
          iteration,
          batchId: request.batchId,
          maxDrift: outcome.quality.maxDrift,
          retry: false,
        });
        const message =
          `the device is unstable: reference models drifted ${(outcome.quality.maxDrift * 100).toFixed(1)} % ` +
          `(allowed ${(params.measurement.maxReferenceDrift * 100).toFixed(1)} %) twice in a row in batch ${request.batchId}. ` +
          'Stop other work on the machine, or allow more drift with --max-drift, then continue with --resume';
        state = {
          ...state,
          status: 'failed',
          error: message,
          secondsMeasuring: state.secondsMeasuring + seconds,
        };
        store.save(state);
        throw new UnstableDeviceError(message);
      }
      const byId = new Map(chunk.map((s) => [s.id, s]));
      const at = clock.now().toISOString();
      for (const result of outcome.samples) {
        const plan = byId.get(result.id);
        if (!plan || measured.has(result.id)) continue;
        const line: RunDatasetLine = {
          id: plan.id,
          arch: plan.arch,
          latency_ms: result.stats.median_ms,
          std_ms: result.stats.std_ms,
          runs: result.stats.runs,
          depth: plan.depth,
          bin: plan.bin,
          split: plan.split,
          iteration: plan.iteration,
          device: outcome.device,
          space: space.name,
          measured_at: at,
        };
        store.appendMeasurement(line);
        measured.set(line.id, line);
        done++;
      }
      state = {
        ...state,
        params: calibrated(state.params, outcome.quality.referenceScaleMs),
        secondsMeasuring: state.secondsMeasuring + seconds,
        remeasured: state.remeasured + remeasured,
        maxDrift: Math.max(state.maxDrift, outcome.quality.maxDrift),
      };
      store.save(state);
      emit({ type: 'measured', iteration, total: batch.length, done });
    }
    const missing = batch.filter((s) => !measured.has(s.id));
    if (missing.length > 0) {
      throw new ValidationError(
        'device',
        `${device.name} returned no result for ${missing.length} samples (first: ${missing[0]?.id}); run again with --resume to measure them`,
      );
    }

    const record = await trainAndEvaluate(
      options,
      state,
      [...measured.values()],
      bins,
      emit,
      clock,
    );
    store.appendIteration(record);
    history.push(record);
    logger.info('iteration', {
      iteration,
      accuracy: record.overall.accuracy,
      bins: record.bins.map((b) => b.accuracy),
    });
    emit({ type: 'iteration', record });
    state = {
      ...state,
      iteration: iteration + 1,
      batch: null,
      status: record.stop ? (record.reason ?? 'max-iter') : 'running',
    };
    store.save(state);
  }
  return summarise(store);
}

async function trainAndEvaluate(
  options: RunLoopOptions,
  state: RunState,
  lines: readonly RunDatasetLine[],
  bins: ReturnType<typeof depthBins>,
  emit: (event: RunEvent) => void,
  clock: Clock,
): Promise<IterationRecord> {
  const { space, store } = options;
  const params = state.params;
  const iteration = state.iteration;
  const started = performance.now();
  const encoder = createEncoder(space, params.encoding);
  const train = lines.filter((l) => l.split === 'train');
  const test = lines.filter((l) => l.split === 'test');
  if (train.length < 8) {
    throw new ValidationError(
      'nInit',
      `only ${train.length} training samples; use --n-init 10 or more`,
    );
  }
  emit({ type: 'training', iteration, rows: train.length });
  const onEpoch = (epoch: number, maxEpochs: number) =>
    emit({ type: 'epoch', iteration, epoch, maxEpochs });
  const seed = iterationSeed(params.seed ^ 0x5eed, iteration);
  const regressor = options.createRegressor
    ? options.createRegressor({ seed, onEpoch })
    : createMlp({ seed, onEpoch: (p) => onEpoch(p.epoch, p.maxEpochs) });
  const x = encodeAll(
    encoder,
    train.map((l) => space.parse(l.arch)),
  );
  const fit = await regressor.fit(
    x,
    Float64Array.from(train, (l) => l.latency_ms),
  );
  const predictedTest = await regressor.predict(
    encodeAll(
      encoder,
      test.map((l) => space.parse(l.arch)),
    ),
  );
  const secondsTraining = (performance.now() - started) / 1000;
  // summariseIteration expects predictions in the order test samples appear in `samples`.
  const samples: MeasuredSample[] = [...test, ...train].map((l) => ({
    depth: l.depth,
    split: l.split,
    latencyMs: l.latency_ms,
  }));
  const record = summariseIteration({
    iteration,
    bins,
    samples,
    predictedTest,
    params,
    secondsMeasuring: state.secondsMeasuring,
    secondsTraining,
    quality: { maxDrift: state.maxDrift, remeasured: state.remeasured },
    finishedAt: clock.now().toISOString(),
  });
  writeFileAtomic(
    store.path('predictions'),
    `${JSON.stringify({
      iteration,
      points: test.map((l, i) => ({
        id: l.id,
        depth: l.depth,
        bin: l.bin,
        measured: l.latency_ms,
        predicted: predictedTest[i],
      })),
    })}\n`,
  );
  if (options.savePredictor) {
    await options.savePredictor(store.path('predictor'), {
      regressor,
      space,
      encoding: params.encoding,
      fit,
      record,
      runId: state.runId,
      trainRows: train.length,
      seed,
      featureLength: encoder.length,
      spaceSpec: params.spaceSpec,
      datasetFile: store.path('dataset'),
    });
  }
  return record;
}

/**
 * Saves the iteration's predictor with the predictor store (predictor.json + predictor.onnx,
 * the format `esm predict` and the API load), replacing the previous iteration's.
 */
export async function savePredictorFiles(dir: string, predictor: TrainedPredictor): Promise<void> {
  const { createHash } = await import('node:crypto');
  const { readFile } = await import('node:fs/promises');
  const { savePredictor } = await import('./predictor-store.ts');
  const { record, fit } = predictor;
  const data = await readFile(predictor.datasetFile);
  const json: PredictorJson = {
    ...predictorFrame(predictor.space.name, predictor.spaceSpec),
    features: { kind: 'encoding', encoding: predictor.encoding, length: predictor.featureLength },
    model: modelToJson(predictor.regressor),
    training: {
      seed: predictor.seed,
      n_train: record.samples.train,
      n_test: record.samples.test,
      seconds: fit.seconds,
      epochs: fit.epochs,
      backend: (fit as { backend?: string }).backend,
      options: { runId: predictor.runId, iteration: record.iteration },
      data: {
        file: predictor.datasetFile,
        sha256: createHash('sha256').update(data).digest('hex'),
        rows: record.samples.train + record.samples.test,
      },
      created_at: record.finishedAt,
    },
    metrics: predictorMetrics(record),
  };
  await savePredictor(dir, json);
}
