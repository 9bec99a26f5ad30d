/** `esm predict`: latencies of architectures from a trained predictor directory. */
import type { Command } from 'commander';
import { loadPredictor } from '../../local/predictor-store.ts';
import { parse, readArchLines } from '../common.ts';

interface PredictFlags {
  predictor: string;
  in?: string;
  threads: number;
}

async function predict(flags: PredictFlags): Promise<void> {
  const predictor = await loadPredictor(flags.predictor, { threads: flags.threads });
  const subnets = await readArchLines(predictor.space, flags.in);
  const { mean, std } = await predictor.predictSubnetsWithStd(subnets);
  // A predictor written before std_ms existed has none: print null rather than guess.
  const number = (v: number) => (Number.isFinite(v) ? String(Number(v.toPrecision(7))) : 'null');
  const out = Array.from(
    mean,
    (v, i) => `{"latency_ms":${number(v)},"std_ms":${number(std[i] as number)}}\n`,
  );
  process.stdout.write(out.join(''));
  await predictor.close();
}

export function register(program: Command): void {
  program
    .command('predict')
    .description(
      'predict latencies (JSONL {"latency_ms": ..., "std_ms": ...}) for archs or dataset lines',
    )
    .requiredOption('--predictor <dir>', 'predictor directory written by `esm fit --out`')
    .option('--in <file>', 'JSONL of native archs or dataset lines (default: stdin)')
    .option('--threads <n>', 'onnxruntime threads', parse.int(1, 256), 1)
    .action(predict);
}
