/** `GET /predictors`: every stored predictor, newest first, with its accuracy on test data. */
import type { DatasetStore } from '../../core/ports.ts';
import { listPredictors, predictorStoreDeps } from '../adapters/s3-predictors.ts';
import { apiHandler } from '../middleware.ts';

export function createListPredictorsHandler(
  deps: () => { store: DatasetStore } = predictorStoreDeps,
) {
  return apiHandler(async () => ({ body: { predictors: await listPredictors(deps().store) } }));
}

export const handler = createListPredictorsHandler();
