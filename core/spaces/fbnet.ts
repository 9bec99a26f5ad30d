/**
 * FBNet (Wu et al., CVPR 2019) as HW-NAS-Bench (Li et al., ICLR 2021) and HELP define it: a
 * layer-wise space of 22 searchable layers in 7 stages, each layer one of 9 ops.
 *
 * Native arch: `{"ops": [22 ints]}` indexing `FBNET_OPS` (op names are accepted too).
 * `kK_eE[_gG]` is 1x1 conv (C_in -> E x C_in, groups G) + BN + ReLU -> channel shuffle when
 * G > 1 -> KxK depthwise (the layer's stride) + BN + ReLU -> 1x1 conv (-> C_out, groups G) +
 * BN, plus the input when the shape allows (HW-NAS-Bench's `ConvBlock`); `skip` is the
 * identity, or 1x1 conv (stride) + BN + ReLU where the stride is 2 or the channels change.
 * Only a stage's first layer strides or changes channels.
 *
 * Normalised form: 7 layer-wise units of [1,4,4,4,4,4,1] slots; a block is
 * `{op: 0..7, skip: 0}` or the skip `{op: 0, skip: 1}`, so depth = layers that are not skips
 * (0..22) and FCC counts a skip in a stage's first slot (a 1x1 conv there) apart from one
 * later (free).
 */
import { ArchValidationError } from '../errors.ts';
import { GraphBuilder, type Tensor } from './graph-builder.ts';
import { checkObject, isSkip, skipBlock } from './subnet.ts';
import type { LayerGraph, SearchSpace, Subnet, UnitDef } from './types.ts';

export interface FBNetArch {
  ops: number[];
}

/** HW-NAS-Bench's `PRIMITIVES`, in its order (the index is the native value). */
export const FBNET_OPS = [
  'k3_e1',
  'k3_e1_g2',
  'k3_e3',
  'k3_e6',
  'k5_e1',
  'k5_e1_g2',
  'k5_e3',
  'k5_e6',
  'skip',
] as const;
const SKIP_OP = FBNET_OPS.indexOf('skip');

/** Kernel, expansion and groups of each op but skip. */
const OP_SHAPES = FBNET_OPS.slice(0, SKIP_OP).map((name) => {
  const [, k, e, g] = /^k(\d)_e(\d)(?:_g(\d))?$/.exec(name) ?? [];
  return { kernel: Number(k), expand: Number(e), groups: Number(g ?? 1) };
});

const STAGE_LAYERS = [1, 4, 4, 4, 4, 4, 1] as const;
const STAGE_WIDTHS = [16, 24, 32, 64, 112, 184, 352] as const;
const STEM_WIDTH = 16;
const LAYERS = STAGE_LAYERS.reduce((a, b) => a + b, 0);

/** One of HW-NAS-Bench's two input configurations. */
export interface FBNetConfig {
  readonly name: string;
  readonly dataset: string;
  readonly resolution: number;
  readonly stemStride: number;
  readonly strides: readonly number[];
  readonly headWidth: number;
  readonly classes: number;
}

/** HW-NAS-Bench's CIFAR setting ("unofficial"), the one HELP's FBNet latencies use. */
export const FBNET_CIFAR100: FBNetConfig = {
  name: 'fbnet',
  dataset: 'cifar100',
  resolution: 32,
  stemStride: 1,
  strides: [1, 1, 2, 2, 1, 2, 1],
  headWidth: 1504,
  classes: 100,
};

/** FBNet-v1's official ImageNet setting. */
export const FBNET_IMAGENET: FBNetConfig = {
  name: 'fbnet-imagenet',
  dataset: 'imagenet',
  resolution: 224,
  stemStride: 2,
  strides: [1, 2, 2, 2, 1, 2, 1],
  headWidth: 1984,
  classes: 1000,
};

/**
 * An FBNet `kK_eE[_gG]` layer (HW-NAS-Bench's `ConvBlock`); spec spaces use it for their
 * `fbnet` block type. The last 1x1 conv has no activation, as in the source.
 */
export function fbnetLayer(
  g: GraphBuilder,
  x: Tensor,
  options: { cout: number; kernel: number; expand: number; groups: number; stride: number },
): Tensor {
  const { cout, kernel, expand, groups, stride } = options;
  const mid = x.channels * expand;
  let h = g.conv(x, { cout: mid, kernel: 1, groups, act: 'relu' });
  if (groups > 1) h = g.shuffle(h, groups);
  h = g.conv(h, { cout: mid, kernel, stride, groups: mid, act: 'relu' });
  h = g.conv(h, { cout, kernel: 1, groups });
  return stride === 1 && x.channels === cout ? g.add(h, x) : h;
}

/** FBNet's `skip`: the identity, or 1x1 conv + BN + ReLU where the shape changes. */
export function fbnetSkip(
  g: GraphBuilder,
  x: Tensor,
  options: { cout: number; stride: number },
): Tensor {
  if (options.stride === 1 && x.channels === options.cout) return x;
  return g.conv(x, { cout: options.cout, kernel: 1, stride: options.stride, act: 'relu' });
}

function opIndex(field: string, value: unknown): number {
  const index =
    typeof value === 'string' ? (FBNET_OPS as readonly string[]).indexOf(value) : Number.NaN;
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= SKIP_OP) {
    return value;
  }
  if (index >= 0) return index;
  throw new ArchValidationError(
    field,
    `got ${JSON.stringify(value)}, allowed values are 0..${SKIP_OP} (${FBNET_OPS.map((n, i) => `${i} ${n}`).join(', ')})`,
  );
}

/** The FBNet space of one input configuration. */
export function fbnetSpace(config: FBNetConfig): SearchSpace<FBNetArch> {
  const units: UnitDef[] = STAGE_LAYERS.map((layers, u) => ({
    name: `stage${u + 1} (w${STAGE_WIDTHS[u]}, s${config.strides[u]}, ${layers} layer${layers > 1 ? 's' : ''})`,
    minDepth: layers,
    maxDepth: layers,
    blockChoices: [
      { name: 'op', values: OP_SHAPES.map((_, i) => i) },
      { name: 'skip', values: [0, 1] },
    ],
    unitChoices: [],
  }));

  function parse(native: unknown): Subnet {
    const arch = checkObject(native, config.name);
    for (const key of Object.keys(arch)) {
      if (key !== 'ops') {
        throw new ArchValidationError(key, `unknown field; a ${config.name} arch has only ops`);
      }
    }
    const ops = arch.ops;
    if (!Array.isArray(ops) || ops.length !== LAYERS) {
      throw new ArchValidationError(
        'ops',
        `expected an array of ${LAYERS} op indices (0..${SKIP_OP}), got ${JSON.stringify(ops)?.slice(0, 80)}`,
      );
    }
    let at = 0;
    return {
      resolution: config.resolution,
      globals: {},
      units: units.map((unit) => {
        const blocks = [];
        for (let i = 0; i < unit.maxDepth; i++) {
          const op = opIndex(`ops[${at}]`, ops[at]);
          at += 1;
          blocks.push(op === SKIP_OP ? skipBlock(unit, 1) : { op, skip: 0 });
        }
        return { choices: {}, blocks };
      }),
    };
  }

  function toNative(subnet: Subnet): FBNetArch {
    return {
      ops: subnet.units.flatMap((unit) =>
        unit.blocks.map((block) => (isSkip(block) ? SKIP_OP : (block.op as number))),
      ),
    };
  }

  function layerGraph(subnet: Subnet): LayerGraph {
    const g = new GraphBuilder(config.name, config.resolution);
    let x = g.conv(g.input(), {
      cout: STEM_WIDTH,
      kernel: 3,
      stride: config.stemStride,
      act: 'relu',
    });
    subnet.units.forEach((unit, u) => {
      const cout = STAGE_WIDTHS[u] as number;
      unit.blocks.forEach((block, i) => {
        const stride = i === 0 ? (config.strides[u] as number) : 1;
        if (isSkip(block)) {
          x = fbnetSkip(g, x, { cout, stride });
          return;
        }
        const shape = OP_SHAPES[block.op as number];
        if (!shape) throw new ArchValidationError(`units[${u}].blocks[${i}].op`, 'not an op');
        x = fbnetLayer(g, x, { cout, stride, ...shape });
      });
    });
    x = g.conv(x, { cout: config.headWidth, kernel: 1, act: 'relu' });
    x = g.globalPool(x);
    x = g.linear(x, config.classes);
    return g.build(x);
  }

  return {
    name: config.name,
    description: `FBNet (HW-NAS-Bench), ${config.dataset} input ${config.resolution}x${config.resolution}: 22 layers in stages of 1-4-4-4-4-4-1, each one of 9 ops (k3/k5, e1/e3/e6, g2, skip)`,
    resolutions: [config.resolution],
    globalChoices: [],
    units,
    blockChoiceNames: ['op', 'skip'],
    unitChoiceNames: [],
    parse,
    toNative,
    layerGraph,
  };
}

export const fbnet = fbnetSpace(FBNET_CIFAR100);
export const fbnetImagenet = fbnetSpace(FBNET_IMAGENET);
