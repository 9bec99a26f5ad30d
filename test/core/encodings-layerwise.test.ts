import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createEncoder, encodingNames } from '../../core/encodings/index.ts';
import type { EncodingName } from '../../core/encodings/types.ts';
import { createRng } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { cellLiveness, cellOps, nasbench201 } from '../../core/spaces/nasbench201.ts';
import { spaceFromSpec } from '../../core/spaces/spec.ts';
import {
  blockTuples,
  isSkip,
  randomSubnet,
  skipBlock,
  skipKinds,
  subnetKey,
  unitDepth,
} from '../../core/spaces/subnet.ts';
import type { SearchSpace, Subnet } from '../../core/spaces/types.ts';

const layerwise = spaceFromSpec(
  JSON.parse(
    readFileSync(new URL('../../examples/spaces/layerwise-fbnet.json', import.meta.url), 'utf8'),
  ),
);
const spaces: SearchSpace[] = [
  getSpace('fbnet'),
  getSpace('fbnet-imagenet'),
  nasbench201,
  layerwise,
];

const vectorKey = (v: Float64Array) =>
  Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');

/**
 * Every subnet one change away: a layer's choice, a layer to a skip, a skip to a layer or to
 * another skip kind, a trailing-depth step. Skips stay in normal form (see types.ts).
 */
function neighbours(space: SearchSpace, subnet: Subnet): { what: string; subnet: Subnet }[] {
  const out: { what: string; subnet: Subnet }[] = [];
  subnet.units.forEach((unit, u) => {
    const def = space.units[u];
    if (!def) throw new Error('unit mismatch');
    const withBlock = (b: number, block: Record<string, number>) => ({
      ...subnet,
      units: subnet.units.map((x, i) =>
        i === u ? { ...x, blocks: x.blocks.map((y, j) => (j === b ? block : y)) } : x,
      ),
    });
    unit.blocks.forEach((block, b) => {
      const kinds = skipKinds(def);
      for (let k = 1; k <= kinds; k++) {
        if (block.skip !== k)
          out.push({ what: `u${u}.b${b} skip ${k}`, subnet: withBlock(b, skipBlock(def, k)) });
      }
      const layer = isSkip(block) ? { ...skipBlock(def, 1), skip: 0 } : block;
      if (isSkip(block)) out.push({ what: `u${u}.b${b} layer`, subnet: withBlock(b, layer) });
      for (const c of def.blockChoices) {
        if (c.name === 'skip') continue;
        for (const v of c.values) {
          if (v === layer[c.name]) continue;
          out.push({
            what: `u${u}.b${b}.${c.name}=${v}`,
            subnet: withBlock(b, { ...layer, [c.name]: v }),
          });
        }
      }
    });
  });
  return out;
}

/** What FCC keeps: per unit, its first block's tuple and the multiset of the others. */
function fccCanonicalKey(space: SearchSpace, subnet: Subnet): string {
  const tuples = blockTuples(space, subnet);
  const units = subnet.units.map((_, u) => {
    const own = tuples.filter((t) => t.unit === u).map((t) => t.values.join(':'));
    return `${own[0] ?? ''}|${own.slice(1).sort().join(';')}`;
  });
  return `${subnet.resolution}#${units.join('/')}`;
}

describe('encoding lengths of the layer-wise spaces', () => {
  // The lengths documented in docs/encodings.md.
  const documented: Record<string, Record<EncodingName, number>> = {
    fbnet: { onehot: 221, feature: 52, statistical: 73, fcc: 136, physics: 17 },
    'fbnet-imagenet': { onehot: 221, feature: 52, statistical: 73, fcc: 136, physics: 17 },
    nasbench201: { onehot: 37, feature: 16, statistical: 37, fcc: 65, physics: 17 },
  };
  for (const [name, lengths] of Object.entries(documented)) {
    it(`${name} has the documented lengths, with one unique label per entry`, () => {
      const space = getSpace(name);
      const subnet = randomSubnet(space, createRng(1));
      for (const encoding of encodingNames) {
        const encoder = createEncoder(space, encoding);
        expect(encoder.length, encoding).toBe(lengths[encoding]);
        expect(new Set(encoder.labels).size, `${encoding} labels`).toBe(encoder.length);
        expect(encoder.encode(subnet)).toHaveLength(encoder.length);
      }
    });
  }
});

describe('layer-wise encodings', () => {
  for (const space of spaces) {
    it(`${space.name}: every single change changes onehot, feature and fcc`, () => {
      const rng = createRng(11);
      const encoders = (['onehot', 'feature', 'fcc'] as const).map((n) => createEncoder(space, n));
      for (let i = 0; i < 10; i++) {
        const subnet = randomSubnet(space, rng);
        const base = encoders.map((e) => vectorKey(e.encode(subnet)));
        const changes = neighbours(space, subnet);
        expect(changes.length).toBeGreaterThan(0);
        for (const { what, subnet: other } of changes) {
          encoders.forEach((e, k) => {
            expect(vectorKey(e.encode(other)), `${e.name}: ${what}`).not.toBe(base[k]);
          });
        }
      }
    });

    it(`${space.name}: 3,000 random samples collide only where the networks are the same`, () => {
      const rng = createRng(5);
      const subnets = Array.from({ length: 3000 }, () => randomSubnet(space, rng));
      const checks: [EncodingName, (s: Subnet) => string][] = [
        ['onehot', subnetKey],
        ['feature', subnetKey],
        ['fcc', (s) => fccCanonicalKey(space, s)],
      ];
      for (const [name, canonical] of checks) {
        const encoder = createEncoder(space, name);
        const byVector = new Map<string, string>();
        for (const subnet of subnets) {
          const v = vectorKey(encoder.encode(subnet));
          const key = canonical(subnet);
          const seen = byVector.get(v);
          if (seen !== undefined) expect(key, `${name} collision`).toBe(seen);
          else byVector.set(v, key);
        }
      }
    });
  }

  it('fbnet fcc: a stage`s counts sum to its slots, skips counted where they sit, depth = layers', () => {
    const space = getSpace('fbnet');
    const fcc = createEncoder(space, 'fcc');
    const at = (v: Float64Array, label: string) => v[fcc.labels.indexOf(label)] as number;
    const ops = [8, 8, 0, 0, 0, ...new Array(17).fill(3)];
    const subnet = space.parse({ ops });
    const v = fcc.encode(subnet);
    expect(at(v, 'u0.first.skip=1')).toBe(1);
    expect(at(v, 'u1.first.skip=1')).toBe(1);
    expect(at(v, 'u1.rest.op=0')).toBe(3);
    expect(at(v, 'u2.rest.op=3')).toBe(3);
    expect(at(v, 'u1.depth')).toBe(3);
    expect(at(v, 'depth')).toBe(20);
    expect(unitDepth(subnet.units[1] as Subnet['units'][number])).toBe(3);
    // A single resolution: no area-scaled copy of the counts.
    expect(fcc.labels.some((l) => l.endsWith('*area'))).toBe(false);
    const onehot = createEncoder(space, 'onehot').encode(subnet);
    // 20 layers x 2 (op, skip=0) + 2 skips x 1 (skip=1 only) + the resolution.
    expect(onehot.reduce((a, b) => a + b, 0)).toBe(20 * 2 + 2 + 1);
  });

  it('nasbench201 fcc appends the effective edges, their op counts and the dead flag', () => {
    const fcc = createEncoder(nasbench201, 'fcc');
    const at = (v: Float64Array, label: string) => v[fcc.labels.indexOf(label)] as number;
    const arch_str = '|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|';
    const subnet = nasbench201.parse({ arch_str });
    const v = fcc.encode(subnet);
    // 0->1 conv reaches nothing; 2->3 conv computes (on zeros); 0->3 skip is the live path.
    expect(at(v, 'eff.1<-0.conv3x3')).toBe(0);
    expect(at(v, 'eff.3<-2.conv3x3')).toBe(1);
    expect(at(v, 'eff.3<-0.skip_connect')).toBe(1);
    expect(at(v, 'eff.count.conv3x3')).toBe(1);
    expect(at(v, 'dead')).toBe(0);
    expect(at(v, 'u2.first.skip=2')).toBe(1);
    expect(at(v, 'depth')).toBe(2);
    expect(cellLiveness(cellOps(subnet)).dead).toBe(false);
    const dead = fcc.encode(
      nasbench201.parse({ arch_str: '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|' }),
    );
    expect(at(dead, 'dead')).toBe(1);
    expect(fcc.labels.filter((l) => l.startsWith('eff.')).every((l) => at(dead, l) === 0)).toBe(
      true,
    );
  });

  it('statistical ignores the other choices of a skip and counts layers as depth', () => {
    const space = getSpace('fbnet');
    const stat = createEncoder(space, 'statistical');
    const at = (v: Float64Array, label: string) => v[stat.labels.indexOf(label)] as number;
    const v = stat.encode(space.parse({ ops: [8, 8, 0, 0, 0, ...new Array(17).fill(3)] }));
    expect(at(v, 'depth')).toBe(20);
    expect(at(v, 'u1.op.min')).toBe(0);
    expect(at(v, 'u0.op.max')).toBe(0);
    expect(at(v, 'u0.skip.mean')).toBe(1);
    expect(at(v, 'all.op.max')).toBe(3);
  });
});
