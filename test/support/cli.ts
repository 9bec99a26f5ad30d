/** Runs the `esm` CLI as a user would (a child process), collecting its exit code and output. */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const bin = resolve('bin/esm.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `esm ARGS` in the directory `cwd` (a local run writes ./predictors/ there). */
export async function esmIn(cwd: string, ...args: string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run('node', [bin, ...args], { cwd, maxBuffer: 1 << 24 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** `esm ARGS` in the current directory. */
export function esm(...args: string[]): Promise<CliResult> {
  return esmIn(process.cwd(), ...args);
}
