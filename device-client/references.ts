/**
 * Reference models: fixed architectures measured at the start and end of every job (and every
 * `referenceEvery` samples). Their latency cannot change within a job, so a drift of their
 * median reveals a device whose speed changed (thermal throttling, a competing process), and
 * the job's samples are flagged instead of silently trusted (ESM's quality-assurance step).
 * Two sizes, because interference hits small and large models differently.
 */
export interface ReferenceModel {
  readonly id: string;
  readonly space: string;
  readonly arch: Record<string, unknown>;
}

const uniform = (kernel: number, expand: number, depth: number, resolution: number) => ({
  ks: Array<number>(20).fill(kernel),
  e: Array<number>(20).fill(expand),
  d: Array<number>(5).fill(depth),
  r: resolution,
});

/** The smallest OFA MobileNetV3 subnet and a mid-size one, both at resolution 160. */
export const defaultReferences: readonly ReferenceModel[] = [
  { id: 'ref-mbv3-small-r160', space: 'mobilenetv3', arch: uniform(3, 3, 2, 160) },
  { id: 'ref-mbv3-mid-r160', space: 'mobilenetv3', arch: uniform(5, 4, 3, 160) },
];

/** The model whose process-to-process variation `scripts/bench/measurement.ts` reports. */
export const stabilityReference: ReferenceModel = defaultReferences[1] as ReferenceModel;

const fill = (length: number, value: number) => Array<number>(length).fill(value);

/**
 * The smallest and largest subnet of each built-in space, as native archs (benchmarks, tests,
 * `esm measure --arch smallest|largest`). ResNet50's largest keeps the stem's middle conv
 * (d[0] = 2), which "every choice at its maximum" would not express.
 */
export const extremeArchs: Readonly<
  Record<string, { smallest: Record<string, unknown>; largest: Record<string, unknown> }>
> = {
  mobilenetv3: { smallest: uniform(3, 3, 2, 128), largest: uniform(7, 6, 4, 224) },
  resnet50: {
    smallest: { d: fill(5, 0), e: fill(18, 0.2), w: fill(6, 0), r: 128 },
    largest: { d: fill(5, 2), e: fill(18, 0.35), w: fill(6, 2), r: 224 },
  },
  densenet: {
    smallest: { d: fill(4, 2), g: fill(34, 16), b: fill(34, 2), k: fill(34, 3), r: 128 },
    largest: { d: [6, 8, 12, 8], g: fill(34, 32), b: fill(34, 4), k: fill(34, 5), r: 224 },
  },
  // FBNet: every layer skip (op 8) / every layer k5_e6 (op 7).
  fbnet: { smallest: { ops: fill(22, 8) }, largest: { ops: fill(22, 7) } },
  'fbnet-imagenet': { smallest: { ops: fill(22, 8) }, largest: { ops: fill(22, 7) } },
  // NAS-Bench-201: the all-none cell (a dead cell) / the all-conv-3x3 cell.
  nasbench201: {
    smallest: { arch_str: '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|' },
    largest: {
      arch_str:
        '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|',
    },
  },
};
