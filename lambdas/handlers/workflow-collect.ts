/**
 * Collect task, run after each wait: the core's `collectDecision` on the run's pending
 * samples says what happens next:
 * - all measured: `complete` (go train);
 * - a job came back unstable: its samples are released and dispatched again with fresh job
 *   ids once, then `UnstableDeviceError` (never train on drifting measurements);
 * - a device sent no progress for `resultTimeoutSeconds`: its samples are released and go to
 *   the other devices (or to it again when it is the only one), at most `maxRedispatches`
 *   times per iteration, then `MeasurementTimeoutError` naming the device;
 * - samples no job holds yet and a device with a free slot (after the calibration job of an
 *   interleaved run, or when a job finished): `redispatch`;
 * - otherwise `measuring` (wait again).
 */
import { MeasurementTimeoutError, UnstableDeviceError } from '../../core/errors.ts';
import { collectDecision, liveDevices } from '../../core/loop.ts';
import { logger, workflowTask } from '../middleware.ts';
import {
  iterationInput,
  loadRun,
  type WorkflowDeps,
  workflowDeps,
} from '../workflow/run-context.ts';

/** Re-dispatches allowed per iteration for results flagged unstable. */
export const maxUnstableRetries = 1;

export function createCollectHandler(deps: () => WorkflowDeps = workflowDeps) {
  return workflowTask(iterationInput, async ({ runId, iteration }) => {
    const { state, clock } = deps();
    const loaded = await loadRun(state, runId);
    const { run, params } = loaded;
    const pending = await state.listSamples(runId, { iteration, status: 'pending' });
    const base = { runId, iteration, pending: pending.length };
    const decision = collectDecision({
      pending,
      unstableBatches: run.unstableBatches,
      unstableRetries: run.unstableRetries,
      maxUnstableRetries,
      progress: run.progress,
      now: clock?.now() ?? new Date(),
      resultTimeoutSeconds: loaded.resultTimeoutSeconds,
      redispatches: run.redispatches,
      maxRedispatches: loaded.maxRedispatches,
      calibrating:
        params.measurement.interleave === true && params.measurement.referenceScaleMs === undefined,
      live: liveDevices(loaded.things, run.silent),
    });
    switch (decision.kind) {
      case 'complete':
        return { ...base, batch: 'complete' as const };
      case 'measuring':
        return { ...base, batch: 'measuring' as const };
      case 'unstable': {
        const u = run.lastUnstable;
        const drift = u ? `${(u.maxDrift * 100).toFixed(1)} %` : 'more than allowed';
        throw new UnstableDeviceError(
          `device ${u?.thing ?? run.thing} is unstable: its reference models drifted ${drift} ` +
            `(allowed ${(params.measurement.maxReferenceDrift * 100).toFixed(1)} %) in job ${decision.batches.join(', ')} ` +
            'and again when measured once more. Stop other work on the device, or allow more drift ' +
            '(--max-drift, measurement.maxReferenceDrift), then resume the run',
        );
      }
      case 'timeout':
        throw new MeasurementTimeoutError(
          `device ${decision.things.join(', ')} sent no progress for ${Math.round(decision.waitedSeconds)} s ` +
            `(result timeout ${loaded.resultTimeoutSeconds} s) and left ${pending.length} samples of iteration ${iteration} ` +
            `unmeasured after ${run.redispatches + 1} publications; check that its daemon ` +
            `(esm-device --thing ${decision.things[0]}) runs and reaches the broker, then resume the run`,
        );
      case 'dispatch': {
        await state.releaseSamples(runId, decision.release);
        if (decision.reason === 'unstable') {
          await state.updateRun(runId, { unstableRetries: run.unstableRetries + 1 });
          logger.warn('unstable results, measuring again', {
            runId,
            iteration,
            jobs: decision.unstable,
          });
        } else if (decision.reason === 'timeout') {
          await state.updateRun(runId, {
            redispatches: run.redispatches + 1,
            silent: [...new Set([...run.silent, ...decision.silent])],
          });
          logger.warn('devices silent, dispatching their samples again', {
            runId,
            iteration,
            silent: decision.silent,
            samples: decision.release.length,
          });
        }
        return {
          ...base,
          batch: 'redispatch' as const,
          reason: decision.reason,
          silent: decision.silent,
          unstable: decision.unstable,
        };
      }
    }
  });
}

export const handler = createCollectHandler();
