/**
 * A stored predictor served with onnxruntime-node, loaded once per container. Artifacts
 * never change once written (ids carry the iteration), so the cache needs no invalidation.
 */
import * as ort from 'onnxruntime-node';
import type { DatasetStore } from '../../core/ports.ts';
import { type PredictorJson, parsePredictorJson } from '../../core/predictor/artifact.ts';
import { ONNX_STD_OUTPUT } from '../../core/predictor/export-onnx.ts';
import { createFeaturizer, featureChoiceOf } from '../../core/predictor/index.ts';
import { getSpace, parseNamingOtherSpaces } from '../../core/spaces/index.ts';
import { spaceFromSpec } from '../../core/spaces/spec.ts';
import type { SearchSpace, Subnet } from '../../core/spaces/types.ts';
import { NotFoundError, underField } from '../middleware.ts';
import { keys } from '../workflow/run-context.ts';
import { getJson } from './s3-store.ts';

// onnxruntime's telemetry off unless the function's environment sets it
// (device-client/measure.ts says why).
process.env.ORT_DISABLE_TELEMETRY ??= '1';

export interface LoadedPredictor {
  readonly id: string;
  readonly json: PredictorJson;
  readonly space: SearchSpace;
  /** Native architectures of the request body, validated; errors name `body.archs[i].field`. */
  parseArchs(archs: readonly unknown[]): Subnet[];
  /**
   * Latencies and their uncertainty in ms (docs/predictor.md, "Uncertainty"); NaN std for a
   * predictor whose ONNX graph predates the `std_ms` output.
   */
  predictWithStd(subnets: readonly Subnet[]): Promise<{ mean: Float64Array; std: Float64Array }>;
}

const cache = new Map<string, Promise<LoadedPredictor>>();

function spaceOfPredictor(json: PredictorJson): SearchSpace {
  return json.space.spec !== undefined ? spaceFromSpec(json.space.spec) : getSpace(json.space.name);
}

async function load(store: DatasetStore, id: string): Promise<LoadedPredictor> {
  const [rawJson, onnx] = await Promise.all([
    getJson(store, keys.predictorJson(id)),
    store.get(keys.predictorOnnx(id)),
  ]);
  if (rawJson === undefined || onnx === undefined) throw new NotFoundError(`no predictor "${id}"`);
  const json = parsePredictorJson(rawJson, keys.predictorJson(id));
  const space = spaceOfPredictor(json);
  const featurizer = createFeaturizer(space, featureChoiceOf(json.features));
  const session = await ort.InferenceSession.create(onnx);
  const hasStd = session.outputNames.includes(ONNX_STD_OUTPUT);
  const predictWithStd = async (subnets: readonly Subnet[]) => {
    if (subnets.length === 0) return { mean: new Float64Array(), std: new Float64Array() };
    const x = featurizer.encodeAll(subnets);
    const input = new ort.Tensor('float32', Float32Array.from(x.data), [x.rows, x.cols]);
    const fetches = hasStd ? [json.onnx.output, ONNX_STD_OUTPUT] : [json.onnx.output];
    const output = await session.run({ [json.onnx.input]: input }, fetches);
    const mean = Float64Array.from(output[json.onnx.output]?.data as Float32Array);
    const std = hasStd
      ? Float64Array.from(output[ONNX_STD_OUTPUT]?.data as Float32Array)
      : new Float64Array(mean.length).fill(Number.NaN);
    return { mean, std };
  };
  return {
    id,
    json,
    space,
    parseArchs: (archs) =>
      archs.map((arch, i) =>
        underField(`body.archs[${i}]`, () => parseNamingOtherSpaces(space, arch)),
      ),
    predictWithStd,
  };
}

/** The predictor `id`, loaded on first use and kept for the container's lifetime. */
export function loadPredictor(store: DatasetStore, id: string): Promise<LoadedPredictor> {
  let loaded = cache.get(id);
  if (loaded === undefined) {
    loaded = load(store, id);
    // A failed load (missing object, throttling) must not poison the cache.
    loaded.catch(() => cache.delete(id));
    cache.set(id, loaded);
  }
  return loaded;
}
