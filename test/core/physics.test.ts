import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createEncoder, encodeAll } from '../../core/encodings/index.ts';
import { physicsEncoder, physicsLabels } from '../../core/encodings/physics.ts';
import { createRidge } from '../../core/predictor/ridge.ts';
import { createRng } from '../../core/rng.ts';
import { graphCost } from '../../core/spaces/cost.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { spaceFromSpec } from '../../core/spaces/spec.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';

const mixed = spaceFromSpec(JSON.parse(readFileSync('examples/spaces/mixed.json', 'utf8')));

/** A device with a per-kind speed and a per-layer overhead: linear in the physics entries. */
function costModelMs(row: Float64Array): number {
  const at = (l: string) => row[physicsLabels.indexOf(l)] as number;
  return (
    0.002 * at('macs_dense_1x1') +
    0.01 * at('macs_depthwise_k3') +
    0.012 * at('macs_depthwise_k5') +
    0.015 * at('macs_depthwise_k7') +
    0.02 * at('layers') +
    0.5
  );
}

describe('physics encoding', () => {
  it.each([getSpace('mobilenetv3'), getSpace('resnet50'), getSpace('densenet'), mixed])(
    '$name: entries are the layer graph cost in millions / MB',
    (space) => {
      const encoder = createEncoder(space, 'physics');
      expect(encoder.labels).toEqual(physicsLabels);
      const rng = createRng(3);
      for (let i = 0; i < 20; i++) {
        const subnet = randomSubnet(space, rng);
        const v = encoder.encode(subnet);
        const cost = graphCost(space.layerGraph(subnet));
        const at = (label: string) => v[physicsLabels.indexOf(label)] as number;
        expect(at('macs')).toBeCloseTo(cost.macs / 1e6, 9);
        expect(at('params')).toBeCloseTo(cost.params / 1e6, 9);
        expect(at('peak_activation_mb')).toBeCloseTo(cost.peakActivationBytes / 1e6, 9);
        expect(at('layers')).toBe(cost.layers);
        // The MACs by kind add up to all MACs.
        const byKind = physicsLabels
          .filter((l) => l.startsWith('macs_'))
          .reduce((sum, l) => sum + at(l), 0);
        expect(byKind).toBeCloseTo(at('macs'), 9);
        expect(at('macs')).toBeGreaterThan(0);
      }
    },
  );

  it('nasbench201: a cell encoded again gives its first encoding, into float32 or float64, and bad values still fail', () => {
    // Prepare: a small space keeps each cell's physics (core/encodings/physics.ts). A copy of
    // the space is another space to the memo, so its encodings are computed afresh.
    const space = getSpace('nasbench201');
    const fresh = { ...space };
    const rng = createRng(5);
    const cells = Array.from({ length: 30 }, () => randomSubnet(space, rng));
    const encoder = physicsEncoder(space);
    // Act: the first pass through a float32 target, the second from the memo into float64.
    const first = new Float32Array(cells.length * physicsLabels.length);
    cells.forEach((cell, i) => {
      encoder.encodeInto(cell, first, i * physicsLabels.length);
    });
    const again = cells.map((cell) => createEncoder(space, 'physics').encode(cell));
    const computed = cells.map((cell) => createEncoder(fresh, 'physics').encode(cell));
    // Assess
    expect(again).toEqual(computed);
    expect(Array.from(first)).toEqual(
      Array.from(new Float32Array(computed.flatMap((v) => [...v]))),
    );
    // Each cell reads its own entries, not another cell's.
    const macs = cells.map((cell) => graphCost(space.layerGraph(cell)).macs / 1e6);
    again.forEach((v, i) => {
      expect(v[physicsLabels.indexOf('macs')]).toBeCloseTo(macs[i] as number, 9);
    });
    expect(new Set(macs).size).toBeGreaterThan(10);
    const known = cells[0] as (typeof cells)[number];
    const bad = {
      ...known,
      units: known.units.map((u, i) =>
        i === 0 ? { ...u, blocks: [{ ...u.blocks[0], op: 99 }, ...u.blocks.slice(1)] } : u,
      ),
    };
    expect(() => encoder.encode(bad)).toThrow(/units\[0\]\.blocks\[0\]\.op/);
  });

  it('moves MACs between depthwise kernels when a kernel changes', () => {
    const space = getSpace('mobilenetv3');
    const arch = { ks: Array(20).fill(3), e: Array(20).fill(4), d: [3, 3, 3, 3, 3], r: 192 };
    const encoder = createEncoder(space, 'physics');
    const k3 = encoder.encode(space.parse(arch));
    const k7 = encoder.encode(space.parse({ ...arch, ks: [7, ...arch.ks.slice(1)] }));
    const i3 = physicsLabels.indexOf('macs_depthwise_k3');
    const i7 = physicsLabels.indexOf('macs_depthwise_k7');
    expect(k7[i3] as number).toBeLessThan(k3[i3] as number);
    expect(k7[i7] as number).toBeGreaterThan(0);
    expect(k3[i7]).toBe(0);
  });

  it('lets a ridge model learn a device whose latency is a cost model, from 20 samples', async () => {
    // A device with a per-kind speed and a per-layer overhead: linear in the physics entries.
    const space = getSpace('mobilenetv3');
    const encoder = createEncoder(space, 'physics');
    const rng = createRng(11);
    const subnets = Array.from({ length: 220 }, () => randomSubnet(space, rng));
    const x = encodeAll(encoder, subnets);
    const latency = Float64Array.from(subnets, (_, i) =>
      costModelMs(x.data.subarray(i * x.cols, (i + 1) * x.cols)),
    );
    const train = { rows: 20, cols: x.cols, data: x.data.subarray(0, 20 * x.cols) };
    const ridge = createRidge({ target: 'linear' });
    await ridge.fit(train, latency.subarray(0, 20));
    const test = { rows: 200, cols: x.cols, data: x.data.subarray(20 * x.cols) };
    const predicted = await ridge.predict(test);
    const errors = Array.from(predicted, (p, i) => Math.abs(p / (latency[20 + i] as number) - 1));
    const mean = errors.reduce((a, b) => a + b, 0) / errors.length;
    expect(mean).toBeLessThan(0.01);
  });

  it('fits through misleading rows with the robust relative fit where plain ridge is pulled off', async () => {
    // The same kind of device, 2 % noise, and in each 20-row draw two rows measured 1.8x
    // slow (a throttled run): the robust relative fit (ridge.ts `robust`) keeps to the
    // cost model, least squares in ms follows the outliers.
    const space = getSpace('mobilenetv3');
    const encoder = createEncoder(space, 'physics');
    const rng = createRng(12);
    const cost = costModelMs;
    const meanError = (p: Float64Array, y: Float64Array) =>
      p.reduce((s, v, i) => s + Math.abs(v / (y[i] as number) - 1), 0) / p.length;
    const test = encodeAll(
      encoder,
      Array.from({ length: 300 }, () => randomSubnet(space, rng)),
    );
    const truth = Float64Array.from({ length: test.rows }, (_, i) =>
      cost(test.data.subarray(i * test.cols, (i + 1) * test.cols)),
    );
    const plainErrors: number[] = [];
    const robustErrors: number[] = [];
    for (let draw = 0; draw < 5; draw++) {
      const x = encodeAll(
        encoder,
        Array.from({ length: 20 }, () => randomSubnet(space, rng)),
      );
      const y = Float64Array.from({ length: 20 }, (_, i) => {
        const clean = cost(x.data.subarray(i * x.cols, (i + 1) * x.cols));
        return clean * (1 + 0.02 * rng.normal()) * (i === 3 || i === 11 ? 1.8 : 1);
      });
      const plain = createRidge();
      const robust = createRidge({ robust: true });
      await plain.fit(x, y);
      await robust.fit(x, y);
      expect(robust.loss).toBe('huber-relative');
      expect(robust.target).toBe('linear');
      plainErrors.push(meanError(await plain.predict(test), truth));
      robustErrors.push(meanError(await robust.predict(test), truth));
    }
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    robustErrors.forEach((e, i) => {
      expect(e).toBeLessThan(plainErrors[i] as number);
    });
    expect(mean(robustErrors)).toBeLessThan(0.5 * mean(plainErrors));
    expect(mean(robustErrors)).toBeLessThan(0.03);
  });
});
