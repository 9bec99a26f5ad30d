/**
 * The shape every search space shares: a fixed macro-architecture of units (stages),
 * each with an elastic number of blocks, per-block choices, optional per-unit choices,
 * global choices and an elastic input resolution. Named spaces (OFA MobileNetV3, OFA
 * ResNet50, our DenseNet, FBNet, NAS-Bench-201) and user-defined JSON specs are all
 * instances of it, so sampling, encodings and cardinality are written once, against `Subnet`.
 *
 * Layer-wise spaces (FBNet: any layer may be `skip`) use the reserved block choice `skip`
 * (`SKIP_CHOICE`): values 0, 1, .., k where 0 is a real layer and each value above 0 is a
 * kind of non-layer (FBNet: identity; NAS-Bench-201: `none` and `skip_connect`). A block with
 * skip > 0 has its other block choices at their first value (so a network has one normal
 * form), does not count towards depth, and counts once per kind in the cardinality.
 */

/** One discrete choice dimension, e.g. kernel size in {3, 5, 7}. */
export interface ChoiceDef {
  readonly name: string;
  readonly values: readonly number[];
}

/** A stage of the macro-architecture with an elastic depth. */
export interface UnitDef {
  readonly name: string;
  readonly minDepth: number;
  readonly maxDepth: number;
  /** Choices of every active block, in the space's `blockChoiceNames` order. */
  readonly blockChoices: readonly ChoiceDef[];
  /** Choices made once for the whole unit (e.g. ResNet stage width), in `unitChoiceNames` order. */
  readonly unitChoices: readonly ChoiceDef[];
}

/** A configuration of a space in normalised form; only active blocks are listed. */
export interface Subnet {
  readonly resolution: number;
  /** Space-wide choices (e.g. ResNet stem), keyed by `SearchSpace.globalChoices` names. */
  readonly globals: Readonly<Record<string, number>>;
  readonly units: readonly SubnetUnit[];
}

export interface SubnetUnit {
  readonly choices: Readonly<Record<string, number>>;
  readonly blocks: readonly Readonly<Record<string, number>>[];
}

/** The reserved block choice of layer-wise units; see the module comment. */
export const SKIP_CHOICE = 'skip';

export type Activation = 'relu' | 'h_swish' | 'none';

interface NodeBase {
  /** Unique node name; the graph input is named `input`. */
  readonly id: string;
  /** Spatial size (height = width) of this node's input. */
  readonly resolution: number;
}

/**
 * Inference-time layer graph, batch norm folded into the preceding convolution where the
 * trained network allows it. Padding is always "same" (kernel / 2), so an output's
 * resolution is ceil(resolution / stride).
 */
export type LayerNode =
  | (NodeBase & {
      readonly op: 'conv';
      readonly input: string;
      readonly cin: number;
      readonly cout: number;
      readonly kernel: number;
      readonly stride: number;
      readonly groups: number;
      readonly act: Activation;
    })
  /** Squeeze-excite: x * h_sigmoid(conv1x1(relu(conv1x1(global_avg_pool(x))))). */
  | (NodeBase & {
      readonly op: 'se';
      readonly input: string;
      readonly channels: number;
      readonly mid: number;
    })
  /** Per-channel affine (batch norm at inference) then activation, for pre-activation nets. */
  | (NodeBase & {
      readonly op: 'bn';
      readonly input: string;
      readonly channels: number;
      readonly act: Activation;
    })
  | (NodeBase & {
      readonly op: 'add';
      readonly inputs: readonly [string, string];
      readonly channels: number;
      readonly act: Activation;
    })
  | (NodeBase & {
      readonly op: 'concat';
      readonly inputs: readonly string[];
      /** Output channels: the sum of the inputs' channels. */
      readonly channels: number;
    })
  | (NodeBase & {
      readonly op: 'pool';
      readonly input: string;
      readonly kind: 'avg' | 'max' | 'global_avg';
      readonly kernel: number;
      readonly stride: number;
      readonly channels: number;
    })
  /** ShuffleNet's channel shuffle: [N, g, C/g, H, W] -> transpose(1, 2) -> [N, C, H, W]. */
  | (NodeBase & {
      readonly op: 'shuffle';
      readonly input: string;
      readonly channels: number;
      readonly groups: number;
    })
  /** A stand-alone activation (NAS-Bench-201's ReLU -> conv -> BN edges start with one). */
  | (NodeBase & {
      readonly op: 'act';
      readonly input: string;
      readonly channels: number;
      readonly act: Activation;
    })
  /**
   * Zeros of the input's shape (input x 0): the output of a NAS-Bench-201 cell with no path
   * from its input to its output. It keeps the data dependence, so no runtime folds it away.
   */
  | (NodeBase & {
      readonly op: 'zero';
      readonly input: string;
      readonly channels: number;
    })
  /** Fully connected layer on a 1x1 feature map (flattened). */
  | (NodeBase & {
      readonly op: 'linear';
      readonly input: string;
      readonly cin: number;
      readonly cout: number;
      readonly act: Activation;
    });

export type LayerOp = LayerNode['op'];

export interface LayerGraph {
  readonly space: string;
  readonly resolution: number;
  readonly inputChannels: number;
  /** Topologically ordered nodes. */
  readonly nodes: readonly LayerNode[];
  /** Id of the node whose output is the network output (logits). */
  readonly output: string;
}

/** Space-specific FCC features; see `SearchSpace.combinationFeatures`. */
export interface CombinationFeatures {
  readonly labels: readonly string[];
  /** Writes `labels.length` values at `out[offset ..]`, which the caller has zeroed. */
  fill(subnet: Subnet, out: Float32Array | Float64Array, offset: number): void;
}

/**
 * A search space. `parse` and `toNative` convert between the space's native architecture
 * JSON (OFA's format for the OFA spaces) and the normalised `Subnet`.
 */
export interface SearchSpace<Native = unknown> {
  readonly name: string;
  readonly description: string;
  readonly resolutions: readonly number[];
  readonly globalChoices: readonly ChoiceDef[];
  readonly units: readonly UnitDef[];
  /** Names of the per-block choices (same for every unit). */
  readonly blockChoiceNames: readonly string[];
  /** Names of the per-unit choices (same for every unit; may be empty). */
  readonly unitChoiceNames: readonly string[];
  /** Parse and validate a native architecture; throws `ArchValidationError` naming the field. */
  parse(native: unknown): Subnet;
  /** The native architecture JSON of a subnet. */
  toNative(subnet: Subnet): Native;
  /**
   * Other arch JSON forms that `parse` also reads, by name (e.g. OFA's `ofa-encoder`, with
   * `"image_size"`), so `esm sample --format` can write what a user's own tools expect.
   */
  readonly nativeForms?: Readonly<Record<string, (subnet: Subnet) => unknown>>;
  /**
   * Combinations that per-unit block counts cannot see because they live in the space's
   * topology (a cell's ops on live paths, op pairs along a path); FCC appends them.
   */
  readonly combinationFeatures?: CombinationFeatures;
  /** The layer graph that devices turn into ONNX and time. */
  layerGraph(subnet: Subnet): LayerGraph;
}
