import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../core/errors.ts';
import { deviceFacts as deviceFactsSchema } from '../../core/schemas/protocol.ts';
import { getSpace } from '../../core/spaces/index.ts';
import type { LayerGraph } from '../../core/spaces/types.ts';
import { deviceFacts } from '../../device-client/device-facts.ts';
import {
  ExecutionProviderError,
  measureGraph,
  pinToCpus,
  summarizeTimings,
  useRealtimePriority,
} from '../../device-client/measure.ts';
import { extremeArchs } from '../../device-client/references.ts';
import { commandWorks } from '../support/services.ts';

const mobilenet = getSpace('mobilenetv3');
const graphOf = (arch: Record<string, unknown> | undefined): LayerGraph =>
  mobilenet.layerGraph(mobilenet.parse(arch));
const quick = { warmup: 2, runs: 7, threads: 1, batchSize: 1 };

describe('summarizeTimings', () => {
  it('drops slow outliers beyond median + 3 scaled MADs and keeps the rest', () => {
    const stats = summarizeTimings([10, 10.2, 9.9, 10.1, 10, 9.8, 45]);

    expect(stats.runs).toBe(6);
    expect(stats.max_ms).toBe(10.2);
    expect(stats.median_ms).toBeCloseTo(10, 10);
    expect(stats.mean_ms).toBeCloseTo(10, 10);
    expect(stats.min_ms).toBe(9.8);
  });

  it('keeps fast runs: interference only slows a run down', () => {
    const stats = summarizeTimings([10, 10.1, 9.9, 10, 10.1, 2]);
    expect(stats.runs).toBe(6);
    expect(stats.min_ms).toBe(2);
  });

  it('keeps every run of a flat series and reports zero spread', () => {
    const stats = summarizeTimings([5, 5, 5, 5]);
    expect(stats).toEqual({ median_ms: 5, mean_ms: 5, std_ms: 0, min_ms: 5, max_ms: 5, runs: 4 });
  });
});

describe('measureGraph', () => {
  it('times the smallest and largest MobileNetV3 subnet with consistent statistics', async () => {
    const small = await measureGraph(graphOf(extremeArchs.mobilenetv3?.smallest), quick);
    const large = await measureGraph(graphOf(extremeArchs.mobilenetv3?.largest), quick);

    // How much slower the largest is is a timing claim: scripts/bench/measurement.ts spaces.
    for (const r of [small, large]) {
      expect(r.stats.runs).toBeGreaterThan(0);
      expect(r.stats.runs).toBeLessThanOrEqual(quick.runs);
      expect(r.stats.min_ms).toBeLessThanOrEqual(r.stats.median_ms);
      expect(r.overheadMs.build).toBeGreaterThan(0);
      expect(r.overheadMs.session).toBeGreaterThan(0);
      expect(r.session).toMatchObject({ intraOpNumThreads: 1, executionProvider: 'cpu' });
    }
  });

  it('times CPU time with the cpu clock', async () => {
    const settings = { ...quick, clock: 'cpu' as const };
    const small = await measureGraph(graphOf(extremeArchs.mobilenetv3?.smallest), settings);
    const large = await measureGraph(graphOf(extremeArchs.mobilenetv3?.largest), settings);

    for (const r of [small, large]) {
      expect(r.session.clock).toBe('cpu');
      expect(r.stats.median_ms).toBeGreaterThan(0);
      expect(r.stats.min_ms).toBeLessThanOrEqual(r.stats.median_ms);
    }
  });

  it('refuses the cpu clock where CPU time is not latency', async () => {
    const graph = graphOf(extremeArchs.mobilenetv3?.smallest);
    await expect(measureGraph(graph, { ...quick, threads: 2, clock: 'cpu' })).rejects.toThrow(
      /^clock: "cpu" needs threads 1/,
    );
    await expect(
      measureGraph(graph, { ...quick, clock: 'cpu', executionProvider: 'cuda' }),
    ).rejects.toThrow(/^clock: "cpu" needs the cpu execution provider/);
  });

  it('rejects bad settings naming the field', async () => {
    const graph = graphOf(extremeArchs.mobilenetv3?.smallest);
    await expect(measureGraph(graph, { ...quick, runs: 0 })).rejects.toThrow(ValidationError);
    await expect(measureGraph(graph, { ...quick, threads: 1.5 })).rejects.toThrow(/^threads: /);
  });

  it('explains how to install CUDA when the CUDA provider cannot load', async (context) => {
    const graph = graphOf(extremeArchs.mobilenetv3?.smallest);
    try {
      const r = await measureGraph(graph, { ...quick, executionProvider: 'cuda' });
      // A GPU build with a GPU: the measurement itself must be valid.
      expect(r.session.executionProvider).toBe('cuda');
      context.skip();
    } catch (error) {
      expect(error).toBeInstanceOf(ExecutionProviderError);
      expect((error as Error).message).toMatch(/onnxruntime-node-install=cuda12/);
    }
  });
});

describe('pinToCpus', () => {
  it('rejects a malformed CPU list', () => {
    expect(() => pinToCpus('all; rm -rf /')).toThrow(/^pin: /);
  });

  it.runIf(existsSync('/proc/self/status') && commandWorks('taskset', ['-V']))(
    'pins every thread of this process (Linux with taskset)',
    () => {
      const all = `0-${availableParallelism() - 1}`;
      const allowed = () =>
        /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
      try {
        expect(pinToCpus('0')).toBe(true);
        expect(allowed()).toBe('0');
      } finally {
        pinToCpus(all);
      }
      expect(allowed()).toBe(availableParallelism() === 1 ? '0' : all);
    },
  );

  it.runIf(commandWorks('chrt', ['--help']))('sets real-time priority where allowed', () => {
    const policy = () => execFileSync('chrt', ['-p', String(process.pid)], { encoding: 'utf8' });
    try {
      if (useRealtimePriority()) expect(policy()).toMatch(/SCHED_FIFO/);
      else expect(policy()).not.toMatch(/SCHED_FIFO/); // no CAP_SYS_NICE: reported, not faked
    } finally {
      execFileSync('chrt', ['-o', '-p', '0', String(process.pid)], { stdio: 'ignore' });
    }
  });
});

describe('deviceFacts', () => {
  it('describes this machine', () => {
    const facts = deviceFacts('dev-1');

    expect(deviceFactsSchema.safeParse(facts).success).toBe(true);
    expect(facts).toMatchObject({
      thing: 'dev-1',
      node: process.version,
      executionProvider: 'cpu',
    });
    expect(facts.cores).toBe(cpus().length);
    expect(facts.onnxruntime).toMatch(/^\d+\.\d+\.\d+/);
    // A GPU name exactly where nvidia-smi can list one.
    expect(facts.accelerator !== null).toBe(commandWorks('nvidia-smi', ['-L']));
  });
});
