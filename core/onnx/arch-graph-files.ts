/**
 * The arch-in files of a predictor directory, `predictor-arch.onnx` (the encoding subgraph in
 * front of the model graph) and `predictor-arch.json` (the row layout), as bytes and text. The
 * one function every writer of predictors calls (`esm fit`, the local loop through the
 * predictor store, the cloud training step), so none of them knows how the graph is built.
 * Pure: the caller writes the files. `undefined` where the features have no in-graph form yet.
 */
import { ArchGraphUnsupportedError } from '../errors.ts';
import type { PredictorJson } from '../predictor/artifact.ts';
import { modelToOnnxGraph, onnxMetadata } from '../predictor/export-onnx.ts';
import type { SearchSpace } from '../spaces/types.ts';
import { foldedArchInGraph, isFolded, NotFoldableError } from './arch-fold.ts';
import { archInGraph } from './arch-graph.ts';
import { ARCH_INPUT, archRowLayout, archRowLayoutJson } from './arch-graph-layout.ts';
import { encodeModel, type OnnxGraph } from './model.ts';

export interface ArchGraphOptions {
  /**
   * Fold the encoding and the model's affine maps into per-block tables where the model and
   * the features allow it (arch-fold.ts); false always builds the general graph.
   * @default true
   */
  readonly fold?: boolean;
}

/**
 * The arch-in graph of a predictor: the folded one where the model reads its input only
 * through Gemms and every feature is a sum over blocks, else the general one.
 */
export function archGraphOf(
  space: SearchSpace,
  features: PredictorJson['features'],
  model: OnnxGraph,
  options: ArchGraphOptions = {},
): OnnxGraph {
  if (options.fold ?? true) {
    try {
      return foldedArchInGraph(space, features, model);
    } catch (error) {
      if (!(error instanceof NotFoldableError)) throw error;
    }
  }
  return archInGraph(space, features, model);
}

export interface ArchFiles {
  /** predictor-arch.onnx */
  readonly onnx: Uint8Array;
  /** predictor-arch.json: the row layout, the input and the output names. */
  readonly json: string;
}

/**
 * @param model the model graph predictor.onnx holds; by default built from `predictor.model`
 *   (pass it when the caller already has it, or for a model kind built elsewhere)
 */
export function archFiles(
  space: SearchSpace,
  predictor: PredictorJson,
  model: OnnxGraph = modelToOnnxGraph(predictor.model),
  options: ArchGraphOptions = {},
): ArchFiles | undefined {
  const layout = archRowLayoutJson(archRowLayout(space));
  let graph: ReturnType<typeof archInGraph>;
  try {
    graph = archGraphOf(space, predictor.features, model, options);
  } catch (error) {
    // Predictors whose features have no in-graph form yet still save; they lack the arch-in files.
    if (error instanceof ArchGraphUnsupportedError) return undefined;
    throw error;
  }
  const outputs = graph.outputs.map((o) => o.name);
  const kind = isFolded(graph) ? 'folded' : 'general';
  const onnx = encodeModel(graph, {
    docString: `ESM predictor (${predictor.model.kind}) for space ${space.name}: input ${ARCH_INPUT} = arch rows (esm encode --arch-tensor), encoding inside the graph`,
    metadata: {
      ...onnxMetadata({
        'esm.space': space.name,
        'esm.model': predictor.model.kind,
        'esm.features': JSON.stringify(predictor.features),
      }),
      'esm.input': `${ARCH_INPUT}: int64 arch rows [batch, ${layout.length}], layout in esm.arch_row`,
      'esm.arch_row': JSON.stringify(layout),
      'esm.arch_graph': kind,
    },
  });
  // `graph`: whether the encoding and the model's affine maps are folded into per-block tables.
  const json = `${JSON.stringify({ ...layout, outputs, graph: kind, features: predictor.features }, null, 1)}\n`;
  return { onnx, json };
}
