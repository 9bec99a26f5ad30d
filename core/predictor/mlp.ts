/**
 * The MLP latency regressor of the ESM paper (3 hidden layers x 64 units, ReLU, Adam), made
 * to generalise from a few hundred to a few thousand measured networks:
 *
 * - inputs are standardised with the training rows' mean and standard deviation;
 * - a linear base model carries most of the latency: the ridge baseline (ridge.ts: penalty
 *   and target, log latency or latency in ms, chosen by cross-validation) fitted on all
 *   training rows. With FCC's area-scaled counts latency is close to linear in ms. The
 *   default MLP therefore starts from exactly the ridge baseline of the same data;
 * - the MLP learns the rest as a multiplicative correction: its target is
 *   log(latency / base), standardised, and it starts from a zero output layer (so from the
 *   base model). Errors are judged relative, which a squared error in log space matches.
 *   Early stopping counts the untrained start as epoch 0, so on the validation split the
 *   MLP is never worse than its own linear base;
 * - a seeded validation split drives early stopping (best weights restored), with an L2
 *   weight penalty; optionally an ensemble of members with different seeds.
 *
 * Everything random (initial weights, split, batch order) comes from one seeded `Rng`, so
 * the same data and seed give the same predictor on the same backend.
 */
import { ValidationError } from '../errors.ts';
import { createRng, type Rng } from '../rng.ts';
import { createRidge, type RidgeOptions } from './ridge.ts';
import { fitStandardiser, type Standardiser } from './standardise.ts';
import type { DenseLayer, EpochProgress, Trainer, TrainSet } from './trainer.ts';
import { defaultTrainer, forward } from './trainer.ts';
import type { FitReport, Matrix, PredictionWithStd, Regressor } from './types.ts';

export const mlpBases = ['auto', 'log', 'ms', 'none'] as const;
export type MlpBase = (typeof mlpBases)[number];

export interface MlpOptions {
  /** Hidden layer widths. @default [64, 64, 64] */
  readonly hidden?: readonly number[];
  /** Adam learning rate. @default 0.005 */
  readonly learningRate?: number;
  /** @default 128 */
  readonly batchSize?: number;
  /** @default 300 */
  readonly maxEpochs?: number;
  /** Epochs without a better validation loss before stopping. @default 30 */
  readonly patience?: number;
  /** Share of the training rows held out for early stopping. @default 0.15 */
  readonly validationFraction?: number;
  /** L2 penalty on the weights. @default 1e-3 */
  readonly weightDecay?: number;
  /** Members trained with different seeds and averaged (in log space). @default 1 */
  readonly ensemble?: number;
  /**
   * The linear base model: ridge on `log` latency, on latency in `ms`, `auto` (the ridge
   * baseline's cross-validated choice) or `none` (a constant: a plain MLP on log latency).
   * @default 'auto'
   */
  readonly base?: MlpBase;
  /**
   * Options of the ridge base (penalty grid, per-column penalty multipliers); its target
   * comes from `base`.
   * @default {}
   */
  readonly ridge?: Omit<RidgeOptions, 'target'>;
  /** @default 0 */
  readonly seed?: number;
  /** @default the tfjs trainer (`defaultTrainer()`) */
  readonly trainer?: Trainer;
  readonly onEpoch?: (progress: EpochProgress & { member: number; members: number }) => void;
}

/** The linear base model on standardised inputs. */
export interface MlpBaseModel {
  /** `log`: base = exp(bias + w.z); `ms`: base = max(bias + w.z, floorMs). */
  readonly space: 'log' | 'ms';
  readonly weights: Float64Array;
  readonly bias: number;
  /** Lower bound of an `ms` base, so that its logarithm exists (half the fastest sample). */
  readonly floorMs: number;
  readonly penalty: number;
}

/** Everything needed to predict: normalisation, the base model and the members' layers. */
export interface MlpState {
  readonly inputMean: Float64Array;
  readonly inputScale: Float64Array;
  readonly base: MlpBaseModel;
  /** Standard deviation of log(latency / base) on the training rows; scales the MLP output. */
  readonly residualScale: number;
  readonly members: readonly (readonly DenseLayer[])[];
  /**
   * Relative RMS error on the early-stopping validation rows (0 when unknown, e.g. a file
   * written before it existed): the uncertainty's residual part.
   */
  readonly relStd?: number;
}

export interface MlpFitReport extends FitReport {
  readonly backend: string;
  readonly epochs: number;
  readonly validationLoss: number;
  readonly base: { readonly space: 'log' | 'ms'; readonly penalty: number };
}

function standardised(
  x: Matrix,
  rows: readonly number[],
  state: Pick<MlpState, 'inputMean' | 'inputScale'>,
): Float64Array {
  const out = new Float64Array(rows.length * x.cols);
  rows.forEach((r, i) => {
    for (let c = 0; c < x.cols; c++) {
      out[i * x.cols + c] =
        ((x.data[r * x.cols + c] as number) - (state.inputMean[c] as number)) /
        (state.inputScale[c] as number);
    }
  });
  return out;
}

function dot(z: Float64Array, row: number, w: Float64Array): number {
  const cols = w.length;
  let s = 0;
  for (let c = 0; c < cols; c++) s += (z[row * cols + c] as number) * (w[c] as number);
  return s;
}

function baseMs(base: MlpBaseModel, z: Float64Array, row: number): number {
  const b = base.bias + dot(z, row, base.weights);
  return base.space === 'log' ? Math.exp(b) : Math.max(b, base.floorMs);
}

/** He-normal hidden layers and a zero output layer (the MLP starts as the base model). */
function initialLayers(cols: number, hidden: readonly number[], rng: Rng): DenseLayer[] {
  const sizes = [cols, ...hidden, 1];
  const layers: DenseLayer[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const inputs = sizes[l] as number;
    const outputs = sizes[l + 1] as number;
    const weights = new Float32Array(inputs * outputs);
    if (l + 2 < sizes.length) {
      const std = Math.sqrt(2 / inputs);
      for (let i = 0; i < weights.length; i++) weights[i] = std * rng.normal();
    }
    layers.push({ inputs, outputs, weights, bias: new Float32Array(outputs) });
  }
  return layers;
}

/**
 * Latencies in ms for raw encoded rows, in plain JavaScript with float64 arithmetic: the
 * reference that the exported ONNX graph must match.
 */
export function predictWithState(state: MlpState, x: Matrix): Float64Array {
  const cols = state.inputMean.length;
  if (x.cols !== cols) {
    throw new ValidationError('x', `expected ${cols} columns (the encoding length), got ${x.cols}`);
  }
  const z = standardised(
    x,
    Array.from({ length: x.rows }, (_, i) => i),
    state,
  );
  const out = new Float64Array(x.rows);
  const row = new Float64Array(cols);
  for (let r = 0; r < x.rows; r++) {
    row.set(z.subarray(r * cols, (r + 1) * cols));
    let m = 0;
    for (const layers of state.members) m += forward(layers, row);
    const correction = state.members.length > 0 ? m / state.members.length : 0;
    out[r] = baseMs(state.base, z, r) * Math.exp(state.residualScale * correction);
  }
  return out;
}

/**
 * Latencies with their uncertainty: std_ms = prediction x sqrt(rel_std^2 + spread^2), where
 * spread is the standard deviation of the members' log corrections (0 for one member).
 */
export function predictWithStateStd(
  state: MlpState,
  x: Matrix,
): { mean: Float64Array; std: Float64Array } {
  const mean = predictWithState(state, x);
  const std = new Float64Array(x.rows);
  const rel = state.relStd ?? 0;
  const k = state.members.length;
  if (k < 2) {
    mean.forEach((m, r) => {
      std[r] = m * rel;
    });
    return { mean, std };
  }
  const cols = state.inputMean.length;
  const z = standardised(
    x,
    Array.from({ length: x.rows }, (_, i) => i),
    state,
  );
  const row = new Float64Array(cols);
  const outs = new Float64Array(k);
  for (let r = 0; r < x.rows; r++) {
    row.set(z.subarray(r * cols, (r + 1) * cols));
    let s = 0;
    state.members.forEach((layers, i) => {
      const v = state.residualScale * forward(layers, row);
      outs[i] = v;
      s += v;
    });
    const m = s / k;
    let q = 0;
    for (const v of outs) q += (v - m) * (v - m);
    const spread = Math.sqrt(q / k);
    std[r] = (mean[r] as number) * Math.sqrt(rel * rel + spread * spread);
  }
  return { mean, std };
}

/**
 * The same prediction with the members run by the trainer's tensor library (tfjs): the
 * path whose agreement with the ONNX graph is tested, and whose throughput is benchmarked.
 */
export async function predictWithTrainer(
  state: MlpState,
  x: Matrix,
  trainer: Trainer,
): Promise<Float64Array> {
  const cols = state.inputMean.length;
  if (x.cols !== cols) {
    throw new ValidationError('x', `expected ${cols} columns (the encoding length), got ${x.cols}`);
  }
  const z = standardised(
    x,
    Array.from({ length: x.rows }, (_, i) => i),
    state,
  );
  const z32 = Float32Array.from(z);
  const sum = new Float64Array(x.rows);
  for (const layers of state.members) {
    const out = await trainer.run(layers, z32, x.rows, cols);
    for (let r = 0; r < x.rows; r++) sum[r] = (sum[r] as number) + (out[r] as number);
  }
  const k = Math.max(1, state.members.length);
  return sum.map((m, r) => baseMs(state.base, z, r) * Math.exp((state.residualScale * m) / k));
}

export class MlpRegressor implements Regressor {
  readonly kind = 'mlp' as const;
  private trained: MlpState | undefined;

  constructor(private readonly options: MlpOptions = {}) {}

  /** The trained model; throws before `fit` (or `load`). */
  get state(): MlpState {
    if (!this.trained) {
      throw new ValidationError('predictor', 'the MLP is not trained yet: call fit() first');
    }
    return this.trained;
  }

  load(state: MlpState): void {
    this.trained = state;
  }

  async fit(x: Matrix, latencyMs: Float64Array): Promise<MlpFitReport> {
    const started = performance.now();
    const {
      hidden = [64, 64, 64],
      learningRate = 0.005,
      batchSize = 128,
      maxEpochs = 300,
      patience = 30,
      validationFraction = 0.15,
      weightDecay = 1e-3,
      ensemble = 1,
      base = 'auto',
      seed = 0,
    } = this.options;
    if (x.rows !== latencyMs.length) {
      throw new ValidationError('latencyMs', `has ${latencyMs.length} values for ${x.rows} rows`);
    }
    if (x.rows < 8) {
      throw new ValidationError('data', `the MLP needs at least 8 samples, got ${x.rows}`);
    }
    for (const v of latencyMs) {
      if (!(v > 0) || !Number.isFinite(v)) {
        throw new ValidationError('latency_ms', `must be a positive number, got ${v}`);
      }
    }
    const trainer = this.options.trainer ?? (await defaultTrainer());
    const rng = createRng(seed);
    const order = Array.from({ length: x.rows }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j] as number, order[i] as number];
    }
    const nVal = Math.min(x.rows - 4, Math.max(2, Math.round(x.rows * validationFraction)));
    const valRows = order.slice(0, nVal);
    const trainRows = order.slice(nVal);

    // The base is the ridge baseline itself (cross-validated penalty), refitted on every
    // training row, so the MLP starts exactly where the ridge model is.
    const floorMs = 0.5 * Math.min(...latencyMs);
    let baseModel: MlpBaseModel;
    let standardiser: Standardiser;
    if (base === 'none') {
      standardiser = fitStandardiser(x);
      const meanLog = latencyMs.reduce((sum, v) => sum + Math.log(v), 0) / latencyMs.length;
      baseModel = {
        space: 'log',
        weights: new Float64Array(x.cols),
        bias: meanLog,
        floorMs,
        penalty: 0,
      };
    } else {
      const ridge = createRidge({ ...this.options.ridge, target: base === 'ms' ? 'linear' : base });
      await ridge.fit(x, latencyMs);
      const json = ridge.toJSON();
      standardiser = json.standardiser;
      baseModel = {
        space: json.target === 'log' ? 'log' : 'ms',
        weights: Float64Array.from(json.weights),
        bias: json.intercept,
        floorMs,
        penalty: json.lambda,
      };
    }
    const inputMean = Float64Array.from(standardiser.means);
    const inputScale = Float64Array.from(standardiser.scales);
    const norm = { inputMean, inputScale };
    const zTrain = standardised(x, trainRows, norm);
    const zVal = standardised(x, valRows, norm);
    const yTrain = Float64Array.from(trainRows, (r) => latencyMs[r] as number);
    const yVal = Float64Array.from(valRows, (r) => latencyMs[r] as number);

    const logResidual = (z: Float64Array, y: Float64Array) =>
      y.map((v, r) => Math.log(v / baseMs(baseModel, z, r)));
    const rTrain = logResidual(zTrain, yTrain);
    const rVal = logResidual(zVal, yVal);
    let variance = 0;
    for (const v of rTrain) variance += v * v;
    const residualScale = Math.sqrt(variance / rTrain.length) || 1;
    const trainSet: TrainSet = {
      x: Float32Array.from(zTrain),
      y: Float32Array.from(rTrain, (v) => v / residualScale),
      rows: trainRows.length,
      cols: x.cols,
    };
    const valSet: TrainSet = {
      x: Float32Array.from(zVal),
      y: Float32Array.from(rVal, (v) => v / residualScale),
      rows: valRows.length,
      cols: x.cols,
    };

    const members: DenseLayer[][] = [];
    let epochs = 0;
    let validationLoss = 0;
    for (let m = 0; m < ensemble; m++) {
      const memberRng = rng.fork();
      const onEpoch = this.options.onEpoch;
      const result = await trainer.train({
        train: trainSet,
        validation: valSet,
        init: initialLayers(x.cols, hidden, memberRng),
        rng: memberRng,
        learningRate,
        batchSize,
        maxEpochs,
        patience,
        weightDecay,
        onEpoch: onEpoch ? (p) => onEpoch({ ...p, member: m, members: ensemble }) : undefined,
      });
      members.push(result.layers);
      epochs += result.epochs;
      validationLoss += result.validationLoss / ensemble;
    }
    const state: MlpState = { inputMean, inputScale, base: baseModel, residualScale, members };
    const valX: Matrix = {
      rows: valRows.length,
      cols: x.cols,
      data: Float64Array.from(
        valRows.flatMap((r) => Array.from(x.data.subarray(r * x.cols, (r + 1) * x.cols))),
      ),
    };
    const valPredicted = predictWithState(state, valX);
    let square = 0;
    yVal.forEach((v, i) => {
      square += ((valPredicted[i] as number) / v - 1) ** 2;
    });
    this.trained = { ...state, relStd: Math.sqrt(square / Math.max(1, yVal.length)) };
    return {
      seconds: (performance.now() - started) / 1000,
      backend: trainer.backend,
      epochs,
      validationLoss,
      base: { space: baseModel.space, penalty: baseModel.penalty },
    };
  }

  async predict(x: Matrix): Promise<Float64Array> {
    return predictWithState(this.state, x);
  }

  async predictWithStd(x: Matrix): Promise<PredictionWithStd> {
    return predictWithStateStd(this.state, x);
  }
}

/** An MLP regressor (3 x 64 by default, see `MlpOptions` for the defaults). */
export function createMlp(options: MlpOptions = {}): MlpRegressor {
  return new MlpRegressor(options);
}
