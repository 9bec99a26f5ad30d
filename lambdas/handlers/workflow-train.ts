/**
 * Train task: trains the predictor on every measured training sample of the run, evaluates
 * it per depth bin on the held-out test samples, and lets the core decide (converged, out of
 * iterations, or extend with which bin weights). The predictor (predictor.json +
 * predictor.onnx, the same artifact as `esm fit --out`) and the run's dataset go to S3;
 * the iteration record goes to DynamoDB. A retry repeats the same seeded training and
 * overwrites its own iteration only.
 */
import { createHash } from 'node:crypto';
import { ValidationError } from '../../core/errors.ts';
import {
  iterationSeed,
  type MeasuredSample,
  predictorMetrics,
  summariseIteration,
} from '../../core/loop.ts';
import { archFiles } from '../../core/onnx/arch-graph-files.ts';
import { encodeModel } from '../../core/onnx/model.ts';
import type { PredictorJson } from '../../core/predictor/artifact.ts';
import { modelToOnnxGraph, onnxMetadata } from '../../core/predictor/export-onnx.ts';
import {
  createFeaturizer,
  createRegressor,
  modelToJson,
  predictorFrame,
  type RegressorOptions,
} from '../../core/predictor/index.ts';
import type { SampleRecord } from '../adapters/run-state.ts';
import { logger, workflowTask } from '../middleware.ts';
import {
  iterationInput,
  keys,
  loadRun,
  type WorkflowDeps,
  workflowDeps,
} from '../workflow/run-context.ts';

/** Fewer training samples than this cannot train the MLP meaningfully. */
export const minTrainSamples = 8;

function datasetJsonl(samples: readonly SampleRecord[], space: string): string {
  return samples
    .map((s) =>
      JSON.stringify({
        id: s.id,
        arch: s.arch,
        latency_ms: s.latencyMs,
        std_ms: s.stats?.std_ms,
        runs: s.stats?.runs,
        depth: s.depth,
        bin: s.bin,
        split: s.split,
        iteration: s.iteration,
        device: s.thing,
        space,
        measured_at: s.measuredAt,
      }),
    )
    .join('\n')
    .concat('\n');
}

export interface TrainHandlerOptions {
  /** Regressor options (tests shorten training). @default the core's MLP defaults */
  readonly regressor?: RegressorOptions;
}

export function createTrainHandler(
  deps: () => WorkflowDeps = workflowDeps,
  options: TrainHandlerOptions = {},
) {
  return workflowTask(iterationInput, async ({ runId, iteration }) => {
    const { state, store } = deps();
    const { run, params, space, bins } = await loadRun(state, runId);
    const measured = (await state.listSamples(runId, { status: 'measured' })).sort(
      (a, b) => a.iteration - b.iteration || a.id.localeCompare(b.id, 'en', { numeric: true }),
    );
    const train = measured.filter((s) => s.split === 'train');
    const test = measured.filter((s) => s.split === 'test');
    if (train.length < minTrainSamples) {
      throw new ValidationError(
        'nInit',
        `only ${train.length} measured training samples; start the run with nInit ${minTrainSamples + 2} or more`,
      );
    }
    const started = performance.now();
    const seed = iterationSeed(params.seed ^ 0x5eed, iteration);
    const featurizer = createFeaturizer(space, { kind: 'encoding', encoding: params.encoding });
    const regressor = createRegressor('mlp', {
      ...options.regressor,
      mlp: { ...options.regressor?.mlp, seed },
    });
    const fit = await regressor.fit(
      featurizer.encodeAll(train.map((s) => space.parse(s.arch))),
      Float64Array.from(train, (s) => s.latencyMs ?? Number.NaN),
    );
    const predictedTest = await regressor.predict(
      featurizer.encodeAll(test.map((s) => space.parse(s.arch))),
    );
    const secondsTraining = (performance.now() - started) / 1000;
    // summariseIteration wants the test predictions in the order test samples appear.
    const samples: MeasuredSample[] = [...test, ...train].map((s) => ({
      depth: s.depth,
      split: s.split,
      latencyMs: s.latencyMs ?? Number.NaN,
    }));
    // Measuring time of this iteration: first publication to the last result that arrived.
    const lastMeasured = Math.max(
      ...measured
        .filter((s) => s.iteration === iteration)
        .map((s) => Date.parse(s.measuredAt ?? '')),
    );
    const measuringSeconds =
      (lastMeasured - Date.parse(run.iterationStartedAt ?? run.dispatchedAt ?? '')) / 1000;
    const record = summariseIteration({
      iteration,
      bins,
      samples,
      predictedTest,
      params,
      secondsMeasuring: Number.isFinite(measuringSeconds) ? Math.max(0, measuringSeconds) : 0,
      secondsTraining,
      quality: { maxDrift: 0, remeasured: run.unstableRetries },
      finishedAt: new Date().toISOString(),
    });

    // Artifacts are immutable per iteration, so `POST /predict` may cache them by id.
    const predictorId = `${runId}-i${iteration}`;
    const dataset = datasetJsonl(measured, space.name);
    const model = modelToJson(regressor);
    const predictor: PredictorJson = {
      ...predictorFrame(space.name, params.spaceSpec),
      features: featurizer.features,
      model,
      training: {
        seed,
        n_train: train.length,
        n_test: test.length,
        seconds: fit.seconds,
        epochs: fit.epochs,
        options: { runId, iteration, thing: run.thing },
        data: {
          file: keys.dataset(runId),
          sha256: createHash('sha256').update(dataset).digest('hex'),
          rows: measured.length,
        },
        created_at: record.finishedAt,
      },
      metrics: predictorMetrics(record),
    };
    const graph = modelToOnnxGraph(model);
    const onnx = encodeModel(graph, {
      metadata: onnxMetadata({ 'esm.space': space.name, 'esm.run': runId, 'esm.thing': run.thing }),
    });
    const arch = archFiles(space, predictor, graph);
    await store.put(keys.dataset(runId), dataset, 'application/x-ndjson');
    await store.put(keys.predictorOnnx(predictorId), onnx, 'application/octet-stream');
    await store.put(keys.predictorArchOnnx(predictorId), arch.onnx, 'application/octet-stream');
    await store.put(keys.predictorArchJson(predictorId), arch.json, 'application/json');
    await store.put(keys.predictorJson(predictorId), JSON.stringify(predictor), 'application/json');
    await store.put(
      keys.latest(space.name, run.thing),
      JSON.stringify({ id: predictorId, runId, iteration }),
      'application/json',
    );
    await state.putIteration({ ...record, runId, predictorId });
    await state.setMeasured(runId, measured.length);
    if (record.stop) {
      await state.updateRun(runId, {
        status: record.converged ? 'converged' : 'max-iter',
        predictorId,
      });
    } else {
      await state.updateRun(runId, { predictorId });
    }
    logger.info('trained', {
      runId,
      iteration,
      train: train.length,
      test: test.length,
      accuracy: record.overall.accuracy,
      bins: record.bins.map((b) => b.accuracy),
      converged: record.converged,
      seconds: secondsTraining,
    });
    return {
      runId,
      iteration,
      predictor: predictorId,
      done: record.stop,
      converged: record.converged,
      reason: record.reason,
      binWeights: record.nextBinWeights,
    };
  });
}

export const handler = createTrainHandler();
