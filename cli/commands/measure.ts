import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { ValidationError } from '../../core/errors.ts';
import { measurementSettings } from '../../core/schemas/protocol.ts';
import type { SearchSpace } from '../../core/spaces/types.ts';
import { deviceFacts } from '../../device-client/device-facts.ts';
import {
  type ExecutionProvider,
  measureGraph,
  pinToCpus,
  useRealtimePriority,
} from '../../device-client/measure.ts';
import { extremeArchs } from '../../device-client/references.ts';
import { parse, resolveSpace, writeJson } from '../common.ts';

interface MeasureOptions {
  space: string;
  arch: string;
  runs?: number;
  warmup?: number;
  threads?: number;
  batchSize?: number;
  seed: number;
  pin?: string;
  realtime?: boolean;
  executionProvider: ExecutionProvider;
  clock?: 'wall' | 'cpu';
  json?: boolean;
}

/** `--arch` is inline JSON, `@file.json`, or `smallest`/`largest` for the built-in spaces. */
async function readArch(space: SearchSpace, value: string): Promise<unknown> {
  if (value === 'smallest' || value === 'largest') {
    const archs = extremeArchs[space.name];
    if (!archs) {
      throw new ValidationError(
        '--arch',
        `"${value}" is known only for the built-in spaces; pass JSON`,
      );
    }
    return archs[value];
  }
  let text = value;
  if (value.startsWith('@')) {
    try {
      text = await readFile(value.slice(1), 'utf8');
    } catch (cause) {
      throw new ValidationError('--arch', `cannot read ${value.slice(1)}`, { cause });
    }
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new ValidationError('--arch', 'expected JSON, @file.json, smallest or largest', {
      cause,
    });
  }
}

const ms = (x: number) => `${x.toFixed(3)} ms`;

export function register(program: Command): void {
  program
    .command('measure')
    .description('build one architecture as an ONNX model and time it on this machine')
    .requiredOption('--space <name|spec.json>', 'search space (a user spec file works too)')
    .requiredOption(
      '--arch <json|@file|smallest|largest>',
      'architecture in the space’s native JSON',
    )
    .option('--runs <n>', 'timed runs (default 30)', parse.int(1, 10_000))
    .option('--warmup <n>', 'untimed runs first (default 10)', parse.int(0, 1000))
    .option('--threads <n>', 'onnxruntime intra-op threads (default 1)', parse.int(1, 256))
    .option('--batch-size <n>', 'images per inference (default 1)', parse.int(1, 1024))
    .option('--seed <n>', 'seed of the random weights', parse.int(0), 0)
    .option('--pin <cpus>', 'pin the process to these CPUs with taskset, e.g. 1 or 0-3')
    .option(
      '--realtime',
      'run at real-time priority (chrt -f; needs root or CAP_SYS_NICE) so no process preempts a run',
    )
    .option(
      '--execution-provider <ep>',
      'cpu, or cuda with the GPU build of onnxruntime-node',
      parse.oneOf(['cpu', 'cuda'] as const),
      'cpu',
    )
    .option(
      '--clock <clock>',
      'wall (elapsed; default) or cpu (CPU time, robust on shared machines; one thread)',
      parse.oneOf(['wall', 'cpu'] as const),
    )
    .option('--json', 'machine-readable output')
    .action(async (options: MeasureOptions) => {
      const space = await resolveSpace(options.space);
      const arch = await readArch(space, options.arch);
      const graph = space.layerGraph(space.parse(arch));
      const settings = measurementSettings.parse({
        runs: options.runs,
        warmup: options.warmup,
        threads: options.threads,
        batchSize: options.batchSize,
        clock: options.clock,
      });
      const pinned = options.pin ? pinToCpus(options.pin) : false;
      if (options.pin && !pinned) {
        process.stderr.write(
          `warning: could not pin to CPUs ${options.pin} (taskset missing or refused)\n`,
        );
      }
      const realtime = options.realtime ? useRealtimePriority() : false;
      if (options.realtime && !realtime) {
        process.stderr.write(
          'warning: could not set real-time priority (needs root or CAP_SYS_NICE)\n',
        );
      }
      const { executionProvider, seed } = options;
      const result = await measureGraph(graph, { ...settings, seed, executionProvider });
      const device = deviceFacts('local', { executionProvider });
      if (options.json) {
        return writeJson({
          space: space.name,
          arch,
          settings,
          pinned,
          realtime,
          ...result,
          device,
        });
      }
      const s = result.stats;
      process.stdout.write(
        [
          `${space.name} at ${graph.resolution}x${graph.resolution}, batch ${settings.batchSize}, ${settings.threads} thread(s), ${executionProvider}, ${settings.clock ?? 'wall'} clock${pinned ? `, pinned to ${options.pin}` : ''}${realtime ? ', real-time priority' : ''}`,
          `  median ${ms(s.median_ms)}  mean ${ms(s.mean_ms)}  std ${ms(s.std_ms)}  min ${ms(s.min_ms)}  max ${ms(s.max_ms)}`,
          `  runs kept ${s.runs} of ${settings.runs} (outlier rule: median + 3 scaled MADs), warm-up ${settings.warmup}`,
          `  overhead (not timed): build ${result.overheadMs.build.toFixed(1)} ms, session ${result.overheadMs.session.toFixed(1)} ms`,
          `  device: ${device.cpu}, ${device.cores} cores, onnxruntime ${device.onnxruntime}`,
          '',
        ].join('\n'),
      );
    });
}
