/**
 * Init task: records the run (once) and plans its initial batch with the core's
 * `planInitialBatch`, seeded by (seed, iteration 0) so a retried task plans the same batch.
 */
import { iterationSeed, planInitialBatch } from '../../core/loop.ts';
import { createRng } from '../../core/rng.ts';
import { depthBins } from '../../core/sampling.ts';
import { logger, parseWith, workflowTask } from '../middleware.ts';
import {
  cloudRunParams,
  dispatchLimits,
  executionInput,
  spaceOf,
  thingOf,
  type WorkflowDeps,
  workflowDeps,
} from '../workflow/run-context.ts';

export function createInitHandler(deps: () => WorkflowDeps = workflowDeps) {
  return workflowTask(executionInput, async ({ runId, params: raw, limits }) => {
    const { state } = deps();
    const params = parseWith(cloudRunParams, raw, 'params');
    const space = spaceOf(params);
    const thing = thingOf(params);
    const created = await state.createRun({
      runId,
      thing,
      space: space.name,
      params,
      limits: dispatchLimits.parse(limits),
    });
    const run = await state.getRun(runId);
    const iteration = run?.iteration ?? 0;
    if (!created && iteration > 0) {
      // A redriven execution: the run is past its initial batch already.
      return { runId, iteration };
    }
    const samples = planInitialBatch({
      source: { kind: 'space', space },
      params,
      bins: depthBins(space, params.bins),
      rng: createRng(iterationSeed(params.seed, 0)),
    });
    const written = await state.putSamples(runId, samples);
    logger.info('run initialised', {
      runId,
      thing,
      space: space.name,
      planned: samples.length,
      written,
    });
    return { runId, iteration: 0 };
  });
}

export const handler = createInitHandler();
