/**
 * What every workflow task needs: its adapters (ports of core/ports.ts: run-state store,
 * dataset store, job publisher, clock), the cloud form of the run parameters, and a run
 * loaded with its parsed parameters, search space, depth bins and (replay) pool. The
 * Lambdas build the adapters from the environment (`workflowDeps`); `esm run` passes file
 * and MQTT adapters (local/engine.ts) to the same handler factories.
 */
import { z } from 'zod';
import { type DatasetRow, parseDataset } from '../../core/dataset.ts';
import { ValidationError } from '../../core/errors.ts';
import { DEFAULT_METRIC, rowsAtLeast } from '../../core/metric-rows.ts';
import type { UndrawnRow } from '../../core/pool-truth.ts';
import type { Clock, DatasetStore, RunStateStore } from '../../core/ports.ts';
import { type PredictorJson, parsePredictorJson } from '../../core/predictor/artifact.ts';
import { type DepthBin, type PoolItem, poolItem, runBins } from '../../core/sampling.ts';
import { thingName } from '../../core/schemas/protocol.ts';
import { poolOf, type RunParams, type RunRecord, runParams } from '../../core/schemas/run.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { spaceFromSpec } from '../../core/spaces/spec.ts';
import type { SearchSpace, Subnet } from '../../core/spaces/types.ts';
import { createRunState } from '../adapters/run-state.ts';
import { createS3Store } from '../adapters/s3-store.ts';
import { lazy, loadConfig } from '../config.ts';

/**
 * Wait limits of `POST /runs` from before they were run parameters; when given they override
 * `resultTimeoutSeconds` and `maxRedispatches` (publications = re-dispatches + 1).
 */
export const dispatchLimits = z.object({
  batchTimeoutSeconds: z.number().int().min(1).max(86_400).optional(),
  maxDispatches: z.number().int().min(1).max(21).optional(),
});
export type DispatchLimits = z.infer<typeof dispatchLimits>;

const thingDevice = z
  .string()
  .regex(/^thing:/, 'use "thing:NAME" with a device registered through POST /devices')
  .refine(
    (d) =>
      d.split(',').every((part) => {
        const t = part.trim();
        return t.startsWith('thing:') && thingName.safeParse(t.slice('thing:'.length)).success;
      }),
    {
      message:
        'each thing name after "thing:" must be 1-128 letters, digits, ":", "_" or "-" (several: thing:a,thing:b)',
    },
  );

/**
 * The parameters of a cloud run: the same as `esm run` (core/schemas/run.ts), except that the
 * devices must be registered IoT things (`thing:NAME`, or `things: [...]` for fan-out) and a
 * user-defined space travels as its JSON spec in `spaceSpec`.
 */
export const cloudRunParams = runParams.extend({ device: thingDevice });

/** The first thing of a cloud run (`thing:NAME`, or the first of `things`). */
export function thingOf(params: Pick<RunParams, 'device' | 'things'>): string {
  return params.things?.[0] ?? (params.device.split(',')[0] ?? '').trim().slice('thing:'.length);
}

/** Execution input of the state machine, written by POST /runs and by `esm run`. */
export const executionInput = z.object({
  runId: z.string().min(1).max(80),
  params: z.record(z.string(), z.unknown()),
  limits: dispatchLimits.default({}),
});
export type ExecutionInput = z.infer<typeof executionInput>;

/** State payload between tasks: ids and counters only. */
export const iterationInput = z.looseObject({
  runId: z.string().min(1),
  iteration: z.number().int().nonnegative(),
});

/** The search space of a run: built-in by name, or built from the spec it carries. */
export function spaceOf(params: Pick<RunParams, 'space' | 'spaceSpec'>): SearchSpace {
  return params.spaceSpec !== undefined ? spaceFromSpec(params.spaceSpec) : getSpace(params.space);
}

export interface WorkflowDeps {
  readonly store: DatasetStore;
  readonly state: RunStateStore;
  /** @default systemClock */
  readonly clock?: Clock;
}

/** Adapters from the environment (lambdas/manifest.ts), built on first use. */
export const workflowDeps = lazy((): WorkflowDeps => {
  const config = loadConfig(['bucket', 'runsTable', 'iterationsTable', 'samplesTable']);
  return {
    store: createS3Store({ bucket: config.bucket }),
    state: createRunState({ tables: config }),
  };
});

/** A measured architecture of a replay pool. */
export type PoolEntry = PoolItem & {
  readonly subnet: Subnet;
  readonly arch: Record<string, unknown>;
  /** The line's value of the run's metric; undefined where the line has none. */
  readonly value?: number;
};

export interface LoadedRun {
  readonly run: RunRecord;
  readonly params: RunParams;
  readonly space: SearchSpace;
  readonly bins: DepthBin[];
  readonly things: readonly string[];
  /** Seconds without progress before a device's work is dispatched again. */
  readonly resultTimeoutSeconds: number;
  readonly maxRedispatches: number;
}

/** Loads a run and re-derives what the tasks need from its stored parameters. */
export async function loadRun(state: RunStateStore, runId: string): Promise<LoadedRun> {
  const run = await state.getRun(runId);
  if (run === undefined) throw new ValidationError('runId', `no run "${runId}"`);
  const params = runParams.parse(run.params);
  const space = spaceOf(params);
  const limits = dispatchLimits.parse(run.limits ?? {});
  return {
    run,
    params,
    space,
    bins: runBins(space, params),
    things: run.things.length > 0 ? run.things : [run.thing],
    resultTimeoutSeconds: limits.batchTimeoutSeconds ?? params.resultTimeoutSeconds,
    maxRedispatches:
      limits.maxDispatches !== undefined ? limits.maxDispatches - 1 : params.maxRedispatches,
  };
}

/**
 * The parsed lines of the dataset at `key` (a replay's pool): what `loadPool` samples from
 * and what `POST /runs` checks before the execution starts. A missing key is a
 * `ValidationError` on `pool`; a damaged line a `DatasetFormatError`.
 */
export async function readPoolRows(
  store: DatasetStore,
  key: string,
  space: SearchSpace,
): Promise<readonly DatasetRow[]> {
  const bytes = await store.get(key);
  if (bytes === undefined) {
    throw new ValidationError('pool', `no dataset at "${key}" to replay`);
  }
  return parseDataset(new TextDecoder().decode(bytes), { space, file: key }).rows;
}

/**
 * The architectures a replay run samples from: the dataset at `params.pool`, less the rows
 * whose metric is below `params.dropBelow`.
 */
export async function loadPool(
  store: DatasetStore,
  params: Pick<RunParams, 'device' | 'pool' | 'metric' | 'dropBelow'>,
  space: SearchSpace,
): Promise<PoolEntry[] | undefined> {
  const pool = poolOf(params);
  if (pool === undefined) {
    if (params.dropBelow === undefined) return undefined;
    throw new ValidationError(
      'dropBelow',
      'leaves rows out of a replay pool; give it with a pool (device dataset:FILE) or drop it',
    );
  }
  const parsed = await readPoolRows(store, pool, space);
  const rows =
    params.dropBelow === undefined
      ? parsed
      : rowsAtLeast(parsed, params.metric, params.dropBelow, pool);
  return rows.map((row) =>
    poolItem(row.subnet, {
      subnet: row.subnet,
      arch: space.toNative(row.subnet) as Record<string, unknown>,
      value: metricValue(row, params.metric),
    }),
  );
}

/**
 * The pool entries no sample of the run drew (`drawn`: their keys) that have a value of the
 * run's metric: what the Train task that stops a replay scores its predictor on.
 */
export function undrawnRows(pool: readonly PoolEntry[], drawn: ReadonlySet<string>): UndrawnRow[] {
  return pool.flatMap((p) =>
    p.value === undefined || drawn.has(p.key) ? [] : [{ subnet: p.subnet, latencyMs: p.value }],
  );
}

/** A dataset line's value of `metric`, as a replay device would report it. */
function metricValue(row: DatasetRow, metric: string): number | undefined {
  const value = metric === DEFAULT_METRIC ? row.latencyMs : row.extra[metric];
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined;
}

/** The prior predictor of a transfer run (`params.prior`), or undefined for a run from scratch. */
export async function loadPrior(
  store: DatasetStore,
  params: Pick<RunParams, 'prior'>,
): Promise<PredictorJson | undefined> {
  if (params.prior === undefined) return undefined;
  const bytes = await store.get(params.prior);
  if (bytes === undefined) {
    throw new ValidationError('prior', `no predictor.json at "${params.prior}"`);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (cause) {
    throw new ValidationError('prior', `"${params.prior}" is not valid JSON`, { cause });
  }
  return parsePredictorJson(json, params.prior);
}

/**
 * Keys in the dataset store. Predictor ids are `{runId}-i{iteration}`: one immutable artifact
 * per iteration, like the directory `esm fit --out` writes.
 */
export const keys = {
  dataset: (runId: string) => `runs/${runId}/dataset.jsonl`,
  predictions: (runId: string) => `runs/${runId}/test-predictions.json`,
  predictorJson: (id: string) => `predictors/${id}/predictor.json`,
  predictorOnnx: (id: string) => `predictors/${id}/predictor.onnx`,
  /** The arch-in graph and its row layout (docs/predictor.md). */
  predictorArchOnnx: (id: string) => `predictors/${id}/predictor-arch.onnx`,
  predictorArchJson: (id: string) => `predictors/${id}/predictor-arch.json`,
  /** Pointer to the newest predictor of a (space, device) pair, for `POST /predict`. */
  latest: (space: string, thing: string) => `predictors/latest/${space}/${thing}.json`,
} as const;
