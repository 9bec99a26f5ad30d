/** `esm fit`: train a latency predictor on a measured dataset and test it on the held-out rows. */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { parseDataset } from '../../core/dataset.ts';
import { type EncodingName, encodingNames } from '../../core/encodings/index.ts';
import { ValidationError } from '../../core/errors.ts';
import {
  checkMetricName,
  DEFAULT_METRIC,
  rowsAtLeast,
  rowsForMetric,
  tinyValues,
} from '../../core/metric-rows.ts';
import { headline } from '../../core/metrics.ts';
import { featuresName, type PredictorJson } from '../../core/predictor/artifact.ts';
import { type FitPredictorOptions, fitPredictor } from '../../core/predictor/index.ts';
import { type CorrectionFit, fitTransferPredictor } from '../../core/predictor/transfer.ts';
import { defaultModelKind, type ModelKind, modelKinds } from '../../core/predictor/types.ts';
import { loadPredictor, savePredictor } from '../../local/predictor-store.ts';
import { createProgress } from '../../local/progress.ts';
import { binLabel } from '../../local/report.ts';
import { parse, resolveSpace, runDefaults, writeJson } from '../common.ts';

interface FitFlags {
  space: string;
  data: string;
  encoding: EncodingName;
  model: ModelKind;
  train?: number;
  trainFraction?: number;
  bins: number;
  seed: number;
  ensemble?: number;
  out?: string;
  json?: boolean;
  metric: string;
  dropBelow?: number;
  prior?: string;
}

/**
 * The kind that ended up predicting: the model asked for, or for `auto` what it chose
 * (`ridge-physics`, or a blend such as `ridge-both+gbt`).
 */
function chosenModel(predictor: PredictorJson): string {
  const chosen = predictor.training.chosen;
  if (!chosen || chosen.length === 0) return predictor.training.model ?? predictor.model.kind;
  return chosen.map((c) => c.name).join('+');
}

function describeChoice(predictor: PredictorJson): string {
  const chosen = predictor.training.chosen ?? [];
  return chosen.map((c) => `${c.name} ${(100 * c.weight).toFixed(0)} %`).join(' + ');
}

const percent = (v: number | null) => (v === null ? 'n/a' : `${(100 * v).toFixed(2)} %`);

/**
 * `fitPredictor` for `--prior DIR`: the prior's model and features corrected for this device
 * (core/predictor/transfer.ts); the correction is kept in `fitted` for the report.
 */
function fitWithPrior(dir: string, command: Command) {
  for (const flag of ['model', 'encoding', 'ensemble'] as const) {
    if (command.getOptionValueSource(flag) === 'cli') {
      throw new ValidationError(
        `--${flag}`,
        "cannot be combined with --prior: the prior's model and features are kept and corrected; drop the flag",
      );
    }
  }
  const fitted: { correction?: CorrectionFit } = {};
  const run = async (options: FitPredictorOptions) => {
    const loaded = await loadPredictor(dir);
    await loaded.close();
    const { model: _m, encoding: _e, options: _o, ...rest } = options;
    const result = await fitTransferPredictor({ ...rest, prior: loaded.json, priorDir: dir });
    fitted.correction = result.correction;
    return result;
  };
  return { run, fitted };
}

async function fit(flags: FitFlags, command: Command): Promise<void> {
  const prior = flags.prior ? fitWithPrior(flags.prior, command) : undefined;
  if (flags.train !== undefined && flags.trainFraction !== undefined) {
    throw new ValidationError('--train', 'give either --train N or --train-fraction F, not both');
  }
  checkMetricName(flags.metric);
  const space = await resolveSpace(flags.space);
  const spaceSpec = flags.space.endsWith('.json')
    ? JSON.parse(await readFile(flags.space, 'utf8'))
    : undefined;
  let bytes: Buffer;
  try {
    bytes = await readFile(flags.data);
  } catch (cause) {
    throw new ValidationError('--data', `cannot read ${flags.data}`, { cause });
  }
  const dataset = parseDataset(bytes.toString('utf8'), { space, file: flags.data });
  const target = rowsForMetric(dataset.rows, flags.metric, flags.data);
  let rows = target.rows;
  if (flags.dropBelow !== undefined) {
    const floor = flags.dropBelow;
    const kept = rowsAtLeast(rows, flags.metric, floor, flags.data, '--drop-below');
    process.stderr.write(
      `--drop-below ${floor}: dropped ${rows.length - kept.length} of ${rows.length} rows with ${flags.metric} below it\n`,
    );
    rows = kept;
  } else {
    warnTinyValues(
      rows.map((r) => r.latencyMs),
      flags.metric,
    );
  }
  if (flags.train !== undefined && flags.train > rows.length) {
    const left = flags.dropBelow === undefined ? '' : ' left by --drop-below';
    throw new ValidationError(
      '--train',
      `${flags.train} is more than the ${rows.length} rows of ${flags.data}${left}; give at most ${rows.length} (fewer leaves rows to test on)`,
    );
  }
  const progress = createProgress({ lines: !flags.json });
  let bar: ReturnType<typeof progress.bar> | undefined;
  const result = await (prior?.run ?? fitPredictor)({
    space,
    spaceSpec,
    rows,
    data: { file: flags.data, sha256: createHash('sha256').update(bytes).digest('hex') },
    model: flags.model,
    encoding: flags.encoding,
    train: flags.train,
    trainFraction: flags.trainFraction,
    bins: flags.bins,
    seed: flags.seed,
    options: {
      mlp: {
        ...(flags.ensemble === undefined ? {} : { ensemble: flags.ensemble }),
        onEpoch: (p) => {
          // auto trains many MLPs (one per fold and candidate): its bar shows the current one.
          bar ??= progress.bar(`training ${flags.model}`, p.maxEpochs * p.members);
          bar.update(p.member * p.maxEpochs + p.epoch);
        },
      },
    },
  });
  bar?.finish();
  const predictor =
    flags.metric === DEFAULT_METRIC
      ? result.predictor
      : { ...result.predictor, metric: flags.metric };
  const written = flags.out ? await savePredictor(flags.out, predictor) : [];

  const test = result.test;
  const bins = test?.bins ?? [];
  if (flags.json) {
    writeJson({
      test: test ? headline(test) : null,
      bins: bins.map((b) => ({ lo: b.lo, hi: b.hi, n: b.n, accuracy: b.accuracy })),
      train: { n: result.train.n, seconds: result.train.seconds },
      model: chosenModel(result.predictor),
      ...(prior
        ? { prior: { dir: flags.prior, correction: prior.fitted.correction?.correction } }
        : {}),
    });
    return;
  }
  const t = result.predictor.training;
  const c = prior?.fitted.correction?.correction;
  const lines = c
    ? [
        `corrected the prior ${flags.prior} (fitted on ${result.predictor.model.kind === 'transfer' ? result.predictor.model.prior_source.n_train : '?'} rows of another device) with ${t.n_train} rows of ${flags.data}: ${c.space === 'log' ? 'log-affine' : 'affine'}, slope ${c.slope.toFixed(3)}${c.features ? `, ${c.features.basis} features (penalty ${c.feature_penalty})` : ''}${c.cv_error === null ? '' : `, chosen by CV (error ${percent(c.cv_error)})`}`,
      ]
    : [
        `trained ${flags.model}${flags.model === 'auto' ? ` (chose ${describeChoice(result.predictor)})` : ''}${flags.metric === DEFAULT_METRIC ? '' : ` (${flags.metric})`} on ${t.n_train} rows of ${flags.data}${target.skipped > 0 ? ` (${target.skipped} lines without ${flags.metric} left out)` : ''} (features ${featuresName(result.featurizer.features)}, ${t.seconds.toFixed(1)} s${t.backend ? `, ${t.backend}` : ''}${t.epochs !== undefined ? `, ${t.epochs} epochs` : ''})`,
      ];
  if (test) {
    lines.push(
      `test on ${test.n} held-out rows: accuracy ${percent(test.accuracy)}, within 5 % ${percent(test.within5)}, within 10 % ${percent(test.within10)}, RMSE ${test.rmse_ms.toFixed(3)} ms, Spearman ${test.spearman?.toFixed(4) ?? 'n/a'}`,
      'per depth bin:',
      ...bins.map((b) => `  ${binLabel(b)}: n ${b.n}, accuracy ${percent(b.accuracy)}`),
    );
  } else {
    lines.push('no test rows (every row was used for training)');
  }
  if (flags.out) lines.push(`predictor written to ${flags.out} (${written.join(', ')})`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** Names the rows that swamp the accuracy, and the flag that leaves exactly them out. */
function warnTinyValues(values: readonly number[], metric: string): void {
  const { count, floor } = tinyValues(values);
  if (count === 0) return;
  process.stderr.write(
    `note: ${count} of ${values.length} rows have ${metric} under ${floor}, a tenth of its median; relative errors on them can swamp the accuracy. Leave them out with --drop-below ${floor}, or read the per-bin accuracies\n`,
  );
}

export function register(program: Command): void {
  program
    .command('fit')
    .description('train a latency predictor on measured data and test it on the held-out rows')
    .requiredOption('--space <name|spec.json>', 'search space of the dataset')
    .requiredOption('--data <file>', 'dataset: JSONL {"arch": ..., "latency_ms": ...} or CSV')
    .option(
      '--encoding <name>',
      `encoding: ${encodingNames.join(', ')}`,
      parse.oneOf(encodingNames),
      'fcc',
    )
    .option(
      '--model <kind>',
      `model: ${modelKinds.join(', ')} (auto: chosen by cross-validation, docs/predictor.md)`,
      parse.oneOf(modelKinds),
      defaultModelKind,
    )
    .option('--train <n>', 'number of training rows (the rest are the test set)', parse.int(1))
    .option('--train-fraction <f>', 'share of rows for training (default 0.8)', parse.number(0, 1))
    .option(
      '--bins <b>',
      'depth bins for the per-bin accuracy (the default of esm run)',
      parse.int(1, 1000),
      runDefaults.bins,
    )
    .option('--seed <k>', 'seed of the split and the model', parse.int(0, 2 ** 32 - 1), 0)
    .option('--ensemble <n>', 'MLP members averaged (mlp only)', parse.int(1, 20))
    .option('--out <dir>', 'write the predictor directory (predictor.json + predictor.onnx)')
    .option('--json', 'print {"test", "bins", "train", "model"} as JSON (and "prior" with --prior)')
    .option(
      '--metric <name>',
      'dataset field to predict: latency_ms, peak_memory_mb, energy_mj or any numeric field',
      DEFAULT_METRIC,
    )
    .option(
      '--drop-below <value>',
      'drop rows whose --metric is below VALUE before the split (NAS-Bench-201 cells without an input-output path measure a few tenths of a ms: 0.5)',
      parse.number(0, 1e6),
    )
    .option(
      '--prior <dir>',
      'predictor directory of another device in the same space: learn this device as a correction of it (20 rows can be enough)',
    )
    .action(fit);
}
