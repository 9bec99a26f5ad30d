/**
 * What every workflow task needs: the adapters (built once per container from the
 * environment), the cloud form of the run parameters, and a run loaded with its parsed
 * parameters, search space and depth bins.
 */
import { z } from 'zod';
import { ValidationError } from '../../core/errors.ts';
import type { DatasetStore } from '../../core/ports.ts';
import { type DepthBin, depthBins } from '../../core/sampling.ts';
import { thingName } from '../../core/schemas/protocol.ts';
import { type RunParams, runParams } from '../../core/schemas/run.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { spaceFromSpec } from '../../core/spaces/spec.ts';
import type { SearchSpace } from '../../core/spaces/types.ts';
import { createRunState, type RunRecord, type RunState } from '../adapters/run-state.ts';
import { createS3Store } from '../adapters/s3-store.ts';
import { lazy, loadConfig } from '../config.ts';

/** Limits of the measurement wait, chosen per run (POST /runs) and stored on the run. */
export const dispatchLimits = z.object({
  /** A batch not fully measured this long after it was published is published again. */
  batchTimeoutSeconds: z.number().int().min(1).max(86_400).default(1800),
  /** Publications of one batch before the run fails with `MeasurementTimeoutError`. */
  maxDispatches: z.number().int().min(1).max(20).default(3),
});
export type DispatchLimits = z.infer<typeof dispatchLimits>;

/**
 * The parameters of a cloud run: the same as `esm run` (core/schemas/run.ts), except that the
 * device must be a registered IoT thing (`thing:NAME`) and a user-defined space travels as
 * its JSON spec in `spaceSpec`.
 */
export const cloudRunParams = runParams.extend({
  device: z
    .string()
    .regex(/^thing:/, 'use "thing:NAME" with a device registered through POST /devices')
    .refine((d) => thingName.safeParse(d.slice('thing:'.length)).success, {
      message: 'the thing name after "thing:" must be 1-128 letters, digits, ":", "_" or "-"',
    }),
});

/** The thing name of a cloud run's `device` (`thing:NAME`). */
export function thingOf(params: Pick<RunParams, 'device'>): string {
  return params.device.slice('thing:'.length);
}

/** Execution input of the state machine, written by POST /runs. */
export const executionInput = z.object({
  runId: z.string().min(1).max(80),
  params: z.record(z.string(), z.unknown()),
  limits: dispatchLimits.default({ batchTimeoutSeconds: 1800, maxDispatches: 3 }),
});
export type ExecutionInput = z.infer<typeof executionInput>;

/** State payload between tasks: ids and counters only. */
export const iterationInput = z.object({
  runId: z.string().min(1),
  iteration: z.number().int().nonnegative(),
});

/** The search space of a run: built-in by name, or built from the spec it carries. */
export function spaceOf(params: Pick<RunParams, 'space' | 'spaceSpec'>): SearchSpace {
  return params.spaceSpec !== undefined ? spaceFromSpec(params.spaceSpec) : getSpace(params.space);
}

export interface WorkflowDeps {
  readonly store: DatasetStore;
  readonly state: RunState;
}

/** Adapters from the environment (lambdas/manifest.ts), built on first use. */
export const workflowDeps = lazy((): WorkflowDeps => {
  const config = loadConfig(['bucket', 'runsTable', 'iterationsTable', 'samplesTable']);
  return {
    store: createS3Store({ bucket: config.bucket }),
    state: createRunState({ tables: config }),
  };
});

export interface LoadedRun {
  readonly run: RunRecord;
  readonly params: RunParams;
  readonly limits: DispatchLimits;
  readonly space: SearchSpace;
  readonly bins: DepthBin[];
}

/** Loads a run and re-derives what the tasks need from its stored parameters. */
export async function loadRun(state: RunState, runId: string): Promise<LoadedRun> {
  const run = await state.getRun(runId);
  if (run === undefined) throw new ValidationError('runId', `no run "${runId}"`);
  const params = cloudRunParams.parse(run.params);
  const space = spaceOf(params);
  const limits = dispatchLimits.parse(run.limits ?? {});
  return { run, params, limits, space, bins: depthBins(space, params.bins) };
}

/**
 * S3 keys. Predictor ids are `{runId}-i{iteration}`: one immutable artifact per iteration,
 * like the directory `esm fit --out` writes.
 */
export const keys = {
  dataset: (runId: string) => `runs/${runId}/dataset.jsonl`,
  predictorJson: (id: string) => `predictors/${id}/predictor.json`,
  predictorOnnx: (id: string) => `predictors/${id}/predictor.onnx`,
  /** The arch-in graph and its row layout (docs/predictor.md). */
  predictorArchOnnx: (id: string) => `predictors/${id}/predictor-arch.onnx`,
  predictorArchJson: (id: string) => `predictors/${id}/predictor-arch.json`,
  /** Pointer to the newest predictor of a (space, device) pair, for `POST /predict`. */
  latest: (space: string, thing: string) => `predictors/latest/${space}/${thing}.json`,
} as const;
