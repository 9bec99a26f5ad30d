/**
 * Transfer benchmark (issue 13): for every ordered pair (source, target) of devices measured
 * on the same architectures, a prior fitted on the source device is corrected with 10/20/50
 * target measurements (core/predictor/transfer.ts) and compared with training from scratch on
 * the target at the same sizes and at 500. Every model is tested on the same held-out
 * architectures (never used for any training, on any device); medians over seeds.
 *
 *   npx tsx scripts/bench/transfer.ts [--dir ../shared/data/help-ofa-mbv3]
 *     [--devices titan_rtx_1,2080ti_64,titan_xp_32] [--space mobilenetv3] [--seeds 3]
 *     [--sizes 10,20,50] [--scratch 10,20,50,500] [--prior-train 1000] [--test 1000]
 *     [--model <default model>] [--variants all] [--json out.json] [--priors cache.json]
 *
 * `--priors FILE` keeps the fitted priors (per seed and device) in FILE: read when it exists
 * and was made with the same devices, model and --prior-train, else fitted and written, so
 * runs that compare corrections need not refit the 4,000-row priors.
 *
 * Prints Markdown tables for docs/BENCHMARKS.md and the CPU seconds of this process.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDataset } from '../../core/dataset.ts';
import type { EncodingName } from '../../core/encodings/index.ts';
import { evaluate } from '../../core/metrics.ts';
import { type BaseModelJson, featuresName } from '../../core/predictor/artifact.ts';
import { createModel, modelToJson, regressorFromJson } from '../../core/predictor/index.ts';
import {
  contributionBases,
  createTransferRegressor,
  type FeatureBasis,
  featureLabels,
  physicsBasis,
  type TransferOptions,
} from '../../core/predictor/transfer.ts';
import { defaultModelKind, type ModelKind } from '../../core/predictor/types.ts';
import { createRng, shuffled } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { subnetKey } from '../../core/spaces/subnet.ts';
import type { Subnet } from '../../core/spaces/types.ts';
import { median } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    dir: { type: 'string', default: '../shared/data/help-ofa-mbv3' },
    devices: { type: 'string', default: 'titan_rtx_1,2080ti_64,titan_xp_32' },
    space: { type: 'string', default: 'mobilenetv3' },
    encoding: { type: 'string', default: 'fcc' },
    seeds: { type: 'string', default: '3' },
    sizes: { type: 'string', default: '10,20,50' },
    scratch: { type: 'string', default: '10,20,50,500' },
    'prior-train': { type: 'string', default: '1000' },
    test: { type: 'string', default: '1000' },
    model: { type: 'string', default: defaultModelKind },
    variants: { type: 'string', default: 'all' },
    json: { type: 'string' },
    priors: { type: 'string' },
  },
});
const space = getSpace(args.space);
const devices = args.devices.split(',');
const seeds = Number(args.seeds);
const sizes = args.sizes.split(',').map(Number);
const scratchSizes = args.scratch.split(',').map(Number);
const priorTrain = Number(args['prior-train']);
const nTest = Number(args.test);
const model = args.model as ModelKind;
const encoding = args.encoding as EncodingName;

/** What was tried: the CV choice (the default) and the fixed corrections it chooses among. */
const allVariants: {
  name: string;
  options: TransferOptions;
  basis?: string;
  /** The feature bases from the prior's model (instead of the default's). */
  bases?: (prior: BaseModelJson) => FeatureBasis[];
}[] = [
  { name: 'auto: chosen by CV (default)', options: {} },
  {
    name: 'log and ms; per-unit + physics bases (before)',
    options: {},
    bases: (prior) => [
      ...contributionBases(prior, labels).filter((b) => b.name === 'units'),
      ...physicsBasis(labels),
      { name: 'all', projection: 'all', minRows: 100 },
    ],
  },
  { name: 'CV on plain fits only (before)', options: { robust: false } },
  {
    name: 'scale: log y = a + log p',
    options: { spaces: ['log'], slopePenalties: [null], featurePenalties: [null] },
  },
  {
    name: 'log-affine: log y = a + b log p',
    options: { spaces: ['log'], slopePenalties: [0], featurePenalties: [null] },
  },
  {
    name: 'affine: y = a + b p',
    options: { spaces: ['ms'], slopePenalties: [0], featurePenalties: [null] },
  },
  {
    name: 'log-affine + ridge on all features',
    options: {
      spaces: ['log'],
      slopePenalties: [0],
      featurePenalties: [100, 10, 1, 0.1, 0.01],
      bases: [{ name: 'all', projection: 'all' }],
    },
  },
  {
    name: 'affine + ridge on all features, ms',
    options: {
      spaces: ['ms'],
      slopePenalties: [0],
      featurePenalties: [100, 10, 1, 0.1, 0.01],
      bases: [{ name: 'all', projection: 'all' }],
    },
  },
  {
    name: 'log-affine + per-unit scales',
    options: { spaces: ['log'], slopePenalties: [0], featurePenalties: [100, 10, 1, 0.1, 0.01] },
    basis: 'units',
  },
  {
    name: 'affine + per-unit scales, ms',
    options: { spaces: ['ms'], slopePenalties: [0], featurePenalties: [100, 10, 1, 0.1, 0.01] },
    basis: 'units',
  },
  {
    name: 'affine + per-kernel scales, ms',
    options: { spaces: ['ms'], slopePenalties: [0], featurePenalties: [100, 10, 1, 0.1, 0.01] },
    basis: 'kernels',
  },
  {
    name: 'affine + per-unit-and-kernel scales, ms',
    options: { spaces: ['ms'], slopePenalties: [0], featurePenalties: [100, 10, 1, 0.1, 0.01] },
    basis: 'units x kernels',
  },
];
const variants =
  args.variants === 'all'
    ? allVariants
    : allVariants.filter((v) => args.variants.split(',').includes(v.name));

interface Row {
  readonly subnet: Subnet;
  readonly latencyMs: number;
}

// Devices joined on the architecture, so a split means the same archs on every device.
const byDevice = new Map<string, Map<string, Row>>();
for (const device of devices) {
  const file = join(args.dir, `${device}.jsonl`);
  const { rows } = parseDataset(readFileSync(file, 'utf8'), { space, file });
  byDevice.set(device, new Map(rows.map((r) => [subnetKey(r.subnet), r])));
}
const keys = [...(byDevice.get(devices[0] as string) as Map<string, Row>).keys()].filter((k) =>
  devices.every((d) => byDevice.get(d)?.has(k)),
);
process.stderr.write(`${keys.length} architectures on all of ${devices.join(', ')}\n`);

// The featurizer the model kind trains on (auto: physics + the encoding + LUT counts), as
// `esm fit --model` builds it; the labels of its columns name the prior's contributions.
const { featurizer } = createModel(space, { model, encoding });
const labels = featureLabels(space, featurizer.features);
const rowsOf = (device: string, ks: readonly string[]) =>
  ks.map((k) => byDevice.get(device)?.get(k) as Row);
const matrix = (rows: readonly Row[]) => featurizer.encodeAll(rows.map((r) => r.subnet));
const latencies = (rows: readonly Row[]) => Float64Array.from(rows, (r) => r.latencyMs);

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

interface Result {
  readonly kind: 'scratch' | 'transfer';
  readonly source?: string;
  readonly target: string;
  readonly variant: string;
  readonly n: number;
  readonly seed: number;
  readonly accuracy: number;
  readonly within10: number;
  readonly chosen?: string;
}
const results: Result[] = [];
const cpuStart = process.cpuUsage();
const cacheKey = JSON.stringify({ devices, model, encoding, priorTrain, nTest });
const cache: Record<string, BaseModelJson> =
  args.priors && existsSync(args.priors)
    ? (() => {
        const c = JSON.parse(readFileSync(args.priors, 'utf8')) as {
          key: string;
          priors: Record<string, BaseModelJson>;
        };
        return c.key === cacheKey ? c.priors : {};
      })()
    : {};

for (let seed = 1; seed <= seeds; seed++) {
  const order = shuffled(keys, createRng(seed));
  const testKeys = order.slice(0, nTest);
  const pool = order.slice(nTest);
  const score = async (
    target: string,
    predict: (x: ReturnType<typeof matrix>) => Promise<Float64Array>,
  ) => {
    const test = rowsOf(target, testKeys);
    const e = evaluate({
      predicted: await predict(matrix(test)),
      measured: test.map((r) => r.latencyMs),
    });
    return { accuracy: e.accuracy, within10: e.within10 };
  };
  // Training rows of the target: a seeded prefix of the pool, so that 10 of 20 are the first 10.
  const targetKeys = shuffled(pool, createRng(1000 + seed));
  const priors = new Map<string, BaseModelJson>();
  for (const device of devices) {
    const cached = cache[`${seed} ${device}`];
    let priorJson: BaseModelJson;
    if (cached) priorJson = cached;
    else {
      const train = rowsOf(device, pool.slice(0, priorTrain));
      const { regressor } = createModel(space, {
        model,
        encoding,
        options: { mlp: { seed }, auto: { seed } },
      });
      await regressor.fit(matrix(train), latencies(train));
      priorJson = modelToJson(regressor) as BaseModelJson;
      cache[`${seed} ${device}`] = priorJson;
      if (args.priors) writeFileSync(args.priors, JSON.stringify({ key: cacheKey, priors: cache }));
    }
    priors.set(device, priorJson);
    const prior = regressorFromJson(priorJson);
    const s = await score(device, (x) => prior.predict(x));
    process.stderr.write(
      `seed ${seed} prior ${device} (${model}, ${priorTrain} rows): ${pct(s.accuracy)}\n`,
    );
  }
  for (const target of devices) {
    for (const n of scratchSizes) {
      const train = rowsOf(target, targetKeys.slice(0, n));
      for (const kind of [...new Set<ModelKind>([model, 'ridge'])]) {
        // Each kind on its own features (ridge on the encoding, as `esm fit --model ridge`).
        const own = createModel(space, {
          model: kind,
          encoding,
          options: { mlp: { seed }, auto: { seed } },
        });
        const ownMatrix = (rows: readonly Row[]) =>
          own.featurizer.encodeAll(rows.map((r) => r.subnet));
        await own.regressor.fit(ownMatrix(train), latencies(train));
        const test = rowsOf(target, testKeys);
        const e = evaluate({
          predicted: await own.regressor.predict(ownMatrix(test)),
          measured: test.map((r) => r.latencyMs),
        });
        const s = { accuracy: e.accuracy, within10: e.within10 };
        results.push({ kind: 'scratch', target, variant: kind, n, seed, ...s });
      }
    }
    for (const source of devices) {
      if (source === target) continue;
      for (const n of sizes) {
        const train = rowsOf(target, targetKeys.slice(0, n));
        for (const v of variants) {
          const priorModel = priors.get(source) as BaseModelJson;
          const grouped = contributionBases(priorModel, labels).filter((b) => b.name === v.basis);
          const { basis, ...options } = v.options as TransferOptions & { basis?: string };
          const regressor = createTransferRegressor(
            {
              labels,
              model: priorModel,
              source: {
                data: { file: source, sha256: '0'.repeat(64), rows: priorTrain },
                n_train: priorTrain,
                created_at: '',
              },
            },
            v.basis
              ? { ...options, bases: grouped }
              : v.bases
                ? { ...options, bases: v.bases(priorModel) }
                : options,
          );
          await regressor.fit(matrix(train), latencies(train));
          const s = await score(target, (x) => regressor.predict(x));
          const c = regressor.fitted?.correction;
          const chosen = c
            ? `${c.space}, slope ${c.slope_penalty === null ? 'fixed' : c.slope_penalty}, features ${c.features ? `${c.features.basis} ${c.feature_penalty}` : 'none'}${c.robust ? ', robust' : ''}`
            : '';
          results.push({
            kind: 'transfer',
            source,
            target,
            variant: v.name,
            n,
            seed,
            ...s,
            chosen,
          });
        }
      }
    }
    process.stderr.write(`seed ${seed} target ${target} done\n`);
  }
}
const cpu = process.cpuUsage(cpuStart);

const med = (filter: (r: Result) => boolean, field: 'accuracy' | 'within10' = 'accuracy') =>
  median(results.filter(filter).map((r) => r[field]));
const out: string[] = [];
out.push(
  `Transfer, ${args.dir}: prior = ${model} on ${priorTrain} source rows, features ${featuresName(featurizer.features)}; test = the same ${nTest} held-out archs on every device; accuracy (within 10 %), median of ${seeds} seeds.`,
  '',
  `| source -> target | ${sizes.map((n) => `transfer ${n}`).join(' | ')} | ${scratchSizes.map((n) => `scratch ${n}`).join(' | ')} |`,
  `|---|${sizes.map(() => '---').join('|')}|${scratchSizes.map(() => '---').join('|')}|`,
);
const cell = (filter: (r: Result) => boolean) =>
  `${pct(med(filter))} (${pct(med(filter, 'within10'))})`;
const main = variants[0]?.name as string;
for (const target of devices) {
  for (const source of devices) {
    if (source === target) continue;
    out.push(
      `| ${source} -> ${target} | ${sizes.map((n) => cell((r) => r.kind === 'transfer' && r.source === source && r.target === target && r.n === n && r.variant === main)).join(' | ')} | ${scratchSizes.map((n) => cell((r) => r.kind === 'scratch' && r.target === target && r.n === n && r.variant === model)).join(' | ')} |`,
    );
  }
}
out.push(
  '',
  `Scratch models on the target (${model} and ridge), median accuracy:`,
  '',
  `| target | model | ${scratchSizes.join(' | ')} |`,
  `|---|---|${scratchSizes.map(() => '---').join('|')}|`,
);
for (const target of devices) {
  for (const kind of [
    ...new Set(results.filter((r) => r.kind === 'scratch').map((r) => r.variant)),
  ]) {
    out.push(
      `| ${target} | ${kind} | ${scratchSizes.map((n) => pct(med((r) => r.kind === 'scratch' && r.target === target && r.n === n && r.variant === kind))).join(' | ')} |`,
    );
  }
}
out.push(
  '',
  'Corrections tried (median accuracy over the 6 ordered pairs and seeds):',
  '',
  `| correction | ${sizes.join(' | ')} |`,
  `|---|${sizes.map(() => '---').join('|')}|`,
);
for (const v of variants) {
  out.push(
    `| ${v.name} | ${sizes.map((n) => pct(med((r) => r.kind === 'transfer' && r.variant === v.name && r.n === n))).join(' | ')} |`,
  );
}
const chosen = new Map<string, number>();
for (const r of results.filter((x) => x.kind === 'transfer' && x.variant === main)) {
  const key = `n ${r.n}: ${r.chosen}`;
  chosen.set(key, (chosen.get(key) ?? 0) + 1);
}
out.push('', `What CV chose (${main}):`, ...[...chosen].sort().map(([k, c]) => `- ${k}: ${c}x`));
out.push('', `CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s for the whole command.`);
process.stdout.write(`${out.join('\n')}\n`);
if (args.json) writeFileSync(args.json, `${JSON.stringify(results, null, 1)}\n`);
