/**
 * The MLP latency regressor of the ESM paper (3 hidden layers x 64 units, ReLU, Adam), made
 * to generalise from a few hundred to a few thousand measured networks:
 *
 * - inputs are standardised with the training rows' mean and standard deviation;
 * - a linear base model (ridge regression on the same inputs, solved in closed form) carries
 *   most of the latency: either on log latency or on latency in ms (with FCC's
 *   resolution-scaled counts, latency is close to linear in ms), whichever variant and
 *   penalty has the lower relative error on the validation split;
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
import type { DenseLayer, EpochProgress, Trainer, TrainSet } from './trainer.ts';
import { defaultTrainer, forward } from './trainer.ts';
import type { FitReport, Matrix, Regressor } from './types.ts';

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
   * The linear base model: ridge on `log` latency, on latency in `ms`, `auto` (the better of
   * both on the validation split) or `none` (a constant: a plain MLP on log latency).
   * @default 'auto'
   */
  readonly base?: MlpBase;
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
}

export interface MlpFitReport extends FitReport {
  readonly backend: string;
  readonly epochs: number;
  readonly validationLoss: number;
  readonly base: { readonly space: 'log' | 'ms'; readonly penalty: number };
}

const PENALTIES = [1e-4, 1e-3, 1e-2, 1e-1, 1];

function columnStats(
  x: Matrix,
  rows: readonly number[],
): { mean: Float64Array; scale: Float64Array } {
  const mean = new Float64Array(x.cols);
  const scale = new Float64Array(x.cols);
  for (const r of rows) {
    for (let c = 0; c < x.cols; c++)
      mean[c] = (mean[c] as number) + (x.data[r * x.cols + c] as number);
  }
  for (let c = 0; c < x.cols; c++) mean[c] = (mean[c] as number) / rows.length;
  for (const r of rows) {
    for (let c = 0; c < x.cols; c++) {
      const d = (x.data[r * x.cols + c] as number) - (mean[c] as number);
      scale[c] = (scale[c] as number) + d * d;
    }
  }
  // A constant column would divide by zero; scale 1 leaves it at 0 after centring.
  for (let c = 0; c < x.cols; c++) scale[c] = Math.sqrt((scale[c] as number) / rows.length) || 1;
  return { mean, scale };
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

/** Solves the symmetric positive definite system `a w = b` by Cholesky decomposition. */
function solveSpd(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const l = Float64Array.from(a);
  for (let j = 0; j < n; j++) {
    let d = l[j * n + j] as number;
    for (let k = 0; k < j; k++) d -= (l[j * n + k] as number) ** 2;
    const root = Math.sqrt(Math.max(d, 1e-12));
    l[j * n + j] = root;
    for (let i = j + 1; i < n; i++) {
      let s = l[i * n + j] as number;
      for (let k = 0; k < j; k++) s -= (l[i * n + k] as number) * (l[j * n + k] as number);
      l[i * n + j] = s / root;
    }
  }
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i] as number;
    for (let k = 0; k < i; k++) s -= (l[i * n + k] as number) * (y[k] as number);
    y[i] = s / (l[i * n + i] as number);
  }
  const w = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i] as number;
    for (let k = i + 1; k < n; k++) s -= (l[k * n + i] as number) * (w[k] as number);
    w[i] = s / (l[i * n + i] as number);
  }
  return w;
}

function concat(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
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

/** Ridge fits of the allowed spaces and penalties; the lowest validation relative error wins. */
function fitBase(
  choice: MlpBase,
  zTrain: Float64Array,
  yTrain: Float64Array,
  zVal: Float64Array,
  yVal: Float64Array,
  cols: number,
  penalties: readonly number[] = PENALTIES,
): MlpBaseModel {
  const n = yTrain.length;
  const floorMs = 0.5 * Math.min(...yTrain);
  const logs = yTrain.map(Math.log);
  if (choice === 'none') {
    const bias = logs.reduce((a, b) => a + b, 0) / n;
    return { space: 'log', weights: new Float64Array(cols), bias, floorMs, penalty: 0 };
  }
  const gram = new Float64Array(cols * cols);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < cols; i++) {
      const zi = zTrain[r * cols + i] as number;
      if (zi === 0) continue;
      for (let j = 0; j <= i; j++) {
        gram[i * cols + j] = (gram[i * cols + j] as number) + zi * (zTrain[r * cols + j] as number);
      }
    }
  }
  for (let i = 0; i < cols; i++) {
    for (let j = 0; j < i; j++) gram[j * cols + i] = gram[i * cols + j] as number;
  }
  const spaces: ('log' | 'ms')[] = choice === 'auto' ? ['log', 'ms'] : [choice];
  let best: { model: MlpBaseModel; error: number } | undefined;
  for (const space of spaces) {
    const t = space === 'log' ? logs : yTrain;
    const bias = t.reduce((a, b) => a + b, 0) / n;
    // Inputs are centred on the training rows, so the intercept is the target's mean.
    const rhs = new Float64Array(cols);
    for (let r = 0; r < n; r++) {
      const tr = (t[r] as number) - bias;
      for (let i = 0; i < cols; i++)
        rhs[i] = (rhs[i] as number) + (zTrain[r * cols + i] as number) * tr;
    }
    for (const penalty of penalties) {
      const a = gram.map((v) => v / n);
      for (let i = 0; i < cols; i++) a[i * cols + i] = (a[i * cols + i] as number) + penalty;
      const weights = solveSpd(
        a,
        rhs.map((v) => v / n),
        cols,
      );
      const model: MlpBaseModel = { space, weights, bias, floorMs, penalty };
      let error = 0;
      for (let r = 0; r < yVal.length; r++) {
        error += Math.abs(baseMs(model, zVal, r) / (yVal[r] as number) - 1);
      }
      if (!best || error < best.error) best = { model, error };
    }
  }
  return (best as { model: MlpBaseModel }).model;
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

    const { mean: inputMean, scale: inputScale } = columnStats(x, trainRows);
    const norm = { inputMean, inputScale };
    const zTrain = standardised(x, trainRows, norm);
    const zVal = standardised(x, valRows, norm);
    const yTrain = Float64Array.from(trainRows, (r) => latencyMs[r] as number);
    const yVal = Float64Array.from(valRows, (r) => latencyMs[r] as number);
    // Settings are chosen on the validation split, then the base is refitted on every row:
    // a linear model is cheap to fit and gains from all the data.
    const chosen = fitBase(base, zTrain, yTrain, zVal, yVal, x.cols);
    const baseModel =
      base === 'none'
        ? chosen
        : fitBase(
            chosen.space,
            concat(zTrain, zVal),
            concat(yTrain, yVal),
            new Float64Array(0),
            new Float64Array(0),
            x.cols,
            [chosen.penalty],
          );

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
    this.trained = { inputMean, inputScale, base: baseModel, residualScale, members };
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
}

/** An MLP regressor (3 x 64 by default, see `MlpOptions` for the defaults). */
export function createMlp(options: MlpOptions = {}): MlpRegressor {
  return new MlpRegressor(options);
}
