/**
 * The cost estimate of docs/cloud.md executes the real state machine definition: the Wait
 * state is entered once per poll of each batch, and the transitions beyond the polling are
 * a handful per iteration, whatever the run shape.
 */
import { describe, expect, it } from 'vitest';
import { states } from '../../lambdas/workflow/definition.ts';
import { countTransitions, estimate, typicalRun } from '../../scripts/cost-estimate.ts';

describe('cost estimate from the definition', () => {
  it.each([
    ['the typical run', typicalRun],
    ['a slow device and more iterations', { ...typicalRun, samplesPerSecond: 0.05, iterations: 6 }],
  ])(
    'counts one Wait per poll and a few transitions per iteration for %s',
    async (_name, shape) => {
      const entered = await countTransitions(shape);
      const polls =
        Math.ceil(shape.nInit / shape.samplesPerSecond / shape.pollSeconds) +
        (shape.iterations - 1) *
          Math.ceil(shape.nStep / shape.samplesPerSecond / shape.pollSeconds);
      expect(entered[states.wait]).toBe(polls);
      expect(entered[states.train]).toBe(shape.iterations);
      const total = Object.values(entered).reduce((a, b) => a + b, 0);
      expect(total).toBeGreaterThan(2 * polls);
      expect(total).toBeLessThan(3 * polls + 10 * shape.iterations);
    },
  );

  it('grows with the measuring time, which Step Functions bills through the polling', async () => {
    const fast = await estimate(typicalRun);
    const slow = await estimate({
      ...typicalRun,
      samplesPerSecond: typicalRun.samplesPerSecond / 4,
    });
    const sfn = (e: typeof fast) => e.lines.find((l) => l.service === 'Step Functions')?.usd ?? 0;
    expect(sfn(slow)).toBeGreaterThan(3 * sfn(fast));
    expect(fast.total).toBeGreaterThan(0);
  });
});
