import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fccEncoder } from '../../core/encodings/fcc.ts';
import { createEncoder, encodeAll, encodingNames } from '../../core/encodings/index.ts';
import { unitAreaScales } from '../../core/encodings/layout.ts';
import type { EncodingName } from '../../core/encodings/types.ts';
import { ArchValidationError, ValidationError } from '../../core/errors.ts';
import { createRng, type Rng } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { spaceFromSpec } from '../../core/spaces/spec.ts';
import { blockTuples, depth, randomSubnet, subnetKey } from '../../core/spaces/subnet.ts';
import type { SearchSpace, Subnet } from '../../core/spaces/types.ts';

const mixed = spaceFromSpec(JSON.parse(readFileSync('examples/spaces/mixed.json', 'utf8')));
const spaces: SearchSpace[] = [
  getSpace('mobilenetv3'),
  getSpace('resnet50'),
  getSpace('densenet'),
  mixed,
];

const vectorKey = (v: Float64Array) =>
  Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');

/** Every subnet that differs from `subnet` in exactly one choice, one depth step or the resolution. */
function neighbours(space: SearchSpace, subnet: Subnet): { what: string; subnet: Subnet }[] {
  const out: { what: string; subnet: Subnet }[] = [];
  const withUnit = (u: number, unit: Subnet['units'][number]): Subnet => ({
    ...subnet,
    units: subnet.units.map((x, i) => (i === u ? unit : x)),
  });
  for (const r of space.resolutions) {
    if (r !== subnet.resolution) out.push({ what: `r=${r}`, subnet: { ...subnet, resolution: r } });
  }
  for (const c of space.globalChoices) {
    for (const v of c.values) {
      if (v !== subnet.globals[c.name]) {
        out.push({
          what: `${c.name}=${v}`,
          subnet: { ...subnet, globals: { ...subnet.globals, [c.name]: v } },
        });
      }
    }
  }
  subnet.units.forEach((unit, u) => {
    const def = space.units[u];
    if (!def) throw new Error('unit mismatch');
    for (const c of def.unitChoices) {
      for (const v of c.values) {
        if (v !== unit.choices[c.name]) {
          out.push({
            what: `u${u}.${c.name}=${v}`,
            subnet: withUnit(u, { ...unit, choices: { ...unit.choices, [c.name]: v } }),
          });
        }
      }
    }
    unit.blocks.forEach((block, b) => {
      for (const c of def.blockChoices) {
        for (const v of c.values) {
          if (v === block[c.name]) continue;
          const blocks = unit.blocks.map((x, i) => (i === b ? { ...x, [c.name]: v } : x));
          out.push({
            what: `u${u}.b${b}.${c.name}=${v}`,
            subnet: withUnit(u, { ...unit, blocks }),
          });
        }
      }
    });
    if (unit.blocks.length < def.maxDepth) {
      const last =
        unit.blocks[unit.blocks.length - 1] ??
        Object.fromEntries(def.blockChoices.map((c) => [c.name, c.values[0] as number]));
      out.push({
        what: `u${u}+1 block`,
        subnet: withUnit(u, { ...unit, blocks: [...unit.blocks, last] }),
      });
    }
    if (unit.blocks.length > def.minDepth) {
      out.push({
        what: `u${u}-1 block`,
        subnet: withUnit(u, { ...unit, blocks: unit.blocks.slice(0, -1) }),
      });
    }
  });
  return out;
}

/** What FCC is meant to keep: everything except the order of a unit's blocks after the first. */
function fccCanonicalKey(space: SearchSpace, subnet: Subnet): string {
  const tuples = blockTuples(space, subnet);
  const units = subnet.units.map((unit, u) => {
    const own = tuples.filter((t) => t.unit === u).map((t) => t.values.join(':'));
    return `${JSON.stringify(unit.choices)}|${own[0] ?? ''}|${own.slice(1).sort().join(';')}`;
  });
  return `${subnet.resolution}#${JSON.stringify(subnet.globals)}#${units.join('/')}`;
}

function samples(space: SearchSpace, n: number, rng: Rng): Subnet[] {
  return Array.from({ length: n }, () => randomSubnet(space, rng));
}

describe('encoding lengths', () => {
  // The lengths documented in docs/encodings.md.
  const documented: Record<string, Record<EncodingName, number>> = {
    mobilenetv3: { onehot: 145, feature: 46, statistical: 55, fcc: 188, physics: 17 },
    resnet50: { onehot: 98, feature: 30, statistical: 37, fcc: 154, physics: 17 },
    densenet: { onehot: 245, feature: 107, statistical: 66, fcc: 199, physics: 17 },
  };
  for (const [name, lengths] of Object.entries(documented)) {
    it(`${name} has the documented lengths, with one label per entry`, () => {
      const space = getSpace(name);
      const subnet = randomSubnet(space, createRng(1));
      for (const encoding of encodingNames) {
        const encoder = createEncoder(space, encoding);
        expect(encoder.length, encoding).toBe(lengths[encoding]);
        expect(encoder.labels).toHaveLength(encoder.length);
        expect(new Set(encoder.labels).size, `${encoding} labels are unique`).toBe(encoder.length);
        expect(encoder.encode(subnet)).toHaveLength(encoder.length);
      }
    });
  }

  it('rejects an unknown encoding name, naming the field and the choices', () => {
    expect(() => createEncoder(getSpace('mobilenetv3'), 'bogus' as EncodingName)).toThrow(
      ValidationError,
    );
    expect(() => createEncoder(getSpace('mobilenetv3'), 'bogus' as EncodingName)).toThrow(
      /encoding: unknown encoding "bogus"; use one of onehot, feature, statistical, fcc/,
    );
  });
});

describe('fcc', () => {
  for (const space of spaces) {
    it(`${space.name}: counts per unit sum to the unit depth, one first block, area-scaled copy`, () => {
      const encoder = fccEncoder(space);
      const rng = createRng(7);
      const areas = unitAreaScales(space);
      const units = space.units.length;
      const nCounts = encoder.labels.indexOf('u0.depth');
      const index = new Map(encoder.labels.map((l, i) => [l, i]));
      const at = (v: Float64Array, label: string) => v[index.get(label) ?? -1];
      for (const subnet of samples(space, 50, rng)) {
        const v = encoder.encode(subnet);
        let total = 0;
        subnet.units.forEach((unit, u) => {
          let first = 0;
          let all = 0;
          for (let i = 0; i < nCounts; i++) {
            const label = encoder.labels[i] as string;
            if (label.startsWith(`u${u}.first.`)) first += v[i] as number;
            if (label.startsWith(`u${u}.`)) all += v[i] as number;
          }
          expect(first).toBe(unit.blocks.length > 0 ? 1 : 0);
          expect(all).toBe(unit.blocks.length);
          expect(at(v, `u${u}.depth`)).toBe(unit.blocks.length);
          total += all;
        });
        expect(total).toBe(depth(subnet));
        expect(at(v, 'depth')).toBe(depth(subnet));
        expect(at(v, 'resolution')).toBe(subnet.resolution);
        const ri = space.resolutions.indexOf(subnet.resolution);
        for (let i = 0; i < nCounts; i++) {
          const u = Number((encoder.labels[i] as string).slice(1, encoder.labels[i]?.indexOf('.')));
          expect(at(v, `${encoder.labels[i]}*area`)).toBeCloseTo(
            (v[i] as number) * (areas[ri * units + u] as number),
            12,
          );
        }
      }
    });
  }

  it('counts the combination a block uses, under the right label', () => {
    const space = getSpace('mobilenetv3');
    const subnet = space.parse({
      ks: [7, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 5, 5, 5, 5],
      e: [6, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4],
      d: [2, 2, 2, 2, 4],
      r: 160,
    });
    const encoder = createEncoder(space, 'fcc');
    const v = encoder.encode(subnet);
    expect(v[encoder.labels.indexOf('u0.first.kernel=7,expand=6')]).toBe(1);
    expect(v[encoder.labels.indexOf('u0.rest.kernel=3,expand=3')]).toBe(1);
    expect(v[encoder.labels.indexOf('u4.first.kernel=5,expand=4')]).toBe(1);
    expect(v[encoder.labels.indexOf('u4.rest.kernel=5,expand=4')]).toBe(3);
    expect(v[encoder.labels.indexOf('u4.rest.kernel=3,expand=3')]).toBe(0);
  });

  it('includes unit choices in the combination (resnet50 width)', () => {
    const space = getSpace('resnet50');
    const subnet = randomSubnet(space, createRng(3));
    const encoder = createEncoder(space, 'fcc');
    const v = encoder.encode(subnet);
    const width = subnet.units[0]?.choices.width;
    const expand = subnet.units[0]?.blocks[0]?.expand;
    expect(v[encoder.labels.indexOf(`u0.first.expand=${expand},width=${width}`)]).toBe(1);
  });

  it('tells a unit first block from the others, and ignores the order of the others', () => {
    const space = getSpace('mobilenetv3');
    const arch = {
      ks: [3, 5, 7, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3],
      e: [3, 4, 6, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3],
      d: [3, 2, 2, 2, 2],
      r: 224,
    };
    const swapped = (i: number, j: number) => {
      const ks = [...arch.ks];
      const e = [...arch.e];
      [ks[i], ks[j]] = [ks[j] as number, ks[i] as number];
      [e[i], e[j]] = [e[j] as number, e[i] as number];
      return space.parse({ ...arch, ks, e });
    };
    const encoder = createEncoder(space, 'fcc');
    const base = vectorKey(encoder.encode(space.parse(arch)));
    expect(vectorKey(encoder.encode(swapped(0, 1)))).not.toBe(base);
    expect(vectorKey(encoder.encode(swapped(1, 2)))).toBe(base);
  });
});

describe('unit area scales', () => {
  it('follow the rounded-up strided resolutions of each unit (mobilenetv3)', () => {
    const space = getSpace('mobilenetv3');
    const areas = unitAreaScales(space);
    const at = (r: number) =>
      Array.from(
        areas.slice(space.resolutions.indexOf(r) * 5, space.resolutions.indexOf(r) * 5 + 5),
      );
    // r = 132: units run at 33, 17, 9, 9, 5 (ceil at each stride 2); at 224: 56, 28, 14, 14, 7.
    const expected132 = [33 / 56, 17 / 28, 9 / 14, 9 / 14, 5 / 7].map((x) => x ** 2);
    at(132).forEach((v, u) => {
      expect(v).toBeCloseTo(expected132[u] as number, 12);
    });
    expect(at(224)).toEqual([1, 1, 1, 1, 1]);
    at(128).forEach((v) => {
      expect(v).toBeCloseTo((128 / 224) ** 2, 12);
    });
  });

  it('exist for every unit of every space and grow with resolution', () => {
    for (const space of spaces) {
      const areas = unitAreaScales(space);
      const units = space.units.length;
      const order = [...space.resolutions].map((r, i) => ({ r, i })).sort((a, b) => a.r - b.r);
      for (let u = 0; u < units; u++) {
        const series = order.map(({ i }) => areas[i * units + u] as number);
        expect(series.every((x) => x > 0 && x <= 1)).toBe(true);
        series.slice(1).forEach((x, k) => {
          expect(x).toBeGreaterThanOrEqual(series[k] as number);
        });
      }
    }
  });
});

describe('no accidental collisions', () => {
  for (const space of spaces) {
    it(`${space.name}: every single-choice, depth or resolution change changes onehot, feature and fcc`, () => {
      const rng = createRng(11);
      const encoders = (['onehot', 'feature', 'fcc'] as const).map((n) => createEncoder(space, n));
      for (const subnet of samples(space, 15, rng)) {
        const base = encoders.map((e) => vectorKey(e.encode(subnet)));
        for (const { what, subnet: other } of neighbours(space, subnet)) {
          encoders.forEach((e, i) => {
            expect(vectorKey(e.encode(other)), `${e.name}: ${what}`).not.toBe(base[i]);
          });
        }
      }
    });

    it(`${space.name}: 5,000 random samples collide only where the networks are the same`, () => {
      const rng = createRng(5);
      const subnets = samples(space, 5000, rng);
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

  it('statistical collides by design on block order and on re-paired features (documented)', () => {
    const space = getSpace('mobilenetv3');
    const fill = (head: number[]) => [...head, ...new Array(20 - head.length).fill(3)];
    const arch = (ks: number[], e: number[]) =>
      space.parse({ ks: fill(ks), e: fill(e), d: [2, 2, 2, 2, 2], r: 224 });
    const a = arch([3, 7], [3, 6]);
    const repaired = arch([3, 7], [6, 3]);
    const reordered = arch([7, 3], [6, 3]);
    const statistical = createEncoder(space, 'statistical');
    const fcc = createEncoder(space, 'fcc');
    expect(vectorKey(statistical.encode(repaired))).toBe(vectorKey(statistical.encode(a)));
    expect(vectorKey(statistical.encode(reordered))).toBe(vectorKey(statistical.encode(a)));
    expect(vectorKey(fcc.encode(repaired))).not.toBe(vectorKey(fcc.encode(a)));
    expect(vectorKey(fcc.encode(reordered))).not.toBe(vectorKey(fcc.encode(a)));
  });
});

describe('statistical', () => {
  it('computes mean, population std, min and max per unit and overall', () => {
    const space = getSpace('mobilenetv3');
    const subnet = space.parse({
      ks: [3, 5, 7, 7, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3],
      e: [3, 3, 6, 6, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3],
      d: [4, 2, 2, 2, 2],
      r: 200,
    });
    const encoder = createEncoder(space, 'statistical');
    const v = encoder.encode(subnet);
    const at = (label: string) => v[encoder.labels.indexOf(label)];
    expect(at('u0.kernel.mean')).toBeCloseTo(5.5, 12);
    expect(at('u0.kernel.std')).toBeCloseTo(
      Math.sqrt((2.5 ** 2 + 0.5 ** 2 + 2 * 1.5 ** 2) / 4),
      12,
    );
    expect(at('u0.kernel.min')).toBe(3);
    expect(at('u0.expand.max')).toBe(6);
    expect(at('u1.expand.mean')).toBe(4);
    // 12 blocks: kernels 3,5,7,7 and eight 3s.
    expect(at('all.kernel.mean')).toBeCloseTo((3 + 5 + 7 + 7 + 8 * 3) / 12, 12);
    expect(at('u0.depth')).toBe(4);
    expect(at('depth')).toBe(12);
    expect(at('resolution')).toBe(200);
  });
});

describe('feature and onehot', () => {
  it('feature writes raw values slot by slot with 0 for inactive slots', () => {
    const space = getSpace('mobilenetv3');
    const subnet = randomSubnet(space, createRng(2));
    const encoder = createEncoder(space, 'feature');
    const v = encoder.encode(subnet);
    subnet.units.forEach((unit, u) => {
      for (let slot = 0; slot < 4; slot++) {
        const block = unit.blocks[slot];
        expect(v[encoder.labels.indexOf(`u${u}.b${slot}.kernel`)]).toBe(block?.kernel ?? 0);
        expect(v[encoder.labels.indexOf(`u${u}.b${slot}.expand`)]).toBe(block?.expand ?? 0);
      }
    });
  });

  it('onehot has exactly one 1 per active block choice and per resolution', () => {
    const space = getSpace('densenet');
    const encoder = createEncoder(space, 'onehot');
    for (const subnet of samples(space, 50, createRng(4))) {
      const v = encoder.encode(subnet);
      const ones = v.reduce((a, x) => a + x, 0);
      expect(ones).toBe(depth(subnet) * space.blockChoiceNames.length + 1);
      expect(v[encoder.labels.indexOf(`resolution=${subnet.resolution}`)]).toBe(1);
    }
  });
});

describe('encodeAll and validation', () => {
  it('stacks encode() rows into a row-major matrix', () => {
    const space = getSpace('resnet50');
    const subnets = samples(space, 20, createRng(9));
    for (const name of encodingNames) {
      const encoder = createEncoder(space, name);
      const m = encodeAll(encoder, subnets);
      expect([m.rows, m.cols]).toEqual([20, encoder.length]);
      subnets.forEach((s, i) => {
        expect(Array.from(m.data.subarray(i * m.cols, (i + 1) * m.cols))).toEqual(
          Array.from(encoder.encode(s)),
        );
      });
    }
  });

  it('rejects values outside the space, naming the field', () => {
    const space = getSpace('mobilenetv3');
    const subnet = randomSubnet(space, createRng(1));
    const bad: Subnet = {
      ...subnet,
      units: subnet.units.map((u, i) =>
        i === 2 ? { ...u, blocks: [{ kernel: 9, expand: 3 }, ...u.blocks.slice(1)] } : u,
      ),
    };
    for (const name of encodingNames) {
      expect(() => createEncoder(space, name).encode(bad)).toThrow(ArchValidationError);
      expect(() => createEncoder(space, name).encode(bad)).toThrow(
        /units\[2\]\.blocks\[0\]\.kernel: got 9, allowed values are 3, 5, 7/,
      );
    }
    const badResolution = { ...subnet, resolution: 225 };
    expect(() => createEncoder(space, 'fcc').encode(badResolution)).toThrow(/resolution: got 225/);
    const tooDeep = {
      ...subnet,
      units: subnet.units.map((u) => ({ ...u, blocks: [...u.blocks, ...u.blocks] })),
    };
    expect(() => createEncoder(space, 'onehot').encode(tooDeep)).toThrow(/units\[0\]\.depth/);
  });
});
