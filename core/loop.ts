/**
 * The pure decisions of the ESM train-evaluate-extend loop, shared by local mode
 * (local/run-loop.ts) and the cloud workflow's Lambdas: which architectures to measure next
 * and where each goes (train or test), what an iteration achieved, and whether to stop.
 * Every function takes plain data and an explicit `Rng`; nothing here does I/O.
 *
 * Test-set policy: a fixed share (`testFraction`) of every batch, drawn separately inside each
 * depth bin, is held out for testing and never trained on. The test set therefore grows with
 * every batch. Within a bin every batch samples from the same distribution (only the number
 * of samples per bin changes between batches), so a bin's test accuracy is an unbiased
 * estimate for that bin; overall accuracy is reported both raw and bin-balanced (the mean of
 * the per-bin accuracies), which does not depend on how many samples each bin received.
 */
import { ValidationError } from './errors.ts';
import { evaluate, headline } from './metrics.ts';
import type { PredictorJson } from './predictor/artifact.ts';
import type { Rng } from './rng.ts';
import {
  binOf,
  type DepthBin,
  extensionWeights,
  type PoolItem,
  poolLeft,
  randomDepthDistribution,
  type SamplingStrategy,
  sampleArchitectures,
  samplePool,
  selectActive,
} from './sampling.ts';
import type {
  BinSummary,
  IterationRecord,
  OverallMetrics,
  PlannedSample,
  RunParams,
  Split,
} from './schemas/run.ts';
import { depth, depthRange, subnetKey } from './spaces/subnet.ts';
import type { SearchSpace, Subnet } from './spaces/types.ts';

/** The loop parameters the decisions need (a subset of `RunParams`). */
export type LoopParams = Pick<
  RunParams,
  'sampling' | 'nInit' | 'nStep' | 'accTh' | 'w1' | 'maxIter' | 'testFraction'
>;

/** A candidate for a batch before its split is decided. */
export interface Candidate {
  readonly arch: Record<string, unknown>;
  readonly key: string;
  readonly depth: number;
}

/**
 * Assigns `train`/`test` per depth bin: in every bin, `testFraction` of its candidates go to
 * test, rounded stochastically (floor plus one with the fractional part's probability) so that
 * small batches are not always rounded the same way. Candidates are shuffled within the bin.
 */
export function assignSplits(
  candidates: readonly Candidate[],
  options: { bins: readonly DepthBin[]; testFraction: number; iteration: number; rng: Rng },
): PlannedSample[] {
  const { bins, testFraction, iteration, rng } = options;
  if (!(testFraction >= 0 && testFraction < 1)) {
    throw new ValidationError('testFraction', `expected a number in [0, 1), got ${testFraction}`);
  }
  const byBin = bins.map(() => [] as number[]);
  candidates.forEach((c, i) => {
    byBin[binOf(bins, c.depth)]?.push(i);
  });
  const split = new Array<Split>(candidates.length).fill('train');
  for (const members of byBin) {
    const quota = members.length * testFraction;
    const nTest = Math.floor(quota) + (rng.next() < quota - Math.floor(quota) ? 1 : 0);
    // Partial Fisher-Yates: the first nTest positions become a uniform subset.
    for (let i = 0; i < nTest; i++) {
      const j = i + rng.int(members.length - i);
      [members[i], members[j]] = [members[j] as number, members[i] as number];
      split[members[i] as number] = 'test';
    }
  }
  return candidates.map((c, i) => ({
    id: `i${iteration}-${i}`,
    arch: c.arch,
    key: c.key,
    depth: c.depth,
    bin: binOf(bins, c.depth),
    split: split[i] as Split,
    iteration,
  }));
}

/** Where a batch's architectures come from: the whole space, or a measured pool (replay). */
export type Source<T extends PoolItem & { arch: Record<string, unknown> }> =
  | { readonly kind: 'space'; readonly space: SearchSpace }
  /** A measured pool of architectures of `space` (replay of a dataset). */
  | { readonly kind: 'pool'; readonly pool: readonly T[]; readonly space: SearchSpace };

export interface PlanOptions<T extends PoolItem & { arch: Record<string, unknown> }> {
  readonly source: Source<T>;
  readonly params: LoopParams;
  readonly bins: readonly DepthBin[];
  /** The iteration the batch belongs to (0 = the initial batch). */
  readonly iteration: number;
  readonly rng: Rng;
  /** `subnetKey`s already planned or measured in this run. @default empty */
  readonly exclude?: ReadonlySet<string>;
  /**
   * Per-bin weights from `decide` for an extension. @default none (initial batch: `balanced`
   * gives every bin the same count, `random` samples freely)
   */
  readonly binWeights?: readonly number[];
}

/**
 * Share of each bin under `random` sampling (the bell-shaped depth distribution of uniform
 * per-unit depths).
 */
export function randomBinMass(space: SearchSpace, bins: readonly DepthBin[]): number[] {
  const dist = randomDepthDistribution(space);
  const min = depthRange(space).min;
  return bins.map((b) => {
    let mass = 0;
    for (let d = b.lo; d <= b.hi; d++) mass += dist[d - min] ?? 0;
    return mass;
  });
}

/**
 * Bin weights of a batch. `balanced`: the extension weights as given (none: equal counts).
 * `random`: the random strategy's mass per bin times the extension weights, so that random
 * sampling keeps its bell-shaped depth distribution in every batch (failing bins still get
 * w1 times their share), also when replaying a pool that was measured balanced.
 */
export function batchBinWeights(
  space: SearchSpace,
  params: Pick<LoopParams, 'sampling'>,
  bins: readonly DepthBin[],
  binWeights?: readonly number[],
): readonly number[] | undefined {
  if (params.sampling !== 'random') return binWeights;
  return randomBinMass(space, bins).map((m, i) => m * (binWeights?.[i] ?? 1));
}

function candidatesOf<T extends PoolItem & { arch: Record<string, unknown> }>(
  n: number,
  options: PlanOptions<T>,
): Candidate[] {
  const { source, params, bins, rng, exclude } = options;
  const binWeights = batchBinWeights(source.space, params, bins, options.binWeights);
  // `active` draws its batches balanced; planActiveExtension then re-picks the training share.
  const strategy: SamplingStrategy = params.sampling === 'active' ? 'balanced' : params.sampling;
  const common = { n, strategy, rng, bins, exclude, binWeights };
  if (source.kind === 'pool') {
    const left = poolLeft(source.pool, exclude);
    if (options.iteration === 0 && left < n) {
      throw new ValidationError(
        'nInit',
        `the pool has ${left} architectures, fewer than the first batch of ${n}; lower nInit or replay a larger dataset`,
      );
    }
    // A replay's last extension draws what is left of its pool.
    return samplePool(source.pool, { ...common, n: Math.min(n, left) }).map((item) => ({
      arch: item.arch,
      key: item.key,
      depth: item.depth,
    }));
  }
  return sampleArchitectures(source.space, common).map((subnet: Subnet) => ({
    arch: source.space.toNative(subnet) as Record<string, unknown>,
    key: subnetKey(subnet),
    depth: depth(subnet),
  }));
}

/** The initial batch: N_I architectures with their splits (iteration 0, no bin weights). */
export function planInitialBatch<T extends PoolItem & { arch: Record<string, unknown> }>(
  options: Omit<PlanOptions<T>, 'iteration' | 'binWeights'>,
): PlannedSample[] {
  const rng = options.rng;
  const candidates = candidatesOf(options.params.nInit, { ...options, iteration: 0 });
  return assignSplits(candidates, {
    bins: options.bins,
    testFraction: options.params.testFraction,
    iteration: 0,
    rng,
  });
}

/**
 * An extension batch: N_Step architectures, counts per bin in proportion to `binWeights`
 * (from `decide`), none of them in `exclude`.
 */
export function planExtension<T extends PoolItem & { arch: Record<string, unknown> }>(
  options: PlanOptions<T> & { binWeights: readonly number[] },
): PlannedSample[] {
  if (options.params.sampling === 'active') {
    throw new ValidationError(
      'sampling',
      'active sampling needs the current predictor: plan the extension with planActiveExtension',
    );
  }
  const candidates = candidatesOf(options.params.nStep, options);
  return assignSplits(candidates, {
    bins: options.bins,
    testFraction: options.params.testFraction,
    iteration: options.iteration,
    rng: options.rng,
  });
}

/**
 * An extension batch of `--sampling active`: N_Step architectures with the bins' counts of
 * `planExtension`, of which the test share is drawn uniformly per bin as usual (so per-bin test
 * accuracy stays an unbiased estimate) and the training share is, per bin, the candidates the
 * current predictor is least sure about (`uncertainty`, larger = less sure), among every
 * unmeasured pool item on replay or `activePool` random candidates per pick from the space.
 */
export async function planActiveExtension<T extends PoolItem & { arch: Record<string, unknown> }>(
  options: PlanOptions<T> & {
    binWeights: readonly number[];
    uncertainty: (candidates: readonly Candidate[]) => Promise<ArrayLike<number>>;
    /** Random candidates drawn per training pick from a space. @default 20 */
    activePool?: number;
  },
): Promise<PlannedSample[]> {
  const { bins, rng, params, source, iteration } = options;
  const planned = planExtension({ ...options, params: { ...params, sampling: 'balanced' } });
  const test = planned.filter((s) => s.split === 'test');
  const trainCounts = bins.map(() => 0);
  for (const s of planned)
    if (s.split === 'train') trainCounts[s.bin] = (trainCounts[s.bin] ?? 0) + 1;
  const nTrain = trainCounts.reduce((a, b) => a + b, 0);
  const exclude = new Set([...(options.exclude ?? []), ...test.map((s) => s.key)]);
  const pool: Candidate[] =
    source.kind === 'pool'
      ? source.pool
          .filter((item) => !exclude.has(item.key))
          .map((item) => ({ arch: item.arch, key: item.key, depth: item.depth }))
      : candidatesOf((options.activePool ?? 20) * nTrain, {
          ...options,
          params: { ...params, sampling: 'balanced' },
          exclude,
        });
  const scores = await options.uncertainty(pool);
  const byKey = new Map(pool.map((c, i) => [c.key, scores[i] as number]));
  const picks = selectActive(pool, {
    bins,
    counts: trainCounts,
    rng,
    exclude,
    uncertainty: (items) => items.map((c) => byKey.get(c.key) ?? Number.NEGATIVE_INFINITY),
  });
  return [
    ...test,
    ...picks.map((c) => ({
      id: '',
      arch: c.arch,
      key: c.key,
      depth: c.depth,
      bin: binOf(bins, c.depth),
      split: 'train' as const,
      iteration,
    })),
  ].map((s, i) => ({ ...s, id: `i${iteration}-${i}` }));
}

/** A measured sample: its plan plus the measured latency. */
export interface MeasuredSample {
  readonly depth: number;
  readonly split: Split;
  readonly latencyMs: number;
}

/** Train/test counts per bin. */
export function binCounts(
  samples: readonly Pick<MeasuredSample, 'depth' | 'split'>[],
  bins: readonly DepthBin[],
): { train: number; test: number }[] {
  const counts = bins.map(() => ({ train: 0, test: 0 }));
  for (const s of samples) {
    const c = counts[binOf(bins, s.depth)];
    if (c) c[s.split] += 1;
  }
  return counts;
}

export interface DecideOptions {
  /** Per-bin test accuracy; null for a bin without test samples (it counts as failing). */
  readonly binAccuracies: readonly (number | null)[];
  readonly accTh: number;
  /** The iteration just evaluated (0-based). */
  readonly iteration: number;
  readonly maxIter: number;
  readonly w1: number;
  /** Test samples per bin; with `minTest`, a bin with fewer counts as failing. */
  readonly binTestCounts?: readonly number[];
  /**
   * Fewest test samples a bin needs before its accuracy may count as converged: a bin judged
   * on one or two networks passes or fails by chance. @default 1
   */
  readonly minTest?: number;
  /** Replay: architectures of the pool no sample has drawn yet; none left ends the loop. */
  readonly poolLeft?: number;
}

export interface Decision {
  /** Every bin reached `accTh`. */
  readonly converged: boolean;
  /** The loop ends here (converged, `maxIter` iterations done, or a replay's pool used up). */
  readonly stop: boolean;
  readonly reason: 'converged' | 'max-iter' | 'pool-exhausted' | null;
  /** Weights of the next extension: w1 for failing bins, 1 for passing ones; empty on stop. */
  readonly binWeights: number[];
}

/** Converged or not, and what to weight next: step 5 of the ESM loop. */
export function decide(options: DecideOptions): Decision {
  const { accTh, iteration, maxIter, w1, binTestCounts, minTest = 1 } = options;
  if (options.binAccuracies.length === 0) {
    throw new ValidationError('binAccuracies', 'expected one accuracy per depth bin');
  }
  // Without counts every accuracy counts; too few test samples fail a bin and weight it w1.
  const passed = options.binAccuracies.map((a, i) =>
    passes(a, binTestCounts ? (binTestCounts[i] ?? 0) : minTest, accTh, minTest),
  );
  const converged = passed.every(Boolean);
  if (converged) return { converged, stop: true, reason: 'converged', binWeights: [] };
  // Before max-iter: more iterations would not help a replay with nothing left to draw.
  if (options.poolLeft === 0) {
    return { converged, stop: true, reason: 'pool-exhausted', binWeights: [] };
  }
  if (iteration + 1 >= maxIter)
    return { converged, stop: true, reason: 'max-iter', binWeights: [] };
  return {
    converged,
    stop: false,
    reason: null,
    binWeights: extensionWeights(passed, w1),
  };
}

/**
 * The accuracy the loop decides a bin on: its test samples' under the default rule; with
 * `binAccuracy: 'oof'` that of its test and out-of-fold samples, or their lower bound.
 */
export function judgedAccuracy(bin: BinSummary): number | null {
  return bin.decided?.lowerBound ?? bin.decided?.accuracy ?? bin.accuracy;
}

/** Whether the loop counts a bin as passed: judged accuracy at AccTH on enough samples. */
export function binPassed(
  bin: BinSummary,
  params: Pick<RunParams, 'accTh' | 'minTestPerBin'>,
): boolean {
  return passes(
    judgedAccuracy(bin),
    bin.decided?.n ?? bin.test,
    params.accTh,
    params.minTestPerBin,
  );
}

/**
 * The pass rule of step 5, the one place it is written: a bin passes when its accuracy is
 * known, at least `accTh`, and judged on at least `minTest` samples (a bin judged on one or
 * two networks passes or fails by chance).
 */
export function passes(
  accuracy: number | null,
  n: number,
  accTh: number,
  minTest: number,
): boolean {
  return accuracy !== null && accuracy >= accTh && n >= minTest;
}

/** A training sample scored by a model that did not train on it (cross-validation). */
export interface OutOfFoldSample {
  readonly depth: number;
  readonly latencyMs: number;
  readonly predicted: number;
}

export interface SummariseOptions {
  readonly iteration: number;
  readonly bins: readonly DepthBin[];
  /** Every measured sample of the run so far (train and test). */
  readonly samples: readonly MeasuredSample[];
  /** Predicted latency of every test sample, in the order they appear in `samples`. */
  readonly predictedTest: ArrayLike<number>;
  readonly params: Pick<LoopParams, 'accTh' | 'maxIter' | 'w1'> & {
    minTestPerBin?: number;
    /** @default 'test' (RunParams.binAccuracy) */
    binAccuracy?: 'test' | 'oof';
    /** @default 0 (RunParams.binAccuracyZ) */
    binAccuracyZ?: number;
  };
  /**
   * With `params.binAccuracy: 'oof'`: training samples with out-of-fold predictions, judged
   * with the test samples. @default none (the decision is on the test samples alone)
   */
  readonly outOfFold?: readonly OutOfFoldSample[];
  /** Replay: architectures of the pool no sample has drawn yet (`decide`). */
  readonly poolLeft?: number;
  readonly secondsMeasuring: number;
  readonly secondsTraining: number;
  readonly quality: IterationRecord['quality'];
  /** ISO time stamp of the record (the caller's clock). */
  readonly finishedAt: string;
}

/**
 * The record of one iteration: counts and accuracy per bin, overall metrics on the test set,
 * times, quality flags, and the decision for the next step.
 */
export function summariseIteration(options: SummariseOptions): IterationRecord {
  const { iteration, bins, samples, predictedTest, params } = options;
  const test = samples.filter((s) => s.split === 'test');
  if (test.length === 0) {
    throw new ValidationError(
      'testFraction',
      'no test samples to evaluate on; raise --test-fraction or --n-init',
    );
  }
  const evaluation = evaluate({
    predicted: predictedTest,
    measured: test.map((s) => s.latencyMs),
    depths: test.map((s) => s.depth),
    bins,
  });
  const counts = binCounts(samples, bins);
  const binSummaries: BinSummary[] = (evaluation.bins ?? []).map((b, i) => ({
    lo: b.lo,
    hi: b.hi,
    train: counts[i]?.train ?? 0,
    test: counts[i]?.test ?? 0,
    accuracy: b.accuracy,
  }));
  const known = binSummaries.map((b) => b.accuracy).filter((a): a is number => a !== null);
  const overall: OverallMetrics = {
    n: evaluation.n,
    accuracy: evaluation.accuracy,
    binBalancedAccuracy: known.length ? known.reduce((a, b) => a + b, 0) / known.length : null,
    within5: evaluation.within5,
    within10: evaluation.within10,
    rmse_ms: evaluation.rmse_ms,
    spearman: evaluation.spearman,
  };
  const judged =
    params.binAccuracy === 'oof' && options.outOfFold
      ? withOutOfFold(
          binSummaries,
          test,
          predictedTest,
          options.outOfFold,
          bins,
          params.binAccuracyZ ?? 0,
        )
      : binSummaries;
  const decision = decide({
    binAccuracies: judged.map(judgedAccuracy),
    binTestCounts: judged.map((b) => b.decided?.n ?? b.test),
    minTest: params.minTestPerBin,
    accTh: params.accTh,
    iteration,
    maxIter: params.maxIter,
    w1: params.w1,
    poolLeft: options.poolLeft,
  });
  return {
    iteration,
    samples: {
      train: samples.length - test.length,
      test: test.length,
    },
    bins: judged,
    overall,
    secondsMeasuring: options.secondsMeasuring,
    secondsTraining: options.secondsTraining,
    quality: options.quality,
    converged: decision.converged,
    stop: decision.stop,
    reason: decision.reason,
    nextBinWeights: decision.binWeights,
    finishedAt: options.finishedAt,
  };
}

/**
 * The bins judged on every sample the run can score fairly (`binAccuracy: 'oof'`): the test
 * samples, scored by the iteration's predictor, and the training samples, scored out of fold.
 * A bin's test share alone is one or two networks early on, so bins pass or fail by chance
 * and "every bin passes" waits for a lucky iteration (docs/BENCHMARKS.md, "Active sampling");
 * the out-of-fold rows multiply the evidence by 1 / testFraction at no measuring cost. They
 * are slightly pessimistic (each fold's model saw 80 % of the rows), never optimistic about
 * a bin's accuracy on uniform draws, which is what keeps it from passing bins that are truly
 * below AccTH.
 */
function withOutOfFold(
  binSummaries: readonly BinSummary[],
  test: readonly MeasuredSample[],
  predictedTest: ArrayLike<number>,
  outOfFold: readonly OutOfFoldSample[],
  bins: readonly DepthBin[],
  z: number,
): BinSummary[] {
  const rows = [
    ...test.map((s, i) => ({ ...s, predicted: predictedTest[i] as number })),
    ...outOfFold,
  ];
  const judged = evaluate({
    predicted: rows.map((r) => r.predicted),
    measured: rows.map((r) => r.latencyMs),
    depths: rows.map((r) => r.depth),
    bins,
  }).bins;
  // Per-bin spread of the rows' accuracies, for the lower bound.
  const squares = bins.map(() => 0);
  for (const r of rows) {
    const b = binOf(bins, r.depth);
    const mean = judged?.[b]?.accuracy as number;
    const accuracy = 1 - Math.abs(r.predicted - r.latencyMs) / r.latencyMs;
    squares[b] = (squares[b] as number) + (accuracy - mean) ** 2;
  }
  return binSummaries.map((b, i) => {
    const n = judged?.[i]?.n ?? 0;
    const accuracy = judged?.[i]?.accuracy ?? null;
    if (z <= 0 || accuracy === null) return { ...b, decided: { n, accuracy } };
    // One row has no spread to bound by: it cannot pass under a bound.
    const se = n > 1 ? Math.sqrt((squares[i] as number) / (n - 1) / n) : Number.POSITIVE_INFINITY;
    return { ...b, decided: { n, accuracy, lowerBound: accuracy - z * se } };
  });
}

/**
 * A seed for iteration `iteration` of a run seeded with `seed`, so that each batch's draws
 * depend only on (seed, iteration): a resumed run plans what the original would have.
 */
export function iterationSeed(seed: number, iteration: number): number {
  let h = (seed ^ Math.imul(iteration + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** An iteration's test metrics in the predictor.json format, shared by local and cloud runs. */
export function predictorMetrics(record: IterationRecord): NonNullable<PredictorJson['metrics']> {
  return {
    test: headline(record.overall),
    bins: record.bins.map((b) => ({ lo: b.lo, hi: b.hi, n: b.test, accuracy: b.accuracy })),
  };
}

/** Fewest measured training samples an iteration trains on: fewer cannot fit a predictor. */
export const minTrainSamples = 8;

/**
 * The seed of iteration `iteration`'s predictor: distinct from the planning seed of the same
 * iteration, so that the batch drawn and the weights initialised are independent.
 */
export function trainingSeed(seed: number, iteration: number): number {
  return iterationSeed(seed ^ 0x5eed, iteration);
}

/**
 * Job ids: `{runId}/i{iteration}-a{attempt}-c{chunk}`. Every dispatch is a new attempt with
 * new ids, so a device's duplicate detection never answers a retry from its cache, and a
 * device's progress (which names only the job) leads back to its run.
 */
export function jobId(runId: string, iteration: number, attempt: number, chunk: number): string {
  return `${runId}/i${iteration}-a${attempt}-c${chunk}`;
}

/** The run of a job id made by `jobId`, or undefined for another format. */
export function runOfJob(batchId: string): string | undefined {
  const slash = batchId.lastIndexOf('/');
  return slash > 0 ? batchId.slice(0, slash) : undefined;
}

/**
 * Jobs a device holds at once (one running, the others queued behind it): enough that it
 * never waits for the platform between two jobs, few enough that the rest of a batch stays
 * unassigned and goes to whichever device frees up first (a faster device measures more),
 * and below the daemon's queue limit.
 */
export const maxJobsInFlight = 3;

/**
 * Shards `items` into jobs over `devices`: chunks of at most `chunkSize` samples, no bigger
 * than an equal share per device (so three devices get three jobs of a small batch), dealt
 * round-robin to the devices that hold fewer than `maxJobsInFlight` jobs. Items that fit in
 * no free slot stay for a later dispatch.
 */
export function shardJobs<T>(
  items: readonly T[],
  devices: readonly string[],
  options: { chunkSize: number; inFlight?: ReadonlyMap<string, number>; maxInFlight?: number },
): { thing: string; items: T[] }[] {
  if (devices.length === 0) throw new ValidationError('things', 'no device to dispatch to');
  const max = options.maxInFlight ?? maxJobsInFlight;
  const slots: string[] = [];
  for (let k = 0; k < max; k++) {
    for (const d of devices) if ((options.inFlight?.get(d) ?? 0) + k < max) slots.push(d);
  }
  const size = Math.max(1, Math.min(options.chunkSize, Math.ceil(items.length / devices.length)));
  const jobs: { thing: string; items: T[] }[] = [];
  for (let start = 0; start < items.length && jobs.length < slots.length; start += size) {
    jobs.push({ thing: slots[jobs.length] as string, items: items.slice(start, start + size) });
  }
  return jobs;
}

/** Jobs each device holds: distinct job ids among the pending samples assigned to it. */
export function jobsInFlight(pending: readonly PendingSample[]): Map<string, number> {
  const jobs = new Map<string, Set<string>>();
  for (const s of pending) {
    if (s.assignedThing === undefined || s.assignedBatch === undefined) continue;
    const set = jobs.get(s.assignedThing) ?? new Set<string>();
    set.add(s.assignedBatch);
    jobs.set(s.assignedThing, set);
  }
  return new Map([...jobs].map(([t, set]) => [t, set.size]));
}

/** A pending sample as the collect step sees it. */
export interface PendingSample {
  readonly id: string;
  readonly assignedThing?: string;
  readonly assignedBatch?: string;
  readonly assignedAt?: string;
}

export interface CollectOptions {
  readonly pending: readonly PendingSample[];
  /** Job ids whose results came back unstable. */
  readonly unstableBatches: readonly string[];
  readonly unstableRetries: number;
  /** @default 1 */
  readonly maxUnstableRetries?: number;
  /** Per device, the last progress (ISO time) on a job of this run. */
  readonly progress: Readonly<Record<string, string>>;
  readonly now: Date;
  readonly resultTimeoutSeconds: number;
  readonly redispatches: number;
  readonly maxRedispatches: number;
  /**
   * Interleaved run without its reference calibration yet: the first job calibrates, so no
   * other job is sent before its result.
   */
  readonly calibrating: boolean;
  /** The devices a dispatch may send to (`liveDevices`). */
  readonly live: readonly string[];
  /** @default maxJobsInFlight */
  readonly maxInFlight?: number;
}

/** What the collect step does next. */
export type CollectDecision =
  | { readonly kind: 'complete' }
  | { readonly kind: 'measuring' }
  /** Send the unassigned samples (after releasing `release`). */
  | {
      readonly kind: 'dispatch';
      readonly reason: 'new' | 'unstable' | 'timeout';
      readonly release: readonly string[];
      /** Devices presumed dead (timeout). */
      readonly silent: readonly string[];
      /** Jobs that came back unstable. */
      readonly unstable: readonly string[];
    }
  | { readonly kind: 'unstable'; readonly batches: readonly string[] }
  | {
      readonly kind: 'timeout';
      readonly things: readonly string[];
      readonly waitedSeconds: number;
    };

/**
 * The collect step of the loop, on plain data: is the batch measured, did a job come back
 * unstable, did a device fall silent, or is there work not sent yet? Unstable jobs are
 * measured again once (`maxUnstableRetries`); a device whose last progress (or dispatch) is
 * older than `resultTimeoutSeconds` has its samples released for re-dispatch, at most
 * `maxRedispatches` times per iteration.
 */
export function collectDecision(options: CollectOptions): CollectDecision {
  const { pending, now } = options;
  if (pending.length === 0) return { kind: 'complete' };
  const unstableSet = new Set(options.unstableBatches);
  const unstableHit = pending.filter(
    (s) => s.assignedBatch !== undefined && unstableSet.has(s.assignedBatch),
  );
  if (unstableHit.length > 0) {
    const batches = [...new Set(unstableHit.map((s) => s.assignedBatch as string))];
    if (options.unstableRetries >= (options.maxUnstableRetries ?? 1)) {
      return { kind: 'unstable', batches };
    }
    return {
      kind: 'dispatch',
      reason: 'unstable',
      release: unstableHit.map((s) => s.id),
      silent: [],
      unstable: batches,
    };
  }
  // Per device: the newest of its assignments and its last progress.
  const activity = new Map<string, number>();
  for (const s of pending) {
    if (s.assignedThing === undefined) continue;
    const at = Date.parse(s.assignedAt ?? '') || 0;
    activity.set(s.assignedThing, Math.max(activity.get(s.assignedThing) ?? 0, at));
  }
  let waited = 0;
  const silent: string[] = [];
  for (const [thing, at] of activity) {
    const progressed = Date.parse(options.progress[thing] ?? '') || 0;
    const seconds = (now.getTime() - Math.max(at, progressed)) / 1000;
    if (seconds > options.resultTimeoutSeconds) {
      silent.push(thing);
      waited = Math.max(waited, seconds);
    }
  }
  if (silent.length > 0) {
    if (options.redispatches >= options.maxRedispatches) {
      return { kind: 'timeout', things: silent, waitedSeconds: waited };
    }
    const gone = new Set(silent);
    return {
      kind: 'dispatch',
      reason: 'timeout',
      release: pending
        .filter((s) => s.assignedThing !== undefined && gone.has(s.assignedThing))
        .map((s) => s.id),
      silent,
      unstable: [],
    };
  }
  const unassigned = pending.some((s) => s.assignedBatch === undefined);
  const inFlight = jobsInFlight(pending);
  const max = options.maxInFlight ?? maxJobsInFlight;
  const freeSlot = options.live.some((t) => (inFlight.get(t) ?? 0) < max);
  if (unassigned && freeSlot && !(options.calibrating && inFlight.size > 0)) {
    return { kind: 'dispatch', reason: 'new', release: [], silent: [], unstable: [] };
  }
  return { kind: 'measuring' };
}

/** The devices a dispatch sends to: those not presumed dead, or all when every one is. */
export function liveDevices(things: readonly string[], silent: readonly string[]): string[] {
  const dead = new Set(silent);
  const live = things.filter((t) => !dead.has(t));
  return live.length > 0 ? live : [...things];
}
