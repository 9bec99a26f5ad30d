/**
 * Predictors stored in S3 by the training task (predictor.json + predictor.onnx under
 * `predictors/{id}/`): resolving `space/thing` to the newest id, and listing them. Loading
 * one for prediction (onnxruntime-node) is in onnx-predictor.ts, so functions that only
 * list do not carry the native runtime.
 */
import { ValidationError } from '../../core/errors.ts';
import type { DatasetStore } from '../../core/ports.ts';
import { featuresName, parsePredictorJson } from '../../core/predictor/artifact.ts';
import { lazy, loadConfig } from '../config.ts';
import { NotFoundError } from '../middleware.ts';
import { keys } from '../workflow/run-context.ts';
import { createS3Store, getJson } from './s3-store.ts';

/** The bucket as a store, from the environment (`ESM_BUCKET`). */
export const predictorStoreDeps = lazy((): { store: DatasetStore } => ({
  store: createS3Store({ bucket: loadConfig(['bucket']).bucket }),
}));

/** A predictor id, or `space/thing` for the newest predictor of that pair (`field`: the request's). */
export async function resolvePredictorId(
  store: DatasetStore,
  ref: string,
  field = 'body.predictor',
): Promise<string> {
  const parts = ref.split('/');
  if (parts.length === 1) return ref;
  if (parts.length !== 2 || parts.some((p) => p === '')) {
    throw new ValidationError(field, 'use a predictor id or "space/thing"');
  }
  const pointer = (await getJson(store, keys.latest(parts[0] as string, parts[1] as string))) as
    | { id?: unknown }
    | undefined;
  if (typeof pointer?.id !== 'string') {
    throw new NotFoundError(`no predictor for space "${parts[0]}" on device "${parts[1]}" yet`);
  }
  return pointer.id;
}

export interface PredictorSummary {
  readonly id: string;
  readonly space: string;
  readonly encoding: string;
  readonly thing: string | null;
  readonly runId: string | null;
  readonly createdAt: string;
  readonly nTrain: number;
  readonly accuracy: number | null;
  /** True for the newest predictor of its (space, thing). */
  readonly latest: boolean;
}

/** Every stored predictor, newest first. */
export async function listPredictors(store: DatasetStore): Promise<PredictorSummary[]> {
  const all = await store.list('predictors/');
  const latestIds = new Set<string>();
  for (const key of all.filter((k) => k.startsWith('predictors/latest/'))) {
    const pointer = (await getJson(store, key)) as { id?: unknown } | undefined;
    if (typeof pointer?.id === 'string') latestIds.add(pointer.id);
  }
  const ids = all
    .filter((k) => !k.startsWith('predictors/latest/') && k.endsWith('/predictor.json'))
    .map((k) => k.slice('predictors/'.length, -'/predictor.json'.length));
  const summaries = await Promise.all(
    ids.map(async (id): Promise<PredictorSummary> => {
      const json = parsePredictorJson(await getJson(store, keys.predictorJson(id)));
      const options = json.training.options as { thing?: unknown; runId?: unknown };
      return {
        id,
        space: json.space.name,
        encoding: featuresName(json.features),
        thing: typeof options.thing === 'string' ? options.thing : null,
        runId: typeof options.runId === 'string' ? options.runId : null,
        createdAt: json.training.created_at,
        nTrain: json.training.n_train,
        accuracy: json.metrics?.test.accuracy ?? null,
        latest: latestIds.has(id),
      };
    }),
  );
  return summaries.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}
