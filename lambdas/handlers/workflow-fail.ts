/**
 * Catch target of every task: records the error on the run so `GET /runs/{id}` shows what
 * went wrong, then the execution ends in its Fail state.
 */
import { z } from 'zod';
import { workflowTask } from '../middleware.ts';
import { type WorkflowDeps, workflowDeps } from '../workflow/run-context.ts';

const failedInput = z.looseObject({
  runId: z.string().min(1),
  error: z.object({ Error: z.string(), Cause: z.string().optional() }),
});

/** Lambda errors reach the Catch as a JSON Cause (`errorMessage`, `errorType`, `trace`). */
function messageOf(cause: string | undefined): string {
  if (cause === undefined) return '';
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') return parsed.errorMessage;
  } catch {
    // A plain-text cause (e.g. States.Timeout) is the message itself.
  }
  return cause;
}

export function createFailHandler(deps: () => WorkflowDeps = workflowDeps) {
  return workflowTask(failedInput, async ({ runId, error }) => {
    await deps().state.updateRun(runId, {
      status: 'failed',
      error: { name: error.Error, message: messageOf(error.Cause) },
    });
    return { runId, status: 'failed', error };
  });
}

export const handler = createFailHandler();
