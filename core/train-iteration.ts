/**
 * One train-evaluate step of the ESM loop on plain rows: encode the measured architectures,
 * fit the run's model on the training rows, predict the held-out test rows, summarise the
 * iteration per depth bin (with the decision for the next step) and describe the predictor
 * as predictor.json. The workflow's Train task calls it in both engines (the Lambda and
 * `esm run`); the caller reads the rows and writes the artifacts.
 */
import { ValidationError } from './errors.ts';
import {
  type MeasuredSample,
  minTrainSamples,
  type OutOfFoldSample,
  predictorMetrics,
  summariseIteration,
  trainingSeed,
} from './loop.ts';
import { scorePoolTruth, type UndrawnRow } from './pool-truth.ts';
import type { PredictorJson } from './predictor/artifact.ts';
import { trainingDomain } from './predictor/domain.ts';
import {
  createModel,
  type Featurizer,
  modelToJson,
  predictorFrame,
  type RegressorOptions,
} from './predictor/index.ts';
import { transferModel } from './predictor/transfer.ts';
import {
  defaultModelKind,
  type FitReport,
  type ModelKind,
  type Regressor,
} from './predictor/types.ts';
import type { DepthBin } from './sampling.ts';
import type {
  IterationRecord,
  RunDatasetLine,
  RunParams,
  SampleRecord,
  Split,
} from './schemas/run.ts';
import type { SearchSpace } from './spaces/types.ts';

/** A measured sample as training sees it. */
export interface TrainRow {
  readonly id: string;
  readonly arch: Record<string, unknown>;
  readonly latencyMs: number;
  readonly depth: number;
  readonly bin: number;
  readonly split: Split;
  readonly iteration: number;
  /** Largest reference drift of the job that measured it. @default 0 */
  readonly drift?: number;
  /** Timed a second time because its runs spread widely. @default false */
  readonly remeasured?: boolean;
}

export interface TrainIterationOptions {
  readonly space: SearchSpace;
  readonly params: RunParams;
  readonly bins: readonly DepthBin[];
  readonly iteration: number;
  /** Every measured sample of the run, in a fixed order (`sortRows`). */
  readonly rows: readonly TrainRow[];
  /** Measuring time of this iteration, for the record. */
  readonly secondsMeasuring: number;
  /** Jobs of this iteration measured again because they came back unstable. */
  readonly remeasured: number;
  /** The dataset file the rows came from, recorded in predictor.json. */
  readonly data: { readonly file: string; readonly sha256: string };
  /** Recorded in predictor.json `training.options` (run id, iteration, devices). */
  readonly provenance?: Record<string, unknown>;
  /** Regressor options (tests shorten training). @default the model's defaults */
  readonly regressor?: RegressorOptions;
  /** The prior of `params.prior`, read by the caller: fit its correction, not `params.model`. */
  readonly prior?: PredictorJson;
  readonly onEpoch?: (epoch: number, maxEpochs: number) => void;
  /**
   * Replay: the pool rows the run has not drawn, read only when this iteration stops the
   * loop; the record's `poolTruth` then scores the predictor on them (core/pool-truth.ts).
   */
  readonly undrawn?: () => Promise<readonly UndrawnRow[]>;
  /** Replay: architectures of the pool no sample has drawn yet; none left ends the loop. */
  readonly poolLeft?: number;
  /** @default new Date() */
  readonly now?: () => Date;
}

export interface TrainIterationResult {
  readonly record: IterationRecord;
  readonly predictor: PredictorJson;
  readonly regressor: Regressor;
  readonly featurizer: Featurizer;
  readonly fit: FitReport;
  /** The test rows with their predictions (report.html's scatter plot). */
  readonly predictions: {
    readonly id: string;
    readonly depth: number;
    readonly bin: number;
    readonly measured: number;
    readonly predicted: number;
  }[];
}

/** The order rows are trained in, the same in both engines: by iteration, then sample id. */
export function sortRows<T extends { iteration: number; id: string }>(rows: readonly T[]): T[] {
  return [...rows].sort(
    (a, b) => a.iteration - b.iteration || a.id.localeCompare(b.id, 'en', { numeric: true }),
  );
}

/** Trains, evaluates and describes iteration `iteration`; see the module comment. */
export async function trainIteration(
  options: TrainIterationOptions,
): Promise<TrainIterationResult> {
  const { space, params, bins, iteration, rows } = options;
  const now = options.now ?? (() => new Date());
  const train = rows.filter((r) => r.split === 'train');
  const test = rows.filter((r) => r.split === 'test');
  if (train.length < minTrainSamples) {
    throw new ValidationError(
      'nInit',
      `only ${train.length} measured training samples; use --n-init ${minTrainSamples + 2} or more`,
    );
  }
  const started = performance.now();
  const seed = trainingSeed(params.seed, iteration);
  const kind = options.prior ? 'transfer' : (params.model ?? defaultModelKind);
  const onEpoch = options.onEpoch;
  const transfer = options.prior && transferModel(space, options.prior);
  // createModel builds the features a kind reads (auto's stacked parts included).
  const { featurizer, regressor } =
    transfer ??
    createModel(space, {
      model: kind as ModelKind,
      encoding: params.encoding,
      options: {
        ...options.regressor,
        mlp: {
          ...options.regressor?.mlp,
          seed,
          ...(onEpoch && {
            onEpoch: (p: { epoch: number; maxEpochs: number }) => onEpoch(p.epoch, p.maxEpochs),
          }),
        },
      },
    });
  const trainSubnets = train.map((r) => space.parse(r.arch));
  const fit = await regressor.fit(
    featurizer.encodeAll(trainSubnets),
    Float64Array.from(train, (r) => r.latencyMs),
  );
  const predictedTest = await regressor.predict(
    featurizer.encodeAll(test.map((r) => space.parse(r.arch))),
  );
  const secondsTraining = (performance.now() - started) / 1000;
  // summariseIteration wants the test predictions in the order test samples appear.
  const samples: MeasuredSample[] = [...test, ...train].map((r) => ({
    depth: r.depth,
    split: r.split,
    latencyMs: r.latencyMs,
  }));
  const measuredNow = rows.filter((r) => r.iteration === iteration);
  const maxDrift = Math.max(0, ...measuredNow.map((r) => r.drift ?? 0));
  const samplesRemeasured = measuredNow.filter((r) => r.remeasured).length;
  const summary = summariseIteration({
    iteration,
    bins,
    samples,
    predictedTest,
    params,
    outOfFold: params.binAccuracy === 'oof' ? outOfFold(train, fit, params) : undefined,
    poolLeft: options.poolLeft,
    secondsMeasuring: Math.max(0, options.secondsMeasuring),
    secondsTraining,
    quality: { maxDrift, remeasured: options.remeasured, samplesRemeasured },
    finishedAt: now().toISOString(),
  });
  const poolTruth =
    summary.stop && options.undrawn
      ? await scorePoolTruth({
          featurizer,
          regressor,
          rows: await options.undrawn(),
          bins,
          judged: summary.bins,
          params,
        })
      : undefined;
  const record = poolTruth ? { ...summary, poolTruth } : summary;
  const predictor: PredictorJson = {
    ...predictorFrame(space.name, params.spaceSpec),
    features: featurizer.features,
    model: modelToJson(regressor),
    training: {
      seed,
      n_train: train.length,
      n_test: test.length,
      seconds: fit.seconds,
      epochs: fit.epochs,
      backend: (fit as { backend?: string }).backend,
      options: { ...options.provenance, model: kind, iteration },
      domain: trainingDomain(trainSubnets),
      data: { file: options.data.file, sha256: options.data.sha256, rows: rows.length },
      created_at: record.finishedAt,
    },
    metrics: predictorMetrics(record),
  };
  const predictions = test.map((r, i) => ({
    id: r.id,
    depth: r.depth,
    bin: r.bin,
    measured: r.latencyMs,
    predicted: predictedTest[i] as number,
  }));
  return { record, predictor, regressor, featurizer, fit, predictions };
}

/**
 * The training rows with the model's own out-of-fold predictions (`auto`'s cross-validation,
 * `AutoFitReport.oof`), for `binAccuracy: 'oof'`; undefined when the model has none (another
 * kind, or too few rows to cross-validate), so the loop decides on the test rows alone. With
 * `active` sampling only the initial batch's training rows count: they are uniform draws
 * within their bin, the later ones were picked as the hardest.
 */
function outOfFold(
  train: readonly TrainRow[],
  fit: FitReport,
  params: RunParams,
): OutOfFoldSample[] | undefined {
  const oof = (fit as { oof?: ArrayLike<number> }).oof;
  if (!oof || oof.length !== train.length) return undefined;
  return train.flatMap((r, i) =>
    params.sampling === 'active' && r.iteration > 0
      ? []
      : [{ depth: r.depth, latencyMs: r.latencyMs, predicted: oof[i] as number }],
  );
}

/** A measured sample as a line of the run's dataset.jsonl (a valid `esm fit` dataset). */
export function datasetLine(
  sample: SampleRecord,
  space: string,
  metric = 'latency_ms',
): RunDatasetLine {
  // In a run on another metric the sample's value is that metric; the line keeps the
  // measured latency as latency_ms and the metric under its own name (esm fit --metric).
  const other = metric === 'latency_ms' ? {} : { [metric]: sample.latencyMs ?? null };
  return {
    id: sample.id,
    arch: sample.arch,
    latency_ms:
      metric === 'latency_ms'
        ? (sample.latencyMs ?? Number.NaN)
        : (sample.stats?.median_ms ?? Number.NaN),
    ...other,
    std_ms: sample.stats?.std_ms,
    runs: sample.stats?.runs,
    depth: sample.depth,
    bin: sample.bin,
    split: sample.split,
    iteration: sample.iteration,
    device: sample.deviceInfo ?? sample.thing,
    thing: sample.thing,
    space,
    measured_at: sample.measuredAt,
  };
}

/** The run's dataset as JSONL, in training order, one line per measured sample. */
export function datasetJsonl(
  samples: readonly SampleRecord[],
  space: string,
  metric = 'latency_ms',
): string {
  return sortRows(samples.filter((s) => s.status === 'measured'))
    .map((s) => JSON.stringify(datasetLine(s, space, metric)))
    .join('\n')
    .concat('\n');
}

/** Measured sample records as training rows. */
export function trainRows(samples: readonly SampleRecord[]): TrainRow[] {
  return sortRows(samples.filter((s) => s.status === 'measured')).map((s) => ({
    id: s.id,
    arch: s.arch,
    latencyMs: s.latencyMs ?? Number.NaN,
    depth: s.depth,
    bin: s.bin,
    split: s.split,
    iteration: s.iteration,
    drift: s.drift,
    remeasured: s.remeasured,
  }));
}
