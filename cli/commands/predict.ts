/** `esm predict`: latencies of architectures from a trained predictor directory. */
import type { Command } from 'commander';
import { DatasetFormatError, EsmError } from '../../core/errors.ts';
import { loadPredictor } from '../../local/predictor-store.ts';
import { jsonLines, parse, readInput } from '../common.ts';

interface PredictFlags {
  predictor: string;
  in?: string;
  threads: number;
}

async function predict(flags: PredictFlags): Promise<void> {
  const predictor = await loadPredictor(flags.predictor, { threads: flags.threads });
  const file = flags.in && flags.in !== '-' ? flags.in : '<stdin>';
  const subnets = jsonLines(await readInput(flags.in)).map(({ line, text }) => {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (cause) {
      throw new DatasetFormatError(
        file,
        line,
        'not valid JSON; expected one arch (or dataset line) per line',
        { cause },
      );
    }
    // Dataset lines carry the arch under "arch"; bare archs (esm sample output) are the line.
    const arch =
      typeof json === 'object' && json !== null && 'arch' in json
        ? (json as { arch: unknown }).arch
        : json;
    try {
      return predictor.space.parse(arch);
    } catch (cause) {
      if (!(cause instanceof EsmError)) throw cause;
      throw new DatasetFormatError(file, line, cause.message, { cause });
    }
  });
  const latencies = await predictor.predictSubnets(subnets);
  const out = Array.from(latencies, (v) => `{"latency_ms":${Number(v.toPrecision(7))}}\n`);
  process.stdout.write(out.join(''));
  await predictor.close();
}

export function register(program: Command): void {
  program
    .command('predict')
    .description('predict latencies (JSONL {"latency_ms": ...}) for archs or dataset lines')
    .requiredOption('--predictor <dir>', 'predictor directory written by `esm fit --out`')
    .option('--in <file>', 'JSONL of native archs or dataset lines (default: stdin)')
    .option('--threads <n>', 'onnxruntime threads', parse.int(1, 256), 1)
    .action(predict);
}
