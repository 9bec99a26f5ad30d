/**
 * `esm measure`: build architectures as ONNX models and time them on this machine, one
 * (`--arch`, a readable summary or `--json`) or a batch (`--in archs.jsonl`, dataset JSONL out).
 */
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
import { createProgress } from '../../local/progress.ts';
import {
  checkGraphBounds,
  parse,
  readArchEntries,
  readFileOf,
  resolveSpace,
  writeJson,
} from '../common.ts';

interface MeasureOptions {
  space: string;
  arch?: string;
  in?: string;
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
  if (value.startsWith('@')) text = (await readFileOf(value.slice(1), '--arch')).toString('utf8');
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
    .option('--arch <json|@file|smallest|largest>', 'one architecture in the space’s native JSON')
    .option(
      '--in <archs.jsonl>',
      'measure every arch of this JSONL (native archs or dataset lines, "-" = stdin); prints dataset JSONL',
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
      'wall (elapsed; default: absolute latency) or cpu (CPU time, robust on shared machines; one thread)',
      parse.oneOf(['wall', 'cpu'] as const),
    )
    .option('--json', 'machine-readable output')
    .action(async (options: MeasureOptions) => {
      if ((options.arch === undefined) === (options.in === undefined)) {
        throw new ValidationError(
          '--arch',
          'give one architecture with --arch, or a file of them with --in FILE',
        );
      }
      const space = await resolveSpace(options.space);
      const settings = measurementSettings.parse({
        runs: options.runs,
        warmup: options.warmup,
        threads: options.threads,
        batchSize: options.batchSize,
        clock: options.clock,
      });
      const entries = options.in
        ? await readArchEntries(space, options.in, '--in')
        : [{ subnet: space.parse(await readArch(space, options.arch as string)), line: 0 }];
      // Every arch is validated before the first is timed, so a bad line costs no measurement.
      const graphs = entries.map((e) => space.layerGraph(e.subnet));
      checkGraphBounds(graphs, {
        field: options.in ? '--in' : '--arch',
        batchSize: settings.batchSize,
        batchFlag: '--batch-size',
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
      const clock = settings.clock ?? 'wall';
      const device = deviceFacts('local', { executionProvider });
      if (options.in) {
        // A batch prints dataset lines (`esm fit --data` reads them) as each arch is measured.
        const bar = createProgress().bar('measuring', graphs.length);
        for (const [i, graph] of graphs.entries()) {
          const entry = entries[i] as (typeof entries)[number];
          const { stats } = await measureGraph(graph, { ...settings, seed, executionProvider });
          const line = {
            ...(entry.id === undefined ? {} : { id: entry.id }),
            arch: space.toNative(entry.subnet),
            latency_ms: stats.median_ms,
            std_ms: stats.std_ms,
            runs: stats.runs,
            clock,
            space: space.name,
            device: `${device.cpu} (${executionProvider}, onnxruntime ${device.onnxruntime}, ${settings.threads} thread${settings.threads > 1 ? 's' : ''})`,
            measured_at: new Date().toISOString(),
          };
          process.stdout.write(`${JSON.stringify(line)}\n`);
          bar.update(i + 1);
        }
        bar.finish();
        return;
      }
      const graph = graphs[0] as (typeof graphs)[number];
      const arch = space.toNative((entries[0] as (typeof entries)[number]).subnet);
      const result = await measureGraph(graph, { ...settings, seed, executionProvider });
      if (options.json) {
        return writeJson({
          space: space.name,
          arch,
          settings,
          pinned,
          realtime,
          latency_ms: result.stats.median_ms,
          clock,
          ...result,
          device,
        });
      }
      const s = result.stats;
      process.stdout.write(
        [
          `${space.name} at ${graph.resolution}x${graph.resolution}, batch ${settings.batchSize}, ${settings.threads} thread(s), ${executionProvider}, ${clock} clock${pinned ? `, pinned to ${options.pin}` : ''}${realtime ? ', real-time priority' : ''}`,
          `  median ${ms(s.median_ms)}  mean ${ms(s.mean_ms)}  std ${ms(s.std_ms)}  min ${ms(s.min_ms)}  max ${ms(s.max_ms)}`,
          `  runs kept ${s.runs} of ${settings.runs} (outlier rule: median + 3 scaled MADs), warm-up ${settings.warmup}`,
          `  overhead (not timed): build ${result.overheadMs.build.toFixed(1)} ms, session ${result.overheadMs.session.toFixed(1)} ms`,
          `  device: ${device.cpu}, ${device.cores} cores, onnxruntime ${device.onnxruntime}`,
          `  note: ${clockNote(clock)}`,
          '',
        ].join('\n'),
      );
    });
}

/**
 * Why this number differs from a local `esm run` predictor's: the embedded device times CPU
 * time interleaved with a reference model, and reports reference-calibrated milliseconds.
 */
function clockNote(clock: 'wall' | 'cpu'): string {
  return clock === 'wall'
    ? 'absolute wall-clock ms; a local `esm run` predictor predicts reference-calibrated CPU ms (docs/measurement.md), so expect it to differ'
    : 'CPU ms of this process; a local `esm run` also interleaves a reference model and predicts reference-calibrated ms (docs/measurement.md)';
}
