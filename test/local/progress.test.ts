import { afterEach, describe, expect, it, vi } from 'vitest';
import { createProgress } from '../../local/progress.ts';

/** A terminal-like stream that records what was drawn. */
function terminal() {
  const writes: string[] = [];
  const stream = { isTTY: true, write: (s: string) => writes.push(s) > 0 };
  return { writes, stream: stream as unknown as NodeJS.WriteStream };
}

describe('progress bar', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('only moves forward: a late, smaller count is not drawn', () => {
    vi.useFakeTimers();
    const { writes, stream } = terminal();
    const bar = createProgress({ stream }).bar('measuring', 50);

    vi.advanceTimersByTime(200);
    bar.update(10);
    vi.advanceTimersByTime(200);
    bar.update(1);
    vi.advanceTimersByTime(200);
    bar.update(12);
    bar.finish();

    const counts = writes.map((w) => /\] (\d+)\/50/.exec(w)?.[1]).filter((c) => c !== undefined);
    expect(counts).toEqual(['0', '10', '12', '50']);
  });
});
