/** `esm report DIR`: regenerate a run's report.html from its records. */
import type { Command } from 'commander';
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
      const file = writeReport(RunStore.open(dir));
      process.stdout.write(`${file}\n`);
    });
}
