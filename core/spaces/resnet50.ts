/**
 * OFA ResNet50 (`OFAResNets` in once-for-all, `ofa_resnets.py`) with depth list {0,1,2},
 * expand ratios {0.2,0.25,0.35} and width multipliers {0.65,0.8,1.0}.
 *
 * Native arch: `{"d":[5], "e":[18], "w":[6], "r":R}` as OFA's `sample_active_subnet` returns
 * it (plus the resolution; OFA's ResNetArchEncoder calls it `image_size`, also accepted). `d[0]` is the input-stem depth: the stem's middle (residual) conv runs only
 * when `d[0] == 2`; `d[1..4]` are added to the base stage depths [2,2,4,2]. `e` is one
 * expand ratio per block position (4+4+6+4), OFA order, inactive positions ignored. `w` are
 * indices into the width multipliers: `w[0]` the stem's first two convs, `w[1]` the stem
 * output, `w[2..5]` the four stages.
 *
 * Normalised form: globals `stemSkip` (1 = middle conv skipped), `stemMid` and `stemOut`
 * (stem channels; OFA's w[0]=0 and w[0]=1 both give 24 channels, so they are one choice),
 * unit choice `width` (the stage's multiplier) and block choice `expand`.
 */
import { ArchValidationError } from '../errors.ts';
import { GraphBuilder, makeDivisible, type Tensor } from './graph-builder.ts';
import { checkChoice, checkNumberArray, checkObject, checkResolution } from './subnet.ts';
import type { LayerGraph, SearchSpace, Subnet, UnitDef } from './types.ts';

export interface ResNet50Arch {
  d: number[];
  e: number[];
  w: number[];
  r: number;
}

const WIDTH_MULTS = [0.65, 0.8, 1.0] as const;
const EXPANDS = [0.2, 0.25, 0.35] as const;
const DEPTH_DELTAS = [0, 1, 2] as const;
const BASE_DEPTHS = [2, 2, 4, 2] as const;
const MAX_DEPTHS = BASE_DEPTHS.map((b) => b + 2);
const STAGE_WIDTHS = [256, 512, 1024, 2048] as const;
const STRIDES = [1, 2, 2, 2] as const;
const WIDTH_INDICES = [0, 1, 2] as const;
const STEM_DEPTHS = [0, 1, 2] as const;
/** 128..224 step 4, like our MobileNetV3; OFA trained its ResNet on 128..256. */
const RESOLUTIONS = Array.from({ length: 25 }, (_, i) => 128 + 4 * i);
const POSITIONS = MAX_DEPTHS.reduce((a, b) => a + b, 0);

/** OFA's stem output width for each multiplier: make_divisible(64 * wm). */
const STEM_OUT = WIDTH_MULTS.map((wm) => makeDivisible(64 * wm));
/** OFA's stem middle width: make_divisible(stem_out // 2); equal for the two smaller multipliers. */
const STEM_MID_BY_INDEX = STEM_OUT.map((c) => makeDivisible(Math.floor(c / 2)));
const STEM_MID = [...new Set(STEM_MID_BY_INDEX)];

const units: UnitDef[] = BASE_DEPTHS.map((base, u) => ({
  name: `stage${u + 1} (w${STAGE_WIDTHS[u]}, s${STRIDES[u]})`,
  minDepth: base,
  maxDepth: base + 2,
  blockChoices: [{ name: 'expand', values: EXPANDS }],
  unitChoices: [{ name: 'width', values: WIDTH_MULTS }],
}));

function offset(u: number): number {
  let o = 0;
  for (let i = 0; i < u; i++) o += MAX_DEPTHS[i] as number;
  return o;
}

function parse(native: unknown): Subnet {
  const arch = checkObject(native, 'resnet50');
  for (const key of Object.keys(arch)) {
    if (!['d', 'e', 'w', 'r', 'image_size'].includes(key)) {
      throw new ArchValidationError(key, 'unknown field; a resnet50 arch has d, e, w and r');
    }
  }
  const d = checkNumberArray('d', arch.d, 5);
  const e = checkNumberArray('e', arch.e, POSITIONS);
  const w = checkNumberArray('w', arch.w, 6);
  const r = checkResolution(arch, RESOLUTIONS, { keys: ['r', 'image_size'], fallback: 224 });
  const stemDepth = checkChoice('d[0]', d[0], STEM_DEPTHS);
  const wIndex = w.map((value, i) => checkChoice(`w[${i}]`, value, WIDTH_INDICES));
  return {
    resolution: r,
    globals: {
      stemSkip: stemDepth === 2 ? 0 : 1,
      stemMid: STEM_MID_BY_INDEX[wIndex[0] as number] as number,
      stemOut: STEM_OUT[wIndex[1] as number] as number,
    },
    units: BASE_DEPTHS.map((base, u) => {
      const delta = checkChoice(`d[${u + 1}]`, d[u + 1], DEPTH_DELTAS);
      const blocks = [];
      for (let i = 0; i < base + delta; i++) {
        const p = offset(u) + i;
        blocks.push({ expand: checkChoice(`e[${p}]`, e[p], EXPANDS) });
      }
      return { choices: { width: WIDTH_MULTS[wIndex[u + 2] as number] as number }, blocks };
    }),
  };
}

function toNative(subnet: Subnet): ResNet50Arch {
  const e: number[] = [];
  subnet.units.forEach((unit, u) => {
    for (let i = 0; i < (MAX_DEPTHS[u] as number); i++) {
      // Inactive positions repeat the stage's last active block, which OFA ignores.
      e.push(unit.blocks[Math.min(i, unit.blocks.length - 1)]?.expand ?? EXPANDS[0]);
    }
  });
  const index = (values: readonly number[], v: number | undefined) =>
    Math.max(0, values.indexOf(v as number));
  return {
    d: [
      subnet.globals.stemSkip === 1 ? 0 : 2,
      ...subnet.units.map((unit, u) => unit.blocks.length - (BASE_DEPTHS[u] as number)),
    ],
    e,
    w: [
      index(STEM_MID_BY_INDEX, subnet.globals.stemMid),
      index(STEM_OUT, subnet.globals.stemOut),
      ...subnet.units.map((unit) => index(WIDTH_MULTS, unit.choices.width)),
    ],
    r: subnet.resolution,
  };
}

/** OFA's bottleneck: 1x1 -> kxk (stride) -> 1x1, shortcut avgpool+1x1 when the shape changes. */
export function bottleneck(
  g: GraphBuilder,
  x: Tensor,
  options: { cout: number; expand: number; stride: number; kernel?: number },
): Tensor {
  const { cout, expand, stride, kernel = 3 } = options;
  // Python's round() ties to even, but width * expand never lands on .5 for these values.
  const mid = makeDivisible(Math.round(cout * expand));
  let shortcut = x;
  if (stride !== 1 || x.channels !== cout) {
    if (stride > 1) shortcut = g.pool(shortcut, 'avg', stride, stride);
    shortcut = g.conv(shortcut, { cout, kernel: 1 });
  }
  let h = g.conv(x, { cout: mid, kernel: 1, act: 'relu' });
  h = g.conv(h, { cout: mid, kernel, stride, act: 'relu' });
  h = g.conv(h, { cout, kernel: 1 });
  return g.add(h, shortcut, 'relu');
}

function layerGraph(subnet: Subnet): LayerGraph {
  const g = new GraphBuilder('resnet50', subnet.resolution);
  const mid = subnet.globals.stemMid as number;
  let x = g.conv(g.input(), { cout: mid, kernel: 3, stride: 2, act: 'relu' });
  if (subnet.globals.stemSkip !== 1) {
    x = g.add(g.conv(x, { cout: mid, kernel: 3, act: 'relu' }), x);
  }
  x = g.conv(x, { cout: subnet.globals.stemOut as number, kernel: 3, act: 'relu' });
  x = g.pool(x, 'max', 3, 2);
  subnet.units.forEach((unit, u) => {
    const cout = makeDivisible((STAGE_WIDTHS[u] as number) * (unit.choices.width as number));
    unit.blocks.forEach((block, i) => {
      x = bottleneck(g, x, {
        cout,
        expand: block.expand as number,
        stride: i === 0 ? (STRIDES[u] as number) : 1,
      });
    });
  });
  x = g.globalPool(x);
  x = g.linear(x, 1000);
  return g.build(x);
}

/** The arch as OFA's ResNetArchEncoder writes it (`random_sample_arch`). */
function toOfaEncoder(subnet: Subnet) {
  const { r, ...rest } = toNative(subnet);
  return { ...rest, image_size: r };
}

export const resnet50: SearchSpace<ResNet50Arch> = {
  name: 'resnet50',
  description:
    'OFA ResNet50: stem (skippable middle conv), 4 stages of 2-4/2-4/4-6/2-4 bottlenecks, expand {0.2,0.25,0.35}, width x{0.65,0.8,1.0}, resolution 128..224 step 4',
  resolutions: RESOLUTIONS,
  globalChoices: [
    { name: 'stemSkip', values: [0, 1] },
    { name: 'stemMid', values: STEM_MID },
    { name: 'stemOut', values: STEM_OUT },
  ],
  units,
  blockChoiceNames: ['expand'],
  unitChoiceNames: ['width'],
  parse,
  toNative,
  nativeForms: { 'ofa-encoder': toOfaEncoder },
  layerGraph,
};
