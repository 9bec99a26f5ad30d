/**
 * Train task: the core's `trainIteration` on every measured sample of the run (train on the
 * training rows, evaluate per depth bin on the held-out test rows, decide: converged, out of
 * iterations, a replay's pool used up, or extend with which bin weights). The run's dataset,
 * the predictor (predictor.json + predictor.onnx, the same artifact as `esm fit --out`) and
 * the test predictions go to the dataset store; the iteration record to the run-state store.
 * A retry repeats the same seeded training and overwrites its own iteration only.
 */
import { createHash } from 'node:crypto';
import { archFiles } from '../../core/onnx/arch-graph-files.ts';
import { encodeModel } from '../../core/onnx/model.ts';
import { modelToOnnxGraph, onnxMetadata } from '../../core/predictor/export-onnx.ts';
import type { RegressorOptions } from '../../core/predictor/index.ts';
import { poolLeft } from '../../core/sampling.ts';
import { datasetJsonl, trainIteration, trainRows } from '../../core/train-iteration.ts';
import { logger, workflowTask } from '../middleware.ts';
import {
  iterationInput,
  keys,
  loadPool,
  loadPrior,
  loadRun,
  undrawnRows,
  type WorkflowDeps,
  workflowDeps,
} from '../workflow/run-context.ts';

export interface TrainHandlerOptions {
  /** Regressor options (tests shorten training). @default the model's defaults */
  readonly regressor?: RegressorOptions;
  /** Called as the model trains (the progress bar of `esm run`). */
  readonly onEpoch?: (progress: {
    runId: string;
    iteration: number;
    epoch: number;
    maxEpochs: number;
  }) => void;
}

export function createTrainHandler(
  deps: () => WorkflowDeps = workflowDeps,
  options: TrainHandlerOptions = {},
) {
  return workflowTask(iterationInput, async ({ runId, iteration }) => {
    const { state, store, clock } = deps();
    const now = () => clock?.now() ?? new Date();
    const { run, params, space, bins, things } = await loadRun(state, runId);
    const measured = await state.listSamples(runId, { status: 'measured' });
    const dataset = datasetJsonl(measured, space.name, params.metric);
    // Measuring time of this iteration: first publication to the last result that arrived.
    const lastMeasured = Math.max(
      ...measured
        .filter((s) => s.iteration === iteration)
        .map((s) => Date.parse(s.measuredAt ?? '')),
    );
    const measuringSeconds =
      (lastMeasured - Date.parse(run.iterationStartedAt ?? run.dispatchedAt ?? '')) / 1000;
    const onEpoch = options.onEpoch;
    // A replay stops when its pool is used up, and its last iteration is scored on the rest.
    const pool = await loadPool(store, params, space);
    const replay = pool && {
      pool,
      drawn: new Set((await state.listSamples(runId)).map((s) => s.key)),
    };
    const result = await trainIteration({
      space,
      params,
      bins,
      iteration,
      rows: trainRows(measured),
      secondsMeasuring: Number.isFinite(measuringSeconds) ? measuringSeconds : 0,
      remeasured: run.unstableRetries,
      data: {
        file: keys.dataset(runId),
        sha256: createHash('sha256').update(dataset).digest('hex'),
      },
      provenance: { runId, thing: run.thing, things: [...things] },
      regressor: options.regressor,
      prior: await loadPrior(store, params),
      undrawn: replay && (async () => undrawnRows(replay.pool, replay.drawn)),
      poolLeft: replay && poolLeft(replay.pool, replay.drawn),
      onEpoch: onEpoch && ((epoch, maxEpochs) => onEpoch({ runId, iteration, epoch, maxEpochs })),
      now,
    });
    const { record } = result;
    // A run on another metric says so in predictor.json (esm predict prints that field).
    const predictor =
      params.metric === 'latency_ms'
        ? result.predictor
        : { ...result.predictor, metric: params.metric };

    // Artifacts are immutable per iteration, so `POST /predict` may cache them by id.
    const predictorId = `${runId}-i${iteration}`;
    const graph = modelToOnnxGraph(predictor.model);
    const onnx = encodeModel(graph, {
      metadata: onnxMetadata({ 'esm.space': space.name, 'esm.run': runId, 'esm.thing': run.thing }),
    });
    const arch = archFiles(space, predictor, graph);
    await store.put(keys.dataset(runId), dataset, 'application/x-ndjson');
    await store.put(
      keys.predictions(runId),
      `${JSON.stringify({ iteration, points: result.predictions })}\n`,
      'application/json',
    );
    await store.put(keys.predictorOnnx(predictorId), onnx, 'application/octet-stream');
    if (arch) {
      await store.put(keys.predictorArchOnnx(predictorId), arch.onnx, 'application/octet-stream');
      await store.put(keys.predictorArchJson(predictorId), arch.json, 'application/json');
    }
    await store.put(keys.predictorJson(predictorId), JSON.stringify(predictor), 'application/json');
    await store.put(
      keys.latest(space.name, run.thing),
      JSON.stringify({ id: predictorId, runId, iteration }),
      'application/json',
    );
    await state.putIteration({ ...record, runId, predictorId });
    await state.setMeasured(runId, measured.length);
    await state.updateRun(runId, {
      predictorId,
      ...(record.stop && record.reason !== null && { status: record.reason }),
    });
    logger.info('trained', {
      runId,
      iteration,
      train: record.samples.train,
      test: record.samples.test,
      accuracy: record.overall.accuracy,
      bins: record.bins.map((b) => b.accuracy),
      converged: record.converged,
      seconds: record.secondsTraining,
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
