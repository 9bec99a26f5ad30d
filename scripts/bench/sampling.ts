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
import { bootstrapUncertainty } from '../../core/active.ts';
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
  iterationSeed,
  planActiveExtension,
  planExtension,
  planInitialBatch,
  summariseIteration,
} from '../../core/loop.ts';
import { evaluate } from '../../core/metrics.ts';
import { createRegressor } from '../../core/predictor/index.ts';
import type { ModelKind } from '../../core/predictor/types.ts';
import { createRng, shuffled } from '../../core/rng.ts';
import {
  depthBins,
  type LoopSamplingStrategy,
  loopSamplingStrategies,
} from '../../core/sampling.ts';
import { type IterationRecord, type PlannedSample, runParams } from '../../core/schemas/run.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { depth, subnetKey } from '../../core/spaces/subnet.ts';
import type { Subnet } from '../../core/spaces/types.ts';

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
    model: { type: 'string', default: 'mlp' },
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
const { rows } = parseDataset(readFileSync(file, 'utf8'), { space, file });
const bins = depthBins(space, nBins);
const started = Date.now();
process.stderr.write(`${file}: ${rows.length} architectures, model ${model}\n`);

const median = (xs: number[]) => {
  const s = xs.slice().sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
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
}

/**
 * The ESM loop replayed on the dataset with the core's own decisions (core/loop.ts: plan,
 * split, train, summarise, decide), as every orchestrator runs them, without a device: a
 * planned architecture's latency is its dataset value. Besides the loop's own test split
 * (which decides convergence and bin weights, as in a real run), every iteration also scores
 * the predictor per bin on all architectures the run has not measured: the truth a real run
 * cannot see, which shows whether "converged" on a handful of test networks is real.
 */
async function replay(strategy: LoopSamplingStrategy, seed: number): Promise<LoopResult> {
  const params = runParams.parse({
    space: space.name,
    device: `dataset:${file}`,
    sampling: strategy,
    nInit: Number(values['n-init']),
    nStep: Number(values['n-step']),
    accTh: Number(values['acc-th']),
    bins: nBins,
    w1: Number(values.w1),
    maxIter: Number(values['max-iter']),
    minTestPerBin: Number(values['min-test']),
    encoding: values.encoding,
    seed,
  });
  const encoder = createEncoder(space, params.encoding);
  const pool = rows.map((r) => ({
    arch: space.toNative(r.subnet) as unknown as Record<string, unknown>,
    key: subnetKey(r.subnet),
    depth: depth(r.subnet),
    row: r,
  }));
  const byKey = new Map(pool.map((p) => [p.key, p]));
  const xAll = encodeAll(
    encoder,
    pool.map((p) => p.row.subnet),
  );
  const measured: { plan: PlannedSample; latencyMs: number; subnet: Subnet }[] = [];
  const source = { kind: 'pool' as const, pool, space };
  let previous: IterationRecord | undefined;
  let heldOutSamples: number | null = null;
  let heldOutWorstBin: number | null = null;
  let reason = '';
  for (let iteration = 0; ; iteration++) {
    const rng = createRng(iterationSeed(seed, iteration));
    const exclude = new Set(measured.map((m) => m.plan.key));
    let batch: PlannedSample[];
    try {
      if (!previous) {
        batch = planInitialBatch({ source, params, bins, rng, exclude });
      } else if (strategy === 'active') {
        const train = measured.filter((m) => m.plan.split === 'train');
        const uncertainty = await bootstrapUncertainty(
          encodeAll(
            encoder,
            train.map((m) => m.subnet),
          ),
          Float64Array.from(train, (m) => m.latencyMs),
          { rng: rng.fork() },
        );
        batch = await planActiveExtension({
          source,
          params,
          bins,
          rng,
          exclude,
          iteration,
          binWeights: previous.nextBinWeights,
          uncertainty: (cs) =>
            uncertainty(
              encodeAll(
                encoder,
                cs.map((c) => (byKey.get(c.key) as (typeof pool)[number]).row.subnet),
              ),
            ),
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
      const item = byKey.get(plan.key) as (typeof pool)[number];
      measured.push({ plan, latencyMs: item.row.latencyMs, subnet: item.row.subnet });
    }
    const train = measured.filter((m) => m.plan.split === 'train');
    const test = measured.filter((m) => m.plan.split === 'test');
    const regressor = createRegressor(model, {
      mlp: { seed: iterationSeed(seed ^ 0x5eed, iteration) },
    });
    await regressor.fit(
      encodeAll(
        encoder,
        train.map((m) => m.subnet),
      ),
      Float64Array.from(train, (m) => m.latencyMs),
    );
    const predictedTest = await regressor.predict(
      encodeAll(
        encoder,
        test.map((m) => m.subnet),
      ),
    );
    const record = summariseIteration({
      iteration,
      bins,
      samples: [...test, ...train].map((m) => ({
        depth: m.plan.depth,
        split: m.plan.split,
        latencyMs: m.latencyMs,
      })),
      predictedTest,
      params,
      secondsMeasuring: 0,
      secondsTraining: 0,
      quality: { maxDrift: 0, remeasured: 0 },
      finishedAt: new Date(0).toISOString(),
    });
    // The truth: every architecture of the dataset this run has not measured.
    const taken = new Set(measured.map((m) => m.plan.key));
    const unseen = pool.map((p, i) => ({ p, i })).filter(({ p }) => !taken.has(p.key));
    const xUnseen = {
      rows: unseen.length,
      cols: xAll.cols,
      data: Float64Array.from(
        unseen.flatMap(({ i }) =>
          Array.from(xAll.data.subarray(i * xAll.cols, (i + 1) * xAll.cols)),
        ),
      ),
    };
    const truth = evaluate({
      predicted: await regressor.predict(xUnseen),
      measured: unseen.map(({ p }) => p.row.latencyMs),
      depths: unseen.map(({ p }) => p.depth),
      bins,
    });
    // A bin whose architectures were all measured has nothing left to score.
    const accs = (truth.bins ?? []).flatMap((b) => (b.accuracy === null ? [] : [b.accuracy]));
    heldOutWorstBin = Math.min(...accs);
    if (heldOutSamples === null && accs.every((a) => a >= params.accTh)) {
      heldOutSamples = measured.length;
    }
    previous = record;
    if (record.stop) {
      reason = record.reason ?? '';
      break;
    }
  }
  return {
    strategy,
    seed,
    converged: previous?.converged ?? false,
    iterations: (previous?.iteration ?? -1) + 1,
    samples: measured.length,
    reason,
    finalBins: previous?.bins.map((b) => b.accuracy) ?? [],
    heldOutWorstBin,
    heldOutSamples,
  };
}

async function convergence(): Promise<LoopResult[]> {
  const results: LoopResult[] = [];
  for (const strategy of strategies) {
    for (let seed = 1; seed <= seeds; seed++) {
      const result = await replay(strategy, seed);
      results.push(result);
      process.stderr.write(
        `${strategy} seed ${seed}: ${result.converged ? 'converged' : result.reason} after ${result.iterations} iterations, ${result.samples} samples; bins ${result.finalBins.map(pct).join(' ')}; unmeasured archs: worst bin ${pct(result.heldOutWorstBin)}, all bins >= AccTH at ${result.heldOutSamples ?? '-'} samples\n`,
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
      const regressor = createRegressor(model, { mlp: { seed } });
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

const loops = skip.has('convergence') ? [] : await convergence();
const enc = skip.has('encodings') ? [] : await encodings();

const out: string[] = [];
if (loops.length) {
  out.push(
    `Convergence (AccTH ${values['acc-th']}, ${values.encoding}, ${nBins} bins, N_I ${values['n-init']}, N_Step ${values['n-step']}, w1 ${values.w1}, min ${values['min-test']} test per bin, max ${values['max-iter']} iterations, model ${model}):`,
    '',
    '| strategy | converged | median iterations | median samples | samples per seed | unmeasured: worst bin at the end | unmeasured: all bins >= AccTH at |',
    '|---|---|---|---|---|---|---|',
  );
  for (const strategy of strategies) {
    const rs = loops.filter((r) => r.strategy === strategy);
    const truth = rs.map((r) => r.heldOutSamples);
    out.push(
      `| ${strategy} | ${rs.filter((r) => r.converged).length}/${rs.length} | ${median(rs.map((r) => r.iterations))} | ${median(rs.map((r) => r.samples))} | ${rs.map((r) => `${r.samples}${r.converged ? '' : '*'}`).join(', ')} | ${rs.map((r) => pct(r.heldOutWorstBin)).join(', ')} | ${truth.map((t) => t ?? '-').join(', ')} |`,
    );
  }
  out.push(
    '',
    '(* = did not converge: samples when it stopped; "unmeasured" = every dataset architecture the run did not measure, scored per bin by the predictor at the end, and the samples when all its bins first reached AccTH)',
  );
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
  writeFileSync(values.json, `${JSON.stringify({ loops, encodings: enc }, null, 2)}\n`);
