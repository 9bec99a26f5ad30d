/**
 * Our DenseNet-BC supernet (Huang et al., "Densely Connected Convolutional Networks"): the
 * DenseNet-121 macro-architecture with elastic depth per dense block and per-layer growth
 * rate, bottleneck width and kernel, so that FCC sees real feature combinations and the
 * depth range (8..34 layers) supports 10 and more depth bins. docs/spaces.md defines it.
 *
 * Native arch: `{"d":[4], "g":[34], "b":[34], "k":[34], "r":R}`. `d[u]` is the number of
 * layers of dense block u; position `offset(u) + i` (offsets 0, 6, 14, 26) holds the growth
 * rate, bottleneck factor (bn_size) and kernel of layer i of block u; inactive positions are
 * ignored, as in OFA's format.
 */
import { ArchValidationError } from '../errors.ts';
import { GraphBuilder, type Tensor } from './graph-builder.ts';
import { checkChoice, checkNumberArray, checkObject, checkResolution } from './subnet.ts';
import type { LayerGraph, SearchSpace, Subnet, UnitDef } from './types.ts';

export interface DenseNetArch {
  d: number[];
  g: number[];
  b: number[];
  k: number[];
  r: number;
}

const MIN_DEPTHS = [2, 2, 2, 2] as const;
const MAX_DEPTHS = [6, 8, 12, 8] as const;
const GROWTHS = [16, 24, 32] as const;
const BN_SIZES = [2, 4] as const;
const KERNELS = [3, 5] as const;
const STEM_CHANNELS = 64;
const COMPRESSION = 0.5;
const RESOLUTIONS = Array.from({ length: 7 }, (_, i) => 128 + 16 * i);
const POSITIONS = MAX_DEPTHS.reduce((a, b) => a + b, 0);

const units: UnitDef[] = MAX_DEPTHS.map((max, u) => ({
  name: `denseblock${u + 1}`,
  minDepth: MIN_DEPTHS[u] as number,
  maxDepth: max,
  blockChoices: [
    { name: 'growth', values: GROWTHS },
    { name: 'bnSize', values: BN_SIZES },
    { name: 'kernel', values: KERNELS },
  ],
  unitChoices: [],
}));

function offset(u: number): number {
  let o = 0;
  for (let i = 0; i < u; i++) o += MAX_DEPTHS[i] as number;
  return o;
}

function parse(native: unknown): Subnet {
  const arch = checkObject(native, 'densenet');
  for (const key of Object.keys(arch)) {
    if (!['d', 'g', 'b', 'k', 'r'].includes(key)) {
      throw new ArchValidationError(key, 'unknown field; a densenet arch has d, g, b, k and r');
    }
  }
  const d = checkNumberArray('d', arch.d, MAX_DEPTHS.length);
  const g = checkNumberArray('g', arch.g, POSITIONS);
  const b = checkNumberArray('b', arch.b, POSITIONS);
  const k = checkNumberArray('k', arch.k, POSITIONS);
  const r = checkResolution(arch, RESOLUTIONS, { fallback: 224 });
  return {
    resolution: r,
    globals: {},
    units: MAX_DEPTHS.map((max, u) => {
      const allowed = Array.from({ length: max - 1 }, (_, i) => i + (MIN_DEPTHS[u] as number));
      const depth = checkChoice(`d[${u}]`, d[u], allowed);
      const blocks = [];
      for (let i = 0; i < depth; i++) {
        const p = offset(u) + i;
        blocks.push({
          growth: checkChoice(`g[${p}]`, g[p], GROWTHS),
          bnSize: checkChoice(`b[${p}]`, b[p], BN_SIZES),
          kernel: checkChoice(`k[${p}]`, k[p], KERNELS),
        });
      }
      return { choices: {}, blocks };
    }),
  };
}

function toNative(subnet: Subnet): DenseNetArch {
  const arch: DenseNetArch = { d: [], g: [], b: [], k: [], r: subnet.resolution };
  subnet.units.forEach((unit, u) => {
    arch.d.push(unit.blocks.length);
    for (let i = 0; i < (MAX_DEPTHS[u] as number); i++) {
      // Inactive positions repeat the block's last active layer; parse ignores them.
      const layer = unit.blocks[Math.min(i, unit.blocks.length - 1)];
      arch.g.push(layer?.growth ?? GROWTHS[0]);
      arch.b.push(layer?.bnSize ?? BN_SIZES[0]);
      arch.k.push(layer?.kernel ?? KERNELS[0]);
    }
  });
  return arch;
}

/**
 * A pre-activation dense layer: bn+relu -> 1x1 (bnSize*growth) -> bn+relu -> kxk (growth),
 * concatenated to its input. The middle bn+relu folds into the 1x1 conv; the first cannot,
 * because the concatenated features feed later layers without it.
 */
export function denseLayer(
  g: GraphBuilder,
  x: Tensor,
  options: { growth: number; bnSize: number; kernel: number },
): Tensor {
  let h = g.bn(x, 'relu');
  h = g.conv(h, { cout: options.bnSize * options.growth, kernel: 1, act: 'relu' });
  h = g.conv(h, { cout: options.growth, kernel: options.kernel });
  return g.concat([x, h]);
}

/** bn+relu -> 1x1 conv to `cout` -> 2x2 average pool when `stride` is 2. */
export function transition(
  g: GraphBuilder,
  x: Tensor,
  options: { cout: number; stride: number },
): Tensor {
  let h = g.bn(x, 'relu');
  h = g.conv(h, { cout: options.cout, kernel: 1 });
  return options.stride > 1 ? g.pool(h, 'avg', options.stride, options.stride) : h;
}

function layerGraph(subnet: Subnet): LayerGraph {
  const g = new GraphBuilder('densenet', subnet.resolution);
  let x = g.conv(g.input(), { cout: STEM_CHANNELS, kernel: 7, stride: 2, act: 'relu' });
  x = g.pool(x, 'max', 3, 2);
  subnet.units.forEach((unit, u) => {
    if (u > 0) x = transition(g, x, { cout: Math.floor(x.channels * COMPRESSION), stride: 2 });
    for (const layer of unit.blocks) {
      x = denseLayer(g, x, {
        growth: layer.growth as number,
        bnSize: layer.bnSize as number,
        kernel: layer.kernel as number,
      });
    }
  });
  x = g.bn(x, 'relu');
  x = g.globalPool(x);
  x = g.linear(x, 1000);
  return g.build(x);
}

export const densenet: SearchSpace<DenseNetArch> = {
  name: 'densenet',
  description:
    'DenseNet-BC supernet: 4 dense blocks of 2-6/2-8/2-12/2-8 layers, growth {16,24,32}, bn_size {2,4}, kernel {3,5}, resolution 128..224 step 16',
  resolutions: RESOLUTIONS,
  globalChoices: [],
  units,
  blockChoiceNames: ['growth', 'bnSize', 'kernel'],
  unitChoiceNames: [],
  parse,
  toNative,
  layerGraph,
};
