/**
 * `GET /predictors/{id}`: the files of one stored predictor (predictor.json, predictor.onnx
 * and whatever else the training wrote under `predictors/{id}/`), base64 in a JSON body, so
 * that `esm cloud predictor pull` rebuilds the directory `esm predict --predictor` reads. A
 * predictor is a few hundred KB; one too large for a Lambda answer (6 MB) is refused (413).
 */
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { z } from 'zod';
import type { DatasetStore } from '../../core/ports.ts';
import { predictorStoreDeps } from '../adapters/s3-predictors.ts';
import { apiHandler, NotFoundError, parseWith } from '../middleware.ts';

/** Raw bytes an answer may carry: base64 grows them by 4/3, under Lambda's 6 MB. */
export const maxPredictorBytes = 4 * 1024 * 1024;

export const predictorIdParam = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,200}$/, 'use a predictor id from GET /predictors or GET /runs/{id}');

export function createGetPredictorHandler(
  deps: () => { store: DatasetStore } = predictorStoreDeps,
) {
  return apiHandler(async (event: APIGatewayProxyEvent) => {
    const id = parseWith(predictorIdParam, event.pathParameters?.id ?? '', 'path.id');
    const { store } = deps();
    const prefix = `predictors/${id}/`;
    const keys = await store.list(prefix);
    if (!keys.includes(`${prefix}predictor.json`)) throw new NotFoundError(`no predictor "${id}"`);
    const files: Record<string, string> = {};
    let bytes = 0;
    for (const key of keys) {
      const name = key.slice(prefix.length);
      // Only the files of this directory level: predictor ids never nest.
      if (name === '' || name.includes('/')) continue;
      const body = (await store.get(key)) ?? new Uint8Array();
      bytes += body.byteLength;
      if (bytes > maxPredictorBytes) {
        return {
          statusCode: 413,
          body: {
            error: 'PredictorTooLargeError',
            message: `predictor "${id}" is over ${maxPredictorBytes} bytes; copy it from S3 (${prefix})`,
          },
        };
      }
      files[name] = Buffer.from(body).toString('base64');
    }
    return { body: { predictor: id, files } };
  });
}

export const handler = createGetPredictorHandler();
