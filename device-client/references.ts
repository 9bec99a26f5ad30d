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
