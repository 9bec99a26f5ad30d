import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { ArchValidationError, ValidationError } from '../../core/errors.ts';
import { createRng } from '../../core/rng.ts';
import { type JobMessage, jobMessage, resultMessage } from '../../core/schemas/protocol.ts';
import { spaceFromSpec } from '../../core/spaces/spec.ts';
import { randomSubnet } from '../../core/spaces/subnet.ts';
import { JobStoppedError, runJob } from '../../device-client/job-runner.ts';
import { ModelSession } from '../../device-client/measure.ts';
import { extremeArchs } from '../../device-client/references.ts';

const small = extremeArchs.mobilenetv3?.smallest ?? {};
const tinyRef = { id: 'ref-small', space: 'mobilenetv3', arch: small };

/** The input size of a session's model: what the exact clocks below charge a run. */
const pixels = (session: ModelSession) =>
  Object.values((session as unknown as { feeds: Record<string, { size: number }> }).feeds)[0]
    ?.size ?? 0;

function job(overrides: Partial<JobMessage> = {}): JobMessage {
  return jobMessage.parse({
    v: 1,
    type: 'job',
    runId: 'run-1',
    batchId: 'batch-1',
    space: 'mobilenetv3',
    samples: [
      { id: 'a', arch: small },
      { id: 'b', arch: { ...small, r: 160 } },
    ],
    settings: { warmup: 1, runs: 3, referenceEvery: 1 },
    references: [tinyRef],
    ...overrides,
  });
}

describe('runJob', () => {
  it('measures every sample and checks references at start, every k samples and end', async () => {
    const progress: [number, number][] = [];

    const result = await runJob(job(), {
      thing: 'dev-1',
      onProgress: (done, total) => progress.push([done, total]),
      retryUnstable: false,
    });

    expect(resultMessage.safeParse(result).success).toBe(true);
    expect(result.samples.map((s) => s.id)).toEqual(['a', 'b']);
    for (const s of result.samples) expect(s.stats.runs).toBeLessThanOrEqual(3);
    expect(progress).toEqual([
      [1, 2],
      [2, 2],
    ]);
    // Start, after sample 1 (every 1, but not again right before the end), end.
    expect(result.references[0]?.checks).toHaveLength(3);
    const medians = result.references[0]?.checks.map((c) => c.median_ms) ?? [];
    const drift = (Math.max(...medians) - Math.min(...medians)) / Math.min(...medians);
    expect(result.references[0]?.drift).toBeCloseTo(drift, 12);
    expect(result.quality.maxDrift).toBeCloseTo(drift, 12);
    expect(result.quality.unstable).toBe(drift > 0.03);
    expect(result.thing).toBe('dev-1');
    expect(result.device.onnxruntime).toMatch(/^\d+\.\d+/);
    expect(result.runId).toBe('run-1');
  });

  it('interleaves samples with the reference and scales their ratio by the calibration', async () => {
    const large = extremeArchs.mobilenetv3?.largest ?? {};
    const settings = { warmup: 2, runs: 7, referenceEvery: 0, interleave: true };
    const samples = [
      { id: 'small', arch: small },
      { id: 'large', arch: large },
    ];
    const interleaved = (extra: Record<string, unknown> = {}) =>
      runJob(
        job({ samples, settings: jobMessage.shape.settings.parse({ ...settings, ...extra }) }),
        {
          thing: 'dev-1',
          retryUnstable: false,
        },
      );

    const calibrating = await interleaved();
    const scale = calibrating.quality.referenceScaleMs as number;
    const doubled = await interleaved({ referenceScaleMs: 2 * scale });

    expect(resultMessage.safeParse(calibrating).success).toBe(true);
    // Without a calibration the job uses, and reports, its first reference check.
    expect(scale).toBe(calibrating.references[0]?.checks[0]?.median_ms);
    expect(doubled.quality.referenceScaleMs).toBe(2 * scale);
    for (const s of [...calibrating.samples, ...doubled.samples]) {
      expect(s.stats.median_ms).toBeGreaterThan(0);
      expect(s.stats.runs).toBeLessThanOrEqual(settings.runs);
    }
  });

  it('reports an interleaved latency as the run ratio sample / reference times the calibration', async () => {
    // A clock that charges each run its input size, so the ratios are known exactly: the
    // arithmetic is what this test checks, the real timing path is covered above (a ratio of
    // real timings is no assertion for a shared machine; scripts/bench/measurement.ts times them).
    const clock = vi.spyOn(ModelSession.prototype, 'time').mockImplementation(async function (
      this: ModelSession,
      count: number,
    ) {
      return Array.from({ length: count }, () => pixels(this) / 1e4);
    });
    try {
      const large = { ...small, r: 224 };
      const samples = [
        { id: 'same', arch: small },
        { id: 'large', arch: large },
      ];
      const settings = { warmup: 0, runs: 3, referenceEvery: 0, interleave: true };
      const result = await runJob(
        job({
          samples,
          settings: jobMessage.shape.settings.parse({ ...settings, referenceScaleMs: 5 }),
        }),
        { thing: 'dev-1', retryUnstable: false },
      );

      const latency = (id: string) => result.samples.find((s) => s.id === id)?.stats.median_ms;
      const r = (small as { r: number }).r;
      expect(result.quality.referenceScaleMs).toBe(5);
      expect(latency('same')).toBeCloseTo(5, 12);
      expect(latency('large')).toBeCloseTo(5 * (224 / r) ** 2, 12);
    } finally {
      clock.mockRestore();
    }
  });

  describe('interleaved, judges the drift of the numbers it reports', () => {
    // A clock that charges each run its input size times the machine's speed at that moment,
    // so a speed change between checks is exact; `slowed` picks the models it hits.
    const midRef = { id: 'ref-r160', space: 'mobilenetv3', arch: { ...small, r: 160 } };
    const r160 = 3 * 160 * 160;

    async function slowedAfterFirstSample(slowed: (pixels: number) => boolean) {
      let speed = 1;
      const clock = vi.spyOn(ModelSession.prototype, 'time').mockImplementation(async function (
        this: ModelSession,
        count: number,
      ) {
        const p = pixels(this);
        return Array.from({ length: count }, () => (p / 1e4) * (slowed(p) ? speed : 1));
      });
      try {
        return await runJob(
          job({
            references: [tinyRef, midRef],
            settings: jobMessage.shape.settings.parse({
              warmup: 0,
              runs: 3,
              referenceEvery: 0,
              interleave: true,
              maxReferenceDrift: 0.3,
            }),
          }),
          {
            thing: 'dev-1',
            retryUnstable: false,
            onProgress: (done) => {
              if (done === 1) speed = 2;
            },
          },
        );
      } finally {
        clock.mockRestore();
      }
    }

    it('trusts a batch whose machine changed speed for every model alike', async () => {
      const result = await slowedAfterFirstSample(() => true);

      // The scale reference's own medians doubled; reported, not judged.
      expect(result.references[0]?.drift).toBeCloseTo(1, 12);
      // The other reference, checked interleaved, saw none of it.
      expect(result.references[1]?.drift).toBeCloseTo(0, 12);
      expect(result.quality.maxDrift).toBeCloseTo(0, 12);
      expect(result.quality.unstable).toBe(false);
      const scale = result.quality.referenceScaleMs as number;
      const ratio = r160 / (3 * (small as { r: number }).r ** 2);
      for (const c of result.references[1]?.checks ?? []) {
        expect(c.median_ms).toBeCloseTo(scale * ratio, 12);
      }
    });

    it('flags a batch where one model slowed and the scale did not', async () => {
      const result = await slowedAfterFirstSample((p) => p === r160);

      expect(result.references[0]?.drift).toBeCloseTo(0, 12);
      expect(result.references[1]?.drift).toBeCloseTo(1, 12);
      expect(result.quality.maxDrift).toBeCloseTo(1, 12);
      expect(result.quality.unstable).toBe(true);
    });
  });

  describe('measures a sample again when its runs spread too widely', () => {
    // Exact clock as above; the first 3 runs of sample b (r 160) hit a burst that triples two
    // of them: median 3x, std / median 0.38. Its second measurement sees no burst.
    const r160 = 3 * 160 * 160;
    async function burstOnFirstMeasurementOfB(maxSampleSpread?: number) {
      let runsOfB = 0;
      const burst = [1, 3, 3];
      const clock = vi.spyOn(ModelSession.prototype, 'time').mockImplementation(async function (
        this: ModelSession,
        count: number,
      ) {
        const p = pixels(this);
        return Array.from({ length: count }, () => {
          const factor = p === r160 ? (burst[runsOfB++] ?? 1) : 1;
          return (p / 1e4) * factor;
        });
      });
      try {
        return await runJob(
          job({
            settings: jobMessage.shape.settings.parse({
              warmup: 0,
              runs: 3,
              referenceEvery: 0,
              interleave: true,
              referenceScaleMs: 5,
              ...(maxSampleSpread !== undefined && { maxSampleSpread }),
            }),
          }),
          { thing: 'dev-1', retryUnstable: false },
        );
      } finally {
        clock.mockRestore();
      }
    }
    const exactB = 5 * (160 / (small as { r: number }).r) ** 2;
    const latencyOfB = (result: Awaited<ReturnType<typeof runJob>>) =>
      result.samples.find((s) => s.id === 'b')?.stats.median_ms;

    it('reports the second, steadier measurement and counts it', async () => {
      const result = await burstOnFirstMeasurementOfB(0.3);

      expect(latencyOfB(result)).toBeCloseTo(exactB, 12);
      expect(result.samples.find((s) => s.id === 'b')?.stats.std_ms).toBeCloseTo(0, 12);
      expect(result.quality.samplesRemeasured).toBe(1);
      expect(resultMessage.parse(result).quality.samplesRemeasured).toBe(1);
      // The sample itself says so, so the platform can count it per iteration.
      const flagged = resultMessage.parse(result).samples.filter((s) => s.remeasured);
      expect(flagged.map((s) => s.id)).toEqual(['b']);
    });

    it('measures every sample once without the setting', async () => {
      const result = await burstOnFirstMeasurementOfB();

      expect(latencyOfB(result)).toBeCloseTo(3 * exactB, 12);
      expect(result.quality.samplesRemeasured).toBeUndefined();
    });

    it('measures nothing twice when no sample spreads beyond the limit', async () => {
      const result = await burstOnFirstMeasurementOfB(0.5);

      expect(latencyOfB(result)).toBeCloseTo(3 * exactB, 12);
      expect(result.quality.samplesRemeasured).toBe(0);
      expect(result.samples.some((s) => s.remeasured)).toBe(false);
    });
  });

  it('flags a batch whose reference drifted beyond the limit, after one re-measurement', async () => {
    let measured = 0;

    // Two real timings of a model never agree to 1e-9, so the limit is always exceeded.
    const result = await runJob(
      job({ settings: { ...job().settings, maxReferenceDrift: 1e-9, referenceEvery: 0 } }),
      { thing: 'dev-1', onProgress: () => measured++ },
    );

    expect(result.quality.unstable).toBe(true);
    expect(result.quality.maxDrift).toBeGreaterThan(1e-9);
    expect(measured).toBe(4); // two samples, measured twice
    expect(result.references[0]?.checks).toHaveLength(2);
  });

  it('uses the default references when the job names none', async () => {
    const result = await runJob(job({ samples: [{ id: 'a', arch: small }], references: [] }), {
      thing: 'dev-1',
      retryUnstable: false,
    });
    expect(result.references.map((r) => r.id)).toEqual([
      'ref-mbv3-small-r160',
      'ref-mbv3-mid-r160',
    ]);
  });

  it('measures a user-defined spec space sent with the job', async () => {
    const spec = JSON.parse(
      readFileSync(new URL('../../examples/spaces/mixed.json', import.meta.url), 'utf8'),
    );
    const space = spaceFromSpec(spec);
    const arch = space.toNative(randomSubnet(space, createRng(3))) as unknown as Record<
      string,
      unknown
    >;

    const result = await runJob(
      job({ space: space.name, spaceSpec: spec, samples: [{ id: 'x', arch }] }),
      { thing: 'dev-1', retryUnstable: false },
    );

    expect(result.samples[0]?.stats.median_ms).toBeGreaterThan(0);
  });

  it('rejects an invalid arch before timing anything, naming the sample and field', async () => {
    let measured = 0;
    const bad = job({
      samples: [
        { id: 'a', arch: small },
        { id: 'b', arch: { ...small, r: 999 } },
      ],
    });

    await expect(runJob(bad, { thing: 'd', onProgress: () => measured++ })).rejects.toThrow(
      ArchValidationError,
    );
    await expect(runJob(bad, { thing: 'd' })).rejects.toThrow(/^samples\[1\]\.arch\.r: /);
    expect(measured).toBe(0);
  });

  it('rejects a malformed job naming the field', async () => {
    const bad = { ...job(), settings: { runs: -1 } } as unknown as JobMessage;
    await expect(runJob(bad, { thing: 'd' })).rejects.toThrow(ValidationError);
    await expect(runJob(bad, { thing: 'd' })).rejects.toThrow(/^settings\.runs: /);
  });

  it('stops between samples when asked, without a result', async () => {
    let done = 0;
    const stopped = runJob(job(), {
      thing: 'd',
      onProgress: (n) => {
        done = n;
      },
      shouldStop: () => done >= 1,
    });

    await expect(stopped).rejects.toThrow(JobStoppedError);
    await expect(stopped).rejects.toMatchObject({ done: 1, total: 2, batchId: 'batch-1' });
  });
});
