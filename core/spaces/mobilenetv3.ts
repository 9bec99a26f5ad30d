/**
 * OFA MobileNetV3 (width 1.0), the space of Cai et al., "Once-for-All" (ICLR 2020).
 * Native arch: `{"ks":[20], "e":[20], "d":[5], "r":R}` in OFA's order; block `4u+i` is the
 * i-th block of unit u and is active when i < d[u]. OFA's own tools write the resolution as
 * `"r": [R]` with `"wid": null` (ArchManager) or `"image_size": R` (MobileNetArchEncoder);
 * both are read, and written by `nativeForms` (`esm sample --format`).
 */
import { ArchValidationError } from '../errors.ts';
import { GraphBuilder, makeDivisible, type Tensor } from './graph-builder.ts';
import { checkChoice, checkNumberArray, checkObject, checkResolution } from './subnet.ts';
import type { Activation, SearchSpace, Subnet, UnitDef } from './types.ts';

export interface MobileNetV3Arch {
  ks: number[];
  e: number[];
  d: number[];
  r: number;
}

const WIDTHS = [24, 40, 80, 112, 160] as const;
const STRIDES = [2, 2, 2, 1, 2] as const;
const ACTS: readonly Activation[] = ['relu', 'relu', 'h_swish', 'h_swish', 'h_swish'];
const USE_SE = [false, true, false, true, true] as const;
const KERNELS = [3, 5, 7] as const;
const EXPANDS = [3, 4, 6] as const;
const DEPTHS = [2, 3, 4] as const;
const MAX_DEPTH = 4;
const RESOLUTIONS = Array.from({ length: 25 }, (_, i) => 128 + 4 * i);

const units: UnitDef[] = WIDTHS.map((width, u) => ({
  name: `unit${u + 1} (w${width}, s${STRIDES[u]}, ${ACTS[u]}${USE_SE[u] ? ', SE' : ''})`,
  minDepth: 2,
  maxDepth: MAX_DEPTH,
  blockChoices: [
    { name: 'kernel', values: KERNELS },
    { name: 'expand', values: EXPANDS },
  ],
  unitChoices: [],
}));

function parse(native: unknown): Subnet {
  const arch = checkObject(native, 'mobilenetv3');
  const ks = checkNumberArray('ks', arch.ks, 20);
  const e = checkNumberArray('e', arch.e, 20);
  const d = checkNumberArray('d', arch.d, 5);
  const r = checkResolution(arch, RESOLUTIONS, { keys: ['r', 'image_size'], fallback: 224 });
  for (const key of Object.keys(arch)) {
    if (!['ks', 'e', 'd', 'r', 'image_size', 'wid'].includes(key)) {
      throw new ArchValidationError(
        key,
        'unknown field; a mobilenetv3 arch has ks, e, d and r (or image_size)',
      );
    }
  }
  // OFA's ArchManager writes "wid": null (no width multiplier); this space is width 1.0 only.
  if (arch.wid !== undefined && arch.wid !== null) {
    throw new ArchValidationError(
      'wid',
      `got ${JSON.stringify(arch.wid)}; this space is OFA w1.0, use null or leave it out`,
    );
  }
  return {
    resolution: r,
    globals: {},
    units: d.map((depth, u) => {
      checkChoice(`d[${u}]`, depth, DEPTHS);
      const blocks = [];
      for (let i = 0; i < depth; i++) {
        const b = u * MAX_DEPTH + i;
        blocks.push({
          kernel: checkChoice(`ks[${b}]`, ks[b], KERNELS),
          expand: checkChoice(`e[${b}]`, e[b], EXPANDS),
        });
      }
      return { choices: {}, blocks };
    }),
  };
}

function toNative(subnet: Subnet): MobileNetV3Arch {
  // Inactive positions repeat the unit's last active block, which OFA ignores.
  const ks: number[] = [];
  const e: number[] = [];
  for (const unit of subnet.units) {
    for (let i = 0; i < MAX_DEPTH; i++) {
      const block = unit.blocks[Math.min(i, unit.blocks.length - 1)];
      ks.push(block?.kernel ?? 3);
      e.push(block?.expand ?? 3);
    }
  }
  return { ks, e, d: subnet.units.map((u) => u.blocks.length), r: subnet.resolution };
}

/** One MBConv block: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 project, plus identity. */
export function mbconv(
  g: GraphBuilder,
  x: Tensor,
  options: {
    cout: number;
    kernel: number;
    expand: number;
    stride: number;
    act: Activation;
    se: boolean;
  },
): Tensor {
  const mid = makeDivisible(Math.round(x.channels * options.expand));
  let h = x;
  if (options.expand !== 1) h = g.conv(h, { cout: mid, kernel: 1, act: options.act });
  h = g.conv(h, {
    cout: mid,
    kernel: options.kernel,
    stride: options.stride,
    groups: mid,
    act: options.act,
  });
  if (options.se) h = g.se(h, makeDivisible(Math.floor(mid / 4)));
  h = g.conv(h, { cout: options.cout, kernel: 1 });
  return options.stride === 1 && x.channels === options.cout ? g.add(h, x) : h;
}

function layerGraph(subnet: Subnet) {
  const g = new GraphBuilder('mobilenetv3', subnet.resolution);
  let x = g.conv(g.input(), { cout: 16, kernel: 3, stride: 2, act: 'h_swish' });
  x = mbconv(g, x, { cout: 16, kernel: 3, expand: 1, stride: 1, act: 'relu', se: false });
  subnet.units.forEach((unit, u) => {
    unit.blocks.forEach((block, i) => {
      x = mbconv(g, x, {
        cout: WIDTHS[u] as number,
        kernel: block.kernel as number,
        expand: block.expand as number,
        stride: i === 0 ? (STRIDES[u] as number) : 1,
        act: ACTS[u] as Activation,
        se: USE_SE[u] as boolean,
      });
    });
  });
  x = g.conv(x, { cout: 960, kernel: 1, act: 'h_swish' });
  x = g.globalPool(x);
  x = g.conv(x, { cout: 1280, kernel: 1, act: 'h_swish' });
  x = g.linear(x, 1000);
  return g.build(x);
}

/** The arch as OFA's MobileNetArchEncoder writes it (`random_sample_arch`). */
function toOfaEncoder(subnet: Subnet) {
  const { r, ...rest } = toNative(subnet);
  return { ...rest, image_size: r };
}

/** The arch as OFA's ArchManager (`random_sample`) writes it. */
function toOfaManager(subnet: Subnet) {
  const { r, ...rest } = toNative(subnet);
  return { wid: null, ...rest, r: [r] };
}

export const mobilenetv3: SearchSpace<MobileNetV3Arch> = {
  name: 'mobilenetv3',
  description:
    'OFA MobileNetV3 w1.0: 5 units x 2-4 MBConv blocks, kernel {3,5,7}, expand {3,4,6}, resolution 128..224 step 4',
  resolutions: RESOLUTIONS,
  globalChoices: [],
  units,
  blockChoiceNames: ['kernel', 'expand'],
  unitChoiceNames: [],
  parse,
  toNative,
  nativeForms: { 'ofa-encoder': toOfaEncoder, 'ofa-manager': toOfaManager },
  layerGraph,
};
