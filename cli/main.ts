/**
 * `esm`: the command line of ESM Platform. Each command lives in cli/commands/ and registers
 * itself on the program.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { reportError } from './common.ts';

const { version } = JSON.parse(
  readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
) as { version: string };

const program = new Command('esm')
  .description('Latency predictors for hardware-aware NAS with the ESM train-evaluate-extend loop')
  .version(`esm ${version} (node ${process.version})`, '-V, --version')
  .showHelpAfterError('(run with --help for usage)')
  // A usage error commander finds (a bad flag value, an unknown option) exits 2 like every
  // other user error; help and --version still exit 0. Subcommands inherit the callback.
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));

const commands = await Promise.all([
  import('./commands/spaces.ts'),
  import('./commands/encode.ts'),
  import('./commands/fit.ts'),
  import('./commands/predict.ts'),
  import('./commands/sample.ts'),
  import('./commands/measure.ts'),
  import('./commands/run.ts'),
  import('./commands/report.ts'),
  import('./commands/cloud.ts'),
]);
for (const command of commands) command.register(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  reportError(error);
}
