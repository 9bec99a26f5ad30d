/**
 * Few-shot predictor benchmark (issue 13): accuracy and within-10 % of every model kind and
 * of `auto` at small training sizes on measured public and local datasets, the CPU cost and
 * peak memory of `auto`, and the encoding comparison (the paper's "FCC beats the other
 * encodings") with `auto` and with `mlp-paper` at equal samples.
 *
 *   npx tsx scripts/bench/fewshot.ts [--files a.jsonl,b.jsonl] [--sizes 20,50,100,200,500,1000]
 *       [--seeds 0,1,2] [--kinds auto,ridge-fcc,...] [--test 2000] [--out results.jsonl]
 *   npx tsx scripts/bench/fewshot.ts --cost [--files F] [--sizes 500,4000]
 *   npx tsx scripts/bench/fewshot.ts --encodings [--sizes 100,500]
 *   npx tsx scripts/bench/fewshot.ts --summary a.jsonl,b.jsonl [--rule auto]   # tables (medians)
 *   npx tsx scripts/bench/fewshot.ts --oof oof.jsonl [--files F] [--sizes ...] [--seeds ...]
 *   npx tsx scripts/bench/fewshot.ts --rules oof.jsonl --out results.jsonl
 *
 * `--oof` runs auto's own cross-validation (crossValidateCandidates) on every cell and
 * refits every candidate on all training rows, storing the out-of-fold and the test
 * predictions; `--rules` then scores auto's selection (selectMembers, the default and the
 * alternatives in `RULES`) on those, exactly as `auto` fits them (the same folds, seeds and
 * refits: auto's prediction is the weighted sum of its members' predictions), without
 * retraining: one CV run serves every selection rule compared.
 *
 * The space of a file comes from its folder (`help-ofa-mbv3` mobilenetv3, `help-fbnet`
 * fbnet, `nb201` nasbench201) or its name (`data/<space>-*.jsonl`). NAS-Bench-201 rows under
 * 0.5 ms (cells without an input-output path) are dropped, as ../shared/data/README.md asks.
 * Each seed draws its own training rows; the test set is up to `--test` of the other rows.
 * Every result line is appended to `--out` as it is measured, so a long run can be
 * summarised while it goes.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type EncodingName, encodingNames } from '../../core/encodings/index.ts';
import { evaluate } from '../../core/metrics.ts';
import {
  type AutoFitReport,
  type AutoOptions,
  type CandidateScore,
  type CrossValidation,
  crossValidateCandidates,
  selectMembers,
} from '../../core/predictor/auto.ts';
import {
  autoFeatures,
  createFeaturizer,
  createModel,
  createRegressor,
} from '../../core/predictor/index.ts';
import type { ModelKind, Regressor } from '../../core/predictor/types.ts';
import { createRng, shuffled } from '../../core/rng.ts';
import type { SearchSpace, Subnet } from '../../core/spaces/types.ts';
import { loadBenchFile } from './bench-data.ts';
import { median } from './stats.ts';

const DEFAULT_FILES = [
  '../shared/data/help-ofa-mbv3/2080ti_64.jsonl',
  '../shared/data/help-ofa-mbv3/titan_xp_32.jsonl',
  '../shared/data/help-ofa-mbv3/titan_rtx_1.jsonl',
  'data/mobilenetv3-r160.jsonl',
  'data/mobilenetv3-local.jsonl',
  'data/mobilenetv3-interleaved.jsonl',
  'data/resnet50-r128.jsonl',
  'data/densenet-r128.jsonl',
];

/** A benchmarked model: a kind on an encoding (auto and lut bring their own features). */
interface Variant {
  readonly name: string;
  readonly model: ModelKind;
  readonly encoding: EncodingName;
}

const VARIANTS: readonly Variant[] = [
  { name: 'auto', model: 'auto', encoding: 'fcc' },
  { name: 'ridge-physics', model: 'ridge', encoding: 'physics' },
  { name: 'ridge-fcc', model: 'ridge', encoding: 'fcc' },
  { name: 'lut', model: 'lut', encoding: 'fcc' },
  { name: 'rf', model: 'rf', encoding: 'fcc' },
  { name: 'gbt', model: 'gbt', encoding: 'fcc' },
  { name: 'mlp', model: 'mlp', encoding: 'fcc' },
  { name: 'mlp-ensemble', model: 'mlp-ensemble', encoding: 'fcc' },
  { name: 'mlp-paper', model: 'mlp-paper', encoding: 'fcc' },
];

const { values } = parseArgs({
  options: {
    files: { type: 'string' },
    sizes: { type: 'string', default: '20,50,100,200,500,1000' },
    seeds: { type: 'string', default: '0,1,2' },
    kinds: { type: 'string' },
    test: { type: 'string', default: '2000' },
    out: { type: 'string', default: 'fewshot-results.jsonl' },
    cost: { type: 'boolean', default: false },
    encodings: { type: 'boolean', default: false },
    summary: { type: 'string' },
    rule: { type: 'string', default: 'auto' },
    oof: { type: 'string' },
    rules: { type: 'string' },
  },
});

const load = loadBenchFile;

type Rows = ReturnType<typeof load>['rows'];

function split(rows: Rows, n: number, seed: number, maxTest: number) {
  const order = shuffled(
    rows.map((_, i) => i),
    createRng(1000 + seed),
  );
  const train = order.slice(0, n).map((i) => rows[i] as Rows[number]);
  const test = order.slice(n, n + maxTest).map((i) => rows[i] as Rows[number]);
  return { train, test };
}

const cpuSeconds = (start: NodeJS.CpuUsage) => {
  const c = process.cpuUsage(start);
  return (c.user + c.system) / 1e6;
};

async function measure(
  space: SearchSpace,
  model: { featurizer: { encodeAll(s: readonly Subnet[]): never }; regressor: Regressor },
  train: Rows,
  test: Rows,
) {
  const started = process.cpuUsage();
  const report = await model.regressor.fit(
    model.featurizer.encodeAll(train.map((r) => r.subnet)),
    Float64Array.from(train, (r) => r.latencyMs),
  );
  const seconds = cpuSeconds(started);
  const predicted = await model.regressor.predict(
    model.featurizer.encodeAll(test.map((r) => r.subnet)),
  );
  const e = evaluate({ predicted, measured: test.map((r) => r.latencyMs) });
  const auto = report as Partial<AutoFitReport>;
  const chosen = auto.chosen?.map((c) => c.name).join('+');
  // Where auto's time goes: each candidate's cross-validation, in wall seconds.
  const candidates = auto.candidates?.map((c) => ({ name: c.name, s: round3(c.seconds) }));
  void space;
  return { accuracy: e.accuracy, within10: e.within10, cpu_s: seconds, chosen, candidates };
}

const round3 = (x: number) => Math.round(1000 * x) / 1000;

/** Names of the single model kinds (what auto must not lose to). */
const SINGLE = new Set(VARIANTS.filter((v) => v.model !== 'auto').map((v) => v.name));

/**
 * Markdown tables of the medians over seeds: per file every variant at every size, then, for
 * the fewshot grid, an overview of `auto` (or `--rule`'s variant) against the best single kind.
 */
function summary(paths: string, rule = 'auto'): void {
  const lines = paths
    .split(',')
    .flatMap((path) => readFileSync(path, 'utf8').trim().split('\n'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    // One name per shared file however it was given (../shared/data/... or an absolute path).
    .map(
      (l): Record<string, unknown> => ({
        ...l,
        file: String(l.file).replace(/^.*shared\/data\//, '../shared/data/'),
      }),
    );
  const groups = new Map<string, Record<string, unknown>[]>();
  for (const l of lines) {
    const key = JSON.stringify([l.bench, l.file, l.variant, l.n]);
    groups.set(key, [...(groups.get(key) ?? []), l]);
  }
  const byFile = new Map<string, Map<string, Map<number, string>>>();
  const medians = new Map<string, Map<number, Map<string, number>>>();
  const chosen = new Map<string, string[]>();
  for (const [key, g] of groups) {
    const [bench, f, variant, n] = JSON.parse(key) as [string, string, string, number];
    const acc = median(g.map((x) => x.accuracy as number));
    const w10 = median(g.map((x) => x.within10 as number));
    const cell = `${(100 * acc).toFixed(1)} / ${(100 * w10).toFixed(0)}`;
    const fileKey = `${bench} ${f}`;
    const table = byFile.get(fileKey) ?? new Map();
    const row = table.get(variant) ?? new Map();
    row.set(n, `${cell}${g.length < 3 ? ` (${g.length})` : ''}`);
    table.set(variant, row);
    byFile.set(fileKey, table);
    if (bench === 'fewshot') {
      const m = medians.get(f) ?? new Map<number, Map<string, number>>();
      const at = m.get(n) ?? new Map<string, number>();
      at.set(variant, acc);
      m.set(n, at);
      medians.set(f, m);
      if (variant === rule)
        chosen.set(
          `${f} ${n}`,
          g.map((x) => String(x.chosen)),
        );
    }
  }
  for (const [fileKey, table] of byFile) {
    const sizes = [...new Set([...table.values()].flatMap((r) => [...r.keys()]))].sort(
      (a, b) => a - b,
    );
    process.stdout.write(
      `\n${fileKey}: accuracy % / within 10 % (median of seeds)\n\n| model | ${sizes.join(' | ')} |\n|---|${sizes.map(() => '---').join('|')}|\n`,
    );
    for (const [variant, row] of table) {
      process.stdout.write(`| ${variant} | ${sizes.map((n) => row.get(n) ?? '').join(' | ')} |\n`);
    }
  }
  if (medians.size === 0) return;
  if (rule === 'all') {
    compareRules(medians);
    return;
  }
  process.stdout.write(
    `\n${rule} against the best single kind (median accuracy %; delta in points; what ${rule} chose per seed)\n\n| file | rows | ${rule} | best single | delta | chose |\n|---|---|---|---|---|---|\n`,
  );
  let wins = 0;
  let cells = 0;
  for (const [f, bySize] of medians) {
    for (const [n, at] of [...bySize].sort((a, b) => a[0] - b[0])) {
      const mine = at.get(rule);
      const singles = [...at].filter(([v]) => SINGLE.has(v));
      if (mine === undefined || singles.length === 0) continue;
      const [bestName, best] = singles.reduce((a, b) => (b[1] > a[1] ? b : a));
      const delta = 100 * (mine - best);
      cells++;
      if (mine >= best - 5e-5) wins++;
      process.stdout.write(
        `| ${f.replace('../shared/data/', '')} | ${n} | ${(100 * mine).toFixed(1)} | ${(100 * best).toFixed(1)} ${bestName} | ${delta >= 0 ? '+' : ''}${delta.toFixed(2)} | ${(chosen.get(`${f} ${n}`) ?? []).join(', ')} |\n`,
      );
    }
  }
  process.stdout.write(
    `\n${rule} >= the best single kind (to 0.005 points) in ${wins} of ${cells} cells.\n`,
  );
}

/**
 * `--rule all`: every non-single variant (the selection rules of `--rules`) against the best
 * single kind, cell by cell (medians): cells at or above it, the mean delta, the worst cell
 * and the sum of the losses, in points.
 */
function compareRules(medians: Map<string, Map<number, Map<string, number>>>): void {
  const rules = new Set<string>();
  for (const bySize of medians.values())
    for (const at of bySize.values()) for (const v of at.keys()) if (!SINGLE.has(v)) rules.add(v);
  process.stdout.write(
    '\n| selection rule | cells >= best single | mean delta (points) | worst cell | sum of losses |\n|---|---|---|---|---|\n',
  );
  for (const rule of rules) {
    const deltas: number[] = [];
    for (const bySize of medians.values()) {
      for (const at of bySize.values()) {
        const mine = at.get(rule);
        const singles = [...at].filter(([v]) => SINGLE.has(v)).map(([, a]) => a);
        if (mine === undefined || singles.length === 0) continue;
        deltas.push(100 * (mine - Math.max(...singles)));
      }
    }
    const wins = deltas.filter((d) => d >= -5e-3).length;
    const mean = deltas.reduce((a, b) => a + b, 0) / deltas.length;
    const losses = deltas.filter((d) => d < 0).reduce((a, b) => a + b, 0);
    process.stdout.write(
      `| ${rule} | ${wins} of ${deltas.length} | ${mean >= 0 ? '+' : ''}${mean.toFixed(3)} | ${Math.min(...deltas).toFixed(2)} | ${losses.toFixed(2)} |\n`,
    );
  }
}

const sizes = values.sizes.split(',').map(Number);
const seeds = values.seeds.split(',').map(Number);
const files = values.files?.split(',') ?? DEFAULT_FILES;
const maxTest = Number(values.test);
const write = (line: Record<string, unknown>) => {
  appendFileSync(values.out, `${JSON.stringify(line)}\n`);
  process.stdout.write(`${JSON.stringify(line)}\n`);
};

/** One cell of `--oof`: every candidate's out-of-fold and test predictions. */
interface OofCell {
  file: string;
  n: number;
  seed: number;
  names: string[];
  train: number[];
  test: number[];
  oof: number[][];
  predicted: number[][];
  scores: CandidateScore[];
  cv_cpu_s: number;
  refit_cpu_s: number[];
}

const round = (v: Float64Array | readonly number[]) =>
  Array.from(v, (x) => Number(x.toPrecision(9)));

/** Selection rules compared by `--rules` (the first is auto's default). */
const RULES: Record<string, (cv: CrossValidation, y: Float64Array, seed: number) => Float64Array> =
  {
    auto: (cv, y, seed) => selectMembers(cv, y, { seed }).weights,
    // What came before (the rules with preferFirst > 0 pin `independent: []`, as they were).
    'before autocost (2 SE for every candidate, blend 4 SE)': (cv, y, seed) =>
      selectMembers(cv, y, { seed, preferFirst: 2, independent: [] }).weights,
    'previous (best out of fold, blend +0.2)': (cv, y) =>
      selectMembers(cv, y, { preferFirst: 0, blendSe: 0 }).weights,
    'best out of fold, no blend': (cv, y) =>
      selectMembers(cv, y, { preferFirst: 0, blendSe: 0, blendSteps: 0 }).weights,
    'blend whenever better': (cv, y) =>
      selectMembers(cv, y, { preferFirst: 0, blendSe: 0, blendMargin: 0 }).weights,
    'ties within 1 SE averaged': (cv, y) =>
      selectMembers(cv, y, { preferFirst: 0, blendSe: 0, tieAverage: 1 }).weights,
    'bagged blend (25), +0': (cv, y, seed) =>
      selectMembers(cv, y, { preferFirst: 0, blendSe: 0, blendMargin: 0, blendBags: 25, seed })
        .weights,
    'prefer physics 1 SE': (cv, y) =>
      selectMembers(cv, y, { preferFirst: 1, blendSe: 0, independent: [] }).weights,
    'prefer physics 2 SE': (cv, y) =>
      selectMembers(cv, y, { preferFirst: 2, blendSe: 0, independent: [] }).weights,
    'prefer physics 2 SE, blend 2 SE': (cv, y) =>
      selectMembers(cv, y, { preferFirst: 2, blendSe: 2, independent: [] }).weights,
    'prefer physics 3 SE, blend 4 SE': (cv, y) =>
      selectMembers(cv, y, { preferFirst: 3, blendSe: 4, independent: [] }).weights,
    'prefer physics 4 SE, blend 4 SE': (cv, y) =>
      selectMembers(cv, y, { preferFirst: 4, blendSe: 4, independent: [] }).weights,
    // Leads large enough, or from candidates that do not read physics, without the SE test.
    '2 SE; a lead of 0.5 point suffices': (cv, y, seed) =>
      selectMembers(cv, y, { seed, preferFirst: 2, preferFirstMargin: 0.005, independent: [] })
        .weights,
    '2 SE; a lead of 1 point suffices': (cv, y, seed) =>
      selectMembers(cv, y, { seed, preferFirst: 2, preferFirstMargin: 0.01, independent: [] })
        .weights,
    '2 SE; a lead of 2 points suffices': (cv, y, seed) =>
      selectMembers(cv, y, { seed, preferFirst: 2, preferFirstMargin: 0.02, independent: [] })
        .weights,
    '2 SE; ridge-encoding and lut need only lead': (cv, y, seed) =>
      selectMembers(cv, y, { seed, preferFirst: 2 }).weights,
    '3 SE; ridge-encoding and lut need only lead': (cv, y, seed) =>
      selectMembers(cv, y, { seed, preferFirst: 3 }).weights,
    '5 SE; ridge-encoding and lut need only lead': (cv, y, seed) =>
      selectMembers(cv, y, { seed, preferFirst: 5 }).weights,
    '4 SE; only lut needs only lead': (cv, y, seed) =>
      selectMembers(cv, y, { seed, independent: ['lut'] }).weights,
  };

async function oofCell(space: SearchSpace, train: Rows, test: Rows, seed: number, file: string) {
  const { choice, layout } = autoFeatures(space, 'fcc');
  const featurizer = createFeaturizer(space, choice);
  // The options createModel gives auto in the grid (seeded MLP candidates).
  const options: AutoOptions = { layout, seed, mlp: { seed } };
  const x = featurizer.encodeAll(train.map((r) => r.subnet));
  const y = Float64Array.from(train, (r) => r.latencyMs);
  const xTest = featurizer.encodeAll(test.map((r) => r.subnet));
  const started = process.cpuUsage();
  const cv = await crossValidateCandidates(options, x, y);
  const cvSeconds = cpuSeconds(started);
  const predicted: number[][] = [];
  const refit: number[] = [];
  for (const plan of cv.plans) {
    const t0 = process.cpuUsage();
    const model = plan.make(seed);
    const cols = (m: typeof x) => {
      const [a, b] = plan.columns;
      const out = new Float64Array(m.rows * (b - a));
      for (let r = 0; r < m.rows; r++)
        out.set(m.data.subarray(r * m.cols + a, r * m.cols + b), r * (b - a));
      return { rows: m.rows, cols: b - a, data: out };
    };
    await model.fit(cols(x), y);
    refit.push(cpuSeconds(t0));
    predicted.push(round(await model.predict(cols(xTest))));
  }
  const cell: OofCell = {
    file,
    n: train.length,
    seed,
    names: cv.plans.map((p) => p.name),
    train: Array.from(y),
    test: test.map((r) => r.latencyMs),
    oof: cv.predicted.map(round),
    predicted,
    scores: [...cv.scores],
    cv_cpu_s: cvSeconds,
    refit_cpu_s: refit,
  };
  return cell;
}

/**
 * Candidates that are also single kinds (the same model on the same features as `esm fit
 * --model K`), scored from their refits: `ridge-physics` (ridge on physics, robust fit in
 * its CV) and `lut`. The other candidates read other columns than their single kind.
 */
const SAME_AS_SINGLE = new Set(['ridge-physics', 'lut']);

function scoreRules(cell: OofCell): Record<string, unknown>[] {
  const singles = cell.names.flatMap((name, c) => {
    if (!SAME_AS_SINGLE.has(name)) return [];
    const e = evaluate({ predicted: cell.predicted[c] as number[], measured: cell.test });
    const { file, n, seed } = cell;
    const line = { bench: 'fewshot', file, variant: name, n, seed, from: 'oof refit' };
    return [{ ...line, accuracy: e.accuracy, within10: e.within10 }];
  });
  return [...singles, ...scoreSelection(cell)];
}

function scoreSelection(cell: OofCell): Record<string, unknown>[] {
  const y = Float64Array.from(cell.train);
  const cv: CrossValidation = {
    plans: cell.names.map((name) => ({ name }) as never),
    predicted: cell.oof.map((p) => Float64Array.from(p)),
    scores: cell.scores,
  };
  return Object.entries(RULES).map(([rule, select]) => {
    const weights = select(cv, y, cell.seed);
    const predicted = new Float64Array(cell.test.length);
    weights.forEach((w, c) => {
      if (w > 0)
        (cell.predicted[c] as number[]).forEach((v, r) => {
          predicted[r] = (predicted[r] as number) + w * v;
        });
    });
    const e = evaluate({ predicted, measured: cell.test });
    const chosen = cell.names.filter((_, c) => (weights[c] as number) > 0).join('+');
    const cpu =
      cell.cv_cpu_s +
      cell.refit_cpu_s.reduce((s, v, c) => s + ((weights[c] as number) > 0 ? v : 0), 0);
    return {
      bench: 'fewshot',
      file: cell.file,
      variant: rule,
      n: cell.n,
      seed: cell.seed,
      accuracy: e.accuracy,
      within10: e.within10,
      cpu_s: cpu,
      chosen,
    };
  });
}

if (values.summary) {
  summary(values.summary, values.rule);
} else if (values.rules) {
  for (const line of readFileSync(values.rules, 'utf8').trim().split('\n')) {
    for (const result of scoreRules(JSON.parse(line) as OofCell)) write(result);
  }
} else if (values.oof) {
  for (const file of files) {
    const { space, rows } = load(file);
    for (const n of sizes.filter((s) => s < rows.length)) {
      for (const seed of seeds) {
        const { train, test } = split(rows, n, seed, maxTest);
        const cell = await oofCell(space, train, test, seed, file);
        appendFileSync(values.oof, `${JSON.stringify(cell)}\n`);
        process.stdout.write(
          `${file} n=${n} seed=${seed} cv ${cell.cv_cpu_s.toFixed(1)} CPU s, ${cell.names.join(',')}\n`,
        );
      }
    }
  }
} else if (values.cost) {
  // Cost of auto: CPU seconds of fit and the process's peak resident memory.
  for (const file of files) {
    const { space, rows } = load(file);
    for (const n of sizes.filter((s) => s < rows.length)) {
      const { train, test } = split(rows, n, 0, Math.min(maxTest, 1000));
      const result = await measure(
        space,
        createModel(space, { model: 'auto' }) as never,
        train,
        test,
      );
      write({
        bench: 'cost',
        file,
        variant: 'auto',
        n,
        ...result,
        peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      });
    }
  }
} else if (values.encodings) {
  // FCC against the other encodings, with auto restricted to the encoding (no physics or
  // LUT columns beside it) and with the paper's plain MLP, at equal samples.
  const encodings = encodingNames.filter((e) => e !== 'physics');
  for (const file of files) {
    const { space, rows } = load(file);
    for (const n of sizes.filter((s) => s < rows.length)) {
      for (const seed of seeds) {
        const { train, test } = split(rows, n, seed, maxTest);
        for (const encoding of encodings) {
          const featurizer = createFeaturizer(space, { kind: 'encoding', encoding });
          const length = featurizer.features.length;
          const models: [string, Regressor][] = [
            [
              'auto',
              createRegressor('auto', { auto: { layout: { encoding: [0, length] }, seed } }),
            ],
            ['mlp-paper', createRegressor('mlp-paper', { mlp: { seed } })],
          ];
          for (const [name, regressor] of models) {
            const result = await measure(space, { featurizer, regressor } as never, train, test);
            write({ bench: 'encodings', file, variant: `${name} ${encoding}`, n, seed, ...result });
          }
        }
      }
    }
  }
} else {
  const variants = values.kinds
    ? VARIANTS.filter((v) => values.kinds?.split(',').includes(v.name))
    : VARIANTS;
  for (const file of files) {
    const { space, rows } = load(file);
    for (const n of sizes.filter((s) => s < rows.length)) {
      for (const seed of seeds) {
        const { train, test } = split(rows, n, seed, maxTest);
        for (const v of variants) {
          if (v.model.startsWith('mlp') && n < 10) continue;
          const model = createModel(space, {
            model: v.model,
            encoding: v.encoding,
            options: {
              mlp: { seed },
              rf: { seed },
              gbt: { seed },
              auto: { seed },
            },
          });
          const result = await measure(space, model as never, train, test);
          write({ bench: 'fewshot', file, variant: v.name, n, seed, ...result });
        }
      }
    }
  }
}
