import type { SearchSpace, Subnet } from '../spaces/types.ts';

export const encodingNames = ['onehot', 'feature', 'statistical', 'fcc', 'physics'] as const;
export type EncodingName = (typeof encodingNames)[number];

/** Turns subnets of one space into fixed-length numeric vectors. */
export interface Encoder {
  readonly name: EncodingName;
  readonly space: SearchSpace;
  /** Vector length for this space. */
  readonly length: number;
  /** Human-readable name of each vector entry (docs, debugging, reports). */
  readonly labels: readonly string[];
  encode(subnet: Subnet): Float64Array;
}
