/**
 * Vitest global setup: the whole run writes its temporary files under one directory, removed
 * when the run ends. Tests, the CLIs they spawn, the moto server, mosquitto's PKI and CDK's
 * synth output all take `os.tmpdir()` from TMPDIR, so nothing a run leaves (an npm install
 * of the device package is ~900 MB) outlives it. ESM_KEEP_TEST_TMP=1 keeps it to look at.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const root = mkdtempSync(path.join(tmpdir(), 'esm-test-'));
  process.env.TMPDIR = root;
  // Tests that create sessions in-process, as `esm` does (cli/main.ts): no device id or event
  // queue in the user's ~/.cache.
  process.env.ORT_DISABLE_TELEMETRY ??= '1';
  return () => {
    if (process.env.ESM_KEEP_TEST_TMP === '1') {
      process.stderr.write(`test files kept in ${root} (ESM_KEEP_TEST_TMP=1)\n`);
      return;
    }
    rmSync(root, { recursive: true, force: true });
  };
}
