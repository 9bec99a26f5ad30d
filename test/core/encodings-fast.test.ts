import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createEncoder, encodeAll, encodingNames } from '../../core/encodings/index.ts';
import type { FastEncoder } from '../../core/encodings/layout.ts';
import { ArchValidationError } from '../../core/errors.ts';
import { createFeaturizer } from '../../core/predictor/index.ts';
import { createRng } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import type { SearchSpace, Subnet } from '../../core/spaces/types.ts';

const spaceNames = ['mobilenetv3', 'resnet50', 'densenet'] as const;

/**
 * SHA-256 (first 16 hex digits) of the float64 bytes of `encodeAll` over `sample(space)`,
 * computed with the encoders of commit c7e19d9, before batch prediction encoded into
 * float32 buffers. A change here means the encodings' output changed (or randomSubnet's
 * draws did: then re-derive the digests from c7e19d9's encoders).
 */
const before: Record<string, string> = {
  'mobilenetv3 onehot': 'db04f5827d6004fc',
  'mobilenetv3 feature': '36c3df1db870e282',
  'mobilenetv3 statistical': '9517f3f940e103b2',
  'mobilenetv3 fcc': 'de183f28661f7ff6',
  'resnet50 onehot': '296b0c8b7a36e900',
  'resnet50 feature': 'cb67b25138dda9d6',
  'resnet50 statistical': 'dac72543d6f0a3e4',
  'resnet50 fcc': 'd4d9a2c0eb384cbc',
  'densenet onehot': 'e0fe3a94942d0dfe',
  'densenet feature': 'e7f71aa8b47c1a34',
  'densenet statistical': '55337e7a9be5f87b',
  'densenet fcc': '2e618a863661916d',
  // physics: digests of its first version (it came after c7e19d9).
  'mobilenetv3 physics': 'bfc183ac1c38fcd2',
  'resnet50 physics': '82632a24b25fea56',
  'densenet physics': 'f43fdd9545fd95bb',
};

function sample(space: SearchSpace): Subnet[] {
  const rng = createRng(7);
  return Array.from({ length: 300 }, () => randomSubnet(space, rng));
}

const digest = (data: Float64Array) =>
  createHash('sha256')
    .update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    .digest('hex')
    .slice(0, 16);

/** Element-wise identity, NaN and -0 included (toEqual would let -0 pass for 0). */
function expectSameBits(
  actual: Float32Array | Float64Array,
  expected: Float32Array | Float64Array,
) {
  expect(actual.length).toBe(expected.length);
  const differing = Array.from(actual.keys()).filter((i) => !Object.is(actual[i], expected[i]));
  expect(differing).toEqual([]);
}

describe.each(spaceNames)('fast encoding path, %s', (spaceName) => {
  const space = getSpace(spaceName);
  const subnets = sample(space);

  it.each(encodingNames)('%s: encodeAll gives the vectors of the previous encoders', (name) => {
    const matrix = encodeAll(createEncoder(space, name), subnets);
    expect(digest(matrix.data)).toBe(before[`${spaceName} ${name}`]);
  });

  it.each(encodingNames)('%s: encodeInto a dirty float64 buffer = encode', (name) => {
    const encoder = createEncoder(space, name) as FastEncoder;
    const stride = encoder.length + 3;
    const buffer = new Float64Array(subnets.length * stride + 3).fill(Number.NaN);
    for (const [i, s] of subnets.entries()) encoder.encodeInto(s, buffer, i * stride + 3);
    subnets.forEach((s, i) => {
      const row = buffer.subarray(i * stride + 3, (i + 1) * stride);
      expectSameBits(row, encoder.encode(s));
      // The 3 guard cells before each row are left alone.
      expect(Array.from(buffer.subarray(i * stride, i * stride + 3))).toEqual([NaN, NaN, NaN]);
    });
  });

  it.each(encodingNames)('%s: encodeInto a float32 buffer = encode rounded to float32', (name) => {
    const encoder = createEncoder(space, name) as FastEncoder;
    const cols = encoder.length;
    const buffer = new Float32Array(subnets.length * cols).fill(Number.NaN);
    for (const [i, s] of subnets.entries()) encoder.encodeInto(s, buffer, i * cols);
    subnets.forEach((s, i) => {
      expectSameBits(
        buffer.subarray(i * cols, (i + 1) * cols),
        Float32Array.from(encoder.encode(s)),
      );
    });
  });
});

describe('featurizer.encodeInto (what batch prediction uses)', () => {
  const space = getSpace('mobilenetv3');
  const subnets = sample(space).slice(0, 50);
  it.each([{ kind: 'encoding', encoding: 'fcc' }, { kind: 'lut' }] as const)(
    '$kind: float32 rows = encode rounded to float32',
    (choice) => {
      const featurizer = createFeaturizer(space, choice);
      const cols = featurizer.features.length;
      const buffer = new Float32Array(subnets.length * cols).fill(Number.NaN);
      for (const [i, s] of subnets.entries()) featurizer.encodeInto(s, buffer, i * cols);
      subnets.forEach((s, i) => {
        expectSameBits(
          buffer.subarray(i * cols, (i + 1) * cols),
          Float32Array.from(featurizer.encode(s)),
        );
      });
    },
  );
});

describe('choice lookup tables', () => {
  const space = getSpace('mobilenetv3');
  const [subnet] = sample(space) as [Subnet];
  const withKernel = (kernel: unknown): Subnet => ({
    ...subnet,
    units: subnet.units.map((unit, u) =>
      u === 0
        ? { ...unit, blocks: [{ ...unit.blocks[0], kernel } as never, ...unit.blocks.slice(1)] }
        : unit,
    ),
  });
  it.each([4, 3.5, -3, 1e9, '3', Number.NaN, undefined])(
    'rejects kernel %s, naming the field, in every encoding',
    (kernel) => {
      for (const name of encodingNames) {
        const encode = () => createEncoder(space, name).encode(withKernel(kernel));
        expect(encode).toThrow(ArchValidationError);
        expect(encode).toThrow(/units\[0\]\.blocks\[0\]\.kernel/);
      }
    },
  );
  it('reads non-integer choice values (resnet50 expand ratios) without a table', () => {
    const resnet = getSpace('resnet50');
    const encoder = createEncoder(resnet, 'feature');
    const [s] = sample(resnet) as [Subnet];
    const slot = encoder.labels.indexOf('u0.b0.expand');
    expect(encoder.encode(s)[slot]).toBe(s.units[0]?.blocks[0]?.expand);
  });
});
