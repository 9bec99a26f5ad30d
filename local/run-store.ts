/**
 * The run directory of `esm run`, and the file-backed `RunStateStore` (core/ports.ts) the
 * workflow's tasks use locally: everything needed to resume, report or reproduce a run.
 *
 *   state.json        the run (parameters with the seed, where the loop is, counters) and its
 *                     planned samples with their status; rewritten atomically (temporary file
 *                     + rename) after every change, so a crash leaves the old or the new state
 *   dataset.jsonl     one line per measured architecture (a valid `esm fit` dataset): appended
 *                     as each result arrives, rewritten in training order by each Train step
 *   iterations.jsonl  one record per train-evaluate step
 *   predictor/        the latest predictor (predictor.json + predictor.onnx)
 *   test-predictions.json  the latest predictor's predictions on the test set (report)
 *   report.html       written at the end and by `esm report DIR`
 *
 * One process owns a run directory at a time; every method works on the in-memory state and
 * saves it before it returns, so the store is consistent at every await of the workflow.
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
import { type IngestWrites, ingestResult } from '../core/ingest.ts';
import type { NewRun, RunStateStore, SampleAssignment } from '../core/ports.ts';
import type { ResultMessage } from '../core/schemas/protocol.ts';
import {
  type IngestOutcome,
  type IterationRecord,
  iterationRecord,
  jobKey,
  type PlannedSample,
  RUN_STATE_VERSION,
  type RunDatasetLine,
  type RunParams,
  type RunPatch,
  type RunRecord,
  type RunState,
  runDatasetLine,
  runParams,
  runState,
  type SampleRecord,
  type StoredIteration,
  thingsOf,
} from '../core/schemas/run.ts';
import { datasetLine } from '../core/train-iteration.ts';

export const runFiles = {
  state: 'state.json',
  dataset: 'dataset.jsonl',
  iterations: 'iterations.jsonl',
  predictor: 'predictor',
  predictions: 'test-predictions.json',
  report: 'report.html',
} as const;

/** Writes `text` to `file` so that readers see either the old or the new content. */
export function writeFileAtomic(file: string, text: string | Uint8Array): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    if (typeof text === 'string') writeSync(fd, text);
    else writeSync(fd, text);
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
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (cause) {
      throw new ValidationError(
        `${file}:${i + 1}`,
        'is not valid JSON (a damaged file); restore it or start a new run with --out DIR',
        {
          cause,
        },
      );
    }
    out.push(parse(value, i + 1));
  });
  return out;
}

function checked<T>(
  file: string,
  schema: {
    safeParse(v: unknown): {
      success: boolean;
      data?: T;
      error?: { issues: { message: string; path?: readonly PropertyKey[] }[] };
    };
  },
) {
  return (value: unknown, line: number): T => {
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error?.issues[0];
      const field = issue?.path?.length ? `: ${issue.path.map(String).join('.')}` : '';
      throw new ValidationError(`${file}:${line}${field}`, issue?.message ?? 'invalid line');
    }
    return parsed.data as T;
  };
}

export class RunStore implements RunStateStore {
  private readonly byId = new Map<string, SampleRecord>();

  private constructor(
    readonly dir: string,
    private current: RunState,
  ) {
    for (const s of current.samples) this.byId.set(s.id, s);
  }

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
    const now = (options.now ?? new Date()).toISOString();
    const things = thingsOf(params);
    const state: RunState = runState.parse({
      version: RUN_STATE_VERSION,
      runId:
        options.runId ??
        `run-${now.replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`,
      params,
      status: 'running',
      thing: things[0] ?? params.device,
      things,
      space: params.space,
      createdAt: now,
      updatedAt: now,
      iteration: 0,
      attempts: 0,
      measured: 0,
      unstableRetries: 0,
    });
    const store = new RunStore(abs, state);
    store.save();
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

  private save(): void {
    this.current = { ...this.current, samples: [...this.byId.values()] };
    writeFileAtomic(this.path('state'), `${JSON.stringify(this.current)}\n`);
  }

  private patchState(patch: Partial<RunState>): void {
    this.current = { ...this.current, ...patch, updatedAt: new Date().toISOString() };
  }

  private own(runId: string): void {
    if (runId !== this.current.runId) {
      throw new ValidationError(
        'runId',
        `no run "${runId}" in ${this.dir} (it holds ${this.current.runId})`,
      );
    }
  }

  /** Changes the parameters of the run (a resume with new limits); the caller validated them. */
  setParams(params: RunParams): void {
    this.patchState({ params: runParams.parse(params) });
    this.save();
  }

  /** Forgets the error of a failed run (a resume starts it again). */
  clearError(): void {
    const { error: _e, errorName: _n, deviceError: _d, ...rest } = this.current;
    this.current = rest as RunState;
    this.save();
  }

  // --- RunStateStore -------------------------------------------------------------------

  async getRun(runId: string): Promise<RunRecord | undefined> {
    if (runId !== this.current.runId) return undefined;
    const { version: _v, samples: _s, error, errorName, ...run } = this.current;
    return {
      ...run,
      params: { ...run.params },
      ...(error !== undefined && { error: { name: errorName ?? 'Error', message: error } }),
    };
  }

  async createRun(run: NewRun): Promise<boolean> {
    // The directory was created with its run (`RunStore.create`); only that run exists here.
    this.own(run.runId);
    return false;
  }

  async updateRun(runId: string, patch: RunPatch): Promise<void> {
    this.own(runId);
    const { error, params, ...rest } = patch;
    this.patchState({
      ...rest,
      ...(params !== undefined && { params: runParams.parse(params) }),
      ...(error !== undefined && { error: error.message, errorName: error.name }),
    });
    this.save();
  }

  async putSamples(runId: string, samples: readonly PlannedSample[]): Promise<number> {
    this.own(runId);
    let written = 0;
    for (const s of samples) {
      if (this.byId.has(s.id)) continue;
      this.byId.set(s.id, { ...s, runId, status: 'pending', jobs: [] });
      written += 1;
    }
    if (written > 0) this.save();
    return written;
  }

  async listSamples(
    runId: string,
    filter: { iteration?: number; status?: SampleRecord['status'] } = {},
  ): Promise<SampleRecord[]> {
    if (runId !== this.current.runId) return [];
    return [...this.byId.values()].filter(
      (s) =>
        (filter.iteration === undefined || s.iteration === filter.iteration) &&
        (filter.status === undefined || s.status === filter.status),
    );
  }

  async assignSamples(
    runId: string,
    assignments: readonly SampleAssignment[],
    at: string,
  ): Promise<void> {
    this.own(runId);
    for (const { id, thing, batchId } of assignments) {
      const s = this.byId.get(id);
      if (s === undefined || s.status !== 'pending') continue;
      this.byId.set(id, {
        ...s,
        assignedThing: thing,
        assignedBatch: batchId,
        assignedAt: at,
        jobs: [...s.jobs, jobKey(thing, batchId)],
      });
    }
    this.save();
  }

  async releaseSamples(runId: string, ids: readonly string[]): Promise<void> {
    this.own(runId);
    for (const id of ids) {
      const s = this.byId.get(id);
      if (s === undefined || s.status !== 'pending') continue;
      const { assignedThing: _t, assignedBatch: _b, assignedAt: _a, ...rest } = s;
      this.byId.set(id, rest);
    }
    this.save();
  }

  async recordResult(result: ResultMessage): Promise<IngestOutcome> {
    const appended: RunDatasetLine[] = [];
    const writes: IngestWrites = {
      getRun: (runId) => this.getRun(runId),
      markUnstable: async (_runId, unstable) => {
        this.patchState({
          unstableBatches: [...this.current.unstableBatches, unstable.batchId],
          lastUnstable: unstable,
        });
      },
      measureSample: async (_runId, id, job, m) => {
        const s = this.byId.get(id);
        if (s === undefined || !s.jobs.includes(job)) return 'rejected';
        if (s.status !== 'pending') return 'duplicate';
        const measured: SampleRecord = { ...s, status: 'measured', ...m };
        this.byId.set(id, measured);
        appended.push(datasetLine(measured, this.current.params.space));
        return 'recorded';
      },
      addMeasured: async (_runId, n) => {
        this.patchState({ measured: this.current.measured + n });
      },
      setReferenceScale: async (_runId, ms) => {
        const m = this.current.params.measurement;
        if (m.referenceScaleMs !== undefined) return;
        this.patchState({
          params: { ...this.current.params, measurement: { ...m, referenceScaleMs: ms } },
        });
      },
      recordProgress: async (_runId, thing, at) => {
        this.patchState({ progress: { ...this.current.progress, [thing]: at } });
      },
      recordDeviceError: async (_runId, deviceError) => {
        this.patchState({ deviceError });
        this.save();
      },
    };
    // One save for the whole result: the writes above only change memory.
    const outcome = await ingestResult(writes, result, { concurrency: 1 });
    this.save();
    if (appended.length > 0) {
      appendFileSync(
        this.path('dataset'),
        appended.map((l) => `${JSON.stringify(runDatasetLine.parse(l))}\n`).join(''),
      );
    }
    return outcome;
  }

  async recordProgress(runId: string, thing: string, at: string): Promise<void> {
    if (runId !== this.current.runId) return;
    this.patchState({ progress: { ...this.current.progress, [thing]: at } });
    this.save();
  }

  async setMeasured(runId: string, measured: number): Promise<void> {
    this.own(runId);
    this.patchState({ measured });
    this.save();
  }

  async putIteration(record: StoredIteration): Promise<void> {
    this.own(record.runId);
    const { runId: _r, predictorId: _p, ...plain } = record;
    const others = this.iterations().filter((r) => r.iteration !== record.iteration);
    if (others.length === this.iterations().length) {
      this.appendIteration(plain);
    } else {
      // A repeated Train step (a resume after a crash) replaces its own iteration only.
      const all = [...others, iterationRecord.parse(plain)].sort(
        (a, b) => a.iteration - b.iteration,
      );
      writeFileAtomic(this.path('iterations'), all.map((r) => `${JSON.stringify(r)}\n`).join(''));
    }
  }

  async listIterations(runId: string): Promise<StoredIteration[]> {
    if (runId !== this.current.runId) return [];
    return this.iterations().map((r) => ({
      ...r,
      runId,
      predictorId: `${runId}-i${r.iteration}`,
    }));
  }

  // --- the run directory ---------------------------------------------------------------

  /** Appends one iteration record as one line. */
  appendIteration(record: IterationRecord): void {
    appendFileSync(this.path('iterations'), `${JSON.stringify(iterationRecord.parse(record))}\n`);
  }

  iterations(): IterationRecord[] {
    const file = this.path('iterations');
    return readJsonl(file, checked<IterationRecord>(file, iterationRecord));
  }

  /** The measured samples as dataset lines, in training order. */
  measurements(): RunDatasetLine[] {
    return [...this.byId.values()]
      .filter((s) => s.status === 'measured')
      .map((s) => datasetLine(s, this.current.params.space));
  }
}
