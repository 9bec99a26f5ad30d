/** `esm report DIR`: regenerate a run's report.html from its records. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ValidationError } from '../../core/errors.ts';
import { writeReport } from '../../local/report.ts';
import { RunStore } from '../../local/run-store.ts';

export function register(program: Command): void {
  program
    .command('report')
    .description(
      'write report.html of a run directory again (charts of accuracy, samples and errors)',
    )
    .argument('<dir>', 'run directory of `esm run`')
    .action((dir: string) => {
      // Checked here so the error names this command's argument, not `esm run --resume`.
      if (!existsSync(join(dir, 'state.json'))) {
        throw new ValidationError(
          'DIR',
          `${dir} is not a run directory (no state.json); pass the --out directory of an \`esm run\``,
        );
      }
      const file = writeReport(RunStore.open(dir));
      process.stdout.write(`${file}\n`);
    });
}
