/**
 * Metrics beyond latency on the device (protocol minor 1): peak memory measured for real in a
 * child process per model, energy from Linux powercap/RAPL where the machine has it and null
 * with the reason where it does not, never a failed job.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jobMessage, resultMessage } from '../../core/schemas/protocol.ts';
import { mobilenetv3 } from '../../core/spaces/mobilenetv3.ts';
import { runJob } from '../../device-client/job-runner.ts';
import { findEnergyCounter, measurePeakMemory } from '../../device-client/metrics.ts';
import { extremeArchs } from '../../device-client/references.ts';

const smallest = extremeArchs.mobilenetv3?.smallest ?? {};
const largest = extremeArchs.mobilenetv3?.largest ?? {};
const hasRapl = existsSync('/sys/class/powercap/intel-rapl:0/energy_uj');

describe('device metrics', () => {
  it('answers a job asking for peak memory and energy with a reading or null and the reason per sample', async () => {
    // Prepare
    const job = jobMessage.parse({
      v: 1,
      minor: 1,
      type: 'job',
      runId: 'run-m',
      batchId: 'batch-m',
      space: 'mobilenetv3',
      samples: [
        { id: 'small', arch: smallest },
        { id: 'large', arch: largest },
      ],
      settings: { warmup: 1, runs: 3, metrics: ['peak_memory_mb', 'energy_mj'] },
      references: [{ id: 'ref', space: 'mobilenetv3', arch: smallest }],
    });
    // Act
    const result = await runJob(job, { thing: 'dev-m', retryUnstable: false });
    // Assess
    expect(resultMessage.safeParse(result).success).toBe(true);
    expect(result.minor).toBe(1);
    const [small, large] = result.samples;
    for (const s of result.samples) {
      expect(s.stats.median_ms).toBeGreaterThan(0);
      expect(s.metrics?.peak_memory_mb?.value).toBeGreaterThan(1);
      expect(s.metrics?.peak_memory_mb?.method).toMatch(/child process/);
      const energy = s.metrics?.energy_mj;
      if (hasRapl) {
        expect(energy?.value).toBeGreaterThanOrEqual(0);
      } else {
        expect(energy?.value).toBeNull();
        expect(energy?.reason).toMatch(/no energy counter/);
      }
    }
    // The largest subnet holds about 2.5x the weights of the smallest.
    expect(large?.metrics?.peak_memory_mb?.value as number).toBeGreaterThan(
      small?.metrics?.peak_memory_mb?.value as number,
    );
  }, 120_000);

  it('measures more memory for a larger model in a fresh process each time', async () => {
    const settings = { threads: 1, batchSize: 1 };
    const a = await measurePeakMemory(
      mobilenetv3.layerGraph(mobilenetv3.parse(smallest)),
      settings,
    );
    const b = await measurePeakMemory(mobilenetv3.layerGraph(mobilenetv3.parse(largest)), {
      ...settings,
      batchSize: 8,
    });
    expect(a.value).toBeGreaterThan(1);
    expect(b.value as number).toBeGreaterThan((a.value as number) + 5);
  }, 60_000);

  it('finds no energy counter without powercap or on a GPU, and reads RAPL package files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'esm-powercap-'));
    try {
      // Prepare: an empty powercap directory, then one with two packages.
      const none = await findEnergyCounter({ root: dir });
      await mkdir(join(dir, 'intel-rapl:0'));
      await mkdir(join(dir, 'intel-rapl:1'));
      await writeFile(join(dir, 'intel-rapl:0', 'energy_uj'), '1000\n');
      await writeFile(join(dir, 'intel-rapl:0', 'max_energy_range_uj'), '262143328850\n');
      await writeFile(join(dir, 'intel-rapl:1', 'energy_uj'), '250\n');
      // Act
      const found = await findEnergyCounter({ root: dir });
      const gpu = await findEnergyCounter({ root: dir, executionProvider: 'cuda' });
      // Assess
      expect(none.counter).toBeUndefined();
      expect(none.reason).toMatch(/no energy counter: .* has no intel-rapl:N/);
      expect(found.counter?.name).toBe('intel-rapl:0+intel-rapl:1');
      expect(await found.counter?.read()).toBe(1250);
      expect(found.counter?.maxUj).toBe(2 * 262143328850);
      expect(gpu.counter).toBeUndefined();
      expect(gpu.reason).toMatch(/NVML/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps minor-0 peers compatible: results without metrics and jobs without the field parse', () => {
    const old = resultMessage.safeParse({
      v: 1,
      type: 'result',
      runId: 'r',
      batchId: 'b',
      thing: 't',
      samples: [
        { id: 'a', stats: { median_ms: 1, mean_ms: 1, std_ms: 0, min_ms: 1, max_ms: 1, runs: 3 } },
      ],
      quality: { maxDrift: 0, unstable: false },
      device: {
        thing: 't',
        cpu: 'c',
        cores: 1,
        accelerator: null,
        os: 'o',
        node: 'n',
        onnxruntime: '1',
        executionProvider: 'cpu',
      },
      settings: {},
      startedAt: 'x',
      finishedAt: 'y',
    });
    expect(old.success).toBe(true);
    const bad = jobMessage.safeParse({
      v: 1,
      type: 'job',
      runId: 'r',
      batchId: 'b',
      space: 'mobilenetv3',
      samples: [{ id: 'a', arch: smallest }],
      settings: { metrics: ['flops'] },
    });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path.join('.')).toBe('settings.metrics.0');
  });
});
