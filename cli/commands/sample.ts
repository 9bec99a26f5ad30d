/** `esm sample`: print sampled architectures of a space as JSONL of native archs. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { DatasetFormatError, EsmError, ValidationError } from '../../core/errors.ts';
import { createRng } from '../../core/rng.ts';
import {
  depthBins,
  type SamplingStrategy,
  sampleArchitectures,
  samplingStrategies,
} from '../../core/sampling.ts';
import { subnetKey } from '../../core/spaces/subnet.ts';
import type { SearchSpace } from '../../core/spaces/types.ts';
import { jsonLines, parse, resolveSpace } from '../common.ts';

interface SampleFlags {
  space: string;
  n: number;
  sampling: SamplingStrategy;
  bins: number;
  seed: number;
  exclude?: string;
}

/**
 * Keys of the archs in a JSONL file: dataset lines (`{"arch": ..., "latency_ms": ...}`) or
 * bare native archs (the output of `esm sample`).
 */
async function excludedKeys(space: SearchSpace, file: string): Promise<Set<string>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new ValidationError('--exclude', `cannot read ${file}`, { cause });
  }
  const keys = new Set<string>();
  for (const { line, text: raw } of jsonLines(text)) {
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (cause) {
      throw new DatasetFormatError(file, line, 'not valid JSON', { cause });
    }
    const arch =
      typeof json === 'object' && json !== null && 'arch' in json
        ? (json as { arch: unknown }).arch
        : json;
    try {
      keys.add(subnetKey(space.parse(arch)));
    } catch (cause) {
      if (!(cause instanceof EsmError)) throw cause;
      throw new DatasetFormatError(file, line, cause.message, { cause });
    }
  }
  return keys;
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
    .option(
      '--exclude <file.jsonl>',
      'never output archs of this file (a dataset or earlier `esm sample` output)',
    )
    .action(async (flags: SampleFlags) => {
      const space = await resolveSpace(flags.space);
      const subnets = sampleArchitectures(space, {
        n: flags.n,
        strategy: flags.sampling,
        bins: depthBins(space, flags.bins),
        rng: createRng(flags.seed),
        exclude: flags.exclude ? await excludedKeys(space, flags.exclude) : undefined,
      });
      const lines = subnets.map((s) => JSON.stringify(space.toNative(s)));
      process.stdout.write(lines.length ? `${lines.join('\n')}\n` : '');
    });
}
