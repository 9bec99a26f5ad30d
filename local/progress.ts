/**
 * Progress bars for long CLI work, drawn on stderr only when it is a terminal; elsewhere (CI,
 * pipes, `--json`) nothing is drawn and only the lines passed to `log` are written, so output
 * stays clean for machines.
 */

export interface ProgressBar {
  update(done: number): void;
  finish(): void;
}

export interface Progress {
  bar(label: string, total: number): ProgressBar;
  /** A line of text (iteration summaries); never interleaved with a bar. */
  log(text: string): void;
}

export interface ProgressOptions {
  /** @default process.stderr */
  stream?: NodeJS.WriteStream;
  /** Draw bars. @default stream.isTTY */
  bars?: boolean;
  /** Write `log` lines. @default true */
  lines?: boolean;
  /** Bar width in characters. @default 30 */
  width?: number;
}

/** A progress reporter on `stream`; see `ProgressOptions` for what it draws. */
export function createProgress(options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const bars = options.bars ?? Boolean(stream.isTTY);
  const lines = options.lines ?? true;
  const width = options.width ?? 30;
  let active = false;
  const clear = () => {
    if (active) stream.write('\r\x1b[2K');
    active = false;
  };
  return {
    bar(label, total) {
      const started = Date.now();
      let last = 0;
      let finished = false;
      const draw = (done: number, force: boolean) => {
        if (!bars) return;
        const now = Date.now();
        if (!force && now - last < 100) return;
        last = now;
        const share = total > 0 ? Math.min(1, done / total) : 1;
        const filled = Math.round(share * width);
        const secs = (now - started) / 1000;
        const eta =
          done > 0 && done < total ? ` eta ${Math.round((secs / done) * (total - done))}s` : '';
        stream.write(
          `\r\x1b[2K${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total} ${secs.toFixed(0)}s${eta}`,
        );
        active = true;
      };
      draw(0, true);
      // A bar only moves forward: a late progress message of an earlier job (QoS 0, or a job
      // re-sent) once drew 10/50 back to 1/50.
      let shown = 0;
      return {
        update: (done) => {
          if (finished || done < shown) return;
          shown = done;
          draw(done, false);
        },
        finish: () => {
          if (finished) return;
          finished = true;
          draw(total, true);
          clear();
        },
      };
    },
    log(text) {
      if (!lines) return;
      clear();
      stream.write(`${text}\n`);
    },
  };
}
