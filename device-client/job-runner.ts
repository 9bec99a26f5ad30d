/**
 * Runs one measurement job: every sample is built, timed and summarised; reference models are
 * timed at the start, every `referenceEvery` samples and at the end, and their drift decides
 * whether the batch can be trusted (ESM's quality-assurance step). With `interleave` the
 * references after the first are checked as the samples are timed, against the first, so the
 * drift judged is that of the numbers the batch reports. With `maxSampleSpread` a sample whose
 * runs spread too widely is measured once more at the end. Used by the MQTT daemon and
 * in-process by local `esm run`.
 */
import { ArchValidationError, EsmError, ValidationError } from '../core/errors.ts';
import type { LatencyStats } from '../core/schemas/dataset.ts';
import {
  type JobMessage,
  jobMessage,
  type MeasurementSettings,
  PROTOCOL_MINOR,
  type ResultMessage,
  type SampleMetrics,
} from '../core/schemas/protocol.ts';
import { checkCostBounds } from '../core/spaces/bounds.ts';
import { graphCost } from '../core/spaces/cost.ts';
import { getSpace } from '../core/spaces/index.ts';
import type { LayerGraph, SearchSpace } from '../core/spaces/types.ts';
import { spread } from '../core/stats.ts';
import { deviceFacts } from './device-facts.ts';
import { type ExecutionProvider, ModelSession, measureGraph, summarizeTimings } from './measure.ts';
import { type EnergyCounterLookup, findEnergyCounter, measureMetrics } from './metrics.ts';
import { defaultReferences, type ReferenceModel } from './references.ts';

export interface RunJobOptions {
  /** This device's thing name, reported in the result. */
  thing: string;
  /** Called after each sample with the samples done and the batch size. */
  onProgress?: (done: number, total: number) => void;
  /** Polled between samples; when it returns true the job stops with `JobStoppedError`. */
  shouldStop?: () => boolean;
  /** Resolves a job's space. @default built-in spaces, or `spaceFromSpec(spec)` when a spec is given */
  resolveSpace?: (name: string, spec?: Record<string, unknown>) => SearchSpace;
  /** @default 'cpu' */
  executionProvider?: ExecutionProvider;
  /**
   * Measure the whole batch a second time when a reference drifted more than
   * `maxReferenceDrift`; the second attempt's result is returned, flagged if it drifted too.
   * @default true
   */
  retryUnstable?: boolean;
}

/** The job was stopped between samples (daemon shutdown); nothing of it was reported. */
export class JobStoppedError extends EsmError {
  constructor(
    readonly batchId: string,
    readonly done: number,
    readonly total: number,
  ) {
    super(`job ${batchId} stopped after ${done} of ${total} samples; it was not reported`);
  }
}

async function defaultResolveSpace(
  name: string,
  spec?: Record<string, unknown>,
): Promise<SearchSpace> {
  if (!spec) return getSpace(name);
  const { spaceFromSpec } = await import('../core/spaces/spec.ts');
  return spaceFromSpec(spec);
}

/** Parse and validate a job; a bad job throws `ValidationError` naming the first bad field. */
export function parseJob(job: unknown): JobMessage {
  const parsed = jobMessage.safeParse(job);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || 'job';
    throw new ValidationError(field, issue?.message ?? 'invalid job message');
  }
  return parsed.data;
}

function layerGraphOf(space: SearchSpace, arch: unknown, where: string): LayerGraph {
  try {
    return space.layerGraph(space.parse(arch));
  } catch (error) {
    if (error instanceof ArchValidationError) {
      throw new ArchValidationError(`${where}.${error.field}`, error.message, { cause: error });
    }
    throw error;
  }
}

/** (max median - min median) / min median over a reference's checks. */
export function referenceDrift(checks: readonly LatencyStats[]): number {
  const medians = checks.map((c) => c.median_ms);
  const min = Math.min(...medians);
  return (Math.max(...medians) - min) / min;
}

interface Attempt {
  samples: { id: string; stats: LatencyStats; metrics?: SampleMetrics; remeasured?: true }[];
  references: { id: string; checks: LatencyStats[]; drift: number }[];
  maxDrift: number;
  referenceScaleMs?: number;
  samplesRemeasured?: number;
}

/** The reference every interleaved run is divided by, and the latency it stands for. */
export interface Scale {
  readonly session: ModelSession;
  readonly scaleMs: number;
}

/**
 * Times `model` alternately, run by run, with the scale reference and summarises the per-run
 * ratios times the reference's calibrated latency: a change of the machine's speed between
 * runs hits both models and cancels in the ratio.
 */
export async function timeInterleaved(
  model: ModelSession,
  scale: Scale,
  settings: Pick<MeasurementSettings, 'warmup' | 'runs'>,
): Promise<LatencyStats> {
  await model.warmup(settings.warmup);
  const scaled: number[] = [];
  for (let i = 0; i < settings.runs; i++) {
    const [own] = await model.time(1);
    const [ref] = await scale.session.time(1);
    scaled.push(((own as number) / (ref as number)) * scale.scaleMs);
  }
  return summarizeTimings(scaled);
}

async function measureInterleaved(
  graph: LayerGraph,
  scale: Scale,
  settings: MeasurementSettings & { executionProvider?: ExecutionProvider },
): Promise<LatencyStats> {
  const model = await ModelSession.open(graph, settings);
  try {
    return await timeInterleaved(model, scale, settings);
  } finally {
    await model.release();
  }
}

async function attempt(
  job: JobMessage,
  graphs: readonly LayerGraph[],
  refs: readonly { id: string; graph: LayerGraph }[],
  options: RunJobOptions,
): Promise<Attempt> {
  const settings = { ...job.settings, executionProvider: options.executionProvider };
  const sessions: { id: string; model: ModelSession; checks: LatencyStats[] }[] = [];
  try {
    for (const ref of refs) {
      sessions.push({
        id: ref.id,
        model: await ModelSession.open(ref.graph, settings),
        checks: [],
      });
    }
    // With `interleave`, the first reference is the scale every sample is divided by: its
    // first check calibrates the job (unless the job brings the run's calibration), and the
    // other references are checked interleaved with it, as samples are measured. The machine's
    // speed moving between checks then cancels, as it does in the samples (on the 2-core VM,
    // idle, the absolute medians moved up to 57 % within 20 checks, the interleaved check
    // 10 %: docs/BENCHMARKS.md); only what interleaving cannot correct is judged.
    const first = sessions[0];
    let interleaved: Scale | undefined;
    // References are timed back to back, so every check sees the device in the same state.
    const check = async () => {
      for (const s of sessions) {
        const stats =
          interleaved && s !== first
            ? await timeInterleaved(s.model, interleaved, settings)
            : await s.model.measure(settings);
        s.checks.push(stats);
        if (s === first && job.settings.interleave === true && !interleaved) {
          interleaved = {
            session: s.model,
            scaleMs: job.settings.referenceScaleMs ?? stats.median_ms,
          };
        }
      }
    };
    // A fresh process runs its first models slower (JIT, allocator, page faults): the first
    // check's medians came out 8-14 % above later ones. One discarded pass absorbs that.
    for (const s of sessions) await s.model.measure(settings);
    await check();
    const samples: Attempt['samples'] = [];
    const total = graphs.length;
    const wanted = job.settings.metrics ?? [];
    // Looked up once per job: the counter (or the reason there is none) is the same for all.
    let energy: EnergyCounterLookup | undefined;
    if (wanted.includes('energy_mj')) {
      energy = await findEnergyCounter({ executionProvider: options.executionProvider });
    }
    const time = async (graph: LayerGraph) =>
      interleaved
        ? await measureInterleaved(graph, interleaved, settings)
        : (await measureGraph(graph, settings)).stats;
    for (let i = 0; i < total; i++) {
      if (options.shouldStop?.()) throw new JobStoppedError(job.batchId, i, total);
      const graph = graphs[i] as LayerGraph;
      const stats = await time(graph);
      const id = (job.samples[i] as { id: string }).id;
      // After the latency runs, so the child process and the energy runs never overlap them.
      const metrics =
        wanted.length > 0 ? await measureMetrics(graph, wanted, settings, { energy }) : undefined;
      samples.push(metrics ? { id, stats, metrics } : { id, stats });
      options.onProgress?.(i + 1, total);
      const every = job.settings.referenceEvery;
      if (every > 0 && (i + 1) % every === 0 && i + 1 < total) await check();
    }
    // Measured again after the others, so that a burst of interference has had time to pass;
    // before the last reference check, so the references still bracket every timed sample.
    const maxSpread = job.settings.maxSampleSpread;
    let remeasured = 0;
    if (maxSpread !== undefined) {
      for (const [i, sample] of samples.entries()) {
        if (spread(sample.stats) <= maxSpread) continue;
        if (options.shouldStop?.()) throw new JobStoppedError(job.batchId, total, total);
        const again = await time(graphs[i] as LayerGraph);
        remeasured++;
        sample.remeasured = true;
        if (spread(again) < spread(sample.stats)) sample.stats = again;
      }
    }
    await check();
    const references = sessions.map((s) => ({
      id: s.id,
      checks: s.checks,
      drift: referenceDrift(s.checks),
    }));
    // Interleaved, the scale reference's own drift is the machine's speed, which the ratios
    // divide out; it is reported, and judged only when no other reference is there to judge.
    const judged = interleaved && references.length > 1 ? references.slice(1) : references;
    return {
      samples,
      references,
      maxDrift: Math.max(0, ...judged.map((r) => r.drift)),
      referenceScaleMs: interleaved?.scaleMs,
      samplesRemeasured: maxSpread === undefined ? undefined : remeasured,
    };
  } finally {
    for (const s of sessions) await s.model.release();
  }
}

/**
 * Measure every sample of `job` and return the result message. Archs are validated before
 * anything is timed (`ArchValidationError` naming `samples[i].arch.FIELD`). When the job lists
 * no references, `defaultReferences` are used, so no batch goes without quality checks.
 */
export async function runJob(job: JobMessage, options: RunJobOptions): Promise<ResultMessage> {
  const parsed = parseJob(job);
  const startedAt = new Date().toISOString();
  const resolve = async (name: string, spec?: Record<string, unknown>) =>
    options.resolveSpace ? options.resolveSpace(name, spec) : defaultResolveSpace(name, spec);
  const space = await resolve(parsed.space, parsed.spaceSpec);
  const graphs = parsed.samples.map((s, i) => layerGraphOf(space, s.arch, `samples[${i}].arch`));
  // Costed before any model is built: a job too large for this device is refused whole.
  const { batchSize } = parsed.settings;
  graphs.forEach((graph, i) => {
    const cost = graphCost(graph);
    const what = `samples[${i}]`;
    checkCostBounds(cost, { field: `samples[${i}].arch`, what });
    checkCostBounds(cost, { field: 'settings.batchSize', batchSize, what });
  });
  const refModels: readonly ReferenceModel[] =
    parsed.references.length > 0 ? parsed.references : defaultReferences;
  const refs = [];
  for (const [i, ref] of refModels.entries()) {
    const refSpace = ref.space === parsed.space ? space : await resolve(ref.space);
    refs.push({ id: ref.id, graph: layerGraphOf(refSpace, ref.arch, `references[${i}].arch`) });
  }

  let result = await attempt(parsed, graphs, refs, options);
  const limit = parsed.settings.maxReferenceDrift;
  if (result.maxDrift > limit && (options.retryUnstable ?? true)) {
    result = await attempt(parsed, graphs, refs, options);
  }
  const settings: MeasurementSettings = parsed.settings;
  return {
    v: 1,
    minor: PROTOCOL_MINOR,
    type: 'result',
    runId: parsed.runId,
    batchId: parsed.batchId,
    thing: options.thing,
    samples: result.samples,
    references: result.references,
    quality: {
      maxDrift: result.maxDrift,
      unstable: result.maxDrift > limit,
      ...(result.referenceScaleMs === undefined
        ? {}
        : { referenceScaleMs: result.referenceScaleMs }),
      ...(result.samplesRemeasured === undefined
        ? {}
        : { samplesRemeasured: result.samplesRemeasured }),
    },
    device: deviceFacts(options.thing, { executionProvider: options.executionProvider }),
    settings,
    startedAt,
    finishedAt: new Date().toISOString(),
  };
}
