/**
 * Does a per-layer roofline fit from few rows better than the linear physics ridge (issue 13)?
 * The model: latency = c0 + c_node * nodes + b_elem * (bytes of the elementwise nodes) +
 * sum over convolutions, linear and SE layers of smoothmax(a_kind * MACs, b * bytes), where
 * smoothmax(u, v) = (u^p + v^p)^(1/p) (each layer is bound by compute or by memory, and a
 * kernel's cost per MAC depends on its kind: 1x1, k x k, grouped, depthwise 3/5/7, linear,
 * SE). Twelve positive parameters (11 on MobileNetV3, which has no grouped convolution),
 * fitted on log scale by Levenberg-Marquardt for relative error, pulled
 * lightly towards a start that splits the median latency between the terms. A layer's bytes
 * are its input and output for the whole batch (read from the file name, `_64.jsonl`) plus
 * its weights once.
 *
 * Against the robust physics ridge (`auto`'s choice at 20 rows on these GPUs) and the mean of
 * the two, with fewshot.ts's splits (seed s: createRng(1000 + s), test on up to --test other
 * rows). Prints per method the median accuracy over seeds and every seed.
 *
 *   npx tsx scripts/bench/roofline.ts [--files a.jsonl,b.jsonl] [--sizes 20,50,4000]
 *       [--seeds 0,1,...,9] [--p 2] [--test 1000]
 */
import { parseArgs } from 'node:util';
import { createEncoder, encodeAll } from '../../core/encodings/index.ts';
import { evaluate } from '../../core/metrics.ts';
import { createRidge, solveSpd } from '../../core/predictor/ridge.ts';
import { selectRows } from '../../core/predictor/types.ts';
import { createRng, shuffled } from '../../core/rng.ts';
import { macKinds, nodeCost } from '../../core/spaces/cost.ts';
import type { SearchSpace, Subnet } from '../../core/spaces/types.ts';
import { loadBenchFile } from './bench-data.ts';
import { median } from './stats.ts';

const { values } = parseArgs({
  options: {
    files: {
      type: 'string',
      default:
        '../shared/data/help-ofa-mbv3/2080ti_64.jsonl,../shared/data/help-ofa-mbv3/titan_xp_32.jsonl',
    },
    sizes: { type: 'string', default: '20,50,4000' },
    seeds: { type: 'string', default: '0,1,2,3,4,5,6,7,8,9' },
    p: { type: 'string', default: '2' },
    test: { type: 'string', default: '1000' },
  },
});

const K = macKinds.length;
/** Parameters (log scale): a per kind, then b, b_elem, c_node, c0. */
const NP = K + 4;
/** Pull towards the start; light, so 20 rows still move every parameter. */
const PULL = 1e-4;

/** One architecture as the roofline reads it: its weighted layers and the rest in sums. */
interface Layers {
  readonly kind: Int8Array;
  /** Giga-MACs and GB for the whole batch. */
  readonly macs: Float64Array;
  readonly bytes: Float64Array;
  readonly elementwiseBytes: number;
  readonly nodes: number;
}

function layersOf(space: SearchSpace, subnet: Subnet, batch: number): Layers {
  const graph = space.layerGraph(subnet);
  const kind: number[] = [];
  const macs: number[] = [];
  const bytes: number[] = [];
  let elementwiseBytes = 0;
  for (const node of graph.nodes) {
    const cost = nodeCost(node);
    const area = node.resolution * node.resolution;
    if (node.op === 'conv' || node.op === 'linear' || node.op === 'se') {
      const input =
        node.op === 'conv'
          ? area * node.cin
          : node.op === 'linear'
            ? node.cin
            : area * node.channels;
      kind.push(macKinds.indexOf(cost.macKind as (typeof macKinds)[number]));
      macs.push(cost.macs * batch * 1e-9);
      bytes.push((batch * (input + cost.outputElements) + cost.params) * 4e-9);
    } else {
      const input =
        node.op === 'add'
          ? 2 * area * node.channels
          : node.op === 'concat'
            ? cost.outputElements
            : area * node.channels;
      elementwiseBytes += batch * (input + cost.outputElements) * 4e-9;
    }
  }
  return {
    kind: Int8Array.from(kind),
    macs: Float64Array.from(macs),
    bytes: Float64Array.from(bytes),
    elementwiseBytes,
    nodes: graph.nodes.length,
  };
}

/** The predicted latency; with `grad`, its derivatives by the log parameters too. */
function roofline(a: Layers, theta: Float64Array, p: number, grad?: Float64Array): number {
  const b = Math.exp(theta[K] as number);
  const bElem = Math.exp(theta[K + 1] as number);
  const cNode = Math.exp(theta[K + 2] as number);
  const c0 = Math.exp(theta[K + 3] as number);
  let total = c0 + cNode * a.nodes + bElem * a.elementwiseBytes;
  if (grad) {
    grad.fill(0);
    grad[K + 1] = bElem * a.elementwiseBytes;
    grad[K + 2] = cNode * a.nodes;
    grad[K + 3] = c0;
  }
  for (let l = 0; l < a.kind.length; l++) {
    const k = a.kind[l] as number;
    const u = Math.exp(theta[k] as number) * (a.macs[l] as number);
    const v = b * (a.bytes[l] as number);
    const s = (u ** p + v ** p) ** (1 / p);
    total += s;
    if (grad && s > 0) {
      grad[k] = (grad[k] as number) + u * (u / s) ** (p - 1);
      grad[K] = (grad[K] as number) + v * (v / s) ** (p - 1);
    }
  }
  return total;
}

/** The start: 40 % of the median latency compute, 30 % memory, 15 % elementwise, 15 % fixed. */
function start(archs: readonly Layers[], y: Float64Array): Float64Array {
  const sum = (xs: Float64Array) => xs.reduce((s, v) => s + v, 0);
  const latency = median(Array.from(y));
  const theta = new Float64Array(NP);
  theta.fill(Math.log((0.4 * latency) / median(archs.map((a) => sum(a.macs)))), 0, K);
  theta[K] = Math.log((0.3 * latency) / median(archs.map((a) => sum(a.bytes))));
  theta[K + 1] = Math.log((0.15 * latency) / median(archs.map((a) => a.elementwiseBytes)));
  theta[K + 2] = Math.log((0.1 * latency) / median(archs.map((a) => a.nodes)));
  theta[K + 3] = Math.log(0.05 * latency);
  return theta;
}

/** Levenberg-Marquardt on sum ((f - y) / y)^2 + PULL |theta - start|^2. */
function fitRoofline(archs: readonly Layers[], y: Float64Array, p: number): Float64Array {
  const theta0 = start(archs, y);
  const grad = new Float64Array(NP);
  const loss = (t: Float64Array) => {
    let s = 0;
    archs.forEach((a, i) => {
      s += ((roofline(a, t, p) - (y[i] as number)) / (y[i] as number)) ** 2;
    });
    for (let j = 0; j < NP; j++) s += PULL * ((t[j] as number) - (theta0[j] as number)) ** 2;
    return s;
  };
  let theta = Float64Array.from(theta0);
  let current = loss(theta);
  let damping = 1e-2;
  for (let iteration = 0; iteration < 60; iteration++) {
    const jtj = new Float64Array(NP * NP);
    const jtr = new Float64Array(NP);
    archs.forEach((a, i) => {
      const yi = y[i] as number;
      const r = (roofline(a, theta, p, grad) - yi) / yi;
      for (let j = 0; j < NP; j++) {
        const gj = (grad[j] as number) / yi;
        jtr[j] = (jtr[j] as number) + gj * r;
        for (let k = 0; k < NP; k++) {
          jtj[j * NP + k] = (jtj[j * NP + k] as number) + (gj * (grad[k] as number)) / yi;
        }
      }
    });
    for (let j = 0; j < NP; j++) {
      jtj[j * NP + j] = (jtj[j * NP + j] as number) + PULL;
      jtr[j] = (jtr[j] as number) + PULL * ((theta[j] as number) - (theta0[j] as number));
    }
    let improved = false;
    for (let attempt = 0; attempt < 10 && !improved; attempt++) {
      const system = Float64Array.from(jtj);
      for (let j = 0; j < NP; j++) {
        system[j * NP + j] = (system[j * NP + j] as number) * (1 + damping) + 1e-12;
      }
      const step = solveSpd(system, Float64Array.from(jtr), NP);
      const candidate = Float64Array.from(theta, (v, j) => v - (step[j] as number));
      const l = loss(candidate);
      if (l < current) {
        theta = candidate;
        current = l;
        damping = Math.max(damping / 3, 1e-7);
        improved = true;
      } else {
        damping *= 4;
      }
    }
    if (!improved) break;
  }
  return theta;
}

/** Accuracy in %, as fewshot.ts reports it (core/metrics.ts, 1 - mean relative error). */
const accuracy = (predicted: ArrayLike<number>, measured: Float64Array) =>
  100 * evaluate({ predicted, measured }).accuracy;

const p = Number(values.p);
const seeds = values.seeds.split(',').map(Number);
for (const file of values.files.split(',')) {
  const { space, rows } = loadBenchFile(file);
  const batch = Number(/_(\d+)\.jsonl$/.exec(file)?.[1] ?? 1);
  const layers = rows.map((r) => layersOf(space, r.subnet, batch));
  const physics = encodeAll(
    createEncoder(space, 'physics'),
    rows.map((r) => r.subnet),
  );
  const y = Float64Array.from(rows, (r) => r.latencyMs);
  for (const n of values.sizes.split(',').map(Number)) {
    if (n >= rows.length) continue;
    const scores = {
      roofline: [] as number[],
      'physics ridge': [] as number[],
      mean: [] as number[],
    };
    for (const seed of seeds) {
      const order = shuffled(
        rows.map((_, i) => i),
        createRng(1000 + seed),
      );
      const train = order.slice(0, n);
      const test = order.slice(n, n + Number(values.test));
      const yTrain = Float64Array.from(train, (i) => y[i] as number);
      const yTest = Float64Array.from(test, (i) => y[i] as number);
      const theta = fitRoofline(
        train.map((i) => layers[i] as Layers),
        yTrain,
        p,
      );
      const fromRoofline = test.map((i) => roofline(layers[i] as Layers, theta, p));
      const ridge = createRidge({ robust: true });
      await ridge.fit(selectRows(physics, train), yTrain);
      const fromRidge = await ridge.predict(selectRows(physics, test));
      scores.roofline.push(accuracy(fromRoofline, yTest));
      scores['physics ridge'].push(accuracy(fromRidge, yTest));
      scores.mean.push(
        accuracy(
          fromRoofline.map((v, i) => (v + (fromRidge[i] as number)) / 2),
          yTest,
        ),
      );
    }
    process.stdout.write(`\n${file} n=${n} p=${p} (${seeds.length} seeds)\n`);
    for (const [name, a] of Object.entries(scores)) {
      process.stdout.write(
        `${name.padEnd(14)} median ${median(a).toFixed(2)} | ${a.map((v) => v.toFixed(2)).join(' ')}\n`,
      );
    }
  }
}
