/**
 * Predictor directories on the local file system: `predictor.json` + `predictor.onnx`.
 * Loading one gives a predictor that parses native archs, encodes them and runs the ONNX
 * graph with onnxruntime-node (one session per loaded predictor, created once).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ValidationError } from '../core/errors.ts';
import { archFiles } from '../core/onnx/arch-graph-files.ts';
import { ARCH_JSON, ARCH_ONNX } from '../core/onnx/arch-graph-layout.ts';
import { encodeModel } from '../core/onnx/model.ts';
import {
  PREDICTOR_JSON,
  PREDICTOR_ONNX,
  type PredictorJson,
  parsePredictorJson,
} from '../core/predictor/artifact.ts';
import { modelToOnnxGraph, ONNX_STD_OUTPUT, onnxMetadata } from '../core/predictor/export-onnx.ts';
import { createFeaturizer, type Featurizer, featureChoiceOf } from '../core/predictor/index.ts';
import { getSpace } from '../core/spaces/index.ts';
import { spaceFromSpec } from '../core/spaces/spec.ts';
import type { SearchSpace, Subnet } from '../core/spaces/types.ts';

// onnxruntime's telemetry off unless the user set it (device-client/measure.ts says why).
process.env.ORT_DISABLE_TELEMETRY ??= '1';

/** The ONNX bytes of a predictor (built from its stored model parameters). */
export function predictorOnnxBytes(predictor: PredictorJson): Uint8Array {
  return encodeModel(modelToOnnxGraph(predictor.model), {
    docString: `ESM latency predictor (${predictor.model.kind}) for space ${predictor.space.name}`,
    metadata: onnxMetadata({
      'esm.space': predictor.space.name,
      'esm.model': predictor.model.kind,
      'esm.features': JSON.stringify(predictor.features),
    }),
  });
}

/**
 * Writes `dir/predictor.json`, `dir/predictor.onnx` and, where the space has one, the arch-in
 * graph (`predictor-arch.onnx` + `predictor-arch.json`, docs/predictor.md), creating `dir`.
 * Returns the names of the files written.
 */
export async function savePredictor(dir: string, predictor: PredictorJson): Promise<string[]> {
  const arch = archFiles(spaceOf(predictor, dir), predictor);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, PREDICTOR_ONNX), predictorOnnxBytes(predictor));
  if (arch) {
    await writeFile(join(dir, ARCH_ONNX), arch.onnx);
    await writeFile(join(dir, ARCH_JSON), arch.json);
  }
  await writeFile(join(dir, PREDICTOR_JSON), `${JSON.stringify(predictor, null, 1)}\n`);
  return [PREDICTOR_JSON, PREDICTOR_ONNX, ...(arch ? [ARCH_ONNX, ARCH_JSON] : [])];
}

export interface LoadedPredictor {
  readonly dir: string;
  readonly json: PredictorJson;
  readonly space: SearchSpace;
  readonly featurizer: Featurizer;
  /** Latencies (ms) of native architectures; throws `ArchValidationError` naming the field. */
  predict(archs: readonly unknown[]): Promise<Float64Array>;
  predictSubnets(subnets: readonly Subnet[]): Promise<Float64Array>;
  /**
   * Latencies and their uncertainty (ms; docs/predictor.md, "Uncertainty"). A predictor
   * whose ONNX graph has no `std_ms` output (written before it existed) gives NaN.
   */
  predictSubnetsWithStd(
    subnets: readonly Subnet[],
  ): Promise<{ mean: Float64Array; std: Float64Array }>;
  /** Latencies of already encoded rows (row-major float32, `rows` x features length). */
  predictEncoded(x: Float32Array, rows: number): Promise<Float32Array>;
  close(): Promise<void>;
}

export interface LoadPredictorOptions {
  /** onnxruntime intra-op threads. @default 1 */
  readonly threads?: number;
  /**
   * Rows per onnxruntime call, bounding memory for large inputs. Small enough that a batch's
   * float32 buffer (4096 x 188 FCC features = 3 MB) stays in cache and does not trigger a
   * full garbage collection; 65536 rows made `predictSubnets` 2-3x slower.
   * @default 4096
   */
  readonly chunkRows?: number;
}

function spaceOf(json: PredictorJson, dir: string): SearchSpace {
  try {
    return json.space.spec === undefined
      ? getSpace(json.space.name)
      : spaceFromSpec(json.space.spec);
  } catch (cause) {
    throw new ValidationError(
      `${join(dir, PREDICTOR_JSON)}: space`,
      `cannot resolve space "${json.space.name}": ${(cause as Error).message}`,
      { cause },
    );
  }
}

/** Reads and validates a predictor directory and opens its ONNX session. */
export async function loadPredictor(
  dir: string,
  options: LoadPredictorOptions = {},
): Promise<LoadedPredictor> {
  const { threads = 1, chunkRows = 4096 } = options;
  const jsonPath = join(dir, PREDICTOR_JSON);
  let text: string;
  try {
    text = await readFile(jsonPath, 'utf8');
  } catch (cause) {
    // A run directory holds its predictor one level down.
    const inRun =
      existsSync(join(dir, 'state.json')) && existsSync(join(dir, 'predictor', PREDICTOR_JSON));
    const fix = inRun
      ? `${dir} is an esm run directory: pass ${join(dir, 'predictor')}`
      : 'pass a directory written by `esm fit --out DIR` (or the predictor/ of an esm run)';
    throw new ValidationError('predictor', `cannot read ${jsonPath}; ${fix}`, { cause });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ValidationError(jsonPath, 'is not valid JSON', { cause });
  }
  const json = parsePredictorJson(raw, jsonPath);
  const space = spaceOf(json, dir);
  const featurizer = createFeaturizer(space, featureChoiceOf(json.features));
  if (featurizer.features.length !== json.features.length) {
    throw new ValidationError(
      `${jsonPath}: features.length`,
      `is ${json.features.length} but the ${space.name} space now encodes to ${featurizer.features.length}; refit the predictor`,
    );
  }
  const onnxPath = join(dir, json.onnx.file);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(await readFile(onnxPath), {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    });
  } catch (cause) {
    throw new ValidationError(
      onnxPath,
      `cannot be loaded by onnxruntime (${(cause as Error).message}); refit with \`esm fit --out\``,
      { cause },
    );
  }
  const cols = json.features.length;

  const stdOutput = session.outputNames.includes(ONNX_STD_OUTPUT) ? ONNX_STD_OUTPUT : undefined;
  /** Runs the session on `n` encoded rows and writes the latencies at `out[start ..]`. */
  const runRows = async (
    x: Float32Array,
    n: number,
    out: Float32Array,
    start: number,
    std?: Float32Array,
  ) => {
    const input = new ort.Tensor('float32', x.subarray(0, n * cols), [n, cols]);
    const fetches = std && stdOutput ? [json.onnx.output, stdOutput] : [json.onnx.output];
    const result = await session.run({ [json.onnx.input]: input }, fetches);
    out.set((result[json.onnx.output] as ort.Tensor).data as Float32Array, start);
    if (std) {
      if (stdOutput) std.set((result[stdOutput] as ort.Tensor).data as Float32Array, start);
      else std.fill(Number.NaN, start, start + n);
    }
  };
  const predictEncoded = async (x: Float32Array, rows: number): Promise<Float32Array> => {
    if (x.length !== rows * cols) {
      throw new ValidationError('x', `expected ${rows} x ${cols} values, got ${x.length}`);
    }
    const out = new Float32Array(rows);
    for (let start = 0; start < rows; start += chunkRows) {
      const n = Math.min(chunkRows, rows - start);
      await runRows(x.subarray(start * cols), n, out, start);
    }
    return out;
  };
  // Encodes chunk by chunk into one reused float32 buffer: no per-subnet vector, no float64
  // matrix of the whole batch (150 MB per 100,000 FCC rows) and no float64-to-float32 copy.
  const run = async (subnets: readonly Subnet[], withStd: boolean) => {
    const x = new Float32Array(Math.min(chunkRows, subnets.length) * cols);
    const out = new Float32Array(subnets.length);
    const std = withStd ? new Float32Array(subnets.length) : undefined;
    for (let start = 0; start < subnets.length; start += chunkRows) {
      const n = Math.min(chunkRows, subnets.length - start);
      for (let i = 0; i < n; i++) featurizer.encodeInto(subnets[start + i] as Subnet, x, i * cols);
      await runRows(x, n, out, start, std);
    }
    return { mean: Float64Array.from(out), std: Float64Array.from(std ?? []) };
  };
  const predictSubnets = async (subnets: readonly Subnet[]): Promise<Float64Array> =>
    (await run(subnets, false)).mean;
  return {
    dir,
    json,
    space,
    featurizer,
    predictEncoded,
    predictSubnets,
    predictSubnetsWithStd: (subnets) => run(subnets, true),
    predict: (archs) => predictSubnets(archs.map((a) => space.parse(a))),
    close: () => session.release(),
  };
}
