/** `esm predict`: latencies of architectures from a trained predictor directory. */
import type { Command } from 'commander';
import {
  outsideDomainOf,
  outsideDomainWarning,
  type TrainingDomain,
} from '../../core/predictor/domain.ts';
import type { Subnet } from '../../core/spaces/types.ts';
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
  // A predictor trained with `esm fit --metric NAME` prints that field instead of latency_ms.
  const key = predictor.json.metric ?? 'latency_ms';
  const out = entries.map((e, i) => {
    const echo = {
      ...(e.id === undefined ? {} : { id: e.id }),
      arch: predictor.space.toNative(e.subnet),
    };
    // The spread is named after the predicted field: std_ms for latency_ms, NAME_std otherwise.
    const stdKey = key === 'latency_ms' ? 'std_ms' : `${key}_std`;
    return `${JSON.stringify({ ...echo, [key]: number(mean[i] as number), [stdKey]: number(std[i] as number) })}\n`;
  });
  process.stdout.write(out.join(''));
  warnOutsideDomain(predictor.json.training.domain, entries);
  await predictor.close();
}

/** One stderr line when archs lie outside what the predictor was trained on. */
function warnOutsideDomain(
  domain: TrainingDomain | undefined,
  entries: readonly { subnet: Subnet }[],
): void {
  if (!domain) return; // predictors written before the domain was recorded
  const outside = outsideDomainOf(
    domain,
    entries.map((e) => e.subnet),
  );
  const warning = outsideDomainWarning(outside, entries.length);
  if (warning) process.stderr.write(`${warning}\n`);
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
