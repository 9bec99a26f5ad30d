/** Helpers shared by the CLI commands: input, output, space resolution and error reporting. */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from 'commander';
import { DatasetFormatError, EsmError, UnknownSpaceError } from '../core/errors.ts';
import { getSpace } from '../core/spaces/index.ts';
import type { SearchSpace, Subnet } from '../core/spaces/types.ts';

/** A space name (`mobilenetv3`) or a path to a user-defined JSON spec (`my-space.json`). */
export async function resolveSpace(nameOrPath: string): Promise<SearchSpace> {
  if (!nameOrPath.endsWith('.json')) return getSpace(nameOrPath);
  let text: string;
  try {
    text = await readFile(nameOrPath, 'utf8');
  } catch (cause) {
    throw new UnknownSpaceError('space', `cannot read spec file ${nameOrPath}`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new UnknownSpaceError('space', `${nameOrPath} is not valid JSON`, { cause });
  }
  const { spaceFromSpec } = await import('../core/spaces/spec.ts');
  return spaceFromSpec(json);
}

/** The whole of `file`, or of standard input when `file` is undefined or "-". */
export async function readInput(file?: string): Promise<string> {
  if (file && file !== '-') return readFile(file, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Non-empty lines with their 1-based line numbers. */
export function jsonLines(text: string): { line: number; text: string }[] {
  return text
    .split('\n')
    .map((t, i) => ({ line: i + 1, text: t.trim() }))
    .filter((l) => l.text.length > 0);
}

/**
 * The architectures of a JSONL input (a file, or standard input when `file` is undefined or
 * "-"): bare native archs (`esm sample` output) or dataset lines carrying one under "arch".
 * A bad line throws `DatasetFormatError` naming file:line and the field.
 */
export async function readArchLines(space: SearchSpace, file?: string): Promise<Subnet[]> {
  const name = file && file !== '-' ? file : '<stdin>';
  return jsonLines(await readInput(file)).map(({ line, text }) => {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (cause) {
      throw new DatasetFormatError(
        name,
        line,
        'not valid JSON; expected one arch (or dataset line) per line',
        { cause },
      );
    }
    const arch =
      typeof json === 'object' && json !== null && 'arch' in json
        ? (json as { arch: unknown }).arch
        : json;
    try {
      return space.parse(arch);
    } catch (cause) {
      if (!(cause instanceof EsmError)) throw cause;
      throw new DatasetFormatError(name, line, cause.message, { cause });
    }
  });
}

/** Commander option parsers that reject bad values with the flag's name. */
export const parse = {
  int(min: number, max = Number.MAX_SAFE_INTEGER) {
    return (value: string): number => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < min || n > max) {
        throw new InvalidArgumentError(`expected an integer in ${min}..${max}, got "${value}"`);
      }
      return n;
    };
  },
  number(min: number, max: number) {
    return (value: string): number => {
      const n = Number(value);
      if (!Number.isFinite(n) || n < min || n > max) {
        throw new InvalidArgumentError(`expected a number in ${min}..${max}, got "${value}"`);
      }
      return n;
    };
  },
  oneOf<T extends string>(allowed: readonly T[]) {
    return (value: string): T => {
      if (!allowed.includes(value as T)) {
        throw new InvalidArgumentError(`expected one of ${allowed.join(', ')}, got "${value}"`);
      }
      return value as T;
    };
  },
};

/** Print a user error without a stack trace and exit non-zero; rethrow programming errors. */
export function reportError(error: unknown): never {
  if (error instanceof EsmError) {
    process.stderr.write(`error: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}

export function writeJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
