/**
 * The measured datasets of the few-shot benchmarks (fewshot.ts, physics-fit.ts): which space a
 * file is, and its rows as the benchmarks use them.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { parseDataset } from '../../core/dataset.ts';
import { getSpace } from '../../core/spaces/index.ts';
import type { SearchSpace } from '../../core/spaces/types.ts';

/**
 * The space of a file, from its folder (`help-ofa-mbv3` mobilenetv3, `help-fbnet` fbnet,
 * `nb201` nasbench201) or its name (`data/<space>-*.jsonl`).
 */
export function spaceOfFile(file: string): SearchSpace {
  const folder = basename(dirname(file));
  if (folder === 'help-ofa-mbv3') return getSpace('mobilenetv3');
  if (folder === 'help-fbnet') return getSpace('fbnet');
  if (folder === 'nb201') return getSpace('nasbench201');
  return getSpace(basename(file).split('-')[0] as string);
}

/**
 * The space and rows of a file. NAS-Bench-201 rows under 0.5 ms (cells without an
 * input-output path) are dropped, as ../shared/data/README.md asks.
 */
export function loadBenchFile(file: string) {
  const space = spaceOfFile(file);
  const dataset = parseDataset(readFileSync(file, 'utf8'), { space, file });
  const rows =
    space.name === 'nasbench201' ? dataset.rows.filter((r) => r.latencyMs >= 0.5) : dataset.rows;
  return { space, rows };
}
