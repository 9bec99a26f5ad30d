/**
 * Measured-looking MobileNetV3 datasets from the synthetic latency model, for CLI tests that
 * need a dataset file (fit, predict, transfer between two devices), and the same as the
 * loop's training rows (`trainIteration` tests).
 */
import { type SyntheticDevice, syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import { createRng, type Rng } from '../../core/rng.ts';
import { binOf, type DepthBin } from '../../core/sampling.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { depth, randomSubnet } from '../../core/spaces/subnet.ts';
import type { TrainRow } from '../../core/train-iteration.ts';

export interface SyntheticLine {
  arch: unknown;
  latency_ms: number;
}

/** A second device: every operator type faster by a different factor, more overhead. */
export const deviceB: SyntheticDevice = {
  overheadMs: 0.03,
  denseMacsPerMs: 2.6e7,
  depthwiseMacsPerMs: 1.8e6,
  elementsPerMs: 2.4e6,
};

/** `n` dataset lines of random subnets on `device` (default: the model's CPU). */
export function syntheticLines(
  n: number,
  rng: Rng,
  options: { device?: SyntheticDevice; noise: number },
): SyntheticLine[] {
  return Array.from({ length: n }, () => {
    const subnet = randomSubnet(mobilenetv3, rng);
    const latency = syntheticLatencyMs(mobilenetv3, subnet, { ...options, rng });
    return { arch: mobilenetv3.toNative(subnet), latency_ms: latency };
  });
}

/** The lines as a JSONL file's text. */
export const jsonl = (lines: readonly unknown[]): string =>
  lines.map((l) => JSON.stringify(l)).join('\n');

/**
 * `n` measured rows of random subnets as the loop trains on them: every fifth a test row,
 * the first `firstBatch` of iteration 0 and the rest of iteration 1.
 */
export function syntheticTrainRows(
  n: number,
  seed: number,
  bins: readonly DepthBin[],
  options: { noise: number; firstBatch?: number },
): TrainRow[] {
  const { noise, firstBatch = n } = options;
  const rng = createRng(seed);
  return Array.from({ length: n }, (_, i) => {
    const subnet = randomSubnet(mobilenetv3, rng);
    const d = depth(subnet);
    const iteration = i < firstBatch ? 0 : 1;
    return {
      id: `i${iteration}-${i}`,
      arch: mobilenetv3.toNative(subnet) as unknown as Record<string, unknown>,
      latencyMs: syntheticLatencyMs(mobilenetv3, subnet, { noise, rng }),
      depth: d,
      bin: binOf(bins, d),
      split: i % 5 === 4 ? 'test' : 'train',
      iteration,
    };
  });
}
