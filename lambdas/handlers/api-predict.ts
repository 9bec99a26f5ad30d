/**
 * `POST /predict` `{ predictor: "<id>" | "<space>/<thing>", archs: [<native arch>, ...] }`:
 * latencies in ms from the exported ONNX predictor, in the order of `archs`, with their
 * uncertainty `std_ms` (null for a predictor exported before it existed), and
 * `outside_domain`: the archs (by index) at a resolution or depth the predictor was never
 * trained on, whose latencies are extrapolations (empty for a predictor that predates the
 * recorded domain). The predictor is loaded from S3 once per container.
 */
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { z } from 'zod';
import type { DatasetStore } from '../../core/ports.ts';
import { outsideDomainOf } from '../../core/predictor/domain.ts';
import { loadPredictor } from '../adapters/onnx-predictor.ts';
import { predictorStoreDeps, resolvePredictorId } from '../adapters/s3-predictors.ts';
import { apiHandler, parseBody } from '../middleware.ts';

/** Largest batch per request; keeps a request well inside the API's payload and time limits. */
export const maxPredictBatch = 10_000;

export const predictBody = z.object({
  predictor: z.string().min(1, 'name a predictor id or "space/thing"').max(300),
  archs: z
    .array(z.unknown())
    .min(1, 'send at least one architecture')
    .max(maxPredictBatch, `at most ${maxPredictBatch} architectures per request; split the batch`),
});

export function createPredictHandler(deps: () => { store: DatasetStore } = predictorStoreDeps) {
  return apiHandler(async (event: APIGatewayProxyEvent) => {
    const body = parseBody(event, predictBody);
    const { store } = deps();
    const id = await resolvePredictorId(store, body.predictor);
    const predictor = await loadPredictor(store, id);
    const subnets = predictor.parseArchs(body.archs);
    const { mean, std } = await predictor.predictWithStd(subnets);
    const domain = predictor.json.training.domain;
    const outside_domain = domain ? outsideDomainOf(domain, subnets) : [];
    return {
      body: {
        predictor: id,
        space: predictor.space.name,
        latency_ms: Array.from(mean),
        std_ms: Array.from(std, (v) => (Number.isFinite(v) ? v : null)),
        outside_domain,
      },
    };
  });
}

export const handler = createPredictHandler();
