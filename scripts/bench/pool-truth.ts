/**
 * What scoring a replay on the rest of its pool adds to the Train task that stops the loop
 * (core/pool-truth.ts): CPU seconds of reading the pool (lambdas/workflow/run-context.ts
 * `loadPool`) and `scorePoolTruth` with the run's final predictor, on finished replay run
 * directories. Each scoring runs in a fresh process, as the last Train task of a run pays it
 * (the pool parsed and the encoders built once).
 *
 *   npx tsx scripts/bench/pool-truth.ts [--repeats 5] RUN_DIR...
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { scorePoolTruth } from '../../core/pool-truth.ts';
import { parsePredictorJson } from '../../core/predictor/artifact.ts';
import {
  createFeaturizer,
  featureChoiceOf,
  regressorFromJson,
} from '../../core/predictor/index.ts';
import { runBins } from '../../core/sampling.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { loadPool, undrawnRows } from '../../lambdas/workflow/run-context.ts';
import { createRunDirStore } from '../../local/file-store.ts';
import { RunStore } from '../../local/run-store.ts';
import { median } from './stats.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    repeats: { type: 'string', default: '5' },
    child: { type: 'boolean', default: false },
  },
});

/** One cold scoring of the run in `dir`: rows scored and CPU seconds, as JSON on stdout. */
async function scoreOnce(dir: string): Promise<void> {
  const run = RunStore.open(dir);
  const params = run.state.params;
  const space = getSpace(params.space);
  const json = parsePredictorJson(
    JSON.parse(readFileSync(join(run.path('predictor'), 'predictor.json'), 'utf8')),
  );
  const last = run.iterations().at(-1);
  if (!last) throw new Error(`${dir} has no iteration`);
  const drawn = new Set(run.state.samples.map((s) => s.key));
  const before = process.cpuUsage();
  const pool = (await loadPool(createRunDirStore(dir), params, space)) ?? [];
  const truth = await scorePoolTruth({
    featurizer: createFeaturizer(space, featureChoiceOf(json.features)),
    regressor: regressorFromJson(json.model),
    rows: undrawnRows(pool, drawn),
    bins: runBins(space, params),
    judged: last.bins,
    params,
  });
  const cpu = process.cpuUsage(before);
  process.stdout.write(JSON.stringify({ n: truth?.n ?? 0, cpu: (cpu.user + cpu.system) / 1e6 }));
}

if (values.child) {
  await scoreOnce(positionals[0] as string);
} else {
  const repeats = Number(values.repeats);
  process.stdout.write('| run directory | space | rows scored | CPU s (median) | runs |\n');
  process.stdout.write('|---|---|---|---|---|\n');
  for (const dir of positionals) {
    const results = Array.from({ length: repeats }, () => {
      const out = execFileSync(
        process.execPath,
        ['--import', 'tsx', import.meta.filename, '--child', dir],
        { encoding: 'utf8' },
      );
      return JSON.parse(out) as { n: number; cpu: number };
    });
    const cpus = results.map((r) => r.cpu);
    process.stdout.write(
      `| ${dir} | ${RunStore.open(dir).state.params.space} | ${results[0]?.n} | ${median(cpus).toFixed(2)} | ${cpus.map((c) => c.toFixed(2)).join(', ')} |\n`,
    );
  }
}
