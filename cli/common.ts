/** Helpers shared by the CLI commands: input, output, space resolution and error reporting. */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from 'commander';
import {
  DatasetFormatError,
  EsmError,
  MeasurementTimeoutError,
  UnknownSpaceError,
  UnstableDeviceError,
  ValidationError,
} from '../core/errors.ts';
import { runParams } from '../core/schemas/run.ts';
import { checkCostBounds, ResourceLimitError } from '../core/spaces/bounds.ts';
import { graphCost } from '../core/spaces/cost.ts';
import { getSpace, parseNamingOtherSpaces } from '../core/spaces/index.ts';
import type { LayerGraph, SearchSpace, Subnet } from '../core/spaces/types.ts';

/** A space name (`mobilenetv3`) or a path to a user-defined JSON spec (`my-space.json`). */
/**
 * The loop's own defaults, so that `esm sample` draws and `esm fit` bins what `esm run` would
 * (one story across commands: issue 10).
 */
export const runDefaults = {
  sampling: runParams.shape.sampling.parse(undefined),
  bins: runParams.shape.bins.parse(undefined),
};

export async function resolveSpace(nameOrPath: string): Promise<SearchSpace> {
  if (!nameOrPath.endsWith('.json')) return getSpace(nameOrPath);
  let text: string;
  try {
    text = await readFile(nameOrPath, 'utf8');
  } catch (cause) {
    throw new UnknownSpaceError('--space', `spec file ${unreadable(nameOrPath, cause)}`, {
      cause,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new UnknownSpaceError('--space', `${nameOrPath} is not valid JSON`, { cause });
  }
  const { spaceFromSpec } = await import('../core/spaces/spec.ts');
  try {
    return spaceFromSpec(json);
  } catch (error) {
    // The bounds name the spec as a whole; on the command line that is the --space file.
    if (!(error instanceof ResourceLimitError)) throw error;
    const detail = error.message.slice(error.field.length + 2);
    throw new ResourceLimitError('--space', `${nameOrPath}: ${detail}`, { cause: error });
  }
}

/**
 * Refuse, before anything is built, graphs whose cost exceeds the resource bounds
 * (core/spaces/bounds.ts): `field` names the input that held them, `batchFlag` the batch size.
 */
export function checkGraphBounds(
  graphs: readonly LayerGraph[],
  options: { field: string; batchSize: number; batchFlag: string },
): void {
  graphs.forEach((graph, i) => {
    const cost = graphCost(graph);
    const what = graphs.length > 1 ? `architecture ${i + 1}` : 'this architecture';
    checkCostBounds(cost, { field: options.field, what });
    checkCostBounds(cost, { field: options.batchFlag, batchSize: options.batchSize, what });
  });
}

/** Why a file could not be read, in words a user can act on. */
function unreadable(file: string, cause: unknown): string {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return `${file} does not exist; check the path`;
    case 'EISDIR':
      return `${file} is a directory; give a file`;
    case 'EACCES':
    case 'EPERM':
      return `${file} is not readable (permission denied)`;
    default:
      return `cannot read ${file}${code ? ` (${code})` : ''}`;
  }
}

/**
 * The bytes of `file`, named on the command line by `flag`. A missing file, a directory or an
 * unreadable file throws `ValidationError` naming the flag, never a stack trace.
 */
export async function readFileOf(file: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (cause) {
    throw new ValidationError(flag, unreadable(file, cause), { cause });
  }
}

/**
 * The whole of `file`, or of standard input when `file` is undefined or "-". Waiting on a
 * terminal would look like a hang, so a terminal on standard input is refused naming `flag`.
 */
export async function readInput(file?: string, flag = '--in'): Promise<string> {
  if (file && file !== '-') return (await readFileOf(file, flag)).toString('utf8');
  if (process.stdin.isTTY) {
    throw new ValidationError(flag, 'give a file with --in FILE, or pipe JSONL into this command');
  }
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

/** One architecture of a JSONL input, with the id its line carried (dataset lines have one). */
export interface ArchEntry {
  readonly subnet: Subnet;
  readonly id?: string;
  /** 1-based line number in the input. */
  readonly line: number;
}

/**
 * The architectures of a JSONL input (a file, or standard input when `file` is undefined or
 * "-"): bare native archs (`esm sample` output) or dataset lines carrying one under "arch" (and
 * an optional "id"). A bad line throws `DatasetFormatError` naming file:line and the field; an
 * input without any architecture throws `ValidationError` naming `flag`.
 */
export async function readArchEntries(
  space: SearchSpace,
  file?: string,
  flag = '--in',
): Promise<ArchEntry[]> {
  const name = file && file !== '-' ? file : 'standard input';
  const lines = jsonLines(await readInput(file, flag));
  if (lines.length === 0) {
    throw new ValidationError(
      flag,
      `${name} holds no architectures; expected one JSON arch (or dataset line) per line, e.g. from \`esm sample --space ${space.name} --n 10\``,
    );
  }
  return lines.map(({ line, text }) => {
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
    const wrapped = typeof json === 'object' && json !== null && 'arch' in json;
    const arch = wrapped ? (json as { arch: unknown }).arch : json;
    const rawId = wrapped ? (json as { id?: unknown }).id : undefined;
    try {
      const subnet = parseNamingOtherSpaces(space, arch);
      return rawId === undefined ? { subnet, line } : { subnet, line, id: String(rawId) };
    } catch (cause) {
      if (!(cause instanceof EsmError)) throw cause;
      throw new DatasetFormatError(name, line, cause.message, { cause });
    }
  });
}

/** The architectures of a JSONL input; see `readArchEntries`. */
export async function readArchLines(
  space: SearchSpace,
  file?: string,
  flag = '--in',
): Promise<Subnet[]> {
  return (await readArchEntries(space, file, flag)).map((e) => e.subnet);
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

/**
 * Print a user error without a stack trace and exit non-zero; rethrow programming errors.
 * Exit 1 when a run failed on its devices (unstable measurements, no results in time), as
 * `esm cloud run wait` does for a failed run; 2 for everything the user typed or set.
 */
export function reportError(error: unknown): never {
  if (error instanceof EsmError) {
    // "cannot read FILE" from a command that kept the file system's reason only as the cause.
    const code = (error.cause as NodeJS.ErrnoException | undefined)?.code;
    const why = code && /cannot read/.test(error.message) ? ` (${errnoReasons[code] ?? code})` : '';
    process.stderr.write(`error: ${error.message}${why}\n`);
    const deviceFault =
      error instanceof UnstableDeviceError || error instanceof MeasurementTimeoutError;
    process.exit(deviceFault ? 1 : 2);
  }
  throw error;
}

const errnoReasons: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EISDIR: 'it is a directory, not a file',
  EACCES: 'permission denied',
  ENOTDIR: 'a part of the path is not a directory',
};

export function writeJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
