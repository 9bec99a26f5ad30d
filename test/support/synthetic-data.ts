/**
 * Measured-looking MobileNetV3 datasets from the synthetic latency model, for CLI tests that
 * need a dataset file (fit, predict, transfer between two devices).
 */
import { type SyntheticDevice, syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import type { Rng } from '../../core/rng.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';

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
