/**
 * Encodings and baselines benchmark (issue 2): ridge on every encoding and the LUT baseline,
 * trained on the synthetic CPU of core/predictor/synthetic.ts (per-layer dispatch overhead,
 * operator-dependent compute throughput, memory-bound element-wise layers) with 1 % noise,
 * so it needs no device; plus encoding throughput.
 *
 *   npx tsx scripts/bench/encodings.ts [--train 1000] [--test 2000] [--seed 1]
 */
import { parseArgs } from 'node:util';
import { fccEncoder } from '../../core/encodings/fcc.ts';
import { createEncoder, encodeAll, encodingNames } from '../../core/encodings/index.ts';
import type { Encoder } from '../../core/encodings/types.ts';
import { evaluate } from '../../core/metrics.ts';
import { createLut, lutLayout } from '../../core/predictor/lut.ts';
import { createRidge } from '../../core/predictor/ridge.ts';
import { syntheticLatencyMs } from '../../core/predictor/synthetic.ts';
import type { Regressor } from '../../core/predictor/types.ts';
import { createRng, type Rng } from '../../core/rng.ts';
import { getSpace } from '../../core/spaces/index.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import type { SearchSpace, Subnet } from '../../core/spaces/types.ts';

const { values } = parseArgs({
  options: {
    train: { type: 'string', default: '1000' },
    test: { type: 'string', default: '2000' },
    seed: { type: 'string', default: '1' },
    spaces: { type: 'string', default: 'mobilenetv3,resnet50,densenet' },
  },
});
const nTrain = Number(values.train);
const nTest = Number(values.test);
const seed = Number(values.seed);

function dataset(space: SearchSpace, n: number, rng: Rng) {
  const subnets: Subnet[] = [];
  for (let i = 0; i < n; i++) subnets.push(randomSubnet(space, rng));
  const latency = Float64Array.from(subnets, (s) =>
    syntheticLatencyMs(space, s, { noise: 0.01, rng }),
  );
  return { subnets, latency };
}

async function score(
  model: Regressor,
  rows: Pick<Encoder, 'length' | 'encode'>,
  train: ReturnType<typeof dataset>,
  test: ReturnType<typeof dataset>,
) {
  const fit = await model.fit(encodeAll(rows, train.subnets), train.latency);
  const predicted = await model.predict(encodeAll(rows, test.subnets));
  const m = evaluate({ predicted, measured: test.latency });
  return {
    length: rows.length,
    accuracy: +m.accuracy.toFixed(4),
    within5: +m.within5.toFixed(3),
    within10: +m.within10.toFixed(3),
    spearman: +(m.spearman ?? Number.NaN).toFixed(4),
    fitSeconds: +fit.seconds.toFixed(2),
  };
}

for (const name of values.spaces.split(',')) {
  const space = getSpace(name);
  const rng = createRng(seed);
  const train = dataset(space, nTrain, rng);
  const test = dataset(space, nTest, rng);
  const lat = Array.from(test.latency).sort((a, b) => a - b);
  console.log(
    `\n${name}: train ${nTrain}, test ${nTest}, synthetic latency ${lat[0]?.toFixed(1)}..${lat[lat.length - 1]?.toFixed(1)} ms`,
  );
  const rows: Record<string, unknown>[] = [];
  for (const encoding of encodingNames) {
    const encoder = createEncoder(space, encoding);
    for (const target of ['log', 'linear', 'auto'] as const) {
      rows.push({
        model: `ridge/${target}`,
        encoding,
        ...(await score(createRidge({ target }), encoder, train, test)),
      });
    }
  }
  const globalScale = fccEncoder(space, { scaling: 'global' });
  for (const target of ['log', 'linear'] as const) {
    rows.push({
      model: `ridge/${target}`,
      encoding: 'fcc (global (r/r_max)^2 scaling)',
      ...(await score(createRidge({ target }), globalScale, train, test)),
    });
  }
  const plain = fccEncoder(space, { resolutionScaled: false });
  for (const target of ['log', 'linear'] as const) {
    rows.push({
      model: `ridge/${target}`,
      encoding: 'fcc (no scaled counts)',
      ...(await score(createRidge({ target }), plain, train, test)),
    });
  }
  for (const buckets of [1, 4, 8]) {
    rows.push({
      model: `lut/${buckets} buckets`,
      encoding: 'lut rows',
      ...(await score(createLut(), lutLayout(space, { buckets }), train, test)),
    });
  }
  console.table(rows);
  // Throughput in CPU time (best of 3): the development machine is shared, wall time is noise.
  const encodeRng = createRng(seed + 1);
  const sample = Array.from({ length: 20000 }, () => randomSubnet(space, encodeRng));
  for (const encoding of encodingNames) {
    const encoder = createEncoder(space, encoding);
    let best = Number.POSITIVE_INFINITY;
    for (let rep = 0; rep < 3; rep++) {
      const started = process.cpuUsage();
      encodeAll(encoder, sample);
      const used = process.cpuUsage(started);
      best = Math.min(best, (used.user + used.system) / 1e6);
    }
    console.log(
      `encode ${encoding}: ${Math.round(sample.length / best).toLocaleString('en')} subnets per CPU second`,
    );
  }
}
