/**
 * Reading and writing measured datasets: JSONL lines `{"arch": {...}, "latency_ms": 12.3}`
 * (core/schemas/dataset.ts) or CSV with an `arch` column holding the arch JSON (quoted) and
 * a `latency_ms` column. Every problem is reported as `file:line` with the field and the fix.
 */
import { DatasetFormatError, ValidationError } from './errors.ts';
import { datasetLine } from './schemas/dataset.ts';
import { otherSpacesHint } from './spaces/index.ts';
import { subnetKey } from './spaces/subnet.ts';
import type { SearchSpace, Subnet } from './spaces/types.ts';

export interface DatasetRow {
  readonly subnet: Subnet;
  /** The native architecture as written in the file. */
  readonly arch: unknown;
  readonly latencyMs: number;
  /** 1-based line of the (first) occurrence in the file. */
  readonly line: number;
  /** The line's other fields (std_ms, device, other metrics ...), as written. */
  readonly extra: Readonly<Record<string, unknown>>;
}

/** Lines that describe the same network (equal `subnetKey`). */
export interface DuplicateGroup {
  readonly key: string;
  readonly lines: readonly number[];
}

export const duplicatePolicies = ['average', 'keep', 'error'] as const;
export type DuplicatePolicy = (typeof duplicatePolicies)[number];

export interface ParseDatasetOptions {
  readonly space: SearchSpace;
  /** Name used in error messages. */
  readonly file: string;
  /**
   * What to do with repeated architectures: `average` their latencies into one row (kept at
   * the first line, with the first line's extra fields), `keep` every line, or `error`.
   * Averaging is the default because a duplicate split across train and test sets would
   * make test accuracy look better than it is.
   * @default 'average'
   */
  readonly duplicates?: DuplicatePolicy;
  /**
   * `jsonl` or `csv`; by default from the extension (.csv; .jsonl, .ndjson, .json), else
   * JSONL when the first non-empty line starts with `{` or `[`.
   * @default undefined (detect)
   */
  readonly format?: 'jsonl' | 'csv';
}

export interface Dataset {
  readonly rows: readonly DatasetRow[];
  /** Every group of lines that described the same network, whatever the policy. */
  readonly duplicates: readonly DuplicateGroup[];
}

interface RawLine {
  readonly line: number;
  readonly record: Record<string, unknown>;
}

/** Parses a dataset file's text; throws `DatasetFormatError` at the first bad line. */
export function parseDataset(text: string, options: ParseDatasetOptions): Dataset {
  const { space, file, duplicates = 'average' } = options;
  // A byte-order mark (spreadsheet exports) would otherwise end up in the first header name.
  const lines = text
    .replace(/^\uFEFF/, '')
    .split('\n')
    .map((t, i) => ({ line: i + 1, text: t.replace(/\r$/, '') }))
    .filter((l) => l.text.trim().length > 0);
  if (lines.length === 0) {
    throw new DatasetFormatError(file, 1, 'the dataset is empty; expected JSONL or CSV lines');
  }
  const format = options.format ?? detectFormat(file, lines[0]?.text ?? '');
  const raw = format === 'jsonl' ? readJsonl(lines, file) : readCsv(lines, file);
  const rows = raw.map((r) => toRow(r, space, file));
  return mergeDuplicates(rows, duplicates, file);
}

/** By extension (.csv, .jsonl/.ndjson/.json), else JSONL when the first line opens JSON. */
function detectFormat(file: string, firstLine: string): 'jsonl' | 'csv' {
  const lower = file.toLowerCase();
  if (lower.endsWith('.csv')) return 'csv';
  if (/\.(jsonl|ndjson|json)$/.test(lower)) return 'jsonl';
  return /^\s*[[{]/.test(firstLine) ? 'jsonl' : 'csv';
}

const CSV_QUOTING =
  'quote fields that contain commas or quotes and double the inner quotes, e.g. "{""ks"":[3,5]}"';

function readJsonl(lines: readonly { line: number; text: string }[], file: string): RawLine[] {
  return lines.map(({ line, text }) => {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (cause) {
      throw new DatasetFormatError(
        file,
        line,
        `not valid JSON (${(cause as Error).message}); each line must be one JSON object like {"arch": {...}, "latency_ms": 12.3}`,
        { cause },
      );
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new DatasetFormatError(
        file,
        line,
        'expected a JSON object like {"arch": {...}, "latency_ms": 12.3}',
      );
    }
    return { line, record: value as Record<string, unknown> };
  });
}

/** Splits one CSV line (RFC 4180 quoting: "a ""quoted"" field"); fields may not span lines. */
export function splitCsvLine(text: string, file: string, line: number): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) {
          throw new DatasetFormatError(file, line, `unterminated quoted CSV field; ${CSV_QUOTING}`);
        }
        const ch = text[i] as string;
        if (ch === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += ch;
        i++;
      }
      if (i < text.length && text[i] !== ',') {
        throw new DatasetFormatError(
          file,
          line,
          `unexpected character after a quoted CSV field at column ${i + 1}; ${CSV_QUOTING}`,
        );
      }
    } else {
      const end = text.indexOf(',', i);
      field = end < 0 ? text.slice(i) : text.slice(i, end);
      i = end < 0 ? text.length : end;
    }
    fields.push(field.trim());
    if (i >= text.length) return fields;
    i++;
  }
}

function readCsv(lines: readonly { line: number; text: string }[], file: string): RawLine[] {
  const [header, ...body] = lines;
  if (!header) return [];
  const names = splitCsvLine(header.text, file, header.line);
  for (const required of ['arch', 'latency_ms']) {
    if (!names.includes(required)) {
      throw new DatasetFormatError(
        file,
        header.line,
        `CSV header has no "${required}" column (found ${names.join(', ')}); the header must name arch and latency_ms`,
      );
    }
  }
  return body.map(({ line, text }) => {
    const fields = splitCsvLine(text, file, line);
    if (fields.length !== names.length) {
      throw new DatasetFormatError(
        file,
        line,
        `has ${fields.length} CSV fields, the header has ${names.length}; ${CSV_QUOTING}`,
      );
    }
    const record: Record<string, unknown> = {};
    names.forEach((name, k) => {
      const value = fields[k] as string;
      if (name === 'arch') {
        try {
          record.arch = JSON.parse(value);
        } catch (cause) {
          throw new DatasetFormatError(
            file,
            line,
            `field arch: not valid JSON (${(cause as Error).message}); write the arch as quoted JSON`,
            { cause },
          );
        }
      } else {
        const n = Number(value);
        record[name] = value !== '' && Number.isFinite(n) ? n : value;
      }
    });
    return { line, record };
  });
}

/** For an arch that does not parse in `space`: the built-in space it fits and the flag to use. */
function spacesHint(arch: unknown, space: SearchSpace): string {
  const { names, phrase } = otherSpacesHint(arch, space);
  return names.length === 0 ? '' : `${phrase}: read the file with --space ${names[0]}`;
}

function toRow(raw: RawLine, space: SearchSpace, file: string): DatasetRow {
  const result = datasetLine.safeParse(raw.record);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue?.path.join('.') || 'line';
    const hint =
      field === 'latency_ms'
        ? 'give the measured latency in milliseconds as a positive number'
        : field === 'arch'
          ? `give the native ${space.name} architecture as a JSON object`
          : 'fix or remove the field';
    throw new DatasetFormatError(file, raw.line, `field ${field}: ${issue?.message}; ${hint}`);
  }
  const { arch, latency_ms, ...extra } = result.data;
  if (extra.space !== undefined && extra.space !== space.name) {
    throw new DatasetFormatError(
      file,
      raw.line,
      `field space: the line was measured in space "${extra.space}" but the dataset is read as "${space.name}"; pass --space ${extra.space} or remove the line`,
    );
  }
  let subnet: Subnet;
  try {
    subnet = space.parse(arch);
  } catch (cause) {
    if (cause instanceof ValidationError) {
      throw new DatasetFormatError(
        file,
        raw.line,
        `field arch.${cause.message}${spacesHint(arch, space)}`,
        { cause },
      );
    }
    throw cause;
  }
  return { subnet, arch, latencyMs: latency_ms, line: raw.line, extra };
}

function mergeDuplicates(rows: DatasetRow[], policy: DuplicatePolicy, file: string): Dataset {
  const groups = new Map<string, DatasetRow[]>();
  for (const row of rows) {
    const key = subnetKey(row.subnet);
    const group = groups.get(key);
    if (group) group.push(row);
    else groups.set(key, [row]);
  }
  const duplicates: DuplicateGroup[] = [];
  for (const [key, group] of groups) {
    if (group.length > 1) duplicates.push({ key, lines: group.map((r) => r.line) });
  }
  if (policy === 'keep') return { rows, duplicates };
  if (policy === 'error' && duplicates.length > 0) {
    const first = duplicates[0] as DuplicateGroup;
    throw new DatasetFormatError(
      file,
      first.lines[1] as number,
      `repeats the architecture of line ${first.lines[0]}; remove it or use the average policy`,
    );
  }
  const merged = [...groups.values()].map((group) => {
    const first = group[0] as DatasetRow;
    if (group.length === 1) return first;
    const mean = group.reduce((acc, r) => acc + r.latencyMs, 0) / group.length;
    return { ...first, latencyMs: mean };
  });
  merged.sort((a, b) => a.line - b.line);
  return { rows: merged, duplicates };
}

export interface FormatDatasetLineOptions {
  readonly space: SearchSpace;
  readonly subnet: Subnet;
  readonly latencyMs: number;
  /** Further fields (std_ms, runs, device, measured_at ...), written after latency_ms. */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** One JSONL dataset line (no trailing newline) with the space's native arch. */
export function formatDatasetLine(options: FormatDatasetLineOptions): string {
  const { space, subnet, latencyMs, extra = {} } = options;
  if (!(latencyMs > 0) || !Number.isFinite(latencyMs)) {
    throw new ValidationError(
      'latency_ms',
      `must be a positive number of milliseconds, got ${latencyMs}`,
    );
  }
  return JSON.stringify({ arch: space.toNative(subnet), latency_ms: latencyMs, ...extra });
}
