/** `esm sample`: print sampled architectures of a space as JSONL of native archs. */
import type { Command } from 'commander';
import { createRng } from '../../core/rng.ts';
import {
  depthBins,
  type SamplingStrategy,
  sampleArchitectures,
  samplingStrategies,
} from '../../core/sampling.ts';
import { parse, resolveSpace } from '../common.ts';

interface SampleFlags {
  space: string;
  n: number;
  sampling: SamplingStrategy;
  bins: number;
  seed: number;
}

export function register(program: Command): void {
  program
    .command('sample')
    .description('sample distinct architectures of a space; prints one native arch JSON per line')
    .requiredOption('--space <name|spec.json>', 'space name (see `esm spaces`) or a spec file')
    .requiredOption('--n <count>', 'number of architectures', parse.int(1, 10_000_000))
    .option(
      '--sampling <strategy>',
      'random: every choice uniform; balanced: equal counts per depth bin',
      parse.oneOf(samplingStrategies),
      'random' as SamplingStrategy,
    )
    .option(
      '--bins <count>',
      'depth bins for balanced sampling (capped at the number of distinct depths)',
      parse.int(1, 1000),
      10,
    )
    .option('--seed <int>', 'random seed', parse.int(0, 2 ** 32 - 1), 0)
    .action(async (flags: SampleFlags) => {
      const space = await resolveSpace(flags.space);
      const subnets = sampleArchitectures(space, {
        n: flags.n,
        strategy: flags.sampling,
        bins: depthBins(space, flags.bins),
        rng: createRng(flags.seed),
      });
      const lines = subnets.map((s) => JSON.stringify(space.toNative(s)));
      process.stdout.write(lines.length ? `${lines.join('\n')}\n` : '');
    });
}
