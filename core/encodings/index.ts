/**
 * Encoders by name, and batch encoding into a design matrix for the regressors.
 * Layouts and lengths per space are documented in docs/encodings.md.
 */
import { ValidationError } from '../errors.ts';
import type { Matrix } from '../predictor/types.ts';
import type { SearchSpace, Subnet } from '../spaces/types.ts';
import { fccEncoder } from './fcc.ts';
import { featureEncoder } from './feature.ts';
import type { FastEncoder } from './layout.ts';
import { onehotEncoder } from './onehot.ts';
import { physicsEncoder } from './physics.ts';
import { statisticalEncoder } from './statistical.ts';
import { type Encoder, type EncodingName, encodingNames } from './types.ts';

const factories: Record<EncodingName, (space: SearchSpace) => Encoder> = {
  onehot: onehotEncoder,
  feature: featureEncoder,
  statistical: statisticalEncoder,
  fcc: (space) => fccEncoder(space),
  physics: physicsEncoder,
};

/** The encoder called `name` for `space`; throws `ValidationError` on an unknown name. */
export function createEncoder(space: SearchSpace, name: EncodingName): Encoder {
  const factory = factories[name];
  if (!factory) {
    throw new ValidationError(
      'encoding',
      `unknown encoding "${name}"; use one of ${encodingNames.join(', ')}`,
    );
  }
  return factory(space);
}

/**
 * Encodes every subnet into one row-major matrix (rows = subnets, cols = encoder.length).
 * Any row builder with `length` and `encode` works, e.g. the LUT's `lutLayout`.
 */
export function encodeAll(
  encoder: Pick<Encoder, 'length' | 'encode'>,
  subnets: readonly Subnet[],
): Matrix {
  const cols = encoder.length;
  const data = new Float64Array(subnets.length * cols);
  const into = (encoder as Partial<FastEncoder>).encodeInto;
  subnets.forEach((subnet, i) => {
    if (into) into(subnet, data, i * cols);
    else data.set(encoder.encode(subnet), i * cols);
  });
  return { rows: subnets.length, cols, data };
}

export { type Encoder, type EncodingName, encodingNames } from './types.ts';
