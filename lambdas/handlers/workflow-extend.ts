/**
 * Extend task: plans the next batch with the core's `planExtension` (bin weights from the
 * training step's decision), seeded by (seed, iteration), never repeating an architecture of
 * the run, and moves the run to the next iteration with fresh dispatch counters. A retry
 * plans the same batch, which the idempotent `putSamples` writes once.
 */
import { z } from 'zod';
import { activeUncertainty } from '../../core/active.ts';
import { iterationSeed, planActiveExtension, planExtension } from '../../core/loop.ts';
import { createRng } from '../../core/rng.ts';
import type { SampleRecord } from '../../core/schemas/run.ts';
import { logger, workflowTask } from '../middleware.ts';
import { loadPool, loadRun, type WorkflowDeps, workflowDeps } from '../workflow/run-context.ts';

const extendInput = z.looseObject({
  runId: z.string().min(1),
  iteration: z.number().int().nonnegative(),
  /** Per-bin weights from the training step's decision. */
  binWeights: z.array(z.number().nonnegative()).min(1),
});

/** The run's measured training samples: what the active uncertainty is fitted on. */
function measuredTrain(samples: readonly SampleRecord[]) {
  return samples.flatMap((s) =>
    s.split === 'train' && s.status === 'measured' && s.latencyMs !== undefined
      ? [{ arch: s.arch, latencyMs: s.latencyMs }]
      : [],
  );
}

export function createExtendHandler(deps: () => WorkflowDeps = workflowDeps) {
  return workflowTask(extendInput, async ({ runId, iteration, binWeights }) => {
    const { state, store } = deps();
    const { params, space, bins } = await loadRun(state, runId);
    const next = iteration + 1;
    const existing = await state.listSamples(runId);
    const pool = await loadPool(store, params, space);
    const plan = {
      source: pool ? ({ kind: 'pool', pool, space } as const) : ({ kind: 'space', space } as const),
      params,
      bins,
      iteration: next,
      rng: createRng(iterationSeed(params.seed, next)),
      exclude: new Set(existing.filter((s) => s.iteration !== next).map((s) => s.key)),
      binWeights,
    };
    const samples =
      params.sampling === 'active'
        ? await planActiveExtension({
            ...plan,
            uncertainty: await activeUncertainty(space, params, measuredTrain(existing), next),
          })
        : planExtension(plan);
    const written = await state.putSamples(runId, samples);
    await state.updateRun(runId, {
      iteration: next,
      attempts: 0,
      unstableRetries: 0,
      redispatches: 0,
      silent: [],
    });
    logger.info('run extended', {
      runId,
      iteration: next,
      planned: samples.length,
      written,
      binWeights,
    });
    return { runId, iteration: next };
  });
}

export const handler = createExtendHandler();
