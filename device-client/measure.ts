/**
 * Times ONNX models with onnxruntime-node. Building the model and creating the session are
 * timed apart (overhead) and never enter the latency. The timed loop reuses one input tensor
 * and records each run with `process.hrtime.bigint()`.
 */
import { execFileSync } from 'node:child_process';
import * as ort from 'onnxruntime-node';
import { EsmError, ValidationError } from '../core/errors.ts';
import type { LatencyStats } from '../core/schemas/dataset.ts';
import type { MeasurementSettings } from '../core/schemas/protocol.ts';
import type { LayerGraph } from '../core/spaces/types.ts';
import { median } from '../core/stats.ts';
import { buildOnnxModel, INPUT_NAME } from './onnx-builder.ts';

// onnxruntime-node (1.30 here) collects telemetry on Linux and macOS: every process that
// creates a session writes $TMPDIR/mat-debug-PID.log and, under ~/.cache/Microsoft/
// DeveloperTools/.onnxruntime, a device id and a queue of events to upload to Microsoft. A
// measuring device should neither phone home nor run an uploader beside the models it times,
// so it is off unless the user set the variable (ORT_DISABLE_TELEMETRY=0 turns it on). The
// runtime reads it when it creates its first session, which this module's callers do only
// after it has loaded; local/predictor-store.ts and lambdas/adapters/onnx-predictor.ts, the
// other modules that create sessions, do the same.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

export type ExecutionProvider = 'cpu' | 'cuda';

/** What a measurement needs from the job settings; protocol defaults apply to the rest. */
export type MeasureSettings = Pick<
  MeasurementSettings,
  'warmup' | 'runs' | 'threads' | 'batchSize' | 'clock'
> & {
  /** Seed of the random weights. @default 0 */
  seed?: number;
  /** @default 'cpu' */
  executionProvider?: ExecutionProvider;
};

/** The onnxruntime session options a measurement used, recorded with its results. */
export interface SessionRecord {
  intraOpNumThreads: number;
  interOpNumThreads: 1;
  graphOptimizationLevel: 'all';
  executionMode: 'sequential';
  executionProvider: ExecutionProvider;
  /** How each run was timed (see `MeasurementSettings.clock`). */
  clock: Clock;
}

export type Clock = 'wall' | 'cpu';

export interface Overhead {
  /** Layer graph -> ONNX bytes. */
  build: number;
  /** onnxruntime session creation (graph optimisation, kernel selection). */
  session: number;
}

/** Raised when the execution provider cannot run here (e.g. CUDA binaries not installed). */
export class ExecutionProviderError extends EsmError {}

/** The upper-outlier threshold in scaled MADs: runs slower than median + K * 1.4826 * MAD go. */
export const OUTLIER_MADS = 3;

/**
 * Statistics of timed runs after dropping upper outliers: runs above
 * `median + OUTLIER_MADS * 1.4826 * MAD` (MAD floored at 0.1 % of the median so that a
 * perfectly flat series keeps its runs). Only the slow tail is trimmed because interference
 * (other processes, interrupts, frequency drops) can only make a run slower.
 */
export function summarizeTimings(timesMs: readonly number[]): LatencyStats {
  if (timesMs.length === 0) throw new RangeError('summarizeTimings needs at least one run');
  const sorted = timesMs.slice().sort((a, b) => a - b);
  const m = median(sorted);
  const mad = median(sorted.map((t) => Math.abs(t - m)).sort((a, b) => a - b));
  const limit = m + OUTLIER_MADS * 1.4826 * Math.max(mad, 0.001 * m);
  const kept = sorted.filter((t) => t <= limit);
  const mean = kept.reduce((a, b) => a + b, 0) / kept.length;
  const variance =
    kept.length > 1 ? kept.reduce((a, t) => a + (t - mean) ** 2, 0) / (kept.length - 1) : 0;
  return {
    median_ms: median(kept),
    mean_ms: mean,
    std_ms: Math.sqrt(variance),
    min_ms: kept[0] as number,
    max_ms: kept[kept.length - 1] as number,
    runs: kept.length,
  };
}

/** A model ready to be timed: built, with its session and input tensor. */
export class ModelSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly feeds: Record<string, ort.Tensor>,
    readonly overheadMs: Overhead,
    readonly record: SessionRecord,
  ) {}

  /** Build the ONNX model of `graph` and open an onnxruntime session on it. */
  static async open(graph: LayerGraph, settings: MeasureSettings): Promise<ModelSession> {
    checkSettings(settings);
    const { threads, batchSize, seed = 0, executionProvider = 'cpu', clock = 'wall' } = settings;
    const t0 = process.hrtime.bigint();
    const bytes = buildOnnxModel(graph, { batchSize, seed });
    const t1 = process.hrtime.bigint();
    const record: SessionRecord = {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      executionProvider,
      clock,
    };
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: record.intraOpNumThreads,
        interOpNumThreads: record.interOpNumThreads,
        graphOptimizationLevel: record.graphOptimizationLevel,
        executionMode: record.executionMode,
        executionProviders: [executionProvider],
        logSeverityLevel: 3,
      });
    } catch (cause) {
      if (executionProvider === 'cuda') {
        throw new ExecutionProviderError(
          'the CUDA execution provider is not available; install the GPU build with ' +
            '`ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node --ignore-scripts=false` ' +
            '(outside this repository: `npm install onnxruntime-node --onnxruntime-node-install=cuda12`; ' +
            'needs CUDA 12 and cuDNN 9) or measure with executionProvider "cpu"',
          { cause },
        );
      }
      throw cause;
    }
    const t2 = process.hrtime.bigint();
    const size = batchSize * graph.inputChannels * graph.resolution * graph.resolution;
    // Values in [0, 1) like a normalised image; fixed, so every run sees the same input.
    const data = new Float32Array(size);
    for (let i = 0; i < size; i++) data[i] = ((i * 2654435761) % 1000) / 1000;
    const input = new ort.Tensor('float32', data, [
      batchSize,
      graph.inputChannels,
      graph.resolution,
      graph.resolution,
    ]);
    const overheadMs = { build: Number(t1 - t0) / 1e6, session: Number(t2 - t1) / 1e6 };
    return new ModelSession(session, { [INPUT_NAME]: input }, overheadMs, record);
  }

  /** Run `count` untimed inferences. */
  async warmup(count: number): Promise<void> {
    for (let i = 0; i < count; i++) await this.session.run(this.feeds);
  }

  /**
   * Run `count` timed inferences; returns each run's time in milliseconds: elapsed time, or
   * with the `cpu` clock the CPU time this process spent in the run. With one intra-op thread
   * the inference runs on the calling thread, so CPU time is the run's work without the time
   * it waited while other processes held the core.
   */
  async time(count: number): Promise<number[]> {
    const times: number[] = [];
    if (this.record.clock === 'cpu') {
      for (let i = 0; i < count; i++) {
        const start = process.cpuUsage();
        await this.session.run(this.feeds);
        const used = process.cpuUsage(start);
        times.push((used.user + used.system) / 1000);
      }
      return times;
    }
    for (let i = 0; i < count; i++) {
      const start = process.hrtime.bigint();
      await this.session.run(this.feeds);
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    return times;
  }

  /** Warm up, time and summarise. */
  async measure(settings: Pick<MeasurementSettings, 'warmup' | 'runs'>): Promise<LatencyStats> {
    await this.warmup(settings.warmup);
    return summarizeTimings(await this.time(settings.runs));
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function checkSettings(settings: MeasureSettings): void {
  const positive: (keyof MeasureSettings)[] = ['runs', 'threads', 'batchSize'];
  for (const key of positive) {
    const value = settings[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
      throw new ValidationError(key, `must be a positive integer, got ${String(value)}`);
    }
  }
  if (!Number.isInteger(settings.warmup) || settings.warmup < 0) {
    throw new ValidationError('warmup', `must be a non-negative integer, got ${settings.warmup}`);
  }
  checkClock(settings);
}

/**
 * The `cpu` clock measures latency only when one thread does all the work on the CPU: with
 * more threads CPU time adds up across them, and a GPU's work is not this process's CPU time.
 */
export function checkClock(
  settings: Pick<MeasureSettings, 'clock' | 'threads' | 'executionProvider'>,
): void {
  if (settings.clock !== 'cpu') return;
  if (settings.threads !== 1) {
    throw new ValidationError(
      'clock',
      `"cpu" needs threads 1 (got ${settings.threads}); use "wall"`,
    );
  }
  if ((settings.executionProvider ?? 'cpu') !== 'cpu') {
    throw new ValidationError(
      'clock',
      '"cpu" needs the cpu execution provider; use "wall" on a GPU',
    );
  }
}

/**
 * Measure the latency of one layer graph: build, open a session, `warmup` untimed runs,
 * `runs` timed runs, summarised by `summarizeTimings`. Build and session creation are
 * reported as overhead, not timed.
 */
export async function measureGraph(
  graph: LayerGraph,
  settings: MeasureSettings,
): Promise<{ stats: LatencyStats; overheadMs: Overhead; session: SessionRecord }> {
  const model = await ModelSession.open(graph, settings);
  try {
    const stats = await model.measure(settings);
    return { stats, overheadMs: model.overheadMs, session: model.record };
  } finally {
    await model.release();
  }
}

/** onnxruntime-node's version and the execution providers its binaries support here. */
export function runtimeInfo(): { version: string; providers: string[] } {
  const versions = ort.env.versions as Record<string, string | undefined>;
  return {
    version: versions.node ?? versions.common ?? 'unknown',
    providers: ort.listSupportedBackends().map((b) => b.name),
  };
}

/**
 * Pin every thread of this process to `cpus` (a taskset list such as "1" or "0-3") with
 * `taskset -a -p`, so the scheduler cannot migrate the timing thread between cores, a large
 * source of process-to-process variation. Threads created later inherit the mask. Returns
 * false where taskset is missing or the OS refuses (macOS, containers without the right).
 */
export function pinToCpus(cpus: string): boolean {
  if (!/^[0-9,-]+$/.test(cpus)) {
    throw new ValidationError('pin', `expected a CPU list such as "1" or "0-3", got "${cpus}"`);
  }
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Real-time priority used by `useRealtimePriority`: above every normal process, below the kernel's. */
export const REALTIME_PRIORITY = 10;

/**
 * Give this process's main thread (the one onnxruntime computes on with one intra-op
 * thread) the SCHED_FIFO real-time policy with `chrt`, so no ordinary process can preempt
 * a timed run: on a shared machine this turns waiting time into nothing. Linux keeps 5 % of
 * every second for other tasks (sched_rt_runtime_us), so a runaway cannot freeze the core;
 * combine with `pinToCpus` to leave the other cores to everyone else. Needs root or
 * CAP_SYS_NICE (or an RLIMIT_RTPRIO, e.g. `LimitRTPRIO=` in systemd); returns false otherwise.
 */
export function useRealtimePriority(): boolean {
  try {
    execFileSync('chrt', ['-f', '-p', String(REALTIME_PRIORITY), String(process.pid)], {
      stdio: 'ignore',
    });
    return true;
  } catch {
    return false;
  }
}
