/** What the arch-in graph tests (test/arch) share: seeded subnets and one onnxruntime run. */
import * as ort from 'onnxruntime-node';
import { createRng } from '../../core/rng.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import type { SearchSpace, Subnet } from '../../core/spaces/types.ts';

/** `n` random subnets of `space`, seeded. */
export function randomSubnets(space: SearchSpace, n: number, seed: number): Subnet[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => randomSubnet(space, rng));
}

/** Runs an arch-in graph on int64 arch rows (`rows` x `length`, row-major) in a fresh session. */
export async function runArchGraph(
  bytes: Uint8Array,
  data: BigInt64Array,
  rows: number,
  length: number,
) {
  const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  const out = await session.run({ arch: new ort.Tensor('int64', data, [rows, length]) });
  await session.release();
  return out;
}
