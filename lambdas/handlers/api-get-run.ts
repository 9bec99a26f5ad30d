/** `GET /runs/{id}`: status, iteration history and per-bin accuracy of a run. */
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { runIdParam } from '../../core/schemas/run.ts';
import { createRunState, type RunState } from '../adapters/run-state.ts';
import { lazy, loadConfig } from '../config.ts';
import { apiHandler, NotFoundError, parseWith } from '../middleware.ts';

export const getRunDeps = lazy((): { state: RunState } => {
  const config = loadConfig(['runsTable', 'iterationsTable']);
  return { state: createRunState({ tables: config }) };
});

export function createGetRunHandler(deps: () => { state: RunState } = getRunDeps) {
  return apiHandler(async (event: APIGatewayProxyEvent) => {
    const runId = parseWith(runIdParam, event.pathParameters?.id ?? '', 'path.id');
    const { state } = deps();
    const run = await state.getRun(runId);
    if (run === undefined) throw new NotFoundError(`no run "${runId}"`);
    const iterations = (await state.listIterations(runId)).sort(
      (a, b) => a.iteration - b.iteration,
    );
    const last = iterations[iterations.length - 1];
    return {
      body: {
        runId: run.runId,
        status: run.status,
        thing: run.thing,
        space: run.space,
        params: run.params,
        createdAt: run.createdAt,
        updatedAt: run.updatedAt,
        iteration: run.iteration,
        measured: run.measured,
        predictor: run.predictorId ?? null,
        error: run.error ?? null,
        converged: last?.converged ?? false,
        bins: last?.bins ?? [],
        history: iterations.map(({ runId: _r, predictorId, ...record }) => ({
          ...record,
          predictor: predictorId,
        })),
      },
    };
  });
}

export const handler = createGetRunHandler();
