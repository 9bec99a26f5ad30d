/**
 * Trains the MLP with TensorFlow.js: `@tensorflow/tfjs-node` when it is installed, else the
 * WebAssembly backend. In Node the WebAssembly backend runs on one thread (tfjs reports no
 * multithread support there), so training uses one core.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import type { DenseLayer, Trainer, TrainRequest, TrainResult } from './trainer.ts';

/** Picks and initialises the backend: `tensorflow` (tfjs-node) if importable, else `wasm`. */
async function selectBackend(): Promise<string> {
  // A variable specifier keeps TypeScript and bundlers from requiring the optional package.
  const optional = '@tensorflow/tfjs-node';
  try {
    await import(optional);
    if (await tf.setBackend('tensorflow')) return 'tfjs-node';
  } catch {
    // Not installed (the usual case): fall through to WebAssembly.
  }
  if (await tf.setBackend('wasm')) return 'tfjs-wasm';
  await tf.setBackend('cpu');
  return 'tfjs-cpu';
}

interface LayerVars {
  readonly w: tf.Variable;
  readonly b: tf.Variable;
}

function snapshot(vars: readonly LayerVars[], init: readonly DenseLayer[]): DenseLayer[] {
  return vars.map((v, l) => {
    const layer = init[l] as DenseLayer;
    return {
      inputs: layer.inputs,
      outputs: layer.outputs,
      weights: Float32Array.from(v.w.dataSync()),
      bias: Float32Array.from(v.b.dataSync()),
    };
  });
}

async function train(request: TrainRequest): Promise<TrainResult> {
  const { train, validation, init, rng, batchSize, maxEpochs, patience, weightDecay } = request;
  const vars: LayerVars[] = init.map((layer) => ({
    w: tf.variable(tf.tensor2d(layer.weights, [layer.inputs, layer.outputs])),
    b: tf.variable(tf.tensor1d(layer.bias)),
  }));
  const varList = vars.flatMap((v) => [v.w, v.b]);
  const optimizer = tf.train.adam(request.learningRate);
  const last = vars.length - 1;
  const model = (x: tf.Tensor2D): tf.Tensor2D => {
    let h = x;
    vars.forEach((v, l) => {
      h = tf.add(tf.matMul(h, v.w as tf.Tensor2D), v.b);
      if (l < last) h = tf.relu(h);
    });
    return h;
  };
  const xVal = tf.tensor2d(validation.x, [validation.rows, validation.cols]);
  const yVal = tf.tensor2d(validation.y, [validation.rows, 1]);
  const n = train.rows;
  const cols = train.cols;
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const bx = new Float32Array(n * cols);
  const by = new Float32Array(n);

  const validationLossNow = (): number =>
    tf.tidy(() => tf.losses.meanSquaredError(yVal, model(xVal)).dataSync()[0] as number);
  // Epoch 0 counts: the initial weights may already be the best (e.g. a zero last layer).
  let best = validationLossNow();
  let bestEpoch = 0;
  let bestLayers = snapshot(vars, init);
  let epoch = 0;
  try {
    while (epoch < maxEpochs && epoch - bestEpoch < patience) {
      epoch += 1;
      for (let i = n - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        const t = order[i] as number;
        order[i] = order[j] as number;
        order[j] = t;
      }
      for (let i = 0; i < n; i++) {
        const src = order[i] as number;
        bx.set(train.x.subarray(src * cols, (src + 1) * cols), i * cols);
        by[i] = train.y[src] as number;
      }
      const xs = tf.tensor2d(bx, [n, cols]);
      const ys = tf.tensor2d(by, [n, 1]);
      const costs: tf.Scalar[] = [];
      for (let start = 0; start < n; start += batchSize) {
        const size = Math.min(batchSize, n - start);
        const xb = xs.slice([start, 0], [size, cols]);
        const yb = ys.slice([start, 0], [size, 1]);
        const cost = optimizer.minimize(
          () => {
            const mse = tf.losses.meanSquaredError(yb, model(xb)) as tf.Scalar;
            if (weightDecay === 0) return mse;
            const l2 = tf.addN(vars.map((v) => tf.sum(tf.square(v.w))));
            return tf.add(mse, tf.mul(l2, weightDecay)) as tf.Scalar;
          },
          true,
          varList,
        );
        if (cost) costs.push(cost);
        xb.dispose();
        yb.dispose();
      }
      const trainLoss = tf.tidy(() => tf.addN(costs).div(costs.length).dataSync()[0] as number);
      for (const c of costs) c.dispose();
      xs.dispose();
      ys.dispose();
      const validationLoss = validationLossNow();
      if (validationLoss < best) {
        best = validationLoss;
        bestEpoch = epoch;
        bestLayers = snapshot(vars, init);
      }
      request.onEpoch?.({ epoch, maxEpochs, trainLoss, validationLoss });
    }
  } finally {
    optimizer.dispose();
    for (const v of varList) v.dispose();
    xVal.dispose();
    yVal.dispose();
  }
  return { layers: bestLayers, epochs: epoch, bestEpoch, validationLoss: best };
}

async function run(
  layers: readonly DenseLayer[],
  x: Float32Array,
  rows: number,
  cols: number,
): Promise<Float32Array> {
  const out = tf.tidy(() => {
    let h: tf.Tensor2D = tf.tensor2d(x, [rows, cols]);
    layers.forEach((layer, l) => {
      const w = tf.tensor2d(layer.weights, [layer.inputs, layer.outputs]);
      h = tf.add(tf.matMul(h, w), tf.tensor1d(layer.bias));
      if (l < layers.length - 1) h = tf.relu(h);
    });
    return h;
  });
  const data = (await out.data()) as Float32Array;
  out.dispose();
  return data;
}

/** A trainer on the fastest available tfjs backend (initialised on first use). */
export async function createTfjsTrainer(): Promise<Trainer> {
  const backend = await selectBackend();
  await tf.ready();
  return { backend, train, run };
}
