/**
 * Sampling and encoding experiment of the ESM paper, replayed on a measured dataset:
 *
 * 1. balanced vs random sampling: the whole loop (`runLocal` with the dataset device) for
 *    several seeds; samples and iterations until every depth bin reaches AccTH (ratio);
 * 2. FCC vs statistical vs one-hot vs feature: the same MLP trained on the same rows for
 *    each encoding, accuracy on the same held-out test set (stratified per depth bin).
 *
 *   npx tsx scripts/bench/sampling.ts [--dataset data/mobilenetv3-r160.jsonl] [--space mobilenetv3]
 *     [--seeds 3] [--acc-th 0.93] [--n-init 50] [--n-step 50] [--bins 5] [--max-iter 15]
 *     [--min-test 1] [--model mlp|ridge] [--train 400] [--json out.json]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDataset } from '../../core/dataset.ts';
import {
  createEncoder,
  type EncodingName,
  encodeAll,
  encodingNames,
} from '../../core/encodings/index.ts';
import { ValidationError } from '../../core/errors.ts';
import { assignSplits } from '../../core/loop.ts';
import { evaluate } from '../../core/metrics.ts';
import { createRegressor } from '../../core/predictor/index.ts';
import type { ModelKind } from '../../core/predictor/types.ts';
import { createRng, shuffled } from '../../core/rng.ts';
import { depthBins } from '../../core/sampling.ts';
import { runParams } from '../../core/schemas/run.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { depth, subnetKey } from '../../core/spaces/subnet.ts';
import { runLocal } from '../../local/engine.ts';
import { RunStore } from '../../local/run-store.ts';

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
  },
});

const space = getSpace(values.space as string);
const file = values.dataset as string;
const seeds = Number(values.seeds);
const model = values.model as ModelKind;
const nBins = Number(values.bins);
const skip = new Set((values.skip as string).split(',').filter(Boolean));
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
}

async function convergence(): Promise<LoopResult[]> {
  const results: LoopResult[] = [];
  for (const strategy of ['balanced', 'random'] as const) {
    for (let seed = 1; seed <= seeds; seed++) {
      const dir = mkdtempSync(join(tmpdir(), 'esm-bench-sampling-'));
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
        seed,
        model,
      });
      const store = RunStore.create(join(dir, 'run'), params);
      let reason = '';
      try {
        const summary = await runLocal(store);
        reason = summary.status;
      } catch (error) {
        // The pool ran out of unmeasured architectures before convergence.
        if (!(error instanceof ValidationError)) throw error;
        reason = `pool exhausted (${error.message.slice(0, 60)})`;
      }
      const history = store.iterations();
      const last = history[history.length - 1];
      const result: LoopResult = {
        strategy,
        seed,
        converged: last?.converged ?? false,
        iterations: history.length,
        samples: (last?.samples.train ?? 0) + (last?.samples.test ?? 0),
        reason,
        finalBins: last?.bins.map((b) => b.accuracy) ?? [],
      };
      results.push(result);
      process.stderr.write(
        `${strategy} seed ${seed}: ${result.converged ? 'converged' : reason} after ${result.iterations} iterations, ${result.samples} samples; bins ${result.finalBins.map(pct).join(' ')}\n`,
      );
      rmSync(dir, { recursive: true, force: true });
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
    `Convergence (AccTH ${values['acc-th']}, ${nBins} bins, N_I ${values['n-init']}, N_Step ${values['n-step']}, w1 ${values.w1}, min ${values['min-test']} test per bin, max ${values['max-iter']} iterations, model ${model}):`,
    '',
    '| strategy | converged | median iterations | median samples | samples per seed |',
    '|---|---|---|---|---|',
  );
  for (const strategy of ['balanced', 'random']) {
    const rs = loops.filter((r) => r.strategy === strategy);
    out.push(
      `| ${strategy} | ${rs.filter((r) => r.converged).length}/${rs.length} | ${median(rs.map((r) => r.iterations))} | ${median(rs.map((r) => r.samples))} | ${rs.map((r) => `${r.samples}${r.converged ? '' : '*'}`).join(', ')} |`,
    );
  }
  const b = median(loops.filter((r) => r.strategy === 'balanced').map((r) => r.samples));
  const r = median(loops.filter((x) => x.strategy === 'random').map((x) => x.samples));
  out.push(
    '',
    `random / balanced samples (medians): ${(r / b).toFixed(2)} (* = did not converge: samples when it stopped)`,
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
