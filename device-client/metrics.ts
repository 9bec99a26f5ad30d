/**
 * Metrics beyond latency, measured per model on the device (protocol minor 1):
 *
 * - `peak_memory_mb`: a fresh child process per model (peak-memory-child.mjs) loads
 *   onnxruntime, the model and its input, creates the session and runs the model; the value
 *   is its resident high-water mark minus its resident set just before the session was
 *   created: the memory the model itself needs at inference (weights as onnxruntime holds
 *   them, the arena, activations, kernel scratch), without Node's and onnxruntime's own
 *   baseline. The mark is /proc/self/status `VmHWM` on Linux: getrusage's `ru_maxrss` keeps
 *   the high-water mark from before exec, the parent's resident set at fork, so inside a
 *   growing daemon the same model measured 73 MB, then 126 MB. In-process numbers would be
 *   wrong both ways: the high-water mark never goes down, and freed memory of earlier models
 *   is reused. Host memory only: a GPU's memory is not in the resident set.
 * - `energy_mj`: where Linux powercap exposes RAPL (`/sys/class/powercap/intel-rapl:N/energy_uj`,
 *   Intel and AMD CPUs), the package energy counter is read around `runs` timed runs and the
 *   difference (with counter wrap) divided by the runs. It counts the whole package, so other
 *   load on the machine is included. Without a readable counter (VMs, containers, macOS, ARM
 *   boards without one, GPUs: NVML's energy counter is not read by this client) the value is
 *   null with the reason; asking for it never fails the job.
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { MetricReading, SampleMetrics } from '../core/schemas/protocol.ts';
import type { LayerGraph } from '../core/spaces/types.ts';
import { type ExecutionProvider, type MeasureSettings, ModelSession } from './measure.ts';
import { buildOnnxModel } from './onnx-builder.ts';

const run = promisify(execFile);
const CHILD = fileURLToPath(new URL('./peak-memory-child.mjs', import.meta.url));
const MB = 1024 * 1024;

/**
 * glibc's malloc moves its mmap threshold up after large frees, so whether one of
 * onnxruntime's allocations during session creation lands on the heap (and stays resident)
 * or in its own mapping (returned at free) depends on what was freed before: the same model
 * measured 78-81 MB across fresh children. A fixed threshold measured 73.3-74.1 MB (8
 * children, MobileNetV3, this machine). Other allocators ignore the variable.
 */
const STEADY_MALLOC = { MALLOC_MMAP_THRESHOLD_: String(64 * 1024) };

export const PEAK_MEMORY_METHOD =
  'child process per model: peak RSS (VmHWM, else ru_maxrss) - RSS before the onnxruntime session';

export interface PeakMemoryOptions {
  /** Inferences the child runs after creating the session (the peak is reached in the first). @default 2 */
  readonly runs?: number;
  /** @default 60000 */
  readonly timeoutMs?: number;
}

/** The model's peak resident memory in MB, measured in a fresh child process. */
export async function measurePeakMemory(
  graph: LayerGraph,
  settings: Pick<MeasureSettings, 'threads' | 'batchSize' | 'seed' | 'executionProvider'>,
  options: PeakMemoryOptions = {},
): Promise<MetricReading> {
  const { runs = 2, timeoutMs = 60_000 } = options;
  const dir = await mkdtemp(join(tmpdir(), 'esm-mem-'));
  try {
    const file = join(dir, 'model.onnx');
    await writeFile(
      file,
      buildOnnxModel(graph, { batchSize: settings.batchSize, seed: settings.seed ?? 0 }),
    );
    const shape = [settings.batchSize, graph.inputChannels, graph.resolution, graph.resolution];
    const { stdout } = await run(
      process.execPath,
      [
        CHILD,
        file,
        JSON.stringify(shape),
        String(runs),
        String(settings.threads),
        settings.executionProvider ?? 'cpu',
      ],
      { timeout: timeoutMs, maxBuffer: 1 << 20, env: { ...process.env, ...STEADY_MALLOC } },
    );
    const out = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as {
      before: number;
      peak: number;
    };
    return { value: Math.max(0, (out.peak - out.before) / MB), method: PEAK_MEMORY_METHOD };
  } catch (error) {
    return {
      value: null,
      reason: `the memory probe failed: ${(error as Error).message.split('\n')[0]}`,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A cumulative energy counter in microjoules. */
export interface EnergyCounter {
  readonly name: string;
  read(): Promise<number>;
  /** The value after which the counter wraps to 0. */
  readonly maxUj: number;
}

export type EnergyCounterLookup =
  | { readonly counter: EnergyCounter; readonly reason?: undefined }
  | { readonly counter?: undefined; readonly reason: string };

/**
 * The RAPL package counters under Linux powercap (`intel-rapl:N`, one per CPU package, summed).
 * @param options.root the powercap directory (default /sys/class/powercap)
 * @param options.executionProvider with `cuda` the model runs on the GPU, whose energy this
 *   client does not read (NVML), so there is no counter (default cpu)
 */
export async function findEnergyCounter(
  options: { root?: string; executionProvider?: ExecutionProvider } = {},
): Promise<EnergyCounterLookup> {
  const { root = '/sys/class/powercap', executionProvider = 'cpu' } = options;
  if (executionProvider !== 'cpu') {
    return {
      reason: `no energy counter for the ${executionProvider} execution provider: this client reads CPU package energy (Linux powercap/RAPL) only, not NVIDIA's NVML counter`,
    };
  }
  let names: string[];
  try {
    names = (await readdir(root)).filter((n) => /^intel-rapl:\d+$/.test(n)).sort();
  } catch {
    names = [];
  }
  if (names.length === 0) {
    return {
      reason: `no energy counter: ${root} has no intel-rapl:N package domain (Linux powercap/RAPL; absent in most VMs and containers, on macOS and on boards without one)`,
    };
  }
  const files = names.map((n) => join(root, n, 'energy_uj'));
  for (const f of files) {
    try {
      await access(f, constants.R_OK);
      await readFile(f, 'utf8');
    } catch (error) {
      return {
        reason: `the energy counter ${f} is not readable (${(error as NodeJS.ErrnoException).code ?? 'error'}); since Linux 5.10 it is root-only: run the daemon as root or make energy_uj readable`,
      };
    }
  }
  let maxUj = 0;
  try {
    maxUj = Number(
      (await readFile(join(root, names[0] as string, 'max_energy_range_uj'), 'utf8')).trim(),
    );
  } catch {
    maxUj = 0;
  }
  return {
    counter: {
      name: names.join('+'),
      maxUj: files.length * (Number.isFinite(maxUj) && maxUj > 0 ? maxUj : 2 ** 32),
      read: async () => {
        let total = 0;
        for (const f of files) total += Number((await readFile(f, 'utf8')).trim());
        return total;
      },
    },
  };
}

/** Energy per inference in mJ: the counter's difference over `runs` runs (wrap-aware). */
export async function measureEnergy(
  model: ModelSession,
  counter: EnergyCounter,
  runs: number,
): Promise<MetricReading> {
  const start = await counter.read();
  await model.time(runs);
  const end = await counter.read();
  const delta = end >= start ? end - start : end + counter.maxUj - start;
  return {
    value: delta / 1000 / runs,
    method: `RAPL package energy (${counter.name}) over ${runs} runs, whole package`,
  };
}

/**
 * The metrics `names` of one model. Each failure becomes a null reading with its reason.
 * @param options.energy the counter lookup, done once per job (default: `findEnergyCounter`)
 */
export async function measureMetrics(
  graph: LayerGraph,
  names: readonly (keyof SampleMetrics)[],
  settings: MeasureSettings,
  options: { energy?: EnergyCounterLookup } = {},
): Promise<SampleMetrics> {
  const out: SampleMetrics = {};
  if (names.includes('peak_memory_mb'))
    out.peak_memory_mb = await measurePeakMemory(graph, settings);
  if (names.includes('energy_mj')) {
    const lookup =
      options.energy ??
      (await findEnergyCounter({ executionProvider: settings.executionProvider }));
    if (!lookup.counter) {
      out.energy_mj = { value: null, reason: lookup.reason };
    } else {
      const model = await ModelSession.open(graph, settings);
      try {
        await model.warmup(settings.warmup);
        out.energy_mj = await measureEnergy(model, lookup.counter, settings.runs);
      } catch (error) {
        out.energy_mj = {
          value: null,
          reason: `energy measurement failed: ${(error as Error).message}`,
        };
      } finally {
        await model.release();
      }
    }
  }
  return out;
}
