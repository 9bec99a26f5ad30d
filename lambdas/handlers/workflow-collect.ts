/**
 * Collect task, run after each poll wait: is every sample of the iteration measured?
 * - all measured: `complete` (go train);
 * - the device flagged a job of the current attempt unstable: `redispatch` once, then
 *   `UnstableDeviceError` (never train on drifting measurements);
 * - the batch timed out: `redispatch` while publications are left, then
 *   `MeasurementTimeoutError`;
 * - otherwise `measuring` (wait again).
 */
import { MeasurementTimeoutError, UnstableDeviceError } from '../../core/errors.ts';
import { logger, workflowTask } from '../middleware.ts';
import {
  iterationInput,
  loadRun,
  type WorkflowDeps,
  workflowDeps,
} from '../workflow/run-context.ts';
import { attemptPrefix } from './workflow-dispatch.ts';

/** Re-dispatches allowed per iteration for results flagged unstable. */
export const maxUnstableRetries = 1;

export function createCollectHandler(
  deps: () => WorkflowDeps = workflowDeps,
  now: () => Date = () => new Date(),
) {
  return workflowTask(iterationInput, async ({ runId, iteration }) => {
    const { state } = deps();
    const { run, limits } = await loadRun(state, runId);
    const pending = (await state.listSamples(runId, { iteration, status: 'pending' })).length;
    const base = { runId, iteration, pending };
    if (pending === 0) return { ...base, batch: 'complete' as const };

    const prefix = attemptPrefix(iteration, run.attempts);
    const unstable = (run.unstableBatches ?? []).filter((id) => id.startsWith(prefix));
    if (unstable.length > 0) {
      if (run.unstableRetries >= maxUnstableRetries) {
        throw new UnstableDeviceError(
          `device ${run.thing} reported unstable measurements again (jobs ${unstable.join(', ')}); ` +
            'stop other load on the device, raise measurement.runs or maxReferenceDrift, and start a new run',
        );
      }
      await state.updateRun(runId, { unstableRetries: run.unstableRetries + 1 });
      logger.warn('unstable results, measuring again', { runId, iteration, jobs: unstable });
      return { ...base, batch: 'redispatch' as const };
    }

    const dispatchedAt = run.dispatchedAt ? Date.parse(run.dispatchedAt) : now().getTime();
    const waitedSeconds = (now().getTime() - dispatchedAt) / 1000;
    if (waitedSeconds > limits.batchTimeoutSeconds) {
      if (run.attempts >= limits.maxDispatches) {
        throw new MeasurementTimeoutError(
          `device ${run.thing} left ${pending} samples of iteration ${iteration} unmeasured after ` +
            `${run.attempts} publications of ${limits.batchTimeoutSeconds} s each; check that the ` +
            'device daemon is running and connected, or raise limits.batchTimeoutSeconds',
        );
      }
      logger.warn('batch timed out, publishing again', {
        runId,
        iteration,
        pending,
        waitedSeconds,
      });
      return { ...base, batch: 'redispatch' as const };
    }
    return { ...base, batch: 'measuring' as const };
  });
}

export const handler = createCollectHandler();
