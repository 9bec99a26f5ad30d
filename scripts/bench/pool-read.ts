/**
 * What reading a replay's pool costs where this code reads it: the Train task every
 * iteration (`loadPool` and `poolLeft`, to stop when the pool is used up) and `POST /runs`
 * once (`readPoolRows` and `poolFloor`, to check the pool before the execution starts). CPU
 * seconds of this process per read, median of `--repeats` after one warm-up read.
 *
 *   npx tsx scripts/bench/pool-read.ts [--repeats 5] SPACE:FILE...
 *   e.g. mobilenetv3:../shared/data/help-ofa-mbv3/2080ti_64.jsonl nasbench201:../shared/data/nb201/pixel3.jsonl
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { poolFloor } from '../../core/metric-rows.ts';
import type { DatasetStore } from '../../core/ports.ts';
import { poolLeft } from '../../core/sampling.ts';
import { runParams } from '../../core/schemas/run.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { loadPool, readPoolRows } from '../../lambdas/workflow/run-context.ts';
import { median } from './stats.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { repeats: { type: 'string', default: '5' } },
});
const repeats = Number(values.repeats);

/** Median CPU seconds of `read` over `repeats` calls, after one warm-up call. */
async function cpuSeconds(read: () => Promise<unknown>): Promise<number> {
  await read();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = process.cpuUsage();
    await read();
    const used = process.cpuUsage(start);
    times.push((used.user + used.system) / 1e6);
  }
  return median(times);
}

console.log(
  '| dataset | rows | Train task: loadPool + poolLeft (s CPU) | POST /runs: readPoolRows + poolFloor (s CPU) |',
);
console.log('| --- | --- | --- | --- |');
for (const arg of positionals) {
  const [spaceName, file] = arg.split(/:(.*)/s) as [string, string];
  const space = getSpace(spaceName);
  const bytes = new Uint8Array(readFileSync(file));
  const store: DatasetStore = { get: async () => bytes, put: async () => {}, list: async () => [] };
  const params = runParams.parse({ space: spaceName, device: `dataset:${file}` });
  let rows = 0;
  const train = await cpuSeconds(async () => {
    const pool = (await loadPool(store, params, space)) ?? [];
    rows = poolLeft(pool);
  });
  const api = await cpuSeconds(async () =>
    poolFloor(
      await readPoolRows(store, file, space),
      { file, metric: params.metric, nInit: params.nInit },
      { metric: 'metric', dropBelow: 'dropBelow', nInit: 'nInit' },
    ),
  );
  console.log(`| ${file} | ${rows} | ${train.toFixed(3)} | ${api.toFixed(3)} |`);
}
