/**
 * Vitest global setup: the whole run writes its temporary files under one directory, removed
 * when the run ends. Tests, the CLIs they spawn, the moto server, mosquitto's PKI and CDK's
 * synth output all take `os.tmpdir()` from TMPDIR, so nothing a run leaves (an npm install
 * of the device package is ~900 MB) outlives it. ESM_KEEP_TEST_TMP=1 keeps it to look at.
 *
 * A run killed before its teardown cannot remove its directory, so each directory carries the
 * pid of the run that made it, and the next run removes those whose run is gone.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const PREFIX = 'esm-test-';
/** Written into a directory kept with ESM_KEEP_TEST_TMP=1, so that later runs leave it alone. */
export const KEPT_MARK = '.kept';

export default function setup(): () => void {
  const parent = tmpdir();
  removeAbandoned(parent);
  const root = mkdtempSync(path.join(parent, `${PREFIX}${process.pid}-`));
  process.env.TMPDIR = root;
  // Tests that create sessions in-process, as `esm` does (cli/main.ts): no device id or event
  // queue in the user's ~/.cache.
  process.env.ORT_DISABLE_TELEMETRY ??= '1';
  return () => {
    if (process.env.ESM_KEEP_TEST_TMP === '1') {
      writeFileSync(path.join(root, KEPT_MARK), '');
      process.stderr.write(`test files kept in ${root} (ESM_KEEP_TEST_TMP=1)\n`);
      return;
    }
    rmSync(root, { recursive: true, force: true });
  };
}

/**
 * Removes the test directories under `parent` left by runs that no longer exist (killed before
 * their teardown), keeping those of live runs and those kept on purpose. Returns their names.
 */
export function removeAbandoned(parent: string): string[] {
  const removed: string[] = [];
  for (const entry of readdirSync(parent, { withFileTypes: true })) {
    const pid = Number(new RegExp(`^${PREFIX}(\\d+)-`).exec(entry.name)?.[1]);
    if (!entry.isDirectory() || !Number.isInteger(pid) || isAlive(pid)) continue;
    const dir = path.join(parent, entry.name);
    if (readdirSync(dir).includes(KEPT_MARK)) continue;
    rmSync(dir, { recursive: true, force: true });
    removed.push(entry.name);
  }
  return removed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the pid exists but belongs to another user, so it may be a live run.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
