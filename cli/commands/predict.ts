/** `esm predict`: latencies of architectures from a trained predictor directory. */
import type { Command } from 'commander';
import { loadPredictor } from '../../local/predictor-store.ts';
import { parse, readArchEntries } from '../common.ts';

interface PredictFlags {
  predictor: string;
  in?: string;
  threads: number;
}

async function predict(flags: PredictFlags): Promise<void> {
  const predictor = await loadPredictor(flags.predictor, { threads: flags.threads });
  const entries = await readArchEntries(predictor.space, flags.in);
  const { mean, std } = await predictor.predictSubnetsWithStd(entries.map((e) => e.subnet));
  // A predictor written before std_ms existed has none: print null rather than guess.
  const number = (v: number) => (Number.isFinite(v) ? Number(v.toPrecision(7)) : null);
  // Each line echoes its input (id when the line had one, and the arch), so outputs can be joined.
  const out = entries.map((e, i) => {
    const echo = {
      ...(e.id === undefined ? {} : { id: e.id }),
      arch: predictor.space.toNative(e.subnet),
    };
    const prediction = { latency_ms: number(mean[i] as number), std_ms: number(std[i] as number) };
    return `${JSON.stringify({ ...echo, ...prediction })}\n`;
  });
  process.stdout.write(out.join(''));
  await predictor.close();
}

export function register(program: Command): void {
  program
    .command('predict')
    .description(
      'predict latencies for archs or dataset lines; prints JSONL {"id"?, "arch", "latency_ms", "std_ms"}',
    )
    .requiredOption('--predictor <dir>', 'predictor directory written by `esm fit --out`')
    .option('--in <file>', 'JSONL of native archs or dataset lines (default: stdin)')
    .option('--threads <n>', 'onnxruntime threads', parse.int(1, 256), 1)
    .action(predict);
}
