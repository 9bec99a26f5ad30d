/** `esm sample`: print sampled architectures of a space as JSONL of native archs. */
import type { Command } from 'commander';
import { DatasetFormatError, EsmError, ValidationError } from '../../core/errors.ts';
import { createRng } from '../../core/rng.ts';
import {
  depthBins,
  poolItem,
  poolLeft,
  type SamplingStrategy,
  sampleArchitectures,
  samplePool,
  samplingStrategies,
} from '../../core/sampling.ts';
import { subnetKey } from '../../core/spaces/subnet.ts';
import type { SearchSpace, Subnet } from '../../core/spaces/types.ts';
import { jsonLines, parse, readFileOf, resolveSpace, runDefaults } from '../common.ts';

interface SampleFlags {
  space: string;
  n: number;
  sampling: SamplingStrategy;
  bins: number;
  seed: number;
  exclude?: string;
  from?: string;
  format: string;
}

interface ArchLine {
  readonly subnet: Subnet;
  /** The line as written in the file. */
  readonly text: string;
}

/**
 * The archs of a JSONL file: dataset lines (`{"arch": ..., "latency_ms": ...}`) or bare
 * native archs (the output of `esm sample`); errors name the file and line.
 */
async function readArchLines(space: SearchSpace, file: string, flag: string): Promise<ArchLine[]> {
  const text = (await readFileOf(file, flag)).toString('utf8');
  return jsonLines(text).map(({ line, text: raw }) => {
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
      return { subnet: space.parse(arch), text: raw };
    } catch (cause) {
      if (!(cause instanceof EsmError)) throw cause;
      throw new DatasetFormatError(file, line, cause.message, { cause });
    }
  });
}

export function register(program: Command): void {
  program
    .command('sample')
    .description(
      'sample distinct architectures of a space (or lines of a dataset); prints one JSON per line',
    )
    .requiredOption('--space <name|spec.json>', 'space name (see `esm spaces`) or a spec file')
    .requiredOption('--n <count>', 'number of architectures', parse.int(1, 10_000_000))
    .option(
      '--sampling <strategy>',
      'random: every choice uniform; balanced: equal counts per depth bin (the default of esm run)',
      parse.oneOf(samplingStrategies),
      runDefaults.sampling,
    )
    .option(
      '--bins <count>',
      'depth bins for balanced sampling, capped at the number of distinct depths (the default of esm run)',
      parse.int(1, 1000),
      runDefaults.bins,
    )
    .option('--seed <int>', 'random seed', parse.int(0, 2 ** 32 - 1), 0)
    .option(
      '--exclude <file.jsonl>',
      'never output archs of this file (a dataset or earlier `esm sample` output)',
    )
    .option(
      '--from <file.jsonl>',
      'sample lines of this dataset instead of the space (replay); prints them as written',
    )
    .option(
      '--format <form>',
      'arch JSON form: native, or one the space also reads (mobilenetv3: ofa-encoder with "image_size", ofa-manager with "r": [R]; resnet50: ofa-encoder)',
      'native',
    )
    .action(async (flags: SampleFlags) => {
      const space = await resolveSpace(flags.space);
      const forms = space.nativeForms ?? {};
      const write = flags.format === 'native' ? space.toNative : forms[flags.format];
      if (!write) {
        throw new ValidationError(
          '--format',
          `space ${space.name} has no arch form "${flags.format}"; use ${['native', ...Object.keys(forms)].join(', ')}`,
        );
      }
      const rng = createRng(flags.seed);
      const bins = depthBins(space, flags.bins);
      const exclude = flags.exclude
        ? new Set(
            (await readArchLines(space, flags.exclude, '--exclude')).map((l) =>
              subnetKey(l.subnet),
            ),
          )
        : undefined;
      let lines: string[];
      if (flags.from) {
        if (flags.format !== 'native') {
          throw new ValidationError(
            '--format',
            '--from prints dataset lines as written; drop --format',
          );
        }
        const pool = (await readArchLines(space, flags.from, '--from')).map((l) =>
          poolItem(l.subnet, { text: l.text }),
        );
        const left = poolLeft(pool, exclude);
        if (left < flags.n) {
          const unused = exclude ? ' not in --exclude' : '';
          throw new ValidationError(
            '--n',
            `${flags.n} is more than the ${left} distinct architectures of ${flags.from}${unused}; give at most ${left}`,
          );
        }
        const options = { n: flags.n, strategy: flags.sampling, bins, rng, exclude };
        lines = samplePool(pool, options).map((item) => item.text);
      } else {
        const options = { n: flags.n, strategy: flags.sampling, bins, rng, exclude };
        lines = sampleArchitectures(space, options).map((s) => JSON.stringify(write(s)));
      }
      process.stdout.write(lines.length ? `${lines.join('\n')}\n` : '');
    });
}
