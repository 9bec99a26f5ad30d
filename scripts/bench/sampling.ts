/**
 * Sampling and encoding experiment of the ESM paper, replayed on a measured dataset:
 *
 * 1. random vs balanced vs active sampling: the loop's own decisions (core/loop.ts) replayed
 *    on the dataset for several seeds; samples and iterations until every depth bin reaches
 *    AccTH on the loop's test split, and the truth on the architectures it did not measure;
 * 2. FCC vs statistical vs one-hot vs feature: the same MLP trained on the same rows for
 *    each encoding, accuracy on the same held-out test set (stratified per depth bin).
 *
 *   npx tsx scripts/bench/sampling.ts [--dataset data/mobilenetv3-r160.jsonl] [--space mobilenetv3]
 *     [--seeds 3] [--acc-th 0.93] [--n-init 50] [--n-step 50] [--bins 5] [--max-iter 15]
 *     [--min-test 1] [--model mlp|ridge] [--train 400] [--strategies balanced,random,active]
 *     [--skip convergence|encodings] [--json out.json]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { activeUncertainty as coreActiveUncertainty } from '../../core/active.ts';
import { parseDataset } from '../../core/dataset.ts';
import {
  createEncoder,
  type EncodingName,
  encodeAll,
  encodingNames,
} from '../../core/encodings/index.ts';
import { ValidationError } from '../../core/errors.ts';
import {
  assignSplits,
  type Candidate,
  iterationSeed,
  planActiveExtension,
  planExtension,
  planInitialBatch,
  summariseIteration,
} from '../../core/loop.ts';
import { evaluate } from '../../core/metrics.ts';
import { falsePasses, scorePoolTruth } from '../../core/pool-truth.ts';
import type { AutoFitReport } from '../../core/predictor/auto.ts';
import { createModel, createRegressor, type Featurizer } from '../../core/predictor/index.ts';
import { defaultModelKind, type ModelKind, type Regressor } from '../../core/predictor/types.ts';
import { createRng, shuffled } from '../../core/rng.ts';
import {
  binOf,
  type LoopSamplingStrategy,
  loopSamplingStrategies,
  poolDepthRange,
  runBins,
} from '../../core/sampling.ts';
import {
  type IterationRecord,
  type PlannedSample,
  type PoolTruth,
  type RunParams,
  runParams,
} from '../../core/schemas/run.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { depth, subnetKey } from '../../core/spaces/subnet.ts';
import {
  sortRows,
  type TrainIterationResult,
  type TrainRow,
  trainIteration,
} from '../../core/train-iteration.ts';
import { median } from './stats.ts';

const { values } = parseArgs({
  options: {
    dataset: { type: 'string', default: 'data/mobilenetv3-r160.jsonl' },
    space: { type: 'string', default: 'mobilenetv3' },
    seeds: { type: 'string', default: '3' },
    'acc-th': { type: 'string', default: '0.93' },
    'n-init': { type: 'string', default: '50' },
    'n-step': { type: 'string', default: '50' },
    bins: { type: 'string', default: '5' },
    'max-iter': { type: 'string', default: '15' },
    w1: { type: 'string', default: '3' },
    'min-test': { type: 'string', default: '1' },
    model: { type: 'string', default: defaultModelKind },
    uncertainty: { type: 'string', default: 'bootstrap' },
    estimate: { type: 'string', default: 'test' },
    ceiling: { type: 'string' },
    z: { type: 'string', default: '0' },
    train: { type: 'string', default: '400' },
    json: { type: 'string' },
    skip: { type: 'string', default: '' },
    strategies: { type: 'string', default: 'balanced,random' },
    encoding: { type: 'string', default: 'fcc' },
  },
});

const space = getSpace(values.space as string);
const file = values.dataset as string;
const seeds = Number(values.seeds);
const model = values.model as ModelKind;
const nBins = Number(values.bins);
const skip = new Set((values.skip as string).split(',').filter(Boolean));
const strategies = (values.strategies as string).split(',').map((name) => {
  if (!(loopSamplingStrategies as readonly string[]).includes(name)) {
    throw new ValidationError(
      '--strategies',
      `got "${name}", allowed: ${loopSamplingStrategies.join(', ')}`,
    );
  }
  return name as LoopSamplingStrategy;
});
const uncertaintyKinds = ['bootstrap', 'std', 'coverage'] as const;
const uncertaintyKind = values.uncertainty as (typeof uncertaintyKinds)[number];
if (!(uncertaintyKinds as readonly string[]).includes(uncertaintyKind)) {
  throw new ValidationError('--uncertainty', `allowed: ${uncertaintyKinds.join(', ')}`);
}
const estimate = values.estimate as 'test' | 'oof';
if (estimate !== 'test' && estimate !== 'oof') {
  throw new ValidationError('--estimate', 'allowed: test, oof');
}
const { rows } = parseDataset(readFileSync(file, 'utf8'), { space, file });
const pool = rows.map((r) => ({
  arch: space.toNative(r.subnet) as unknown as Record<string, unknown>,
  key: subnetKey(r.subnet),
  depth: depth(r.subnet),
  row: r,
}));
type PoolEntry = (typeof pool)[number];
const byKey = new Map(pool.map((p) => [p.key, p]));
const keyOf = (m: { arch: Record<string, unknown> }) => subnetKey(space.parse(m.arch));
// As a replay run does (workflow-init.ts): bins over the depths the pool holds.
const depthRange = poolDepthRange(pool);
const bins = runBins(space, { bins: nBins, depthRange });
const started = Date.now();
process.stderr.write(
  `${file}: ${rows.length} architectures, model ${model}, depths ${depthRange.min}..${depthRange.max}, ${bins.length} bins\n`,
);

const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(1)}`);

interface LoopResult {
  strategy: string;
  seed: number;
  converged: boolean;
  iterations: number;
  samples: number;
  reason: string;
  finalBins: (number | null)[];
  /** Lowest per-bin accuracy on every architecture the run had not measured, when it stopped. */
  heldOutWorstBin: number | null;
  /** Samples measured when every bin first passed AccTH on the unmeasured architectures. */
  heldOutSamples: number | null;
  /** Bins the loop passed at its last iteration whose truth (unmeasured archs) is below AccTH. */
  falsePasses: number;
  /** CPU seconds of the whole replay (this process, user + system). */
  cpuSeconds: number;
  /** Per-bin accuracy on the unmeasured architectures when the run stopped. */
  truthBins: (number | null)[];
  /** What `auto` chose, per iteration ("" for another model). */
  chosen: string[];
}

/** Per-bin accuracy of `predicted` against `measured`; null for a bin without rows. */
function binAccuracies(
  predicted: ArrayLike<number>,
  measured: ArrayLike<number>,
  depths: readonly number[],
): (number | null)[] {
  return (evaluate({ predicted, measured, depths, bins }).bins ?? []).map((b) => b.accuracy);
}

/** The last iteration's predictor, for `--uncertainty std`. */
interface Trained {
  readonly regressor: Regressor;
  readonly featurizer: Featurizer;
}

const physics = createEncoder(space, 'physics');
const xPhysics = encodeAll(
  physics,
  pool.map((p) => p.row.subnet),
);
const rowOf = new Map(pool.map((p, i) => [p.key, i]));

/**
 * How unsure the loop is about each candidate, by `--uncertainty`:
 * `bootstrap` = the cloud's and `esm run`'s (core/active.ts `activeUncertainty`, which the
 * workflow's Extend task calls); `std` = the last predictor's own `predictWithStd`, relative;
 * `coverage` = distance (standardised physics features) to the nearest measured architecture
 * of the same depth bin: far from everything measured = unknown.
 */
async function activeUncertainty(
  params: RunParams,
  measured: readonly TrainRow[],
  iteration: number,
  last: Trained | undefined,
): Promise<(candidates: readonly Candidate[]) => Promise<ArrayLike<number>>> {
  if (uncertaintyKind === 'std') {
    const trained = last as Trained;
    return async (cs) => {
      const x = trained.featurizer.encodeAll(cs.map((c) => space.parse(c.arch)));
      const p = await (
        trained.regressor.predictWithStd as NonNullable<Regressor['predictWithStd']>
      )(x);
      return p.std.map((sd, i) => sd / Math.max(p.mean[i] as number, 1e-9));
    };
  }
  if (uncertaintyKind === 'coverage') {
    const cols = xPhysics.cols;
    const mean = new Float64Array(cols);
    const sd = new Float64Array(cols);
    for (let r = 0; r < xPhysics.rows; r++)
      for (let j = 0; j < cols; j++)
        mean[j] = (mean[j] as number) + (xPhysics.data[r * cols + j] as number) / xPhysics.rows;
    for (let r = 0; r < xPhysics.rows; r++)
      for (let j = 0; j < cols; j++)
        sd[j] =
          (sd[j] as number) +
          ((xPhysics.data[r * cols + j] as number) - (mean[j] as number)) ** 2 / xPhysics.rows;
    const scale = sd.map((v) => (v > 0 ? 1 / Math.sqrt(v) : 0));
    const z = (r: number) =>
      Float64Array.from(
        { length: cols },
        (_, j) =>
          ((xPhysics.data[r * cols + j] as number) - (mean[j] as number)) * (scale[j] as number),
      );
    const seen = measured.map((m) => ({ bin: m.bin, z: z(rowOf.get(keyOf(m)) as number) }));
    return async (cs) =>
      cs.map((c) => {
        const zc = z(rowOf.get(c.key) as number);
        const b = binOf(bins, c.depth);
        let best = Number.POSITIVE_INFINITY;
        for (const m of seen) {
          if (m.bin !== b) continue;
          let d = 0;
          for (let j = 0; j < cols; j++) d += ((zc[j] as number) - (m.z[j] as number)) ** 2;
          if (d < best) best = d;
        }
        return best;
      });
  }
  return coreActiveUncertainty(
    space,
    params,
    measured.filter((m) => m.split === 'train'),
    iteration,
  );
}

/** 5-fold out-of-fold predictions of the run's model on the training rows (seeded). */
async function kFoldOof(
  train: readonly TrainRow[],
  params: RunParams,
): Promise<Float64Array | undefined> {
  if (train.length < 10) return undefined;
  const folds = 5;
  const order = shuffled(
    train.map((_, i) => i),
    createRng(params.seed ^ 0xf01d),
  );
  const fold = new Int32Array(train.length);
  order.forEach((r, i) => {
    fold[r] = i % folds;
  });
  const out = new Float64Array(train.length);
  for (let f = 0; f < folds; f++) {
    const fit = train.filter((_, i) => fold[i] !== f);
    const held = train.map((_, i) => i).filter((i) => fold[i] === f);
    const { featurizer, regressor } = createModel(space, {
      model: params.model,
      encoding: params.encoding,
    });
    await regressor.fit(
      featurizer.encodeAll(fit.map((r) => space.parse(r.arch))),
      Float64Array.from(fit, (r) => r.latencyMs),
    );
    const p = await regressor.predict(
      featurizer.encodeAll(held.map((i) => space.parse((train[i] as TrainRow).arch))),
    );
    held.forEach((r, i) => {
      out[r] = p[i] as number;
    });
  }
  return out;
}

/**
 * `--estimate oof` with a model that has no out-of-fold predictions of its own (auto has,
 * and the loop uses them): the iteration re-summarised by the core with this bench's 5-fold
 * predictions of the training rows, so ridge can stand in for auto where auto chose ridge.
 */
async function withKFold(
  record: IterationRecord,
  rows: readonly TrainRow[],
  result: TrainIterationResult,
  params: RunParams,
): Promise<IterationRecord> {
  const train = rows.filter((r) => r.split === 'train');
  const test = rows.filter((r) => r.split === 'test');
  const oof = await kFoldOof(train, params);
  if (!oof) return record;
  return summariseIteration({
    iteration: record.iteration,
    bins,
    samples: [...test, ...train],
    predictedTest: result.predictions.map((p) => p.predicted),
    params,
    outOfFold: train.flatMap((r, i) =>
      params.sampling === 'active' && r.iteration > 0
        ? []
        : [{ depth: r.depth, latencyMs: r.latencyMs, predicted: oof[i] as number }],
    ),
    secondsMeasuring: 0,
    secondsTraining: 0,
    quality: { maxDrift: 0, remeasured: 0 },
    finishedAt: record.finishedAt,
  });
}

/**
 * The ESM loop replayed on the dataset with the core's own steps, as both engines run them:
 * plan (core/loop.ts), train and summarise (core/train-iteration.ts, the Train task's own
 * function, with the run's model), decide; without a device: a planned architecture's latency
 * is its dataset value. Besides the loop's own test split (which decides convergence and bin
 * weights, as in a real run), every iteration also scores the predictor per bin on all
 * architectures the run has not measured: the truth a real run cannot see, which shows
 * whether "converged" on a handful of test networks is real.
 */
async function replay(strategy: LoopSamplingStrategy, seed: number): Promise<LoopResult> {
  const cpu0 = process.cpuUsage();
  const params = runParams.parse({
    space: space.name,
    device: `dataset:${file}`,
    sampling: strategy,
    model,
    nInit: Number(values['n-init']),
    nStep: Number(values['n-step']),
    accTh: Number(values['acc-th']),
    bins: nBins,
    depthRange,
    w1: Number(values.w1),
    maxIter: Number(values['max-iter']),
    minTestPerBin: Number(values['min-test']),
    binAccuracy: estimate,
    binAccuracyZ: Number(values.z),
    encoding: values.encoding,
    seed,
  });
  const measured: TrainRow[] = [];
  const source = { kind: 'pool' as const, pool, space };
  let previous: IterationRecord | undefined;
  let truth: PoolTruth | undefined;
  let heldOutSamples: number | null = null;
  let reason = '';
  let last: Trained | undefined;
  const chosen: string[] = [];
  for (let iteration = 0; ; iteration++) {
    const rng = createRng(iterationSeed(seed, iteration));
    const exclude = new Set(measured.map((m) => keyOf(m)));
    let batch: PlannedSample[];
    try {
      if (!previous) {
        batch = planInitialBatch({ source, params, bins, rng, exclude });
      } else if (strategy === 'active') {
        batch = await planActiveExtension({
          source,
          params,
          bins,
          rng,
          exclude,
          iteration,
          binWeights: previous.nextBinWeights,
          uncertainty: await activeUncertainty(params, measured, iteration, last),
        });
      } else {
        batch = planExtension({
          source,
          params,
          bins,
          rng,
          exclude,
          iteration,
          binWeights: previous.nextBinWeights,
        });
      }
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      reason = `pool exhausted (${error.message.slice(0, 60)})`;
      break;
    }
    for (const plan of batch) {
      const item = byKey.get(plan.key) as PoolEntry;
      measured.push({
        id: plan.id,
        arch: plan.arch,
        latencyMs: item.row.latencyMs,
        depth: plan.depth,
        bin: plan.bin,
        split: plan.split,
        iteration,
      });
    }
    const rows = sortRows(measured);
    const result = await trainIteration({
      space,
      params,
      bins,
      iteration,
      rows,
      secondsMeasuring: 0,
      remeasured: 0,
      data: { file, sha256: '' },
      now: () => new Date(0),
    });
    last = result;
    chosen.push(((result.fit as Partial<AutoFitReport>).chosen ?? []).map((c) => c.name).join('+'));
    let record = result.record;
    if (estimate === 'oof' && model !== 'auto') {
      record = await withKFold(record, rows, result, params);
    }
    // The truth: every architecture of the dataset this run has not measured, scored as the
    // Train task that stops a replay scores it (core/pool-truth.ts), beside each bin's verdict.
    const taken = new Set(measured.map((m) => keyOf(m)));
    truth = await scorePoolTruth({
      featurizer: result.featurizer,
      regressor: result.regressor,
      rows: pool.flatMap((p) =>
        taken.has(p.key) ? [] : [{ subnet: p.row.subnet, latencyMs: p.row.latencyMs }],
      ),
      bins,
      judged: record.bins,
      params,
    });
    // A bin whose architectures were all measured has nothing left to score.
    const accs = (truth?.bins ?? []).flatMap((b) => (b.accuracy === null ? [] : [b.accuracy]));
    if (heldOutSamples === null && accs.every((a) => a >= params.accTh)) {
      heldOutSamples = measured.length;
    }
    previous = record;
    if (record.stop) {
      reason = record.reason ?? '';
      break;
    }
  }
  const cpu = process.cpuUsage(cpu0);
  const truthBins = truth?.bins.map((b) => b.accuracy) ?? [];
  const known = truthBins.flatMap((a) => (a === null ? [] : [a]));
  return {
    strategy,
    seed,
    converged: previous?.converged ?? false,
    iterations: (previous?.iteration ?? -1) + 1,
    samples: measured.length,
    reason,
    // What the decision judged each bin on (the test share, or with oof all fair rows).
    finalBins: previous?.bins.map((b) => b.decided?.accuracy ?? b.accuracy) ?? [],
    heldOutWorstBin: known.length ? Math.min(...known) : null,
    heldOutSamples,
    falsePasses: truth ? falsePasses(truth, params.accTh).length : 0,
    truthBins,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    chosen,
  };
}

async function convergence(): Promise<LoopResult[]> {
  const results: LoopResult[] = [];
  for (const strategy of strategies) {
    for (let seed = 1; seed <= seeds; seed++) {
      const result = await replay(strategy, seed);
      results.push(result);
      process.stderr.write(
        `${strategy} seed ${seed}: ${result.converged ? 'converged' : result.reason} after ${result.iterations} iterations, ${result.samples} samples; bins ${result.finalBins.map(pct).join(' ')}; unmeasured archs: worst bin ${pct(result.heldOutWorstBin)}, all bins >= AccTH at ${result.heldOutSamples ?? '-'} samples; false passes ${result.falsePasses}; ${result.cpuSeconds.toFixed(1)} CPU s; chosen ${[...new Set(result.chosen)].join(', ')}\n`,
      );
    }
  }
  return results;
}

interface EncodingResult {
  encoding: EncodingName;
  accuracy: number;
  binBalanced: number;
  worstBin: number;
  within10: number;
  spearman: number;
}

async function encodings(): Promise<EncodingResult[]> {
  const nTrain = Number(values.train);
  const sums = new Map<EncodingName, number[][]>();
  for (let seed = 1; seed <= seeds; seed++) {
    const rng = createRng(1000 + seed);
    const candidates = rows.map((r) => ({
      arch: {},
      key: subnetKey(r.subnet),
      depth: depth(r.subnet),
    }));
    // The same stratified test share as the loop uses; training rows drawn from the rest.
    const planned = assignSplits(candidates, { bins, testFraction: 0.2, iteration: 0, rng });
    const test = rows.filter((_, i) => planned[i]?.split === 'test');
    const rest = shuffled(
      rows.filter((_, i) => planned[i]?.split === 'train'),
      rng,
    );
    const train = rest.slice(0, Math.min(nTrain, rest.length));
    for (const name of encodingNames) {
      const encoder = createEncoder(space, name);
      // auto picks its own features; the encodings are compared on one model that reads them.
      const regressor = createRegressor(model === 'auto' ? 'mlp' : model, { mlp: { seed } });
      await regressor.fit(
        encodeAll(
          encoder,
          train.map((r) => r.subnet),
        ),
        Float64Array.from(train, (r) => r.latencyMs),
      );
      const predicted = await regressor.predict(
        encodeAll(
          encoder,
          test.map((r) => r.subnet),
        ),
      );
      const e = evaluate({
        predicted,
        measured: test.map((r) => r.latencyMs),
        depths: test.map((r) => depth(r.subnet)),
        bins,
      });
      const binAccs = (e.bins ?? []).map((b) => b.accuracy).filter((a): a is number => a !== null);
      const row = [
        e.accuracy,
        binAccs.reduce((a, b) => a + b, 0) / binAccs.length,
        Math.min(...binAccs),
        e.within10,
        e.spearman ?? 0,
      ];
      sums.set(name, [...(sums.get(name) ?? []), row]);
      process.stderr.write(
        `seed ${seed} ${name}: ${train.length} train / ${test.length} test, accuracy ${pct(e.accuracy)} %, within 10 % ${pct(e.within10)} %\n`,
      );
    }
  }
  return encodingNames.map((encoding) => {
    const runs = sums.get(encoding) ?? [];
    const mean = (k: number) => runs.reduce((s, r) => s + (r[k] as number), 0) / runs.length;
    return {
      encoding,
      accuracy: mean(0),
      binBalanced: mean(1),
      worstBin: mean(2),
      within10: mean(3),
      spearman: mean(4),
    };
  });
}

/**
 * `--ceiling N`: what the model reaches per bin with far more data than the loop measures:
 * trained on N random rows of the pool (one draw per seed), scored per bin on all the others.
 */
async function ceiling(n: number): Promise<{ seed: number; bins: (number | null)[] }[]> {
  const out: { seed: number; bins: (number | null)[] }[] = [];
  for (let seed = 1; seed <= seeds; seed++) {
    const order = shuffled(pool, createRng(7000 + seed));
    const train = order.slice(0, n);
    const rest = order.slice(n);
    const { featurizer, regressor } = createModel(space, {
      model,
      encoding: values.encoding as EncodingName,
    });
    await regressor.fit(
      featurizer.encodeAll(train.map((p) => p.row.subnet)),
      Float64Array.from(train, (p) => p.row.latencyMs),
    );
    const predicted = await regressor.predict(featurizer.encodeAll(rest.map((p) => p.row.subnet)));
    const accs = binAccuracies(
      predicted,
      rest.map((p) => p.row.latencyMs),
      rest.map((p) => p.depth),
    );
    out.push({ seed, bins: accs });
    process.stderr.write(`ceiling seed ${seed}: ${n} train, bins ${accs.map(pct).join(' ')}\n`);
  }
  return out;
}

const ceilingRows = values.ceiling ? Number(values.ceiling) : 0;
const ceil = ceilingRows > 0 ? await ceiling(ceilingRows) : [];
const loops = skip.has('convergence') || ceilingRows > 0 ? [] : await convergence();
const enc = skip.has('encodings') || ceilingRows > 0 ? [] : await encodings();

const out: string[] = [];
if (loops.length) {
  out.push(
    `Convergence (AccTH ${values['acc-th']}, model ${model}, ${nBins} bins, N_I ${values['n-init']}, N_Step ${values['n-step']}, w1 ${values.w1}, min ${values['min-test']} test per bin, max ${values['max-iter']} iterations, active uncertainty ${uncertaintyKind}, estimate ${estimate}, z ${values.z}):`,
    '',
    '| strategy | converged | median iterations | median samples | samples per seed | unmeasured: worst bin at the end | unmeasured: all bins >= AccTH at | false passes | CPU s per run |',
    '|---|---|---|---|---|---|---|---|---|',
  );
  for (const strategy of strategies) {
    const rs = loops.filter((r) => r.strategy === strategy);
    const truth = rs.map((r) => r.heldOutSamples);
    out.push(
      `| ${strategy} | ${rs.filter((r) => r.converged).length}/${rs.length} | ${median(rs.map((r) => r.iterations))} | ${median(rs.map((r) => r.samples))} | ${rs.map((r) => `${r.samples}${r.converged ? '' : '*'}`).join(', ')} | ${rs.map((r) => pct(r.heldOutWorstBin)).join(', ')} | ${truth.map((t) => t ?? '-').join(', ')} | ${rs.map((r) => r.falsePasses).join(', ')} | ${median(rs.map((r) => r.cpuSeconds)).toFixed(0)} |`,
    );
  }
  out.push(
    '',
    '(* = did not converge: samples when it stopped; "unmeasured" = every dataset architecture the run did not measure, scored per bin by the predictor at the end, and the samples when all its bins first reached AccTH; false passes = bins the loop passed at its last iteration whose unmeasured accuracy is below AccTH)',
  );
}
if (ceil.length) {
  out.push(
    '',
    `Ceiling: ${model} trained on ${ceilingRows} random rows, per-bin accuracy on the other ${rows.length - ceilingRows} (bins ${bins.map((b) => `${b.lo}-${b.hi}`).join(', ')}):`,
    '',
    `| seed | ${bins.map((b) => `${b.lo}-${b.hi}`).join(' | ')} | worst |`,
    `|---|${bins.map(() => '---').join('|')}|---|`,
  );
  for (const c of ceil) {
    const known = c.bins.flatMap((a) => (a === null ? [] : [a]));
    out.push(`| ${c.seed} | ${c.bins.map(pct).join(' | ')} | ${pct(Math.min(...known))} |`);
  }
}
if (enc.length) {
  out.push(
    '',
    `Encodings at equal samples (${values.train} train, 20 % of the dataset per bin as test, ${model}, mean of ${seeds} seeds):`,
    '',
    '| encoding | accuracy | bin-balanced | worst bin | within 10 % | Spearman |',
    '|---|---|---|---|---|---|',
  );
  for (const e of enc) {
    out.push(
      `| ${e.encoding} | ${pct(e.accuracy)} % | ${pct(e.binBalanced)} % | ${pct(e.worstBin)} % | ${pct(e.within10)} % | ${e.spearman.toFixed(3)} |`,
    );
  }
}
out.push(
  '',
  `(${rows.length} architectures in ${file}; ${((Date.now() - started) / 1000).toFixed(0)} s)`,
);
process.stdout.write(`${out.join('\n')}\n`);
if (values.json)
  writeFileSync(
    values.json,
    `${JSON.stringify({ loops, encodings: enc, ceiling: ceil }, null, 2)}\n`,
  );
