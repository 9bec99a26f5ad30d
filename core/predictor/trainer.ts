/**
 * The small interface between the MLP regressor and the tensor library that trains it. The
 * MLP (mlp.ts) owns everything that must be reproducible: initial weights, the shuffling
 * order, the validation split, and the model state; a trainer only runs gradient steps.
 * The default trainer is tfjs on the WebAssembly backend; `@tensorflow/tfjs-node` is used
 * instead when it is installed (it is not a dependency: its install downloads libtensorflow).
 */
import type { Rng } from '../rng.ts';

/** A fully connected layer, `weights` row-major [inputs x outputs]. */
export interface DenseLayer {
  readonly inputs: number;
  readonly outputs: number;
  readonly weights: Float32Array;
  readonly bias: Float32Array;
}

/** Row-major float32 samples with one target each. */
export interface TrainSet {
  readonly x: Float32Array;
  readonly y: Float32Array;
  readonly rows: number;
  readonly cols: number;
}

export interface EpochProgress {
  readonly epoch: number;
  readonly maxEpochs: number;
  readonly trainLoss: number;
  readonly validationLoss: number;
}

export interface TrainRequest {
  readonly train: TrainSet;
  readonly validation: TrainSet;
  /** Initial layers; hidden layers use ReLU, the last layer is linear with one output. */
  readonly init: readonly DenseLayer[];
  /** Orders the mini-batches of every epoch. */
  readonly rng: Rng;
  readonly learningRate: number;
  readonly batchSize: number;
  readonly maxEpochs: number;
  /** Stop after this many epochs without a better validation loss. */
  readonly patience: number;
  /** L2 penalty on weights (not biases) added to the mean squared error. */
  readonly weightDecay: number;
  readonly onEpoch?: (progress: EpochProgress) => void;
}

export interface TrainResult {
  /** The layers of the epoch with the lowest validation loss. */
  readonly layers: DenseLayer[];
  readonly epochs: number;
  readonly bestEpoch: number;
  readonly validationLoss: number;
}

export interface Trainer {
  /** e.g. `tfjs-wasm`, `tfjs-node`; recorded in the predictor's metadata. */
  readonly backend: string;
  train(request: TrainRequest): Promise<TrainResult>;
  /** Outputs of `layers` (ReLU between them) for row-major `x` of `rows` x `cols`. */
  run(
    layers: readonly DenseLayer[],
    x: Float32Array,
    rows: number,
    cols: number,
  ): Promise<Float32Array>;
}

/** Forward pass in plain JavaScript (float64 accumulation): ReLU on all but the last layer. */
export function forward(layers: readonly DenseLayer[], x: Float64Array): number {
  let h: Float64Array = x;
  layers.forEach((layer, l) => {
    const out = new Float64Array(layer.outputs);
    out.set(layer.bias);
    for (let i = 0; i < layer.inputs; i++) {
      const v = h[i] as number;
      if (v === 0) continue;
      const row = i * layer.outputs;
      for (let j = 0; j < layer.outputs; j++) {
        out[j] = (out[j] as number) + v * (layer.weights[row + j] as number);
      }
    }
    if (l < layers.length - 1)
      for (let j = 0; j < out.length; j++) out[j] = Math.max(0, out[j] as number);
    h = out;
  });
  return h[0] as number;
}

let cached: Promise<Trainer> | undefined;

/**
 * The fastest trainer available: tfjs-node when it can be imported, otherwise tfjs on the
 * WebAssembly backend (about 4x faster than tfjs's pure-JS cpu backend). Created once.
 */
export function defaultTrainer(): Promise<Trainer> {
  cached ??= import('./tfjs-trainer.ts').then((m) => m.createTfjsTrainer());
  return cached;
}
