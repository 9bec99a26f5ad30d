/**
 * Init task: records the run (once) and plans its initial batch with the core's
 * `planInitialBatch`, seeded by (seed, iteration 0) so a retried task plans the same batch.
 * A run that exists already (a resumed or redriven execution) continues at its iteration.
 */
import { iterationSeed, planInitialBatch } from '../../core/loop.ts';
import { createRng } from '../../core/rng.ts';
import { poolDepthRange, runBins } from '../../core/sampling.ts';
import { runParams, thingsOf } from '../../core/schemas/run.ts';
import { logger, parseWith, workflowTask } from '../middleware.ts';
import {
  executionInput,
  loadPool,
  spaceOf,
  type WorkflowDeps,
  workflowDeps,
} from '../workflow/run-context.ts';

export function createInitHandler(deps: () => WorkflowDeps = workflowDeps) {
  return workflowTask(executionInput, async ({ runId, params: raw, limits }) => {
    const { state, store } = deps();
    const parsed = parseWith(runParams, raw, 'params');
    const space = spaceOf(parsed);
    const things = thingsOf(parsed);
    const pool = await loadPool(store, parsed, space);
    // A replay's bins span the depths its pool holds (recorded, so every task bins alike).
    const params =
      pool && parsed.depthRange === undefined
        ? { ...parsed, depthRange: poolDepthRange(pool) }
        : parsed;
    const created = await state.createRun({
      runId,
      thing: things[0] ?? params.device,
      things,
      space: space.name,
      params,
      limits,
    });
    const run = await state.getRun(runId);
    const iteration = run?.iteration ?? 0;
    if (!created && iteration > 0) {
      // A resumed or redriven execution: the run is past its initial batch already.
      return { runId, iteration };
    }
    if (run && params.depthRange && run.params.depthRange === undefined) {
      // A run recorded before its first Init (esm run writes state.json first) gets the range too.
      await state.updateRun(runId, { params: { ...run.params, depthRange: params.depthRange } });
    }
    const samples = planInitialBatch({
      source: pool ? { kind: 'pool', pool, space } : { kind: 'space', space },
      params,
      bins: runBins(space, params),
      rng: createRng(iterationSeed(params.seed, 0)),
    });
    const written = await state.putSamples(runId, samples);
    logger.info('run initialised', {
      runId,
      things,
      space: space.name,
      planned: samples.length,
      written,
    });
    return { runId, iteration: 0 };
  });
}

export const handler = createInitHandler();
