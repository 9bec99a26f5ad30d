import type { Command } from 'commander';
import { builtInSpaces } from '../../core/spaces/index.ts';
import { cardinality, depthRange, log10BigInt } from '../../core/spaces/subnet.ts';
import type { SearchSpace } from '../../core/spaces/types.ts';
import { resolveSpace, writeJson } from '../common.ts';

function describe(space: SearchSpace) {
  const count = cardinality(space);
  return {
    name: space.name,
    description: space.description,
    cardinality: count.toString(),
    log10Cardinality: Number(log10BigInt(count).toFixed(3)),
    depth: depthRange(space),
    resolutions: space.resolutions,
    blockFeatures: [...space.blockChoiceNames, ...space.unitChoiceNames],
    globalChoices: Object.fromEntries(space.globalChoices.map((c) => [c.name, c.values])),
    units: space.units.map((u) => ({
      name: u.name,
      depth: [u.minDepth, u.maxDepth],
      choices: Object.fromEntries(
        [...u.blockChoices, ...u.unitChoices].map((c) => [c.name, c.values]),
      ),
    })),
  };
}

function globals(choices: Record<string, readonly number[]>): string {
  const names = Object.keys(choices);
  return names.length ? `, global choices: ${names.join(', ')}` : '';
}

export function register(program: Command): void {
  program
    .command('spaces')
    .description('list the search spaces with their cardinality, depth range and block features')
    .option('--space <name|spec.json>', 'describe only this space (a user spec file works too)')
    .option('--json', 'machine-readable output')
    .action(async (options: { space?: string; json?: boolean }) => {
      const spaces = options.space
        ? [await resolveSpace(options.space)]
        : [...builtInSpaces.values()];
      const described = spaces.map(describe);
      if (options.json) return writeJson(described);
      for (const s of described) {
        process.stdout.write(
          `${s.name}\n  ${s.description}\n  cardinality ${s.cardinality} (10^${s.log10Cardinality})\n  depth ${s.depth.min}..${s.depth.max}, block features: ${s.blockFeatures.join(', ')}${globals(s.globalChoices)}\n`,
        );
      }
    });
}
