/**
 * What scoring a replay on the rest of its pool costs `esm run` (local/pool-truth.ts): CPU
 * seconds of `scorePoolTruth` on finished replay run directories, the first call in a fresh
 * process each time (as `esm run` pays it: dataset parse, encoders, ONNX session, predict).
 *
 *   npx tsx scripts/bench/pool-truth.ts [--repeats 5] RUN_DIR...
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { getSpace } from '../../core/spaces/index.ts';
import { scorePoolTruth } from '../../local/pool-truth.ts';
import { RunStore } from '../../local/run-store.ts';
import { median } from './stats.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    repeats: { type: 'string', default: '5' },
    child: { type: 'boolean', default: false },
  },
});

if (values.child) {
  // One cold call, its CPU seconds and row count as JSON on stdout.
  const store = RunStore.open(positionals[0] as string);
  const space = getSpace(store.state.params.space);
  const before = process.cpuUsage();
  const truth = await scorePoolTruth(store, space);
  const cpu = process.cpuUsage(before);
  process.stdout.write(JSON.stringify({ n: truth?.n ?? 0, cpu: (cpu.user + cpu.system) / 1e6 }));
} else {
  const repeats = Number(values.repeats);
  process.stdout.write(
    '| run directory | space | rows scored | CPU s per scoring (median) | runs |\n',
  );
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
