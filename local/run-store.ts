/**
 * The run directory of `esm run`: everything needed to resume, report or reproduce a run.
 *
 *   state.json        run parameters (seed included) and where the loop is; rewritten
 *                     atomically (temporary file + rename), so a crash leaves the old or the
 *                     new state, never half of one
 *   dataset.jsonl     one line per measured architecture, appended as each result arrives
 *                     (a valid `esm fit` dataset)
 *   iterations.jsonl  one record per train-evaluate step
 *   predictor/        the latest predictor (predictor.json + predictor.onnx)
 *   test-predictions.json  the latest predictor's predictions on the test set (report)
 *   report.html       written at the end and by `esm report DIR`
 *
 * Appends are single `write` calls of whole lines; a line cut short by a kill is dropped when
 * the run is opened again (its sample is simply measured again).
 */
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  truncateSync,
  writeSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { ValidationError } from '../core/errors.ts';
import {
  type IterationRecord,
  iterationRecord,
  RUN_STATE_VERSION,
  type RunDatasetLine,
  type RunParams,
  type RunState,
  runDatasetLine,
  runState,
} from '../core/schemas/run.ts';

export const runFiles = {
  state: 'state.json',
  dataset: 'dataset.jsonl',
  iterations: 'iterations.jsonl',
  predictor: 'predictor',
  predictions: 'test-predictions.json',
  report: 'report.html',
} as const;

/** Writes `text` to `file` so that readers see either the old or the new content. */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** Parses a JSONL file, dropping (and truncating away) a last line cut short by a crash. */
function readJsonl<T>(file: string, parse: (value: unknown, line: number) => T): T[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  const complete =
    text.endsWith('\n') || text.length === 0 ? text : text.slice(0, text.lastIndexOf('\n') + 1);
  if (complete.length !== text.length) truncateSync(file, Buffer.byteLength(complete));
  const out: T[] = [];
  complete.split('\n').forEach((line, i) => {
    if (line.trim().length === 0) return;
    out.push(parse(JSON.parse(line), i + 1));
  });
  return out;
}

export class RunStore {
  private constructor(
    readonly dir: string,
    private current: RunState,
  ) {}

  /** Creates a new run directory; refuses one that already holds a run. */
  static create(
    dir: string,
    params: RunParams,
    options: { runId?: string; now?: Date } = {},
  ): RunStore {
    const abs = resolve(dir);
    if (existsSync(join(abs, runFiles.state))) {
      throw new ValidationError(
        'out',
        `${dir} already holds a run; continue it with --resume ${dir} or choose another --out`,
      );
    }
    mkdirSync(abs, { recursive: true });
    const now = options.now ?? new Date();
    const state: RunState = runState.parse({
      version: RUN_STATE_VERSION,
      runId:
        options.runId ??
        `run-${now.toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`,
      params,
      createdAt: now.toISOString(),
      status: 'running',
      iteration: 0,
      batch: null,
    });
    const store = new RunStore(abs, state);
    store.save(state);
    return store;
  }

  /** Opens an existing run directory (for --resume and `esm report`). */
  static open(dir: string): RunStore {
    const abs = resolve(dir);
    const file = join(abs, runFiles.state);
    if (!existsSync(file)) {
      throw new ValidationError(
        'resume',
        `${dir} has no ${runFiles.state}; pass the directory of an esm run`,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (cause) {
      throw new ValidationError('resume', `${file} is not valid JSON`, { cause });
    }
    const parsed = runState.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ValidationError(
        'resume',
        `${file}: ${issue?.path.join('.') || 'state'}: ${issue?.message}; the file was not written by this version of esm run`,
      );
    }
    return new RunStore(abs, parsed.data);
  }

  get state(): RunState {
    return this.current;
  }

  path(name: keyof typeof runFiles): string {
    return join(this.dir, runFiles[name]);
  }

  save(state: RunState): void {
    this.current = runState.parse(state);
    writeFileAtomic(this.path('state'), `${JSON.stringify(this.current, null, 2)}\n`);
  }

  /** Appends one measured sample as one line. */
  appendMeasurement(line: RunDatasetLine): void {
    appendFileSync(this.path('dataset'), `${JSON.stringify(runDatasetLine.parse(line))}\n`);
  }

  measurements(): RunDatasetLine[] {
    const file = this.path('dataset');
    return readJsonl(file, (value, line) => {
      const parsed = runDatasetLine.safeParse(value);
      if (!parsed.success) {
        throw new ValidationError(
          `${file}:${line}`,
          parsed.error.issues[0]?.message ?? 'invalid line',
        );
      }
      return parsed.data;
    });
  }

  appendIteration(record: IterationRecord): void {
    appendFileSync(this.path('iterations'), `${JSON.stringify(iterationRecord.parse(record))}\n`);
  }

  iterations(): IterationRecord[] {
    const file = this.path('iterations');
    return readJsonl(file, (value, line) => {
      const parsed = iterationRecord.safeParse(value);
      if (!parsed.success) {
        throw new ValidationError(
          `${file}:${line}`,
          parsed.error.issues[0]?.message ?? 'invalid line',
        );
      }
      return parsed.data;
    });
  }
}
